//! The blast radius on disk: every path the harness writes to or mounts is built with
//! [`inside`], which joins names from files (scenario, volume, service names) onto a base
//! directory and refuses any result that, once normalised, is not under that base. Names are
//! already restricted at validation ([`crate::checks::name`]); this is the second lock.

use crate::error::{BrownoutError, Result};
use std::path::{Component, Path, PathBuf};

/// Lexically normalises a path: `.` dropped, `..` pops (never above the root).
pub fn normalise(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// `base/rel`, provided it stays inside `base` after normalisation.
pub fn inside(base: &Path, rel: impl AsRef<Path>) -> Result<PathBuf> {
    let rel = rel.as_ref();
    let base_n = normalise(base);
    let joined = normalise(&base.join(rel));
    if rel.is_absolute() || !joined.starts_with(&base_n) || joined == base_n {
        return Err(BrownoutError::BadInput(format!(
            "'{}' would lead outside {} (names from files must be plain names)",
            rel.display(),
            base.display()
        )));
    }
    Ok(joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_stay_inside() {
        let p = inside(
            Path::new("/r/reports"),
            "pool-exhaustion/20261124T0000Z-ab12",
        )
        .unwrap();
        assert_eq!(
            p,
            Path::new("/r/reports/pool-exhaustion/20261124T0000Z-ab12")
        );
    }

    #[test]
    fn escapes_are_refused() {
        for rel in ["../../x", "/etc", "a/../../b", "..", ".", ""] {
            assert!(inside(Path::new("/r/reports"), rel).is_err(), "{rel}");
        }
        assert!(inside(Path::new("/r/reports"), "a/../b").is_ok());
    }
}
