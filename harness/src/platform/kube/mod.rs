//! The Kubernetes platform: a kind cluster, or opt-in any cluster. The same scenario files and
//! the same core (runner, faults, load, judge, report) as the local platform, behind
//! [`cluster::KubePlatform`]. Its parts, in the order a run uses them:
//!
//! - [`preflight`] refuses what must be refused before anything is touched: a missing `docker`
//!   or `kind` (exit 3, naming the install command), a cluster that is not kind without
//!   `--allow-cluster` naming it (exit 2);
//! - [`images`]: the `brownout` kind cluster created or reused, the images built and loaded;
//! - [`render`]: the system file as the run's namespaced objects, a file per component of the
//!   system (`apps`, `postgres`, `proxies`, `nginx`, `prometheus`; golden files, validated
//!   offline);
//! - [`apply`]: the namespace (labelled with the run and its owner), server-side apply, deletion,
//!   the sweep of dead runs' namespaces;
//! - [`watch`] and [`facts`]: pods, events and EndpointSlices watched into typed evidence;
//! - [`ingress`]: the ingress's upstreams (the pods' addresses from the EndpointSlices, by the
//!   local platform's rules) written into the nginx pod by exec while the run lasts;
//! - [`rollout`], [`volumes`]: the faults that act through the API (rollouts and their rollback,
//!   exec of `fill-volume`); proxy toxics go through the fault proxy's control API and
//!   pool-exhaustion through PostgreSQL's NodePort, both on kind's fixed 127.0.0.1 ports;
//! - [`relay`]: in-cluster HTTP (the ledger, mtail's counters) through the API server's
//!   service and pod proxy, so no port mapping beyond kind's fixed ones is needed;
//! - [`refused`]: the faults this platform refuses before anything is deployed (`memory-limit`,
//!   `cpu-limit`), and why;
//! - [`cluster`]: the [`crate::platform::Platform`] itself: deploy and teardown (`mod.rs`), the
//!   bounded waits of a deploy (`waits`), and the fault controls of [`crate::control`]
//!   (`control`).
//!
//! The kube-rs code is tested against a mock API server (`mock`, as kube's own tests do; the
//! larger test modules are sibling `*_tests.rs` files, or `tests.rs` in a directory); no
//! cluster runs where these tests run. The workflow `.github/workflows/kind.yml` runs the
//! scenarios on a real kind cluster.

pub mod apply;
pub mod cluster;
pub mod facts;
pub mod images;
pub mod ingress;
#[cfg(test)]
mod mock;
#[cfg(test)]
mod rbac;
pub mod refused;
pub mod relay;
pub mod render;
pub mod rollout;
pub mod volumes;
pub mod watch;

use crate::error::{BrownoutError, Result};

/// Which platform a run asks for (`--platform`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlatformChoice {
    /// Processes on this machine (the default).
    Local,
    /// A kind cluster named `brownout`, created if absent (`kind-config/kind.yaml`).
    Kind,
    /// The cluster of `--context`, only with `--allow-cluster` naming it.
    Kubernetes,
}

/// The programs the kind platform drives, and how to install each on Debian/Ubuntu.
const KIND_TOOLS: [(&str, &str); 2] = [
    ("docker", "apt-get install docker.io (then start dockerd)"),
    (
        "kind",
        "go install sigs.k8s.io/kind@v0.33.0, or the release binary from https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
    ),
];

fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Some(paths) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&paths).any(|dir| {
        std::fs::metadata(dir.join(program))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// The repository a release build of `brownout` lives in (`<root>/target/release/brownout`): the
/// images' build context (the Dockerfiles copy `target/release/*`).
pub fn repository_root(bin_dir: &std::path::Path) -> Result<std::path::PathBuf> {
    let root = bin_dir.parent().and_then(|t| t.parent());
    match root {
        Some(root)
            if bin_dir.ends_with("target/release")
                && root.join("kind-config/kind.yaml").is_file() =>
        {
            Ok(root.to_path_buf())
        }
        _ => Err(BrownoutError::Environment(format!(
            "--platform kind builds its images from the repository's release binaries, but brownout runs from {}: run a release build inside the repository (cargo build --workspace --bins --release; ./target/release/brownout run … --platform kind)",
            bin_dir.display()
        ))),
    }
}

/// A client configuration: from a kubeconfig context, or from a kubeconfig's YAML (kind's).
pub async fn kube_config(
    context: Option<&str>,
    kubeconfig_yaml: Option<&str>,
) -> Result<kube::Config> {
    if let Some(yaml) = kubeconfig_yaml {
        let kc = kube::config::Kubeconfig::from_yaml(yaml)
            .map_err(|e| BrownoutError::Environment(format!("kind kubeconfig: {e}")))?;
        return kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .map_err(|e| BrownoutError::Environment(format!("kind kubeconfig: {e}")));
    }
    let options = kube::config::KubeConfigOptions {
        context: context.map(String::from),
        ..Default::default()
    };
    kube::Config::from_kubeconfig(&options).await.map_err(|e| {
        BrownoutError::Environment(format!(
            "kubeconfig context {}: {e}",
            context.unwrap_or("(current)")
        ))
    })
}

/// Deletes the namespaces of dead runs on the kind cluster (if it exists) or on `context`.
pub async fn clean(context: Option<&str>) -> Result<Vec<String>> {
    let config = match context {
        Some(context) => kube_config(Some(context), None).await?,
        None => {
            use images::Tools;
            let here = std::path::Path::new(".");
            let mut tools = images::Programs;
            let clusters = tools.run(
                &images::Cmd {
                    program: "kind",
                    args: vec!["get".into(), "clusters".into()],
                },
                here,
            )?;
            if !clusters.lines().any(|l| l.trim() == images::CLUSTER) {
                return Ok(Vec::new());
            }
            let yaml = tools.run(
                &images::Cmd {
                    program: "kind",
                    args: ["get", "kubeconfig", "--name", images::CLUSTER]
                        .map(String::from)
                        .to_vec(),
                },
                here,
            )?;
            kube_config(None, Some(&yaml)).await?
        }
    };
    let client = kube::Client::try_from(config)
        .map_err(|e| BrownoutError::Environment(format!("Kubernetes client: {e}")))?;
    apply::Cluster::new(client).sweep().await
}

/// Refuses a Kubernetes run that cannot or must not go ahead; `Ok` means it could.
pub fn preflight(
    choice: PlatformChoice,
    context: Option<&str>,
    allow_cluster: Option<&str>,
) -> Result<()> {
    match choice {
        PlatformChoice::Local => return Ok(()),
        PlatformChoice::Kubernetes => {
            let Some(context) = context else {
                return Err(BrownoutError::BadInput(
                    "--platform kubernetes needs --context NAME (the kubeconfig context to use)"
                        .into(),
                ));
            };
            if allow_cluster != Some(context) {
                return Err(BrownoutError::BadInput(format!(
                    "--platform kubernetes would deploy to and inject faults into context '{context}': add --allow-cluster {context} if that cluster is meant for it"
                )));
            }
        }
        PlatformChoice::Kind => {
            let missing: Vec<String> = KIND_TOOLS
                .iter()
                .filter(|(p, _)| !on_path(p))
                .map(|(p, how)| format!("{p} is not installed ({how})"))
                .collect();
            if !missing.is_empty() {
                return Err(BrownoutError::Environment(format!(
                    "--platform kind: {}",
                    missing.join("; ")
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_cluster_needs_its_name_twice_and_local_needs_nothing() {
        assert!(preflight(PlatformChoice::Local, None, None).is_ok());
        let e = preflight(PlatformChoice::Kubernetes, None, None).unwrap_err();
        assert!(e.to_string().contains("--context"), "{e}");
        let e = preflight(PlatformChoice::Kubernetes, Some("prod"), None).unwrap_err();
        assert!(matches!(e, BrownoutError::BadInput(_)));
        assert!(e.to_string().contains("--allow-cluster prod"), "{e}");
        let e = preflight(PlatformChoice::Kubernetes, Some("prod"), Some("staging")).unwrap_err();
        assert!(e.to_string().contains("--allow-cluster prod"), "{e}");
        assert!(preflight(PlatformChoice::Kubernetes, Some("prod"), Some("prod")).is_ok());
    }
}
