//! Uninstall: deleting the Customer CRD while Customers exist leaves every customer
//! namespace and its policies in place, released from their owner, and marked so that
//! a Customer of the same name adopts them again; while the CRDs are gone the operator
//! is not ready and does not flood its log. Its own test binary: it deletes the CRD,
//! which removes every Customer. The operator runs as its binary, for `/readyz`.

mod support;

use std::time::Duration;

use customer_operator::api::{ANNOTATION_ADOPT, Customer};
use customer_operator::controller::status::{condition, types};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

/// Waits up to 90 s: after its CRD came back, the operator's watch recovers on the
/// runtime's backoff, which grows while the CRD was missing.
async fn wait_ready(api: &Api<Customer>, name: &str) -> Customer {
    support::wait_within(Duration::from_secs(90), &format!("{name} ready"), || {
        let api = api.clone();
        async move {
            let c = api.get(name).await.ok()?;
            (condition(c.status.as_ref(), types::READY)?.status == "True").then_some(c)
        }
    })
    .await
}

async fn create(client: &Client, name: &str) {
    let customer: Customer = serde_json::from_value(json!({
        "apiVersion": "customers.dev/v1alpha1", "kind": "Customer",
        "metadata": {"name": name},
        "spec": {"displayName": "Keep", "contactEmail": "ops@keep.example",
                 "namespaces": [{"name": "a"}, {"name": "b"}]}
    }))
    .unwrap();
    Api::<Customer>::all(client.clone())
        .create(&PostParams::default(), &customer)
        .await
        .unwrap();
}

/// The status code and body of `GET /readyz`, or `None` while nothing answers.
fn readyz(address: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).ok()?;
    stream
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let code = answer.split_whitespace().nth(1)?.parse().ok()?;
    let body = answer
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    Some((code, body))
}

#[tokio::test]
async fn deleting_the_crd_leaves_namespaces_in_place() {
    let client = support::client().await;
    let port = support::free_port();
    let address = format!("127.0.0.1:{port}");
    let log = std::env::temp_dir().join(format!("{}.log", support::unique("uninstall")));
    let _operator = support::process::OperatorProcess::start_with(
        &support::kubeconfig(),
        &log,
        &["--metrics-addr", &address],
    );
    support::wait_for("/readyz 200", || {
        let ready = readyz(&address).map(|(code, _)| code == 200);
        async move { ready.filter(|r| *r).map(|_| ()) }
    })
    .await;
    let name = support::unique("keep");
    create(&client, &name).await;
    let api: Api<Customer> = Api::all(client.clone());
    wait_ready(&api, &name).await;

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.delete("customers.customers.dev", &DeleteParams::default())
        .await
        .unwrap();
    // Every Customer in the cluster is released first (earlier tests leave some).
    support::wait_within(Duration::from_secs(120), "Customer CRD gone", || {
        let crds = crds.clone();
        async move {
            let gone = crds
                .get_opt("customers.customers.dev")
                .await
                .ok()?
                .is_none();
            gone.then_some(())
        }
    })
    .await;
    // Give the garbage collector time to act on anything still owned; meanwhile the
    // operator says it is not ready and logs the missing API once, not at every retry.
    let logged_before = std::fs::read_to_string(&log).unwrap().lines().count();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let (code, body) = readyz(&address).expect("/readyz answers");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("not served"), "{body}");
    let text = std::fs::read_to_string(&log).unwrap();
    let warnings: Vec<&str> = text
        .lines()
        .skip(logged_before)
        .filter(|l| l.contains("WARN"))
        .collect();
    assert!(
        warnings.len() <= 2,
        "{} warnings in 8 s: {warnings:#?}",
        warnings.len()
    );
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for suffix in ["a", "b"] {
        let ns_name = format!("{name}-{suffix}");
        let ns = namespaces.get(&ns_name).await.unwrap();
        assert!(
            ns.metadata.deletion_timestamp.is_none(),
            "{ns_name} is being deleted"
        );
        assert!(ns.owner_references().is_empty(), "{ns_name} still owned");
        assert!(
            !ns.annotations().contains_key("customers.dev/owner-uid"),
            "{ns_name} still records its owner"
        );
        assert_eq!(ns.annotations().get(ANNOTATION_ADOPT), Some(&name));
        let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &ns_name);
        let deny = policies.get("customer-default-deny").await.unwrap();
        assert!(deny.owner_references().is_empty());
    }

    // Reinstall: the same Customer takes its namespaces back, and the operator is ready.
    support::install_crds(&client).await;
    create(&client, &name).await;
    let customer = wait_ready(&api, &name).await;
    assert_eq!(readyz(&address).map(|(code, _)| code), Some(200));
    let ns = namespaces.get(&format!("{name}-a")).await.unwrap();
    assert_eq!(
        ns.annotations().get("customers.dev/owner-uid"),
        customer.uid().as_ref()
    );
}
