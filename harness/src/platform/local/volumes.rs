//! A service's volumes on the local platform: a directory per replica, a real tmpfs of the
//! volume's size where the platform may mount one (root), and the disk-full fault on it: filled to
//! ENOSPC and kept full by a thread per replica until the fault is healed.

use super::LocalPlatform;
use crate::error::{BrownoutError, Result};
use crate::evidence::Evidence;
use crate::fill::{fill_until_enospc, FILLER};
use crate::platform::VolumeFiller;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often a filled volume is topped up to ENOSPC again while the fault lasts.
const TOP_UP_PERIOD: Duration = Duration::from_millis(200);

/// Threads that keep filled volumes full, until [`Fillers::stop`].
#[derive(Default)]
pub(super) struct Fillers(Vec<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>);

impl Fillers {
    /// Stops the threads and waits for them (each ends within a period).
    pub(super) async fn stop(&mut self) {
        let fillers = std::mem::take(&mut self.0);
        for (stop, _) in &fillers {
            stop.store(true, Ordering::SeqCst);
        }
        let _ = tokio::task::spawn_blocking(move || {
            for (_, thread) in fillers {
                let _ = thread.join();
            }
        })
        .await;
    }
}

/// Mounts a tmpfs of `bytes` at `dir`: a real filesystem that really fills up. Without the
/// privilege to mount (not root), the volume stays a plain directory and the evidence says so; a
/// disk-full fault then refuses to run.
pub(super) fn mount_volume(
    dir: &std::path::Path,
    bytes: u64,
    replica: &str,
    volume: &str,
    evidence: &Evidence,
) -> Result<()> {
    use nix::mount::{mount, MsFlags};
    let data = format!("size={bytes},mode=0777");
    match mount(
        Some("brownout"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(data.as_str()),
    ) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EPERM) => {
            evidence.event(format!(
                "volume {volume} of {replica}: not size-limited (mounting a tmpfs needs root); disk-full faults cannot run"
            ));
            Ok(())
        }
        Err(e) => Err(BrownoutError::Environment(format!(
            "cannot mount a {bytes}-byte tmpfs for volume {volume} of {replica} at {}: {e}",
            dir.display()
        ))),
    }
}

fn is_mount_point(dir: &std::path::Path) -> bool {
    crate::platform::local::workdir::mounts_under(dir)
        .iter()
        .any(|m| m == dir)
}

impl LocalPlatform {
    /// Volume directories of the live (not terminating) replicas of `service`.
    fn volume_dirs(&self, service: &str, volume: &str) -> Result<Vec<(String, PathBuf)>> {
        let deployed = self.deployed("not deployed")?;
        let svc = deployed.service(service)?;
        let s = svc.lock().expect("service lock");
        Ok(s.replicas
            .iter()
            .filter(|r| r.terminating.is_none())
            .map(|r| {
                (
                    r.handle.name.clone(),
                    deployed
                        .ctx
                        .workdir
                        .join(format!("volumes/{}/{volume}", r.handle.name)),
                )
            })
            .collect())
    }
}

impl VolumeFiller for LocalPlatform {
    async fn fill_volume(
        &mut self,
        service: &str,
        volume: &str,
        evidence: &Evidence,
    ) -> Result<()> {
        for (replica, dir) in self.volume_dirs(service, volume)? {
            if !is_mount_point(&dir) {
                return Err(BrownoutError::Environment(format!(
                    "disk-full: volume {volume} of {replica} is not a size-limited filesystem (mounting a tmpfs needs root); run brownout as root"
                )));
            }
            let target = dir.clone();
            let written = tokio::task::spawn_blocking(move || fill_until_enospc(&target))
                .await
                .map_err(|e| {
                    BrownoutError::Environment(format!("disk-full: filler task failed: {e}"))
                })?
                .map_err(|e| {
                    BrownoutError::Environment(format!(
                        "disk-full: filling {volume} of {replica} failed before ENOSPC: {e}"
                    ))
                })?;
            evidence.event(format!(
                "volume {volume} of {replica} full: {:.1} MiB written, then ENOSPC",
                written as f64 / (1 << 20) as f64
            ));
            // Keep it full, like a runaway writer: whatever the app frees (e.g. by pruning old
            // files) is taken again within TOP_UP_PERIOD, until the fault is healed.
            let stop = Arc::new(AtomicBool::new(false));
            let (d, s) = (dir.clone(), stop.clone());
            let thread = std::thread::spawn(move || {
                while !s.load(Ordering::SeqCst) {
                    std::thread::sleep(TOP_UP_PERIOD);
                    if !s.load(Ordering::SeqCst) {
                        let _ = fill_until_enospc(&d);
                    }
                }
            });
            self.fillers.0.push((stop, thread));
        }
        Ok(())
    }

    async fn free_volume(&mut self, service: &str, volume: &str, evidence: &Evidence) {
        self.fillers.stop().await;
        let Ok(dirs) = self.volume_dirs(service, volume) else {
            return;
        };
        for (replica, dir) in dirs {
            if std::fs::remove_file(dir.join(FILLER)).is_ok() {
                evidence.event(format!(
                    "volume {volume} of {replica}: filler removed, space is back"
                ));
            }
        }
    }
}
