//! The disk-full fault on Kubernetes: the `fill-volume` program shipped in the app images is
//! exec'd in every running pod of the service (a FROM-scratch image has no shell to do it with),
//! writes the `emptyDir` tmpfs full until ENOSPC and keeps it full while its stdin stays open;
//! healing closes that stdin and execs `fill-volume free`. The two execs race (the stdin's close
//! travels on another connection than the second exec), so `fill-volume free` removes the file
//! and then waits until the filler has seen it gone and exited ([`crate::fill`]): a late top-up
//! cannot undo the heal. Exec goes through [`PodExec`]: the
//! real one is kube's exec (a websocket to the kubelet), the tests' one a fake; the pods to act
//! on are listed from the API by the component label (never by a name prefix).

use super::render::NAME_LABEL;
use crate::error::{BrownoutError, Result};
use crate::evidence::Evidence;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{AttachParams, ListParams};
use kube::Api;
use tokio::io::{AsyncBufReadExt, AsyncReadExt};

/// How long a `fill-volume` exec may take to say the volume is full.
const FILL_WITHIN: std::time::Duration = std::time::Duration::from_secs(60);

/// What a finished exec printed and how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecOutput {
    pub success: bool,
    pub output: String,
}

/// Running programs in a pod's container.
#[allow(async_fn_in_trait)]
pub trait PodExec {
    /// A program left running; dropping it closes its stdin.
    type Held: Send + 'static;
    /// Runs `argv` and waits for it to end.
    async fn run(&self, pod: &str, container: &str, argv: &[String]) -> Result<ExecOutput>;
    /// Starts `argv` with stdin open; returns its first line of output and the running program.
    async fn hold(
        &self,
        pod: &str,
        container: &str,
        argv: &[String],
    ) -> Result<(String, Self::Held)>;
}

/// How long a one-shot exec may take before it is given up.
const EXEC_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

/// Exec through the API server (kube's `ws` feature).
pub struct KubeExec {
    pub pods: Api<Pod>,
}

impl PodExec for KubeExec {
    type Held = kube::api::AttachedProcess;

    async fn run(&self, pod: &str, container: &str, argv: &[String]) -> Result<ExecOutput> {
        let params = AttachParams::default().container(container).stderr(true);
        let mut p = self
            .pods
            .exec(pod, argv.to_vec(), &params)
            .await
            .map_err(|e| BrownoutError::Environment(format!("exec in {pod}: {e}")))?;
        // Both streams at once (kube's pipes are small: a program that fills stderr while we
        // wait on stdout would block forever), and bounded: one stuck exec must not stop the
        // caller (the ingress router) for the rest of the run.
        let (stdout, stderr, status) = (p.stdout(), p.stderr(), p.take_status());
        let read = async move {
            let (mut out, mut err) = (String::new(), String::new());
            let o = async {
                if let Some(mut s) = stdout {
                    let _ = s.read_to_string(&mut out).await;
                }
            };
            let e = async {
                if let Some(mut s) = stderr {
                    let _ = s.read_to_string(&mut err).await;
                }
            };
            tokio::join!(o, e);
            let status = match status {
                Some(s) => s.await,
                None => None,
            };
            (out + &err, status)
        };
        let (output, status) = tokio::time::timeout(EXEC_WITHIN, read).await.map_err(|_| {
            BrownoutError::Environment(format!(
                "exec in {pod}: {argv:?} did not end within {} s",
                EXEC_WITHIN.as_secs()
            ))
        })?;
        let success = status.is_some_and(|s| s.status.as_deref() == Some("Success"));
        Ok(ExecOutput { success, output })
    }

    async fn hold(
        &self,
        pod: &str,
        container: &str,
        argv: &[String],
    ) -> Result<(String, Self::Held)> {
        let params = AttachParams::default()
            .container(container)
            .stdin(true)
            .stderr(true);
        let mut p = self
            .pods
            .exec(pod, argv.to_vec(), &params)
            .await
            .map_err(|e| BrownoutError::Environment(format!("exec in {pod}: {e}")))?;
        let out = p
            .stdout()
            .ok_or_else(|| BrownoutError::Environment("exec without stdout".into()))?;
        let mut line = String::new();
        let mut reader = tokio::io::BufReader::new(out);
        tokio::time::timeout(FILL_WITHIN, reader.read_line(&mut line))
            .await
            .map_err(|_| {
                BrownoutError::Environment(format!(
                    "exec in {pod}: no answer within {FILL_WITHIN:?}"
                ))
            })?
            .map_err(|e| BrownoutError::Environment(format!("exec in {pod}: {e}")))?;
        if line.is_empty() {
            let mut err = String::new();
            if let Some(mut e) = p.stderr() {
                let _ = tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    e.read_to_string(&mut err),
                )
                .await;
            }
            line = err;
        }
        Ok((line.trim().to_string(), p))
    }
}

/// The running pods of `service` (not being deleted), by the component label.
pub async fn running_pods(pods: &Api<Pod>, service: &str) -> Result<Vec<String>> {
    let list = pods
        .list(&ListParams::default().labels(&format!("{NAME_LABEL}={service}")))
        .await
        .map_err(|e| {
            BrownoutError::Environment(format!("cannot list the pods of {service}: {e}"))
        })?;
    Ok(list
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .filter_map(|p| p.metadata.name)
        .collect())
}

/// Fills `volume` of every pod in `pods` (containers named `service`); keeps them full until the
/// returned programs are dropped.
pub async fn fill<E: PodExec>(
    exec: &E,
    pods: &[String],
    service: &str,
    volume: &str,
    evidence: &Evidence,
) -> Result<Vec<E::Held>> {
    if pods.is_empty() {
        return Err(BrownoutError::Environment(format!(
            "disk-full: no running pod of {service} to fill"
        )));
    }
    let dir = format!("/volumes/{volume}");
    let argv: Vec<String> = ["fill-volume", "fill", &dir].map(String::from).to_vec();
    let mut held = Vec::new();
    for pod in pods {
        let (line, h) = exec.hold(pod, service, &argv).await?;
        let Some(what) = line.strip_prefix("full: ") else {
            return Err(BrownoutError::Environment(format!(
                "disk-full: `fill-volume fill {dir}` in {pod} did not fill it: {line} (the image needs /usr/local/bin/fill-volume, see kind-config/checkout.Dockerfile)"
            )));
        };
        evidence.event(format!("volume {volume} of {pod} full: {what}"));
        held.push(h);
    }
    Ok(held)
}

/// Stops keeping the volumes full and removes the filler in every pod; `fill-volume free` says
/// `freed` only once the filler has exited, so the space is back when it does.
pub async fn free<E: PodExec>(
    exec: &E,
    held: Vec<E::Held>,
    pods: &[String],
    service: &str,
    volume: &str,
    evidence: &Evidence,
) {
    drop(held);
    let dir = format!("/volumes/{volume}");
    let argv: Vec<String> = ["fill-volume", "free", &dir].map(String::from).to_vec();
    for pod in pods {
        match exec.run(pod, service, &argv).await {
            Ok(o) if o.success && o.output.trim() == "freed" => evidence.event(format!(
                "volume {volume} of {pod}: filler removed, space is back"
            )),
            Ok(o) => evidence.event(format!(
                "volume {volume} of {pod}: free said {}",
                o.output.trim()
            )),
            Err(e) => evidence.event(format!("volume {volume} of {pod}: could not free: {e}")),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::platform::kube::mock::{self, Seen};
    use std::sync::{Arc, Mutex};

    /// Records every exec and answers `fill` with `fill_says` per pod.
    #[derive(Default, Clone)]
    pub struct FakeExec {
        pub calls: Arc<Mutex<Vec<String>>>,
        pub fill_says: Vec<(String, String)>,
        /// Dropped holds (stdin closed), by pod.
        pub released: Arc<Mutex<Vec<String>>>,
    }

    pub struct FakeHeld {
        pod: String,
        released: Arc<Mutex<Vec<String>>>,
    }

    impl Drop for FakeHeld {
        fn drop(&mut self) {
            self.released.lock().unwrap().push(self.pod.clone());
        }
    }

    impl PodExec for FakeExec {
        type Held = FakeHeld;
        async fn run(&self, pod: &str, container: &str, argv: &[String]) -> Result<ExecOutput> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("run {pod}/{container}: {}", argv.join(" ")));
            Ok(ExecOutput {
                success: true,
                output: "freed\n".into(),
            })
        }
        async fn hold(
            &self,
            pod: &str,
            container: &str,
            argv: &[String],
        ) -> Result<(String, FakeHeld)> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("hold {pod}/{container}: {}", argv.join(" ")));
            let says = self
                .fill_says
                .iter()
                .find(|(p, _)| p == pod)
                .map(|(_, s)| s.clone())
                .unwrap_or_else(|| "full: 67108864 bytes written, then ENOSPC".into());
            Ok((
                says,
                FakeHeld {
                    pod: pod.into(),
                    released: self.released.clone(),
                },
            ))
        }
    }

    fn pod(name: &str, phase: &str, deleting: bool) -> serde_json::Value {
        let mut p = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "brownout-r1", "labels": {NAME_LABEL: "checkout"}},
            "spec": {"containers": [{"name": "checkout"}]}, "status": {"phase": phase}});
        if deleting {
            p["metadata"]["deletionTimestamp"] = "2026-11-23T20:00:00Z".into();
        }
        p
    }

    #[tokio::test]
    async fn every_running_pod_is_filled_by_exec_and_freed_at_heal() {
        let (client, log) = mock::server(Box::new(|_: &Seen| {
            mock::list(
                "PodList",
                "v1",
                vec![
                    pod("checkout-a", "Running", false),
                    pod("checkout-b", "Running", false),
                    pod("checkout-old", "Running", true),
                    pod("checkout-new", "Pending", false),
                ],
            )
        }));
        let pods = running_pods(&Api::namespaced(client, "brownout-r1"), "checkout")
            .await
            .unwrap();
        assert_eq!(pods, ["checkout-a", "checkout-b"]);
        assert!(log.all()[0]
            .path_and_query
            .contains("labelSelector=app.kubernetes.io%2Fname%3Dcheckout"));

        let exec = FakeExec::default();
        let ev = Evidence::new();
        let held = fill(&exec, &pods, "checkout", "receipts", &ev)
            .await
            .unwrap();
        assert!(
            exec.released.lock().unwrap().is_empty(),
            "kept full while the fault lasts"
        );
        free(&exec, held, &pods, "checkout", "receipts", &ev).await;
        assert_eq!(*exec.released.lock().unwrap(), ["checkout-a", "checkout-b"]);
        assert_eq!(
            *exec.calls.lock().unwrap(),
            [
                "hold checkout-a/checkout: fill-volume fill /volumes/receipts",
                "hold checkout-b/checkout: fill-volume fill /volumes/receipts",
                "run checkout-a/checkout: fill-volume free /volumes/receipts",
                "run checkout-b/checkout: fill-volume free /volumes/receipts",
            ]
        );
        let events: Vec<String> = ev.with(|d| d.events.iter().map(|e| e.what.clone()).collect());
        assert_eq!(
            events[0],
            "volume receipts of checkout-a full: 67108864 bytes written, then ENOSPC"
        );
        assert_eq!(
            events[3],
            "volume receipts of checkout-b: filler removed, space is back"
        );
    }

    #[tokio::test]
    async fn an_image_without_the_filler_or_no_pod_is_a_clear_error() {
        let exec = FakeExec {
            fill_says: vec![(
                "checkout-a".into(),
                "OCI runtime exec failed: exec: \"fill-volume\": executable file not found in $PATH".into(),
            )],
            ..Default::default()
        };
        let ev = Evidence::new();
        let e = fill(&exec, &["checkout-a".into()], "checkout", "receipts", &ev)
            .await
            .err()
            .unwrap();
        assert!(
            e.to_string().contains("executable file not found")
                && e.to_string().contains("fill-volume"),
            "{e}"
        );
        let e = fill(&exec, &[], "checkout", "receipts", &ev)
            .await
            .err()
            .unwrap();
        assert!(e.to_string().contains("no running pod of checkout"), "{e}");
    }
}
