//! Deletion protection, ownership and statuses that tell the truth (issue 23, items 2,
//! 3, 7, 12, 17), against the real test control plane. One operator in this process.

mod support;

use support::gone;

use std::collections::BTreeMap;
use std::time::Duration;

use customer_operator::api::Customer;
use customer_operator::controller::status::{condition, types};
use customer_operator::desired::ownership::ANNOTATION_OWNER_UID;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use support::{create_customer as create, patch_customer_spec as patch_spec, wait_condition};

async fn setup() -> Client {
    let client = support::client().await;
    support::operator();
    client
}

fn spec(namespaces: &[&str], protected: bool) -> Value {
    let namespaces: Vec<Value> = namespaces.iter().map(|n| json!({"name": n})).collect();
    json!({"displayName": "Protection test", "contactEmail": "ops@prot.example",
           "namespaces": namespaces, "deletionProtection": protected,
           "access": {"admins": [{"kind": "User", "name": "alice"}, {"kind": "User", "name": "bob"}]},
           "quota": {"hard": {"pods": "10"}}})
}

/// The uid of each namespace and of the default-deny policy in it, and whether any of
/// them is being deleted.
async fn uids(client: &Client, namespaces: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for ns in namespaces {
        let live = Api::<Namespace>::all(client.clone()).get(ns).await.unwrap();
        assert!(
            live.metadata.deletion_timestamp.is_none(),
            "{ns} is being deleted"
        );
        out.insert(ns.clone(), live.uid().unwrap());
        let deny = Api::<NetworkPolicy>::namespaced(client.clone(), ns)
            .get("customer-default-deny")
            .await
            .unwrap();
        assert!(deny.metadata.deletion_timestamp.is_none());
        out.insert(format!("{ns}/customer-default-deny"), deny.uid().unwrap());
    }
    out
}

async fn admins(client: &Client, ns: &str) -> Option<Vec<String>> {
    let rb = Api::<RoleBinding>::namespaced(client.clone(), ns)
        .get_opt("customer-admins")
        .await
        .ok()??;
    let mut names: Vec<String> = rb.subjects?.into_iter().map(|s| s.name).collect();
    names.sort();
    Some(names)
}

/// Item 2: `kubectl delete customer X --cascade=foreground` (and background, and
/// orphan) of a protected Customer deletes nothing: the garbage collector has no
/// ownerReference to follow, every namespace and policy keeps its uid, and the status
/// says nothing is deleted and lists the namespaces as active.
#[tokio::test]
async fn a_protected_customer_keeps_everything_whatever_the_propagation_policy() {
    let client = setup().await;
    let customers: Api<Customer> = Api::all(client.clone());
    let policies = [
        ("fg", DeleteParams::foreground()),
        ("bg", DeleteParams::background()),
        ("or", DeleteParams::orphan()),
    ];
    let mut cases = Vec::new();
    for (tag, params) in policies {
        let name = support::unique(&format!("prot{tag}"));
        create(&client, &name, spec(&["a", "b"], true)).await;
        wait_condition(&client, &name, types::READY, "True").await;
        let namespaces = vec![format!("{name}-a"), format!("{name}-b")];
        let before = uids(&client, &namespaces).await;
        customers.delete(&name, &params).await.unwrap();
        cases.push((name, namespaces, before));
    }
    for (name, _, _) in &cases {
        wait_condition(&client, name, types::DELETION_BLOCKED, "True").await;
    }
    // Long enough for the garbage collector to act on what it could follow.
    tokio::time::sleep(Duration::from_secs(10)).await;
    for (name, namespaces, before) in &cases {
        assert_eq!(&uids(&client, namespaces).await, before, "{name}");
        let c = customers.get(name).await.unwrap();
        let status = c.status.as_ref().unwrap();
        let blocked = condition(Some(status), types::DELETION_BLOCKED).unwrap();
        assert!(
            blocked.message.contains("nothing is deleted"),
            "{}",
            blocked.message
        );
        assert!(
            status.namespaces.iter().all(|n| n.phase == "Active"),
            "{status:?}"
        );
        assert_eq!(
            condition(Some(status), types::NAMESPACES_READY)
                .unwrap()
                .status,
            "True"
        );
    }
    for (name, namespaces, _) in &cases {
        patch_spec(&client, name, json!({"deletionProtection": false})).await;
        gone(&customers, name).await;
        for ns in namespaces {
            gone(&Api::<Namespace>::all(client.clone()), ns).await;
        }
    }
}

/// Item 2, upgrade: a namespace as an earlier version wrote it (an ownerReference to
/// the Customer, no owner annotation) stays the customer's, and the next apply replaces
/// the ownerReference with the annotation; the namespace keeps its uid.
#[tokio::test]
async fn a_namespace_with_the_former_owner_reference_is_taken_over() {
    let client = setup().await;
    let name = support::unique("upgr");
    create(&client, &name, spec(&[""], false)).await;
    let customer = wait_condition(&client, &name, types::READY, "True").await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let live = namespaces.get(&name).await.unwrap();
    let uid = customer.uid().unwrap();
    // What the earlier version applied, with its field manager: labels and an
    // ownerReference, no annotation.
    let former = json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": live.labels(),
            "ownerReferences": [{"apiVersion": "customers.dev/v1alpha1", "kind": "Customer",
                "name": name, "uid": uid, "controller": true, "blockOwnerDeletion": true}]}});
    namespaces
        .patch(
            &name,
            &PatchParams::apply("customer-operator").force(),
            &Patch::Apply(&former),
        )
        .await
        .unwrap();
    // This operator created the namespace with a plain create, whose entry (operation
    // Update) still holds the annotation; an earlier version's namespace has none.
    namespaces
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {ANNOTATION_OWNER_UID: null}}})),
        )
        .await
        .unwrap();
    let upgraded = support::wait_for("the ownerReference replaced by the annotation", || {
        let namespaces = namespaces.clone();
        let (name, uid) = (name.clone(), uid.clone());
        async move {
            let ns = namespaces.get(&name).await.ok()?;
            (ns.owner_references().is_empty()
                && ns.annotations().get(ANNOTATION_OWNER_UID) == Some(&uid))
            .then_some(ns)
        }
    })
    .await;
    assert_eq!(upgraded.uid(), live.uid());
    let c = wait_condition(&client, &name, types::READY, "True").await;
    assert!(condition(c.status.as_ref(), types::CONFLICT).is_none());
    support::delete_customers(&client, &[name]).await;
}

/// Item 3: delete a Customer, then set `deletionProtection: true` while its namespaces
/// terminate: the status says which are gone and which are being deleted,
/// `NamespacesReady` is False, `Terminating` is gone, and switching protection off
/// again finishes the deletion.
#[tokio::test]
async fn protection_switched_on_during_a_deletion_tells_the_truth() {
    let client = setup().await;
    let customers: Api<Customer> = Api::all(client.clone());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let name = support::unique("late");
    create(&client, &name, spec(&["slow", "fast"], false)).await;
    wait_condition(&client, &name, types::READY, "True").await;
    let (slow, fast) = (format!("{name}-slow"), format!("{name}-fast"));
    // Something in `slow` keeps it terminating until the test lets it go.
    let held: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "held",
        "finalizers": ["test.customers.dev/hold"]}}))
    .unwrap();
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &slow);
    config_maps
        .create(&PostParams::default(), &held)
        .await
        .unwrap();

    customers
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    gone(&namespaces, &fast).await;
    support::wait_for("slow terminating", || {
        let namespaces = namespaces.clone();
        let slow = slow.clone();
        async move {
            let ns = namespaces.get(&slow).await.ok()?;
            ns.metadata.deletion_timestamp.map(|_| ())
        }
    })
    .await;
    patch_spec(&client, &name, json!({"deletionProtection": true})).await;
    wait_condition(&client, &name, types::DELETION_BLOCKED, "True").await;
    // The operator's cache may show `fast` terminating a moment after the test saw it
    // gone; the namespace's deletion event brings the status up to date.
    let c = support::wait_for("the status names fast as gone", || {
        let customers = customers.clone();
        let (name, fast) = (name.clone(), fast.clone());
        async move {
            let c = customers.get(&name).await.ok()?;
            let blocked = condition(c.status.as_ref(), types::DELETION_BLOCKED)?;
            blocked
                .message
                .contains(&format!("already gone: {fast}"))
                .then_some(c)
        }
    })
    .await;
    let status = c.status.as_ref().unwrap();
    let blocked = condition(Some(status), types::DELETION_BLOCKED).unwrap();
    assert!(
        blocked.message.contains("nothing more is deleted"),
        "{}",
        blocked.message
    );
    assert!(
        blocked.message.contains(&format!("already gone: {fast}")),
        "{}",
        blocked.message
    );
    assert!(blocked.message.contains(&slow), "{}", blocked.message);
    let ns_ready = condition(Some(status), types::NAMESPACES_READY).unwrap();
    assert_eq!(ns_ready.status, "False", "{ns_ready:?}");
    assert!(condition(Some(status), types::TERMINATING).is_none());
    let phases: BTreeMap<&str, &str> = status
        .namespaces
        .iter()
        .map(|n| (n.name.as_str(), n.phase.as_str()))
        .collect();
    assert_eq!(
        phases,
        BTreeMap::from([(fast.as_str(), "Gone"), (slow.as_str(), "Terminating")])
    );

    // The apiserver finishes what had begun; the status follows.
    config_maps
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    gone(&namespaces, &slow).await;
    support::wait_for("both namespaces reported gone", || {
        let customers = customers.clone();
        let name = name.clone();
        async move {
            let c = customers.get(&name).await.ok()?;
            let all_gone = c.status?.namespaces.iter().all(|n| n.phase == "Gone");
            all_gone.then_some(())
        }
    })
    .await;
    patch_spec(&client, &name, json!({"deletionProtection": false})).await;
    gone(&customers, &name).await;
}

/// Item 7: a namespace dropped from a protected Customer's spec is kept, and its access
/// follows the spec: an admin removed from `spec.access` loses `customer-admin` there
/// too.
#[tokio::test]
async fn a_kept_namespace_follows_the_access_of_the_spec() {
    let client = setup().await;
    let name = support::unique("kept");
    create(&client, &name, spec(&["a", "b"], true)).await;
    wait_condition(&client, &name, types::READY, "True").await;
    let kept = format!("{name}-b");
    assert_eq!(
        admins(&client, &kept).await,
        Some(vec!["alice".into(), "bob".into()])
    );
    let uid = Api::<Namespace>::all(client.clone())
        .get(&kept)
        .await
        .unwrap()
        .uid();
    patch_spec(
        &client,
        &name,
        json!({"namespaces": [{"name": "a"}],
               "access": {"admins": [{"kind": "User", "name": "alice"}]}}),
    )
    .await;
    let c = wait_condition(&client, &name, types::READY, "True").await;
    let ready = condition(c.status.as_ref(), types::READY).unwrap();
    assert_eq!(ready.reason, "NamespacesKept", "{ready:?}");
    for ns in [format!("{name}-a"), kept.clone()] {
        support::wait_for(&format!("only alice is admin in {ns}"), || {
            let client = client.clone();
            let ns = ns.clone();
            async move { (admins(&client, &ns).await? == vec!["alice".to_string()]).then_some(()) }
        })
        .await;
    }
    let live = Api::<Namespace>::all(client.clone())
        .get(&kept)
        .await
        .unwrap();
    assert_eq!(live.uid(), uid);
    assert!(live.metadata.deletion_timestamp.is_none());
    patch_spec(&client, &name, json!({"deletionProtection": false})).await;
    gone(&Api::<Namespace>::all(client.clone()), &kept).await;
    support::delete_customers(&client, &[name]).await;
}

/// Item 12: a RoleBinding `customer-admins` that someone created first with another
/// roleRef makes the apiserver refuse the operator's apply: a new Customer gets a status
/// that says so (Ready=False, ApplyRefused, naming the object, current
/// observedGeneration) and a Warning Event, and its quota and policies are in place.
#[tokio::test]
async fn an_apply_the_apiserver_refuses_shows_in_the_status() {
    let client = setup().await;
    let name = support::unique("refused");
    // A namespace a cluster admin hands over, where someone made `customer-admins` first.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let handed: Namespace = serde_json::from_value(json!({"metadata": {"name": name,
        "annotations": {"customers.dev/adopt": name}}}))
    .unwrap();
    namespaces
        .create(&PostParams::default(), &handed)
        .await
        .unwrap();
    let first: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "customer-admins"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "User", "name": "mallory", "apiGroup": "rbac.authorization.k8s.io"}]
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), &name)
        .create(&PostParams::default(), &first)
        .await
        .unwrap();
    create(&client, &name, spec(&[""], false)).await;
    let c = wait_condition(&client, &name, types::READY, "False").await;
    let ready = condition(c.status.as_ref(), types::READY).unwrap();
    assert_eq!(ready.reason, "ApplyRefused", "{ready:?}");
    assert!(
        ready
            .message
            .contains(&format!("RoleBinding {name}/customer-admins")),
        "{}",
        ready.message
    );
    support::event_seen(&client, &name, "Warning", "ApplyRefused").await;
    let quota = Api::<ResourceQuota>::namespaced(client.clone(), &name)
        .get_opt("customer-quota")
        .await
        .unwrap();
    assert!(quota.is_some(), "no quota");
    let deny = Api::<NetworkPolicy>::namespaced(client.clone(), &name)
        .get_opt("customer-default-deny")
        .await
        .unwrap();
    assert!(deny.is_some(), "no default-deny");
    let untouched = Api::<RoleBinding>::namespaced(client.clone(), &name)
        .get("customer-admins")
        .await
        .unwrap();
    assert_eq!(untouched.role_ref.name, "view");
    support::delete_customers(&client, &[name]).await;
}

/// Item 17: a removed or changed `customers.dev/customer` label on a namespace comes
/// back within a second, like other drift (three times each: the test operator's
/// resync every 3 s must not be what brings it back).
#[tokio::test]
async fn a_removed_customer_label_comes_back() {
    let client = setup().await;
    let name = support::unique("relabel");
    create(&client, &name, spec(&[""], false)).await;
    wait_condition(&client, &name, types::READY, "True").await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for label in [Value::Null, json!("nobody")].iter().cycle().take(6) {
        namespaces
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"metadata": {"labels": {"customers.dev/customer": label}}})),
            )
            .await
            .unwrap();
        let back = || {
            let namespaces = namespaces.clone();
            let name = name.clone();
            async move {
                let ns = namespaces.get(&name).await.ok()?;
                (ns.labels().get("customers.dev/customer") == Some(&name)).then_some(())
            }
        };
        support::wait_within(
            Duration::from_secs(1),
            &format!("the label back after {label}"),
            back,
        )
        .await;
    }
    support::delete_customers(&client, &[name]).await;
}

/// Issue 23, item 15: while a ClusterRole the bindings refer to is missing,
/// `AccessGranted` is False with reason RolesMissing naming it; it turns True when the
/// role appears.
#[tokio::test]
async fn access_is_not_granted_while_a_bound_role_is_missing() {
    use k8s_openapi::api::rbac::v1::ClusterRole;
    let client = setup().await;
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let kept = roles.get("customer-view").await.unwrap();
    roles
        .delete("customer-view", &DeleteParams::default())
        .await
        .unwrap();
    let name = support::unique("roles");
    let mut with_viewer = spec(&[""], false);
    with_viewer["access"]["viewers"] = json!([{"kind": "User", "name": "vic"}]);
    create(&client, &name, with_viewer).await;
    let c = wait_condition(&client, &name, types::ACCESS_GRANTED, "False").await;
    let granted = condition(c.status.as_ref(), types::ACCESS_GRANTED).unwrap();
    assert_eq!(granted.reason, "RolesMissing", "{granted:?}");
    assert!(
        granted.message.contains("customer-view"),
        "{}",
        granted.message
    );
    assert!(
        !granted.message.contains("customer-admin"),
        "{}",
        granted.message
    );
    support::event_seen(&client, &name, "Warning", "RolesMissing").await;
    let mut restored = kept.clone();
    restored.metadata = kube::api::ObjectMeta {
        name: kept.metadata.name.clone(),
        labels: kept.metadata.labels.clone(),
        annotations: kept.metadata.annotations.clone(),
        ..Default::default()
    };
    roles
        .create(&PostParams::default(), &restored)
        .await
        .unwrap();
    let c = wait_condition(&client, &name, types::ACCESS_GRANTED, "True").await;
    assert_eq!(
        condition(c.status.as_ref(), types::ACCESS_GRANTED)
            .unwrap()
            .reason,
        "BindingsApplied"
    );
    support::delete_customers(&client, &[name]).await;
}
