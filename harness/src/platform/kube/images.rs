//! The kind cluster and the images a kind run needs, through the `kind` and `docker` programs:
//! `kind get clusters` (is `brownout` there?), `kind create cluster` with `kind-config/kind.yaml`
//! if not (its node image pinned there: [`NODE_IMAGE`]), then the images. Their tag is
//! content-addressed ([`content_tag`]: a hash of the Dockerfiles, the release binaries each one
//! copies and the base), so every run of a job renders the same tag; an image the node already
//! holds under that tag (`crictl images` in the node) is neither built nor loaded again, and only
//! the others get a `docker build` from `kind-config/` and a `kind load docker-image`. Last,
//! `kind get kubeconfig` for the client. Commands are typed values run through [`Tools`], so the
//! sequence is tested with a fake and the real runner is one small function.

use crate::error::{BrownoutError, Result};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::Path;

/// The kind cluster's name (also in `kind-config/kind.yaml`).
pub const CLUSTER: &str = "brownout";

/// The cluster's one node: the container kind runs it in, `<cluster>-control-plane`.
pub const NODE: &str = "brownout-control-plane";

/// The kind release the workflow and `scripts/test-kind.sh` install (published: its release page
/// https://github.com/kubernetes-sigs/kind/releases/tag/v0.33.0 lists the node images below).
pub const KIND_RELEASE: &str = "v0.33.0";

/// The node image, pinned by digest in `kind-config/kind.yaml` as kind's release notes for
/// [`KIND_RELEASE`] list it ("You must use the @sha256 digest to guarantee an image built for
/// this release"): Kubernetes 1.34, the version the objects are validated against.
pub const NODE_IMAGE: &str =
    "kindest/node:v1.34.11@sha256:44e222ee2132dab25ff87301682f89eb82c7880ea3a1bf543bfe9708fd08d67d";

/// The Kubernetes minor version of [`NODE_IMAGE`]; `tests/manifests.rs` validates the rendered
/// objects against its schemas and k8s-openapi is built with the matching `v1_34` feature.
pub const KUBERNETES_MINOR: &str = "1.34";

/// The Dockerfiles' default `BASE` (when no `--image-base` is given).
pub const DEFAULT_BASE: &str = "debian:bookworm-slim";

/// An image built from `kind-config/`: its name, its Dockerfile and the files it copies (paths
/// from the repository root: what the tag hashes besides the Dockerfile and the base).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Image {
    pub name: &'static str,
    pub dockerfile: &'static str,
    pub copies: &'static [&'static str],
}

/// The images built from `kind-config/`.
pub const IMAGES: [Image; 4] = [
    Image {
        name: "brownout/checkout",
        dockerfile: "kind-config/checkout.Dockerfile",
        copies: &["target/release/checkout", "target/release/fill-volume"],
    },
    Image {
        name: "brownout/payments-stub",
        dockerfile: "kind-config/payments-stub.Dockerfile",
        copies: &["target/release/payments-stub", "target/release/fill-volume"],
    },
    Image {
        name: "brownout/fault-proxy",
        dockerfile: "kind-config/fault-proxy.Dockerfile",
        copies: &["target/release/fault-proxy"],
    },
    Image {
        name: "brownout/ingress",
        dockerfile: "kind-config/ingress.Dockerfile",
        copies: &[],
    },
];

/// A content-addressed image tag: the same Dockerfiles, binaries and base give the same tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageTag(String);

impl ImageTag {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ImageTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Feeds one file into the hash: its path, its length and its bytes.
fn hash_file(hasher: &mut Sha256, root: &Path, path: &str) -> Result<()> {
    let full = root.join(path);
    let mut file = std::fs::File::open(&full).map_err(|e| {
        BrownoutError::Environment(format!(
            "the kind images copy {} ({e}): build the release binaries first (cargo build --workspace --bins --release)",
            full.display()
        ))
    })?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    hasher.update(path.as_bytes());
    hasher.update([0]);
    hasher.update(len.to_le_bytes());
    std::io::copy(&mut file, hasher)
        .map_err(|e| BrownoutError::Environment(format!("reading {}: {e}", full.display())))?;
    Ok(())
}

/// The tag every image of [`IMAGES`] gets: the first 80 bits (20 hex digits) of a SHA-256 over
/// each image's name, Dockerfile and copied files, and the base. The base is hashed by name
/// (`ubuntu:24.04`), not by content, and the ingress image's `apt-get install` is not hashed:
/// an image whose base or packages moved on keeps its tag until a Dockerfile changes.
pub fn content_tag(root: &Path, base: Option<&str>) -> Result<ImageTag> {
    let mut hasher = Sha256::new();
    for image in &IMAGES {
        hasher.update(image.name.as_bytes());
        hasher.update([0]);
        hash_file(&mut hasher, root, image.dockerfile)?;
        for copied in image.copies {
            hash_file(&mut hasher, root, copied)?;
        }
    }
    hasher.update(base.unwrap_or(DEFAULT_BASE).as_bytes());
    let digest = hasher.finalize();
    let hex: String = digest[..10].iter().map(|b| format!("{b:02x}")).collect();
    Ok(ImageTag(hex))
}

/// How the node's container runtime names an image kind loaded: Docker's short names are
/// normalised to `docker.io/…` (kind's `sanitizeImage`).
pub fn node_ref(image: &str, tag: &ImageTag) -> String {
    format!("docker.io/{image}:{tag}")
}

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

/// `docker build` of `image` tagged `tag`, on `base` if given (the Dockerfiles' default is
/// [`DEFAULT_BASE`]).
fn build_command(image: &Image, base: Option<&str>, tag: &str) -> Cmd {
    let mut args = vec!["build", "-q", "-f", image.dockerfile];
    let base_arg = base.map(|b| format!("BASE={b}"));
    if let Some(b) = &base_arg {
        args.extend(["--build-arg", b]);
    }
    let name = format!("{}:{tag}", image.name);
    args.extend(["-t", &name, "."]);
    Cmd::new("docker", &args)
}

/// `docker build` of every image in [`IMAGES`], tagged `tag`, on `base` if given.
pub fn build_commands(base: Option<&str>, tag: &str) -> Vec<Cmd> {
    IMAGES
        .iter()
        .map(|image| build_command(image, base, tag))
        .collect()
}

/// The node's platform for `docker image save --platform` (the images are built for the host).
fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("linux/{arch}")
}

/// Loads `name` into the kind node: `kind load docker-image`, and if that fails, the workaround
/// kind documents for Docker's containerd image store (the default from Docker 29), where
/// `docker save` of an image whose index names content the store does not hold (another
/// platform, an attestation) makes the node's `ctr images import` fail with "content digest …
/// not found" (kubernetes-sigs/kind#3795, #4066; the workaround documented by kind PR #4247):
/// a single-platform `docker image save --platform` and `kind load image-archive`.
fn load(tools: &mut (impl Tools + ?Sized), root: &Path, name: &str) -> Result<()> {
    let first = match tools.run(
        &Cmd::new("kind", &["load", "docker-image", "--name", CLUSTER, name]),
        root,
    ) {
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    let dir = tempfile::tempdir()
        .map_err(|e| BrownoutError::Environment(format!("a temp dir for {name}'s archive: {e}")))?;
    let archive = dir.path().join("image.tar");
    let archive = archive.to_string_lossy().to_string();
    let platform = host_platform();
    let fallback = tools
        .run(
            &Cmd::new(
                "docker",
                &[
                    "image",
                    "save",
                    "--platform",
                    &platform,
                    "-o",
                    &archive,
                    name,
                ],
            ),
            root,
        )
        .and_then(|_| {
            tools.run(
                &Cmd::new(
                    "kind",
                    &["load", "image-archive", "--name", CLUSTER, &archive],
                ),
                root,
            )
        });
    fallback.map(|_| ()).map_err(|second| {
        BrownoutError::Environment(format!(
            "loading {name} into the kind node failed: {first}; and through an archive (docker image save --platform {platform}, kind load image-archive): {second}"
        ))
    })
}

/// `crictl images -o json` in the node: `{"images": [{"repoTags": […]}, …]}`.
#[derive(Debug, Deserialize)]
struct NodeImages {
    #[serde(default)]
    images: Vec<NodeImage>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodeImage {
    #[serde(default)]
    repo_tags: Vec<String>,
}

/// The image references the node holds; `None` when they could not be listed (then every
/// image is built and loaded: `kind load` still skips the copy of an image whose ID the node
/// has).
fn images_on_node(tools: &mut (impl Tools + ?Sized), root: &Path) -> Option<BTreeSet<String>> {
    let out = tools
        .run(
            &Cmd::new("docker", &["exec", NODE, "crictl", "images", "-o", "json"]),
            root,
        )
        .ok()?;
    let listed: NodeImages = serde_json::from_str(&out).ok()?;
    Some(
        listed
            .images
            .into_iter()
            .flat_map(|i| i.repo_tags)
            .collect(),
    )
}

/// What [`prepare_kind`] did: the kubeconfig, the tag the objects must name, and which images
/// it built and loaded (none when the node had them all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub kubeconfig: String,
    pub tag: ImageTag,
    pub loaded: Vec<&'static str>,
}

/// Makes sure the `brownout` kind cluster exists and holds the images under their content tag,
/// building and loading only those it lacks; returns the cluster's kubeconfig (YAML) and the
/// tag. `root` is the repository (the build context).
pub fn prepare_kind(
    tools: &mut (impl Tools + ?Sized),
    root: &Path,
    base: Option<&str>,
) -> Result<Prepared> {
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
    let tag = content_tag(root, base)?;
    let on_node = images_on_node(tools, root).unwrap_or_default();
    let missing: Vec<&Image> = IMAGES
        .iter()
        .filter(|i| !on_node.contains(&node_ref(i.name, &tag)))
        .collect();
    for image in &missing {
        tools.run(&build_command(image, base, tag.as_str()), root)?;
    }
    for image in &missing {
        load(tools, root, &format!("{}:{tag}", image.name))?;
    }
    let kubeconfig = tools.run(
        &Cmd::new("kind", &["get", "kubeconfig", "--name", CLUSTER]),
        root,
    )?;
    Ok(Prepared {
        kubeconfig,
        tag,
        loaded: missing.iter().map(|i| i.name).collect(),
    })
}

#[cfg(test)]
#[path = "images_tests.rs"]
pub(crate) mod tests;
