//! A real Helm release of the chart on the test apiserver: `helm install` creates
//! everything, `helm upgrade` updates the CRDs, `helm uninstall` removes the operator and
//! keeps the CRDs (and with them every Customer) and the customer roles.
//!
//! Helm takes over no object it did not create, so this needs a cluster on which no
//! other test has installed the CRDs or the customer roles yet: it is ignored by default,
//! and scripts/test.sh runs it first, on its fresh control plane
//! (`cargo test --test helm_release -- --ignored`).

mod support;

use std::path::Path;

use customer_operator::api::{self, Customer};
use customer_operator::desired::access::{
    ROLE_ADMIN, ROLE_EDIT, ROLE_SECURITY_CONSULTANT, ROLE_VIEW,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::PostParams;
use kube::{Api, ResourceExt};
use serde_json::json;

const RELEASE: &str = support::CHART_NAMESPACE;
const NAMESPACE: &str = support::CHART_NAMESPACE;

/// Copies a directory tree.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Replaces `old` by `new` in a file of the chart copy, exactly once.
fn edit(file: &Path, old: &str, new: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    assert_eq!(
        text.matches(old).count(),
        1,
        "{old:?} in {}",
        file.display()
    );
    std::fs::write(file, text.replacen(old, new, 1)).unwrap();
}

#[tokio::test]
#[ignore = "needs a cluster no other test has touched; scripts/test.sh runs it first"]
async fn helm_install_upgrade_uninstall() {
    let client = support::admin_client().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let customer_crd = format!("customers.{}", api::API_GROUP);
    let group_crd = format!("customergroups.{}", api::API_GROUP);
    assert!(
        crds.get_opt(&customer_crd).await.unwrap().is_none(),
        "a fresh cluster: run this first (scripts/test.sh does)"
    );

    // Install: Helm reads the cluster's version and APIs itself.
    let out = support::helm(&[
        "install",
        RELEASE,
        support::CHART,
        "-n",
        NAMESPACE,
        "--create-namespace",
    ]);
    assert!(out.contains("STATUS: deployed"), "{out}");
    for name in [&customer_crd, &group_crd] {
        support::wait_established(&crds, name).await;
        let crd = crds.get(name).await.unwrap();
        assert_eq!(crd.annotations()["helm.sh/resource-policy"], "keep");
        assert_eq!(crd.labels()["helm.sh/chart"], "customer-operator-0.1.0");
    }
    for role in [
        ROLE_ADMIN,
        ROLE_EDIT,
        ROLE_VIEW,
        ROLE_SECURITY_CONSULTANT,
        RELEASE,
    ] {
        assert!(
            roles.get_opt(role).await.unwrap().is_some(),
            "ClusterRole {role}"
        );
    }
    assert!(deployments.get_opt(RELEASE).await.unwrap().is_some());
    // The isolation levels as Helm's YAML reader installed them: plain words, none of
    // them turned into a boolean, and a Customer that writes the "no policy" level
    // unquoted, applied with kubectl, is stored with it.
    let crd = crds.get(&customer_crd).await.unwrap();
    let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
    assert_eq!(
        schema["openAPIV3Schema"]["properties"]["spec"]["properties"]["network"]["properties"]["isolation"]
            ["enum"],
        json!(["Strict", "Standard", "None"])
    );
    let plain = support::unique("plain");
    let manifest = format!(
        "apiVersion: customers.dev/v1alpha1\nkind: Customer\nmetadata:\n  name: {plain}\nspec:\n  displayName: Plain\n  contactEmail: ops@plain.example\n  network:\n    isolation: None\n"
    );
    let file = std::env::temp_dir().join(format!("{plain}.yaml"));
    std::fs::write(&file, manifest).unwrap();
    let applied = support::kubectl()
        .args(["apply", "-f", file.to_str().unwrap()])
        .output()
        .unwrap();
    std::fs::remove_file(&file).unwrap();
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let stored = Api::<Customer>::all(client.clone())
        .get(&plain)
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&stored.spec.network).unwrap()["isolation"],
        "None"
    );
    // A Customer stored under the installed CRD, to see it survive the uninstall.
    let customers: Api<Customer> = Api::all(client.clone());
    let name = support::unique("helm");
    let customer: Customer = serde_json::from_value(json!({
        "apiVersion": api::API_VERSION, "kind": "Customer", "metadata": {"name": name},
        "spec": {"displayName": "Helm", "contactEmail": "ops@helm.example"}}))
    .unwrap();
    customers
        .create(&PostParams::default(), &customer)
        .await
        .unwrap();

    // Upgrade to a chart whose CRD changed: the CRD in the cluster changes with it.
    let copy = std::env::temp_dir().join(support::unique("chart"));
    copy_dir(Path::new(support::CHART), &copy);
    edit(&copy.join("Chart.yaml"), "version: 0.1.0", "version: 0.1.1");
    edit(
        &copy.join("templates/crds.yaml"),
        "    shortNames:\n    - cust\n",
        "    shortNames:\n    - cust\n    - custo\n",
    );
    let out = support::helm(&["upgrade", RELEASE, copy.to_str().unwrap(), "-n", NAMESPACE]);
    assert!(out.contains("REVISION: 2"), "{out}");
    let crd = crds.get(&customer_crd).await.unwrap();
    assert_eq!(crd.labels()["helm.sh/chart"], "customer-operator-0.1.1");
    assert_eq!(
        crd.spec.names.short_names,
        Some(vec!["cust".to_string(), "custo".to_string()])
    );
    std::fs::remove_dir_all(&copy).unwrap();

    // Uninstall: the operator and its rights go; the API, its objects and the
    // customers' roles stay.
    support::helm(&["uninstall", RELEASE, "-n", NAMESPACE]);
    support::wait_for("the operator's Deployment gone", || {
        let deployments = deployments.clone();
        async move {
            deployments
                .get_opt(RELEASE)
                .await
                .ok()?
                .is_none()
                .then_some(())
        }
    })
    .await;
    assert!(
        roles.get_opt(RELEASE).await.unwrap().is_none(),
        "operator ClusterRole removed"
    );
    for role in [ROLE_ADMIN, ROLE_EDIT, ROLE_VIEW, ROLE_SECURITY_CONSULTANT] {
        assert!(roles.get_opt(role).await.unwrap().is_some(), "{role} kept");
    }
    for name in [&customer_crd, &group_crd] {
        let crd = crds.get(name).await.unwrap();
        assert!(crd.metadata.deletion_timestamp.is_none(), "CRD {name} kept");
    }
    assert!(
        customers.get_opt(&name).await.unwrap().is_some(),
        "the Customer kept"
    );
    customers.delete(&name, &Default::default()).await.unwrap();
}
