//! Putting a run's objects on a cluster and taking them away, with kube-rs: a namespace per run
//! (labelled with the run id), every object by server-side apply (field manager `brownout`,
//! forced: the run owns its namespace), the namespace deleted at teardown, and namespaces of runs
//! that are gone deleted by label. A 403 is a hard error that names what was refused and where;
//! nothing is skipped. Tested against a mock API server (`tower_test`, as kube's own tests do).

use super::render::{Object, RUN_LABEL};
use crate::error::{BrownoutError, Result};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use std::collections::BTreeMap;

/// The field manager of every apply.
pub const FIELD_MANAGER: &str = "brownout";

/// The API error in words: a 403 names the refused operation and the permission file.
fn api_error(e: kube::Error, verb: &str, what: &str) -> BrownoutError {
    match e {
        kube::Error::Api(s) if s.code == 403 => BrownoutError::Environment(format!(
            "the Kubernetes API refused to {verb} {what} (403 Forbidden: {}); the identity brownout runs as needs that permission (kind-config/rbac.yaml lists them all)",
            s.message
        )),
        other => BrownoutError::Environment(format!("cannot {verb} {what}: {other}")),
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Labels a run's namespace carries besides [`RUN_LABEL`]: which harness process owns it.
pub const HOST_LABEL: &str = "brownout.dev/host";
pub const PID_LABEL: &str = "brownout.dev/pid";

/// The harness process a run's namespace belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub run_id: String,
    /// This machine's name, as a label value (at most 63 of `[A-Za-z0-9._-]`).
    pub host: String,
    pub pid: u32,
}

impl Owner {
    pub fn this_process(run_id: &str) -> Owner {
        let host = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        let host: String = host
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .take(63)
            .collect();
        Owner {
            run_id: run_id.into(),
            host: host
                .trim_matches(|c: char| !c.is_ascii_alphanumeric())
                .to_string(),
            pid: std::process::id(),
        }
    }

    fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (RUN_LABEL.into(), self.run_id.clone()),
            (HOST_LABEL.into(), self.host.clone()),
            (PID_LABEL.into(), self.pid.to_string()),
        ])
    }

    fn from_labels(labels: &BTreeMap<String, String>) -> Option<Owner> {
        Some(Owner {
            run_id: labels.get(RUN_LABEL)?.clone(),
            host: labels.get(HOST_LABEL)?.clone(),
            pid: labels.get(PID_LABEL)?.parse().ok()?,
        })
    }

    /// Whether the owning process may still run: another host's runs are assumed alive (this
    /// harness cannot tell), this host's are alive while their process exists.
    pub fn alive(&self) -> bool {
        if self.host != Owner::this_process("").host {
            return true;
        }
        let pid = nix::unistd::Pid::from_raw(self.pid as i32);
        // Signal 0 checks existence; EPERM means it exists under another user.
        !matches!(
            nix::sys::signal::kill(pid, None),
            Err(nix::errno::Errno::ESRCH)
        ) && self.pid as i32 > 0
    }
}

/// One cluster, through one client.
pub struct Cluster {
    client: kube::Client,
}

impl Cluster {
    pub fn new(client: kube::Client) -> Cluster {
        Cluster { client }
    }

    /// Creates (or takes over) the run's namespace, labelled with the run id and its owner.
    pub async fn create_namespace(&self, namespace: &str, owner: &Owner) -> Result<()> {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(namespace.into()),
                labels: Some(owner.labels()),
                ..Default::default()
            },
            ..Default::default()
        };
        let api: Api<Namespace> = Api::all(self.client.clone());
        let params = PatchParams::apply(FIELD_MANAGER).force();
        api.patch(namespace, &params, &Patch::Apply(&ns))
            .await
            .map(drop)
            .map_err(|e| api_error(e, "create", &format!("namespace {namespace}")))
    }

    /// Applies `objects` in order (they name their namespace); stops at the first refusal.
    pub async fn apply(&self, objects: &[Object]) -> Result<()> {
        for o in objects {
            match o {
                Object::ServiceAccount(x) => self.apply_one(x).await?,
                Object::Role(x) => self.apply_one(x).await?,
                Object::RoleBinding(x) => self.apply_one(x).await?,
                Object::Secret(x) => self.apply_one(x).await?,
                Object::ConfigMap(x) => self.apply_one(x).await?,
                Object::Deployment(x) => self.apply_one(x).await?,
                Object::Service(x) => self.apply_one(x).await?,
            }
        }
        Ok(())
    }

    async fn apply_one<K>(&self, object: &K) -> Result<()>
    where
        K: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::Serialize
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let meta = object.meta();
        let (name, namespace) = (
            meta.name.clone().unwrap_or_default(),
            meta.namespace.clone().unwrap_or_default(),
        );
        let api: Api<K> = Api::namespaced(self.client.clone(), &namespace);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let what = format!("{} {name} in namespace {namespace}", K::kind(&()));
        api.patch(&name, &params, &Patch::Apply(object))
            .await
            .map(drop)
            .map_err(|e| api_error(e, "apply", &what))
    }

    /// Deletes the run's namespace and with it everything the run applied (gone already: fine).
    pub async fn delete_namespace(&self, namespace: &str) -> Result<()> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        match api.delete(namespace, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(api_error(e, "delete", &format!("namespace {namespace}"))),
        }
    }

    /// Deletes the namespaces of runs whose harness is gone (this host's, by process id; another
    /// host's are left alone); returns their names.
    pub async fn sweep(&self) -> Result<Vec<String>> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let list = api
            .list(&ListParams::default().labels(RUN_LABEL))
            .await
            .map_err(|e| api_error(e, "list", "namespaces of brownout runs"))?;
        let mut deleted = Vec::new();
        for ns in list.items {
            let name = ns.metadata.name.clone().unwrap_or_default();
            let labels = ns.metadata.labels.clone().unwrap_or_default();
            if !Owner::from_labels(&labels).is_some_and(|o| o.alive()) {
                self.delete_namespace(&name).await?;
                deleted.push(name);
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::kube::mock::{self, applied, server, Answer, Reply, Seen};
    use crate::platform::kube::render::{render, RenderOptions};
    use http::{Method, StatusCode};

    fn forbidden(message: &str) -> Reply {
        mock::status(403, "Forbidden", message)
    }

    fn sample() -> Vec<Object> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let system =
            crate::spec::load_system(&root.join("scenarios/systems/checkout.toml")).unwrap();
        render(&system, &RenderOptions::new("brownout-r1", "r1")).unwrap()
    }

    #[tokio::test]
    async fn the_namespace_and_every_object_are_applied_server_side_in_order() {
        let objects = sample();
        let (client, log) = server(Box::new(applied));
        let cluster = Cluster::new(client);
        cluster
            .create_namespace("brownout-r1", &Owner::this_process("r1"))
            .await
            .unwrap();
        cluster.apply(&objects).await.unwrap();
        let seen = log.all();
        assert_eq!(seen.len(), objects.len() + 1);
        assert_eq!(
            seen[0].path_and_query,
            "/api/v1/namespaces/brownout-r1?&force=true&fieldManager=brownout"
        );
        assert_eq!(seen[0].body["metadata"]["labels"][RUN_LABEL], "r1");
        for (s, o) in seen[1..].iter().zip(&objects) {
            assert_eq!(s.method, Method::PATCH);
            assert_eq!(s.content_type, "application/apply-patch+yaml");
            let plural = match o.kind() {
                "ServiceAccount" => "/api/v1/namespaces/brownout-r1/serviceaccounts/",
                "Secret" => "/api/v1/namespaces/brownout-r1/secrets/",
                "ConfigMap" => "/api/v1/namespaces/brownout-r1/configmaps/",
                "Service" => "/api/v1/namespaces/brownout-r1/services/",
                "Deployment" => "/apis/apps/v1/namespaces/brownout-r1/deployments/",
                "Role" => "/apis/rbac.authorization.k8s.io/v1/namespaces/brownout-r1/roles/",
                "RoleBinding" => {
                    "/apis/rbac.authorization.k8s.io/v1/namespaces/brownout-r1/rolebindings/"
                }
                other => panic!("{other}"),
            };
            assert!(
                s.path_and_query
                    .starts_with(&format!("{plural}{}?", o.name())),
                "{} {}: {}",
                o.kind(),
                o.name(),
                s.path_and_query
            );
            assert!(
                s.path_and_query.contains("fieldManager=brownout"),
                "{}",
                s.path_and_query
            );
            assert_eq!(s.body["kind"], o.kind());
        }
    }

    #[tokio::test]
    async fn a_403_stops_the_apply_and_names_what_was_refused() {
        let objects = sample();
        let answer: Answer = Box::new(|s: &Seen| {
            if s.path_and_query.contains("/deployments/") {
                let msg = "deployments.apps \"prometheus\" is forbidden: User \"ci\" cannot patch resource \"deployments\" in API group \"apps\" in the namespace \"brownout-r1\"";
                forbidden(msg)
            } else {
                applied(s)
            }
        });
        let (client, log) = server(answer);
        let err = Cluster::new(client).apply(&objects).await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, BrownoutError::Environment(_)));
        assert!(
            text.contains("refused to apply Deployment prometheus in namespace brownout-r1")
                && text.contains("cannot patch resource \"deployments\"")
                && text.contains("kind-config/rbac.yaml"),
            "{text}"
        );
        drop(text);
        let first_deployment = objects
            .iter()
            .position(|o| o.kind() == "Deployment")
            .unwrap();
        let seen = log.all();
        assert_eq!(
            seen.len(),
            first_deployment + 1,
            "nothing after the refusal"
        );
    }

    #[tokio::test]
    async fn dead_runs_namespaces_are_deleted_by_label_and_a_gone_one_is_fine() {
        let ns = |name: &str, host: &str, pid: u32| {
            serde_json::json!({"metadata": {"name": name, "labels": {
                RUN_LABEL: name, HOST_LABEL: host, PID_LABEL: pid.to_string()}}})
        };
        let here = Owner::this_process("r0");
        let dead_pid = u32::MAX / 2; // no such process
        let items = vec![
            ns("brownout-dead", &here.host, dead_pid),
            ns("brownout-live", &here.host, here.pid),
            ns("brownout-gone", &here.host, dead_pid),
            ns("brownout-elsewhere", "another-host", dead_pid),
        ];
        let answer: Answer = Box::new(move |s: &Seen| match s.method {
            Method::GET => mock::list("NamespaceList", "v1", items.clone()),
            Method::DELETE if s.path_and_query.contains("brownout-gone") => {
                mock::status(404, "NotFound", "namespaces \"brownout-gone\" not found")
            }
            _ => Reply::Json(
                StatusCode::OK,
                serde_json::json!({"kind": "Namespace", "apiVersion": "v1",
                    "metadata": {"name": "brownout-dead"}, "status": {"phase": "Terminating"}}),
            ),
        });
        let (client, log) = server(answer);
        let deleted = Cluster::new(client).sweep().await.unwrap();
        assert_eq!(deleted, ["brownout-dead", "brownout-gone"]);
        let seen = log.all();
        assert_eq!(
            seen.len(),
            3,
            "the live run and another host's are left alone"
        );
        assert_eq!(seen[0].method, Method::GET);
        assert!(
            seen[0]
                .path_and_query
                .contains("labelSelector=brownout.dev%2Frun"),
            "{}",
            seen[0].path_and_query
        );
        assert_eq!(seen[1].method, Method::DELETE);
        assert!(seen[1]
            .path_and_query
            .starts_with("/api/v1/namespaces/brownout-dead?"));
        assert!(seen[2]
            .path_and_query
            .starts_with("/api/v1/namespaces/brownout-gone?"));
    }

    #[tokio::test]
    async fn the_namespace_carries_its_owner_so_a_later_run_can_tell_it_is_dead() {
        let (client, log) = server(Box::new(applied));
        let owner = Owner::this_process("r1");
        Cluster::new(client)
            .create_namespace("brownout-r1", &owner)
            .await
            .unwrap();
        let labels = &log.all()[0].body["metadata"]["labels"];
        assert_eq!(labels[RUN_LABEL], "r1");
        assert_eq!(labels[PID_LABEL], std::process::id().to_string());
        assert_eq!(labels[HOST_LABEL], owner.host);
        assert!(owner.alive());
        let dead = Owner {
            pid: u32::MAX / 2,
            ..owner.clone()
        };
        assert!(!dead.alive());
    }
}
