//! The ingress (`[ingress]`): nginx with the local platform's configuration and mtail for the
//! edge metrics.

use super::{
    container_port, deployment, meta, port, service, Object, RenderOptions, INGRESS_NODE_PORT,
    SCRAPE, SCRAPE_PATH, SCRAPE_PORT, SERVICE_PORT, UPSTREAMS_DIR, UPSTREAMS_FILE, UPSTREAMS_SEED,
};
use crate::spec::System;
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, PodSpec, Volume, VolumeMount,
};
use std::collections::BTreeMap;

/// nginx (the same configuration as the local platform) routing to the pods of the routed
/// Service, with mtail reading its edge log from a shared emptyDir. The upstreams file lives in
/// another emptyDir, seeded at pod start with the no-endpoints form (nginx starts and answers 503
/// until the harness writes the pods' addresses into it by exec: [`crate::platform::kube::ingress`]).
pub(super) fn ingress_objects(system: &System, opts: &RenderOptions) -> Vec<Object> {
    let spec = &system.file.ingress;
    let conf = crate::platform::nginx_conf::render(
        &crate::platform::nginx_conf::Layout {
            run_as_root: false,
            pid: "/tmp/nginx.pid".into(),
            error_log: "/dev/stderr".into(),
            access_log: "/dev/stdout".into(),
            edge_log: "/var/log/brownout/ingress-edge.log".into(),
            temp_dir: "/tmp".into(),
            upstreams: UPSTREAMS_FILE.into(),
            listen: format!("{SERVICE_PORT}"),
        },
        spec,
    );
    // Not the Service's ClusterIP (kube-proxy never routes to unready pods, so no fail-open, and
    // `$upstream_addr` would name no pod): the harness writes the pods' addresses.
    let seed = crate::platform::nginx_conf::upstreams(&[]);
    let config = ConfigMap {
        metadata: meta(opts, "ingress"),
        data: Some(BTreeMap::from([
            ("nginx.conf".to_string(), conf),
            (UPSTREAMS_SEED.to_string(), seed),
            (
                "ingress.mtail".to_string(),
                crate::platform::nginx_conf::EDGE_PROGRAM.to_string(),
            ),
        ])),
        ..Default::default()
    };
    let mount = |name: &str, path: &str| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..Default::default()
    };
    let image = format!("brownout/ingress:{}", opts.image_tag);
    let nginx = Container {
        name: "nginx".into(),
        image: Some(image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(
            [
                "nginx",
                "-c",
                "/etc/brownout/nginx.conf",
                "-g",
                "daemon off;",
            ]
            .map(String::from)
            .to_vec(),
        ),
        ports: Some(vec![container_port("http", SERVICE_PORT)]),
        volume_mounts: Some(vec![
            mount("config", "/etc/brownout"),
            mount("edge-log", "/var/log/brownout"),
            mount("upstreams", UPSTREAMS_DIR),
        ]),
        ..Default::default()
    };
    // Runs once per pod (not per container restart): a restarted nginx keeps the last route
    // written, and the harness writes it again anyway.
    let seed_upstreams = Container {
        name: "seed-upstreams".into(),
        image: Some(image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(
            [
                "cp".to_string(),
                format!("/etc/brownout/{UPSTREAMS_SEED}"),
                UPSTREAMS_FILE.to_string(),
            ]
            .to_vec(),
        ),
        volume_mounts: Some(vec![
            mount("config", "/etc/brownout"),
            mount("upstreams", UPSTREAMS_DIR),
        ]),
        ..Default::default()
    };
    let mtail = Container {
        name: "mtail".into(),
        image: Some(image),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(
            [
                "mtail",
                "-progs",
                "/etc/brownout/ingress.mtail",
                "-logs",
                "/var/log/brownout/ingress-edge.log",
                "-port",
                "3903",
                "-poll_interval",
                "20ms",
                "-emit_prog_label=false",
                "-logtostderr",
            ]
            .map(String::from)
            .to_vec(),
        ),
        ports: Some(vec![container_port("metrics", 3903)]),
        volume_mounts: Some(vec![
            mount("config", "/etc/brownout"),
            mount("edge-log", "/var/log/brownout"),
        ]),
        ..Default::default()
    };
    let pod = PodSpec {
        init_containers: Some(vec![seed_upstreams]),
        containers: vec![nginx, mtail],
        volumes: Some(vec![
            Volume {
                name: "config".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: "ingress".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Volume {
                name: "edge-log".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            },
            Volume {
                name: "upstreams".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            },
        ]),
        ..Default::default()
    };
    let annotations = BTreeMap::from([
        (SCRAPE.to_string(), "true".to_string()),
        (SCRAPE_PATH.into(), "/metrics".into()),
        (SCRAPE_PORT.into(), "3903".into()),
    ]);
    vec![
        Object::ConfigMap(config),
        Object::Deployment(deployment(opts, "ingress", 1, pod, annotations)),
        Object::Service(service(
            opts,
            "ingress",
            vec![port("http", SERVICE_PORT, Some(INGRESS_NODE_PORT))],
        )),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What bounds the ingress's logs on Kubernetes (H-logs, issue 33). nginx's access and error
    /// logs go to stdout/stderr: container logs, which the kubelet rotates (`containerLogMaxSize`,
    /// default 10Mi, and `containerLogMaxFiles`, default 5:
    /// https://kubernetes.io/docs/concepts/cluster-administration/logging/#log-rotation).
    /// The edge log mtail reads is a file in an emptyDir, which that does not cover, and it is
    /// deliberately left without a `sizeLimit`: past it the kubelet evicts the pod
    /// (pkg/kubelet/eviction/eviction_manager.go, `emptyDirLimitEviction`: "the emptyDir usage
    /// exceeds the size limit, evict the pod"), an ingress outage the harness did not inject,
    /// which a run would judge as the system's. It grows ~47 bytes an answer (68 MB an hour at
    /// 400 req/s, 0.8 GB in a 12-hour game day), bounded by the node's ephemeral storage, whose
    /// pressure eviction ranks pods by usage. Rotating it in the pod (as the local platform does:
    /// platform/local/logcap.rs) is left to do.
    #[test]
    fn ingress_logs_are_container_logs_and_the_edge_log_has_no_size_limit_to_evict_on() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let system =
            crate::spec::load_system(&root.join("scenarios/systems/checkout.toml")).unwrap();
        let objects = ingress_objects(&system, &RenderOptions::new("brownout-t", "t"));
        let conf = objects
            .iter()
            .find_map(|o| match o {
                Object::ConfigMap(c) => c.data.as_ref()?.get("nginx.conf").cloned(),
                _ => None,
            })
            .unwrap();
        assert!(conf.contains("error_log /dev/stderr"), "{conf}");
        assert!(conf.contains("access_log /dev/stdout"), "{conf}");
        let pod = objects
            .iter()
            .find_map(|o| match o {
                Object::Deployment(d) => d.spec.as_ref()?.template.spec.clone(),
                _ => None,
            })
            .unwrap();
        let edge = pod
            .volumes
            .unwrap()
            .into_iter()
            .find(|v| v.name == "edge-log")
            .unwrap();
        assert_eq!(edge.empty_dir.unwrap().size_limit, None);
    }
}
