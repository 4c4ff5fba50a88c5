//! `requests`: nothing is done to the system: the fault is in the traffic, the load's `requests`
//! (each limited to the fault's phase with `during`), e.g. a malformed body or an oversized export.
//! Nothing to inject or heal: the load sends them while the phase lasts.
//!
//! It has no game-day catalogue entry: a game day's load is fixed when it starts, and a request
//! limited to a phase cannot be limited to a window that is only named when a fault is injected.

use super::kind::{Check, Fault, Kind, Prediction, Problem, RequestFacts, SystemFacts};
use serde::Deserialize;

/// `{ kind = "requests", requests = [...] }`: the load requests this phase adds.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub requests: Vec<String>,
}

impl Fault for Spec {
    fn kind(&self) -> &'static str {
        KIND.name
    }
    fn check(&self, _: &SystemFacts) -> std::result::Result<(), Problem> {
        Ok(())
    }
    /// At least one request, each of the load's and limited to this phase.
    fn check_targets(&self, _: &SystemFacts, requests: &[RequestFacts], phase: &str) -> Check {
        if self.requests.is_empty() {
            return Err("fault requests names no request: list the load requests this phase adds, e.g. requests = [\"bad-coupon\"]".into());
        }
        for r in &self.requests {
            match requests.iter().find(|q| q.name == *r) {
                None => {
                    return Err(format!(
                        "fault requests names request '{r}', which [load] does not have"
                    ))
                }
                Some(q) if !q.during.iter().any(|d| d == phase) => {
                    return Err(format!("fault requests names request '{r}', which is not limited to this phase: add during = [\"{phase}\"] to it (otherwise it is sent in every phase, and is no fault of this one)"))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
    fn predicts(&self) -> Prediction {
        Prediction {
            allowed: vec![400, 404, 409, 413, 422, 500],
            retry_after: vec![],
            why: "bad requests get a 4xx, or a 500 from the app with an error id; never a dropped connection (502)",
            readiness_drops: false,
        }
    }
    fn adds_requests(&self) -> &[String] {
        &self.requests
    }
}

/// The name of the request [`KIND`]'s example adds: `brownout new` names a request after the
/// last segment of its path, so `--request 'POST /api/bad-request {}'` is the one.
pub const EXAMPLE_REQUEST: &str = "bad-request";

pub const KIND: Kind = Kind {
    name: "requests",
    catalogue: |_| None,
    example: |_| {
        Some(format!(
            "kind = \"requests\", requests = [\"{EXAMPLE_REQUEST}\"]"
        ))
    },
};

/// The description of the fault in place.
pub fn describe(requests: &[String]) -> String {
    format!("requests: {} sent by the load", requests.join(", "))
}
