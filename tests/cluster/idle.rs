//! An unchanged Customer costs no write: once everything has converged, several full
//! resyncs of every Customer in the cluster send no POST, PUT, PATCH or DELETE (port
//! ranges, quantities and defaulted LimitRanges included).
//! Its own test binary, so that no other test's changes run meanwhile.

mod support;

use std::time::Duration;

use customer_operator::api::Customer;
use customer_operator::controller::status::{condition, types};
use kube::api::PostParams;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

#[tokio::test]
async fn resyncs_of_unchanged_customers_write_nothing() {
    let client = support::client().await;
    let writes = support::operator();
    let api: Api<Customer> = Api::all(client.clone());
    let names: Vec<String> = (0..3)
        .map(|i| support::unique(&format!("idle{i}")))
        .collect();
    for (i, name) in names.iter().enumerate() {
        let mut spec = json!({"displayName": "Idle", "contactEmail": "ops@idle.example",
                     "namespaces": [{"name": "a"}, {"name": "b"}],
                     "access": {"admins": [{"kind": "User", "name": "alice"}]},
                     "quota": {"hard": {"pods": "10", "requests.cpu": "1.5"}},
                     "limits": [{"type": "Container", "default": {"cpu": "500m"}}]});
        if i > 0 {
            // A port range: what the apiserver stores (endPort) must compare as current.
            spec["network"] = json!({"allowFrom": [{"customer": names[0],
                "ports": [{"port": 8000, "endPort": 8100}]}]});
        }
        let customer: Customer = serde_json::from_value(json!({
            "apiVersion": "customers.dev/v1alpha1", "kind": "Customer",
            "metadata": {"name": name}, "spec": spec
        }))
        .unwrap();
        api.create(&PostParams::default(), &customer).await.unwrap();
    }
    for name in &names {
        support::wait_within(Duration::from_secs(60), &format!("{name} ready"), || {
            let api = api.clone();
            async move {
                let c = api.get(name).await.ok()?;
                let ready = condition(c.status.as_ref(), types::READY)?.status == "True";
                let current = c.status.as_ref()?.observed_generation == c.meta().generation;
                (ready && current).then_some(())
            }
        })
        .await;
    }
    // Let every Customer in the cluster (earlier tests leave some) settle: no write for
    // longer than one resync period (3 s).
    let mut settled = false;
    for _ in 0..15 {
        let before = writes.writes();
        tokio::time::sleep(Duration::from_secs(4)).await;
        if writes.writes() == before {
            settled = true;
            break;
        }
    }
    assert!(settled, "the operator kept writing for a minute");
    let customers = api.list(&Default::default()).await.unwrap().items.len();
    let before = writes.writes();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let during = writes.writes() - before;
    println!("{customers} customers, 3 resyncs in 10 s: {during} write requests");
    assert_eq!(during, 0);
    for name in &names {
        assert!(api.get(name).await.unwrap().finalizers().len() == 1);
    }
}
