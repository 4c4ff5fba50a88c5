//! The Kubernetes platform (a kind cluster, or opt-in any cluster), being built. What exists:
//! [`render`] turns a system file into the namespaced objects of a run (golden files in
//! `kind-config/golden/`, checked offline against the Kubernetes schemas); [`apply`] creates the
//! run's namespace, server-side-applies the objects, deletes the namespace and sweeps those of
//! dead runs (tested against a mock API server); [`facts`] turns the kubelet's `Unhealthy` events
//! and the pods' restart counts into typed evidence; [`preflight`] refuses what must be refused before
//! anything is touched: a missing `docker` or `kind` (exit 3, naming the install command) and a
//! cluster that is not kind without `--allow-cluster` naming it (exit 2). Not built yet: the
//! images and the cluster's creation, readiness waits, the watches that feed [`facts`], the faults
//! through it, so a run on this platform stops after the preflight and says so.

pub mod apply;
pub mod facts;
pub mod images;
#[cfg(test)]
mod mock;
pub mod render;
pub mod rollout;
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
