//! Rolling updates, as a Kubernetes Deployment does them with maxSurge 1 and maxUnavailable 0:
//! start one replica of the new revision, wait until it is ready, only then terminate one old
//! replica, and repeat. A new replica that does not become ready within the progress deadline
//! stalls the rollout (the old replicas keep serving; the new one keeps crash-looping under its
//! supervisor). The driver works on a [`Fleet`], so it is tested here without processes.

use std::time::Duration;
use tokio::time::Instant;

/// The replicas of one service, as a rollout sees them.
pub trait Fleet {
    /// Replicas of older revisions that are running and not terminating, oldest first.
    fn old_replicas(&self) -> Vec<String>;
    /// Starts one replica of the new revision; returns its name.
    fn start_new(&mut self) -> Result<String, String>;
    fn is_ready(&self, name: &str) -> bool;
    /// Restarts so far and the last line of its log (evidence for a stalled rollout).
    fn crash_info(&self, name: &str) -> (u32, String);
    /// Begins terminating a replica (endpoint removal and SIGTERM); does not wait.
    fn terminate(&mut self, name: &str);
}

pub use crate::platform::RolloutOutcome;

/// Replaces every old replica with a new one, surge first. `poll` is how often readiness is checked.
pub async fn roll<F: Fleet>(
    fleet: &mut F,
    progress_deadline: Duration,
    poll: Duration,
) -> RolloutOutcome {
    let started = Instant::now();
    let mut old = fleet.old_replicas();
    let desired = old.len().max(1);
    for _ in 0..desired {
        let name = match fleet.start_new() {
            Ok(n) => n,
            Err(reason) => return RolloutOutcome::Failed { reason },
        };
        let since = Instant::now();
        while !fleet.is_ready(&name) {
            if since.elapsed() >= progress_deadline {
                let (restarts, last_log_line) = fleet.crash_info(&name);
                return RolloutOutcome::Stalled {
                    replica: name,
                    waited: since.elapsed(),
                    restarts,
                    last_log_line,
                };
            }
            tokio::time::sleep(poll).await;
        }
        if !old.is_empty() {
            let victim = old.remove(0);
            fleet.terminate(&victim);
        }
    }
    RolloutOutcome::Complete {
        took: started.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A fake fleet: new replicas become ready `ready_after` after they start (or never).
    struct FakeFleet {
        ready_after: Option<Duration>,
        replicas: BTreeMap<String, (bool, Option<Instant>)>, // name → (is new, started at)
        terminating: Vec<String>,
        log: Vec<String>,
        most_serving: usize,
        desired: usize,
        next: usize,
    }

    impl FakeFleet {
        fn new(old: usize, ready_after: Option<Duration>) -> Self {
            let replicas = (0..old)
                .map(|i| (format!("old-{i}"), (false, None)))
                .collect();
            FakeFleet {
                ready_after,
                replicas,
                terminating: vec![],
                log: vec![],
                most_serving: old,
                desired: old,
                next: 0,
            }
        }
        fn serving(&self) -> usize {
            self.replicas
                .keys()
                .filter(|n| !self.terminating.contains(n))
                .count()
        }
        fn ready_serving(&self) -> usize {
            self.replicas
                .keys()
                .filter(|n| !self.terminating.contains(n) && self.is_ready(n))
                .count()
        }
    }

    impl Fleet for FakeFleet {
        fn old_replicas(&self) -> Vec<String> {
            self.replicas
                .iter()
                .filter(|(n, (new, _))| !new && !self.terminating.contains(n))
                .map(|(n, _)| n.clone())
                .collect()
        }
        fn start_new(&mut self) -> Result<String, String> {
            let name = format!("new-{}", self.next);
            self.next += 1;
            self.replicas
                .insert(name.clone(), (true, Some(Instant::now())));
            self.most_serving = self.most_serving.max(self.serving());
            self.log.push(format!("start {name}"));
            Ok(name)
        }
        fn is_ready(&self, name: &str) -> bool {
            match self.replicas.get(name) {
                Some((false, _)) => true,
                Some((true, Some(t))) => self.ready_after.is_some_and(|d| t.elapsed() >= d),
                _ => false,
            }
        }
        fn crash_info(&self, _: &str) -> (u32, String) {
            (
                3,
                "startup failed: required environment variable PAYMENTS_URL is not set".into(),
            )
        }
        fn terminate(&mut self, name: &str) {
            // Never take a ready replica down before its replacement is ready.
            assert!(
                self.ready_serving() > self.desired,
                "terminating {name} would drop below {} ready replicas",
                self.desired
            );
            self.terminating.push(name.into());
            self.log.push(format!("terminate {name}"));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn surges_one_at_a_time_and_terminates_only_after_the_new_replica_is_ready() {
        let mut fleet = FakeFleet::new(2, Some(Duration::from_secs(2)));
        let outcome = roll(
            &mut fleet,
            Duration::from_secs(10),
            Duration::from_millis(100),
        )
        .await;
        assert!(
            matches!(outcome, RolloutOutcome::Complete { took } if took >= Duration::from_secs(4)),
            "{outcome:?}"
        );
        assert_eq!(
            fleet.log,
            [
                "start new-0",
                "terminate old-0",
                "start new-1",
                "terminate old-1"
            ]
        );
        assert_eq!(
            fleet.most_serving, 3,
            "at most one replica above the desired two (maxSurge 1)"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn stalls_after_the_progress_deadline_and_keeps_the_old_replicas() {
        let mut fleet = FakeFleet::new(2, None);
        let started = Instant::now();
        let outcome = roll(
            &mut fleet,
            Duration::from_secs(10),
            Duration::from_millis(100),
        )
        .await;
        let RolloutOutcome::Stalled {
            replica,
            restarts,
            last_log_line,
            waited,
        } = &outcome
        else {
            panic!("{outcome:?}")
        };
        assert_eq!(replica, "new-0");
        assert!(*waited >= Duration::from_secs(10) && started.elapsed() < Duration::from_secs(11));
        assert_eq!(*restarts, 3);
        assert!(last_log_line.contains("PAYMENTS_URL"));
        assert!(
            fleet.terminating.is_empty(),
            "no old replica was taken down"
        );
        assert!(outcome
            .describe()
            .starts_with("stalled: new-0 not ready after 10.0 s"));
    }
}
