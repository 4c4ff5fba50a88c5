//! Fuzzing the scenario + system loader (proptest): mutated copies of every shipped and corpus
//! file — values swapped for hostile ones (huge, negative, NaN, empty, `../`, URLs, placeholders),
//! lines deleted, duplicated or cut, bytes inserted — are loaded, and the loader must answer
//! `Ok` or a bad-input error naming the file, never panic or hang. Runs for
//! `BROWNOUT_FUZZ_SECS` (default 60 s; `just fuzz` runs 600 s) and prints how many inputs it
//! tried. A failing input is shrunk by proptest and printed; add it to `tests/bad-inputs/`.

mod support;
use harness::error::BrownoutError;
use harness::spec::source::read_capped;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::root;

fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v.retain(|p| p.extension().is_some_and(|x| x == "toml"));
    v
}

/// Values a hurried or hostile user might write where a value goes.
const HOSTILE: &[&str] = &[
    "0",
    "-1",
    "4294967295",
    "18446744073709551615",
    "9223372036854775807",
    "1e308",
    "nan",
    "-inf",
    "\"\"",
    "\"../../x\"",
    "\"/etc/passwd\"",
    "\"/dev/zero\"",
    "\"0s\"",
    "\"100000000h\"",
    "\"99999999999999999999s\"",
    "\"{databse_url}\"",
    "\"{proxy.nope.addr}\"",
    "\"http://10.0.0.1:80/x\"",
    "\"99999999999GiB\"",
    "\"error; include /etc/passwd\"",
    "[]",
    "[0]",
    "[999]",
    "{}",
    "true",
    "\"PSOT\"",
    "\"\\u0000\"",
];

#[derive(Debug, Clone)]
enum Mutation {
    /// Replace the value of line `line` (after its `=`) by a hostile one.
    Value {
        line: usize,
        value: usize,
    },
    DeleteLine(usize),
    DuplicateLine(usize),
    /// Cut the text at this fraction of its length.
    Truncate(u16),
    /// Insert these bytes (lossily as text) at this fraction.
    Insert(u16, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        6 => (any::<usize>(), 0..HOSTILE.len()).prop_map(|(line, value)| Mutation::Value { line, value }),
        2 => any::<usize>().prop_map(Mutation::DeleteLine),
        2 => any::<usize>().prop_map(Mutation::DuplicateLine),
        1 => any::<u16>().prop_map(Mutation::Truncate),
        1 => (any::<u16>(), proptest::collection::vec(any::<u8>(), 1..8)).prop_map(|(at, b)| Mutation::Insert(at, b)),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if lines.is_empty() {
        return text.to_string();
    }
    let n = lines.len();
    match m {
        Mutation::Value { line, value } => {
            let i = line % n;
            if let Some(eq) = lines[i].find(" = ") {
                lines[i] = format!("{} = {}", &lines[i][..eq], HOSTILE[*value]);
            }
        }
        Mutation::DeleteLine(l) => {
            lines.remove(l % n);
        }
        Mutation::DuplicateLine(l) => {
            let dup = lines[l % n].clone();
            lines.insert(l % n, dup);
        }
        Mutation::Truncate(f) => {
            let joined = lines.join("\n");
            let mut cut = joined.len() * (*f as usize) / (u16::MAX as usize + 1);
            while !joined.is_char_boundary(cut) {
                cut -= 1;
            }
            return joined[..cut].to_string();
        }
        Mutation::Insert(f, bytes) => {
            let joined = lines.join("\n");
            let mut at = joined.len() * (*f as usize) / (u16::MAX as usize + 1);
            while !joined.is_char_boundary(at) {
                at -= 1;
            }
            return format!(
                "{}{}{}",
                &joined[..at],
                String::from_utf8_lossy(bytes),
                &joined[at..]
            );
        }
    }
    lines.join("\n") + "\n"
}

#[test]
fn the_loader_never_panics_on_mutated_files() {
    // Seeds: each scenario file with the system file it names (valid ones and the corpus of
    // broken ones), so mutations start from files that load and go one step astray.
    let mut seeds: Vec<(String, String)> = Vec::new();
    for d in [
        "scenarios",
        "tests/fixtures/ci",
        "tests/fixtures/plain",
        "tests/fixtures/no-edge-rule",
        "tests/fixtures/broken",
        "tests/bad-inputs",
    ] {
        for p in toml_files(&root().join(d)) {
            // Read as the loader reads: capped, regular files only (a corpus case names
            // `/dev/zero` as its system file; reading that unbounded would take all memory).
            let Ok(scenario) = read_capped(&p) else {
                continue;
            };
            let system = scenario
                .lines()
                .find_map(|l| l.strip_prefix("system = \""))
                .and_then(|l| l.strip_suffix('"'))
                .and_then(|rel| read_capped(&p.parent().unwrap().join(rel)).ok())
                .unwrap_or_default();
            // The valid seeds weigh more: most of the corpus fails on its first check.
            let n = if d == "tests/bad-inputs" { 1 } else { 8 };
            for _ in 0..n {
                seeds.push((scenario.clone(), system.clone()));
            }
        }
    }
    let alerts = root().join("scenarios/alerts");
    let dir = tempfile::tempdir().unwrap();
    // Scenario files name "sys.toml" beside them; rule files are the shipped ones.
    let prepare_system = |s: &str| {
        s.replace("../alerts/", &format!("{}/", alerts.display()))
            .replace(
                "../../../scenarios/alerts/",
                &format!("{}/", alerts.display()),
            )
    };
    let prepare_scenario = |s: &str| {
        s.lines()
            .map(|l| {
                if l.starts_with("system = ") {
                    "system = \"sys.toml\"".to_string()
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    };

    let budget = Duration::from_secs(
        std::env::var("BROWNOUT_FUZZ_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    let strategy = (
        0..seeds.len(),
        proptest::collection::vec(mutation(), 0..3),
        proptest::collection::vec(mutation(), 0..2),
    );
    let started = Instant::now();
    let (tried, accepted, refused) = (Cell::new(0u64), Cell::new(0u64), Cell::new(0u64));
    let mut round = 0u64;
    while started.elapsed() < budget {
        round += 1;
        // A fresh seed per round, recorded so a failure can be replayed.
        let seed = round.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ std::process::id() as u64;
        let mut seed_bytes = [0u8; 32];
        seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
        let mut runner = TestRunner::new_with_rng(
            Config {
                cases: 256,
                failure_persistence: None,
                ..Config::default()
            },
            TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
        );
        let result = runner.run(&strategy, |(seed, ms, ss)| {
            let mut scenario = prepare_scenario(&seeds[seed].0);
            for m in &ms {
                scenario = apply(&scenario, m);
            }
            let mut system = prepare_system(&seeds[seed].1);
            for m in &ss {
                system = apply(&system, m);
            }
            let sc_path = dir.path().join("scenario.toml");
            std::fs::write(&sc_path, &scenario).unwrap();
            std::fs::write(dir.path().join("sys.toml"), &system).unwrap();
            tried.set(tried.get() + 1);
            if let Some(last) = std::env::var_os("BROWNOUT_FUZZ_LAST") {
                // For a crash the test cannot report (an abort, the OOM killer): the last input.
                let _ = std::fs::write(
                    Path::new(&last),
                    format!("{scenario}\n#---- sys.toml\n{system}"),
                );
            }
            match harness::spec::load_scenario(&sc_path) {
                Ok(_) => accepted.set(accepted.get() + 1),
                Err(BrownoutError::BadInput(msg)) => {
                    refused.set(refused.get() + 1);
                    // "FILE: what" or "FILE:LINE:COL: what": every error names its file.
                    let file = msg.split(':').next().unwrap_or_default();
                    prop_assert!(
                        file.starts_with('/') || file.starts_with("--system"),
                        "an error names the file: {msg}"
                    );
                }
                Err(other) => prop_assert!(false, "not a bad-input error: {other}"),
            }
            Ok(())
        });
        if let Err(e) = result {
            panic!("round {round} (seed {seed:#x}): {e}");
        }
    }
    eprintln!(
        "fuzz: {} inputs in {:.0} s ({} accepted, {} refused as bad input), no panic",
        tried.get(),
        started.elapsed().as_secs_f64(),
        accepted.get(),
        refused.get()
    );
    assert!(tried.get() > 0 && refused.get() > 0);
}
