//! `proxy`: a toxic on one of the system's fault proxies (latency, timeout, reset, refuse,
//! bandwidth), or the proxy's listener taken away (`down`). Healed by removing the toxics and
//! bringing the listener back. Acts only through [`ProxyControl`].

use crate::error::Result;
use crate::platform::ProxyControl;
use crate::spec::ToxicSpec;

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
    toxic: &ToxicSpec,
) -> Result<Applied> {
    let what = format!(
        "proxy {proxy}: {}",
        serde_json::to_string(toxic).unwrap_or_else(|_| format!("{toxic:?}"))
    );
    let down = match toxic.to_toxic() {
        Some(t) => {
            platform.add_toxic(proxy, t).await?;
            false
        }
        None => {
            platform.set_down(proxy, true).await?;
            true
        }
    };
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
    use crate::faults::toxic::{Toxic, ToxicKind};
    use std::time::Duration;

    #[tokio::test]
    async fn a_toxic_is_added_then_cleared() {
        let mut p = FakePlatform::default();
        let spec = ToxicSpec::Latency {
            latency: crate::spec::Dur::secs(6),
            jitter: crate::spec::Dur::default(),
            fraction: 0.5,
        };
        let applied = inject(&mut p, "payments", &spec).await.unwrap();
        assert!(
            applied
                .what
                .starts_with("proxy payments: {\"kind\":\"latency\""),
            "{}",
            applied.what
        );
        heal(&mut p, applied).await.unwrap();
        let toxic = Toxic {
            kind: ToxicKind::Latency {
                latency: Duration::from_secs(6),
                jitter: Duration::ZERO,
            },
            fraction: 0.5,
        };
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
        let applied = inject(&mut p, "db", &ToxicSpec::Down {}).await.unwrap();
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
        let err = inject(&mut p, "nope", &ToxicSpec::Down {})
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no fault proxy 'nope'"), "{err}");
    }
}
