//! Inner customers and partners against the real test control plane: parent admins all
//! the way down a three-level hierarchy, a refused cycle that takes back what it granted
//! and changes nothing else, deletion
//! from the bottom up, and a partner change that takes every role from the old
//! partner's consultants. One operator in this test process.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use customer_operator::api::{Customer, LABEL_CUSTOMER, LABEL_PARTNER};
use customer_operator::controller::status::{condition, types};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{DeleteParams, ListParams};
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use support::{create_customer, patch_customer_spec, wait_condition};

async fn setup() -> Client {
    let client = support::client().await;
    support::operator();
    client
}

/// Subjects of a binding in a namespace, as `Kind name`, sorted.
async fn subjects(client: &Client, ns: &str, binding: &str) -> Option<Vec<String>> {
    let rb = Api::<RoleBinding>::namespaced(client.clone(), ns)
        .get_opt(binding)
        .await
        .ok()??;
    let mut out: Vec<String> = rb
        .subjects
        .unwrap_or_default()
        .iter()
        .map(|s| format!("{} {}", s.kind, s.name))
        .collect();
    out.sort();
    Some(out)
}

async fn wait_subjects(client: &Client, ns: &str, binding: &str, want: Option<Vec<&str>>) {
    let want: Option<Vec<String>> = want.map(|w| w.into_iter().map(String::from).collect());
    let want = &want;
    support::wait_for(&format!("{binding} in {ns} = {want:?}"), || async move {
        (subjects(client, ns, binding).await == *want).then_some(())
    })
    .await;
}

/// Every object the operator keeps in these namespaces (and the namespaces), with its
/// resourceVersion.
async fn snapshot(client: &Client, namespaces: &[&str]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for ns in namespaces {
        let namespace = Api::<Namespace>::all(client.clone()).get(ns).await.unwrap();
        out.insert(
            format!("Namespace {ns}"),
            namespace.resource_version().unwrap(),
        );
        let lp = ListParams::default();
        for p in Api::<NetworkPolicy>::namespaced(client.clone(), ns)
            .list(&lp)
            .await
            .unwrap()
        {
            out.insert(
                format!("NetworkPolicy {ns}/{}", p.name_any()),
                p.resource_version().unwrap(),
            );
        }
        for b in Api::<RoleBinding>::namespaced(client.clone(), ns)
            .list(&lp)
            .await
            .unwrap()
        {
            out.insert(
                format!("RoleBinding {ns}/{}", b.name_any()),
                b.resource_version().unwrap(),
            );
        }
    }
    out
}

#[tokio::test]
async fn three_levels_grant_top_admins_all_the_way_down_refuse_a_cycle_and_delete_bottom_up() {
    let client = setup().await;
    let customers: Api<Customer> = Api::all(client.clone());
    let (top, mid, leaf) = (
        support::unique("top"),
        support::unique("mid"),
        support::unique("leaf"),
    );
    create_customer(
        &client,
        &top,
        json!({"displayName": "Top", "contactEmail": "ops@top.example",
               "access": {"admins": [{"kind": "User", "name": "hanna"}]}}),
    )
    .await;
    create_customer(
        &client,
        &mid,
        json!({"displayName": "Mid", "contactEmail": "ops@mid.example", "parent": top,
               "access": {"admins": [{"kind": "User", "name": "dirk"}]}}),
    )
    .await;
    create_customer(
        &client,
        &leaf,
        json!({"displayName": "Leaf", "contactEmail": "ops@leaf.example", "parent": mid}),
    )
    .await;
    for name in [&top, &mid, &leaf] {
        wait_condition(&client, name, types::READY, "True").await;
    }
    let parents = "customer-parent-admins";
    wait_subjects(
        &client,
        &leaf,
        parents,
        Some(vec!["User dirk", "User hanna"]),
    )
    .await;
    wait_subjects(&client, &mid, parents, Some(vec!["User hanna"])).await;
    wait_subjects(&client, &top, parents, None).await;
    let binding = Api::<RoleBinding>::namespaced(client.clone(), &leaf)
        .get(parents)
        .await
        .unwrap();
    assert_eq!(binding.role_ref.name, "customer-admin");

    // A cycle (top under leaf) is refused; it takes back what the refused parents
    // granted (the parent admins' bindings of mid and leaf) and changes nothing else.
    let all = [top.as_str(), mid.as_str(), leaf.as_str()];
    let mut before = snapshot(&client, &all).await;
    before.retain(|key, _| !key.ends_with(&format!("/{parents}")));
    patch_customer_spec(&client, &top, json!({"parent": leaf})).await;
    let refused = support::wait_for("top refused as a cycle", || {
        let customers = customers.clone();
        let top = top.clone();
        async move {
            let c = customers.get(&top).await.ok()?;
            let ready = condition(c.status.as_ref(), types::READY)?;
            (ready.reason == "ParentCycle").then(|| ready.message.clone())
        }
    })
    .await;
    assert!(
        refused.contains(&leaf) && refused.contains(&mid),
        "{refused}"
    );
    support::event_seen(&client, &top, "Warning", "ParentCycle").await;
    // Several resyncs (3 s each) pass over the refused spec.
    tokio::time::sleep(Duration::from_secs(7)).await;
    for name in [&mid, &leaf] {
        wait_subjects(&client, name, parents, None).await;
    }
    assert_eq!(snapshot(&client, &all).await, before);
    patch_customer_spec(&client, &top, json!({"parent": null})).await;
    wait_condition(&client, &top, types::READY, "True").await;
    wait_subjects(&client, &mid, parents, Some(vec!["User hanna"])).await;

    // Deleting the top removes the leaf's namespace, then the middle's, then its own.
    let selector = format!("{LABEL_CUSTOMER} in ({top},{mid},{leaf})");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut events = watcher(namespaces, watcher::Config::default().labels(&selector)).boxed();
    // Skip the initial listing.
    while let Some(event) = events.try_next().await.unwrap() {
        if matches!(event, Event::InitDone) {
            break;
        }
    }
    customers
        .delete(&top, &DeleteParams::default())
        .await
        .unwrap();
    let mut order: Vec<(String, &str)> = Vec::new();
    let mut gone = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while gone < 3 {
        let event = tokio::time::timeout_at(deadline, events.try_next())
            .await
            .expect("namespaces deleted within 120 s")
            .unwrap()
            .expect("watch goes on");
        match event {
            Event::Apply(ns) if ns.metadata.deletion_timestamp.is_some() => {
                order.push((ns.name_any(), "deleting"))
            }
            Event::Delete(ns) => {
                order.push((ns.name_any(), "gone"));
                gone += 1;
            }
            _ => {}
        }
    }
    let first = |name: &str, what: &str| {
        order
            .iter()
            .position(|(n, w)| n == name && *w == what)
            .unwrap_or_else(|| panic!("{name} {what} not seen in {order:?}"))
    };
    assert!(
        first(&leaf, "gone") < first(&mid, "deleting"),
        "leaf before mid: {order:?}"
    );
    assert!(
        first(&mid, "gone") < first(&top, "deleting"),
        "mid before top: {order:?}"
    );
    for name in [&top, &mid, &leaf] {
        support::wait_for(&format!("Customer {name} gone"), || {
            let customers = customers.clone();
            async move { customers.get_opt(name).await.ok()?.is_none().then_some(()) }
        })
        .await;
    }
}

#[tokio::test]
async fn a_partner_change_takes_every_role_from_the_old_partners_consultants() {
    let client = setup().await;
    let customers: Api<Customer> = Api::all(client.clone());
    let name = support::unique("partnered");
    let ns_b = format!("{name}-b");
    create_customer(
        &client,
        &name,
        json!({"displayName": "Partnered", "contactEmail": "ops@partnered.example",
               "namespaces": [{"name": ""}, {"name": "b"}],
               "partner": {"name": "alpha",
                           "securityConsultants": [{"kind": "User", "name": "carol"},
                                                   {"kind": "User", "name": "cid"}]}}),
    )
    .await;
    let ready = wait_condition(&client, &name, types::READY, "True").await;
    assert_eq!(ready.status.unwrap().partner.as_deref(), Some("alpha"));
    let consultants = "customer-security-consultants";
    for ns in [name.as_str(), ns_b.as_str()] {
        wait_subjects(
            &client,
            ns,
            consultants,
            Some(vec!["User carol", "User cid"]),
        )
        .await;
        let rb = Api::<RoleBinding>::namespaced(client.clone(), ns)
            .get(consultants)
            .await
            .unwrap();
        assert_eq!(rb.role_ref.name, "customer-security-consultant");
        assert_eq!(rb.labels()[LABEL_PARTNER], "alpha");
    }

    // The partner changes and the old consultant list is kept (carol): the CRD's
    // transition rule makes the apiserver refuse it, naming the field.
    let change = json!({"spec": {"partner": {"name": "beta",
        "securityConsultants": [{"kind": "User", "name": "carol"}]}}});
    let patched = customers
        .patch(
            &name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&change),
        )
        .await;
    match patched {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{status:?}");
            assert!(status.message.contains("spec.partner.name"), "{status:?}");
        }
        other => panic!("the apiserver must refuse keeping the consultants: {other:?}"),
    }

    // What the rule cannot see: the partner removed in one edit, another added with the
    // old consultant in the next. The operator refuses to grant carol anything.
    let removed = json!({"spec": {"partner": null}});
    customers
        .patch(
            &name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&removed),
        )
        .await
        .unwrap();
    customers
        .patch(
            &name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&change),
        )
        .await
        .expect("no old partner in the object: the rule lets it through");
    let refused = wait_condition(&client, &name, types::ACCESS_GRANTED, "False").await;
    let granted = condition(refused.status.as_ref(), types::ACCESS_GRANTED).unwrap();
    assert_eq!(granted.reason, "ConsultantsCarriedOver");
    assert!(granted.message.contains("carol"), "{}", granted.message);
    let ready = condition(refused.status.as_ref(), types::READY).unwrap();
    assert_eq!(ready.status, "False");
    let status = refused.status.clone().unwrap();
    assert_eq!(status.partner.as_deref(), Some("beta"));
    let former = status.former_partner.unwrap();
    assert_eq!(former.name, "alpha");
    assert_eq!(former.security_consultants.len(), 2);
    support::event_seen(&client, &name, "Warning", "ConsultantsCarriedOver").await;
    for ns in [name.as_str(), ns_b.as_str()] {
        wait_subjects(&client, ns, consultants, None).await;
    }
    // Resyncs do not bring carol back.
    tokio::time::sleep(Duration::from_secs(7)).await;
    for ns in [name.as_str(), ns_b.as_str()] {
        assert_eq!(subjects(&client, ns, consultants).await, None);
    }

    // The new partner's consultants, named afresh, get their role everywhere.
    patch_customer_spec(
        &client,
        &name,
        json!({"partner": {"name": "beta",
                           "securityConsultants": [{"kind": "User", "name": "erin"}]}}),
    )
    .await;
    let ready = wait_condition(&client, &name, types::READY, "True").await;
    let granted = condition(ready.status.as_ref(), types::ACCESS_GRANTED).unwrap();
    assert_eq!(granted.status, "True");
    for ns in [name.as_str(), ns_b.as_str()] {
        wait_subjects(&client, ns, consultants, Some(vec!["User erin"])).await;
        let rb = Api::<RoleBinding>::namespaced(client.clone(), ns)
            .get(consultants)
            .await
            .unwrap();
        assert_eq!(rb.labels()[LABEL_PARTNER], "beta");
        let namespace = Api::<Namespace>::all(client.clone()).get(ns).await.unwrap();
        assert_eq!(namespace.labels()[LABEL_PARTNER], "beta");
    }
}

/// Issue 23, item 8: a parent cycle made by two edits (child under parent is accepted,
/// then parent under child: what two concurrent edits leave when the operator sees one
/// first) takes back the parent admins' binding it had granted, and
/// once the parent is deleted no binding of its admins is left in the survivor.
#[tokio::test]
async fn a_cycle_made_by_two_edits_takes_back_what_it_granted() {
    let client = setup().await;
    let customers: Api<Customer> = Api::all(client.clone());
    let (upper, lower) = (support::unique("cyup"), support::unique("cylow"));
    create_customer(
        &client,
        &upper,
        json!({"displayName": "Upper", "contactEmail": "ops@up.example",
               "access": {"admins": [{"kind": "User", "name": "uma"}]}}),
    )
    .await;
    create_customer(
        &client,
        &lower,
        json!({"displayName": "Lower", "contactEmail": "ops@low.example",
               "access": {"admins": [{"kind": "User", "name": "lars"}]}}),
    )
    .await;
    wait_condition(&client, &upper, types::READY, "True").await;
    wait_condition(&client, &lower, types::READY, "True").await;
    let parents = "customer-parent-admins";
    // Two concurrent edits: the operator sees one first and accepts it (lower under
    // upper, uma bound in lower), then the other closes the cycle.
    patch_customer_spec(&client, &lower, json!({"parent": upper})).await;
    wait_subjects(&client, &lower, parents, Some(vec!["User uma"])).await;
    patch_customer_spec(&client, &upper, json!({"parent": lower})).await;
    for name in [&upper, &lower] {
        support::wait_for(&format!("{name} refused as a cycle"), || {
            let customers = customers.clone();
            async move {
                let c = customers.get(name).await.ok()?;
                let ready = condition(c.status.as_ref(), types::READY)?;
                (ready.reason == "ParentCycle").then_some(())
            }
        })
        .await;
    }
    for name in [&upper, &lower] {
        wait_subjects(&client, name, parents, None).await;
    }
    customers
        .delete(&upper, &DeleteParams::default())
        .await
        .unwrap();
    support::wait_for("upper gone", || {
        let customers = customers.clone();
        let upper = upper.clone();
        async move {
            customers
                .get_opt(&upper)
                .await
                .ok()?
                .is_none()
                .then_some(())
        }
    })
    .await;
    // Several resyncs pass: nothing grants uma anything in the survivor.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let bindings = Api::<RoleBinding>::namespaced(client.clone(), &lower)
        .list(&ListParams::default())
        .await
        .unwrap();
    for b in &bindings.items {
        let names: Vec<&str> = b
            .subjects
            .iter()
            .flatten()
            .map(|s| s.name.as_str())
            .collect();
        assert!(!names.contains(&"uma"), "{} still binds uma", b.name_any());
    }
    support::delete_customers(&client, &[lower]).await;
}

/// Issue 23, item 13: going back to the former partner (alpha, then beta with no
/// consultants, then alpha again with the same consultant) grants her again, and
/// `status.formerPartner` names beta with no consultants.
#[tokio::test]
async fn going_back_to_the_former_partner_grants_her_again() {
    let client = setup().await;
    let name = support::unique("back");
    let consultants = "customer-security-consultants";
    let alpha = json!({"partner": {"name": "alpha",
        "securityConsultants": [{"kind": "User", "name": "carol"}]}});
    create_customer(
        &client,
        &name,
        json!({"displayName": "Back", "contactEmail": "ops@back.example",
               "partner": alpha["partner"]}),
    )
    .await;
    wait_condition(&client, &name, types::READY, "True").await;
    wait_subjects(&client, &name, consultants, Some(vec!["User carol"])).await;
    patch_customer_spec(
        &client,
        &name,
        json!({"partner": {"name": "beta", "securityConsultants": null}}),
    )
    .await;
    let c = wait_condition(&client, &name, types::READY, "True").await;
    assert_eq!(c.status.unwrap().partner.as_deref(), Some("beta"));
    wait_subjects(&client, &name, consultants, None).await;
    patch_customer_spec(&client, &name, alpha.clone()).await;
    let c = wait_condition(&client, &name, types::READY, "True").await;
    let granted = condition(c.status.as_ref(), types::ACCESS_GRANTED).unwrap();
    assert_eq!(granted.status, "True", "{granted:?}");
    let status = c.status.unwrap();
    assert_eq!(status.partner.as_deref(), Some("alpha"));
    let former = status.former_partner.expect("a former partner");
    assert_eq!(former.name, "beta");
    assert!(former.security_consultants.is_empty(), "{former:?}");
    wait_subjects(&client, &name, consultants, Some(vec!["User carol"])).await;
    support::delete_customers(&client, &[name]).await;
}
