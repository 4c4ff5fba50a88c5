//! Receipt files on the receipts volume (`RECEIPTS_DIR`): written and fsynced per checkout, probed
//! by readiness, and measured (free bytes) for metrics. A full disk (ENOSPC) is a 507, not a 500,
//! unless the `enospc-500` bug is on.

use crate::error::AppError;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `body` as `<dir>/<order_id>.json` (via a temp file and rename, fsynced).
pub async fn write(
    dir: Option<&Path>,
    order_id: &str,
    body: Vec<u8>,
    enospc_is_500: bool,
) -> Result<PathBuf, AppError> {
    let dir = dir
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("RECEIPTS_DIR is not configured")))?
        .to_path_buf();
    let order_id = order_id.to_string();
    let result = tokio::task::spawn_blocking(move || write_blocking(&dir, &order_id, &body))
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("receipt writer panicked: {e}")))?;
    result.map_err(|e| {
        let kind = if e.raw_os_error() == Some(libc::ENOSPC) {
            "enospc"
        } else {
            "io"
        };
        crate::metrics::METRICS
            .receipts_write_failures
            .with_label_values(&[kind])
            .inc();
        if kind == "enospc" && !enospc_is_500 {
            AppError::InsufficientStorage(e.to_string())
        } else {
            AppError::Internal(anyhow::Error::new(e).context("writing receipt"))
        }
    })
}

fn write_blocking(dir: &Path, order_id: &str, body: &[u8]) -> std::io::Result<PathBuf> {
    let tmp = dir.join(format!(".{order_id}.tmp"));
    let path = dir.join(format!("{order_id}.json"));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(body)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map(|()| path)
}

/// Removes a receipt written for a checkout that then failed.
pub fn remove(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        tracing::warn!(path = %path.display(), error = %e, "could not remove receipt");
    }
}

/// Readiness probe: can a small file be created, written and synced in the directory?
pub async fn probe_writable(dir: &Path) -> Result<(), String> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let probe = dir.join(".ready-probe");
        let result = (|| {
            let mut f = std::fs::File::create(&probe)?;
            f.write_all(&[b'x'; 512])?;
            f.sync_all()
        })();
        let _ = std::fs::remove_file(&probe);
        result.map_err(|e| format!("receipts dir not writable: {e}"))
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Free and total bytes of the filesystem holding `dir`.
pub fn space(dir: &Path) -> Option<(u64, u64)> {
    let s = nix::sys::statvfs::statvfs(dir).ok()?;
    let frag = s.fragment_size() as u64;
    Some((s.blocks_available() as u64 * frag, s.blocks() as u64 * frag))
}
