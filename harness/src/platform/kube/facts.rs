//! What the Kubernetes API says about a run's pods, as Brownout's typed evidence: the kubelet's
//! `Unhealthy` events as probe results (answered with a status, refused, timed out, or another
//! error) and the containers' `restartCount` as restarts, each with its service and replica. The
//! judge reads the same facts from here as from the local supervisor; [`super::watch`] feeds
//! them from the API.

use super::render::NAME_LABEL;
use crate::evidence::{Probe, ProbeResult, Restarts};
use k8s_openapi::api::core::v1::Pod;

/// What the kubelet's event recorder puts before an aggregated event's message (client-go
/// tools/record events_cache.go, `EventAggregatorByReasonMessageFunc`).
pub const COMBINED_PREFIX: &str = "(combined from similar events): ";

/// The probe result in a kubelet `Unhealthy` event's message, e.g. `Readiness probe failed: HTTP
/// probe failed with statuscode: 503`, also when the event recorder aggregated it (the message
/// then starts with [`COMBINED_PREFIX`]); `None` if the message is not a probe failure.
/// `timeout_ms` is the probe's timeout (the message does not say it).
pub fn probe_from_unhealthy(message: &str, timeout_ms: u64) -> Option<(Probe, ProbeResult)> {
    let message = message.strip_prefix(COMBINED_PREFIX).unwrap_or(message);
    let (kind, rest) = message.split_once(" probe ")?;
    let probe = match kind {
        "Readiness" => Probe::Readiness,
        "Liveness" => Probe::Liveness,
        _ => return None,
    };
    let output = rest
        .strip_prefix("failed: ")
        .or_else(|| rest.strip_prefix("errored: "))?;
    let result = if let Some(code) = output.strip_prefix("HTTP probe failed with statuscode: ") {
        match code.trim().parse() {
            Ok(status) => ProbeResult::Answered {
                status,
                body: String::new(),
            },
            Err(_) => ProbeResult::Failed {
                error: output.into(),
            },
        }
    } else if output.contains("connect: connection refused") {
        ProbeResult::Refused
    } else if output.contains("context deadline exceeded")
        || output.contains("Client.Timeout exceeded")
        || output.contains("i/o timeout")
    {
        ProbeResult::TimedOut {
            after_ms: timeout_ms,
        }
    } else {
        ProbeResult::Failed {
            error: output.into(),
        }
    };
    Some((probe, result))
}

/// Restarts of every container of the pods of `service` (by the component label, never by a
/// name prefix), one record per pod.
pub fn restarts(pods: &[Pod], service: &str) -> Vec<Restarts> {
    pods.iter()
        .filter(|p| {
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(NAME_LABEL))
                .is_some_and(|n| n == service)
        })
        .map(|p| Restarts {
            service: service.into(),
            replica: p.metadata.name.clone().unwrap_or_default(),
            count: p
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .map_or(0, |cs| {
                    cs.iter().map(|c| c.restart_count.max(0) as u32).sum()
                }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_messages_become_probe_results() {
        let cases = [
            (
                "Readiness probe failed: HTTP probe failed with statuscode: 503",
                Some((
                    Probe::Readiness,
                    ProbeResult::Answered {
                        status: 503,
                        body: String::new(),
                    },
                )),
            ),
            (
                "Liveness probe failed: Get \"http://10.244.0.7:8080/healthz/live\": dial tcp 10.244.0.7:8080: connect: connection refused",
                Some((Probe::Liveness, ProbeResult::Refused)),
            ),
            (
                "Readiness probe failed: Get \"http://10.244.0.7:8080/healthz/ready\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
                Some((Probe::Readiness, ProbeResult::TimedOut { after_ms: 800 })),
            ),
            (
                "Liveness probe errored: rpc error: code = Unknown desc = container not running",
                Some((
                    Probe::Liveness,
                    ProbeResult::Failed {
                        error: "rpc error: code = Unknown desc = container not running".into(),
                    },
                )),
            ),
            ("Startup probe failed: HTTP probe failed with statuscode: 500", None),
            ("Back-off restarting failed container checkout", None),
        ];
        for (message, want) in &cases {
            assert_eq!(&probe_from_unhealthy(message, 800), want, "{message}");
        }
        // Not ok, whatever the shape: only a 2xx answer is.
        let (_, r) = probe_from_unhealthy(cases[0].0, 800).unwrap();
        assert!(!r.ok() && r.answered());
    }

    /// client-go's event recorder stores the 10th and later different messages with one reason
    /// about one object as one aggregated event whose message is
    /// `(combined from similar events): ` and the latest message (tools/record events_cache.go,
    /// `EventAggregatorByReasonMessageFunc`, `defaultAggregateMaxEvents` = 10). The kubelet
    /// records its probe failures through it, so such a message is still a probe result.
    #[test]
    fn an_aggregated_kubelet_message_is_still_a_probe_result() {
        let combined = "(combined from similar events): Readiness probe failed: HTTP probe failed with statuscode: 503";
        assert_eq!(
            probe_from_unhealthy(combined, 800),
            Some((
                Probe::Readiness,
                ProbeResult::Answered {
                    status: 503,
                    body: String::new()
                }
            ))
        );
        let combined = "(combined from similar events): Liveness probe failed: Get \"http://10.244.0.7:8080/healthz/live\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)";
        assert_eq!(
            probe_from_unhealthy(combined, 2000),
            Some((Probe::Liveness, ProbeResult::TimedOut { after_ms: 2000 }))
        );
        // Only the prefix the recorder writes, and only at the start.
        assert_eq!(
            probe_from_unhealthy(
                "Back-off: (combined from similar events): Readiness probe failed: x",
                800
            ),
            None
        );
    }

    #[test]
    fn restarts_are_counted_per_pod_of_the_labelled_service_only() {
        let pod = |name: &str, service: &str, counts: &[i32]| -> Pod {
            let statuses: Vec<serde_json::Value> = counts
                .iter()
                .enumerate()
                .map(|(i, c)| serde_json::json!({"name": format!("c{i}"), "ready": true, "restartCount": c, "image": "x", "imageID": "", "started": true}))
                .collect();
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "labels": {NAME_LABEL: service}},
                "status": {"phase": "Running", "containerStatuses": statuses}
            }))
            .unwrap()
        };
        let pods = [
            pod("checkout-7d9f-abcde", "checkout", &[2]),
            pod("checkout-worker-5c4b-xyz12", "checkout-worker", &[7]),
            pod("ingress-6b8c-qwert", "ingress", &[0, 1]),
        ];
        assert_eq!(
            restarts(&pods, "checkout"),
            [Restarts {
                service: "checkout".into(),
                replica: "checkout-7d9f-abcde".into(),
                count: 2
            }]
        );
        assert_eq!(restarts(&pods, "ingress")[0].count, 1, "every container");
        assert!(restarts(&pods, "payments").is_empty());
    }
}
