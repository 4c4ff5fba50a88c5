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
use std::time::{Duration, Instant};

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

/// A DELETE of a namespace that is already being deleted: the API server answers 409 Conflict
/// ("The system is ensuring all content is removed from this namespace…") while its finalizers
/// run; the namespace is going already.
fn is_already_terminating(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
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
    /// How long deleted namespaces get to be gone (their content deleted, their NodePorts freed).
    pub gone_within: Duration,
    /// How often a terminating namespace is looked at.
    pub poll: Duration,
}

impl Cluster {
    pub fn new(client: kube::Client) -> Cluster {
        Cluster {
            client,
            gone_within: Duration::from_secs(90),
            poll: Duration::from_millis(500),
        }
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
                Object::PersistentVolumeClaim(x) => self.apply_one(x).await?,
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

    /// Deletes the run's namespace and with it everything the run applied (gone already, or
    /// already terminating: fine).
    pub async fn delete_namespace(&self, namespace: &str) -> Result<()> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        match api.delete(namespace, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) || is_already_terminating(&e) => Ok(()),
            Err(e) => Err(api_error(e, "delete", &format!("namespace {namespace}"))),
        }
    }

    /// Waits, bounded by [`Cluster::gone_within`], until every namespace of `names` is gone (a
    /// terminating namespace keeps its Services, and their NodePorts stay allocated, until its
    /// content is deleted). The error names those still there.
    pub async fn wait_gone(&self, names: &[String]) -> Result<()> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let t0 = Instant::now();
        let mut left: Vec<String> = names.to_vec();
        loop {
            let mut still = Vec::new();
            for name in left {
                match api.get_opt(&name).await {
                    Ok(None) => {}
                    Ok(Some(_)) | Err(_) => still.push(name),
                }
            }
            if still.is_empty() {
                return Ok(());
            }
            if t0.elapsed() >= self.gone_within {
                return Err(BrownoutError::Environment(format!(
                    "namespace {} still terminating after {:.0} s: its NodePorts stay allocated until it is gone (kubectl get namespace {} -o yaml shows what it waits for)",
                    still.join(", "),
                    self.gone_within.as_secs_f64(),
                    still[0]
                )));
            }
            left = still;
            tokio::time::sleep(self.poll).await;
        }
    }

    /// Deletes `namespace` and waits, bounded, until it is gone.
    pub async fn delete_namespace_and_wait(&self, namespace: &str) -> Result<()> {
        self.delete_namespace(namespace).await?;
        self.wait_gone(&[namespace.to_string()]).await
    }

    /// Deletes the namespaces of finished runs and waits, bounded, until they are gone, so a new
    /// run's NodePorts are free; returns their names. A run is finished when its harness is gone
    /// (this host's, by process id; another host's are assumed alive and left alone) or when it
    /// is an earlier run of this very process (`prove` and `suite` run one after another; a
    /// teardown that gave up leaves its namespace behind); a namespace already terminating is
    /// waited for whoever owned it.
    pub async fn sweep(&self) -> Result<Vec<String>> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let list = api
            .list(&ListParams::default().labels(RUN_LABEL))
            .await
            .map_err(|e| api_error(e, "list", "namespaces of brownout runs"))?;
        let me = Owner::this_process("");
        let mut deleted = Vec::new();
        let mut wait = Vec::new();
        for ns in list.items {
            let name = ns.metadata.name.clone().unwrap_or_default();
            let labels = ns.metadata.labels.clone().unwrap_or_default();
            let finished = match Owner::from_labels(&labels) {
                Some(o) => !o.alive() || (o.host == me.host && o.pid == me.pid),
                None => true,
            };
            if finished {
                self.delete_namespace(&name).await?;
                deleted.push(name.clone());
                wait.push(name);
            } else if ns.metadata.deletion_timestamp.is_some() {
                wait.push(name);
            }
        }
        self.wait_gone(&wait).await?;
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
                "PersistentVolumeClaim" => "/api/v1/namespaces/brownout-r1/persistentvolumeclaims/",
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
                                     // Another harness on this host that still runs: this test's parent process.
        let live_pid = std::os::unix::process::parent_id();
        let items = vec![
            ns("brownout-dead", &here.host, dead_pid),
            ns("brownout-live", &here.host, live_pid),
            ns("brownout-gone", &here.host, dead_pid),
            ns("brownout-elsewhere", "another-host", dead_pid),
        ];
        let answer: Answer = Box::new(move |s: &Seen| match s.method {
            // Each deleted namespace, looked at while waiting: gone.
            Method::GET if s.path_and_query.starts_with("/api/v1/namespaces/") => {
                mock::status(404, "NotFound", "namespaces not found")
            }
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
            seen.iter().filter(|s| s.method == Method::DELETE).count(),
            2,
            "the live run and another host's are left alone"
        );
        assert_eq!(seen.len(), 5, "a list, two deletes, two looks: {seen:?}");
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

    /// A namespace's life as the API server gives it: the first DELETE marks it Terminating (200,
    /// `deletionTimestamp` set) and the namespace controller then deletes its content; a DELETE
    /// while its finalizers are still there answers 409 Conflict "Operation cannot be fulfilled on
    /// namespaces \"…\": The system is ensuring all content is removed from this namespace. Upon
    /// completion, this namespace will automatically be purged by the system." (kubernetes/kubernetes
    /// pkg/registry/core/namespace/storage/storage.go, `REST.Delete`: "prior to final deletion, we
    /// must ensure that finalizers is empty" → `apierrors.NewConflict`); GETs return it Terminating
    /// until it is gone (404). `gets_terminating` GETs see it Terminating after the first DELETE
    /// (`usize::MAX`: it never goes).
    fn namespace_lifecycle(
        name: &'static str,
        gets_terminating: usize,
        listed: Vec<serde_json::Value>,
    ) -> Answer {
        let mut deletes = 0usize;
        let mut looks = 0usize;
        let terminating = move || {
            serde_json::json!({"kind": "Namespace", "apiVersion": "v1",
                "metadata": {"name": name, "deletionTimestamp": "2026-12-07T10:00:00Z"},
                "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Terminating"}})
        };
        Box::new(move |s: &Seen| {
            let p = s.path_and_query.as_str();
            let gone = deletes > 0 && looks >= gets_terminating;
            match s.method {
                Method::GET if p.starts_with("/api/v1/namespaces?") => {
                    mock::list("NamespaceList", "v1", listed.clone())
                }
                Method::DELETE if gone => {
                    mock::status(404, "NotFound", &format!("namespaces \"{name}\" not found"))
                }
                Method::DELETE => {
                    deletes += 1;
                    if deletes == 1 {
                        Reply::Json(StatusCode::OK, terminating())
                    } else {
                        mock::status(409, "Conflict", &format!("Operation cannot be fulfilled on namespaces \"{name}\": The system is ensuring all content is removed from this namespace.  Upon completion, this namespace will automatically be purged by the system."))
                    }
                }
                Method::GET if gone => {
                    mock::status(404, "NotFound", &format!("namespaces \"{name}\" not found"))
                }
                Method::GET if deletes > 0 => {
                    looks += 1;
                    Reply::Json(StatusCode::OK, terminating())
                }
                _ => mock::status(404, "NotFound", p),
            }
        })
    }

    fn fast(client: kube::Client) -> Cluster {
        let mut c = Cluster::new(client);
        c.poll = Duration::from_millis(5);
        c.gone_within = Duration::from_millis(300);
        c
    }

    /// Deleting a namespace twice (a teardown that gave up, then the next run's sweep or
    /// `brownout clean`): the second DELETE's 409 means "already going", not an error, and the
    /// harness then waits until the namespace is gone (its NodePorts are freed only then).
    #[tokio::test]
    async fn a_second_delete_of_a_terminating_namespace_is_fine_and_waits_until_it_is_gone() {
        let (client, log) = server(namespace_lifecycle("brownout-r1", 3, vec![]));
        let cluster = fast(client);
        cluster.delete_namespace("brownout-r1").await.unwrap();
        cluster
            .delete_namespace_and_wait("brownout-r1")
            .await
            .expect("409 on a terminating namespace: already going");
        let seen = log.all();
        let methods: Vec<&Method> = seen.iter().map(|s| &s.method).collect();
        assert_eq!(
            methods,
            [
                &Method::DELETE,
                &Method::DELETE,
                &Method::GET,
                &Method::GET,
                &Method::GET,
                &Method::GET
            ],
            "three looks while Terminating, the fourth finds it gone"
        );
    }

    /// The next run's sweep finds a finished run's namespace already Terminating (its teardown
    /// gave up waiting): the DELETE answers 409, and the sweep returns only once it is gone, so
    /// the new run's NodePorts (fixed: kind's port mappings) are not "already allocated"
    /// (a Service's NodePort is released when the Service is deleted, which for a terminating
    /// namespace happens while its content is removed:
    /// https://kubernetes.io/docs/concepts/services-networking/service/#type-nodeport). A
    /// namespace that never goes is an error naming it.
    #[tokio::test]
    async fn the_sweep_waits_for_a_terminating_namespace_of_a_finished_run() {
        let here = Owner::this_process("r0");
        // An earlier run of this very process (prove runs one after another): finished.
        let earlier = serde_json::json!({"metadata": {"name": "brownout-r0",
            "deletionTimestamp": "2026-12-07T10:00:00Z",
            "labels": {RUN_LABEL: "r0", HOST_LABEL: here.host, PID_LABEL: here.pid.to_string()}},
            "status": {"phase": "Terminating"}});
        for (gets, gone) in [(4, true), (usize::MAX, false)] {
            let mut answer = namespace_lifecycle("brownout-r0", gets, vec![earlier.clone()]);
            let mut first = true;
            // Listed Terminating already: its first DELETE (the teardown's) was before.
            let wrapped: Answer = Box::new(move |s: &Seen| {
                if s.method == Method::DELETE && first {
                    first = false;
                    let _ = answer(s);
                }
                answer(s)
            });
            let (client, log) = server(wrapped);
            let result = fast(client).sweep().await;
            if gone {
                assert_eq!(result.unwrap(), ["brownout-r0"]);
                let looks = log
                    .all()
                    .iter()
                    .filter(|s| {
                        s.method == Method::GET
                            && s.path_and_query
                                .starts_with("/api/v1/namespaces/brownout-r0")
                    })
                    .count();
                assert_eq!(looks, 5, "waited while it was Terminating");
            } else {
                let e = result.unwrap_err().to_string();
                assert!(
                    e.contains("namespace brownout-r0 still terminating after 0 s"),
                    "{e}"
                );
            }
        }
    }
}
