//! What a run can leave on the machine, read from /proc: processes of the programs a run starts,
//! listening TCP ports, mounts, work directories of runs (`$TMPDIR/brownout-run-*`) and the
//! replicas' memory cgroups (`brownout-<pid>` under this process's memory cgroup). Tests
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
    pub cgroups: BTreeSet<PathBuf>,
}

/// `brownout-<pid>` directories under this process's memory cgroup (v1 or v2), where runs put
/// their replicas' cgroups (a harness started by this one shares its cgroup).
fn run_cgroups() -> BTreeSet<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut dirs = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next(), parts.next());
        let (Some(controllers), Some(path)) = (controllers, path) else {
            continue;
        };
        let path = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == "memory") {
            dirs.push(std::path::Path::new("/sys/fs/cgroup/memory").join(path));
        } else if controllers.is_empty() {
            dirs.push(std::path::Path::new("/sys/fs/cgroup").join(path));
            dirs.push(std::path::Path::new("/sys/fs/cgroup/unified").join(path));
        }
    }
    dirs.iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|rd| rd.flatten())
        .filter(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("brownout-"))
                .is_some_and(|pid| pid.parse::<u32>().is_ok())
        })
        .map(|e| e.path())
        .collect()
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
            cgroups: run_cgroups(),
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
        for c in later.cgroups.difference(&self.cgroups) {
            out.push(format!("cgroup {}", c.display()));
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
