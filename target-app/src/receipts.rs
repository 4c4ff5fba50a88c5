//! Receipt files on the receipts volume (`RECEIPTS_DIR`): written and fsynced per checkout, probed
//! by readiness, and measured (free bytes) for metrics. A full disk (ENOSPC) is a 507, not a 500,
//! unless the `enospc-500` bug is on. The volume stays bounded under steady load: a pruner keeps the
//! newest `RECEIPTS_KEEP` receipts (each takes at least a 4 KiB page) and removes the rest, so only a
//! fault, not the app's own traffic, fills it.

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

/// Removes all but the newest `keep` receipts (`*.json`) in `dir`; returns how many it removed.
/// Temp files, probes and anything else on the volume are left alone.
pub fn prune(dir: &Path, keep: usize) -> std::io::Result<usize> {
    let mut receipts: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)?
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.ends_with(".json") && !name.starts_with('.')
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if receipts.len() <= keep {
        return Ok(0);
    }
    receipts.sort();
    let excess = receipts.len() - keep;
    let mut removed = 0;
    for (_, path) in receipts.into_iter().take(excess) {
        if std::fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Prunes `dir` every second for as long as the process runs.
pub fn spawn_pruner(dir: PathBuf, keep: usize) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            let d = dir.clone();
            match tokio::task::spawn_blocking(move || prune(&d, keep)).await {
                Ok(Ok(n)) if n > 0 => tracing::debug!(removed = n, "receipts pruned"),
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot prune receipts"),
                _ => {}
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_keeps_the_newest_receipts_and_nothing_else_is_touched() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..20 {
            std::fs::write(dir.path().join(format!("order-{i:02}.json")), b"{}").unwrap();
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        std::fs::write(dir.path().join(".brownout-filler"), b"x").unwrap();
        std::fs::write(dir.path().join(".order-99.tmp"), b"x").unwrap();
        assert_eq!(prune(dir.path(), 5).unwrap(), 15);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                ".brownout-filler",
                ".order-99.tmp",
                "order-15.json",
                "order-16.json",
                "order-17.json",
                "order-18.json",
                "order-19.json"
            ]
        );
        assert_eq!(prune(dir.path(), 5).unwrap(), 0);
    }
}
