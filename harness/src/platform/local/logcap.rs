//! The log janitor: keeps the run's component logs (every file in its log dir) within a cap per
//! file and a cap per run, and records every cut in the evidence.
//!
//! A thread started with the stack checks the files every [`EVERY`]. A file past the per-file cap
//! is rotated to `<name>.1` (the previous `.1`, whose bytes are then dropped):
//!
//! - **nginx's own logs** (access, error, and the edge log mtail reads) the way nginx documents:
//!   rename, then SIGUSR1 to the master, which reopens them ("Rotating Log-files",
//!   <https://nginx.org/en/docs/control.html>); the rename is a hard link to `.1` and a new empty
//!   file renamed over the name, so the name never goes missing ([`Sweeper::switch`]). mtail
//!   (3.0.0-rc50, Debian's) follows that as a rotation: at the old file's end it finds another file
//!   under the name and reads that one from its start (`internal/tailer/logstream/filestream.go`,
//!   `!os.SameFile(fi, newfi)`), so no line is counted twice, and none is lost but what nginx's
//!   workers append to the old file in the moment between the switch and their reopen (the
//!   signal is sent at once; `tests.rs` checks the edge counts against every request sent).
//!   Truncating instead loses the lines appended since mtail's last read (that file's own comment:
//!   "potentially lossy"), up to a poll interval's worth.
//! - **Every other log** (the children's stdout/stderr, opened with `O_APPEND` by `process.rs`)
//!   the way logrotate's `copytruncate` does: copy to `.1`, then truncate to 0; an `O_APPEND`
//!   writer's next write lands at the new end. Lines appended between the last copied byte and the
//!   truncation (microseconds) are lost, as with logrotate.
//!
//! When the whole dir passes the per-run cap, rotated files are dropped, oldest first; if the live
//! files alone are over it, the largest is truncated. [`Janitor::stop`] (at teardown, after the
//! writers stopped) makes a last pass, records the totals ([`LogUsage`]) and joins the thread.

use crate::error::{BrownoutError, Result};
use crate::evidence::{Evidence, LogCutReason, LogUsage};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// How often the janitor looks at the files.
pub const EVERY: Duration = Duration::from_secs(2);
const MIB: u64 = 1024 * 1024;

/// The caps a run's component logs are held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogCaps {
    /// A live file past this is rotated.
    pub per_file: u64,
    /// All files of the run (live and rotated) are held under this.
    pub per_run: u64,
}

impl LogCaps {
    /// 16 MiB per file, 256 MiB per run. A 30-minute game day at 100 req/s wrote 165 MB of logs,
    /// three quarters of it app and nginx logs; at most 32 MiB per file (live and `.1`) keeps the
    /// last ~100,000 nginx access lines (the last minutes of the run, where a failure is), and
    /// 256 MiB keeps a run that size nearly whole while a 12-hour game day at 400 req/s (~1.3 GB
    /// an hour) stays bounded. Copying 16 MiB at a rotation takes ~10 ms.
    pub const DEFAULT: LogCaps = LogCaps {
        per_file: 16 * MIB,
        per_run: 256 * MIB,
    };
    /// The environment variables that override them (sizes as files write them: "64MiB").
    pub const PER_FILE_VAR: &'static str = "BROWNOUT_LOG_CAP_FILE";
    pub const PER_RUN_VAR: &'static str = "BROWNOUT_LOG_CAP_RUN";
    /// The smallest cap that leaves a useful log.
    pub const MIN: u64 = 64 * 1024;

    /// The caps, from the environment where set.
    pub fn from_env() -> Result<LogCaps> {
        let var = |name: &str| std::env::var(name).ok();
        LogCaps::from_values(var(Self::PER_FILE_VAR), var(Self::PER_RUN_VAR))
    }

    /// The caps from the variables' values (`None`: not set, the default).
    pub fn from_values(per_file: Option<String>, per_run: Option<String>) -> Result<LogCaps> {
        let parse = |name: &str, value: Option<String>, default: u64| -> Result<u64> {
            let Some(text) = value else {
                return Ok(default);
            };
            // Not a volume's size (held to a tmpfs's 1 GiB): a run's logs may be allowed more.
            let bytes = crate::units::parse_bytes(&text).map_err(|e| {
                BrownoutError::BadInput(format!(
                    "{name}={text:?}: {e}, or unset it for the default"
                ))
            })?;
            if bytes < Self::MIN {
                return Err(BrownoutError::BadInput(format!(
                    "{name}={text:?} is below 64KiB, too small to keep a useful log; \
                     write at least \"64KiB\", or unset it for the default"
                )));
            }
            Ok(bytes)
        };
        let caps = LogCaps {
            per_file: parse(Self::PER_FILE_VAR, per_file, Self::DEFAULT.per_file)?,
            per_run: parse(Self::PER_RUN_VAR, per_run, Self::DEFAULT.per_run)?,
        };
        if caps.per_run < caps.per_file {
            return Err(BrownoutError::BadInput(format!(
                "{}: {} bytes per run is less than {}'s {} bytes per file, so no file could \
                 reach its own cap; raise {} or lower {}",
                Self::PER_RUN_VAR,
                caps.per_run,
                Self::PER_FILE_VAR,
                caps.per_file,
                Self::PER_RUN_VAR,
                Self::PER_FILE_VAR
            )));
        }
        Ok(caps)
    }
}

/// Files a program reopens on SIGUSR1 (nginx's logs): rotated by rename, then the signal.
#[derive(Debug, Clone, Default)]
pub struct Reopened {
    /// File names in the log dir.
    pub files: Vec<String>,
    /// The program's pid once it runs (0: not yet, or no more): until then its files wait.
    pub pid: Arc<AtomicU32>,
}

/// The running janitor. Stop it with [`Janitor::stop`]; dropping it stops it too.
pub struct Janitor {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<Sweeper>>,
    evidence: Evidence,
}

impl Janitor {
    /// Starts watching `dir` (the run's log dir), a look every [`EVERY`].
    pub fn start(dir: &Path, caps: LogCaps, reopened: Reopened, evidence: &Evidence) -> Janitor {
        Janitor::start_every(dir, caps, reopened, evidence, EVERY)
    }

    /// Starts watching `dir`, a look every `every`.
    pub fn start_every(
        dir: &Path,
        caps: LogCaps,
        reopened: Reopened,
        evidence: &Evidence,
        every: Duration,
    ) -> Janitor {
        let (stop, stopped) = mpsc::channel::<()>();
        let mut sweeper = Sweeper {
            dir: dir.to_path_buf(),
            caps,
            reopened,
            evidence: evidence.clone(),
            dropped: 0,
        };
        let thread = std::thread::Builder::new()
            .name("log-janitor".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    sweeper.pass();
                }
                sweeper
            })
            .ok();
        Janitor {
            stop: Some(stop),
            thread,
            evidence: evidence.clone(),
        }
    }

    /// Stops the thread, makes a last pass (the writers have stopped: the caps hold on what is
    /// left) and records the totals. Blocks for at most one pass.
    pub fn stop(mut self) -> Option<LogUsage> {
        let mut sweeper = self.join()?;
        sweeper.pass();
        let usage = sweeper.usage();
        self.evidence.log_usage(usage);
        Some(usage)
    }

    fn join(&mut self) -> Option<Sweeper> {
        drop(self.stop.take());
        self.thread.take()?.join().ok()
    }
}

impl Drop for Janitor {
    fn drop(&mut self) {
        self.join();
    }
}

/// A file in the log dir.
struct Entry {
    name: String,
    path: PathBuf,
    len: u64,
    modified: SystemTime,
}

impl Entry {
    fn rotated(&self) -> bool {
        self.name.ends_with(".1")
    }
}

/// What the thread owns: the dir, the caps, and the bytes dropped so far.
struct Sweeper {
    dir: PathBuf,
    caps: LogCaps,
    reopened: Reopened,
    evidence: Evidence,
    dropped: u64,
}

impl Sweeper {
    /// The regular files in the dir (not following links).
    fn entries(&self) -> Vec<Entry> {
        let Ok(read) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        read.flatten()
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                meta.is_file().then(|| Entry {
                    name: e.file_name().to_string_lossy().into_owned(),
                    path: e.path(),
                    len: meta.len(),
                    modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                })
            })
            .collect()
    }

    /// One look: rotates what is past the per-file cap, then holds the per-run cap.
    fn pass(&mut self) {
        for e in self.entries() {
            if !e.rotated() && e.len > self.caps.per_file {
                if let Err(err) = self.rotate(&e) {
                    tracing::warn!(file = %e.name, %err, "log janitor: cannot rotate");
                }
            }
        }
        self.hold_run_cap();
    }

    /// Moves `e` to `<name>.1` (dropping the previous `.1`) by rename and reopen, or by copy and
    /// truncate.
    fn rotate(&mut self, e: &Entry) -> io::Result<()> {
        let rotated = self.dir.join(format!("{}.1", e.name));
        let previous = std::fs::symlink_metadata(&rotated).map_or(0, |m| m.len());
        if self.reopened.files.contains(&e.name) {
            let pid = self.reopened.pid.load(Ordering::SeqCst);
            if pid == 0 {
                return Ok(()); // not running: nothing is appending; it waits for its program
            }
            self.switch(e, &rotated)?;
            kill(Pid::from_raw(pid as i32), Signal::SIGUSR1).map_err(io::Error::from)?;
        } else {
            copy_truncate(&e.path, &rotated)?;
        }
        self.dropped += previous;
        self.evidence
            .log_cut(&e.name, LogCutReason::Rotated, previous);
        Ok(())
    }

    /// Gives `e`'s bytes the name `rotated` and its own name to a new empty file, so that the name
    /// never goes missing: mtail, finding it gone, would end its stream and later find the new
    /// file by polling, reading it from its end (`logstream.New` with `oneShot` false), losing
    /// the lines written in between. Finding another file under the name at its old file's end,
    /// it reads the new one from its start.
    fn switch(&self, e: &Entry, rotated: &Path) -> io::Result<()> {
        let fresh = self.dir.join(format!(".{}.new", e.name));
        let perms = std::fs::metadata(&e.path)?.permissions();
        File::create(&fresh)?.set_permissions(perms)?;
        match std::fs::remove_file(rotated) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
            _ => {}
        }
        std::fs::hard_link(&e.path, rotated)?;
        std::fs::rename(&fresh, &e.path)
    }

    /// Over the per-run cap: drops rotated files, oldest first, then truncates the largest live
    /// files.
    fn hold_run_cap(&mut self) {
        let mut entries = self.entries();
        let mut total: u64 = entries.iter().map(|e| e.len).sum();
        if total <= self.caps.per_run {
            return;
        }
        // Rotated files first (oldest first), then live files, largest first.
        entries.sort_by(|a, b| {
            b.rotated()
                .cmp(&a.rotated())
                .then_with(|| match a.rotated() {
                    true => a.modified.cmp(&b.modified),
                    false => b.len.cmp(&a.len),
                })
        });
        for e in entries {
            if total <= self.caps.per_run {
                break;
            }
            let cut = match e.rotated() {
                true => std::fs::remove_file(&e.path),
                false => OpenOptions::new()
                    .write(true)
                    .open(&e.path)
                    .and_then(|f| f.set_len(0)),
            };
            match cut {
                Ok(()) => {
                    total -= e.len;
                    self.dropped += e.len;
                    let file = e.name.strip_suffix(".1").unwrap_or(&e.name);
                    self.evidence.log_cut(file, LogCutReason::RunCap, e.len);
                }
                Err(err) => tracing::warn!(file = %e.name, %err, "log janitor: cannot cut"),
            }
        }
    }

    fn usage(&self) -> LogUsage {
        let kept = self.entries().iter().map(|e| e.len).sum();
        LogUsage {
            per_file_cap_bytes: self.caps.per_file,
            per_run_cap_bytes: self.caps.per_run,
            written_bytes: kept + self.dropped,
            kept_bytes: kept,
            dropped_bytes: self.dropped,
        }
    }
}

/// logrotate's `copytruncate`: copies `path` to `rotated` (replacing it), including what was
/// appended while copying, then truncates `path` to 0.
fn copy_truncate(path: &Path, rotated: &Path) -> io::Result<()> {
    let mut src = File::open(path)?;
    let mut dst = File::create(rotated)?;
    while io::copy(&mut src, &mut dst)? > 0 {}
    OpenOptions::new().write(true).open(path)?.set_len(0)
}

#[cfg(test)]
#[path = "logcap_tests.rs"]
mod tests;
