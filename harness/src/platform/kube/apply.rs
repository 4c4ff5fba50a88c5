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

/// One cluster, through one client.
pub struct Cluster {
    client: kube::Client,
}

impl Cluster {
    pub fn new(client: kube::Client) -> Cluster {
        Cluster { client }
    }

    /// Creates (or takes over) the run's namespace, labelled with the run id.
    pub async fn create_namespace(&self, namespace: &str, run_id: &str) -> Result<()> {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(namespace.into()),
                labels: Some(BTreeMap::from([(RUN_LABEL.into(), run_id.into())])),
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

    /// Deletes the namespaces of runs that are no longer alive (`alive` says, by run id); returns
    /// their names.
    pub async fn sweep(&self, alive: impl Fn(&str) -> bool) -> Result<Vec<String>> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let list = api
            .list(&ListParams::default().labels(RUN_LABEL))
            .await
            .map_err(|e| api_error(e, "list", "namespaces of brownout runs"))?;
        let mut deleted = Vec::new();
        for ns in list.items {
            let name = ns.metadata.name.clone().unwrap_or_default();
            let run = ns
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(RUN_LABEL))
                .cloned()
                .unwrap_or_default();
            if !alive(&run) {
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
    use crate::platform::kube::render::{render, RenderOptions};
    use http::{Method, Request, Response, StatusCode};
    use kube::client::Body;
    use tower_test::mock;

    /// One request the mock API server saw.
    #[derive(Debug)]
    struct Seen {
        method: Method,
        path_and_query: String,
        content_type: String,
        body: serde_json::Value,
    }

    type Answer = Box<dyn Fn(&Seen) -> (StatusCode, serde_json::Value) + Send>;

    /// A mock API server answering `n` requests with `answer`, then returning what it saw.
    fn server(n: usize, answer: Answer) -> (kube::Client, tokio::task::JoinHandle<Vec<Seen>>) {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let task = tokio::spawn(async move {
            let mut handle = std::pin::pin!(handle);
            let mut seen = Vec::new();
            for _ in 0..n {
                let Some((req, send)) = handle.next_request().await else {
                    break;
                };
                let (parts, body) = req.into_parts();
                let bytes = body.collect_bytes().await.unwrap();
                let s = Seen {
                    method: parts.method,
                    path_and_query: parts.uri.path_and_query().unwrap().to_string(),
                    content_type: parts
                        .headers
                        .get("content-type")
                        .map(|v| v.to_str().unwrap().to_string())
                        .unwrap_or_default(),
                    body: serde_json::from_slice(&bytes).unwrap_or_default(),
                };
                let (status, json) = answer(&s);
                let resp = Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&json).unwrap()))
                    .unwrap();
                send.send_response(resp);
                seen.push(s);
            }
            seen
        });
        (kube::Client::new(service, "default"), task)
    }

    /// What an API server answers to an apply: the object, with server-set metadata.
    fn applied(s: &Seen) -> (StatusCode, serde_json::Value) {
        let mut o = s.body.clone();
        o["metadata"]["uid"] = "3f6c2b0e-0000-4000-8000-000000000001".into();
        o["metadata"]["resourceVersion"] = "4711".into();
        o["metadata"]["creationTimestamp"] = "2026-11-23T20:00:00Z".into();
        (StatusCode::OK, o)
    }

    fn forbidden(message: &str) -> serde_json::Value {
        serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": "Forbidden", "code": 403,
            "details": {"kind": "deployments", "group": "apps"}
        })
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
        let (client, seen) = server(objects.len() + 1, Box::new(applied));
        let cluster = Cluster::new(client);
        cluster.create_namespace("brownout-r1", "r1").await.unwrap();
        cluster.apply(&objects).await.unwrap();
        let seen = seen.await.unwrap();
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
                (StatusCode::FORBIDDEN, forbidden(msg))
            } else {
                applied(s)
            }
        });
        let (client, seen) = server(objects.len(), answer);
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
        let seen = seen.await.unwrap();
        assert_eq!(
            seen.len(),
            first_deployment + 1,
            "nothing after the refusal"
        );
    }

    #[tokio::test]
    async fn dead_runs_namespaces_are_deleted_by_label_and_a_gone_one_is_fine() {
        let answer: Answer = Box::new(|s: &Seen| match s.method {
            Method::GET => (
                StatusCode::OK,
                serde_json::json!({
                    "kind": "NamespaceList", "apiVersion": "v1", "metadata": {"resourceVersion": "9"},
                    "items": [
                        {"metadata": {"name": "brownout-dead", "labels": {RUN_LABEL: "dead"}}},
                        {"metadata": {"name": "brownout-live", "labels": {RUN_LABEL: "live"}}},
                        {"metadata": {"name": "brownout-gone", "labels": {RUN_LABEL: "gone"}}}
                    ]
                }),
            ),
            Method::DELETE if s.path_and_query.contains("brownout-gone") => (
                StatusCode::NOT_FOUND,
                serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "message": "namespaces \"brownout-gone\" not found", "reason": "NotFound", "code": 404}),
            ),
            _ => (
                StatusCode::OK,
                serde_json::json!({"kind": "Namespace", "apiVersion": "v1",
                    "metadata": {"name": "brownout-dead"}, "status": {"phase": "Terminating"}}),
            ),
        });
        let (client, seen) = server(3, answer);
        let deleted = Cluster::new(client)
            .sweep(|run| run == "live")
            .await
            .unwrap();
        assert_eq!(deleted, ["brownout-dead", "brownout-gone"]);
        let seen = seen.await.unwrap();
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
}
