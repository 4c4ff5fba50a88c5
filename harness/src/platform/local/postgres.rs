//! A throwaway PostgreSQL cluster: `initdb` into a directory, the real `postgres` server on
//! 127.0.0.1 and a free port, trust auth, tuned for tests (no fsync). Used by the local platform and
//! by the target-app's integration tests. Dropping it stops the server (fast shutdown).

use crate::error::{BrownoutError, Result};
use crate::platform::local::process::{spawn, ChildSpec, ManagedChild};
use crate::platform::local::tools;
use nix::sys::signal::Signal;
use sqlx::Connection;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const SUPERUSER: &str = "brownout";

pub struct TempPostgres {
    pub port: u16,
    pub data_dir: PathBuf,
    server: ManagedChild,
    program: PathBuf,
    log: PathBuf,
    run_as: Option<(u32, u32)>,
    /// Only when the cluster owns its directory (standalone use in tests).
    _owned_dir: Option<tempfile::TempDir>,
}

impl TempPostgres {
    /// Starts a cluster in its own temp dir (tests).
    pub async fn start_standalone() -> Result<TempPostgres> {
        let dir = tempfile::Builder::new()
            .prefix("brownout-pg-")
            .tempdir()
            .map_err(|e| BrownoutError::Environment(format!("cannot create a temp dir: {e}")))?;
        crate::platform::local::workdir::set_mode(dir.path(), 0o755)?;
        let mut pg = TempPostgres::start_in(dir.path()).await?;
        pg._owned_dir = Some(dir);
        Ok(pg)
    }

    /// Runs `initdb` in `<parent>/pgdata` and starts the server; waits until it accepts connections.
    pub async fn start_in(parent: &Path) -> Result<TempPostgres> {
        let initdb = tools::find(&tools::INITDB)?;
        let postgres = tools::find(&tools::POSTGRES)?;
        let data_dir = parent.join("pgdata");
        let log = parent.join("postgres.log");
        let run_as = unprivileged_user()?;
        std::fs::create_dir_all(&data_dir).map_err(crate::error::env_err("creating pgdata"))?;
        if let Some((uid, gid)) = run_as {
            for p in [&data_dir, &log] {
                if !p.exists() {
                    std::fs::write(p, b"")
                        .map_err(crate::error::env_err("creating postgres log"))?;
                }
                nix::unistd::chown(p, Some(uid.into()), Some(gid.into())).map_err(|e| {
                    BrownoutError::Environment(format!("cannot chown {}: {e}", p.display()))
                })?;
            }
        }
        crate::platform::local::workdir::set_mode(&data_dir, 0o700)?;
        // Async, and killed if the start is abandoned: a deploy starts PostgreSQL alongside the
        // other components in one task.
        let mut cmd = tokio::process::Command::new(&initdb);
        cmd.args([
            "-D",
            &data_dir.to_string_lossy(),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ])
        .current_dir(parent)
        .env("LC_ALL", "C")
        .kill_on_drop(true);
        if let Some((uid, gid)) = run_as {
            cmd.uid(uid).gid(gid);
        }
        let out = cmd.output().await.map_err(|e| {
            BrownoutError::Environment(format!("cannot run {}: {e}", initdb.display()))
        })?;
        if !out.status.success() {
            return Err(BrownoutError::Environment(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let mut last_err = String::new();
        for _attempt in 0..3 {
            let port = tools::free_port()?;
            let spec = server_spec(&postgres, &data_dir, &log, port, run_as);
            let server = spawn("postgres", &spec)?;
            let mut pg = TempPostgres {
                port,
                data_dir: data_dir.clone(),
                server,
                program: postgres.clone(),
                log: log.clone(),
                run_as,
                _owned_dir: None,
            };
            match pg.wait_ready(Duration::from_secs(20)).await {
                Ok(()) => return Ok(pg),
                Err(e) => {
                    last_err = e;
                    pg.server.stop(Signal::SIGQUIT, Duration::from_secs(2));
                }
            }
        }
        Err(BrownoutError::Environment(format!(
            "PostgreSQL did not start: {last_err} (see {})",
            log.display()
        )))
    }

    async fn wait_ready(&mut self, within: Duration) -> std::result::Result<(), String> {
        let url = self.url("postgres");
        let every = Duration::from_millis(50);
        self.server
            .wait_until(within, every, || {
                let url = url.clone();
                async move {
                    let conn = sqlx::PgConnection::connect(&url)
                        .await
                        .map_err(|e| e.to_string())?;
                    let _ = conn.close().await;
                    Ok(())
                }
            })
            .await
            .map_err(|e| format!("postgres {e}"))
    }

    /// Connection URL for `database` as the superuser.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a database and returns its URL.
    pub async fn create_database(&self, name: &str) -> Result<String> {
        let mut conn = sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .map_err(|e| {
                BrownoutError::Environment(format!("cannot connect to PostgreSQL: {e}"))
            })?;
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .map_err(|e| {
                BrownoutError::Environment(format!("cannot create database {name}: {e}"))
            })?;
        let _ = conn.close().await;
        Ok(self.url(name))
    }

    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// Fast shutdown (SIGINT), SIGKILL after 5 s.
    pub fn stop(&mut self) {
        self.server.stop(Signal::SIGINT, Duration::from_secs(5));
    }

    /// Starts the server again on the same port and data directory after [`TempPostgres::stop`]
    /// (crash recovery runs if it was killed); waits until it accepts connections.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop();
        let spec = server_spec(
            &self.program,
            &self.data_dir,
            &self.log,
            self.port,
            self.run_as,
        );
        self.server = spawn("postgres", &spec)?;
        self.wait_ready(Duration::from_secs(30)).await.map_err(|e| {
            BrownoutError::Environment(format!(
                "PostgreSQL did not come back on port {}: {e} (see {})",
                self.port,
                self.log.display()
            ))
        })
    }
}

/// The server's command line: 127.0.0.1 only, no Unix socket, tuned for throwaway use.
fn server_spec(
    postgres: &Path,
    data_dir: &Path,
    log: &Path,
    port: u16,
    run_as: Option<(u32, u32)>,
) -> ChildSpec {
    let mut spec = ChildSpec::new(postgres, data_dir, log.to_path_buf()).args([
        "-D".to_string(),
        data_dir.to_string_lossy().to_string(),
        "-p".into(),
        port.to_string(),
        "-c".into(),
        "listen_addresses=127.0.0.1".into(),
        "-c".into(),
        "unix_socket_directories=".into(),
        "-c".into(),
        "fsync=off".into(),
        "-c".into(),
        "synchronous_commit=off".into(),
        "-c".into(),
        "full_page_writes=off".into(),
        "-c".into(),
        "max_connections=200".into(),
        "-c".into(),
        "shared_buffers=64MB".into(),
        // Slow statements are logged, to explain a slow answer when one happens.
        "-c".into(),
        "log_min_duration_statement=200ms".into(),
    ]);
    spec.death_signal = Signal::SIGQUIT;
    spec.run_as = run_as;
    spec
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// PostgreSQL refuses to run as root: when we are root, run it as the `postgres` user (from the
/// Debian package) or `nobody`.
fn unprivileged_user() -> Result<Option<(u32, u32)>> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    for name in ["postgres", "nobody"] {
        if let Ok(Some(user)) = nix::unistd::User::from_name(name) {
            return Ok(Some((user.uid.as_raw(), user.gid.as_raw())));
        }
    }
    Err(BrownoutError::Environment(
        "running as root, and neither a 'postgres' nor a 'nobody' user exists to run PostgreSQL as"
            .into(),
    ))
}
