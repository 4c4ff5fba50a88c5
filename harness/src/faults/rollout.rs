//! `rollout` and `rolling-restart`: a rolling update of a service to a changed revision (e.g.
//! without an env var), or with the same spec. A rollout that has not completed by the end of its
//! phase is rolled back at once (a bad rollout is not waited for); a restart is left to finish,
//! bounded by four progress deadlines, and rolled back only if it did not complete. With
//! `rollback_on_alert`, the rollout is watched like a deploy pipeline's analysis step: once the
//! alert fires (after the rollout began) it is rolled back at once, complete or not. Acts only
//! through [`RolloutDriver`].

use super::kind::{
    self, Check, Entry, Fault, Kind, Prediction, Problem, RequestFacts, SystemFacts,
};
use crate::checks::{self, secs, HOUR};
use crate::control::{RevisionChange, RolloutDriver, RolloutOutcome};
use crate::error::Result;
use crate::evidence::Evidence;
use crate::units::Dur;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::task::JoinHandle;

/// `{ kind = "rollout", service, ... }`: a rolling update of `service` to a revision with changed
/// env (e.g. a required variable removed). At heal, a rollout that did not complete is rolled back.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub service: String,
    #[serde(default)]
    pub remove_env: Vec<String>,
    #[serde(default)]
    pub set_env: BTreeMap<String, String>,
    #[serde(default = "progress_deadline")]
    pub progress_deadline: Dur,
    /// Roll back as soon as this alert fires while the phase lasts, as a deploy pipeline's
    /// analysis step does (Argo Rollouts, Flagger); the report shows the time to detect and
    /// the time to recover. Without it, a rollout that completed stays.
    pub rollback_on_alert: Option<String>,
}

/// How long a rollout (or restart) may go without progress: 30 s unless the fault says.
pub(super) fn progress_deadline() -> Dur {
    Dur::secs(30)
}

/// The check of `progress_deadline`, shared with `rolling-restart`.
pub(super) fn check_progress_deadline(d: Dur) -> std::result::Result<(), Problem> {
    kind::at(
        "progress_deadline",
        checks::duration("progress_deadline", d.get(), secs(1), HOUR),
    )
}

/// What a rollout or restart predicts: no answer lost.
pub(super) fn predicts() -> Prediction {
    Prediction {
        allowed: vec![],
        retry_after: vec![],
        why:
            "a rollout must not cost clients an answer: old replicas serve until new ones are ready",
        readiness_drops: false,
    }
}

impl Fault for Spec {
    fn kind(&self) -> &'static str {
        KIND.name
    }
    fn check(&self, system: &SystemFacts) -> std::result::Result<(), Problem> {
        if let Some(alert) = &self.rollback_on_alert {
            if !system.alerts.iter().any(|a| a == alert) {
                let mut names: Vec<&str> = system.alerts.iter().map(String::as_str).collect();
                names.sort();
                names.dedup();
                return Err(Problem::at(
                    "rollback_on_alert",
                    format!(
                        "rollback_on_alert names alert '{}', which is in no rule file of the system '{}' (alerts: {})",
                        alert.escape_debug(),
                        system.name,
                        names.join(", ")
                    ),
                ));
            }
        }
        check_progress_deadline(self.progress_deadline)?;
        for k in &self.remove_env {
            kind::at("remove_env", checks::env_name(k))?;
        }
        let service = system.service(&self.service);
        for (k, v) in &self.set_env {
            kind::at("set_env", checks::env_name(k))?;
            if let Some(s) = service {
                kind::at(
                    "set_env",
                    checks::template(&format!("set_env {k}"), v, &s.placeholders),
                )?;
            }
        }
        Ok(())
    }
    fn check_targets(&self, system: &SystemFacts, _: &[RequestFacts], _: &str) -> Check {
        kind::check_service(KIND.name, &self.service, system)
    }
    fn predicts(&self) -> Prediction {
        predicts()
    }
    fn service(&self) -> Option<&str> {
        Some(&self.service)
    }
}

impl Spec {
    /// The revision it rolls out.
    pub fn change(&self) -> RevisionChange {
        RevisionChange {
            remove_env: self.remove_env.clone(),
            set_env: self.set_env.clone(),
        }
    }
}

pub const KIND: Kind = Kind {
    name: "rollout",
    catalogue: |system| {
        (!system.services.is_empty()).then(|| Entry {
            parameters: "service, remove_env [..], set_env {..}, progress_deadline".into(),
            presets: vec![],
        })
    },
    example: |system| {
        system.services.first().map(|s| {
            format!(
                "kind = \"rollout\", service = \"{}\", set_env = {{ BROWNOUT_EXAMPLE = \"1\" }}",
                s.name
            )
        })
    },
};

pub struct InProgress {
    pub service: String,
    task: JoinHandle<RolloutOutcome>,
    /// Roll back at heal if it has not completed (a bad rollout); a restart is waited for.
    undo_unless_complete: bool,
    progress_deadline: Duration,
    /// Roll back as soon as this alert fires.
    pub rollback_on_alert: Option<String>,
    /// Started at (evidence ms), and whether it was rolled back on the alert already.
    started_ms: u64,
    rolled_back: bool,
}

/// Starts a rollout to `change`, or (`None`) a rolling restart with the same spec.
pub async fn inject<P: RolloutDriver>(
    platform: &mut P,
    service: &str,
    change: Option<&RevisionChange>,
    progress_deadline: Duration,
    evidence: &Evidence,
) -> Result<InProgress> {
    let restart = RevisionChange::default();
    let task = platform
        .start_rollout(
            service,
            change.unwrap_or(&restart),
            progress_deadline,
            evidence,
        )
        .await?;
    Ok(InProgress {
        service: service.to_string(),
        task,
        undo_unless_complete: change.is_some(),
        progress_deadline,
        rollback_on_alert: None,
        started_ms: evidence.now_ms(),
        rolled_back: false,
    })
}

/// Rolls `r` back once its `rollback_on_alert` alert has fired since the rollout began.
pub async fn watch<P: RolloutDriver>(platform: &mut P, r: &mut InProgress, evidence: &Evidence) {
    let Some(alert) = r.rollback_on_alert.clone() else {
        return;
    };
    if r.rolled_back {
        return;
    }
    let since = r.started_ms;
    let fired_ms = evidence.with(|d| {
        d.alerts
            .iter()
            .find(|a| {
                a.alert == alert
                    && a.t_ms >= since
                    && a.state == crate::evidence::AlertState::Firing
            })
            .map(|a| a.t_ms)
    });
    let Some(fired_ms) = fired_ms else {
        return;
    };
    r.rolled_back = true;
    evidence.event(format!(
        "{alert} firing {:.1} s after the rollout of {} began: rolling back (rollback_on_alert)",
        (fired_ms - since) as f64 / 1000.0,
        r.service
    ));
    if !r.task.is_finished() {
        r.task.abort();
    }
    platform.rollback(&r.service, evidence).await;
    evidence.rolled_back_on_alert(&r.service, &alert, since, fired_ms);
}

pub async fn heal<P: RolloutDriver>(platform: &mut P, r: InProgress, evidence: &Evidence) {
    if r.rolled_back {
        return;
    }
    let outcome = if r.undo_unless_complete {
        // A bad rollout is not waited for: whatever has not completed is undone now.
        if r.task.is_finished() {
            r.task.await.ok()
        } else {
            r.task.abort();
            None
        }
    } else {
        // A restart is left to finish (bounded by its progress deadline per replica).
        tokio::time::timeout(r.progress_deadline * 4, r.task)
            .await
            .ok()
            .and_then(|r| r.ok())
    };
    if !matches!(outcome, Some(RolloutOutcome::Complete { .. })) {
        platform.rollback(&r.service, evidence).await;
    }
}

pub fn describe(r: &InProgress) -> String {
    if r.undo_unless_complete {
        format!("rollout of {}", r.service)
    } else {
        format!("rolling restart of {}", r.service)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::fake::{Call, FakePlatform};

    fn without_payments() -> RevisionChange {
        RevisionChange {
            remove_env: vec!["PAYMENTS_URL".into()],
            ..Default::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_unfinished_rollout_is_rolled_back_at_heal_without_waiting() {
        let mut p = FakePlatform {
            rollout_takes: Duration::from_secs(3600),
            ..Default::default()
        };
        let ev = Evidence::new();
        let r = inject(
            &mut p,
            "checkout",
            Some(&without_payments()),
            Duration::from_secs(12),
            &ev,
        )
        .await
        .unwrap();
        assert_eq!(describe(&r), "rollout of checkout");
        let t0 = tokio::time::Instant::now();
        heal(&mut p, r, &ev).await;
        assert!(t0.elapsed() < Duration::from_secs(1));
        assert_eq!(
            p.calls,
            vec![
                Call::StartRollout("checkout".into(), "without PAYMENTS_URL".into()),
                Call::Rollback("checkout".into())
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_restart_is_waited_for_and_not_rolled_back_once_complete() {
        let mut p = FakePlatform {
            rollout_takes: Duration::from_secs(20),
            ..Default::default()
        };
        let ev = Evidence::new();
        let r = inject(&mut p, "checkout", None, Duration::from_secs(10), &ev)
            .await
            .unwrap();
        assert_eq!(describe(&r), "rolling restart of checkout");
        heal(&mut p, r, &ev).await;
        assert_eq!(
            p.calls,
            vec![Call::StartRollout(
                "checkout".into(),
                "restart (same spec)".into()
            )]
        );
        // One that outlasts four progress deadlines is rolled back.
        let mut p = FakePlatform {
            rollout_takes: Duration::from_secs(60),
            ..Default::default()
        };
        let r = inject(&mut p, "checkout", None, Duration::from_secs(10), &ev)
            .await
            .unwrap();
        heal(&mut p, r, &ev).await;
        assert_eq!(p.calls.last(), Some(&Call::Rollback("checkout".into())));
    }

    #[tokio::test(start_paused = true)]
    async fn a_rollout_with_rollback_on_alert_is_rolled_back_once_when_its_alert_fires() {
        use crate::evidence::AlertState;
        let mut p = FakePlatform {
            rollout_takes: Duration::from_secs(2),
            ..Default::default()
        };
        let ev = Evidence::new();
        // Firing before the rollout began: not the rollout's doing.
        ev.alert_state("CheckoutHigh5xxRatio", AlertState::Firing);
        ev.alert_state("CheckoutHigh5xxRatio", AlertState::Inactive);
        std::thread::sleep(Duration::from_millis(5));
        let change = RevisionChange {
            set_env: [("CATALOG_TABLE".to_string(), "items_v2".to_string())].into(),
            ..Default::default()
        };
        let mut r = inject(
            &mut p,
            "checkout",
            Some(&change),
            Duration::from_secs(12),
            &ev,
        )
        .await
        .unwrap();
        r.rollback_on_alert = Some("CheckoutHigh5xxRatio".into());
        tokio::time::sleep(Duration::from_secs(3)).await;
        std::thread::sleep(Duration::from_millis(5));
        // Another alert firing, or this one pending: nothing yet.
        ev.alert_state("CheckoutReplicaDown", AlertState::Firing);
        ev.alert_state("CheckoutHigh5xxRatio", AlertState::Pending);
        watch(&mut p, &mut r, &ev).await;
        assert_eq!(p.calls.len(), 1, "{:?}", p.calls);
        ev.alert_state("CheckoutHigh5xxRatio", AlertState::Firing);
        watch(&mut p, &mut r, &ev).await;
        watch(&mut p, &mut r, &ev).await;
        heal(&mut p, r, &ev).await;
        assert_eq!(
            p.calls,
            vec![
                Call::StartRollout("checkout".into(), "CATALOG_TABLE=items_v2".into()),
                Call::Rollback("checkout".into())
            ],
            "rolled back once, and not again at heal"
        );
        let rollbacks = ev.with(|d| d.rollbacks.clone());
        assert_eq!(rollbacks.len(), 1);
        assert_eq!(rollbacks[0].alert, "CheckoutHigh5xxRatio");
        assert!(rollbacks[0].alert_fired_ms >= rollbacks[0].rollout_started_ms);
        // Without rollback_on_alert the same firing alert changes nothing: a complete rollout stays.
        let mut p = FakePlatform {
            rollout_takes: Duration::from_secs(2),
            ..Default::default()
        };
        let mut r = inject(
            &mut p,
            "checkout",
            Some(&change),
            Duration::from_secs(12),
            &ev,
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        ev.alert_state("CheckoutHigh5xxRatio", AlertState::Inactive);
        ev.alert_state("CheckoutHigh5xxRatio", AlertState::Firing);
        watch(&mut p, &mut r, &ev).await;
        heal(&mut p, r, &ev).await;
        assert_eq!(p.calls.len(), 1, "{:?}", p.calls);
    }
}
