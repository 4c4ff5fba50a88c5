//! The janitor against real files that real child processes append to (`O_APPEND`, opened by
//! `process.rs` as for every component): rotation, both caps, the cuts in the evidence and the
//! byte counts. nginx and mtail across a rotation are in the local platform's tests (`tests.rs`).

use super::*;
use crate::evidence::LogCut;
use crate::platform::local::process::{spawn, ChildSpec, ManagedChild};

/// One line a writer appends: its sequence number, padded to a fixed length.
const LINE_LEN: u64 = 64;

/// How many lines each writer appends (160 KB: a few rotations at a 64 KiB cap).
const LINES: u64 = 2500;

/// A shell appending `LINES` numbered lines of `LINE_LEN` bytes to `log` (its stdout, opened
/// `O_APPEND` by `process::spawn`), about one a millisecond, then exiting.
fn writer(dir: &Path, log: &Path) -> ManagedChild {
    let script = format!(
        r#"i=0; while [ $i -lt {LINES} ]; do i=$((i+1)); printf '%08d %054d\n' "$i" 0; sleep 0.001; done"#
    );
    let spec = ChildSpec::new("/bin/sh", dir, log.to_path_buf()).args(["-c", &script]);
    spawn("writer", &spec).unwrap()
}

/// The sequence numbers in a file, in order; every line whole.
fn numbers(path: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| {
            assert_eq!(
                l.len() as u64 + 1,
                LINE_LEN,
                "a broken line in {path:?}: {l:?}"
            );
            l[..8].parse().unwrap()
        })
        .collect()
}

#[test]
fn caps_come_from_sizes_and_self_defeating_ones_are_refused() {
    let caps = |f: Option<&str>, r: Option<&str>| {
        LogCaps::from_values(f.map(String::from), r.map(String::from))
    };
    assert_eq!(caps(None, None).unwrap(), LogCaps::DEFAULT);
    assert_eq!(
        caps(Some("1MiB"), Some(" 2GiB ")).unwrap(),
        LogCaps {
            per_file: MIB,
            per_run: 2048 * MIB
        }
    );
    for (f, r, says) in [
        (Some("lots"), None, "BROWNOUT_LOG_CAP_FILE=\"lots\""),
        (Some("1KiB"), None, "below 64KiB"),
        (None, Some("0"), "BROWNOUT_LOG_CAP_RUN=\"0\" is below 64KiB"),
        (
            None,
            Some("-1MiB"),
            "BROWNOUT_LOG_CAP_RUN=\"-1MiB\": '-1MiB' is not a size",
        ),
        (None, Some("99999999999TiB"), "out of range"),
        (Some("64MB"), None, "ambiguous"),
        (Some("64MiB"), Some("32MiB"), "less than"),
    ] {
        let err = caps(f, r).unwrap_err();
        assert!(matches!(err, BrownoutError::BadInput(_)), "{err:?}");
        assert!(err.to_string().contains(says), "{err} (wanted {says:?})");
    }
}

/// Three children append 160 KB each to three logs under a 64 KiB per-file and 256 KiB per-run cap
/// (a pass every 100 ms): every file is rotated, what is left holds both caps, every cut is in
/// the evidence, and the bytes the janitor counts as written are the bytes the children wrote.
#[test]
fn rotates_files_children_append_to_and_holds_both_caps() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let names = ["a.log", "b.log", "c.log"];
    let caps = LogCaps {
        per_file: 64 * 1024,
        per_run: 256 * 1024,
    };
    let evidence = Evidence::new();
    let janitor = Janitor::start_every(
        &logs,
        caps,
        Reopened::default(),
        &evidence,
        Duration::from_millis(100),
    );
    let mut writers: Vec<ManagedChild> = names
        .iter()
        .map(|n| writer(dir.path(), &logs.join(n)))
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    for w in &mut writers {
        while w.try_wait().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "a writer did not finish"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let usage = janitor.stop().unwrap();
    let data = evidence.finish();

    // Both caps hold on what is left, and the usage says what is on disk.
    let mut on_disk = 0;
    for e in std::fs::read_dir(&logs).unwrap().flatten() {
        let len = e.metadata().unwrap().len();
        if !e.file_name().to_string_lossy().ends_with(".1") {
            assert!(len <= caps.per_file, "{:?}: {len} bytes", e.file_name());
        }
        on_disk += len;
    }
    assert!(on_disk <= caps.per_run, "{on_disk} bytes on disk");
    assert_eq!(usage.kept_bytes, on_disk);
    assert_eq!(data.log_usage, Some(usage));

    // Every file was rotated; what was dropped is what the cuts say.
    for n in names {
        assert!(
            data.log_cuts
                .iter()
                .any(|c| c.file == n && c.reason == LogCutReason::Rotated),
            "{n} never rotated: {:?}",
            data.log_cuts
        );
    }
    assert!(usage.dropped_bytes > 0, "{usage:?}");
    let cut: u64 = data.log_cuts.iter().map(|c: &LogCut| c.dropped_bytes).sum();
    assert_eq!(cut, usage.dropped_bytes);
    assert_eq!(usage.written_bytes, usage.kept_bytes + usage.dropped_bytes);

    // Written = what the children wrote, less at most a few lines per copy-and-truncate
    // (appended between the copy's end and the cut).
    let wrote = names.len() as u64 * LINES * LINE_LEN;
    for n in names {
        let (old, live) = (
            numbers(&logs.join(format!("{n}.1"))),
            numbers(&logs.join(n)),
        );
        // In order within and across the rotated and the live file: nothing kept twice.
        let all: Vec<u64> = old.iter().chain(&live).copied().collect();
        assert!(
            all.windows(2).all(|w| w[0] < w[1]),
            "{n}: out of order: {all:?}"
        );
    }
    let rotations = data.log_cuts.len() as u64;
    assert!(
        usage.written_bytes <= wrote && usage.written_bytes + rotations * 4 * LINE_LEN >= wrote,
        "janitor counted {} bytes written, the children wrote {wrote} ({rotations} cuts)",
        usage.written_bytes
    );
}

/// A janitor that is dropped without `stop` leaves no thread behind.
#[test]
fn dropping_the_janitor_ends_its_thread() {
    let dir = tempfile::tempdir().unwrap();
    let evidence = Evidence::new();
    let mut janitor = Janitor::start(dir.path(), LogCaps::DEFAULT, Reopened::default(), &evidence);
    let thread = janitor.thread.take().unwrap();
    janitor.thread = None;
    drop(janitor);
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while !thread.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(thread.is_finished());
}
