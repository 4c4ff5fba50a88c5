//! Reading the files a user hands us: only regular files (a FIFO would block `validate` forever, a
//! device such as `/dev/zero` would be read until memory runs out), at most [`MAX_FILE_BYTES`],
//! valid UTF-8. A directory given where a file belongs is named as such, not as "missing", and
//! a symlink loop as a loop. Reports and baselines (`report.json`, read by `summarize`,
//! `coverage` and `--baseline`) go through the same reader with their own cap,
//! [`MAX_REPORT_BYTES`].

use crate::error::{BrownoutError, Result};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The largest scenario, system or rule file read (the shipped ones are under 10 KiB).
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// The largest `report.json` read back (`summarize`, `coverage`, a baseline). The matrix's
/// reports are 18 to 27 KiB (a 30 s scenario); a report grows with the run's transitions
/// (probes, lifecycle, alerts), not its requests, so 64 MiB leaves room for a 12-hour game day
/// with flapping probes while bounding what one file can make the harness hold.
pub const MAX_REPORT_BYTES: u64 = 64 << 20;

/// What `describe` says of a symlink loop.
const LOOP: &str = "a symlink loop";

/// What a path is, for "the system file is a directory" kinds of message.
pub fn describe(path: &Path) -> Option<&'static str> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        // ELOOP: the path (or a directory on the way) is a chain of links that never ends.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Some(LOOP),
        Err(_) => return None,
    };
    let t = meta.file_type();
    use std::os::unix::fs::FileTypeExt;
    Some(if t.is_file() {
        "a regular file"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    })
}

/// Why `path` cannot be used as an input file, if it cannot: it does not exist, or is not a
/// regular file.
pub fn not_a_file(path: &Path) -> Option<String> {
    match describe(path) {
        None => Some("does not exist".into()),
        Some("a regular file") => None,
        Some(LOOP) => Some(
            "is a symlink loop (too many levels of symbolic links): point it at a real file".into(),
        ),
        Some(what) => Some(format!("is {what}, not a file")),
    }
}

/// Reads a regular file of at most [`MAX_FILE_BYTES`] as UTF-8.
pub fn read_capped(path: &Path) -> Result<String> {
    read_capped_to(path, MAX_FILE_BYTES)
}

/// Reads a regular file of at most `cap` bytes as UTF-8 (a scenario, system or rule file:
/// [`MAX_FILE_BYTES`]; a report or baseline: [`MAX_REPORT_BYTES`]).
pub fn read_capped_to(path: &Path, cap: u64) -> Result<String> {
    let bad = |msg: String| BrownoutError::BadInput(format!("{}: {msg}", path.display()));
    if let Some(why) = not_a_file(path) {
        return Err(bad(why));
    }
    // Non-blocking open: if the path was swapped for a FIFO since the check, opening does not wait
    // for a writer; the type is checked again on the opened file.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| bad(format!("cannot read: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| bad(format!("cannot read: {e}")))?;
    if !meta.is_file() {
        return Err(bad("is not a regular file".into()));
    }
    if meta.len() > cap {
        return Err(bad(format!(
            "is {} bytes; such files are at most {cap} bytes (give the right file, or cut it down)",
            meta.len(),
        )));
    }
    let mut bytes = Vec::new();
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| bad(format!("cannot read: {e}")))?;
    if bytes.len() as u64 > cap {
        return Err(bad(format!(
            "is over {cap} bytes; such files are at most that (give the right file, or cut it down)"
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        let upto = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = upto.iter().filter(|b| **b == b'\n').count() + 1;
        let col = upto.iter().rev().take_while(|b| **b != b'\n').count() + 1;
        BrownoutError::BadInput(format!(
            "{}:{line}:{col}: not UTF-8 text (save the file as UTF-8)",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regular_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.toml");
        std::fs::write(&p, "name = 'x'\n").unwrap();
        assert_eq!(read_capped(&p).unwrap(), "name = 'x'\n");
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fifo.toml");
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let e = read_capped(&p).unwrap_err().to_string();
        assert!(e.contains("is a FIFO, not a file"), "{e}");
    }

    #[test]
    fn a_device_and_a_directory_are_named_as_such() {
        let e = read_capped(Path::new("/dev/zero")).unwrap_err().to_string();
        assert!(e.contains("is a device, not a file"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let e = read_capped(dir.path()).unwrap_err().to_string();
        assert!(e.contains("is a directory, not a file"), "{e}");
    }

    #[test]
    fn a_file_over_the_cap_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.toml");
        std::fs::write(&p, vec![b'#'; MAX_FILE_BYTES as usize + 1]).unwrap();
        let e = read_capped(&p).unwrap_err().to_string();
        assert!(e.contains("at most 1048576 bytes"), "{e}");
        // A report has its own, larger cap; the same file is read under it.
        assert_eq!(
            read_capped_to(&p, MAX_REPORT_BYTES).unwrap().len(),
            MAX_FILE_BYTES as usize + 1
        );
        let e = read_capped_to(&p, 1000).unwrap_err().to_string();
        assert!(e.contains("at most 1000 bytes"), "{e}");
    }

    #[test]
    fn a_symlink_loop_is_named_as_a_loop() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.toml"), dir.path().join("b.toml"));
        std::os::unix::fs::symlink(&b, &a).unwrap();
        std::os::unix::fs::symlink(&a, &b).unwrap();
        let e = read_capped(&a).unwrap_err().to_string();
        assert!(
            e.contains("a.toml: is a symlink loop (too many levels of symbolic links)"),
            "{e}"
        );
        assert_eq!(describe(&dir.path().join("a.toml/x")), Some(LOOP));
    }

    #[test]
    fn bytes_that_are_not_utf8_are_located() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("latin1.toml");
        std::fs::write(&p, b"name = 'x'\nsummary = 'caf\xe9'\n").unwrap();
        let e = read_capped(&p).unwrap_err().to_string();
        assert!(e.contains("latin1.toml:2:15: not UTF-8"), "{e}");
    }
}
