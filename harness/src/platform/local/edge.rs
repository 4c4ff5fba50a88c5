//! Edge metrics on the local platform: nginx has no per-status counters of its own, so the platform
//! runs mtail (Google's log-to-metrics exporter, Debian package `mtail`) on the ingress's
//! `brownout_edge` access log. It exports `ingress_http_requests_total{status, made_by}` and
//! `ingress_http_request_duration_seconds{made_by}` for Prometheus to scrape, the way
//! ingress-nginx's controller exports `nginx_ingress_controller_requests{status}`; the harness
//! reads the same counters (mtail's JSON) at phase boundaries to set them beside what clients saw.

use crate::error::{BrownoutError, Result};
use crate::evidence::EdgeCount;
use crate::platform::local::process::{spawn, ChildSpec, ManagedChild};
use nix::sys::signal::Signal;
use std::path::Path;
use std::time::Duration;

/// The mtail program (see `ingress.mtail`).
const PROGRAM: &str = crate::platform::nginx_conf::EDGE_PROGRAM;
/// The counter the program keeps, by (status, made_by).
const REQUESTS: &str = crate::platform::edge_metrics::REQUESTS;
/// How often mtail reads the log for new lines.
const POLL: &str = "20ms";

pub struct EdgeExporter {
    pub port: u16,
    child: ManagedChild,
    client: reqwest::Client,
}

/// mtail's `/json` answer (every metric it keeps).
async fn json(client: &reqwest::Client, addr: &str) -> std::result::Result<Vec<u8>, String> {
    let r = client
        .get(format!("http://{addr}/json"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    Ok(r.bytes().await.map_err(|e| e.to_string())?.to_vec())
}

impl EdgeExporter {
    /// Starts mtail on `log` (which must exist: mtail reads what is appended after it starts).
    pub async fn start(program: &Path, dir: &Path, log_dir: &Path, log: &Path) -> Result<Self> {
        let progs = dir.join("progs");
        std::fs::create_dir_all(&progs).map_err(crate::error::env_err("creating mtail dir"))?;
        std::fs::write(progs.join("ingress.mtail"), PROGRAM)
            .map_err(crate::error::env_err("writing the mtail program"))?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| BrownoutError::Environment(format!("http client: {e}")))?;
        let mut last_err = String::new();
        for _ in 0..3 {
            let port = crate::platform::local::tools::free_port()?;
            let spec = ChildSpec::new(program, dir, log_dir.join("mtail.log")).args([
                "-progs".to_string(),
                progs.display().to_string(),
                "-logs".into(),
                log.display().to_string(),
                "-address".into(),
                "127.0.0.1".into(),
                "-port".into(),
                port.to_string(),
                "-poll_interval".into(),
                POLL.into(),
                "-emit_prog_label=false".into(),
                "-logtostderr".into(),
            ]);
            let child = spawn("mtail", &spec)?;
            let mut e = EdgeExporter {
                port,
                child,
                client: client.clone(),
            };
            match e.wait_ready(Duration::from_secs(10)).await {
                Ok(()) => return Ok(e),
                Err(err) => {
                    last_err = err;
                    e.child.stop(Signal::SIGKILL, Duration::from_secs(1));
                }
            }
        }
        Err(BrownoutError::Environment(format!(
            "mtail (the edge exporter) did not start: {last_err} (see {})",
            log_dir.join("mtail.log").display()
        )))
    }

    /// host:port Prometheus scrapes (`/metrics`).
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    async fn wait_ready(&mut self, within: Duration) -> std::result::Result<(), String> {
        let (client, addr) = (self.client.clone(), self.addr());
        let every = Duration::from_millis(100);
        self.child
            .wait_until(within, every, || {
                let (client, addr) = (client.clone(), addr.clone());
                async move {
                    // Ready once the program is loaded: its metrics are declared in the JSON.
                    let body = json(&client, &addr).await?;
                    match body
                        .windows(REQUESTS.len())
                        .any(|w| w == REQUESTS.as_bytes())
                    {
                        true => Ok(()),
                        false => Err("the program is not loaded yet".to_string()),
                    }
                }
            })
            .await
            .map_err(|e| format!("mtail {e}"))
    }

    async fn json(&self) -> std::result::Result<Vec<u8>, String> {
        json(&self.client, &self.addr()).await
    }

    /// The ingress's answers so far, by status and who made them.
    pub async fn counts(&self) -> std::result::Result<Vec<EdgeCount>, String> {
        crate::platform::edge_metrics::counts_from_json(&self.json().await?)
    }

    pub async fn stop(&mut self) {
        self.child
            .stop_async(Signal::SIGTERM, Duration::from_secs(3))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::Layer;

    /// The real mtail on a real log: lines appended after it starts are counted by status and
    /// maker, and a line of another shape is not.
    #[tokio::test(flavor = "multi_thread")]
    async fn mtail_counts_lines_appended_to_the_log() {
        let Ok(mtail) = crate::platform::local::tools::find(&crate::platform::local::tools::MTAIL)
        else {
            panic!("mtail is not installed: run scripts/install-deps.sh");
        };
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("edge.log");
        std::fs::write(&log, "").unwrap();
        let mut e = EdgeExporter::start(&mtail, dir.path(), dir.path(), &log)
            .await
            .unwrap();
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        for _ in 0..5 {
            writeln!(f, "status=200 made_by=upstream request_time=0.003").unwrap();
        }
        writeln!(f, "status=504 made_by=ingress request_time=5.001").unwrap();
        writeln!(f, "something else entirely").unwrap();
        f.flush().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let counts = loop {
            let c = e.counts().await.unwrap();
            if c.iter().map(|c| c.answers).sum::<u64>() >= 6 || std::time::Instant::now() > deadline
            {
                break c;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        e.stop().await;
        assert_eq!(
            counts,
            vec![
                EdgeCount {
                    status: 200,
                    layer: Layer::App,
                    answers: 5
                },
                EdgeCount {
                    status: 504,
                    layer: Layer::Ingress,
                    answers: 1
                }
            ]
        );
    }
}
