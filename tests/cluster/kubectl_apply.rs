//! Issue 23, item 11, as a user meets it: the CRDs installed with `kubectl apply
//! --server-side -f crds/`, a Customer written in YAML with the "no policy" level
//! unquoted (`isolation: None`, which every YAML reader keeps a string, unlike `Off`),
//! applied with kubectl, becomes Ready with no NetworkPolicy. A Customer stored with the
//! former `"Off"` (only a JSON client could store it, under a CRD that listed it) still
//! reads as None after the CRD is updated, and stays editable (CRD validation
//! ratcheting), while a new `"Off"` is refused.

mod support;

use std::io::Write;
use std::process::Stdio;

use customer_operator::controller::status::{condition, types};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

/// Runs the control plane's own kubectl against the test cluster, with `input`
/// on its standard input; panics with its output unless it succeeds.
fn kubectl(args: &[&str], input: &str) -> String {
    let mut child = support::kubectl()
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "kubectl {}: {text}", args.join(" "));
    text
}

async fn policies(client: &Client, ns: &str) -> usize {
    Api::<NetworkPolicy>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .len()
}

fn install_crds_as_users_do() {
    kubectl(
        &["apply", "--server-side", "--force-conflicts", "-f", "crds/"],
        "",
    );
    kubectl(
        &[
            "wait",
            "--for=condition=Established",
            "crd/customers.customers.dev",
            "crd/customergroups.customers.dev",
        ],
        "",
    );
}

#[tokio::test]
async fn a_customer_with_isolation_none_unquoted_applied_with_kubectl_has_no_policy() {
    let client = support::client().await;
    install_crds_as_users_do();
    support::operator();
    let name = support::unique("yaml");
    let yaml = format!(
        "apiVersion: customers.dev/v1alpha1\n\
         kind: Customer\n\
         metadata:\n  name: {name}\n\
         spec:\n  displayName: Open Co\n  contactEmail: ops@open.example\n  \
         network:\n    isolation: None\n"
    );
    kubectl(&["apply", "-f", "-"], &yaml);
    let stored = support::wait_condition(&client, &name, types::READY, "True").await;
    assert_eq!(
        stored.spec.network.unwrap().isolation,
        Some(customer_operator::api::Isolation::None)
    );
    let isolated = condition(stored.status.as_ref(), types::NETWORK_ISOLATED).unwrap();
    assert_eq!(
        (isolated.status.as_str(), isolated.reason.as_str()),
        ("False", "IsolationNone")
    );
    assert_eq!(policies(&client, &name).await, 0);
    support::delete_customers(&client, std::slice::from_ref(&name)).await;
}

#[tokio::test]
async fn a_customer_stored_with_off_reads_as_none_and_stays_editable() {
    let client = support::client().await;
    install_crds_as_users_do();
    support::operator();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    // The former CRD, as a JSON client installed it: "Off" among the values.
    let path = "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/network/properties/isolation/enum/-";
    crds.patch(
        "customers.customers.dev",
        &PatchParams::default(),
        &Patch::<()>::Json(
            serde_json::from_value(json!([{"op": "add", "path": path, "value": "Off"}])).unwrap(),
        ),
    )
    .await
    .unwrap();
    let name = support::unique("off");
    let customers = support::untyped(&client, "Customer");
    support::wait_for("the former schema in force", || {
        let customers = customers.clone();
        let name = name.clone();
        async move {
            let object = json!({"apiVersion": "customers.dev/v1alpha1", "kind": "Customer",
                "metadata": {"name": name},
                "spec": {"displayName": "Old Co", "contactEmail": "ops@old.example",
                         "network": {"isolation": "Off"}}});
            customers
                .create(
                    &Default::default(),
                    &serde_json::from_value(object).unwrap(),
                )
                .await
                .ok()
        }
    })
    .await;
    // Today's CRD, as users install it: None, no Off.
    install_crds_as_users_do();
    let stored = support::wait_condition(&client, &name, types::READY, "True").await;
    assert_eq!(
        stored.spec.network.as_ref().unwrap().isolation,
        Some(customer_operator::api::Isolation::None)
    );
    assert_eq!(policies(&client, &name).await, 0);
    // Another field changes although the stored "Off" is no longer a valid value.
    let edit = |spec: serde_json::Value| {
        let customers = customers.clone();
        let name = name.clone();
        async move {
            customers
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": spec})),
                )
                .await
        }
    };
    edit(json!({"displayName": "Old Co, renamed"}))
        .await
        .expect("an edit that leaves isolation alone passes (ratcheting)");
    support::wait_condition(&client, &name, types::READY, "True").await;
    // The user moves it to None; writing "Off" anew is then refused, naming the field
    // and the values (an unchanged "Off" would pass by ratcheting).
    edit(json!({"network": {"isolation": "None"}}))
        .await
        .expect("None is accepted");
    let refused = edit(json!({"network": {"isolation": "Off"}}))
        .await
        .expect_err("Off is no longer accepted");
    let message = refused.to_string();
    assert!(
        message.contains("spec.network.isolation") && message.contains("\"None\""),
        "{message}"
    );
    support::delete_customers(&client, std::slice::from_ref(&name)).await;
}
