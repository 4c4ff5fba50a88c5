//! The fault proxy (`[[proxies]]`): one Deployment holding every proxy, its control API behind a
//! NodePort, and the token Secret.

use super::{
    container_port, deployment, meta, port, service, Object, RenderOptions,
    PROXY_CONTROL_NODE_PORT, PROXY_CONTROL_PORT, PROXY_FIRST_PORT, SERVICE_PORT,
};
use crate::spec::System;
use k8s_openapi::api::core::v1::{
    Container, PodSpec, Probe, Secret, SecretVolumeSource, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

pub(super) fn proxy_objects(system: &System, opts: &RenderOptions) -> Vec<Object> {
    let file = &system.file;
    let mut args = vec![
        "--control".to_string(),
        format!("0.0.0.0:{PROXY_CONTROL_PORT}"),
        "--listen".into(),
        format!("0.0.0.0:{PROXY_FIRST_PORT}"),
        "--token-file".into(),
        "/etc/fault-proxy/token".into(),
    ];
    let mut ports = vec![port(
        "control",
        PROXY_CONTROL_PORT,
        Some(PROXY_CONTROL_NODE_PORT),
    )];
    for (i, p) in file.proxies.iter().enumerate() {
        // The upstream is the Service's name, resolved at each connection: it follows the
        // service's pods across rollouts, as kube-proxy routes them.
        let upstream = match p.upstream.as_str() {
            "database" => "postgres:5432".to_string(),
            s => format!("{s}:{SERVICE_PORT}"),
        };
        args.extend(["--proxy".to_string(), format!("{}={upstream}", p.name)]);
        // Port names are at most 15 characters: numbered, the proxy named in the args.
        ports.push(port(
            &format!("proxy-{i}"),
            PROXY_FIRST_PORT + i as i32,
            None,
        ));
    }
    let container = Container {
        name: "fault-proxy".into(),
        image: Some(format!("brownout/fault-proxy:{}", opts.image_tag)),
        image_pull_policy: Some("IfNotPresent".into()),
        args: Some(args),
        ports: Some(
            ports
                .iter()
                .map(|p| container_port(p.name.as_deref().unwrap_or_default(), p.port))
                .collect(),
        ),
        readiness_probe: Some(Probe {
            tcp_socket: Some(k8s_openapi::api::core::v1::TCPSocketAction {
                port: IntOrString::Int(PROXY_CONTROL_PORT),
                ..Default::default()
            }),
            period_seconds: Some(1),
            ..Default::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: "token".into(),
            mount_path: "/etc/fault-proxy".into(),
            read_only: Some(true),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let pod = PodSpec {
        containers: vec![container],
        volumes: Some(vec![Volume {
            name: "token".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some("fault-proxy-token".into()),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        ..Default::default()
    };
    vec![
        Object::Secret(Secret {
            metadata: meta(opts, "fault-proxy-token"),
            string_data: Some(BTreeMap::from([("token".into(), opts.proxy_token.clone())])),
            ..Default::default()
        }),
        Object::Deployment(deployment(opts, "fault-proxy", 1, pod, BTreeMap::new())),
        Object::Service(service(opts, "fault-proxy", ports)),
    ]
}
