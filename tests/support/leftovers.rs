//! What a test's own runs can leave on the machine, read from /proc — and only its own: a game day,
//! a `brownout prove` or a second test suite running at the same time must not count.
//!
//! A test makes a [`Scope`]: a fresh directory that its runs get as `TMPDIR` (so their work
//! directories, `brownout-run-*`, and the mounts below them are created there, and their sweep of
//! dead runs looks only there) and as the marker `BROWNOUT_TEST_SCOPE` in their environment. What
//! belongs to the scope:
//! - processes whose working directory is inside the scope's directory (everything a local run
//!   starts runs in its work dir) or whose environment carries the scope's marker (the harness
//!   itself, the `brownout gameday` subcommands, anything they start);
//! - listening TCP ports held open by those processes (socket inodes of their fds);
//! - mounts at or below the scope's directory;
//! - work directories of runs (`brownout-run-*`) in it;
//! - the replicas' memory cgroups `brownout-<pid>` (under this process's memory cgroup) of a
//!   harness the scope started ([`Scope::spawn`], [`Scope::output`]) or one whose environment
//!   carries the marker.
//!
//! Tests take a [`Snapshot`] of their scope before a run and check that after it (or after its
//! abort) nothing was added.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The environment variable that marks the processes of a scope (its value: the scope's dir).
pub const MARKER: &str = "BROWNOUT_TEST_SCOPE";

/// One test's runs: their `TMPDIR`, their marker, the harness pids it started.
pub struct Scope {
    dir: tempfile::TempDir,
    harnesses: Mutex<BTreeSet<u32>>,
}

impl Scope {
    /// A fresh scope (a directory `brownout-test-*` in this process's temp dir).
    pub fn new() -> Scope {
        let dir = tempfile::Builder::new()
            .prefix("brownout-test-")
            .tempdir()
            .expect("create a test scope dir");
        // Traversable by a dropped-privilege PostgreSQL, like the work dirs inside it.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        Scope {
            dir,
            harnesses: Mutex::new(BTreeSet::new()),
        }
    }

    /// The scope's directory (its runs' `TMPDIR`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `program` with this scope's `TMPDIR` and marker in its environment.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        self.mark(&mut cmd);
        cmd
    }

    /// Puts this scope's `TMPDIR` and marker into `cmd`'s environment.
    pub fn mark(&self, cmd: &mut Command) {
        cmd.env("TMPDIR", self.dir()).env(MARKER, self.dir());
    }

    /// Spawns `cmd` (marked) and remembers its pid as a harness of this scope.
    pub fn spawn(&self, cmd: &mut Command) -> Child {
        self.mark(cmd);
        let child = cmd.spawn().expect("spawn a process of the test scope");
        self.harnesses.lock().unwrap().insert(child.id());
        child
    }

    /// Runs `cmd` (marked) to its end, its output collected, remembering its pid.
    pub fn output(&self, cmd: &mut Command) -> Output {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.spawn(cmd).wait_with_output().expect("wait for it")
    }

    /// Whether process `pid` belongs to this scope (cwd inside its dir, or its marker).
    pub fn owns_process(&self, pid: i32) -> bool {
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));
        if std::fs::read_link(proc_dir.join("cwd")).is_ok_and(|cwd| cwd.starts_with(self.dir())) {
            return true;
        }
        let mut marker = format!("{MARKER}=").into_bytes();
        marker.extend_from_slice(self.dir().as_os_str().as_encoded_bytes());
        std::fs::read(proc_dir.join("environ"))
            .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == marker.as_slice()))
    }

    /// What of this scope is on the machine now.
    pub fn snapshot(&self) -> Snapshot {
        let me = std::process::id() as i32;
        let mut processes = BTreeSet::new();
        for p in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if pid != me && alive(pid) && self.owns_process(pid) {
                let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
                processes.insert((pid, comm.trim().to_string()));
            }
        }
        let sockets: BTreeSet<u64> = processes
            .iter()
            .flat_map(|(pid, _)| socket_inodes(*pid))
            .collect();
        let mut listening = BTreeSet::new();
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            for line in std::fs::read_to_string(table)
                .unwrap_or_default()
                .lines()
                .skip(1)
            {
                let cols: Vec<&str> = line.split_whitespace().collect();
                if cols.len() <= 9 || cols[3] != "0A" {
                    continue;
                }
                let inode = cols[9].parse::<u64>().unwrap_or(0);
                let port = cols[1]
                    .rsplit(':')
                    .next()
                    .and_then(|h| u16::from_str_radix(h, 16).ok());
                if let (true, Some(port)) = (sockets.contains(&inode), port) {
                    listening.insert(port);
                }
            }
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                // mountinfo escapes spaces and other specials as octal (\040).
                l.split(' ')
                    .nth(4)
                    .is_some_and(|m| Path::new(&m.replace("\\040", " ")).starts_with(self.dir()))
            })
            .map(str::to_string)
            .collect();
        let run_dirs = std::fs::read_dir(self.dir())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("brownout-run-"))
            .map(|e| e.path())
            .collect();
        let harnesses = self.harnesses.lock().unwrap().clone();
        let cgroups = run_cgroups()
            .into_iter()
            .filter(|(pid, _)| {
                harnesses.contains(pid) || (alive(*pid as i32) && self.owns_process(*pid as i32))
            })
            .map(|(_, dir)| dir)
            .collect();
        Snapshot {
            processes,
            listening,
            mounts,
            run_dirs,
            cgroups,
        }
    }
}

impl Default for Scope {
    fn default() -> Self {
        Scope::new()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub processes: BTreeSet<(i32, String)>,
    pub listening: BTreeSet<u16>,
    pub mounts: BTreeSet<String>,
    pub run_dirs: BTreeSet<PathBuf>,
    pub cgroups: BTreeSet<PathBuf>,
}

/// The inodes of the sockets process `pid` has open (`socket:[N]` links in /proc/PID/fd).
fn socket_inodes(pid: i32) -> Vec<u64> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    fds.flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|l| {
            l.to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// `brownout-<pid>` directories under this process's memory cgroup (v1 or v2), where runs put
/// their replicas' cgroups (a harness started by this one shares its cgroup), with their pid.
fn run_cgroups() -> Vec<(u32, PathBuf)> {
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
            dirs.push(Path::new("/sys/fs/cgroup/memory").join(path));
        } else if controllers.is_empty() {
            dirs.push(Path::new("/sys/fs/cgroup").join(path));
            dirs.push(Path::new("/sys/fs/cgroup/unified").join(path));
        }
    }
    dirs.iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|rd| rd.flatten())
        .filter_map(|e| {
            let pid = e
                .file_name()
                .to_str()?
                .strip_prefix("brownout-")?
                .parse::<u32>()
                .ok()?;
            Some((pid, e.path()))
        })
        .collect()
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

impl Snapshot {
    /// Whether the scope holds nothing (no process, port, mount, run dir or cgroup).
    pub fn is_empty(&self) -> bool {
        self.processes.is_empty()
            && self.listening.is_empty()
            && self.mounts.is_empty()
            && self.run_dirs.is_empty()
            && self.cgroups.is_empty()
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

    /// Waits up to `within` for `scope` to be back to this snapshot; what is still added.
    pub fn wait_back(&self, scope: &Scope, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        loop {
            let left = self.added_in(&scope.snapshot());
            if left.is_empty() || Instant::now() > deadline {
                return left;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A stand-in for a foreign run (a game day, another suite) and leftovers of a scope's own run,
/// for the tests that show the checks tell them apart: a `sleep` whose command line names
/// `brownout` and whose cwd is `dir`.
pub fn plant_process(dir: &Path, env: &[(&str, &Path)]) -> Child {
    let mut cmd = Command::new("bash");
    cmd.args(["-c", "exec -a brownout-planted sleep 600"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("start a planted process");
    // Until it is `sleep` (bash has exec'd), so that snapshots name it one way.
    let comm = format!("/proc/{}/comm", child.id());
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read_to_string(&comm).unwrap_or_default().trim() != "sleep"
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    child
}
