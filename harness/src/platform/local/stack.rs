//! The stack under the services, started together because they depend on nothing: the throwaway
//! PostgreSQL (if the system has a database, its data directory in memory where it may be), the
//! `fault-proxy` program (the system's fault proxies and one address per service) and mtail on
//! the ingress's edge log. [`Stack::start`] gives all of it or nothing: a part that started
//! while another failed is stopped before the error is returned.

use super::edge::EdgeExporter;
use super::postgres::TempPostgres;
use super::proxies::{service_address, ProxyProcess};
use super::{started, tools};
use crate::error::{BrownoutError, Result};
use crate::evidence::Evidence;
use crate::platform::DeployOptions;
use crate::spec::System;
use std::path::Path;

/// The system's database: its server and the superuser URL of its database (on 127.0.0.1).
pub(super) struct Database {
    pub(super) server: TempPostgres,
    pub(super) url: String,
}

impl Database {
    /// `host:port` of the server.
    pub(super) fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.server.port)
    }
}

/// What the services stand on, all of it running.
pub(super) struct Stack {
    /// `None`: the system has no `[database]`.
    pub(super) database: Option<Database>,
    /// The `fault-proxy` program: the system's fault proxies and every service's address.
    pub(super) proxies: ProxyProcess,
    /// mtail on the ingress's edge log: per-status counters for Prometheus and the report.
    pub(super) edge: EdgeExporter,
}

/// Where the stack's parts keep their files, inside the run's work dir.
pub(super) struct StackDirs<'a> {
    pub(super) postgres: &'a Path,
    pub(super) proxies: &'a Path,
    pub(super) mtail: &'a Path,
    /// The ingress's edge log, which mtail reads (it exists, empty, before either starts).
    pub(super) edge_log: &'a Path,
}

impl Stack {
    /// Starts PostgreSQL, the fault-proxy program and mtail together and waits for all three.
    /// The first error wins (the database's, then the proxies', then mtail's); whatever started
    /// is stopped before it is returned.
    pub(super) async fn start(
        system: &System,
        opts: &DeployOptions,
        dirs: StackDirs<'_>,
        evidence: &Evidence,
    ) -> Result<Stack> {
        // The fault-proxy program: the system's proxies (first, so each keeps its seed), then one
        // address per service. Services may name any of them in their config, whatever the order
        // they start in.
        let names: Vec<String> = system
            .file
            .proxies
            .iter()
            .map(|p| p.name.clone())
            .chain(
                system
                    .file
                    .services
                    .iter()
                    .map(|s| service_address(s.name.get_ref())),
            )
            .collect();
        let database = async {
            let Some(db) = &system.file.database else {
                return Ok(None);
            };
            let pg = started(evidence, "postgres", TempPostgres::start_in(dirs.postgres)).await?;
            let url = pg.create_database(&db.name).await;
            Ok::<_, BrownoutError>(Some((pg, url)))
        };
        let proxy_program = opts.bin_dir.join("fault-proxy");
        let proxies = started(
            evidence,
            "fault-proxy",
            ProxyProcess::start(
                &proxy_program,
                dirs.proxies,
                &opts.log_dir,
                &names,
                opts.seed,
            ),
        );
        let edge = started(evidence, "mtail", async {
            EdgeExporter::start(
                &tools::find(&tools::MTAIL)?,
                dirs.mtail,
                &opts.log_dir,
                dirs.edge_log,
            )
            .await
        });
        let (database, proxies, edge) = tokio::join!(database, proxies, edge);
        if let Ok(Some((pg, Ok(_)))) = &database {
            evidence.event(format!("postgres ready on 127.0.0.1:{}", pg.port));
        }
        if let Ok(e) = &edge {
            evidence.event(format!("edge exporter (mtail) on {}", e.addr()));
        }
        // The first error wins (the database's, then the proxies', then mtail's).
        let database = match database {
            Ok(None) => None,
            Ok(Some((server, Ok(url)))) => Some(Database { server, url }),
            Ok(Some((mut server, Err(e)))) => {
                tokio::task::block_in_place(|| server.stop());
                return Err(abandon(e, None, proxies.ok(), edge.ok()).await);
            }
            Err(e) => return Err(abandon(e, None, proxies.ok(), edge.ok()).await),
        };
        let proxies = match proxies {
            Ok(p) => p,
            Err(e) => return Err(abandon(e, database, None, edge.ok()).await),
        };
        match edge {
            Ok(edge) => Ok(Stack {
                database,
                proxies,
                edge,
            }),
            Err(e) => Err(abandon(e, database, Some(proxies), None).await),
        }
    }

    /// Stops mtail. (The proxies and the database stop after the services: see
    /// [`Stack::stop_under_services`].)
    pub(super) async fn stop_edge(&mut self) {
        self.edge.stop().await;
    }

    /// Stops the fault-proxy program (after its clients: open connections have closed with the
    /// replicas), then the database.
    pub(super) async fn stop_under_services(&mut self) {
        self.proxies.stop().await;
        if let Some(db) = self.database.as_mut() {
            tokio::task::block_in_place(|| db.server.stop());
        }
    }
}

/// Stops the parts of a stack that started while another did not (in teardown's order: mtail,
/// the proxies, the database) and gives back the error.
async fn abandon(
    error: BrownoutError,
    database: Option<Database>,
    proxies: Option<ProxyProcess>,
    edge: Option<EdgeExporter>,
) -> BrownoutError {
    if let Some(mut e) = edge {
        e.stop().await;
    }
    if let Some(mut p) = proxies {
        p.stop().await;
    }
    if let Some(mut d) = database {
        tokio::task::block_in_place(|| d.server.stop());
    }
    error
}

/// Mounts a tmpfs (no size limit beyond the kernel's default, half the RAM) at `dir` for the
/// throwaway PostgreSQL cluster: it runs with fsync off, so a disk only makes `initdb` slow (it
/// writes 39 MB: 1.8 s on a busy disk, 0.45 s in memory). Unmounted with the work dir, like the
/// volumes. Without the privilege to mount, the cluster stays on disk and the evidence says so.
pub(super) fn memory_backed(dir: &Path, evidence: &Evidence) -> Result<()> {
    use nix::mount::{mount, MsFlags};
    match mount(
        Some("brownout"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
    ) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EPERM) => {
            evidence.event(
                "postgres: data directory on disk (mounting a tmpfs needs root); start-up is slower"
                    .to_string(),
            );
            Ok(())
        }
        Err(e) => Err(BrownoutError::Environment(format!(
            "cannot mount a tmpfs for PostgreSQL at {}: {e}",
            dir.display()
        ))),
    }
}
