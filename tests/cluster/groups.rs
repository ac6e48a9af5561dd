//! CustomerGroups against the real test control plane: member counts, group access that
//! follows the group, and the three deletion policies. One operator in this test process.

mod support;

use support::gone;

use std::time::Duration;

use customer_operator::api::{Customer, CustomerGroup};
use customer_operator::controller::status::{condition, types};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
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

async fn set_spec<K>(api: &Api<K>, name: &str, spec: Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(&json!({ "spec": spec })),
    )
    .await
    .unwrap();
}

/// Waits until what `read` finds in the namespace equals `want`.
async fn wait_equal<T, F, Fut>(what: &str, want: T, read: F)
where
    T: PartialEq + std::fmt::Debug,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let want = &want;
    let read = &read;
    support::wait_for(&format!("{what} = {want:?}"), || async move {
        (read().await == *want).then_some(())
    })
    .await;
}

async fn policy_names(client: &Client, ns: &str) -> Vec<String> {
    let list = Api::<NetworkPolicy>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    list.items.iter().map(ResourceExt::name_any).collect()
}

async fn label(client: &Client, ns: &str, key: &str) -> Option<String> {
    let ns = Api::<Namespace>::all(client.clone()).get(ns).await.ok()?;
    ns.labels().get(key).cloned()
}

#[tokio::test]
async fn group_defaults_and_zone_follow_a_member_between_groups() {
    let client = setup().await;
    let customers: Api<Customer> = Api::all(client.clone());
    let groups: Api<CustomerGroup> = Api::all(client.clone());
    let (zone, plain) = (support::unique("zone"), support::unique("plain"));
    create_group(
        &client,
        &zone,
        json!({"displayName": "Zone", "network": {"allowWithinGroup": true},
               "defaults": {"quota": {"hard": {"pods": "10"}},
                            "namespaceLabels": {"tier": "gold"},
                            "network": {"isolation": "Strict"}}}),
    )
    .await;
    create_group(
        &client,
        &plain,
        json!({"displayName": "Plain", "defaults": {"quota": {"hard": {"pods": "20"}}}}),
    )
    .await;
    let (a, b, own, outsider) = (
        support::unique("za"),
        support::unique("zb"),
        support::unique("zown"),
        support::unique("zout"),
    );
    create_member(&client, &a, &zone).await;
    create_member(&client, &b, &zone).await;
    create_member(&client, &own, &zone).await;
    set_spec(&customers, &own, json!({"quota": {"hard": {"pods": "5"}}})).await;
    create_member(&client, &outsider, &plain).await;
    for name in [&a, &b, &own, &outsider] {
        wait_ready(&client, name).await;
    }

    // Defaults apply where the member sets nothing; its own setting wins.
    wait_equal("quota of a", Some("10".into()), || {
        support::quota_pods(&client, &a)
    })
    .await;
    wait_equal("quota of own", Some("5".into()), || {
        support::quota_pods(&client, &own)
    })
    .await;
    assert_eq!(label(&client, &a, "tier").await.as_deref(), Some("gold"));
    assert!(
        !policy_names(&client, &a)
            .await
            .contains(&"customer-allow-internet-egress".into())
    );
    assert!(
        policy_names(&client, &outsider)
            .await
            .contains(&"customer-allow-internet-egress".into())
    );
    // The zone opens among the members only, both ways.
    let mut a_b_own = vec![b.clone(), own.clone()];
    a_b_own.sort();
    wait_equal("zone of a", Some(a_b_own), || {
        support::zone_peers(&client, &a)
    })
    .await;
    let mut b_peers = vec![a.clone(), own.clone()];
    b_peers.sort();
    wait_equal("zone of b", Some(b_peers), || {
        support::zone_peers(&client, &b)
    })
    .await;
    assert_eq!(support::zone_peers(&client, &outsider).await, None);
    for name in [&a, &b, &own] {
        let policies = Api::<NetworkPolicy>::namespaced(client.clone(), &outsider)
            .list(&ListParams::default())
            .await
            .unwrap();
        assert!(
            !serde_json::to_string(&policies.items)
                .unwrap()
                .contains(name.as_str())
        );
    }

    // A change of the group's defaults reaches every member that uses them.
    set_spec(
        &groups,
        &zone,
        json!({"defaults": {"quota": {"hard": {"pods": "15"}}}}),
    )
    .await;
    wait_equal("quota of a", Some("15".into()), || {
        support::quota_pods(&client, &a)
    })
    .await;
    wait_equal("quota of b", Some("15".into()), || {
        support::quota_pods(&client, &b)
    })
    .await;
    assert_eq!(
        support::quota_pods(&client, &own).await.as_deref(),
        Some("5")
    );

    // b moves to the plain group: its defaults, labels and isolation follow, and the
    // zone closes on both sides.
    set_spec(&customers, &b, json!({"group": plain})).await;
    wait_equal("quota of b", Some("20".into()), || {
        support::quota_pods(&client, &b)
    })
    .await;
    wait_equal("tier label of b", None, || label(&client, &b, "tier")).await;
    wait_equal("zone of b", None, || support::zone_peers(&client, &b)).await;
    wait_equal("zone of a", Some(vec![own.clone()]), || {
        support::zone_peers(&client, &a)
    })
    .await;
    assert!(
        policy_names(&client, &b)
            .await
            .contains(&"customer-allow-internet-egress".into())
    );
    wait_members(&client, &zone, 2).await;
    wait_members(&client, &plain, 2).await;
}

/// Every namespace name a policy in `ns` selects (ingress sources and egress
/// destinations), or `None` without that policy.
async fn selected_names(client: &Client, ns: &str, policy: &str) -> Option<Vec<String>> {
    let policy = Api::<NetworkPolicy>::namespaced(client.clone(), ns)
        .get_opt(policy)
        .await
        .ok()??;
    let spec = policy.spec?;
    let peers = spec
        .ingress
        .iter()
        .flatten()
        .flat_map(|r| r.from.iter().flatten())
        .chain(
            spec.egress
                .iter()
                .flatten()
                .flat_map(|r| r.to.iter().flatten()),
        );
    let mut names: Vec<String> = peers
        .filter_map(|p| p.namespace_selector.as_ref()?.match_expressions.clone())
        .flatten()
        .flat_map(|e| e.values.unwrap_or_default())
        .collect();
    names.sort();
    names.dedup();
    Some(names)
}

/// Issue 23, item 4: someone else's namespace `<squatter>-prod` exists; Customer
/// `squatter` asks for `prod` and gets Conflict, and that namespace is selected by no
/// policy at all: not squatter's same-customer policy, not a peer's `allowFrom:
/// {customer: squatter}`, not the group zone.
#[tokio::test]
async fn a_foreign_namespace_a_customer_claims_is_nobodys_peer() {
    let client = setup().await;
    let group = support::unique("zone");
    create_group(
        &client,
        &group,
        json!({"displayName": "Zone", "network": {"allowWithinGroup": true}}),
    )
    .await;
    let squatter = support::unique("sq");
    let foreign = format!("{squatter}-prod");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": foreign}})).unwrap(),
        )
        .await
        .unwrap();
    support::create_customer(
        &client,
        &squatter,
        json!({"displayName": "Squatter", "contactEmail": "ops@sq.example", "group": group,
               "namespaces": [{"name": ""}, {"name": "prod"}]}),
    )
    .await;
    let peer = support::unique("peer");
    support::create_customer(
        &client,
        &peer,
        json!({"displayName": "Peer", "contactEmail": "ops@peer.example", "group": group,
               "network": {"allowFrom": [{"customer": squatter}]}}),
    )
    .await;
    let conflicted = support::wait_condition(&client, &squatter, types::CONFLICT, "True").await;
    let message = &condition(conflicted.status.as_ref(), types::CONFLICT)
        .unwrap()
        .message;
    assert!(message.contains(&foreign), "{message}");
    wait_ready(&client, &peer).await;
    let checks = [
        (
            squatter.clone(),
            "customer-allow-same-customer",
            squatter.clone(),
        ),
        (peer.clone(), "customer-allow-from", squatter.clone()),
        (peer.clone(), "customer-allow-group", squatter.clone()),
        (squatter.clone(), "customer-allow-group", peer.clone()),
    ];
    for (ns, policy, expected) in &checks {
        let names = support::wait_for(&format!("{policy} in {ns} selects {expected}"), || {
            let client = client.clone();
            async move {
                let names = selected_names(&client, ns, policy).await?;
                names.contains(expected).then_some(names)
            }
        })
        .await;
        assert!(
            !names.contains(&foreign),
            "{policy} in {ns} selects the foreign {foreign}: {names:?}"
        );
    }
    let untouched = namespaces.get(&foreign).await.unwrap();
    assert!(untouched.labels().get("customers.dev/customer").is_none());
    let customers: Api<Customer> = Api::all(client.clone());
    for name in [&squatter, &peer] {
        customers
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
        gone(&customers, name).await;
    }
    assert!(
        namespaces
            .get(&foreign)
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_none()
    );
    namespaces
        .delete(&foreign, &DeleteParams::default())
        .await
        .unwrap();
    Api::<CustomerGroup>::all(client.clone())
        .delete(&group, &DeleteParams::default())
        .await
        .unwrap();
}

/// Issue 23, item 14: a group whose defaults make the operator refuse every member is
/// not Ready, and says which members and why.
#[tokio::test]
async fn a_group_whose_defaults_refuse_its_members_is_not_ready() {
    let client = setup().await;
    let group = support::unique("refusing");
    create_group(
        &client,
        &group,
        json!({"displayName": "Refusing",
               "defaults": {"namespaceLabels": {"customers.dev/customer": "someone-else"}}}),
    )
    .await;
    let member = support::unique("rm");
    create_member(&client, &member, &group).await;
    let groups: Api<CustomerGroup> = Api::all(client.clone());
    let ready = support::wait_for("the group reports its refused member", || {
        let (groups, group) = (groups.clone(), group.clone());
        async move {
            let g = groups.get(&group).await.ok()?;
            let status = g.status?;
            let ready = status
                .conditions
                .into_iter()
                .find(|c| c.type_ == types::READY)?;
            (status.members == 1 && ready.reason == "MembersRefused").then_some(ready)
        }
    })
    .await;
    assert_eq!(ready.status, "False");
    assert!(ready.message.contains(&member), "{}", ready.message);
    let customers: Api<Customer> = Api::all(client.clone());
    customers
        .delete(&member, &DeleteParams::default())
        .await
        .unwrap();
    gone(&customers, &member).await;
    groups
        .delete(&group, &DeleteParams::default())
        .await
        .unwrap();
    gone(&groups, &group).await;
}
