//! The `fault-proxy` program as a supervised child of the local platform, driven only through its
//! HTTP control API (the same API a Kubernetes platform or a game day would use).
//!
//! It holds two kinds of proxy. The system file's fault proxies (`payments`, …), where faults put
//! their toxics. And one *service address* per service, `service.<name>`: a stable 127.0.0.1 port
//! whose upstreams the platform's controller keeps set to the service's ready replicas, the way
//! kube-proxy follows a Service's endpoints. A fault proxy whose upstream is a service forwards to
//! that service address, never to a replica, so a rollout of the upstream service does not leave it
//! pointing at a replica that is gone; `{service.<name>.url}` is the service address too.

use crate::error::{BrownoutError, Result};
use crate::fault_proxy::client::Client;
use crate::platform::local::process::{spawn, ChildSpec, ManagedChild};
use nix::sys::signal::Signal;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// How long the program may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The proxy name of a service's address.
pub fn service_address(service: &str) -> String {
    format!("service.{service}")
}

pub struct ProxyProcess {
    child: ManagedChild,
    pub client: Client,
    /// Listen address (`127.0.0.1:port`) of every proxy, by name.
    pub listen: BTreeMap<String, String>,
}

#[derive(serde::Deserialize)]
struct Ready {
    control: String,
    proxies: BTreeMap<String, String>,
}

impl ProxyProcess {
    /// Starts `program` with the proxies `names` (no upstreams yet) and waits until it listens.
    pub async fn start(
        program: &Path,
        dir: &Path,
        log_dir: &Path,
        names: &[String],
        seed: u64,
    ) -> Result<ProxyProcess> {
        if !program.is_file() {
            return Err(BrownoutError::Environment(format!(
                "the fault-proxy program is not at {}: build it with `cargo build --release -p harness --bins` (it is built beside brownout)",
                program.display()
            )));
        }
        let token: String = {
            use rand::Rng;
            let mut rng = rand::rng();
            (0..32)
                .map(|_| format!("{:x}", rng.random_range(0..16u8)))
                .collect()
        };
        let token_file = dir.join("token");
        write_private(&token_file, &token)?;
        let ready_file = dir.join("ready.json");
        let log = log_dir.join("fault-proxy.log");
        let mut args = vec![
            "--control".to_string(),
            "127.0.0.1:0".into(),
            "--token-file".into(),
            token_file.display().to_string(),
            "--ready-file".into(),
            ready_file.display().to_string(),
            "--seed".into(),
            seed.to_string(),
        ];
        for n in names {
            args.extend(["--proxy".to_string(), n.clone()]);
        }
        // SIGTERM when the harness dies: the program stops at once either way.
        let mut child = spawn(
            "fault-proxy",
            &ChildSpec::new(program, dir, log.clone()).args(args),
        )?;
        let every = Duration::from_millis(20);
        let ready = child
            .wait_until(START_TIMEOUT, every, || {
                let text = std::fs::read_to_string(&ready_file);
                async move {
                    // Written whole (then renamed) by the program: present means complete.
                    let text = text.map_err(|e| e.to_string())?;
                    serde_json::from_str::<Ready>(&text).map_err(|e| format!("bad ready file: {e}"))
                }
            })
            .await;
        match ready {
            Ok(ready) => Ok(ProxyProcess {
                child,
                client: Client::new(&ready.control, &token),
                listen: ready.proxies,
            }),
            Err(e) => {
                child.stop_async(Signal::SIGKILL, Duration::ZERO).await;
                Err(BrownoutError::Environment(format!(
                    "fault-proxy {e}; last log line: {} (log: {})",
                    crate::platform::local::supervisor::last_log_line(&log),
                    log.display()
                )))
            }
        }
    }

    /// Stops the program (SIGTERM; it exits at once).
    pub async fn stop(&mut self) {
        self.child
            .stop_async(Signal::SIGTERM, Duration::from_secs(3))
            .await;
    }
}

/// Writes a secret readable by its owner only.
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| BrownoutError::Environment(format!("cannot write {}: {e}", path.display())))
}
