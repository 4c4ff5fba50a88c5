//! Prometheus (`[prometheus]`): its configuration discovering the namespace's pods, the rule
//! files in a ConfigMap, and the namespaced Role it discovers with.

use super::{
    container_port, deployment, meta, port, service, Object, RenderOptions, PROMETHEUS_NODE_PORT,
};
use crate::error::{BrownoutError, Result};
use crate::spec::System;
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, HTTPGetAction, PodSpec,
    Probe, ServiceAccount, Volume, VolumeMount,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// Prometheus' configuration on Kubernetes: the pods of the run's namespace that ask to be
/// scraped, labelled as on the local platform (`job` = the component, `replica` = the pod), so
/// the rule files run unchanged.
pub fn prometheus_config(system: &System, opts: &RenderOptions) -> String {
    let p = &system.file.prometheus;
    let mut rules = String::new();
    for r in &system.rule_files {
        let base = r.file_name().unwrap_or_default().to_string_lossy();
        rules.push_str(&format!("  - /etc/prometheus/rules/{base}\n"));
    }
    format!(
        r#"# Written by brownout for one run.
global:
  scrape_interval: {scrape}ms
  scrape_timeout: {scrape}ms
  evaluation_interval: {evaluation}ms
rule_files:
{rules}scrape_configs:
  - job_name: pods
    kubernetes_sd_configs:
      - role: pod
        namespaces:
          names: ['{ns}']
    relabel_configs:
      - source_labels: [__meta_kubernetes_pod_annotation_brownout_dev_scrape]
        regex: 'true'
        action: keep
      - source_labels: [__meta_kubernetes_pod_annotation_brownout_dev_metrics_path]
        target_label: __metrics_path__
      - source_labels: [__meta_kubernetes_pod_ip, __meta_kubernetes_pod_annotation_brownout_dev_metrics_port]
        separator: ':'
        target_label: __address__
      - source_labels: [__meta_kubernetes_pod_label_app_kubernetes_io_name]
        regex: ingress
        replacement: brownout-edge
        target_label: __tmp_job
      - source_labels: [__meta_kubernetes_pod_label_app_kubernetes_io_name]
        regex: '(.+)'
        target_label: job
      - source_labels: [__tmp_job]
        regex: '(.+)'
        target_label: job
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: replica
"#,
        scrape = p.scrape_interval.ms(),
        evaluation = p.evaluation_interval.ms(),
        ns = opts.namespace,
    )
}

pub(super) fn prometheus_objects(system: &System, opts: &RenderOptions) -> Result<Vec<Object>> {
    let mut rules = BTreeMap::new();
    for r in &system.rule_files {
        let base = r
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        // Through the capped reader, as when the file was validated: it may have changed since.
        let text = crate::spec::source::read_capped(r)?;
        if rules.insert(base.clone(), text).is_some() {
            return Err(BrownoutError::BadInput(format!(
                "two rule files are named {base}: on Kubernetes they share one ConfigMap, rename one"
            )));
        }
    }
    let account = "prometheus";
    let config = ConfigMap {
        metadata: meta(opts, "prometheus"),
        data: Some(BTreeMap::from([(
            "prometheus.yml".to_string(),
            prometheus_config(system, opts),
        )])),
        ..Default::default()
    };
    let rule_map = ConfigMap {
        metadata: meta(opts, "prometheus-rules"),
        data: Some(rules),
        ..Default::default()
    };
    let role = Role {
        metadata: meta(opts, account),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(["pods", "services", "endpoints"].map(String::from).to_vec()),
            verbs: ["get", "list", "watch"].map(String::from).to_vec(),
            ..Default::default()
        }]),
    };
    let binding = RoleBinding {
        metadata: meta(opts, account),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: account.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: account.into(),
            namespace: Some(opts.namespace.clone()),
            ..Default::default()
        }]),
    };
    let mount = |name: &str, path: &str| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..Default::default()
    };
    let container = Container {
        name: "prometheus".into(),
        image: Some(opts.prometheus_image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        args: Some(
            [
                "--config.file=/etc/prometheus/config/prometheus.yml",
                "--storage.tsdb.path=/prometheus",
                "--storage.tsdb.retention.time=1d",
                "--log.level=warn",
            ]
            .map(String::from)
            .to_vec(),
        ),
        ports: Some(vec![container_port("http", 9090)]),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/-/ready".into()),
                port: IntOrString::Int(9090),
                ..Default::default()
            }),
            period_seconds: Some(1),
            ..Default::default()
        }),
        volume_mounts: Some(vec![
            mount("config", "/etc/prometheus/config"),
            mount("rules", "/etc/prometheus/rules"),
            mount("data", "/prometheus"),
        ]),
        ..Default::default()
    };
    let config_volume = |name: &str, map: &str| Volume {
        name: name.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: map.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let pod = PodSpec {
        service_account_name: Some(account.into()),
        containers: vec![container],
        volumes: Some(vec![
            config_volume("config", "prometheus"),
            config_volume("rules", "prometheus-rules"),
            Volume {
                name: "data".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            },
        ]),
        ..Default::default()
    };
    Ok(vec![
        Object::ServiceAccount(ServiceAccount {
            metadata: meta(opts, account),
            ..Default::default()
        }),
        Object::Role(role),
        Object::RoleBinding(binding),
        Object::ConfigMap(config),
        Object::ConfigMap(rule_map),
        Object::Deployment(deployment(opts, "prometheus", 1, pod, BTreeMap::new())),
        Object::Service(service(
            opts,
            "prometheus",
            vec![port("http", 9090, Some(PROMETHEUS_NODE_PORT))],
        )),
    ])
}
