//! Reading the files a user hands us: only regular files (a FIFO would block `validate` forever, a
//! device such as `/dev/zero` would be read until memory runs out), at most [`MAX_FILE_BYTES`],
//! valid UTF-8. A directory given where a file belongs is named as such, not as "missing".

use crate::error::{BrownoutError, Result};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The largest scenario, system or rule file read (the shipped ones are under 10 KiB).
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// What a path is, for "the system file is a directory" kinds of message.
pub fn describe(path: &Path) -> Option<&'static str> {
    let meta = std::fs::metadata(path).ok()?;
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
        Some(what) => Some(format!("is {what}, not a file")),
    }
}

/// Reads a regular file of at most [`MAX_FILE_BYTES`] as UTF-8.
pub fn read_capped(path: &Path) -> Result<String> {
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
    if meta.len() > MAX_FILE_BYTES {
        return Err(bad(format!(
            "is {} bytes; input files are at most {} bytes",
            meta.len(),
            MAX_FILE_BYTES
        )));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| bad(format!("cannot read: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(bad(format!(
            "is over {MAX_FILE_BYTES} bytes; input files are at most that"
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
