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
pub(crate) mod tests {
    use super::*;
    use std::path::PathBuf;

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

    /// A build context with every file the images copy (small stand-ins for the binaries).
    pub fn build_context() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for image in &IMAGES {
            for path in std::iter::once(&image.dockerfile).chain(image.copies) {
                let full = dir.path().join(path);
                std::fs::create_dir_all(full.parent().unwrap()).unwrap();
                std::fs::write(&full, format!("contents of {path}")).unwrap();
            }
        }
        dir
    }

    fn repository() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// `crictl images -o json` as the node answers it, holding `refs`.
    fn crictl_listing(refs: &[String]) -> String {
        let images: Vec<serde_json::Value> = refs
            .iter()
            .map(|r| serde_json::json!({"id": "sha256:0", "repoTags": [r], "repoDigests": []}))
            .collect();
        serde_json::json!({ "images": images }).to_string()
    }

    #[test]
    fn an_absent_cluster_is_created_then_images_are_built_and_loaded() {
        let root = build_context();
        let tag = content_tag(root.path(), Some("brownout/base:bookworm")).unwrap();
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
        let prepared =
            prepare_kind(&mut tools, root.path(), Some("brownout/base:bookworm")).unwrap();
        assert_eq!(prepared.kubeconfig, "apiVersion: v1\n");
        assert_eq!(prepared.tag, tag);
        assert_eq!(prepared.loaded.len(), 4);
        assert_eq!(
            tools.seen[..4],
            [
                "kind get clusters".to_string(),
                "kind create cluster --config kind-config/kind.yaml --wait 180s".into(),
                format!("docker exec {NODE} crictl images -o json"),
                format!("docker build -q -f kind-config/checkout.Dockerfile --build-arg BASE=brownout/base:bookworm -t brownout/checkout:{tag} ."),
            ]
        );
        assert_eq!(tools.seen.len(), 1 + 1 + 1 + 4 + 4 + 1);
        assert_eq!(
            tools.seen[7],
            format!("kind load docker-image --name brownout brownout/checkout:{tag}")
        );
        assert_eq!(tools.seen[11], "kind get kubeconfig --name brownout");
    }

    #[test]
    fn an_existing_cluster_is_reused_and_a_failed_build_stops_everything() {
        let root = build_context();
        let mut tools = FakeTools {
            answers: vec![
                ("kind get clusters".into(), Some("brownout\n".into())),
                ("docker build -q -f kind-config/fault-proxy".into(), None),
            ],
            ..Default::default()
        };
        let err = prepare_kind(&mut tools, root.path(), None).unwrap_err();
        assert!(err.to_string().contains("fault-proxy"), "{err}");
        assert!(!tools.seen.iter().any(|c| c.contains("create cluster")));
        assert!(!tools.seen.iter().any(|c| c.starts_with("kind load")));
        assert!(
            !tools.seen[2].contains("--build-arg"),
            "no BASE: the Dockerfile's default"
        );
    }

    /// The tag is content-addressed: the same Dockerfiles, binaries and base give the same tag
    /// (every run of a job renders and finds the same images), and a changed binary, Dockerfile
    /// or base gives another (a rebuilt app is never mistaken for the loaded one). A missing
    /// binary stops the run before any image is built or loaded, naming the build command. The tag is a
    /// valid Docker tag (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`, the reference grammar of
    /// distribution/reference, docker's `reference/regexp.go`) and not `latest`, for which
    /// Kubernetes defaults `imagePullPolicy` to `Always` and a loaded image would be pulled
    /// (https://kubernetes.io/docs/concepts/containers/images/#imagepullpolicy-defaulting).
    #[test]
    fn the_tag_is_a_hash_of_what_goes_into_the_images() {
        let root = build_context();
        let tag = content_tag(root.path(), None).unwrap();
        assert_eq!(tag, content_tag(root.path(), None).unwrap(), "same inputs");
        assert_eq!(tag.as_str().len(), 20);
        assert!(tag.as_str().chars().all(|c| c.is_ascii_hexdigit()), "{tag}");
        assert_ne!(
            tag,
            content_tag(root.path(), Some("ubuntu:24.04")).unwrap(),
            "another base"
        );
        assert_eq!(
            tag,
            content_tag(root.path(), Some(DEFAULT_BASE)).unwrap(),
            "the default base named or not"
        );
        let mut seen = BTreeSet::from([tag.clone()]);
        for path in [
            "target/release/checkout",
            "target/release/fill-volume",
            "target/release/payments-stub",
            "target/release/fault-proxy",
            "kind-config/ingress.Dockerfile",
        ] {
            std::fs::write(root.path().join(path), format!("rebuilt {path}")).unwrap();
            let changed = content_tag(root.path(), None).unwrap();
            assert!(
                seen.insert(changed.clone()),
                "{path} changed: a new tag, not {changed}"
            );
        }
        std::fs::remove_file(root.path().join("target/release/fault-proxy")).unwrap();
        let e = content_tag(root.path(), None).unwrap_err();
        assert!(matches!(e, BrownoutError::Environment(_)), "{e}");
        assert!(
            e.to_string().contains("target/release/fault-proxy")
                && e.to_string()
                    .contains("cargo build --workspace --bins --release"),
            "{e}"
        );
        let mut tools = FakeTools {
            answers: vec![("kind get clusters".into(), Some("brownout\n".into()))],
            ..Default::default()
        };
        assert!(prepare_kind(&mut tools, root.path(), None).is_err());
        assert_eq!(tools.seen, ["kind get clusters"], "nothing built or loaded");
    }

    /// An image the node already holds under the content tag is neither built nor loaded again:
    /// a job's 29 runs build and load each image once. What the node holds is read with
    /// `crictl images -o json` in the node container (kind node images ship crictl; kind itself
    /// reads images with `crictl inspecti`, kind pkg/cluster/nodeutils/util.go `ImageID`), whose
    /// answer lists `images[].repoTags` (the CRI `Image.repo_tags`, cri-api
    /// pkg/apis/runtime/v1/api.proto; read this way by k3s scripts/airgap/generate-list.sh).
    /// Images kind loaded are named there in Docker's normalised form, `docker.io/<name>:<tag>`
    /// (kind pkg/cmd/kind/load/docker-image/docker-image.go `sanitizeImage`, which it compares
    /// with those repoTags). `kind load docker-image` on its own would also skip the copy, but
    /// only when the node has the same image ID (same file, `ImageID(node, imageName) !=
    /// imageID` → load) and the `docker build` before it would still run every time. When the
    /// listing fails, everything is built and loaded, as before.
    /// Docker 29 makes the containerd image store the default, and with it `kind load
    /// docker-image` can fail with "content digest … not found" (kubernetes-sigs/kind#3795,
    /// #4066; armadaproject/armada#4693 hit it on CI runners). kind documents the workaround
    /// (kind PR #4247): a single-platform `docker image save --platform` and `kind load
    /// image-archive`. A failed load takes that path; when it fails too, the error names both.
    #[test]
    fn a_failed_image_load_falls_back_to_a_single_platform_archive() {
        let root = build_context();
        let run = |archive_ok: bool| {
            let mut answers = vec![
                ("kind get clusters".into(), Some("brownout\n".into())),
                ("kind load docker-image".into(), None),
                (
                    "kind get kubeconfig".into(),
                    Some("apiVersion: v1\n".into()),
                ),
            ];
            if !archive_ok {
                answers.push(("kind load image-archive".into(), None));
            }
            let mut tools = FakeTools {
                answers,
                ..Default::default()
            };
            let r = prepare_kind(&mut tools, root.path(), None);
            (r, tools.seen)
        };
        let (r, seen) = run(true);
        let prepared = r.unwrap();
        let saves: Vec<&String> = seen
            .iter()
            .filter(|c| c.starts_with("docker image save --platform linux/"))
            .collect();
        let archives = seen
            .iter()
            .filter(|c| c.starts_with("kind load image-archive --name brownout "))
            .count();
        assert_eq!(saves.len(), IMAGES.len(), "{seen:?}");
        assert_eq!(archives, IMAGES.len(), "{seen:?}");
        assert!(saves[0].contains(&format!("brownout/checkout:{}", prepared.tag)));
        let (r, _) = run(false);
        let e = r.unwrap_err().to_string();
        assert!(
            e.contains("kind load docker-image") && e.contains("kind load image-archive"),
            "{e}"
        );
    }

    #[test]
    fn images_the_node_already_has_are_neither_built_nor_loaded() {
        let root = build_context();
        let tag = content_tag(root.path(), None).unwrap();
        let all: Vec<String> = IMAGES.iter().map(|i| node_ref(i.name, &tag)).collect();
        let prepare = |listing: Option<String>| {
            let mut tools = FakeTools {
                answers: vec![
                    ("kind get clusters".into(), Some("brownout\n".into())),
                    (
                        "docker exec brownout-control-plane crictl images".into(),
                        listing,
                    ),
                    (
                        "kind get kubeconfig".into(),
                        Some("apiVersion: v1\n".into()),
                    ),
                ],
                ..Default::default()
            };
            let prepared = prepare_kind(&mut tools, root.path(), None).unwrap();
            let built: Vec<String> = tools
                .seen
                .iter()
                .filter(|c| c.starts_with("docker build"))
                .cloned()
                .collect();
            let loaded: Vec<String> = tools
                .seen
                .iter()
                .filter(|c| c.starts_with("kind load"))
                .cloned()
                .collect();
            (prepared, built, loaded)
        };

        // Every image there: nothing built, nothing loaded, the same tag rendered.
        let (prepared, built, loaded) = prepare(Some(crictl_listing(&all)));
        assert!(
            built.is_empty() && loaded.is_empty(),
            "{built:?} {loaded:?}"
        );
        assert_eq!(prepared.tag, tag);
        assert!(prepared.loaded.is_empty());

        // Another run's tag of the same images (and the short names) do not count.
        let stale: Vec<String> = IMAGES
            .iter()
            .flat_map(|i| {
                [
                    format!("docker.io/{}:0123456789abcdef0123", i.name),
                    format!("{}:{tag}", i.name),
                ]
            })
            .collect();
        let (_, built, loaded) = prepare(Some(crictl_listing(&stale)));
        assert_eq!((built.len(), loaded.len()), (4, 4));

        // Two of four there: only the other two.
        let (prepared, built, loaded) = prepare(Some(crictl_listing(&all[..2])));
        assert_eq!(
            prepared.loaded,
            ["brownout/fault-proxy", "brownout/ingress"]
        );
        assert_eq!(built.len(), 2, "{built:?}");
        assert!(
            built[0].contains("fault-proxy.Dockerfile") && built[1].contains("ingress.Dockerfile")
        );
        assert_eq!(
            loaded,
            [
                format!("kind load docker-image --name brownout brownout/fault-proxy:{tag}"),
                format!("kind load docker-image --name brownout brownout/ingress:{tag}"),
            ]
        );

        // The listing failed (or answered something else): everything, as before.
        for listing in [None, Some("not json".to_string())] {
            let (prepared, built, loaded) = prepare(listing);
            assert_eq!(
                (built.len(), loaded.len(), prepared.loaded.len()),
                (4, 4, 4)
            );
        }
    }

    /// What the tag hashes is what the images hold: each Dockerfile's `COPY` sources are exactly
    /// the files [`IMAGES`] lists for it (a new COPY without a new entry would let a changed
    /// file keep a stale image).
    #[test]
    fn the_dockerfiles_copy_what_the_tag_hashes() {
        for image in &IMAGES {
            let text = std::fs::read_to_string(repository().join(image.dockerfile)).unwrap();
            let copied: BTreeSet<&str> = text
                .lines()
                .filter_map(|l| l.trim().strip_prefix("COPY "))
                .flat_map(|args| {
                    let words: Vec<&str> = args.split_whitespace().collect();
                    words[..words.len() - 1].to_vec()
                })
                .collect();
            let declared: BTreeSet<&str> = image.copies.iter().copied().collect();
            assert_eq!(copied, declared, "{}", image.dockerfile);
        }
    }

    /// The kind release and its node image are pinned once and agree everywhere: kind-config/
    /// kind.yaml's node names [`NODE_IMAGE`] (by digest: kind's release notes say "You must use
    /// the @sha256 digest to guarantee an image built for this release",
    /// https://github.com/kubernetes-sigs/kind/releases/tag/v0.33.0, whose "Images pre-built
    /// for this release" list `kindest/node:v1.34.11@sha256:44e222ee…`); the workflow installs
    /// [`KIND_RELEASE`] with helm/kind-action (inputs `version`, `config`, `cluster_name`,
    /// `wait`: helm/kind-action action.yml) and the script and the preflight's install hint
    /// name the same release; the node runs Kubernetes [`KUBERNETES_MINOR`], the minor the
    /// objects are validated against (tests/manifests.rs) and k8s-openapi is built for.
    #[test]
    fn the_kind_release_and_node_image_are_pinned_once() {
        #[derive(Deserialize)]
        struct KindConfig {
            name: String,
            nodes: Vec<KindNode>,
        }
        #[derive(Deserialize)]
        struct KindNode {
            image: Option<String>,
        }
        let text = std::fs::read_to_string(repository().join("kind-config/kind.yaml")).unwrap();
        let config: KindConfig = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(config.name, CLUSTER);
        assert!(!config.nodes.is_empty());
        for node in &config.nodes {
            assert_eq!(node.image.as_deref(), Some(NODE_IMAGE));
        }
        let version = NODE_IMAGE
            .strip_prefix("kindest/node:v")
            .and_then(|v| v.split('@').next())
            .unwrap();
        assert!(
            version.starts_with(&format!("{KUBERNETES_MINOR}.")),
            "{version}"
        );
        let digest = NODE_IMAGE.split_once("@sha256:").unwrap().1;
        assert!(digest.len() == 64 && digest.chars().all(|c| c.is_ascii_hexdigit()));

        #[derive(Deserialize)]
        struct Workflow {
            jobs: std::collections::BTreeMap<String, Job>,
        }
        #[derive(Deserialize)]
        struct Job {
            steps: Vec<Step>,
        }
        #[derive(Deserialize)]
        struct Step {
            uses: Option<String>,
            run: Option<String>,
            #[serde(default)]
            with: std::collections::BTreeMap<String, String>,
        }
        let text =
            std::fs::read_to_string(repository().join(".github/workflows/kind.yml")).unwrap();
        let workflow: Workflow = serde_saphyr::from_str(&text).unwrap();
        let steps: Vec<&Step> = workflow.jobs.values().flat_map(|j| &j.steps).collect();
        let kind = steps
            .iter()
            .find(|s| {
                s.uses
                    .as_deref()
                    .is_some_and(|u| u.starts_with("helm/kind-action@"))
            })
            .expect("a kind-action step");
        assert_eq!(
            kind.with.get("version").map(String::as_str),
            Some(KIND_RELEASE)
        );
        assert_eq!(
            kind.with.get("cluster_name").map(String::as_str),
            Some(CLUSTER)
        );
        assert_eq!(
            kind.with.get("config").map(String::as_str),
            Some("kind-config/kind.yaml")
        );
        assert!(
            steps.iter().any(|s| s
                .run
                .as_deref()
                .is_some_and(|r| r.contains("scripts/test-kind.sh"))),
            "the workflow runs what ./just test-kind runs"
        );
        let script = std::fs::read_to_string(repository().join("scripts/test-kind.sh")).unwrap();
        assert!(
            script.contains(&format!("KIND_RELEASE={KIND_RELEASE}")),
            "scripts/test-kind.sh names {KIND_RELEASE}"
        );
        let hint = super::super::KIND_TOOLS
            .iter()
            .find(|(p, _)| *p == "kind")
            .unwrap()
            .1;
        assert!(
            hint.contains(&format!("sigs.k8s.io/kind@{KIND_RELEASE}")),
            "{hint}"
        );
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
