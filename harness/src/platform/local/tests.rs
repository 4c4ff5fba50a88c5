//! The local platform's own tests: its fault controls before anything is deployed, and what a
//! deploy that fails half way leaves behind (real PostgreSQL, mtail and `fault-proxy` processes,
//! found by the paths on their command lines).

use super::stack::{Stack, StackDirs};
use super::*;
use crate::fault_proxy::Toxic;
use crate::platform::{
    CpuLimiter, DatabaseControl, DatabaseHandle, MemoryLimiter, ProxyControl, RevisionChange,
    RolloutDriver, VolumeFiller,
};
use std::path::{Path, PathBuf};

/// A system file in `dir`: one service running `{bin_dir}/<program>`, a fault proxy in front of
/// it, and a database if `database`.
fn system(dir: &Path, program: &str, database: bool) -> System {
    let rules = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios/alerts/edge.rules.yml")
        .canonicalize()
        .unwrap();
    let database = if database {
        "[database]\nname = \"shop\"\n"
    } else {
        ""
    };
    let text = format!(
        r#"
name = "tiny"
{database}
[[services]]
name = "plain"
command = ["{{bin_dir}}/{program}"]
replicas = 1
grace_period = "3s"
env = {{ LISTEN_ADDR = "{{listen_addr}}" }}

[[proxies]]
name = "to-plain"
upstream = "plain"

[ingress]
service = "plain"

[prometheus]
rule_files = ["{}"]
"#,
        rules.display()
    );
    let path = dir.join("tiny.toml");
    std::fs::write(&path, text).unwrap();
    crate::spec::load_system(&path).unwrap()
}

fn options(bin_dir: &Path, log_dir: &Path) -> DeployOptions {
    DeployOptions {
        run_id: "local-test".into(),
        bugs: Vec::new(),
        bin_dir: bin_dir.to_path_buf(),
        log_dir: log_dir.to_path_buf(),
        seed: 1,
    }
}

/// The running processes whose command line names a path under `dir`.
fn processes_under(dir: &Path) -> Vec<String> {
    let dir = dir.display().to_string();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let state = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        // A zombie (state Z) has exited; only its parent has not collected it yet.
        let zombie = state
            .rsplit_once(") ")
            .is_some_and(|(_, s)| s.starts_with('Z'));
        if cmdline.contains(&dir) && !zombie {
            found.push(cmdline);
        }
    }
    found
}

/// The workspace's binaries (`fault-proxy`), built beside this test binary's `deps/`.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    assert!(
        dir.join("fault-proxy").is_file(),
        "fault-proxy is not built in {}: run `cargo build --release --workspace --bins` first (just test does)",
        dir.display()
    );
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn before_deploy_every_control_is_an_error_or_a_no_op_not_a_panic() {
    let mut p = LocalPlatform::new();
    let evidence = Evidence::new();
    let err = |r: Result<()>| r.unwrap_err().to_string();
    let toxic = Toxic::Refuse { fraction: 1.0 };
    assert!(err(p.add_toxic("to-plain", toxic).await).contains("no fault proxy is running"));
    assert!(err(p.clear_toxics("to-plain").await).contains("no fault proxy is running"));
    assert!(err(p.set_down("to-plain", true).await).contains("no fault proxy is running"));
    assert!(err(p.stop_database(&evidence).await).contains("needs a [database]"));
    assert!(err(p.start_database(&evidence).await).contains("needs a [database]"));
    let limit = p.limit_memory("plain", Some(1 << 20), &evidence).await;
    assert!(err(limit).contains("nothing is deployed"));
    let fill = p.fill_volume("plain", "data", &evidence).await;
    assert!(err(fill).contains("not deployed"));
    let change = RevisionChange {
        remove_env: Vec::new(),
        set_env: BTreeMap::new(),
    };
    let rollout = p
        .start_rollout("plain", &change, Duration::from_secs(1), &evidence)
        .await;
    assert!(rollout
        .unwrap_err()
        .to_string()
        .contains("rollout before deploy"));
    p.rollback("plain", &evidence).await;
    p.free_volume("plain", "data", &evidence).await;
    assert!(p.connect_database().await.unwrap().is_none());
    assert!(p.edge_counts().await.is_none());
    assert!(p.restarts().is_empty());
    assert_eq!(p.ingress_settings().retries, "n/a");
    p.teardown().await;
    p.teardown().await;
}

/// PostgreSQL and mtail start, the fault-proxy program cannot (it is not built where the options
/// say): the error is the proxies', and neither of the two that started is left running.
#[tokio::test(flavor = "multi_thread")]
async fn a_stack_that_fails_to_start_stops_the_parts_that_started() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let system = system(root, "plain-app", true);
    let empty_bin = root.join("bin");
    let sub = |name: &str| {
        let p = root.join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    };
    let (pg, proxies, mtail) = (sub("postgres"), sub("fault-proxy"), sub("mtail"));
    let edge_log = root.join("ingress-edge.log");
    std::fs::write(&edge_log, "").unwrap();
    let dirs = StackDirs {
        postgres: &pg,
        proxies: &proxies,
        mtail: &mtail,
        edge_log: &edge_log,
    };
    let evidence = Evidence::new();
    let err = Stack::start(&system, &options(&empty_bin, root), dirs, &evidence)
        .await
        .err()
        .expect("no fault-proxy program, no stack")
        .to_string();
    assert!(err.contains("the fault-proxy program is not at"), "{err}");
    // Both did start (the evidence says so), and were stopped before the error came back.
    let events = evidence.with(|d| d.events.iter().map(|e| e.what.clone()).collect::<Vec<_>>());
    assert!(
        events.iter().any(|e| e.starts_with("postgres ready")),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("edge exporter (mtail)")),
        "{events:?}"
    );
    assert_eq!(processes_under(root), Vec::<String>::new());
}

/// The stack comes up, the service cannot (its program does not exist): deploy fails with the
/// service's error, what had started is the deployed state (the fault proxies answer), and
/// teardown stops all of it and removes the work dir.
#[tokio::test(flavor = "multi_thread")]
async fn a_deploy_that_fails_half_way_is_torn_down_whole() {
    let dir = tempfile::tempdir().unwrap();
    let system = system(dir.path(), "no-such-app", false);
    let evidence = Evidence::new();
    let mut p = LocalPlatform::new();
    let err = p
        .deploy(&system, &options(&bin_dir(), dir.path()), &evidence)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no-such-app does not exist"), "{err}");
    let workdir = p.deployed.as_ref().unwrap().workdir.path().to_path_buf();
    assert!(
        !processes_under(&workdir).is_empty(),
        "the fault-proxy program runs"
    );
    assert_eq!(p.deployed.as_ref().unwrap().services.len(), 1);
    let err = p.add_toxic("nope", Toxic::Refuse { fraction: 1.0 }).await;
    assert!(err.unwrap_err().to_string().contains("no proxy 'nope'"));
    p.add_toxic("to-plain", Toxic::Refuse { fraction: 1.0 })
        .await
        .unwrap();
    p.teardown().await;
    assert!(p.deployed.is_none());
    assert_eq!(processes_under(&workdir), Vec::<String>::new());
    assert!(!workdir.exists(), "{} is left", workdir.display());
    let after = p
        .add_toxic("to-plain", Toxic::Refuse { fraction: 1.0 })
        .await;
    assert!(after
        .unwrap_err()
        .to_string()
        .contains("no fault proxy is running"));
}

/// The quota of each running replica of `service` as the kernel holds it (µs per 100 ms; `None`:
/// none), and whether its process is in that cgroup (a replica being terminated may have exited).
fn cpu_quotas(p: &LocalPlatform, service: &str) -> Vec<(String, Option<u64>, bool)> {
    let deployed = p.deployed.as_ref().unwrap();
    let cgroups = deployed.ctx.cpu_cgroups.as_ref().unwrap();
    let svc = deployed.service(service).unwrap();
    let names: Vec<String> = svc
        .lock()
        .unwrap()
        .replicas
        .iter()
        .map(|r| r.handle.name.clone())
        .collect();
    names
        .into_iter()
        .map(|n| {
            let dir = cgroups.replica(&n).unwrap();
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
            let quota = cgroups.quota(&dir).unwrap();
            (n, quota, !procs.trim().is_empty())
        })
        .collect()
}

/// `cpu-limit` on the local platform, for real: a deployed replica's CPU cgroup gets the quota
/// (0.1 CPU: 10 ms per 100 ms period), a replica started while it lasts (a rolling restart's)
/// gets it too, and healing lifts it (`max`). Needs root and a cpu controller.
#[tokio::test(flavor = "multi_thread")]
async fn cpu_limit_quotas_every_replica_running_or_started_later_until_lifted() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: CPU limits need root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let system = system(dir.path(), "plain-app", false);
    let evidence = Evidence::new();
    let mut p = LocalPlatform::new();
    p.deploy(&system, &options(&bin_dir(), dir.path()), &evidence)
        .await
        .unwrap();
    let first = cpu_quotas(&p, "plain");
    assert!(
        !first.is_empty() && first.iter().all(|(_, q, runs)| q.is_none() && *runs),
        "{first:?}"
    );
    p.limit_cpu("plain", Some(100), &evidence).await.unwrap();
    let limited = cpu_quotas(&p, "plain");
    assert!(
        limited.iter().all(|(_, q, _)| *q == Some(10_000)),
        "{limited:?}"
    );
    // A new revision's replica is started while the limit lasts: limited from its start.
    let change = RevisionChange::default();
    let rollout = p
        .start_rollout("plain", &change, Duration::from_secs(30), &evidence)
        .await
        .unwrap();
    assert!(matches!(
        rollout.await.unwrap(),
        crate::platform::RolloutOutcome::Complete { .. }
    ));
    let new: Vec<_> = cpu_quotas(&p, "plain")
        .into_iter()
        .filter(|(n, _, _)| !first.iter().any(|(f, _, _)| f == n))
        .collect();
    assert!(
        !new.is_empty() && new.iter().all(|(_, q, runs)| *q == Some(10_000) && *runs),
        "{new:?} (before: {first:?})"
    );
    p.limit_cpu("plain", None, &evidence).await.unwrap();
    let lifted = cpu_quotas(&p, "plain");
    assert!(lifted.iter().all(|(_, q, _)| q.is_none()), "{lifted:?}");
    p.teardown().await;
}

/// The log janitor on a deployed stack (H-logs): under a 64 KiB per-file cap checked every
/// 100 ms, nginx's edge log is rotated several times while requests go through the real nginx,
/// and the real mtail still counts every answer exactly once (rename and SIGUSR1 followed as a
/// rotation: none lost, none counted twice); the cuts and the totals are in the evidence.
#[tokio::test(flavor = "multi_thread")]
async fn the_edge_metrics_count_every_answer_once_across_log_rotations() {
    let dir = tempfile::tempdir().unwrap();
    let system = system(dir.path(), "plain-app", false);
    let evidence = Evidence::new();
    let caps = logcap::LogCaps {
        per_file: 64 * 1024,
        per_run: 4 * 1024 * 1024,
    };
    let mut p = LocalPlatform {
        log_policy: Some((caps, Duration::from_millis(100))),
        ..LocalPlatform::new()
    };
    let endpoints = p
        .deploy(&system, &options(&bin_dir(), dir.path()), &evidence)
        .await
        .unwrap();
    let before: u64 = p
        .edge_counts()
        .await
        .unwrap()
        .iter()
        .map(|c| c.answers)
        .sum();
    // 6,000 answers, ~47 bytes each in the edge log: about four rotations of it.
    const SENT: u64 = 6000;
    let client = reqwest::Client::new();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (client, url) = (client.clone(), endpoints.ingress_url.clone());
            tokio::spawn(async move {
                for _ in 0..SENT / 8 {
                    client.get(format!("{url}/")).send().await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let counted = loop {
        let n: u64 = p
            .edge_counts()
            .await
            .unwrap()
            .iter()
            .map(|c| c.answers)
            .sum();
        if n >= before + SENT || Instant::now() > deadline {
            break n - before;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // A moment more: a line counted twice would show now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let later: u64 = p
        .edge_counts()
        .await
        .unwrap()
        .iter()
        .map(|c| c.answers)
        .sum();
    p.teardown().await;
    let data = evidence.finish();
    let rotations = data
        .log_cuts
        .iter()
        .filter(|c| c.file == nginx::EDGE_LOG)
        .count();
    assert!(
        rotations >= 2,
        "edge log rotated {rotations} times: {:?}",
        data.log_cuts
    );
    assert_eq!(counted, SENT, "mtail counted {counted} of {SENT} answers");
    assert_eq!(later - before, SENT, "counted more than once");
    let usage = data.log_usage.expect("the totals are recorded at teardown");
    assert!(usage.kept_bytes <= caps.per_run, "{usage:?}");
    assert!(usage.dropped_bytes > 0, "{usage:?}");
}
