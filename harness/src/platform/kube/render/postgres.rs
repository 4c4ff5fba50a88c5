//! PostgreSQL (`[database]`): a Deployment with strategy `Recreate` on a PersistentVolumeClaim,
//! and a NodePort Service for the harness.

use super::{
    container_port, deployment, env, meta, port, service, Object, RenderOptions, POSTGRES_CLAIM,
    POSTGRES_NODE_PORT,
};
use k8s_openapi::api::apps::v1::DeploymentStrategy;
use k8s_openapi::api::core::v1::{
    Container, ExecAction, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, PodSpec, Probe, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::BTreeMap;

pub(super) fn postgres_objects(opts: &RenderOptions, database: &str) -> Vec<Object> {
    let container = Container {
        name: "postgres".into(),
        image: Some(opts.postgres_image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        env: Some(vec![
            env("POSTGRES_HOST_AUTH_METHOD", "trust".into()),
            env("POSTGRES_DB", database.into()),
            env("PGDATA", "/var/lib/postgresql/data/pgdata".into()),
        ]),
        // The same settings as the local platform's throwaway cluster.
        args: Some(
            [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "max_connections=200",
                "-c",
                "log_min_duration_statement=200ms",
            ]
            .map(String::from)
            .to_vec(),
        ),
        ports: Some(vec![container_port("postgres", 5432)]),
        readiness_probe: Some(Probe {
            exec: Some(ExecAction {
                command: Some(
                    ["pg_isready", "-U", "postgres", "-d", database]
                        .map(String::from)
                        .to_vec(),
                ),
            }),
            period_seconds: Some(1),
            ..Default::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: "data".into(),
            mount_path: "/var/lib/postgresql/data".into(),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let pod = PodSpec {
        containers: vec![container],
        volumes: Some(vec![Volume {
            name: "data".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: POSTGRES_CLAIM.into(),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        ..Default::default()
    };
    // The data stays on the claim when the pod goes (database-down scales to 0 and back; an
    // emptyDir would be deleted with the pod and the new one would run initdb again).
    let claim = PersistentVolumeClaim {
        metadata: meta(opts, POSTGRES_CLAIM),
        spec: Some(PersistentVolumeClaimSpec {
            // No storageClassName: the cluster's default (kind: "standard", local-path).
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity("1Gi".into()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut postgres = deployment(opts, "postgres", 1, pod, BTreeMap::new());
    // The old pod must be gone before the new one starts: both would mount the one
    // ReadWriteOnce volume, and two servers must never share a data directory.
    if let Some(spec) = postgres.spec.as_mut() {
        spec.strategy = Some(DeploymentStrategy {
            type_: Some("Recreate".into()),
            rolling_update: None,
        });
    }
    vec![
        Object::PersistentVolumeClaim(claim),
        Object::Deployment(postgres),
        Object::Service(service(
            opts,
            "postgres",
            vec![port("postgres", 5432, Some(POSTGRES_NODE_PORT))],
        )),
    ]
}
