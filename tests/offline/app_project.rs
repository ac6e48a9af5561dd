//! The Argo CD AppProject builder (`desired::app_project`) from `tests/fixtures/argocd.yaml`:
//! destinations exactly the customer's namespaces, no cluster-scoped kind, the
//! blacklist, the repositories of customer and group, and the roles. No cluster needed.

use std::path::PathBuf;

use customer_operator::api::{AppProject, Customer};
use customer_operator::desired::{self, MapDirectory};
use customer_operator::render;
use customer_operator::settings::{IsolationBackend, Settings};
use kube::ResourceExt;

fn directory() -> MapDirectory {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/argocd.yaml");
    let inputs = render::read_inputs(&[file]).expect("fixture parses");
    MapDirectory::new(
        inputs.customers.into_iter().map(|(_, c)| c),
        inputs.groups.into_iter().map(|(_, g)| g),
    )
}

fn with_projects(backend: IsolationBackend) -> Settings {
    Settings {
        argocd_namespace: Some("gitops".into()),
        isolation_backend: backend,
        ..Settings::default()
    }
}

fn project(dir: &MapDirectory, customer: &str, settings: &Settings) -> Option<AppProject> {
    let c: &Customer = dir.customers.get(customer).expect("customer in fixture");
    desired::desired(c, dir, settings)
        .expect("valid customer")
        .app_project
}

fn nova() -> serde_json::Value {
    let p = project(
        &directory(),
        "nova",
        &with_projects(IsolationBackend::NetworkPolicy),
    )
    .expect("a project with --argocd-projects");
    assert_eq!(p.name_any(), "nova");
    assert_eq!(p.namespace().as_deref(), Some("gitops"));
    serde_json::to_value(&p).unwrap()
}

#[test]
fn without_the_flag_there_is_no_project() {
    assert!(project(&directory(), "nova", &Settings::default()).is_none());
}

#[test]
fn destinations_are_exactly_the_customers_namespaces() {
    let p = nova();
    assert_eq!(
        p["spec"]["destinations"],
        serde_json::json!([
            {"server": "https://kubernetes.default.svc", "namespace": "nova"},
            {"server": "https://kubernetes.default.svc", "namespace": "nova-dev"},
            {"server": "https://kubernetes.default.svc", "namespace": "nova-prod"},
        ])
    );
    assert_eq!(
        p["spec"]["sourceNamespaces"],
        serde_json::json!(["nova", "nova-dev", "nova-prod"])
    );
    // No cluster-scoped kind, written as an explicit empty list; no namespaced whitelist
    // (an empty one would forbid every kind).
    assert_eq!(p["spec"]["clusterResourceWhitelist"], serde_json::json!([]));
    assert!(
        p["spec"].get("namespaceResourceWhitelist").is_none(),
        "{p:#}"
    );
}

#[test]
fn a_namespace_another_customer_holds_is_no_destination() {
    let dir = directory();
    let settings = with_projects(IsolationBackend::NetworkPolicy);
    // Offline the name decides seniority: "nova" holds nova-prod, so the look-alike
    // customer nova-prod may deploy only into nova-prod-extra.
    let p = project(&dir, "nova-prod", &settings).unwrap();
    let namespaces: Vec<&str> = p
        .spec
        .destinations
        .iter()
        .filter_map(|d| d.namespace.as_deref())
        .collect();
    assert_eq!(namespaces, ["nova-prod-extra"]);
    assert!(
        p.spec.source_repos.is_empty(),
        "no repository: no Application"
    );
    assert!(p.spec.roles.is_empty(), "nobody to hold a role");
}

#[test]
fn the_groups_repositories_are_added_to_the_customers() {
    let p = nova();
    assert_eq!(
        p["spec"]["sourceRepos"],
        serde_json::json!([
            "https://git.example/nova/*",
            "https://git.example/shared/charts.git"
        ])
    );
}

#[test]
fn what_the_customers_roles_may_not_write_is_blacklisted() {
    let kinds = |backend| {
        let p = project(&directory(), "nova", &with_projects(backend)).unwrap();
        p.spec
            .namespace_resource_blacklist
            .iter()
            .map(|k| format!("{}/{}", k.group, k.kind))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        kinds(IsolationBackend::NetworkPolicy),
        [
            "/LimitRange",
            "/ResourceQuota",
            "customers.dev/*",
            "networking.k8s.io/NetworkPolicy",
            "rbac.authorization.k8s.io/Role",
            "rbac.authorization.k8s.io/RoleBinding",
        ]
    );
    // Under the ClusterNetworkPolicy backend the Admin tier decides first and customers
    // may write NetworkPolicies of their own.
    assert_eq!(
        kinds(IsolationBackend::ClusterNetworkPolicy),
        [
            "/LimitRange",
            "/ResourceQuota",
            "customers.dev/*",
            "rbac.authorization.k8s.io/Role",
            "rbac.authorization.k8s.io/RoleBinding",
        ]
    );
}

#[test]
fn roles_map_admins_editors_and_viewers() {
    let p = nova();
    assert_eq!(
        p["spec"]["roles"],
        serde_json::json!([
            {
                "name": "customer-admin",
                "description": "holders of customer-admin in the customer's namespaces",
                "policies": ["p, proj:nova:customer-admin, applications, *, nova/*, allow"],
                // The group's managers too; the ServiceAccount has no Argo CD meaning.
                "groups": ["ann@nova.example", "nova-ops", "studio-managers"],
            },
            {
                "name": "customer-edit",
                "description": "holders of customer-edit in the customer's namespaces",
                "policies": [
                    "p, proj:nova:customer-edit, applications, get, nova/*, allow",
                    "p, proj:nova:customer-edit, applications, create, nova/*, allow",
                    "p, proj:nova:customer-edit, applications, update, nova/*, allow",
                    "p, proj:nova:customer-edit, applications, delete, nova/*, allow",
                    "p, proj:nova:customer-edit, applications, sync, nova/*, allow",
                    "p, proj:nova:customer-edit, applications, action/*, nova/*, allow",
                ],
                "groups": ["nova-devs"],
            },
            {
                "name": "customer-view",
                "description": "holders of customer-view in the customer's namespaces",
                "policies": ["p, proj:nova:customer-view, applications, get, nova/*, allow"],
                "groups": ["vic@nova.example"],
            },
        ])
    );
}

#[test]
fn the_project_carries_the_operators_labels() {
    let p = nova();
    let labels = &p["metadata"]["labels"];
    assert_eq!(labels["customers.dev/customer"], "nova");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "customer-operator");
    assert_eq!(
        p["metadata"]["annotations"]["customers.dev/owner-uid"], "",
        "offline the Customer has no uid yet"
    );
}
