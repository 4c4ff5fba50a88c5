//! Memory limits of replicas, as a container runtime sets them: each replica runs in a memory
//! cgroup of its own (`brownout-<harness pid>/<replica>` under the harness's own cgroup), which the
//! `memory-limit` fault gives a limit. Going over it gets the replica killed by the kernel's OOM
//! killer (SIGKILL, exit 137 in a container). cgroup v1 (`memory.limit_in_bytes`) and v2
//! (`memory.max`, needs the memory controller delegated to the harness's cgroup) both work; without
//! root or a memory controller there are no cgroups, the evidence says so, and the fault refuses
//! to run. The cgroups are removed at teardown, and those of a killed harness by the next run's
//! sweep.

use std::path::{Path, PathBuf};

/// Which cgroup hierarchy holds a controller.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Version {
    V1,
    V2,
}

/// The run's cgroups.
#[derive(Debug)]
pub struct Cgroups {
    /// `<harness cgroup>/brownout-<pid>`.
    run_dir: PathBuf,
    version: Version,
}

pub(super) const PREFIX: &str = "brownout-";

/// The harness's own memory cgroup directory and its hierarchy's version.
fn own_memory_cgroup() -> Result<(PathBuf, Version), String> {
    own_cgroup("memory", "memory.limit_in_bytes")
}

/// The harness's own cgroup directory for `controller` ("memory", "cpu") and its hierarchy's
/// version: v1 where that controller's hierarchy (mounted at `/sys/fs/cgroup/<controller>` or
/// `/sys/fs/cgroup/<its co-mounted list>`, e.g. `cpu,cpuacct`) has `v1_file`, else v2 where
/// `cgroup.controllers` lists it.
pub(super) fn own_cgroup(controller: &str, v1_file: &str) -> Result<(PathBuf, Version), String> {
    let text = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    // v1: "4:memory:/path", "1:cpu,cpuacct:/path"; v2: "0::/path".
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next(), parts.next());
        let (Some(controllers), Some(path)) = (controllers, path) else {
            continue;
        };
        if controllers.split(',').any(|c| c == controller) {
            for mount in [controller, controllers] {
                let dir = Path::new("/sys/fs/cgroup")
                    .join(mount)
                    .join(path.trim_start_matches('/'));
                if dir.join(v1_file).exists() {
                    return Ok((dir, Version::V1));
                }
            }
        }
    }
    for line in text.lines() {
        if let Some(path) = line.strip_prefix("0::") {
            for base in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
                let dir = Path::new(base).join(path.trim_start_matches('/'));
                let controllers =
                    std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
                if controllers.split_whitespace().any(|c| c == controller) {
                    return Ok((dir, Version::V2));
                }
            }
        }
    }
    Err(format!(
        "no {controller} cgroup controller is available to this process"
    ))
}

/// The cgroup of replica `name` under a run's cgroup `run_dir` (created if need be).
pub(super) fn replica_dir(run_dir: &Path, name: &str) -> Result<PathBuf, String> {
    let dir = crate::confine::inside(run_dir, name).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("cannot create cgroup {}: {e}", dir.display()))?;
    Ok(dir)
}

/// A limit the local platform sets on each replica through a cgroup of its own (memory in
/// [`Cgroups`], CPU in [`super::cpu_cgroup::CpuCgroups`]): where a replica's cgroup is, how the
/// limit is set or lifted, and what it did while it was set.
pub trait ReplicaLimit {
    /// The limit's value (bytes, thousandths of a CPU).
    type Value: Copy;
    /// The cgroup of replica `name` (created if need be): where its process is started.
    fn replica(&self, name: &str) -> Result<PathBuf, String>;
    /// Sets the limit of the replica whose cgroup is `dir` (`None`: lifts it).
    fn set_limit(&self, dir: &Path, value: Option<Self::Value>) -> Result<(), String>;
    /// What the limit did to the replica whose cgroup is `dir`, as an event (when it did anything).
    fn effect(&self, replica: &str, dir: &Path) -> Option<String>;
}

impl ReplicaLimit for Cgroups {
    type Value = u64;
    fn replica(&self, name: &str) -> Result<PathBuf, String> {
        Cgroups::replica(self, name)
    }
    fn set_limit(&self, dir: &Path, bytes: Option<u64>) -> Result<(), String> {
        Cgroups::set_limit(self, dir, bytes)
    }
    fn effect(&self, replica: &str, dir: &Path) -> Option<String> {
        let kills = self.oom_kills(dir);
        (kills > 0).then(|| format!("{replica}: OOM-killed {kills} times under its memory limit"))
    }
}

impl Cgroups {
    /// Creates the run's cgroup directory (needs root).
    pub fn create() -> Result<Cgroups, String> {
        if !nix::unistd::geteuid().is_root() {
            return Err("memory limits need root (cgroups)".into());
        }
        let (own, version) = own_memory_cgroup()?;
        let run_dir = own.join(format!("{PREFIX}{}", std::process::id()));
        std::fs::create_dir_all(&run_dir)
            .map_err(|e| format!("cannot create cgroup {}: {e}", run_dir.display()))?;
        if version == Version::V2 {
            // The replicas' cgroups need the memory controller from their parent.
            if let Err(e) = std::fs::write(run_dir.join("cgroup.subtree_control"), "+memory") {
                let _ = std::fs::remove_dir(&run_dir);
                return Err(format!(
                    "cannot delegate the memory controller to {} ({e}): run brownout in a cgroup of its own with the memory controller, e.g. systemd-run --scope -p Delegate=yes",
                    run_dir.display()
                ));
            }
        }
        Ok(Cgroups { run_dir, version })
    }

    /// The cgroup of replica `name` (created if need be): where its process is started.
    pub fn replica(&self, name: &str) -> Result<PathBuf, String> {
        replica_dir(&self.run_dir, name)
    }

    /// Limits the memory of the replica whose cgroup is `dir` to `bytes`, without swap (`None`:
    /// no limit).
    pub fn set_limit(&self, dir: &Path, bytes: Option<u64>) -> Result<(), String> {
        let write = |file: &str, value: String| {
            std::fs::write(dir.join(file), &value)
                .map_err(|e| format!("cannot write {value} to {}: {e}", dir.join(file).display()))
        };
        match (self.version, bytes) {
            (Version::V1, Some(b)) => {
                // memsw (memory + swap) must stay at least the memory limit: lower memory first.
                write("memory.limit_in_bytes", b.to_string())?;
                if dir.join("memory.memsw.limit_in_bytes").exists() {
                    write("memory.memsw.limit_in_bytes", b.to_string())?;
                }
                Ok(())
            }
            (Version::V1, None) => {
                if dir.join("memory.memsw.limit_in_bytes").exists() {
                    write("memory.memsw.limit_in_bytes", "-1".into())?;
                }
                write("memory.limit_in_bytes", "-1".into())
            }
            (Version::V2, Some(b)) => {
                write("memory.max", b.to_string())?;
                if dir.join("memory.swap.max").exists() {
                    write("memory.swap.max", "0".into())?;
                }
                Ok(())
            }
            (Version::V2, None) => write("memory.max", "max".into()),
        }
    }

    /// How many times the kernel's OOM killer killed a process in the cgroup `dir`.
    pub fn oom_kills(&self, dir: &Path) -> u64 {
        oom_kills_in(dir)
    }

    /// Removes the replicas' cgroups and the run's (once their processes are gone).
    pub fn remove(&self) {
        remove_tree(&self.run_dir);
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        self.remove();
    }
}

/// How many times the kernel's OOM killer killed a process in the cgroup `dir` (either version).
pub fn oom_kills_in(dir: &Path) -> u64 {
    ["memory.events", "memory.oom_control"]
        .iter()
        .find_map(|f| std::fs::read_to_string(dir.join(f)).ok())
        .map_or(0, |t| oom_kill_count(&t))
}

/// The `oom_kill N` line of `memory.oom_control` (v1) or `memory.events` (v2).
fn oom_kill_count(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Removes a cgroup directory and its children (a cgroup directory can only be removed with
/// rmdir, once it has no process and no child). A few tries: a killed process leaves its cgroup a
/// moment after it is reaped.
pub(super) fn remove_tree(dir: &Path) {
    for _ in 0..20 {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    remove_tree(&e.path());
                }
            }
        }
        match std::fs::remove_dir(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            _ => return,
        }
    }
}

/// Removes the cgroups of harness runs that no longer run (a `kill -9` leaves them behind).
pub fn sweep_dead_runs() {
    if let Ok((own, _)) = own_memory_cgroup() {
        sweep_dead_runs_in(&own);
    }
}

/// Removes the `brownout-<pid>` cgroups under `own` whose harness no longer runs.
pub(super) fn sweep_dead_runs_in(own: &Path) {
    let Ok(entries) = std::fs::read_dir(own) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let alive = pid == std::process::id() as i32 || Path::new(&format!("/proc/{pid}")).exists();
        if !alive {
            remove_tree(&e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_kills_are_read_from_either_version() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        let v2 = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(oom_kill_count(v1), 3);
        assert_eq!(oom_kill_count(v2), 2);
        assert_eq!(oom_kill_count("oom_kill_disable 0\n"), 0);
    }

    /// A real cgroup with a real limit: a process allocating past it is killed by the kernel
    /// (SIGKILL), and the cgroup counts the OOM kill. Needs root and a memory controller.
    #[test]
    fn a_process_over_its_limit_is_oom_killed_and_counted() {
        let cg = match Cgroups::create() {
            Ok(c) => c,
            Err(e) if !nix::unistd::geteuid().is_root() => {
                eprintln!("skipped: {e}");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        let dir = cg.replica("hog").unwrap();
        cg.set_limit(&dir, Some(32 << 20)).unwrap();
        let procs = dir.join("cgroup.procs");
        // Touch 128 MiB, one byte per page, from a shell moved into the cgroup first.
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "echo $$ > {} && exec python3 -c 'b = bytearray(128 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1'",
                procs.display()
            ))
            .status()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "{status:?}");
        assert_eq!(cg.oom_kills(&dir), 1);
        // Within the limit it lives.
        let other = cg.replica("fits").unwrap();
        cg.set_limit(&other, Some(64 << 20)).unwrap();
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "echo $$ > {} && exec python3 -c 'b = bytearray(8 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1'",
                other.join("cgroup.procs").display()
            ))
            .status()
            .unwrap();
        assert!(status.success(), "{status:?}");
        assert_eq!(cg.oom_kills(&other), 0);
        let run_dir = cg.run_dir.clone();
        drop(cg);
        assert!(!run_dir.exists(), "cgroups removed");
    }
}
