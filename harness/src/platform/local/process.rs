//! Child processes that cannot outlive the harness. Every child gets a parent-death signal (so a
//! `kill -9` of the harness takes it down), its own process group (so a terminal Ctrl-C reaches only
//! the harness, which then stops children in order), its stdout/stderr in a log file, and its working
//! directory inside the run's work dir (which is how [`crate::platform::local::workdir`] sweeps leftovers).

use crate::error::{BrownoutError, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What to start.
pub struct ChildSpec {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Variables removed from the inherited environment.
    pub env_remove: Vec<String>,
    pub cwd: PathBuf,
    pub log: PathBuf,
    /// Signal the child gets when the harness dies (SIGKILL unless the program needs a clean stop).
    pub death_signal: Signal,
    /// Run as this (uid, gid), e.g. PostgreSQL refuses to run as root.
    pub run_as: Option<(u32, u32)>,
    /// Start in this cgroup (its directory): a replica's memory limit.
    pub cgroup: Option<PathBuf>,
    /// And in this one: a replica's CPU limit (cgroup v1: another hierarchy; v2: the same
    /// directory as `cgroup`, joined once).
    pub cpu_cgroup: Option<PathBuf>,
}

impl ChildSpec {
    pub fn new(program: impl Into<PathBuf>, cwd: &Path, log: PathBuf) -> Self {
        ChildSpec {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            env_remove: Vec::new(),
            cwd: cwd.to_path_buf(),
            log,
            death_signal: Signal::SIGKILL,
            run_as: None,
            cgroup: None,
            cpu_cgroup: None,
        }
    }
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }
    pub fn env(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }
}

/// A started child. Dropping it stops it (SIGTERM, a short wait, then SIGKILL).
pub struct ManagedChild {
    pub name: String,
    child: Child,
    stopped: bool,
}

pub fn spawn(name: &str, spec: &ChildSpec) -> Result<ManagedChild> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log)
        .map_err(|e| {
            BrownoutError::Environment(format!("cannot open log {}: {e}", spec.log.display()))
        })?;
    let log2 = log
        .try_clone()
        .map_err(|e| BrownoutError::Environment(format!("cannot open log: {e}")))?;
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0);
    for k in &spec.env_remove {
        cmd.env_remove(k);
    }
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    if let Some((uid, gid)) = spec.run_as {
        cmd.uid(uid).gid(gid);
    }
    let death_signal = spec.death_signal as libc::c_ulong;
    let parent = std::process::id() as libc::pid_t;
    // Its memory cgroup, then its CPU cgroup if that is another directory (cgroup v1).
    let mut dirs: Vec<&PathBuf> = spec.cgroup.iter().collect();
    dirs.extend(
        spec.cpu_cgroup
            .iter()
            .filter(|d| spec.cgroup.as_ref() != Some(*d)),
    );
    let cgroup_procs = dirs
        .into_iter()
        .map(|dir| {
            std::ffi::CString::new(dir.join("cgroup.procs").as_os_str().as_encoded_bytes()).map_err(
                |_| BrownoutError::Environment(format!("bad cgroup path {}", dir.display())),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    // SAFETY: only async-signal-safe calls (open, write, close, prctl, getppid, kill) between fork
    // and exec.
    unsafe {
        cmd.pre_exec(move || {
            for procs in &cgroup_procs {
                // Into its cgroups before exec: its memory is limited from its first allocation.
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let written = libc::write(fd, b"0".as_ptr().cast(), 1);
                libc::close(fd);
                if written != 1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, death_signal, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The harness may have died between fork and prctl.
            if libc::getppid() != parent {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| {
        BrownoutError::Environment(format!(
            "cannot start {} ({}): {e}",
            name,
            spec.program.display()
        ))
    })?;
    tracing::debug!(name, pid = child.id(), "started");
    Ok(ManagedChild {
        name: name.to_string(),
        child,
        stopped: false,
    })
}

/// Why a child did not become ready.
#[derive(Debug)]
pub enum NotReady {
    /// It exited first.
    Exited(ExitStatus),
    /// Time ran out; the last reason it gave for not being ready.
    TimedOut(String),
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotReady::Exited(status) => write!(f, "exited ({status})"),
            NotReady::TimedOut(last) if last.is_empty() => write!(f, "not ready in time"),
            NotReady::TimedOut(last) => write!(f, "not ready in time: {last}"),
        }
    }
}

impl ManagedChild {
    /// Calls `ready` every `every` until it succeeds; fails as soon as the child has exited, or
    /// once `within` has passed. Every component's "start it, then wait until it answers" loop.
    pub async fn wait_until<T, Fut>(
        &mut self,
        within: Duration,
        every: Duration,
        mut ready: impl FnMut() -> Fut,
    ) -> std::result::Result<T, NotReady>
    where
        Fut: std::future::Future<Output = std::result::Result<T, String>>,
    {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.try_wait() {
                return Err(NotReady::Exited(status));
            }
            match ready().await {
                Ok(v) => return Ok(v),
                Err(why) if Instant::now() > deadline => return Err(NotReady::TimedOut(why)),
                Err(_) => tokio::time::sleep(every).await,
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if it has exited (reaps it).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn signal(&self, sig: Signal) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), sig);
    }

    /// Marks the child stopped and sends `sig`; if it had already exited, returns its status.
    fn begin_stop(&mut self, sig: Signal) -> Option<ExitStatus> {
        self.stopped = true;
        let exited = self.reaped();
        if exited.is_none() {
            self.signal(sig);
        }
        exited
    }

    /// The exit status if the child has exited, after killing what is left of its process group.
    fn reaped(&mut self) -> Option<ExitStatus> {
        let status = self.try_wait()?;
        self.kill_group();
        Some(status)
    }

    /// Sends `sig`, waits up to `grace` for the exit, then SIGKILLs the whole process group.
    /// Returns the exit status and whether SIGKILL was needed.
    pub fn stop(&mut self, sig: Signal, grace: Duration) -> (Option<ExitStatus>, bool) {
        if let Some(status) = self.begin_stop(sig) {
            return (Some(status), false);
        }
        let deadline = Instant::now() + grace.min(Duration::from_secs(24 * 3600));
        while Instant::now() < deadline {
            if let Some(status) = self.reaped() {
                return (Some(status), false);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill_group();
        (self.child.wait().ok(), true)
    }

    /// Like [`ManagedChild::stop`], without blocking the async runtime.
    pub async fn stop_async(&mut self, sig: Signal, grace: Duration) -> (Option<ExitStatus>, bool) {
        if let Some(status) = self.begin_stop(sig) {
            return (Some(status), false);
        }
        let deadline = Instant::now() + grace.min(Duration::from_secs(24 * 3600));
        while Instant::now() < deadline {
            if let Some(status) = self.reaped() {
                return (Some(status), false);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.kill_group();
        for _ in 0..100 {
            if let Some(status) = self.try_wait() {
                return (Some(status), true);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (None, true)
    }

    /// Kills anything left in the child's process group (e.g. worker processes).
    fn kill_group(&self) {
        let _ = kill(Pid::from_raw(-(self.child.id() as i32)), Signal::SIGKILL);
    }
}

impl Drop for ManagedChild {
    fn drop(&mut self) {
        if !self.stopped {
            self.stop(Signal::SIGTERM, Duration::from_secs(3));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(dir: &Path, program: &str, args: &[&str]) -> ManagedChild {
        let spec = ChildSpec::new(program, dir, dir.join("child.log")).args(args.iter().copied());
        spawn(program, &spec).unwrap()
    }

    #[tokio::test]
    async fn wait_until_is_ready_times_out_with_the_last_reason_or_sees_the_exit() {
        let dir = tempfile::tempdir().unwrap();
        let every = Duration::from_millis(10);

        let mut child = start(dir.path(), "sleep", &["5"]);
        let mut tries = 0;
        let got = child
            .wait_until(Duration::from_secs(5), every, || {
                tries += 1;
                let n = tries;
                async move {
                    if n < 3 {
                        Err(format!("try {n}"))
                    } else {
                        Ok(n)
                    }
                }
            })
            .await;
        assert_eq!(got.unwrap(), 3);

        let never = child
            .wait_until(Duration::from_millis(100), every, || async {
                Err::<(), _>("still booting".to_string())
            })
            .await;
        assert!(
            matches!(&never, Err(NotReady::TimedOut(why)) if why == "still booting"),
            "{never:?}"
        );
        child.stop(Signal::SIGKILL, Duration::from_secs(1));

        let mut quits = start(dir.path(), "false", &[]);
        let exited = quits
            .wait_until(Duration::from_secs(5), every, || async {
                Err::<(), _>("not yet".to_string())
            })
            .await;
        assert!(
            matches!(&exited, Err(NotReady::Exited(s)) if s.code() == Some(1)),
            "{exited:?}"
        );
    }
}
