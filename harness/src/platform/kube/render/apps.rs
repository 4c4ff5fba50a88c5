//! An app's objects (`[[services]]`): its Deployment (replicas, env, probes, volumes, graceful
//! stop) and its Service.

use super::{
    container_port, deployment, env, fill, image_of, port, probe, quantity, service, Object,
    RenderOptions, SCRAPE, SCRAPE_PATH, SCRAPE_PORT, SERVICE_PORT,
};
use crate::error::Result;
use crate::spec::{PreStopSpec, ServiceSpec};
use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, HTTPGetAction, Lifecycle,
    LifecycleHandler, ObjectFieldSelector, PodSpec, ResourceRequirements, SleepAction, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

pub(super) fn service_objects(
    s: &ServiceSpec,
    opts: &RenderOptions,
    vars: &BTreeMap<String, String>,
) -> Result<Vec<Object>> {
    let name = s.name.get_ref();
    // The pod's name first: `$(BROWNOUT_POD_NAME)` in later values refers to it.
    let mut env_vars = vec![EnvVar {
        name: "BROWNOUT_POD_NAME".into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: "metadata.name".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }];
    env_vars.extend(s.env.iter().map(|(k, v)| env(k, fill(v, vars))));
    if let Some(var) = &s.bug_env {
        env_vars.push(env(var, opts.bugs.join(",")));
    }
    let mut mounts = Vec::new();
    let mut volumes = Vec::new();
    let mut tmpfs: u64 = 0;
    for v in &s.volumes {
        mounts.push(VolumeMount {
            name: v.name.clone(),
            mount_path: format!("/volumes/{}", v.name),
            ..Default::default()
        });
        volumes.push(Volume {
            name: v.name.clone(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: v.size.map(|_| "Memory".to_string()),
                size_limit: v.size.map(|sz| quantity(sz.0)),
            }),
            ..Default::default()
        });
        tmpfs += v.size.map_or(0, |sz| sz.0);
    }
    let pre_stop = s.pre_stop.as_ref().map(|p| Lifecycle {
        pre_stop: Some(match p {
            PreStopSpec::Sleep(d) => LifecycleHandler {
                sleep: Some(SleepAction {
                    seconds: d.ms().div_ceil(1000) as i64,
                }),
                ..Default::default()
            },
            PreStopSpec::Http(path) => LifecycleHandler {
                http_get: Some(HTTPGetAction {
                    path: Some(path.clone()),
                    port: IntOrString::Int(SERVICE_PORT),
                    ..Default::default()
                }),
                ..Default::default()
            },
        }),
        ..Default::default()
    });
    // A memory-backed volume counts against the container's memory: keep the limit well above.
    let memory = quantity((256 << 20) + 2 * tmpfs);
    let container = Container {
        name: name.clone(),
        image: Some(image_of(s, &opts.image_tag)?),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(s.command.iter().map(|c| fill(c, vars)).collect()),
        env: Some(env_vars),
        ports: Some(vec![container_port("http", SERVICE_PORT)]),
        readiness_probe: s.readiness.as_ref().map(probe),
        liveness_probe: s.liveness.as_ref().map(probe),
        lifecycle: pre_stop,
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        resources: Some(ResourceRequirements {
            limits: Some(BTreeMap::from([("memory".into(), memory)])),
            ..Default::default()
        }),
        ..Default::default()
    };
    let pod = PodSpec {
        containers: vec![container],
        termination_grace_period_seconds: Some(s.grace_period.ms().div_ceil(1000) as i64),
        volumes: (!volumes.is_empty()).then_some(volumes),
        ..Default::default()
    };
    let annotations = match &s.metrics_path {
        Some(path) => BTreeMap::from([
            (SCRAPE.to_string(), "true".to_string()),
            (SCRAPE_PATH.into(), path.clone()),
            (SCRAPE_PORT.into(), SERVICE_PORT.to_string()),
        ]),
        None => BTreeMap::new(),
    };
    Ok(vec![
        Object::Deployment(deployment(opts, name, s.replicas as i32, pod, annotations)),
        Object::Service(service(opts, name, vec![port("http", SERVICE_PORT, None)])),
    ])
}
