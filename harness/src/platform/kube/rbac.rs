//! `kind-config/rbac.yaml` checked against what the platform does (tests only): every permission
//! the rendered Prometheus Role grants is held by the runner's ClusterRole (else RBAC's escalation
//! prevention refuses to create that Role and its binding), and every request the platform makes
//! against a (mock) API server is one the ClusterRole allows, as the API server's RBAC
//! authorizer would decide it.

use super::render::{render, Object, RenderOptions};
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use std::collections::BTreeSet;

/// What RBAC authorizes a request as: a verb on a resource (with its subresource, `pods/exec`)
/// of an API group (`""`: the core group).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Access {
    pub verb: String,
    pub group: String,
    pub resource: String,
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        write!(f, "{} {} ({group})", self.verb, self.resource)
    }
}

fn access(verb: &str, group: &str, resource: &str) -> Access {
    Access {
        verb: verb.into(),
        group: group.into(),
        resource: resource.into(),
    }
}

/// The rules of the runner's role in `kind-config/rbac.yaml` (a ClusterRole, or a Role of an
/// older file, named `brownout-runner`) and whether it is a ClusterRole.
fn runner_rules() -> (Vec<PolicyRule>, bool) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../kind-config/rbac.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    for doc in text.split("\n---\n") {
        let value: serde_json::Value = serde_saphyr::from_str(doc).unwrap();
        if value["metadata"]["name"] != "brownout-runner" {
            continue;
        }
        match value["kind"].as_str() {
            Some("ClusterRole") => {
                let role: ClusterRole = serde_json::from_value(value).unwrap();
                return (role.rules.unwrap_or_default(), true);
            }
            Some("Role") => {
                let rules: Vec<PolicyRule> =
                    serde_json::from_value(value["rules"].clone()).unwrap();
                return (rules, false);
            }
            _ => {}
        }
    }
    panic!("no role brownout-runner in {}", path.display());
}

fn has(list: &[String], item: &str) -> bool {
    list.iter().any(|x| x == "*" || x == item)
}

/// Whether `rules` allow `a` (RBAC is a union of allow rules; `*` matches anything).
pub fn allows(rules: &[PolicyRule], a: &Access) -> bool {
    rules.iter().any(|r| {
        has(r.api_groups.as_deref().unwrap_or_default(), &a.group)
            && has(r.resources.as_deref().unwrap_or_default(), &a.resource)
            && has(&r.verbs, &a.verb)
    })
}

/// What the API server authorizes a request as: its resource attributes from the path
/// (`/api/v1/…` is the core group, `/apis/<group>/<version>/…` another; `namespaces/<ns>/`
/// scopes it), and the verb from the HTTP method — GET on one object `get`, on a collection
/// `list`, with `watch=true` `watch`; POST `create`; PUT `update`; PATCH `patch`; DELETE
/// `delete` (https://kubernetes.io/docs/reference/access-authn-authz/authorization/#determine-the-request-verb).
/// Two requests need a second verb: a server-side apply (`application/apply-patch+yaml`) of an
/// object that does not exist yet creates it and is authorized as `create` as well
/// (kubernetes/kubernetes staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go: the
/// patcher's create validation runs with create authorizer attributes); exec, attach and
/// port-forward over a WebSocket (a GET) need `create` as well since Kubernetes 1.35
/// (AuthorizePodWebsocketUpgradeCreatePermission, KEP-4006, pkg/features/kube_features.go).
/// Paths outside `/api/v1/` and `/apis/` (`/version`, discovery) are non-resource requests that
/// the default `system:discovery`/`system:public-info-viewer` roles grant every user
/// (https://kubernetes.io/docs/reference/access-authn-authz/rbac/#discovery-roles): none.
pub fn accesses(method: &http::Method, path_and_query: &str, content_type: &str) -> Vec<Access> {
    use http::Method;
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let seg: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, rest) = match seg.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return Vec::new(),
    };
    if rest.is_empty() {
        return Vec::new(); // discovery of a group version
    }
    let rest = match rest {
        ["namespaces", _ns, inner @ ..] if !inner.is_empty() => inner,
        other => other,
    };
    let resource = match rest {
        [resource] | [resource, _] => resource.to_string(),
        [resource, _, sub, ..] => format!("{resource}/{sub}"),
        [] => return Vec::new(),
    };
    let named = rest.len() >= 2;
    let watch = query.split('&').any(|kv| kv == "watch=true");
    let verb = match *method {
        Method::GET | Method::HEAD if watch => "watch",
        Method::GET | Method::HEAD if named => "get",
        Method::GET | Method::HEAD => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => "unknown",
    };
    let mut out = vec![access(verb, group, &resource)];
    let connect = ["pods/exec", "pods/attach", "pods/portforward"].contains(&resource.as_str());
    if (*method == Method::PATCH && content_type.starts_with("application/apply-patch"))
        || (connect && verb == "get")
    {
        out.push(access("create", group, &resource));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::Evidence;
    use crate::platform::kube::cluster::tests::{fast_platform, healthy_cluster, opts};
    use crate::platform::kube::mock;
    use crate::platform::{DatabaseControl, Platform};
    use http::Method;

    fn root() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// Every permission a rendered Role grants (Prometheus' pod discovery), expanded to single
    /// accesses.
    fn granted_by_rendered_roles() -> Vec<Access> {
        let mut out = Vec::new();
        for sys in ["checkout.toml", "plain-pre-stop.toml"] {
            let path = root().join("scenarios/systems").join(sys);
            let Ok(system) = crate::spec::load_system(&path) else {
                continue;
            };
            for o in render(&system, &RenderOptions::new("brownout-r1", "r1")).unwrap() {
                let Object::Role(role) = o else { continue };
                for r in role.rules.unwrap_or_default() {
                    for g in r.api_groups.clone().unwrap_or_default() {
                        for res in r.resources.clone().unwrap_or_default() {
                            for v in &r.verbs {
                                out.push(access(v, &g, &res));
                            }
                        }
                    }
                }
            }
        }
        assert!(!out.is_empty(), "a Role is rendered (Prometheus')");
        out
    }

    /// RBAC escalation prevention: creating a Role (or a RoleBinding to it) is allowed only to
    /// an identity that holds every permission the Role grants, at the Role's scope, unless it
    /// has `escalate` (`bind` for the binding)
    /// (https://kubernetes.io/docs/reference/access-authn-authz/rbac/#privilege-escalation-prevention-and-bootstrapping;
    /// kubernetes/kubernetes pkg/registry/rbac/role/policybased/storage.go and
    /// pkg/registry/rbac/rolebinding/policybased/storage.go check `ConfirmNoEscalation` /
    /// `BindingAuthorized`). The runner has neither `escalate` nor `bind`, so it must hold all of
    /// Prometheus' permissions in the run's namespace: through a ClusterRole bound cluster-wide,
    /// since the namespace is made by the run.
    #[test]
    fn the_runner_holds_every_permission_the_rendered_prometheus_role_grants() {
        let (rules, cluster_wide) = runner_rules();
        let missing: BTreeSet<String> = granted_by_rendered_roles()
            .iter()
            .filter(|a| !allows(&rules, a))
            .map(|a| a.to_string())
            .collect();
        assert!(
            missing.is_empty(),
            "kind-config/rbac.yaml lacks what Prometheus' Role grants: {missing:?}"
        );
        assert!(
            cluster_wide,
            "a Role cannot grant in a namespace the run creates: a ClusterRole"
        );
        for v in ["escalate", "bind"] {
            assert!(
                !allows(&rules, &access(v, "rbac.authorization.k8s.io", "roles")),
                "{v} is not needed and would let it grant anything"
            );
        }
    }

    /// Requests the platform makes that a deploy on the mock does not exercise, as other parts
    /// of the platform send them: exec (disk-full's `fill-volume`, the ingress's upstream file),
    /// the API server's service and pod proxy (the payments ledger, the ingress's counters), a
    /// rollout's ReplicaSets, pod logs, the PostgreSQL claim's deletion with the namespace.
    fn other_requests() -> Vec<(Method, &'static str, &'static str)> {
        let ns = "/api/v1/namespaces/brownout-r1";
        vec![
            (Method::GET, "/api/v1/namespaces/brownout-r1/pods/checkout-1/exec?command=fill-volume&stdout=true", ""),
            (Method::POST, "/api/v1/namespaces/brownout-r1/pods/ingress-1/exec?command=sh", ""),
            (Method::GET, "/api/v1/namespaces/brownout-r1/services/payments:8080/proxy/ledger?since=0", ""),
            (Method::POST, "/api/v1/namespaces/brownout-r1/services/payments:8080/proxy/charges", ""),
            (Method::GET, "/api/v1/namespaces/brownout-r1/pods/ingress-1:3903/proxy/json", ""),
            (Method::GET, "/api/v1/namespaces/brownout-r1/pods/checkout-1/log?container=checkout", ""),
            (Method::GET, "/apis/apps/v1/namespaces/brownout-r1/replicasets?labelSelector=app", ""),
            (Method::GET, "/apis/apps/v1/namespaces/brownout-r1/replicasets?watch=true", ""),
            (Method::PATCH, "/api/v1/namespaces/brownout-r1/persistentvolumeclaims/postgres-data?fieldManager=brownout", "application/apply-patch+yaml"),
            (Method::GET, "/apis/discovery.k8s.io/v1/namespaces/brownout-r1/endpointslices?watch=true", ""),
            (Method::GET, "/api/v1/namespaces/brownout-r1/events?watch=true", ""),
            (Method::GET, "/api/v1/namespaces?labelSelector=brownout.dev%2Frun", ""),
            (Method::DELETE, ns, ""),
        ]
    }

    /// Every request of a deploy, a database outage and a teardown on the mock API server (as
    /// recorded), and of [`other_requests`], is allowed by `kind-config/rbac.yaml`, decided as
    /// the API server's RBAC authorizer decides it ([`accesses`]).
    #[tokio::test]
    async fn every_request_the_platform_makes_is_allowed_to_the_runner() {
        let system =
            crate::spec::load_system(&root().join("scenarios/systems/checkout.toml")).unwrap();
        let (client, log) = mock::server(healthy_cluster(&system, 1));
        let (mut p, _host) = fast_platform(client).await;
        let ev = Evidence::new();
        p.deploy(&system, &opts("20261207T110000Z-rb01"), &ev)
            .await
            .unwrap();
        // The outage's scale patch (the mock's postgres never reaches 0 pods: bounded).
        p.ready_within = std::time::Duration::from_millis(100);
        let _ = p.stop_database(&ev).await;
        p.teardown().await;
        let mut requests: Vec<(Method, String, String)> = log
            .all()
            .into_iter()
            .map(|s| (s.method, s.path_and_query, s.content_type))
            .collect();
        requests.extend(
            other_requests()
                .into_iter()
                .map(|(m, p, c)| (m, p.to_string(), c.to_string())),
        );
        let mut needed = BTreeSet::new();
        for (m, p, c) in &requests {
            for a in accesses(m, p, c) {
                needed.insert(a);
            }
        }
        // The recording covers the platform's main calls (so the check is not vacuous).
        for a in [
            access("create", "", "namespaces"),
            access("delete", "", "namespaces"),
            access("patch", "apps", "deployments"),
            access("create", "rbac.authorization.k8s.io", "roles"),
            access("list", "apps", "deployments"),
        ] {
            assert!(needed.contains(&a), "not recorded: {a}; {needed:?}");
        }
        let (rules, _) = runner_rules();
        let refused: Vec<String> = needed
            .iter()
            .filter(|a| !allows(&rules, a))
            .map(|a| a.to_string())
            .collect();
        assert!(
            refused.is_empty(),
            "kind-config/rbac.yaml refuses: {refused:?}"
        );
    }

    /// The request attributes, as the API server derives them.
    #[test]
    fn requests_map_to_the_verbs_and_resources_rbac_sees() {
        let one = |m: Method, p: &str, c: &str| accesses(&m, p, c);
        assert_eq!(
            one(
                Method::PATCH,
                "/api/v1/namespaces/brownout-r1?&force=true&fieldManager=brownout",
                "application/apply-patch+yaml"
            ),
            [
                access("patch", "", "namespaces"),
                access("create", "", "namespaces")
            ]
        );
        assert_eq!(
            one(Method::GET, "/apis/apps/v1/namespaces/x/deployments", ""),
            [access("list", "apps", "deployments")]
        );
        assert_eq!(
            one(
                Method::GET,
                "/api/v1/namespaces/x/pods?&watch=true&timeoutSeconds=290",
                ""
            ),
            [access("watch", "", "pods")]
        );
        assert_eq!(
            one(
                Method::GET,
                "/api/v1/namespaces/x/pods/a/exec?command=ls",
                ""
            ),
            [
                access("get", "", "pods/exec"),
                access("create", "", "pods/exec")
            ]
        );
        assert_eq!(
            one(
                Method::GET,
                "/api/v1/namespaces/x/services/payments:8080/proxy/ledger",
                ""
            ),
            [access("get", "", "services/proxy")]
        );
        assert_eq!(
            one(
                Method::PATCH,
                "/apis/apps/v1/namespaces/x/deployments/postgres",
                "application/merge-patch+json"
            ),
            [access("patch", "apps", "deployments")]
        );
        assert!(one(Method::GET, "/version", "").is_empty());
    }
}
