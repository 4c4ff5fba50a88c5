//! `proxy`: a toxic on one of the system's fault proxies (latency, timeout, reset, refuse,
//! bandwidth), or the proxy's listener taken away (`down`). Healed by removing the toxics and
//! bringing the listener back. Acts only through [`ProxyControl`].

use super::kind::{
    self, Check, Entry, Fault, Kind, Prediction, Preset, Problem, RequestFacts, SystemFacts,
};
use crate::control::ProxyControl;
use crate::error::Result;
use crate::fault_proxy::Toxic;
use serde::Deserialize;

/// `{ kind = "proxy", proxy, toxic = {...} }`: a toxic on one of the system's fault proxies
/// (healed: removed).
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub proxy: String,
    pub toxic: Toxic,
}

impl Fault for Spec {
    fn kind(&self) -> &'static str {
        KIND.name
    }
    /// The toxic's own checks (its fraction first, then its fields' ranges), at `toxic`.
    fn check(&self, _: &SystemFacts) -> std::result::Result<(), Problem> {
        kind::at("toxic", self.toxic.check())
    }
    /// The proxy is one of the system's. (The fraction, which this checked too, is checked
    /// first by [`Fault::check`].)
    fn check_targets(&self, system: &SystemFacts, _: &[RequestFacts], _: &str) -> Check {
        if !system.proxies.contains(&self.proxy) {
            return Err(format!(
                "fault proxy refers to proxy '{}', which the system does not have (proxies: {})",
                self.proxy,
                system.proxies.join(", ")
            ));
        }
        Ok(())
    }
    fn predicts(&self) -> Prediction {
        match self.toxic {
            Toxic::Latency { .. } | Toxic::Timeout { .. } => Prediction {
                allowed: vec![503, 504],
                retry_after: vec![503, 504],
                why: "a slow dependency: the app answers 503/504 with Retry-After within its own timeout, before the ingress gives up",
                readiness_drops: false,
            },
            _ => Prediction::dependency_down(false),
        }
    }
}

pub const KIND: Kind = Kind {
    name: "proxy",
    catalogue: |system| {
        (!system.proxies.is_empty()).then(|| Entry {
            parameters: format!(
                "proxy ({}), toxic: latency {{latency, jitter, fraction}}, reset, timeout, bandwidth, down, … (as in a scenario)",
                system.proxies.join(", ")
            ),
            presets: system
                .proxies
                .iter()
                .flat_map(|p| {
                    [
                        Preset {
                            name: format!("slow-{p}"),
                            fault: serde_json::json!({"kind": "proxy", "proxy": p, "toxic": {"kind": "latency", "latency": "6s"}}),
                        },
                        Preset {
                            name: format!("{p}-down"),
                            fault: serde_json::json!({"kind": "proxy", "proxy": p, "toxic": {"kind": "down"}}),
                        },
                    ]
                })
                .collect(),
        })
    },
    example: |system| {
        system.proxies.first().map(|p| {
            format!("kind = \"proxy\", proxy = \"{p}\", toxic = {{ kind = \"latency\", latency = \"6s\" }}")
        })
    },
};

/// A toxic in place on `proxy` (or the proxy down).
#[derive(Debug)]
pub struct Applied {
    pub proxy: String,
    pub down: bool,
    pub what: String,
}

pub async fn inject<P: ProxyControl>(
    platform: &mut P,
    proxy: &str,
    toxic: &Toxic,
) -> Result<Applied> {
    let what = format!(
        "proxy {proxy}: {}",
        serde_json::to_string(toxic).unwrap_or_else(|_| format!("{toxic:?}"))
    );
    let down = toxic.is_down();
    if down {
        platform.set_down(proxy, true).await?;
    } else {
        platform.add_toxic(proxy, toxic.clone()).await?;
    }
    Ok(Applied {
        proxy: proxy.to_string(),
        down,
        what,
    })
}

pub async fn heal<P: ProxyControl>(platform: &mut P, applied: Applied) -> Result<()> {
    platform.clear_toxics(&applied.proxy).await?;
    if applied.down {
        platform.set_down(&applied.proxy, false).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::fake::{Call, FakePlatform};

    #[tokio::test]
    async fn a_toxic_is_added_then_cleared() {
        let mut p = FakePlatform::default();
        let toxic = Toxic::Latency {
            latency: crate::units::Dur::secs(6),
            jitter: crate::units::Dur::default(),
            fraction: 0.5,
        };
        let applied = inject(&mut p, "payments", &toxic).await.unwrap();
        assert!(
            applied
                .what
                .starts_with("proxy payments: {\"kind\":\"latency\""),
            "{}",
            applied.what
        );
        heal(&mut p, applied).await.unwrap();
        assert_eq!(
            p.calls,
            vec![
                Call::AddToxic("payments".into(), toxic),
                Call::ClearToxics("payments".into())
            ]
        );
    }

    #[tokio::test]
    async fn down_takes_the_listener_away_and_heal_brings_it_back() {
        let mut p = FakePlatform::default();
        let applied = inject(&mut p, "db", &Toxic::Down {}).await.unwrap();
        heal(&mut p, applied).await.unwrap();
        assert_eq!(
            p.calls,
            vec![
                Call::SetDown("db".into(), true),
                Call::ClearToxics("db".into()),
                Call::SetDown("db".into(), false)
            ]
        );
    }

    #[tokio::test]
    async fn an_unknown_proxy_is_an_error_not_a_silent_no_op() {
        let mut p = FakePlatform {
            known_proxies: vec!["payments".into()],
            ..Default::default()
        };
        let err = inject(&mut p, "nope", &Toxic::Down {}).await.unwrap_err();
        assert!(err.to_string().contains("no fault proxy 'nope'"), "{err}");
    }
}
