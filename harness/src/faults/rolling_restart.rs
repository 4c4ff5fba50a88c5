//! `rolling-restart`: a rolling restart of a service under load (a rollout of the same spec):
//! every replica gets SIGTERM and its grace period, after its replacement is ready. Left to
//! finish at heal (bounded by four progress deadlines), rolled back only if it did not complete.
//! Shares the rollout machinery ([`super::rollout`]).

use super::kind::{
    self, Check, Entry, Fault, Kind, Prediction, Preset, Problem, RequestFacts, SystemFacts,
};
use super::rollout::{check_progress_deadline, progress_deadline};
use crate::units::Dur;
use serde::Deserialize;

/// `{ kind = "rolling-restart", service, progress_deadline }`.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub service: String,
    #[serde(default = "progress_deadline")]
    pub progress_deadline: Dur,
}

impl Fault for Spec {
    fn kind(&self) -> &'static str {
        KIND.name
    }
    fn check(&self, _: &SystemFacts) -> std::result::Result<(), Problem> {
        check_progress_deadline(self.progress_deadline)
    }
    fn check_targets(&self, system: &SystemFacts, _: &[RequestFacts], _: &str) -> Check {
        kind::check_service(KIND.name, &self.service, system)
    }
    fn predicts(&self) -> Prediction {
        super::rollout::predicts()
    }
    fn service(&self) -> Option<&str> {
        Some(&self.service)
    }
}

pub const KIND: Kind = Kind {
    name: "rolling-restart",
    catalogue: |system| {
        (!system.services.is_empty()).then(|| Entry {
            parameters: "service, progress_deadline (default as in a scenario)".into(),
            presets: system
                .services
                .iter()
                .map(|s| Preset {
                    name: format!("restart-{}", s.name),
                    fault: serde_json::json!({"kind": "rolling-restart", "service": s.name}),
                })
                .collect(),
        })
    },
    example: |system| {
        system
            .services
            .first()
            .map(|s| format!("kind = \"rolling-restart\", service = \"{}\"", s.name))
    },
};
