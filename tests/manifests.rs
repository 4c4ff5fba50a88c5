//! The Kubernetes objects `brownout manifests` renders, checked offline as a cluster would check
//! them (no cluster can start on the machines this runs on): every object against the Kubernetes
//! 1.34 schemas with `kubernetes-validate --strict` (PyPI; `scripts/install-deps.sh` puts it in
//! `.tools/venv`), and Prometheus' configuration and the rules ConfigMap with `promtool` (Debian's
//! lacks Kubernetes discovery: that block is checked by shape). A broken object is shown failing
//! the same check.

mod support;
use std::path::PathBuf;
use std::process::Command;
use support::{root, BROWNOUT};

const KUBERNETES: &str = "1.34.0";

fn validator() -> PathBuf {
    let venv = root().join(".tools/venv/bin/kubernetes-validate");
    assert!(
        venv.is_file(),
        "{} is missing: run scripts/install-deps.sh (just test does)",
        venv.display()
    );
    venv
}

fn manifests(system: &str, bugs: &[&str]) -> String {
    let mut cmd = Command::new(BROWNOUT);
    cmd.args(["manifests", system, "--namespace", "brownout-test"])
        .current_dir(root());
    for b in bugs {
        cmd.args(["--bug", b]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs kubernetes-validate on `yaml`; (passed, what it printed).
fn validate(yaml: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("objects.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = Command::new(validator())
        .args(["--strict", "-k", KUBERNETES])
        .arg(&file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn every_rendered_object_is_valid_kubernetes_and_a_broken_one_is_caught() {
    for (system, bugs) in [
        ("scenarios/systems/checkout.toml", vec!["no-drain"]),
        ("tests/fixtures/plain/systems/plain-pre-stop.toml", vec![]),
        ("tests/fixtures/plain/systems/plain.toml", vec![]),
    ] {
        let yaml = manifests(system, &bugs);
        assert!(yaml.matches("kind: Deployment").count() >= 3, "{yaml}");
        let (ok, text) = validate(&yaml);
        assert!(ok, "{system}: {text}");
    }
    // The same check refuses an object Kubernetes would refuse: a field that does not exist.
    let yaml = manifests("scenarios/systems/checkout.toml", &[]);
    let broken = yaml.replacen(
        "terminationGracePeriodSeconds:",
        "terminationGracePeriod: 3\n      terminationGracePeriodSeconds:",
        1,
    );
    assert_ne!(broken, yaml);
    let (ok, text) = validate(&broken);
    assert!(!ok, "an unknown field passed: {text}");
    assert!(text.contains("terminationGracePeriod"), "{text}");
}

#[test]
fn prometheus_config_and_rules_on_kubernetes_pass_promtool() {
    let yaml = manifests("scenarios/systems/checkout.toml", &[]);
    let objects = harness::platform::kube::render::from_yaml(&yaml).unwrap();
    let data = |name: &str| {
        objects
            .iter()
            .find_map(|o| match o {
                harness::platform::kube::render::Object::ConfigMap(c)
                    if c.metadata.name.as_deref() == Some(name) =>
                {
                    c.data.clone()
                }
                _ => None,
            })
            .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let rules_dir = dir.path().join("rules");
    std::fs::create_dir(&rules_dir).unwrap();
    let rules = data("prometheus-rules");
    assert_eq!(
        rules.keys().collect::<Vec<_>>(),
        ["checkout.rules.yml", "edge.rules.yml"],
        "the system's rule files, unchanged"
    );
    for (name, text) in &rules {
        let original = std::fs::read_to_string(root().join("scenarios/alerts").join(name)).unwrap();
        assert_eq!(*text, original, "{name} is the unchanged file");
        std::fs::write(rules_dir.join(name), text).unwrap();
    }
    // The config points at the ConfigMap's mount; here the same files sit in the temp dir.
    let config = data("prometheus")["prometheus.yml"].replace(
        "/etc/prometheus/rules/",
        &format!("{}/", rules_dir.display()),
    );
    // Debian's Prometheus is built without Kubernetes discovery, so its promtool refuses
    // `kubernetes_sd_configs`. The block is checked here by shape, then swapped for a static
    // target so promtool checks everything else (globals, rule files, every relabel rule).
    let sd = "    kubernetes_sd_configs:\n      - role: pod\n        namespaces:\n          names: ['brownout-test']\n";
    assert!(
        config.contains(sd),
        "pod discovery in the run's namespace only: {config}"
    );
    let config = config.replace(
        sd,
        "    static_configs:\n      - targets: ['127.0.0.1:9']\n",
    );
    let check = |config: &str| {
        let file = dir.path().join("prometheus.yml");
        std::fs::write(&file, config).unwrap();
        let out = Command::new("promtool")
            .args(["check", "config"])
            .arg(&file)
            .output()
            .expect("promtool (scripts/install-deps.sh installs it)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, text) = check(&config);
    assert!(ok, "{text}");
    // The same check refuses a broken relabel rule.
    let (ok, text) = check(&config.replacen("regex: 'true'", "regex: '('", 1));
    assert!(!ok, "a broken regex passed: {text}");
}
