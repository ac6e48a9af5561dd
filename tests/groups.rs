//! CustomerGroups against the real test control plane: member counts, group access that
//! follows the group, and the three deletion policies. One operator in this test process.

mod support;

use std::time::Duration;

use customer_operator::api::{Customer, CustomerGroup};
use customer_operator::controller::status::{condition, types};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

async fn setup() -> Client {
    let client = support::client().await;
    support::operator();
    client
}

async fn create_group(client: &Client, name: &str, spec: Value) {
    let group: CustomerGroup = serde_json::from_value(json!({
        "apiVersion": "customers.dev/v1alpha1", "kind": "CustomerGroup",
        "metadata": {"name": name}, "spec": spec
    }))
    .unwrap();
    Api::<CustomerGroup>::all(client.clone())
        .create(&PostParams::default(), &group)
        .await
        .unwrap();
}

async fn create_member(client: &Client, name: &str, group: &str) {
    let customer: Customer = serde_json::from_value(json!({
        "apiVersion": "customers.dev/v1alpha1", "kind": "Customer",
        "metadata": {"name": name},
        "spec": {"displayName": "Member", "contactEmail": "ops@member.example", "group": group}
    }))
    .unwrap();
    Api::<Customer>::all(client.clone())
        .create(&PostParams::default(), &customer)
        .await
        .unwrap();
}

async fn wait_ready(client: &Client, name: &str) -> Customer {
    let api: Api<Customer> = Api::all(client.clone());
    support::wait_within(Duration::from_secs(60), &format!("{name} ready"), || {
        let api = api.clone();
        async move {
            let c = api.get(name).await.ok()?;
            (condition(c.status.as_ref(), types::READY)?.status == "True").then_some(c)
        }
    })
    .await
}

async fn wait_members(client: &Client, group: &str, count: u32) {
    let api: Api<CustomerGroup> = Api::all(client.clone());
    support::wait_for(&format!("{group} has {count} members"), || {
        let api = api.clone();
        async move { (api.get(group).await.ok()?.status?.members == count).then_some(()) }
    })
    .await;
}

async fn gone<K>(api: &Api<K>, name: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    support::wait_within(Duration::from_secs(60), &format!("{name} gone"), || {
        let api = api.clone();
        async move {
            api.get_opt(name)
                .await
                .ok()
                .and_then(|o| o.is_none().then_some(()))
        }
    })
    .await;
}

#[tokio::test]
async fn members_are_counted_and_group_access_follows_the_group() {
    let client = setup().await;
    let group = support::unique("grp");
    create_group(
        &client,
        &group,
        json!({"displayName": "G", "access": {"admins": [{"kind": "User", "name": "gail"}]}}),
    )
    .await;
    let (a, b) = (support::unique("ga"), support::unique("gb"));
    create_member(&client, &a, &group).await;
    create_member(&client, &b, &group).await;
    wait_ready(&client, &a).await;
    wait_members(&client, &group, 2).await;
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), &a);
    support::wait_for("group admins bound", || {
        let bindings = bindings.clone();
        async move {
            bindings
                .get_opt("customer-group-admins")
                .await
                .ok()?
                .map(|_| ())
        }
    })
    .await;
    // Removing the group's admins removes their binding in every member namespace.
    Api::<CustomerGroup>::all(client.clone())
        .patch(
            &group,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"access": null}})),
        )
        .await
        .unwrap();
    for member in [&a, &b] {
        let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), member);
        gone(&bindings, "customer-group-admins").await;
    }
    // A member that leaves is no longer counted.
    Api::<Customer>::all(client.clone())
        .patch(
            &b,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"group": null}})),
        )
        .await
        .unwrap();
    wait_members(&client, &group, 1).await;
}

#[tokio::test]
async fn block_keeps_the_group_until_it_is_empty() {
    let client = setup().await;
    let group = support::unique("blk");
    create_group(&client, &group, json!({"displayName": "B"})).await;
    let member = support::unique("bm");
    create_member(&client, &member, &group).await;
    wait_ready(&client, &member).await;
    wait_members(&client, &group, 1).await;
    let groups: Api<CustomerGroup> = Api::all(client.clone());
    groups
        .delete(&group, &DeleteParams::default())
        .await
        .unwrap();
    let blocked = support::wait_for("DeletionBlocked", || {
        let groups = groups.clone();
        let group = group.clone();
        async move {
            let g = groups.get(&group).await.ok()?;
            g.status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == types::DELETION_BLOCKED)
        }
    })
    .await;
    assert!(blocked.message.contains(&member), "{}", blocked.message);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(groups.get_opt(&group).await.unwrap().is_some());
    let customers: Api<Customer> = Api::all(client.clone());
    customers
        .delete(&member, &DeleteParams::default())
        .await
        .unwrap();
    gone(&groups, &group).await;
}

#[tokio::test]
async fn orphan_moves_members_to_the_default_group() {
    let client = setup().await;
    let group = support::unique("orph");
    create_group(
        &client,
        &group,
        json!({"displayName": "O", "deletionPolicy": "Orphan"}),
    )
    .await;
    let member = support::unique("om");
    create_member(&client, &member, &group).await;
    wait_ready(&client, &member).await;
    let groups: Api<CustomerGroup> = Api::all(client.clone());
    groups
        .delete(&group, &DeleteParams::default())
        .await
        .unwrap();
    gone(&groups, &group).await;
    let customers: Api<Customer> = Api::all(client.clone());
    let moved = support::wait_for("member in the default group", || {
        let customers = customers.clone();
        let member = member.clone();
        async move {
            let c = customers.get(&member).await.ok()?;
            let in_default =
                c.spec.group.is_none() && c.status.as_ref()?.group.as_deref() == Some("all");
            in_default.then_some(c)
        }
    })
    .await;
    assert!(moved.metadata.deletion_timestamp.is_none());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    assert!(
        namespaces
            .get(&member)
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_none()
    );
}

#[tokio::test]
async fn cascade_deletes_the_members_then_the_group() {
    let client = setup().await;
    let group = support::unique("casc");
    create_group(
        &client,
        &group,
        json!({"displayName": "C", "deletionPolicy": "Cascade"}),
    )
    .await;
    let (a, b) = (support::unique("ca"), support::unique("cb"));
    create_member(&client, &a, &group).await;
    create_member(&client, &b, &group).await;
    wait_ready(&client, &a).await;
    wait_ready(&client, &b).await;
    let outsider = support::unique("co");
    create_member(&client, &outsider, "all").await;
    wait_ready(&client, &outsider).await;
    let groups: Api<CustomerGroup> = Api::all(client.clone());
    groups
        .delete(&group, &DeleteParams::default())
        .await
        .unwrap();
    let customers: Api<Customer> = Api::all(client.clone());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for member in [&a, &b] {
        gone(&customers, member).await;
        gone(&namespaces, member).await;
    }
    gone(&groups, &group).await;
    let kept = customers.get(&outsider).await.unwrap();
    assert!(kept.metadata.deletion_timestamp.is_none());
    assert!(
        namespaces
            .get(&outsider)
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_none()
    );
}
