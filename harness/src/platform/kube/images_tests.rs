//! The kind cluster and the images with fake tools: created or reused, content-addressed tags,
//! built and loaded once, the archive fallback.

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
    let prepared = prepare_kind(&mut tools, root.path(), Some("brownout/base:bookworm")).unwrap();
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
    assert!(built[0].contains("fault-proxy.Dockerfile") && built[1].contains("ingress.Dockerfile"));
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
    let text = std::fs::read_to_string(repository().join(".github/workflows/kind.yml")).unwrap();
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
