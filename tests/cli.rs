//! Fast command-line tests of `brownout`: validation of deliberately broken files (one precise
//! error each, exit 2; `tests/fixtures/broken/`), the standing expectation, `--system`, listing, bad arguments, missing system programs (exit 3), and the alert
//! rule files passing `promtool check rules`.

mod support;
use std::path::PathBuf;
use std::process::{Command, Output};
use support::{brownout, root, BROWNOUT};

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn shipped_scenarios_validate() {
    let out = brownout(&["validate"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for name in [
        "disk-full",
        "missing-env",
        "pool-exhaustion",
        "sigterm-grace",
        "slow-upstream",
    ] {
        assert!(
            text(&out).contains(&format!("ok    scenarios/{name}.toml")),
            "{}",
            text(&out)
        );
    }
}

#[test]
fn each_broken_file_gets_one_precise_error() {
    let cases = [
        ("malformed.toml", "malformed.toml:2:34: invalid basic string"),
        ("unknown-key.toml", "unknown-key.toml:6:1: unknown field `burst`, expected one of `rate`, `max_in_flight`, `timeout`, `requests`"),
        ("unknown-fault.toml", "unknown-fault.toml:13:18: unknown variant `cpu-hog`, expected one of `pool-exhaustion`, `rollout`, `rolling-restart`, `proxy`, `disk-full`"),
        ("unknown-expectation.toml", "unknown-expectation.toml:16:8: unknown variant `good-vibes`"),
        ("missing-phase.toml", "missing-phase.toml:17:10: expectation 'no-5xx' refers to phase 'chaos', which does not exist (phases: baseline)"),
        ("bad-duration.toml", "bad-duration.toml:12:7: 'soon' is not a duration"),
        ("impossible-duration.toml", "impossible-duration.toml:12:7: phase duration '0s' is impossible"),
        ("missing-system.toml", "missing-system.toml:3:10: system file"),
        ("duplicate-id.toml", "duplicate-id.toml:21:6: expectation id 'same' is used twice"),
        ("silent-outage-twice.toml", "silent-outage-twice.toml:4:26: silent_outages_allowed opts out of no-silent-outage, but expectation 'no-silent-outage' declares it: keep one of the two"),
        ("silent-outage-no-reason.toml", "silent-outage-no-reason.toml:4:26: silent_outages_allowed needs a reason"),
        ("bad-failure-share.toml", "bad-failure-share.toml:16:17: expectation 'no-silent-outage': failure_share 5 must be above 0 and below 1 (0.02 is 2%)"),
        ("reserved-id.toml", "reserved-id.toml:15:6: expectation id 'no-silent-outage' is reserved for the standing expectation"),
        ("integrity-without-check.toml", "integrity-without-check.toml:14:1: expectation 'no-lost-orders' checks data integrity, but the system 'plain' declares no [integrity] (see the README)"),
        ("bad-toxic-duration.toml", "bad-toxic-duration.toml:17:85: 'fast' is not a duration"),
        ("bad-pre-stop.toml", "bad-pre-stop.toml:16:8: service 'checkout': pre_stop sleep 15s must be shorter than grace_period 10s (it counts inside it)"),
        ("catches-unknown-bug.toml", "catches-unknown-bug.toml:21:1: catches: 'no-such-bug' is not a bug of system 'checkout' (bugs: no-acquire-timeout,"),
        ("catches-unknown-id.toml", "catches-unknown-id.toml:21:12: catches: bug 'no-drain' lists 'helld', which is no expectation of this scenario (ids: held, no-silent-outage)"),
        ("catches-nothing.toml", "catches-nothing.toml:21:12: catches: bug 'no-drain' lists no expectation"),
        ("bad-regression.toml", "bad-regression.toml:21:7: '25%' is not a latency tolerance: write \"+25%\" or \"+200ms\""),
    ];
    for (file, expected) in cases {
        let path = format!("tests/fixtures/broken/{file}");
        let out = brownout(&["validate", &path]);
        assert_eq!(out.status.code(), Some(2), "{file}: {}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let errors: Vec<&str> = stdout.lines().filter(|l| l.starts_with("error ")).collect();
        assert_eq!(errors.len(), 1, "{file}: exactly one error: {stdout}");
        assert!(
            errors[0].contains(expected),
            "{file}: expected «{expected}» in «{}»",
            errors[0]
        );
    }
    // A whole folder: every file reported, exit 2.
    let out = brownout(&["validate", "tests/fixtures/broken"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("error "))
            .count(),
        cases.len()
    );
}

#[test]
fn every_scenario_gets_the_standing_no_silent_outage_expectation() {
    // 9 declared in pool-exhaustion.toml, plus the standing one.
    let out = brownout(&["validate", "scenarios/pool-exhaustion.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("10 expectations"), "{}", text(&out));
}

#[test]
fn run_on_another_system_file_that_does_not_exist_is_bad_input() {
    let out = brownout(&["run", "slow-upstream", "--system", "no/such/system.toml"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("--system no/such/system.toml: no such file"),
        "{}",
        text(&out)
    );
}

#[test]
fn list_shows_each_scenario_with_its_summary() {
    let out = brownout(&["list"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out).contains("pool-exhaustion      Locks hold every pooled DB connection"),
        "{}",
        text(&out)
    );
}

#[test]
fn unknown_scenario_and_unknown_bug_are_bad_input() {
    let out = brownout(&["run", "no-such-scenario"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("unknown scenario 'no-such-scenario'"),
        "{}",
        text(&out)
    );
    let out = brownout(&["run", "pool-exhaustion", "--bug", "made-up"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out)
            .contains("unknown bug 'made-up' for system 'checkout' (known: no-acquire-timeout"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_missing_program_is_an_environment_error_naming_the_fix() {
    let reports = tempfile::tempdir().unwrap();
    let out = Command::new(BROWNOUT)
        .args([
            "run",
            "pool-exhaustion",
            "--reports-dir",
            reports.path().to_str().unwrap(),
        ])
        .env("BROWNOUT_PROMETHEUS", "/nonexistent/prometheus")
        .current_dir(root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("BROWNOUT_PROMETHEUS points at /nonexistent/prometheus"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("install it with: sudo apt-get install"),
        "{}",
        text(&out)
    );
}

#[test]
fn alert_rules_pass_promtool() {
    let promtool =
        harness::platform::local::tools::find(&harness::platform::local::tools::PROMTOOL)
            .expect("promtool installed (scripts/install-deps.sh)");
    let rules: Vec<PathBuf> = std::fs::read_dir(root().join("scenarios/alerts"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .collect();
    assert!(!rules.is_empty());
    let out = Command::new(promtool)
        .arg("check")
        .arg("rules")
        .args(&rules)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

/// The fault proxy as a program: it prints where it listens, its control API answers with the
/// token and refuses without it, and SIGTERM stops it cleanly.
#[tokio::test(flavor = "multi_thread")]
async fn the_fault_proxy_program_serves_its_control_api_behind_a_token() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t0ken\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fault-proxy"))
        .args(["--proxy", "payments=127.0.0.1:9", "--token-file"])
        .arg(&token)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addrs: serde_json::Value = serde_json::from_str(&line).unwrap();
    let url = format!("http://{}/proxies", addrs["control"].as_str().unwrap());
    let client = reqwest::Client::new();
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let list: serde_json::Value = client
        .get(&url)
        .bearer_auth("t0ken")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list[0]["name"], "payments");
    assert_eq!(list[0]["listen"], addrs["proxies"]["payments"]);
    assert_eq!(list[0]["upstreams"], serde_json::json!(["127.0.0.1:9"]));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
}

/// The Kubernetes platforms refuse before touching anything: kind without docker or kind is an
/// environment problem (exit 3, naming how to install each); another cluster needs its context
/// named twice (exit 2). With the programs present but the cluster failing to come up, the run
/// stops with kind's own error quoted (exit 3).
#[test]
fn kubernetes_platforms_refuse_clearly_before_anything_runs() {
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(BROWNOUT)
        .args(["run", "pool-exhaustion", "--platform", "kind"])
        .current_dir(root())
        .env("PATH", empty.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    for hint in [
        "docker is not installed",
        "apt-get install docker.io",
        "kind is not installed",
        "sigs.k8s.io/kind",
    ] {
        assert!(text(&out).contains(hint), "{hint}: {}", text(&out));
    }

    let out = brownout(&[
        "run",
        "pool-exhaustion",
        "--platform",
        "kubernetes",
        "--context",
        "prod",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("--allow-cluster prod"),
        "{}",
        text(&out)
    );

    // Programs named docker and kind that exist, where kind cannot create the cluster (as here:
    // no node image can be pulled): past the preflight, the run quotes kind's error.
    let fake = tempfile::tempdir().unwrap();
    let scripts = [
        ("docker", "#!/bin/sh\nexit 0\n"),
        (
            "kind",
            "#!/bin/sh\ncase \"$1 $2\" in\n  'get clusters') echo 'No kind clusters found.' >&2; exit 0;;\n  'create cluster') echo 'ERROR: failed to create cluster: failed to pull image \"kindest/node:v1.37.0\"' >&2; exit 1;;\nesac\nexit 0\n",
        ),
    ];
    for (p, script) in scripts {
        let f = fake.path().join(p);
        std::fs::write(&f, script).unwrap();
        std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let reports = tempfile::tempdir().unwrap();
    let out = Command::new(BROWNOUT)
        .args(["run", "pool-exhaustion", "--platform", "kind"])
        .current_dir(root())
        .env("PATH", fake.path())
        .env("BROWNOUT_REPORTS", reports.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    for said in [
        "`kind create cluster --config kind-config/kind.yaml --wait 180s` failed",
        "failed to pull image",
    ] {
        assert!(text(&out).contains(said), "{said}: {}", text(&out));
    }

    // `clean` with no kind cluster has nothing to delete; without docker/kind it refuses as run does.
    let out = Command::new(BROWNOUT)
        .args(["clean", "--platform", "kind"])
        .current_dir(root())
        .env("PATH", fake.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("0 namespaces of dead runs deleted"),
        "{}",
        text(&out)
    );
    let out = Command::new(BROWNOUT)
        .args(["clean", "--platform", "kind"])
        .current_dir(root())
        .env("PATH", empty.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
}

/// A scenario with a fault the platform cannot do (memory-limit on Kubernetes) is refused before
/// anything is deployed: kind is never called, exit 3, the message names the platform and the
/// fault and says "not supported on this platform" (the e2e kind matrix reads such a row as not
/// supported). `prove` lists each such run as not supported, never as aborted, and exits 3 when
/// nothing could be proved.
#[test]
fn a_fault_the_platform_cannot_do_is_refused_before_anything_is_deployed() {
    let fake = tempfile::tempdir().unwrap();
    let calls = fake.path().join("calls");
    for p in ["docker", "kind"] {
        let f = fake.path().join(p);
        let script = format!(
            "#!/bin/sh\necho \"{p} $*\" >> {}\nexit 1\n",
            calls.display()
        );
        std::fs::write(&f, script).unwrap();
        std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let reports = tempfile::tempdir().unwrap();
    for args in [
        &["run", "oom-kill", "--platform", "kind"][..],
        &["prove", "oom-kill", "--platform", "kind"][..],
    ] {
        let out = Command::new(BROWNOUT)
            .args(args)
            .current_dir(root())
            .env("PATH", fake.path())
            .env("BROWNOUT_REPORTS", reports.path())
            .output()
            .unwrap();
        let said = text(&out);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {said}");
        assert!(
            said.contains("fault memory-limit is not supported on this platform (kubernetes)"),
            "{args:?}: {said}"
        );
        assert!(!said.contains("aborted"), "{args:?}: {said}");
        assert!(
            !calls.exists(),
            "{args:?}: nothing deployed, but: {}",
            std::fs::read_to_string(&calls).unwrap_or_default()
        );
    }
}

/// The README's scenario table lists, per scenario, exactly the bugs its file's `[catches]`
/// declares (the files are the one source; `brownout prove` runs them).
#[test]
fn the_readme_table_of_caught_bugs_matches_the_scenario_files() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut seen = 0;
    for entry in std::fs::read_dir(root().join("scenarios"))
        .unwrap()
        .flatten()
    {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let file: toml::Value = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let name = file["name"].as_str().unwrap();
        let mut declared: Vec<String> = file
            .get("catches")
            .and_then(|c| c.as_table())
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default();
        declared.sort();
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{name}` |")))
            .unwrap_or_else(|| panic!("README has no table row for {name}"));
        let last = row.trim_end_matches('|').rsplit('|').next().unwrap();
        let mut listed: Vec<String> = last
            .split(',')
            .map(|b| b.trim().trim_matches('`').to_string())
            .filter(|b| !b.is_empty())
            .collect();
        listed.sort();
        assert_eq!(
            listed,
            declared,
            "README row of {name} vs [catches] in {}",
            path.display()
        );
        seen += 1;
    }
    assert!(seen >= 5, "{seen} scenarios");
}

#[test]
fn validate_refuses_a_fifo_a_device_and_an_empty_directory_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("scenario.toml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    // Nobody writes to the FIFO: reading it would block forever.
    let out = brownout(&["validate", fifo.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("is a FIFO, not a file"),
        "{}",
        text(&out)
    );
    let out = brownout(&["validate", "/dev/zero"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("is a device, not a file"),
        "{}",
        text(&out)
    );
    let empty = tempfile::tempdir().unwrap();
    let out = brownout(&["validate", empty.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no scenario files"), "{}", text(&out));
    let out = brownout(&["list", "--scenarios-dir", empty.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn list_reports_an_invalid_scenario_as_an_error_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(root().join("scenarios/pool-exhaustion.toml")).unwrap();
    let systems = root().join("scenarios/systems/checkout.toml");
    let good = good.replace(
        "system = \"systems/checkout.toml\"",
        &format!("system = {:?}", systems.to_str().unwrap()),
    );
    std::fs::write(dir.path().join("good.toml"), &good).unwrap();
    let out = brownout(&["list", "--scenarios-dir", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    std::fs::write(
        dir.path().join("typo.toml"),
        good.replace("percentile = 99", "percentile = 0"),
    )
    .unwrap();
    let out = brownout(&["list", "--scenarios-dir", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("typo.toml:") && text(&out).contains("percentile 0"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("pool-exhaustion"), "{}", text(&out));
}

/// Runs `brownout ARGS…` from the root and fails the test if it has not finished within `secs`
/// (a read that blocks on a FIFO, or reads a device forever, is a hang, not a slow answer).
fn brownout_within(args: &[&str], secs: u64) -> Output {
    let mut child = Command::new(BROWNOUT)
        .args(args)
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > std::time::Duration::from_secs(secs) {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "brownout {} did not finish within {secs} s: {}",
                args.join(" "),
                text(&out)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// A report.json as `summarize` reads it.
fn a_report(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    let json = serde_json::json!({
        "scenario": "pool-exhaustion", "verdict": "pass", "bugs": [],
        "expectations": [{"id": "p99", "passed": true, "margins": []}]
    });
    std::fs::write(dir.join("report.json"), json.to_string()).unwrap();
}

/// A sparse file one byte over the report cap (64 MiB): nothing is written to disk.
fn a_huge_file(path: &std::path::Path) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len((64 << 20) + 1).unwrap();
}

#[test]
fn summarize_names_a_fifo_or_a_huge_report_and_exits_2_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    a_report(&dir.path().join("good"));
    std::fs::create_dir_all(dir.path().join("fifo")).unwrap();
    let fifo = dir.path().join("fifo/report.json");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let out = brownout_within(&["summarize", dir.path().to_str().unwrap()], 10);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("{}: is a FIFO, not a file", fifo.display())),
        "{}",
        text(&out)
    );
    std::fs::remove_file(&fifo).unwrap();
    a_huge_file(&fifo);
    let out = brownout_within(&["summarize", dir.path().to_str().unwrap()], 10);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("such files are at most 67108864 bytes"),
        "{}",
        text(&out)
    );
    // The good report is still summarized.
    assert!(text(&out).contains("1 of 1 runs passed"), "{}", text(&out));
}

#[test]
fn a_baseline_that_is_no_file_is_refused_with_exit_2_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("baseline.json");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let huge = dir.path().join("huge.json");
    a_huge_file(&huge);
    let reports = dir.path().join("reports");
    let reports_parent = dir.path().join("empty-run");
    std::fs::create_dir_all(&reports_parent).unwrap();
    for (baseline, says) in [
        (fifo.to_str().unwrap(), "is a FIFO, not a file"),
        ("/dev/zero", "is a device, not a file"),
        (
            huge.to_str().unwrap(),
            "such files are at most 67108864 bytes",
        ),
        // A directory is read as the run directory holding report.json; this one has none.
        (
            reports_parent.to_str().unwrap(),
            "report.json: does not exist",
        ),
    ] {
        let out = brownout_within(
            &[
                "run",
                "pool-exhaustion",
                "--reports-dir",
                reports.to_str().unwrap(),
                "--baseline",
                baseline,
            ],
            20,
        );
        assert_eq!(out.status.code(), Some(2), "{baseline}: {}", text(&out));
        assert!(
            text(&out).contains(&format!("baseline: cannot read {}", baseline))
                && text(&out).contains(says),
            "{baseline}: {}",
            text(&out)
        );
    }
}

#[test]
fn a_symlink_loop_is_named_as_a_loop_not_as_missing() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.toml"), dir.path().join("b.toml"));
    std::os::unix::fs::symlink(&b, &a).unwrap();
    std::os::unix::fs::symlink(&a, &b).unwrap();
    let out = brownout_within(&["validate", a.to_str().unwrap()], 10);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("{}: is a symlink loop", a.display())),
        "{}",
        text(&out)
    );
    let out = brownout_within(
        &["run", "pool-exhaustion", "--system", a.to_str().unwrap()],
        10,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("is a symlink loop"), "{}", text(&out));
}

/// The game day's size flags take binary units only, each in its own words: `1GB` would be 10^9
/// bytes to some readers and 2^30 to others, so it is refused (exit 2, the flag named) before
/// anything is deployed.
#[test]
fn the_game_days_size_flags_refuse_ambiguous_units_before_deploying() {
    for flag in ["--max-memory", "--min-free-disk"] {
        let out = brownout_within(
            &["gameday", "scenarios/systems/checkout.toml", flag, "1GB"],
            20,
        );
        let err = text(&out);
        assert_eq!(out.status.code(), Some(2), "{flag}: {err}");
        assert!(
            err.contains(flag) && err.contains("ambiguous"),
            "{flag}: {err}"
        );
    }
}
