//! Polls Prometheus' alerts API and records every alert's state changes (inactive → pending →
//! firing → inactive) in the evidence. The alert names come from the rules Prometheus loaded, so an
//! alert that never leaves `inactive` is still known.

use crate::evidence::{AlertState, Evidence};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Deserialize)]
struct Envelope<T> {
    data: T,
}

#[derive(Deserialize)]
struct AlertsData {
    alerts: Vec<ApiAlert>,
}

#[derive(Deserialize)]
struct ApiAlert {
    labels: BTreeMap<String, String>,
    state: String,
}

#[derive(Deserialize)]
struct RulesData {
    groups: Vec<RuleGroup>,
}

#[derive(Deserialize)]
struct RuleGroup {
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// The alerting rules Prometheus has loaded: (name, severity label or "").
pub async fn rules(client: &reqwest::Client, prometheus: &str) -> Vec<(String, String)> {
    let Ok(r) = client
        .get(format!("{prometheus}/api/v1/rules"))
        .send()
        .await
    else {
        return Vec::new();
    };
    match r.json::<Envelope<RulesData>>().await {
        Ok(env) => env
            .data
            .groups
            .into_iter()
            .flat_map(|g| g.rules)
            .filter(|r| r.kind == "alerting")
            .map(|r| {
                let severity = r.labels.get("severity").cloned().unwrap_or_default();
                (r.name, severity)
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Polls every `every` until aborted.
pub fn start_polling(
    prometheus: String,
    evidence: Evidence,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("http client");
        let rules = rules(&client, &prometheus).await;
        evidence.with(|d| d.alert_severity.extend(rules.iter().cloned()));
        let names: Vec<String> = rules.into_iter().map(|(n, _)| n).collect();
        for n in &names {
            evidence.alert_state(n, AlertState::Inactive);
        }
        let mut tick = tokio::time::interval(every);
        // Firing label sets already reported as events (which replica an alert is about).
        let mut firing_seen = std::collections::BTreeSet::new();
        loop {
            tick.tick().await;
            let Ok(r) = client
                .get(format!("{prometheus}/api/v1/alerts"))
                .send()
                .await
            else {
                continue;
            };
            let Ok(env) = r.json::<Envelope<AlertsData>>().await else {
                continue;
            };
            evidence.firing(
                env.data
                    .alerts
                    .iter()
                    .filter(|a| a.state == "firing")
                    .filter_map(|a| {
                        let name = a.labels.get("alertname")?.clone();
                        Some((name, a.labels.get("severity").cloned().unwrap_or_default()))
                    })
                    .collect(),
            );
            let mut states: BTreeMap<String, AlertState> = names
                .iter()
                .map(|n| (n.clone(), AlertState::Inactive))
                .collect();
            for a in &env.data.alerts {
                let Some(name) = a.labels.get("alertname") else {
                    continue;
                };
                let state = if a.state == "firing" {
                    AlertState::Firing
                } else {
                    AlertState::Pending
                };
                if state == AlertState::Firing {
                    let labels: Vec<String> = a
                        .labels
                        .iter()
                        .filter(|(k, _)| !matches!(k.as_str(), "alertname" | "severity"))
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    let key = format!("{name} {{{}}}", labels.join(", "));
                    if firing_seen.insert(key.clone()) {
                        evidence.event(format!("alert firing: {key}"));
                    }
                }
                let entry = states.entry(name.clone()).or_insert(AlertState::Inactive);
                if *entry != AlertState::Firing {
                    *entry = state;
                }
            }
            for (name, state) in states {
                evidence.alert_state(&name, state);
            }
        }
    })
}
