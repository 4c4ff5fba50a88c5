//! Filling a volume until the kernel answers ENOSPC, and freeing it again: the disk-full fault's
//! one writer, shared by the local platform (which calls it in-process on its tmpfs mounts) and the
//! `fill-volume` program (which a Kubernetes run execs inside a pod, on its `emptyDir` tmpfs).

use std::io::Write;
use std::path::Path;

/// Name of the file the filler writes into a volume.
pub const FILLER: &str = ".brownout-filler";

/// Appends to the volume's filler file until ENOSPC, in shrinking chunks so the last bytes are
/// taken too; returns the bytes written. Any error but ENOSPC is returned as is.
pub fn fill_until_enospc(dir: &Path) -> std::io::Result<u64> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(FILLER))?;
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

/// Removes the filler file; `false` if there was none.
pub fn free(dir: &Path) -> std::io::Result<bool> {
    match std::fs::remove_file(dir.join(FILLER)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
