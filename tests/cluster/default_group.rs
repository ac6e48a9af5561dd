//! A CustomerGroup object named like the default group (issue 23, item 1), against the
//! real test control plane. In a test binary of its own: the group it deletes is the
//! default group of every other test's customers.

mod support;

use support::gone;

use std::time::Duration;

use customer_operator::api::{Customer, CustomerGroup};
use customer_operator::controller::status::types;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

async fn setup() -> Client {
    let client = support::client().await;
    support::operator();
    client
}

async fn namespace_uid(client: &Client, name: &str) -> (String, bool) {
    let ns = Api::<Namespace>::all(client.clone())
        .get(name)
        .await
        .unwrap();
    (ns.uid().unwrap(), ns.metadata.deletion_timestamp.is_some())
}

fn spec(group: Option<&str>, protected: bool) -> serde_json::Value {
    let mut spec = json!({"displayName": "Default group test", "contactEmail": "ops@dg.example",
                          "deletionProtection": protected});
    if let Some(group) = group {
        spec["group"] = group.into();
    }
    spec
}

/// `kubectl apply` a CustomerGroup named `all` (the default group) with `deletionPolicy:
/// Cascade`, then delete it: only the Customers that name `all` in `spec.group` are
/// deleted; those that set no group keep their namespaces, also one created while the
/// group is terminating; the member count follows the cascade.
#[tokio::test]
async fn deleting_a_cascade_group_named_like_the_default_group_spares_groupless_customers() {
    let client = setup().await;
    let groups: Api<CustomerGroup> = Api::all(client.clone());
    let customers: Api<Customer> = Api::all(client.clone());
    let group: CustomerGroup = serde_json::from_value(json!({
        "apiVersion": "customers.dev/v1alpha1", "kind": "CustomerGroup",
        "metadata": {"name": "all"},
        "spec": {"displayName": "Everyone", "deletionPolicy": "Cascade"}
    }))
    .unwrap();
    groups.create(&PostParams::default(), &group).await.unwrap();
    let groupless = support::unique("dgfree");
    let named = support::unique("dgnamed");
    let held = support::unique("dgheld");
    support::create_customer(&client, &groupless, spec(None, false)).await;
    support::create_customer(&client, &named, spec(Some("all"), false)).await;
    // Named and protected: its deletion is blocked, so the group stays terminating.
    support::create_customer(&client, &held, spec(Some("all"), true)).await;
    for name in [&groupless, &named, &held] {
        support::wait_condition(&client, name, types::READY, "True").await;
    }
    let before = namespace_uid(&client, &groupless).await;

    groups
        .delete("all", &DeleteParams::default())
        .await
        .unwrap();
    gone(&customers, &named).await;
    support::wait_for("the member count follows the cascade", || {
        let groups = groups.clone();
        async move { (groups.get("all").await.ok()?.status?.members == 1).then_some(()) }
    })
    .await;
    let terminating = groups.get("all").await.unwrap();
    assert!(terminating.metadata.deletion_timestamp.is_some());

    // A Customer without a group created while the group terminates is not deleted.
    let newcomer = support::unique("dgnew");
    support::create_customer(&client, &newcomer, spec(None, false)).await;
    support::wait_condition(&client, &newcomer, types::READY, "True").await;
    let newcomer_ns = namespace_uid(&client, &newcomer).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    for (name, ns) in [(&groupless, &before), (&newcomer, &newcomer_ns)] {
        let c = customers.get(name).await.unwrap();
        assert!(c.metadata.deletion_timestamp.is_none(), "{name} deleted");
        assert_eq!(
            &namespace_uid(&client, name).await,
            ns,
            "{name}'s namespace"
        );
    }

    // Confirming the protected member's deletion lets the group go.
    support::patch_customer_spec(&client, &held, json!({"deletionProtection": false})).await;
    gone(&customers, &held).await;
    gone(&groups, "all").await;
    for name in [&groupless, &newcomer] {
        let c = customers.get(name).await.unwrap();
        assert!(c.metadata.deletion_timestamp.is_none(), "{name} deleted");
    }
    assert_eq!(namespace_uid(&client, &groupless).await, before);
    support::delete_customers(&client, &[groupless, newcomer]).await;
}
