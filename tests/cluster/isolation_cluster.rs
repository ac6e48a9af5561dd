//! `NetworkIsolated` against the real control plane: a NetworkPolicy that a cluster admin
//! (not the operator) adds to a customer's namespace is evaluated with the operator's
//! own, and an opening it makes for another customer turns the condition False, naming
//! the policy and the peer; removing it turns the condition True again.

mod support;

use std::time::{Duration, Instant};

use customer_operator::api::Customer;
use customer_operator::controller::status::{UNDECLARED_INBOUND, condition, types};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use support::{create_customer, wait_condition};

async fn setup() -> Client {
    let client = support::client().await;
    support::operator();
    client
}

/// A policy as a cluster admin writes it: none of the operator's labels.
fn foreign_policy(namespace: &str, name: &str, spec: serde_json::Value) -> NetworkPolicy {
    serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec
    }))
    .unwrap()
}

fn isolated(customer: &Customer) -> (String, String, String) {
    let c = condition(customer.status.as_ref(), types::NETWORK_ISOLATED).unwrap();
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

/// Waits (up to 30 s) until NetworkIsolated has `status`; returns the Customer and how
/// long it took.
async fn isolated_within(client: &Client, name: &str, status: &str) -> (Customer, Duration) {
    let started = Instant::now();
    let api: Api<Customer> = Api::all(client.clone());
    let customer = support::wait_for(&format!("{name} NetworkIsolated={status}"), || {
        let api = api.clone();
        async move {
            let c = api.get(name).await.ok()?;
            (condition(c.status.as_ref(), types::NETWORK_ISOLATED)?.status == status).then_some(c)
        }
    })
    .await;
    (customer, started.elapsed())
}

#[tokio::test]
async fn a_foreign_allow_all_policy_breaks_isolation_until_it_is_removed() {
    let client = setup().await;
    let (neighbour, fenced) = (support::unique("neighbour"), support::unique("fenced"));
    create_customer(
        &client,
        &neighbour,
        json!({"displayName": "Neighbour", "contactEmail": "ops@neighbour.example"}),
    )
    .await;
    create_customer(
        &client,
        &fenced,
        json!({"displayName": "Fenced", "contactEmail": "ops@fenced.example",
               "namespaces": [{"name": "web"}, {"name": "db"}]}),
    )
    .await;
    wait_condition(&client, &neighbour, types::READY, "True").await;
    let ready = wait_condition(&client, &fenced, types::READY, "True").await;
    let (status, reason, message) = isolated(&ready);
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "PoliciesApplied"),
        "{message}"
    );

    let web = format!("{fenced}-web");
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &web);
    let allow_all = foreign_policy(
        &web,
        "allow-all",
        json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"], "ingress": [{}], "egress": [{}]}),
    );
    let created = policies
        .create(&PostParams::default(), &allow_all)
        .await
        .unwrap();
    let (broken, took) = isolated_within(&client, &fenced, "False").await;
    println!("foreign allow-all policy: NetworkIsolated False after {took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    let (_, reason, message) = isolated(&broken);
    assert_eq!(reason, UNDECLARED_INBOUND);
    // Every other customer of the cluster is admitted (the message names the first few).
    let part = format!(
        "(any pod) may connect to {web} (any pod) on all ports: admitted by {web}/allow-all ingress rule 1 (peer every source; all ports)"
    );
    assert!(message.contains(&part), "{part:?} not in {message:?}");
    assert!(message.contains("from customer "), "{message}");
    // The other namespace is not affected, so it is not named.
    assert!(!message.contains(&format!("{fenced}-db ")), "{message}");
    // A breached customer is not Ready (issue 23, item 14).
    let ready = condition(broken.status.as_ref(), types::READY).unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", UNDECLARED_INBOUND),
        "{ready:?}"
    );
    support::event_seen(&client, &fenced, "Warning", UNDECLARED_INBOUND).await;
    // The neighbour's own isolation does not depend on the fenced customer's policies.
    let neighbour_now: Customer = Api::all(client.clone()).get(&neighbour).await.unwrap();
    assert_eq!(isolated(&neighbour_now).0, "True");
    // The operator leaves a policy that is not its own alone.
    let still = policies.get("allow-all").await.unwrap();
    assert_eq!(still.resource_version(), created.resource_version());

    policies
        .delete("allow-all", &DeleteParams::default())
        .await
        .unwrap();
    let (mended, took) = isolated_within(&client, &fenced, "True").await;
    println!("foreign policy removed: NetworkIsolated True after {took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_eq!(isolated(&mended).1, "PoliciesApplied");
}

#[tokio::test]
async fn a_foreign_policy_may_open_what_is_declared_and_no_more() {
    let client = setup().await;
    let (client_co, shop) = (support::unique("buyer"), support::unique("shop"));
    create_customer(
        &client,
        &client_co,
        json!({"displayName": "Buyer", "contactEmail": "ops@buyer.example"}),
    )
    .await;
    create_customer(
        &client,
        &shop,
        json!({"displayName": "Shop", "contactEmail": "ops@shop.example",
               "network": {"allowFrom": [{"customer": client_co, "ports": [{"port": 443}]}]}}),
    )
    .await;
    wait_condition(&client, &shop, types::READY, "True").await;
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &shop);
    let from_buyer = |name: &str, ports: serde_json::Value| {
        foreign_policy(
            &shop,
            name,
            json!({"podSelector": {"matchLabels": {"app": "api"}},
                   "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": client_co}}}],
                                "ports": ports}]}),
        )
    };
    // Exactly the declared port: still isolated as declared.
    policies
        .create(
            &PostParams::default(),
            &from_buyer("buyer-https", json!([{"port": 443}])),
        )
        .await
        .unwrap();
    // More than declared: not. (Single ports: the 1.20 test apiserver drops endPort.)
    policies
        .create(
            &PostParams::default(),
            &from_buyer("buyer-debug", json!([{"port": 443}, {"port": 8080}])),
        )
        .await
        .unwrap();
    let (broken, _) = isolated_within(&client, &shop, "False").await;
    let (_, _, message) = isolated(&broken);
    assert!(
        message.contains(&format!(
            "{client_co} (any pod) may connect to {shop} (app=api) on TCP 8080"
        )),
        "{message}"
    );
    assert!(
        message.contains(&format!("{shop}/buyer-debug ingress rule 1")),
        "{message}"
    );
    assert!(!message.contains("buyer-https"), "{message}");
    policies
        .delete("buyer-debug", &DeleteParams::default())
        .await
        .unwrap();
    let (mended, _) = isolated_within(&client, &shop, "True").await;
    assert_eq!(isolated(&mended).1, "PoliciesApplied");
}
