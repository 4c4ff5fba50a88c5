//! What a run can leave on the machine, read from /proc: processes of the programs a run starts,
//! listening TCP ports, mounts and work directories of runs (`$TMPDIR/brownout-run-*`). Tests
//! take a [`Snapshot`] before a run and check that after it (or after its abort) nothing was added.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The programs a local run starts (as `/proc/<pid>/comm` shows them).
const PROGRAMS: [&str; 8] = [
    "postgres",
    "nginx",
    "prometheus",
    "mtail",
    "checkout",
    "payments-stub",
    "fault-proxy",
    "brownout",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub processes: BTreeSet<(i32, String)>,
    pub listening: BTreeSet<u16>,
    pub mounts: BTreeSet<String>,
    pub run_dirs: BTreeSet<PathBuf>,
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

impl Snapshot {
    pub fn take() -> Snapshot {
        let mut processes = BTreeSet::new();
        for p in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
            let comm = comm.trim();
            if PROGRAMS.contains(&comm) && alive(pid) {
                processes.insert((pid, comm.to_string()));
            }
        }
        let mut listening = BTreeSet::new();
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            for line in std::fs::read_to_string(table)
                .unwrap_or_default()
                .lines()
                .skip(1)
            {
                let cols: Vec<&str> = line.split_whitespace().collect();
                if cols.len() > 3 && cols[3] == "0A" {
                    if let Some(port) = cols[1]
                        .rsplit(':')
                        .next()
                        .and_then(|h| u16::from_str_radix(h, 16).ok())
                    {
                        listening.insert(port);
                    }
                }
            }
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("brownout-run-"))
            .map(str::to_string)
            .collect();
        let run_dirs = std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("brownout-run-"))
            .map(|e| e.path())
            .collect();
        Snapshot {
            processes,
            listening,
            mounts,
            run_dirs,
        }
    }

    /// What `later` has that this snapshot had not, as readable lines (empty: nothing left).
    pub fn added_in(&self, later: &Snapshot) -> Vec<String> {
        let mut out = Vec::new();
        for p in later.processes.difference(&self.processes) {
            out.push(format!("process {} ({})", p.0, p.1));
        }
        for p in later.listening.difference(&self.listening) {
            out.push(format!("listening port {p}"));
        }
        for m in later.mounts.difference(&self.mounts) {
            out.push(format!("mount {m}"));
        }
        for d in later.run_dirs.difference(&self.run_dirs) {
            out.push(format!("run dir {}", d.display()));
        }
        out
    }

    /// Waits up to `within` for the machine to be back to this snapshot; what is still added.
    pub fn wait_back(&self, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        loop {
            let left = self.added_in(&Snapshot::take());
            if left.is_empty() || Instant::now() > deadline {
                return left;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
