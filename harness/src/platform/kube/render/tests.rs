//! The rendered objects: golden manifests, placeholders, probes rounded to whole seconds.

use super::*;
use k8s_openapi::api::core::v1::Container;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rendered(system: &str) -> Vec<Object> {
    let system = crate::spec::load_system(&root().join(system)).unwrap();
    let mut opts = RenderOptions::new("brownout-golden", "golden");
    opts.proxy_token = "golden-token".into();
    render(&system, &opts).unwrap()
}

/// The rendering is what `kind-config/golden/<name>.yaml` says (rewrite it with
/// BROWNOUT_BLESS=1 after a deliberate change, and review the diff), and it reads back into
/// the same typed objects.
fn golden(system: &str, name: &str) {
    let objects = rendered(system);
    let yaml = to_yaml(&objects).unwrap();
    let path = root().join(format!("kind-config/golden/{name}.yaml"));
    if std::env::var_os("BROWNOUT_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &yaml).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (BROWNOUT_BLESS=1 writes it)", path.display()));
    assert!(
        yaml == want,
        "{} differs from the rendering; if the change is meant, rerun with BROWNOUT_BLESS=1 and review the diff",
        path.display()
    );
    assert_eq!(from_yaml(&want).unwrap(), objects, "reads back the same");
}

#[test]
fn the_sample_system_renders_as_its_golden_file() {
    golden("scenarios/systems/checkout.toml", "checkout");
}

#[test]
fn a_system_without_database_or_proxies_renders_as_its_golden_file() {
    golden(
        "tests/fixtures/plain/systems/plain-pre-stop.toml",
        "plain-pre-stop",
    );
}

/// database-down scales PostgreSQL's Deployment to 0 and back to 1: the new pod must find
/// the old data, or the postgres image runs initdb again (its docker-entrypoint.sh does so
/// when `$PGDATA/PG_VERSION` is missing: docker-library/postgres docker-entrypoint.sh,
/// `docker_setup_env`) and the app, which migrated only at boot, finds no tables. An emptyDir
/// cannot keep it: "When a Pod is removed from a node for any reason, the data in the emptyDir
/// is deleted permanently"
/// (https://kubernetes.io/docs/concepts/storage/volumes/#emptydir). A PersistentVolumeClaim
/// outlives its pods; without `storageClassName` it gets the cluster's default class
/// (https://kubernetes.io/docs/concepts/storage/persistent-volumes/#class-1), which on kind
/// is `standard`, rancher.io/local-path, `volumeBindingMode: WaitForFirstConsumer`,
/// `reclaimPolicy: Delete` (kubernetes-sigs/kind pkg/build/nodeimage/const_storage.go, applied
/// at cluster creation by pkg/cluster/internal/create/actions/installstorage/storage.go), so
/// it binds when the postgres pod is scheduled and its volume goes with the run's namespace.
/// The strategy is `Recreate` ("All existing Pods are killed before new ones are created",
/// https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#recreate-deployment):
/// a RollingUpdate would start the new pod while the old one still holds the volume.
#[test]
fn postgres_keeps_its_data_on_a_claim_of_the_default_class_and_is_recreated() {
    let objects = rendered("scenarios/systems/checkout.toml");
    let claim = objects
        .iter()
        .find_map(|o| match o {
            Object::PersistentVolumeClaim(c) => Some(c),
            _ => None,
        })
        .expect("a PersistentVolumeClaim");
    assert_eq!(claim.metadata.name.as_deref(), Some(POSTGRES_CLAIM));
    assert_eq!(
        claim.metadata.namespace.as_deref(),
        Some("brownout-golden"),
        "in the run's namespace, so it goes with it"
    );
    let spec = claim.spec.as_ref().unwrap();
    assert_eq!(spec.storage_class_name, None, "the cluster's default class");
    assert_eq!(spec.access_modes, Some(vec!["ReadWriteOnce".to_string()]));
    let at = |kind: &str, name: &str| {
        objects
            .iter()
            .position(|o| o.kind() == kind && o.name() == name)
            .unwrap()
    };
    assert!(
        at("PersistentVolumeClaim", POSTGRES_CLAIM) < at("Deployment", "postgres"),
        "the claim is applied before its pod"
    );
    let postgres = deployment(&objects, "postgres");
    let dspec = postgres.spec.as_ref().unwrap();
    let strategy = dspec.strategy.as_ref().unwrap();
    assert_eq!(strategy.type_.as_deref(), Some("Recreate"));
    assert_eq!(strategy.rolling_update, None);
    let pod = dspec.template.spec.as_ref().unwrap();
    let data = pod.volumes.as_ref().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0].empty_dir, None, "not an emptyDir");
    assert_eq!(
        data[0]
            .persistent_volume_claim
            .as_ref()
            .map(|c| c.claim_name.as_str()),
        Some(POSTGRES_CLAIM)
    );
    let mounts = container(postgres).volume_mounts.as_ref().unwrap();
    assert_eq!(mounts[0].name, data[0].name);
    assert_eq!(mounts[0].mount_path, "/var/lib/postgresql/data");
    // PGDATA is a directory below the mount (a fresh volume may hold lost+found).
    assert_eq!(
        env_of(container(postgres), "PGDATA"),
        "/var/lib/postgresql/data/pgdata"
    );
    // The apps keep the RollingUpdate of the system file.
    let checkout = deployment(&objects, "checkout").spec.as_ref().unwrap();
    assert_eq!(
        checkout.strategy.as_ref().unwrap().type_.as_deref(),
        Some("RollingUpdate")
    );
}

fn deployment<'a>(objects: &'a [Object], name: &str) -> &'a Deployment {
    objects
        .iter()
        .find_map(|o| match o {
            Object::Deployment(d) if d.metadata.name.as_deref() == Some(name) => Some(d),
            _ => None,
        })
        .unwrap()
}

fn container(d: &Deployment) -> &Container {
    &d.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
}

fn env_of(c: &Container, name: &str) -> String {
    let e = c.env.as_ref().unwrap().iter().find(|e| e.name == name);
    e.and_then(|e| e.value.clone()).unwrap_or_default()
}

#[test]
fn the_system_file_maps_onto_the_kubernetes_fields() {
    let objects = rendered("scenarios/systems/checkout.toml");
    let checkout = deployment(&objects, "checkout");
    let spec = checkout.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.termination_grace_period_seconds, Some(10));
    let c = container(checkout);
    assert_eq!(c.image.as_deref(), Some("brownout/checkout:dev"));
    assert_eq!(c.command.as_ref().unwrap()[0], "/usr/local/bin/checkout");
    // 800 ms is not a whole second: rounded up to the 1 s Kubernetes allows at least.
    let ready = c.readiness_probe.as_ref().unwrap();
    assert_eq!(
        (ready.period_seconds, ready.timeout_seconds),
        (Some(1), Some(1))
    );
    assert_eq!(
        c.liveness_probe.as_ref().unwrap().failure_threshold,
        Some(3)
    );
    assert_eq!(env_of(c, "PAYMENTS_URL"), "http://fault-proxy:15000");
    assert_eq!(
        env_of(c, "DATABASE_URL"),
        "postgres://postgres@postgres:5432/checkout"
    );
    assert_eq!(env_of(c, "LISTEN_ADDR"), "0.0.0.0:8080");
    assert_eq!(env_of(c, "REPLICA_NAME"), "$(BROWNOUT_POD_NAME)");
    assert_eq!(
        c.env.as_ref().unwrap()[0].name,
        "BROWNOUT_POD_NAME",
        "defined first"
    );
    assert_eq!(env_of(c, "RECEIPTS_DIR"), "/volumes/receipts");
    let receipts = &pod.volumes.as_ref().unwrap()[0];
    let empty_dir = receipts.empty_dir.as_ref().unwrap();
    assert_eq!(empty_dir.medium.as_deref(), Some("Memory"));
    assert_eq!(empty_dir.size_limit, Some(Quantity("16Mi".into())));
    let limits = c.resources.as_ref().unwrap().limits.as_ref().unwrap();
    assert_eq!(
        limits["memory"],
        Quantity("288Mi".into()),
        "256 MiB + twice the tmpfs"
    );
    // The fault proxy forwards to the Service's name, which follows the pods.
    let proxy = container(deployment(&objects, "fault-proxy"));
    assert!(proxy
        .args
        .as_ref()
        .unwrap()
        .contains(&"payments=payments:8080".to_string()));
    // Every object is in the run's namespace and carries the run label.
    for o in &objects {
        let json = serde_json::to_value(o).unwrap();
        assert_eq!(
            json["metadata"]["namespace"],
            "brownout-golden",
            "{}",
            o.name()
        );
        assert_eq!(
            json["metadata"]["labels"][RUN_LABEL],
            "golden",
            "{}",
            o.name()
        );
    }
}

#[test]
fn bugs_reach_the_bug_variable_and_a_foreign_command_needs_an_image() {
    let mut system =
        crate::spec::load_system(&root().join("scenarios/systems/checkout.toml")).unwrap();
    let mut opts = RenderOptions::new("ns", "run");
    opts.bugs = vec!["no-drain".into(), "ignore-sigterm".into()];
    let objects = render(&system, &opts).unwrap();
    let c = container(deployment(&objects, "checkout"));
    assert_eq!(env_of(c, "CHECKOUT_BUGS"), "no-drain,ignore-sigterm");

    system.file.services[0].command = vec!["/opt/shop/server".into()];
    let err = render(&system, &opts).unwrap_err().to_string();
    assert!(
        err.contains("service 'payments'") && err.contains("`image`"),
        "{err}"
    );
    system.file.services[0].image = Some("registry.example/shop:1.2".into());
    let objects = render(&system, &opts).unwrap();
    let c = container(deployment(&objects, "payments"));
    assert_eq!(c.image.as_deref(), Some("registry.example/shop:1.2"));
}
