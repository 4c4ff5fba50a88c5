//! The kind cluster and the images a kind run needs, through the `kind` and `docker` programs:
//! `kind get clusters` (is `brownout` there?), `kind create cluster` with `kind-config/kind.yaml`
//! if not, `docker build` of each image from `kind-config/` (the workspace's release binaries
//! copied onto `BASE`), `kind load docker-image` of each, and `kind get kubeconfig` for the client.
//! Commands are typed values run through [`Tools`], so the sequence is tested with a fake and the
//! real runner is one small function.

use crate::error::{BrownoutError, Result};
use std::path::Path;

/// The kind cluster's name (also in `kind-config/kind.yaml`).
pub const CLUSTER: &str = "brownout";

/// The images built from `kind-config/`: name and Dockerfile.
pub const BUILT: [(&str, &str); 4] = [
    ("brownout/checkout", "kind-config/checkout.Dockerfile"),
    (
        "brownout/payments-stub",
        "kind-config/payments-stub.Dockerfile",
    ),
    ("brownout/fault-proxy", "kind-config/fault-proxy.Dockerfile"),
    ("brownout/ingress", "kind-config/ingress.Dockerfile"),
];

/// One command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    pub program: &'static str,
    pub args: Vec<String>,
}

impl Cmd {
    fn new(program: &'static str, args: &[&str]) -> Cmd {
        Cmd {
            program,
            args: args.iter().map(|a| a.to_string()).collect(),
        }
    }
}

impl std::fmt::Display for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.program, self.args.join(" "))
    }
}

/// Runs commands (the real one runs programs; tests script the answers).
pub trait Tools {
    /// Runs `cmd` in `dir`; its standard output, or an error naming the command and quoting the
    /// end of what it printed.
    fn run(&mut self, cmd: &Cmd, dir: &Path) -> Result<String>;
}

/// Runs the programs for real.
pub struct Programs;

impl Tools for Programs {
    fn run(&mut self, cmd: &Cmd, dir: &Path) -> Result<String> {
        let out = std::process::Command::new(cmd.program)
            .args(&cmd.args)
            .current_dir(dir)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| BrownoutError::Environment(format!("cannot run `{cmd}`: {e}")))?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        Err(BrownoutError::Environment(format!(
            "`{cmd}` failed ({}): {}",
            out.status,
            tail.join(" | ")
        )))
    }
}

/// `docker build` of every image in [`BUILT`], tagged `tag`, on `base` if given (the Dockerfiles'
/// default is `debian:bookworm-slim`).
pub fn build_commands(base: Option<&str>, tag: &str) -> Vec<Cmd> {
    BUILT
        .iter()
        .map(|(image, dockerfile)| {
            let mut args = vec!["build", "-q", "-f", dockerfile];
            let base_arg = base.map(|b| format!("BASE={b}"));
            if let Some(b) = &base_arg {
                args.extend(["--build-arg", b]);
            }
            let name = format!("{image}:{tag}");
            args.extend(["-t", &name, "."]);
            Cmd::new("docker", &args)
        })
        .collect()
}

/// Makes sure the `brownout` kind cluster exists, builds the images and loads them into it;
/// returns the cluster's kubeconfig (YAML). `root` is the repository (the build context).
pub fn prepare_kind(
    tools: &mut (impl Tools + ?Sized),
    root: &Path,
    base: Option<&str>,
    tag: &str,
) -> Result<String> {
    if tag == "latest" {
        return Err(BrownoutError::BadInput(
            "image tag 'latest' cannot be used: kind load needs a fixed tag (with imagePullPolicy IfNotPresent)".into(),
        ));
    }
    let clusters = tools.run(&Cmd::new("kind", &["get", "clusters"]), root)?;
    if !clusters.lines().any(|l| l.trim() == CLUSTER) {
        tools.run(
            &Cmd::new(
                "kind",
                &[
                    "create",
                    "cluster",
                    "--config",
                    "kind-config/kind.yaml",
                    "--wait",
                    "180s",
                ],
            ),
            root,
        )?;
    }
    for cmd in build_commands(base, tag) {
        tools.run(&cmd, root)?;
    }
    for (image, _) in BUILT {
        let name = format!("{image}:{tag}");
        tools.run(
            &Cmd::new("kind", &["load", "docker-image", "--name", CLUSTER, &name]),
            root,
        )?;
    }
    tools.run(
        &Cmd::new("kind", &["get", "kubeconfig", "--name", CLUSTER]),
        root,
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Records every command and answers from a script (`None`: fail).
    #[derive(Default)]
    pub struct FakeTools {
        pub seen: Vec<String>,
        pub answers: Vec<(String, Option<String>)>,
    }

    impl Tools for FakeTools {
        fn run(&mut self, cmd: &Cmd, _dir: &Path) -> Result<String> {
            let line = cmd.to_string();
            self.seen.push(line.clone());
            match self
                .answers
                .iter()
                .find(|(prefix, _)| line.starts_with(prefix.as_str()))
            {
                Some((_, Some(out))) => Ok(out.clone()),
                Some((_, None)) => Err(BrownoutError::Environment(format!("`{line}` failed"))),
                None => Ok(String::new()),
            }
        }
    }

    #[test]
    fn an_absent_cluster_is_created_then_images_are_built_and_loaded() {
        let mut tools = FakeTools {
            answers: vec![
                ("kind get clusters".into(), Some("other\n".into())),
                (
                    "kind get kubeconfig".into(),
                    Some("apiVersion: v1\n".into()),
                ),
            ],
            ..Default::default()
        };
        let kubeconfig = prepare_kind(
            &mut tools,
            Path::new("."),
            Some("brownout/base:bookworm"),
            "r1",
        )
        .unwrap();
        assert_eq!(kubeconfig, "apiVersion: v1\n");
        assert_eq!(
            tools.seen[..3],
            [
                "kind get clusters",
                "kind create cluster --config kind-config/kind.yaml --wait 180s",
                "docker build -q -f kind-config/checkout.Dockerfile --build-arg BASE=brownout/base:bookworm -t brownout/checkout:r1 .",
            ]
        );
        assert_eq!(tools.seen.len(), 1 + 1 + 4 + 4 + 1);
        assert_eq!(
            tools.seen[6],
            "kind load docker-image --name brownout brownout/checkout:r1"
        );
        assert_eq!(tools.seen[10], "kind get kubeconfig --name brownout");
    }

    #[test]
    fn an_existing_cluster_is_reused_and_a_failed_build_stops_everything() {
        let mut tools = FakeTools {
            answers: vec![
                ("kind get clusters".into(), Some("brownout\n".into())),
                ("docker build -q -f kind-config/fault-proxy".into(), None),
            ],
            ..Default::default()
        };
        let err = prepare_kind(&mut tools, Path::new("."), None, "r1").unwrap_err();
        assert!(err.to_string().contains("fault-proxy"), "{err}");
        assert!(!tools.seen.iter().any(|c| c.contains("create cluster")));
        assert!(!tools.seen.iter().any(|c| c.starts_with("kind load")));
        assert!(
            !tools.seen[1].contains("--build-arg"),
            "no BASE: the Dockerfile's default"
        );
        let e =
            prepare_kind(&mut FakeTools::default(), Path::new("."), None, "latest").unwrap_err();
        assert!(matches!(e, BrownoutError::BadInput(_)), "{e}");
    }

    #[test]
    fn the_real_runner_quotes_a_failing_command() {
        let e = Programs
            .run(
                &Cmd::new("sh", &["-c", "echo boom >&2; exit 3"]),
                Path::new("."),
            )
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("`sh -c echo boom >&2; exit 3` failed")
                && e.to_string().contains("boom"),
            "{e}"
        );
        assert_eq!(
            Programs
                .run(&Cmd::new("sh", &["-c", "echo ok"]), Path::new("."))
                .unwrap(),
            "ok\n"
        );
    }
}
