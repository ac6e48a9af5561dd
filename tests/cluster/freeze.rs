//! Freezing (`spec.frozen` on a Customer or its CustomerGroup) against the real control
//! plane, with the token user carol as the customer's admin:
//!
//! - frozen, carol gets 403 on every write (ConfigMaps, Deployments, Secrets) and still
//!   reads; the customer shows `Frozen=True` and a `Frozen` Event; the operator still
//!   puts back a deleted NetworkPolicy and a deleted binding;
//! - unfrozen, her writes work again and the operator's bindings are exactly those of
//!   before (names, roles, subjects); a RoleBinding someone else wrote in her namespace
//!   is unchanged throughout;
//! - a delete through the API is held while frozen (`DeletionBlocked`, reason `Frozen`,
//!   the namespace stays) and goes on once unfrozen;
//! - a frozen group freezes its members (`GroupFrozen`, naming the group), holds a
//!   member's deletion, and unfreezing it restores them.

mod support;

use std::collections::BTreeMap;

use customer_operator::api::{Customer, CustomerGroup, LABEL_CUSTOMER};
use customer_operator::controller::status::{condition, types};
use customer_operator::desired::network::DEFAULT_DENY;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

/// The operator's bindings in a namespace: name -> (ClusterRole, subjects).
type Bindings = BTreeMap<String, (String, Vec<String>)>;

async fn operator_bindings(client: &Client, ns: &str, customer: &str) -> Bindings {
    let api: Api<RoleBinding> = Api::namespaced(client.clone(), ns);
    let selector = format!("{LABEL_CUSTOMER}={customer}");
    let list = api
        .list(&ListParams::default().labels(&selector))
        .await
        .unwrap();
    list.items
        .into_iter()
        .map(|b| {
            let subjects = b.subjects.iter().flatten();
            let subjects = subjects.map(|s| format!("{}/{}", s.kind, s.name)).collect();
            (b.name_any(), (b.role_ref.name, subjects))
        })
        .collect()
}

/// Waits until the operator's bindings in the namespace are these.
async fn wait_bindings(client: &Client, ns: &str, customer: &str, want: &Bindings) {
    support::wait_for(&format!("bindings of {customer}: {want:?}"), || async {
        (operator_bindings(client, ns, customer).await == *want).then_some(())
    })
    .await;
}

/// The HTTP code of a refused request, 0 when it succeeded.
fn code<T>(result: kube::Result<T>) -> u16 {
    match result {
        Ok(_) => 0,
        Err(kube::Error::Api(status)) => status.code,
        Err(other) => panic!("unexpected error: {other}"),
    }
}

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name}, "data": {"k": "v"}}))
    .unwrap()
}

fn deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": "registry.invalid/none:1"}]}}}}))
    .unwrap()
}

/// The condition's (status, reason, message), once the status describes the current
/// generation and the condition has this status.
async fn wait_reason(client: &Client, name: &str, type_: &str, status: &str) -> (String, String) {
    let c = support::wait_condition(client, name, type_, status).await;
    let cond = condition(c.status.as_ref(), type_).unwrap();
    (cond.reason.clone(), cond.message.clone())
}

/// Waits until carol's writes in the namespace get this code (RBAC takes effect a
/// moment after a binding changes).
async fn wait_write_code(carol: &Client, ns: &str, want: u16) {
    let maps: Api<ConfigMap> = Api::namespaced(carol.clone(), ns);
    support::wait_for(&format!("carol's writes in {ns} answered {want}"), || {
        let maps = maps.clone();
        async move {
            let dry = PostParams {
                dry_run: true,
                ..Default::default()
            };
            (code(maps.create(&dry, &config_map("probe")).await) == want).then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_customer_admin_reads_but_cannot_write_until_unfrozen() {
    let client = support::client().await;
    support::operator();
    let carol = support::as_user("carol").await;
    let name = support::unique("frozen");
    support::create_customer(
        &client,
        &name,
        json!({"displayName": "Frozen", "contactEmail": "ops@frozen.example",
               "access": {"admins": [{"kind": "User", "name": "carol"}],
                          "viewers": [{"kind": "User", "name": "dave"}]}}),
    )
    .await;
    support::wait_condition(&client, &name, types::READY, "True").await;
    // A RoleBinding the operator did not write, in the customer's namespace.
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), &name);
    let foreign: RoleBinding = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "team-auditors"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "customer-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]}))
    .unwrap();
    let foreign = bindings
        .create(&PostParams::default(), &foreign)
        .await
        .unwrap();
    let before = operator_bindings(&client, &name, &name).await;
    assert_eq!(
        before.get("customer-admins").map(|b| b.0.as_str()),
        Some("customer-admin"),
        "{before:?}"
    );
    wait_write_code(&carol, &name, 0).await;
    let maps: Api<ConfigMap> = Api::namespaced(carol.clone(), &name);
    maps.create(&PostParams::default(), &config_map("before"))
        .await
        .unwrap();

    support::patch_customer_spec(&client, &name, json!({"frozen": true})).await;
    let (reason, message) = wait_reason(&client, &name, types::FROZEN, "True").await;
    assert_eq!(reason, "Frozen");
    assert!(message.contains("spec.frozen"), "{message}");
    support::event_seen(&client, &name, "Normal", "Frozen").await;
    let frozen = Bindings::from([
        (
            "customer-admins-frozen".to_string(),
            ("customer-view".to_string(), vec!["User/carol".to_string()]),
        ),
        (
            "customer-viewers".to_string(),
            before["customer-viewers"].clone(),
        ),
    ]);
    wait_bindings(&client, &name, &name, &frozen).await;
    let ready = support::wait_condition(&client, &name, types::READY, "True").await;
    assert!(condition(ready.status.as_ref(), types::FROZEN).is_some());

    // Every write refused, reads allowed.
    wait_write_code(&carol, &name, 403).await;
    let mut changed = maps.get("before").await.unwrap();
    changed.data = Some(BTreeMap::from([("k".into(), "changed".into())]));
    assert_eq!(
        code(
            maps.replace("before", &PostParams::default(), &changed)
                .await
        ),
        403
    );
    assert_eq!(
        code(maps.delete("before", &DeleteParams::default()).await),
        403
    );
    let deployments: Api<Deployment> = Api::namespaced(carol.clone(), &name);
    assert_eq!(
        code(
            deployments
                .create(&PostParams::default(), &deployment("web"))
                .await
        ),
        403
    );
    assert_eq!(
        maps.list(&ListParams::default()).await.unwrap().items.len(),
        2
    );
    assert!(maps.get("before").await.is_ok());

    // The operator's repairs go on while frozen.
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &name);
    policies
        .delete(DEFAULT_DENY, &DeleteParams::default())
        .await
        .unwrap();
    bindings
        .delete("customer-admins-frozen", &DeleteParams::default())
        .await
        .unwrap();
    support::wait_for("the default deny put back", || {
        let policies = policies.clone();
        async move { policies.get_opt(DEFAULT_DENY).await.ok().flatten() }
    })
    .await;
    wait_bindings(&client, &name, &name, &frozen).await;

    // Unfrozen: exactly the bindings of before, and carol writes again.
    support::patch_customer_spec(&client, &name, json!({"frozen": false})).await;
    support::event_seen(&client, &name, "Normal", "Unfrozen").await;
    wait_bindings(&client, &name, &name, &before).await;
    let c = support::wait_condition(&client, &name, types::READY, "True").await;
    assert!(condition(c.status.as_ref(), types::FROZEN).is_none());
    wait_write_code(&carol, &name, 0).await;
    maps.delete("before", &DeleteParams::default())
        .await
        .unwrap();
    let still = bindings.get("team-auditors").await.unwrap();
    assert_eq!(still.resource_version(), foreign.resource_version());
    assert_eq!(still.role_ref, foreign.role_ref);

    // A delete is held while frozen; the namespace stays; unfrozen, the deletion goes on.
    support::patch_customer_spec(&client, &name, json!({"frozen": true})).await;
    wait_bindings(&client, &name, &name, &frozen).await;
    let customers: Api<Customer> = Api::all(client.clone());
    customers
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    let (reason, message) = wait_reason(&client, &name, types::DELETION_BLOCKED, "True").await;
    assert_eq!(reason, "Frozen");
    assert!(message.contains("nothing is deleted"), "{message}");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = namespaces.get(&name).await.unwrap();
    assert!(ns.metadata.deletion_timestamp.is_none());
    assert!(maps.list(&ListParams::default()).await.is_ok());
    support::patch_customer_spec(&client, &name, json!({"frozen": false})).await;
    support::gone(&customers, &name).await;
    support::gone(&namespaces, &name).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_group_freezes_its_members_and_holds_their_deletion() {
    let client = support::client().await;
    support::operator();
    let group = support::unique("paused");
    let groups: Api<CustomerGroup> = Api::all(client.clone());
    let body: CustomerGroup = serde_json::from_value(json!({
        "apiVersion": "customers.dev/v1alpha1", "kind": "CustomerGroup",
        "metadata": {"name": group},
        "spec": {"displayName": "Paused", "deletionPolicy": "Orphan",
                 "access": {"editors": [{"kind": "User", "name": "bob"}]}}}))
    .unwrap();
    groups.create(&PostParams::default(), &body).await.unwrap();
    let (kept, deleted) = (support::unique("member"), support::unique("member"));
    for member in [&kept, &deleted] {
        support::create_customer(
            &client,
            member,
            json!({"displayName": "Member", "contactEmail": "ops@member.example", "group": group,
                   "access": {"admins": [{"kind": "User", "name": "carol"}]}}),
        )
        .await;
    }
    support::wait_condition(&client, &kept, types::READY, "True").await;
    let before = operator_bindings(&client, &kept, &kept).await;
    assert_eq!(before.len(), 2, "{before:?}");

    let freeze = |on: bool| {
        let groups = groups.clone();
        let group = group.clone();
        async move {
            groups
                .patch(
                    &group,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"spec": {"frozen": on}})),
                )
                .await
                .unwrap();
        }
    };
    freeze(true).await;
    let member_is_frozen = |member: String| {
        let client = client.clone();
        let group = group.clone();
        async move {
            support::wait_for(&format!("{member} frozen by its group"), || async {
                let c = Api::<Customer>::all(client.clone())
                    .get(&member)
                    .await
                    .ok()?;
                let cond = condition(c.status.as_ref(), types::FROZEN)?;
                (cond.status == "True"
                    && cond.reason == "GroupFrozen"
                    && cond.message.contains(&group))
                .then_some(())
            })
            .await;
        }
    };
    member_is_frozen(kept.clone()).await;
    member_is_frozen(deleted.clone()).await;
    let frozen = Bindings::from([
        (
            "customer-admins-frozen".to_string(),
            ("customer-view".to_string(), vec!["User/carol".to_string()]),
        ),
        (
            "customer-group-editors-frozen".to_string(),
            ("customer-view".to_string(), vec!["User/bob".to_string()]),
        ),
    ]);
    wait_bindings(&client, &kept, &kept, &frozen).await;
    support::event_seen(&client, &kept, "Normal", "Frozen").await;

    let customers: Api<Customer> = Api::all(client.clone());
    customers
        .delete(&deleted, &DeleteParams::default())
        .await
        .unwrap();
    let (reason, message) = wait_reason(&client, &deleted, types::DELETION_BLOCKED, "True").await;
    assert_eq!(reason, "GroupFrozen");
    assert!(
        message.contains(&format!("CustomerGroup {group}")),
        "{message}"
    );
    let namespaces: Api<Namespace> = Api::all(client.clone());
    assert!(
        namespaces
            .get(&deleted)
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_none()
    );

    freeze(false).await;
    wait_bindings(&client, &kept, &kept, &before).await;
    support::gone(&customers, &deleted).await;
    support::gone(&namespaces, &deleted).await;
    let c = support::wait_condition(&client, &kept, types::READY, "True").await;
    assert!(condition(c.status.as_ref(), types::FROZEN).is_none());
    support::delete_customers(&client, std::slice::from_ref(&kept)).await;
    groups
        .delete(&group, &DeleteParams::default())
        .await
        .unwrap();
}
