//! The per-run work directory (`$TMPDIR/brownout-run-<pid>-<random>`): data dirs, configs and
//! sockets of everything a run starts. Every child runs with its cwd inside it, so a later run can
//! sweep what a `kill -9` of an earlier harness left behind: processes whose cwd is in a dead run's
//! directory are killed, volumes mounted below it are unmounted, and the directory removed.

use crate::error::{BrownoutError, Result};
use std::path::{Path, PathBuf};

const PREFIX: &str = "brownout-run-";

pub struct WorkDir {
    dir: tempfile::TempDir,
}

impl WorkDir {
    /// Sweeps leftovers of dead runs, then creates a fresh work dir.
    pub fn create() -> Result<WorkDir> {
        sweep_dead_runs();
        let dir = tempfile::Builder::new()
            .prefix(&format!("{PREFIX}{}-", std::process::id()))
            .tempdir()
            .map_err(|e| BrownoutError::Environment(format!("cannot create a temp dir: {e}")))?;
        // Traversable by a dropped-privilege PostgreSQL; the data dirs inside stay private.
        set_mode(dir.path(), 0o755)?;
        Ok(WorkDir { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A subdirectory, created.
    pub fn subdir(&self, name: &str) -> Result<PathBuf> {
        let p = self.dir.path().join(name);
        std::fs::create_dir_all(&p).map_err(|e| {
            BrownoutError::Environment(format!("cannot create {}: {e}", p.display()))
        })?;
        Ok(p)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        kill_processes_under(self.dir.path());
        unmount_under(self.dir.path());
    }
}

/// Mount points at or below `dir` (from /proc/self/mountinfo), deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        // mountinfo escapes spaces and other specials as octal (\040).
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found
}

/// Detaches every mount at or below `dir` (volumes a run mounted), so the dir can be removed.
pub fn unmount_under(dir: &Path) -> usize {
    let mounts = mounts_under(dir);
    for m in &mounts {
        if let Err(e) = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH) {
            eprintln!("brownout: cannot unmount {}: {e}", m.display());
        }
    }
    mounts.len()
}

pub fn set_mode(p: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .map_err(|e| BrownoutError::Environment(format!("cannot chmod {}: {e}", p.display())))
}

/// Removes work dirs of runs whose harness process is gone, killing what still runs inside them.
pub fn sweep_dead_runs() -> Vec<PathBuf> {
    let mut swept = Vec::new();
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return swept;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let path = entry.path();
        kill_processes_under(&path);
        unmount_under(&path);
        if std::fs::remove_dir_all(&path).is_ok() {
            eprintln!(
                "brownout: swept leftovers of an earlier run: {}",
                path.display()
            );
            swept.push(path);
        }
    }
    swept
}

/// SIGKILLs every process whose working directory is `dir` or below it.
pub fn kill_processes_under(dir: &Path) -> usize {
    let me = std::process::id();
    let mut killed = 0;
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return 0;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid as u32 == me {
            continue;
        }
        if let Ok(cwd) = std::fs::read_link(p.path().join("cwd")) {
            if cwd.starts_with(dir) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
                killed += 1;
            }
        }
    }
    killed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_unmounts_and_removes_the_work_dir_of_a_dead_run() {
        // A pid that cannot be alive (above the kernel's pid_max).
        let dead = std::env::temp_dir().join(format!("{PREFIX}4999999-test{}", std::process::id()));
        let volume = dead.join("volumes/checkout-0/receipts");
        std::fs::create_dir_all(&volume).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "brownout-test"])
            .arg(&volume)
            .status()
            .unwrap();
        assert!(
            mounted.success(),
            "mounting a tmpfs needs root (CAP_SYS_ADMIN)"
        );
        std::fs::write(volume.join("receipt.json"), b"{}").unwrap();
        assert_eq!(mounts_under(&dead), vec![volume.clone()]);
        let swept = sweep_dead_runs();
        assert!(swept.contains(&dead), "{swept:?}");
        assert!(mounts_under(&dead).is_empty() && !dead.exists());
    }
}
