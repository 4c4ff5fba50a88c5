//! CPU limits of replicas, as a container runtime sets them: each replica runs in a CPU cgroup of
//! its own (`brownout-<harness pid>/<replica>` under the harness's own cgroup; on cgroup v2 the
//! same directory as its memory cgroup, see [`super::cgroup`]), which the `cpu-limit` fault gives
//! a quota: cgroup v2 `cpu.max` = "<quota> <period>", v1 `cpu.cfs_quota_us` and
//! `cpu.cfs_period_us`. A replica that uses its quota within a period is throttled until the next
//! one (counted in `cpu.stat`'s `nr_throttled`), never killed. Without root or a cpu controller
//! there are no CPU cgroups, and the fault refuses to run. Removed at teardown, and those of a
//! killed harness by the next run's sweep.

use super::cgroup::{own_cgroup, remove_tree, replica_dir, sweep_dead_runs_in, Version, PREFIX};
use std::path::{Path, PathBuf};

/// The scheduling period of a quota: 100 ms, the kernel's and a container runtime's default.
pub const PERIOD_US: u64 = 100_000;

/// The run's CPU cgroups.
#[derive(Debug)]
pub struct CpuCgroups {
    /// `<harness cpu cgroup>/brownout-<pid>`.
    run_dir: PathBuf,
    version: Version,
}

/// The harness's own cpu cgroup directory and its hierarchy's version.
fn own_cpu_cgroup() -> Result<(PathBuf, Version), String> {
    own_cgroup("cpu", "cpu.cfs_quota_us")
}

/// A quota of `millicpus` thousandths of a CPU per [`PERIOD_US`], in µs.
pub fn quota_us(millicpus: u32) -> u64 {
    u64::from(millicpus) * PERIOD_US / 1000
}

impl super::cgroup::ReplicaLimit for CpuCgroups {
    type Value = u32;
    fn replica(&self, name: &str) -> Result<PathBuf, String> {
        CpuCgroups::replica(self, name)
    }
    fn set_limit(&self, dir: &Path, millicpus: Option<u32>) -> Result<(), String> {
        CpuCgroups::set_limit(self, dir, millicpus)
    }
    fn effect(&self, replica: &str, dir: &Path) -> Option<String> {
        let throttled = throttled_in(dir);
        (throttled > 0).then(|| {
            format!("{replica}: throttled in {throttled} periods of 100 ms under its CPU limit")
        })
    }
}

impl CpuCgroups {
    /// Creates the run's CPU cgroup directory (needs root).
    pub fn create() -> Result<CpuCgroups, String> {
        if !nix::unistd::geteuid().is_root() {
            return Err("CPU limits need root (cgroups)".into());
        }
        let (own, version) = own_cpu_cgroup()?;
        let run_dir = own.join(format!("{PREFIX}{}", std::process::id()));
        std::fs::create_dir_all(&run_dir)
            .map_err(|e| format!("cannot create cgroup {}: {e}", run_dir.display()))?;
        if version == Version::V2 {
            // The replicas' cgroups need the cpu controller from their parent.
            if let Err(e) = std::fs::write(run_dir.join("cgroup.subtree_control"), "+cpu") {
                return Err(format!(
                    "cannot delegate the cpu controller to {} ({e}): run brownout in a cgroup of its own with the cpu controller, e.g. systemd-run --scope -p Delegate=yes",
                    run_dir.display()
                ));
            }
        }
        Ok(CpuCgroups { run_dir, version })
    }

    /// The CPU cgroup of replica `name` (created if need be): where its process is started.
    pub fn replica(&self, name: &str) -> Result<PathBuf, String> {
        replica_dir(&self.run_dir, name)
    }

    /// Gives the replica whose cgroup is `dir` a quota of `millicpus` thousandths of a CPU per
    /// [`PERIOD_US`] (`None`: no limit).
    pub fn set_limit(&self, dir: &Path, millicpus: Option<u32>) -> Result<(), String> {
        let write = |file: &str, value: String| {
            std::fs::write(dir.join(file), &value)
                .map_err(|e| format!("cannot write {value} to {}: {e}", dir.join(file).display()))
        };
        match (self.version, millicpus) {
            (Version::V1, Some(m)) => {
                write("cpu.cfs_period_us", PERIOD_US.to_string())?;
                write("cpu.cfs_quota_us", quota_us(m).to_string())
            }
            (Version::V1, None) => write("cpu.cfs_quota_us", "-1".into()),
            (Version::V2, Some(m)) => write("cpu.max", format!("{} {PERIOD_US}", quota_us(m))),
            (Version::V2, None) => write("cpu.max", format!("max {PERIOD_US}")),
        }
    }

    /// The quota of the cgroup `dir` as the kernel holds it, in µs per period (`None`: no limit).
    pub fn quota(&self, dir: &Path) -> Result<Option<u64>, String> {
        let read = |file: &str| {
            std::fs::read_to_string(dir.join(file))
                .map_err(|e| format!("cannot read {}: {e}", dir.join(file).display()))
        };
        let text = match self.version {
            Version::V1 => read("cpu.cfs_quota_us")?,
            Version::V2 => read("cpu.max")?,
        };
        let quota = text.split_whitespace().next().unwrap_or("");
        Ok(match quota {
            "max" | "-1" => None,
            q => Some(q.parse().map_err(|_| format!("bad quota {text:?}"))?),
        })
    }

    /// Removes the replicas' CPU cgroups and the run's (once their processes are gone).
    pub fn remove(&self) {
        remove_tree(&self.run_dir);
    }
}

impl Drop for CpuCgroups {
    fn drop(&mut self) {
        self.remove();
    }
}

/// How many periods the cgroup `dir` was throttled in (`cpu.stat`'s `nr_throttled`, either
/// version).
pub fn throttled_in(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join("cpu.stat")).map_or(0, |t| throttled_count(&t))
}

/// The `nr_throttled N` line of `cpu.stat`.
fn throttled_count(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("nr_throttled "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Removes the CPU cgroups of harness runs that no longer run (a `kill -9` leaves them behind).
pub fn sweep_dead_runs() {
    if let Ok((own, _)) = own_cpu_cgroup() {
        sweep_dead_runs_in(&own);
    }
}

#[cfg(test)]
#[path = "cpu_cgroup_tests.rs"]
mod tests;
