//! The ingress on the local platform: a real nginx whose upstream set follows replica readiness.
//! The controller rewrites `upstreams.conf` and reloads nginx (SIGHUP) whenever the set of ready
//! replicas changes. Retries (`proxy_next_upstream`) and timeouts are explicit and reported.

use crate::error::{BrownoutError, Result};
use crate::evidence::Evidence;
use crate::platform::local::process::{spawn, ChildSpec, ManagedChild};
use crate::spec::IngressSpec;
use nix::sys::signal::Signal;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// nginx's own logs in the run's log dir (its stdout and stderr go to `nginx.log`). nginx opens
/// them with `O_APPEND` (`NGX_FILE_APPEND` in `src/os/unix/ngx_files.h`) and reopens them on
/// SIGUSR1, which is how the log janitor rotates them.
pub const ERROR_LOG: &str = "nginx-error.log";
pub const ACCESS_LOG: &str = "nginx-access.log";
/// The edge log, one line per answer, which mtail reads for the edge metrics.
pub const EDGE_LOG: &str = "ingress-edge.log";
pub const LOGS: [&str; 3] = [ERROR_LOG, ACCESS_LOG, EDGE_LOG];

pub struct Nginx {
    pub port: u16,
    dir: PathBuf,
    error_log: PathBuf,
    master: ManagedChild,
    fail_open: bool,
    /// Upstream addresses currently configured (None: not yet written).
    current: Option<Vec<String>>,
}

fn nginx_conf(
    dir: &Path,
    log_dir: &Path,
    edge_log: &Path,
    port: u16,
    spec: &IngressSpec,
) -> String {
    let d = dir.display();
    let l = log_dir.display();
    crate::platform::nginx_conf::render(
        &crate::platform::nginx_conf::Layout {
            run_as_root: nix::unistd::geteuid().is_root(),
            pid: format!("{d}/nginx.pid"),
            error_log: format!("{l}/{ERROR_LOG}"),
            access_log: format!("{l}/{ACCESS_LOG}"),
            edge_log: edge_log.display().to_string(),
            temp_dir: format!("{d}/tmp"),
            upstreams: format!("{d}/upstreams.conf"),
            listen: format!("127.0.0.1:{port}"),
        },
        spec,
    )
}

fn upstreams_conf(addrs: &[String]) -> String {
    crate::platform::nginx_conf::upstreams(addrs)
}

impl Nginx {
    pub async fn start(
        program: &Path,
        dir: &Path,
        log_dir: &Path,
        edge_log: &Path,
        spec: &IngressSpec,
        initial: &[String],
    ) -> Result<Nginx> {
        std::fs::create_dir_all(dir.join("tmp"))
            .map_err(crate::error::env_err("creating nginx dir"))?;
        for sub in ["client", "proxy", "fastcgi", "uwsgi", "scgi"] {
            let p = dir.join("tmp").join(sub);
            std::fs::create_dir_all(&p)
                .map_err(crate::error::env_err("creating nginx temp dir"))?;
            crate::platform::local::workdir::set_mode(&p, 0o777)?;
        }
        let mut last_err = String::new();
        for _ in 0..3 {
            let port = crate::platform::local::tools::free_port()?;
            std::fs::write(
                dir.join("nginx.conf"),
                nginx_conf(dir, log_dir, edge_log, port, spec),
            )
            .map_err(crate::error::env_err("writing nginx.conf"))?;
            std::fs::write(dir.join("upstreams.conf"), upstreams_conf(initial))
                .map_err(crate::error::env_err("writing upstreams.conf"))?;
            let conf = dir.join("nginx.conf");
            let mut child_spec = ChildSpec::new(program, dir, log_dir.join("nginx.log")).args([
                "-p".to_string(),
                dir.display().to_string(),
                "-c".into(),
                conf.display().to_string(),
                "-g".into(),
                "daemon off; master_process on;".into(),
            ]);
            // A clean stop takes the worker down with the master if the harness dies.
            child_spec.death_signal = Signal::SIGTERM;
            let master = spawn("nginx", &child_spec)?;
            let mut nginx = Nginx {
                port,
                dir: dir.to_path_buf(),
                error_log: log_dir.join(ERROR_LOG),
                master,
                fail_open: spec.fail_open,
                current: Some(initial.to_vec()),
            };
            match nginx.wait_listening(Duration::from_secs(10)).await {
                Ok(()) => return Ok(nginx),
                Err(e) => {
                    last_err = e;
                    nginx.master.stop(Signal::SIGTERM, Duration::from_secs(2));
                }
            }
        }
        Err(BrownoutError::Environment(format!(
            "nginx did not start: {last_err} (see {})",
            log_dir.join("nginx.log").display()
        )))
    }

    async fn wait_listening(&mut self, within: Duration) -> std::result::Result<(), String> {
        let port = self.port;
        let every = Duration::from_millis(50);
        let listening = self
            .master
            .wait_until(within, every, || async move {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            })
            .await;
        listening.map_err(|e| {
            let err = std::fs::read_to_string(&self.error_log).unwrap_or_default();
            format!("nginx {e}: {}", err.lines().last().unwrap_or(""))
        })
    }

    /// Points the route at `ready` (or at `all` when nothing is ready and fail-open is on) and
    /// reloads nginx if that changed.
    pub fn route_to(&mut self, ready: &[String], all: &[String], evidence: &Evidence) {
        let target: Vec<String> = if ready.is_empty() && self.fail_open {
            all.to_vec()
        } else {
            ready.to_vec()
        };
        if self.current.as_ref() == Some(&target) {
            return;
        }
        if let Err(e) = std::fs::write(self.dir.join("upstreams.conf"), upstreams_conf(&target)) {
            evidence.event(format!("ingress: cannot write upstreams: {e}"));
            return;
        }
        self.master.signal(Signal::SIGHUP);
        let mode = if ready.is_empty() && self.fail_open {
            " (none ready: fail-open to all)"
        } else {
            ""
        };
        evidence.event(format!("ingress upstreams: [{}]{mode}", target.join(", ")));
        self.current = Some(target);
    }

    /// The master's pid (it reopens the logs on SIGUSR1).
    pub fn pid(&self) -> u32 {
        self.master.pid()
    }

    pub async fn stop(&mut self) {
        // SIGQUIT: graceful shutdown of nginx.
        self.master
            .stop_async(Signal::SIGQUIT, Duration::from_secs(5))
            .await;
    }
}
