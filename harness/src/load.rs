//! Load with goose, embedded. A steady offered rate (goose's request throttle) with enough users
//! that slow answers do not starve it, a client timeout, telnet/websocket controllers off, users all
//! started in the first second, and a run time that bounds it even if nobody stops it; the runner
//! stops it earlier through goose's killswitch. (goose 0.19's WebSocket controller is off unless
//! asked for.) Every response is recorded in the evidence.

use crate::error::{BrownoutError, Result};
use crate::evidence::{Evidence, Layer, ResponseRecord};
use crate::spec::{Load, RequestSpec};
use goose::prelude::*;
use std::sync::Arc;
use std::time::Duration;

/// A retry waits the answer's Retry-After, but never longer than this.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(2);

/// Header a response must carry to count as made by the app (not by the ingress).
pub const REPLICA_HEADER: &str = "x-brownout-replica";

pub struct LoadRun {
    task: tokio::task::JoinHandle<Result<()>>,
}

/// Starts the load against `base_url`; it stops by itself after `max_run` at the latest.
pub fn start(
    base_url: &str,
    load: &Load,
    evidence: Evidence,
    max_run: Duration,
) -> Result<LoadRun> {
    goose::reset_killswitch();
    let args: Vec<String> = vec![
        "--host".into(),
        base_url.into(),
        "--users".into(),
        load.users.to_string(),
        "--increase-rate".into(),
        load.users.to_string(),
        "--run-time".into(),
        format!("{}s", max_run.as_secs().max(1)),
        "--throttle-requests".into(),
        load.rate.to_string(),
        "--timeout".into(),
        format!("{}", load.timeout.as_secs_f64()),
        "--no-telnet".into(),
        "--no-reset-metrics".into(),
        "--no-print-metrics".into(),
        "--no-error-summary".into(),
        "--quiet".into(),
    ];
    let config = goose::config::GooseConfiguration::parse_args_default(&args)
        .map_err(|e| BrownoutError::Environment(format!("goose configuration: {e}")))?;
    let mut scenario = scenario!("brownout");
    for (index, req) in load.requests.iter().enumerate() {
        let req = Arc::new(req.clone());
        let ev = evidence.clone();
        let tx = Transaction::new(Arc::new(move |user: &mut GooseUser| {
            let (req, ev) = (req.clone(), ev.clone());
            Box::pin(async move { send(user, index, &req, &ev).await })
        }))
        .set_name(&load.requests[index].name)
        .set_weight(load.requests[index].weight.max(1))
        .map_err(|e| BrownoutError::BadInput(format!("load request weight: {e}")))?;
        scenario = scenario.register_transaction(tx);
    }
    let attack = GooseAttack::initialize_with_config(config)
        .map_err(|e| BrownoutError::Environment(format!("goose: {e}")))?
        .register_scenario(scenario);
    let task = tokio::spawn(async move {
        attack
            .execute()
            .await
            .map(|_| ())
            .map_err(|e| BrownoutError::Environment(format!("goose load failed: {e}")))
    });
    Ok(LoadRun { task })
}

impl LoadRun {
    /// Stops the load through goose's killswitch and waits for the users to finish.
    pub async fn stop(self) -> Result<()> {
        goose::trigger_killswitch("brownout: scenario finished");
        match tokio::time::timeout(Duration::from_secs(30), self.task).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(BrownoutError::Environment(format!("load task failed: {e}"))),
            Err(_) => Err(BrownoutError::Environment(
                "load did not stop within 30 s".into(),
            )),
        }
    }
}

async fn send(
    user: &mut GooseUser,
    index: usize,
    req: &RequestSpec,
    ev: &Evidence,
) -> TransactionResult {
    let method = match req.method.to_ascii_uppercase().as_str() {
        "POST" => GooseMethod::Post,
        "PUT" => GooseMethod::Put,
        "DELETE" => GooseMethod::Delete,
        "PATCH" => GooseMethod::Patch,
        "HEAD" => GooseMethod::Head,
        _ => GooseMethod::Get,
    };
    let key = req.idempotency_key.then(|| uuid_like(user));
    let max_attempts = 1 + req.retry.as_ref().map_or(0, |r| r.max);
    for attempt in 1..=max_attempts {
        let mut builder = user.get_request_builder(&method, &req.path)?;
        if let Some(k) = &key {
            builder = builder.header("Idempotency-Key", k.as_str());
        }
        if let Some(body) = &req.body {
            builder = builder
                .header("content-type", "application/json")
                .body(body.clone());
        }
        let goose_request = GooseRequest::builder()
            .method(method)
            .path(req.path.as_str())
            .set_request_builder(builder)
            .build();
        let response = user.request(goose_request).await?;
        let latency_ms = response.request.response_time;
        let t_ms = ev.now_ms().saturating_sub(latency_ms);
        let mut retry_wait = None;
        let record = match &response.response {
            Ok(r) => {
                let replica = r
                    .headers()
                    .get(REPLICA_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let status = r.status().as_u16();
                if attempt < max_attempts
                    && req.retry.as_ref().is_some_and(|rt| rt.on.contains(&status))
                {
                    let secs = r
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<f64>().ok())
                        .unwrap_or(1.0);
                    retry_wait = Some(Duration::from_secs_f64(
                        secs.clamp(0.0, MAX_RETRY_WAIT.as_secs_f64()),
                    ));
                }
                ResponseRecord {
                    t_ms,
                    phase: ev.phase_at(t_ms),
                    request: index,
                    status,
                    latency_ms,
                    layer: if replica.is_some() {
                        Layer::App
                    } else {
                        Layer::Ingress
                    },
                    replica,
                    retry_after: r.headers().contains_key("retry-after"),
                }
            }
            Err(_) => ResponseRecord {
                t_ms,
                phase: ev.phase_at(t_ms),
                request: index,
                status: 0,
                latency_ms,
                layer: Layer::Client,
                replica: None,
                retry_after: false,
            },
        };
        let acknowledged = (200..300).contains(&record.status);
        ev.response(record);
        if acknowledged {
            if let Some(k) = &key {
                ev.acknowledged(k.clone());
            }
        }
        match retry_wait {
            Some(wait) => tokio::time::sleep(wait).await,
            None => break,
        }
    }
    Ok(())
}

/// A unique key per request: the user's index, its request count and a random part.
fn uuid_like(user: &GooseUser) -> String {
    format!(
        "bo-{}-{:016x}",
        user.weighted_users_index,
        rand::random::<u64>()
    )
}
