//! A Customer the operator cannot read (stored under a looser schema) is reported on its
//! own status and in an Event, and every other Customer is still reconciled. Its own test
//! binary: it loosens the Customer CRD for a moment.

mod support;

use customer_operator::api::{self, Customer, FIELD_MANAGER};
use customer_operator::controller::decode::UNREADABLE;
use customer_operator::controller::status::{condition, types};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

async fn post(client: &Client, body: Value) {
    let request = http::Request::post("/apis/customers.dev/v1alpha1/customers")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap())
        .unwrap();
    client.request::<Value>(request).await.expect("created");
}

#[tokio::test]
async fn unreadable_customer_is_reported_and_stalls_nothing() {
    let client = support::client().await;
    support::operator();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut loose = serde_json::to_value(api::customer_crd()).unwrap();
    loose["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"] =
        json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    crds.patch(
        "customers.customers.dev",
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&loose),
    )
    .await
    .unwrap();
    let bad = support::unique("unreadable");
    // The loosened schema may take a moment to be in force.
    support::wait_for("loose schema in force", || {
        let client = client.clone();
        let bad = bad.clone();
        async move {
            let body = json!({"apiVersion": "customers.dev/v1alpha1", "kind": "Customer",
                              "metadata": {"name": bad},
                              "spec": {"displayName": 5, "contactEmail": ["not", "a", "string"]}});
            let request = http::Request::post("/apis/customers.dev/v1alpha1/customers")
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&body).unwrap())
                .unwrap();
            client.request::<Value>(request).await.ok().map(|_| ())
        }
    })
    .await;
    support::install_crds(&client).await;

    let good = support::unique("readable");
    post(
        &client,
        json!({"apiVersion": "customers.dev/v1alpha1", "kind": "Customer", "metadata": {"name": good},
               "spec": {"displayName": "Fine", "contactEmail": "ops@fine.example"}}),
    )
    .await;
    let customers: Api<Customer> = Api::all(client.clone());
    support::wait_for("good customer ready", || {
        let customers = customers.clone();
        let good = good.clone();
        async move {
            let c = customers.get(&good).await.ok()?;
            (condition(c.status.as_ref(), types::READY)?.status == "True").then_some(())
        }
    })
    .await;

    // Reported in an Event (its status too where the apiserver lets a status be written
    // to an object that fails the current schema; 1.20 does not).
    support::event_seen(&client, &bad, "Warning", UNREADABLE).await;
    let untyped = customer_operator::controller::decode::untyped(&client);
    // It was never taken over: no finalizer, so it can simply be deleted.
    let o = untyped.get(&bad).await.unwrap();
    assert!(o.finalizers().is_empty());
    untyped
        .delete(&bad, &DeleteParams::default())
        .await
        .unwrap();
}
