//! Filling a volume until the kernel answers ENOSPC, and freeing it again: the disk-full fault's
//! one writer, shared by the local platform (which calls it in-process on its tmpfs mounts) and the
//! `fill-volume` program (which a Kubernetes run execs inside a pod, on its `emptyDir` tmpfs).
//!
//! On Kubernetes the filler that keeps a volume full ([`Filler::hold`]) and the heal
//! (`fill-volume free`, [`free`]) are two execs in two processes, and the first one's stdin may
//! close after the second one runs. So `free` cannot be undone by a late top-up: the filler holds
//! an exclusive `flock` on its file for as long as it runs and tops up only the file it created
//! (never a new one) while that file is still in the directory; `free` unlinks the file and then
//! waits for that lock, i.e. for the filler to have seen the file gone and exited, which releases
//! the last reference to the unlinked file and so its space.

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Name of the file the filler writes into a volume.
pub const FILLER: &str = ".brownout-filler";

/// How long [`free`] waits for a filler that still runs to see its file gone and exit.
pub const FREE_WITHIN: Duration = Duration::from_secs(10);

/// Appends `f` until ENOSPC, in shrinking chunks so the last bytes are taken too.
fn write_until_enospc(f: &mut File) -> std::io::Result<u64> {
    let mut written = 0u64;
    for chunk in [1 << 20, 4096, 512] {
        let buf = vec![0u8; chunk];
        loop {
            match f.write_all(&buf).and_then(|_| f.flush()) {
                Ok(()) => written += chunk as u64,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => return Err(e),
            }
        }
    }
    let _ = f.sync_all();
    Ok(written)
}

/// Appends to the volume's filler file until ENOSPC, in shrinking chunks so the last bytes are
/// taken too; returns the bytes written. Any error but ENOSPC is returned as is.
pub fn fill_until_enospc(dir: &Path) -> std::io::Result<u64> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(FILLER))?;
    write_until_enospc(&mut f)
}

/// Why [`Filler::hold`] stopped keeping the volume full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldEnd {
    /// Told to stop (stdin closed, a signal).
    Stopped,
    /// The filler file was removed (`free`): the filler exits so its space comes back.
    Freed,
    /// The hold time passed.
    TimedOut,
}

/// A running filler: its file, open and exclusively locked for as long as the filler lives.
pub struct Filler {
    file: Flock<File>,
    path: PathBuf,
}

impl Filler {
    /// Creates (or reopens) the filler file in `dir`, locks it, and writes until ENOSPC; returns
    /// the filler and the bytes written.
    pub fn start(dir: &Path) -> std::io::Result<(Filler, u64)> {
        let path = dir.join(FILLER);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        let file = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
            std::io::Error::other(format!("{} is held by another filler: {e}", path.display()))
        })?;
        let before = file.metadata()?.len();
        let mut filler = Filler { file, path };
        write_until_enospc(&mut filler.file)?;
        // What the file grew by (the counted chunks miss a chunk's partial last write).
        let written = filler.file.metadata()?.len().saturating_sub(before);
        Ok((filler, written))
    }

    /// Whether the directory still has this filler's file (not removed, not replaced).
    fn still_there(&self) -> std::io::Result<bool> {
        let mine = self.file.metadata()?;
        match std::fs::metadata(&self.path) {
            Ok(m) => Ok(m.dev() == mine.dev() && m.ino() == mine.ino()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Takes what was freed since the last write, unless the file was removed (`None`).
    pub fn top_up(&mut self) -> std::io::Result<Option<u64>> {
        if !self.still_there()? {
            return Ok(None);
        }
        write_until_enospc(&mut self.file).map(Some)
    }

    /// Keeps the volume full, topping up every `every` as a runaway writer would, until `stop`
    /// is set, `until` passes, or the file is removed; then closes the file (and so releases
    /// its lock and, if it was removed, its space).
    pub fn hold(mut self, stop: &AtomicBool, until: Instant, every: Duration) -> HoldEnd {
        loop {
            std::thread::sleep(every);
            if stop.load(Ordering::SeqCst) {
                return HoldEnd::Stopped;
            }
            if Instant::now() >= until {
                return HoldEnd::TimedOut;
            }
            // Any error (ENOSPC is not one here) is retried at the next top-up.
            if let Ok(None) = self.top_up() {
                return HoldEnd::Freed;
            }
        }
    }
}

/// Removes the filler file and waits (up to [`FREE_WITHIN`]) until no filler holds it any
/// more, so its space is back when this returns `true`; `false` if there was none.
pub fn free(dir: &Path) -> std::io::Result<bool> {
    free_within(dir, FREE_WITHIN)
}

/// [`free`], waiting at most `within` for a running filler to exit.
pub fn free_within(dir: &Path, within: Duration) -> std::io::Result<bool> {
    let path = dir.join(FILLER);
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // A filler that still runs holds the lock until it sees the file gone and exits.
    let deadline = Instant::now() + within;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(_unlocked_on_drop) => return Ok(true),
            Err((f, Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                file = f;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err((_, e)) => {
                return Err(std::io::Error::other(format!(
                    "removed {}, but the filler holding it did not stop within {within:?} ({e})",
                    path.display()
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// On a directory that is not a small filesystem the filler would run for long: the test
    /// needs a real tmpfs, which needs root; without it, the write error path is still checked.
    #[test]
    fn a_missing_directory_is_an_error_and_free_of_nothing_is_false() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone");
        let e = fill_until_enospc(&gone).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        assert!(!free(dir.path()).unwrap());
        std::fs::write(dir.path().join(FILLER), b"x").unwrap();
        assert!(free(dir.path()).unwrap());
        assert!(!dir.path().join(FILLER).exists());
    }

    /// A 256 KiB tmpfs on a temporary directory (needs root: `None` without it), unmounted on drop.
    struct Tmpfs(tempfile::TempDir);

    impl Tmpfs {
        fn mount() -> Option<Tmpfs> {
            let dir = tempfile::tempdir().unwrap();
            match nix::mount::mount(
                Some("tmpfs"),
                dir.path(),
                Some("tmpfs"),
                nix::mount::MsFlags::empty(),
                Some("size=256k"),
            ) {
                Ok(()) => Some(Tmpfs(dir)),
                Err(e) => {
                    eprintln!("skipped: mounting a tmpfs needs root ({e})");
                    None
                }
            }
        }
        fn available(&self) -> u64 {
            let s = nix::sys::statvfs::statvfs(self.0.path()).unwrap();
            s.blocks_available() as u64 * s.fragment_size() as u64
        }
    }

    impl Drop for Tmpfs {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(self.0.path(), nix::mount::MntFlags::MNT_DETACH);
        }
    }

    /// disk-full's heal on Kubernetes: the filler (`fill-volume fill`) and `fill-volume free` are
    /// two execs, and the filler's stdin may close only after `free` ran, so the filler is still
    /// topping up (here every millisecond, never told to stop) when the file is removed. On a
    /// real tmpfs: once `free` returns, the filler has exited, the file is gone and the space
    /// is back, and it stays back (no late top-up recreates the file).
    #[test]
    fn free_cannot_be_undone_by_a_filler_still_topping_up() {
        let Some(fs) = Tmpfs::mount() else { return };
        let dir = fs.0.path().to_path_buf();
        let size = fs.available();
        for round in 0..20 {
            let (filler, written) = Filler::start(&dir).unwrap();
            assert!(written > 0 && fs.available() < 4096, "full: {written}");
            let stop = Arc::new(AtomicBool::new(false));
            let s = stop.clone();
            let until = Instant::now() + Duration::from_secs(30);
            let holder =
                std::thread::spawn(move || filler.hold(&s, until, Duration::from_millis(1)));
            std::thread::sleep(Duration::from_millis(5 + round));
            assert!(free(&dir).unwrap(), "round {round}: there was a filler");
            assert!(
                holder.is_finished() || {
                    std::thread::sleep(Duration::from_millis(50));
                    holder.is_finished()
                },
                "round {round}: the filler still runs after free"
            );
            assert_eq!(holder.join().unwrap(), HoldEnd::Freed);
            std::thread::sleep(Duration::from_millis(20));
            assert!(!dir.join(FILLER).exists(), "round {round}: refilled");
            assert_eq!(fs.available(), size, "round {round}: space is back");
            stop.store(true, Ordering::SeqCst);
        }
    }

    /// A filler told to stop (stdin closed) leaves its file until `free`, which then finds no
    /// holder and returns at once; a second filler on the same volume is refused.
    #[test]
    fn a_stopped_filler_is_freed_at_once_and_one_volume_has_one_filler() {
        let Some(fs) = Tmpfs::mount() else { return };
        let dir = fs.0.path().to_path_buf();
        let size = fs.available();
        let (filler, _) = Filler::start(&dir).unwrap();
        let e = Filler::start(&dir).err().unwrap();
        assert!(e.to_string().contains("held by another filler"), "{e}");
        let stop = AtomicBool::new(true);
        let end = filler.hold(
            &stop,
            Instant::now() + Duration::from_secs(5),
            Duration::ZERO,
        );
        assert_eq!(end, HoldEnd::Stopped);
        assert!(dir.join(FILLER).exists());
        let t0 = Instant::now();
        assert!(free_within(&dir, Duration::from_secs(1)).unwrap());
        assert!(t0.elapsed() < Duration::from_millis(500));
        assert_eq!(fs.available(), size);
    }
}
