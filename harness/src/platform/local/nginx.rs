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
    let edge_log = edge_log.display();
    let l = log_dir.display();
    let user = if nix::unistd::geteuid().is_root() {
        "user root;\n"
    } else {
        ""
    };
    format!(
        r#"# Written by brownout for one run.
{user}worker_processes 1;
pid {d}/nginx.pid;
error_log {l}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    log_format brownout '$msec $status $request_time "$request" request_id=$http_x_request_id upstream=$upstream_addr upstream_status=$upstream_status upstream_header_time=$upstream_header_time';
    access_log {l}/nginx-access.log brownout;
    # Who made each answer, for the edge metrics: the ingress itself when no upstream sent a
    # response header (its own 502/503/504), else the upstream.
    map $upstream_header_time $brownout_made_by {{
        ""       ingress;
        "-"      ingress;
        "~-$"    ingress;
        default  upstream;
    }}
    # One line per answer, read as it is written by the edge exporter (mtail, see edge.rs).
    log_format brownout_edge 'status=$status made_by=$brownout_made_by request_time=$request_time';
    access_log {edge_log} brownout_edge;
    client_body_temp_path {d}/tmp/client;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    include {d}/upstreams.conf;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            if ($brownout_no_endpoints) {{ return 503; }}
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_connect_timeout {connect};
            proxy_read_timeout {read};
            proxy_send_timeout {read};
            proxy_next_upstream {retries};
            proxy_set_header X-Request-Id $http_x_request_id;
            # Who answered: the upstream the ingress proxied to, and its header time ("-" when
            # the ingress made the answer itself). The app cannot forge them.
            proxy_hide_header {addr_header};
            proxy_hide_header {time_header};
            add_header {addr_header} $upstream_addr always;
            add_header {time_header} $upstream_header_time always;
        }}
    }}
}}
"#,
        connect = nginx_time(spec.connect_timeout),
        read = nginx_time(spec.read_timeout),
        retries = spec.retries,
        addr_header = crate::load::UPSTREAM_ADDR_HEADER,
        time_header = crate::load::UPSTREAM_HEADER_TIME_HEADER,
    )
}

/// nginx's form of a duration: milliseconds.
fn nginx_time(d: crate::spec::Dur) -> String {
    format!("{}ms", d.ms())
}

fn upstreams_conf(addrs: &[String]) -> String {
    if addrs.is_empty() {
        // nginx needs a server in an upstream block; the `if` answers 503 before it is used.
        "upstream backend { server 127.0.0.1:9 down; }\nmap $host $brownout_no_endpoints { default 1; }\n".into()
    } else {
        let servers: String = addrs
            .iter()
            .map(|a| format!("    server {a} max_fails=0;\n"))
            .collect();
        format!(
            "upstream backend {{\n{servers}}}\nmap $host $brownout_no_endpoints {{ default 0; }}\n"
        )
    }
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
                error_log: log_dir.join("nginx-error.log"),
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

    pub async fn stop(&mut self) {
        // SIGQUIT: graceful shutdown of nginx.
        self.master
            .stop_async(Signal::SIGQUIT, Duration::from_secs(5))
            .await;
    }
}
