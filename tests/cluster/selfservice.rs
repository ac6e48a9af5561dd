//! Self-service against the real test control plane, acting as its token users: a
//! partner's admin (alice; bob for a second partner) requests customers through
//! CustomerClaims in her partner's namespace, within her partner's bounds and count;
//! a customer's admin (carol) requests inner customers and adds a viewer (dave) through
//! CustomerUsers; each sees what is hers and gets 403 for everything else. Connections
//! across partners open only with both sides' consent; deleting a claim deletes its
//! Customer unless the platform team protected it; deleting a Partner follows its
//! deletionPolicy. One operator in this test process.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use customer_operator::api::{
    Customer, CustomerClaim, CustomerUsers, LABEL_CLAIM_NAME, Partner, partner_namespace,
};
use customer_operator::controller::status::types;
use customer_operator::desired::network::{ALLOW_FROM, ALLOW_TO_PEERS};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{ListParams, Patch, PatchParams, PostParams, WatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

async fn setup() -> Client {
    let client = support::client().await;
    support::operator();
    client
}

use support::{basic, code};

async fn customer(client: &Client, name: &str) -> Option<Customer> {
    Api::<Customer>::all(client.clone())
        .get_opt(name)
        .await
        .unwrap()
}

async fn delete_partner_and_wait(client: &Client, name: &str) {
    let partners: Api<Partner> = Api::all(client.clone());
    let _ = partners.delete(name, &Default::default()).await;
    support::gone(&partners, name).await;
}

#[tokio::test]
async fn a_partner_admin_requests_customers_within_her_partners_bounds_only() {
    let admin = setup().await;
    let (pa, pb) = (support::unique("ssa"), support::unique("ssb"));
    support::create_partner(
        &admin,
        &pa,
        json!({
            "displayName": "Acme", "contactEmail": "ops@acme.example",
            "admins": [{"kind": "User", "name": "alice"}],
            "limits": {"maxCustomers": 2, "maxQuota": {"pods": "20", "requests.cpu": "4"}}
        }),
    )
    .await;
    support::create_partner(
        &admin,
        &pb,
        json!({
            "displayName": "Other", "contactEmail": "ops@other.example",
            "admins": [{"kind": "User", "name": "bob"}]
        }),
    )
    .await;
    let (ns_a, ns_b) = (partner_namespace(&pa), partner_namespace(&pb));
    let (alice, bob) = (
        support::as_user("alice").await,
        support::as_user("bob").await,
    );
    let quota = json!({"hard": {"pods": "10", "requests.cpu": "2"}});
    let first = support::unique("ca");
    support::apply_claim(
        &alice,
        &ns_a,
        &first,
        json!({"displayName": "First", "contactEmail": "a@x.example", "quota": quota}),
    )
    .await
    .unwrap();
    let made = support::wait_claim(&alice, &ns_a, &first, "True", "Reconciled").await;
    let status = made.status.clone().unwrap();
    assert_eq!(status.customer.as_deref(), Some(first.as_str()));
    assert_eq!(status.partner.as_deref(), Some(pa.as_str()));
    assert_eq!(status.namespaces.len(), 1, "the claim shows the namespaces");
    assert!(
        status
            .summary
            .as_ref()
            .is_some_and(|s| s.network_policies > 0 && s.quotas > 0)
    );
    let made_customer = customer(&admin, &first).await.unwrap();
    assert_eq!(
        made_customer.spec.partner.as_ref().map(|p| p.name.as_str()),
        Some(pa.as_str())
    );
    assert_eq!(made_customer.labels().get(LABEL_CLAIM_NAME), Some(&first));

    // Another partner's namespace, another partner, a larger quota, another group, a
    // forbidden isolation level: each refused, naming the field, nothing created.
    assert_eq!(
        code(support::apply_claim(&alice, &ns_b, "intruder", basic("Intruder")).await),
        403
    );
    // The partners' namespace names are reserved: the apiserver refuses a Customer or a
    // claim that would take one.
    let reserved = format!("partner-{pb}");
    let customers_as_admin: Api<Customer> = Api::all(admin.clone());
    let squatter: Customer =
        serde_json::from_value(json!({"metadata": {"name": reserved}, "spec": basic("Squatter")}))
            .unwrap();
    let refused = customers_as_admin
        .create(&PostParams::default(), &squatter)
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("reserved"), "{refused}");
    let refused = support::apply_claim(&alice, &ns_a, "partner", basic("Squatter"))
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("reserved"), "{refused}");
    let mut with_partner = basic("P");
    with_partner["partner"] = json!({"name": pb});
    let refusal = support::apply_claim(&alice, &ns_a, "sneaky", with_partner)
        .await
        .unwrap_err()
        .to_string();
    assert!(refusal.contains("spec.partner"), "{refusal}");
    let gold = support::unique("gold");
    Api::<customer_operator::api::CustomerGroup>::all(admin.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "customers.dev/v1alpha1", "kind": "CustomerGroup",
                "metadata": {"name": gold}, "spec": {"displayName": "Gold"}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    for (name, extra, field) in [
        (
            "big",
            json!({"quota": {"hard": {"pods": "50", "requests.cpu": "2"}}}),
            "spec.quota.hard.pods",
        ),
        ("gold", json!({"group": gold, "quota": quota}), "spec.group"),
        (
            "open",
            json!({"network": {"isolation": "None"}, "quota": quota}),
            "spec.network.isolation",
        ),
        (
            "unbounded",
            json!({}),
            "spec.quota (unset: the group's default).hard.pods",
        ),
    ] {
        let name = format!("{first}-{name}");
        let mut spec = basic("Refused");
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        support::apply_claim(&alice, &ns_a, &name, spec)
            .await
            .unwrap();
        let refused = support::wait_claim(&alice, &ns_a, &name, "False", "Refused").await;
        let message = support::ready_message(&refused);
        assert!(message.contains(field), "{name}: {message}");
        assert!(
            customer(&admin, &name).await.is_none(),
            "{name}: no Customer"
        );
        Api::<CustomerClaim>::namespaced(alice.clone(), &ns_a)
            .delete(&name, &Default::default())
            .await
            .unwrap();
    }

    // What is hers she lists, gets and watches; the other partner's requests and every
    // Customer are forbidden, and so are namespaces but her customers'.
    let mine: Api<CustomerClaim> = Api::namespaced(alice.clone(), &ns_a);
    assert!(
        mine.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .any(|c| c.name_any() == first)
    );
    assert_eq!(code(mine.get(&first).await), 0);
    assert_eq!(
        code(mine.watch(&WatchParams::default().timeout(1), "0").await),
        0
    );
    let bobs = support::unique("cb");
    support::apply_claim(&bob, &ns_b, &bobs, basic("Bob's"))
        .await
        .unwrap();
    support::wait_claim(&bob, &ns_b, &bobs, "True", "Reconciled").await;
    let theirs: Api<CustomerClaim> = Api::namespaced(alice.clone(), &ns_b);
    assert_eq!(code(theirs.list(&ListParams::default()).await), 403);
    assert_eq!(code(theirs.get(&bobs).await), 403);
    assert_eq!(
        code(theirs.watch(&WatchParams::default().timeout(1), "0").await),
        403
    );
    let customers: Api<Customer> = Api::all(alice.clone());
    assert_eq!(code(customers.list(&ListParams::default()).await), 403);
    assert_eq!(code(customers.get(&bobs).await), 403);
    assert_eq!(
        code(customers.get(&first).await),
        403,
        "Customers are read through the claims"
    );
    let namespaces: Api<Namespace> = Api::all(alice.clone());
    assert_eq!(
        code(namespaces.get(&first).await),
        0,
        "she reads her customer's namespace"
    );
    assert_eq!(code(namespaces.get(&bobs).await), 403);
    assert_eq!(code(namespaces.list(&ListParams::default()).await), 403);
    assert_eq!(
        code(
            Api::<ConfigMap>::namespaced(alice.clone(), &first)
                .create(&PostParams::default(), &configmap())
                .await
        ),
        403,
        "reading is all she may do there"
    );

    // The count limit: a second customer, then the third waits and creates nothing.
    let second = format!("{first}-2");
    support::apply_claim(
        &alice,
        &ns_a,
        &second,
        json!({"displayName": "Second", "contactEmail": "a@x.example", "quota": quota}),
    )
    .await
    .unwrap();
    support::wait_claim(&alice, &ns_a, &second, "True", "Reconciled").await;
    let third = format!("{first}-3");
    support::apply_claim(
        &alice,
        &ns_a,
        &third,
        json!({"displayName": "Third", "contactEmail": "a@x.example", "quota": quota}),
    )
    .await
    .unwrap();
    let waiting = support::wait_claim(&alice, &ns_a, &third, "False", "LimitReached").await;
    assert!(support::ready_message(&waiting).contains("maxCustomers"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        customer(&admin, &third).await.is_none(),
        "nothing is created past the limit"
    );
    let partner = Api::<Partner>::all(admin.clone()).get(&pa).await.unwrap();
    let in_use = partner.status.unwrap();
    assert_eq!(
        (in_use.in_use.customers, in_use.in_use.max_customers),
        (2, Some(2))
    );
    assert_eq!(in_use.customers, {
        let mut v = vec![first.clone(), second.clone()];
        v.sort();
        v
    });
    // The asset overview, as alice, with her own token: her customer's, and a clear
    // refusal for the other partner's.
    let alice_config = support::kubeconfig().with_file_name("kubeconfig-alice");
    let overview = |namespace: &str, name: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_customer-operator"))
            .args(["overview", name, "-n", namespace, "--kubeconfig"])
            .arg(&alice_config)
            .output()
            .unwrap()
    };
    let hers = overview(&ns_a, &first);
    let text = String::from_utf8_lossy(&hers.stdout);
    assert!(
        hers.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&hers.stderr)
    );
    for shown in ["First", "a@x.example", pa.as_str(), first.as_str()] {
        assert!(text.contains(shown), "the overview shows {shown}: {text}");
    }
    let other = overview(&ns_b, &bobs);
    let refusal = String::from_utf8_lossy(&other.stderr);
    assert_eq!(other.status.code(), Some(1), "{refusal}");
    assert!(
        refusal.contains("forbidden") && refusal.trim().lines().count() == 1,
        "{refusal}"
    );
    // A place freed lets the waiting claim through.
    mine.delete(&second, &Default::default()).await.unwrap();
    support::wait_claim(&alice, &ns_a, &third, "True", "Reconciled").await;

    for (client, ns) in [(&alice, &ns_a), (&bob, &ns_b)] {
        let claims: Api<CustomerClaim> = Api::namespaced(client.clone(), ns);
        for c in claims.list(&ListParams::default()).await.unwrap() {
            claims
                .delete(&c.name_any(), &Default::default())
                .await
                .unwrap();
        }
    }
    for name in [&pa, &pb] {
        delete_partner_and_wait(&admin, name).await;
    }
    let _ = Api::<customer_operator::api::CustomerGroup>::all(admin.clone())
        .delete(&gold, &Default::default())
        .await;
}

fn configmap() -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": "probe"}})).unwrap()
}

#[tokio::test]
async fn a_customer_admin_requests_inner_customers_and_manages_her_own_users() {
    let admin = setup().await;
    let (parent, other) = (support::unique("ssp"), support::unique("sso"));
    support::create_customer(
        &admin,
        &parent,
        json!({
            "displayName": "Parent", "contactEmail": "p@x.example",
            "namespaces": [{"name": ""}, {"name": "dev"}],
            "access": {"admins": [{"kind": "User", "name": "carol"}]}
        }),
    )
    .await;
    support::create_customer(&admin, &other, basic("Other")).await;
    support::wait_condition(&admin, &parent, types::READY, "True").await;
    support::wait_condition(&admin, &other, types::READY, "True").await;
    let (carol, dave) = (
        support::as_user("carol").await,
        support::as_user("dave").await,
    );

    // An inner customer, from a claim in the parent's namespace; the parent's admins
    // (carol) are admins there.
    let inner = format!("{parent}-in");
    support::apply_claim(&carol, &parent, &inner, basic("Inner"))
        .await
        .unwrap();
    let made = support::wait_claim(&carol, &parent, &inner, "True", "Reconciled").await;
    assert_eq!(
        made.status.unwrap().parent.as_deref(),
        Some(parent.as_str())
    );
    assert_eq!(
        customer(&admin, &inner)
            .await
            .unwrap()
            .spec
            .parent
            .as_deref(),
        Some(parent.as_str())
    );
    let in_inner: Api<ConfigMap> = Api::namespaced(carol.clone(), &inner);
    support::wait_for("carol is admin in the inner customer's namespace", || {
        let in_inner = in_inner.clone();
        async move {
            (code(in_inner.create(&PostParams::default(), &configmap()).await) == 0).then_some(())
        }
    })
    .await;
    // No top-level customer, no inner customer of another customer.
    let customers: Api<Customer> = Api::all(carol.clone());
    let top: Customer = serde_json::from_value(
        json!({"metadata": {"name": format!("{parent}-top")}, "spec": basic("Top")}),
    )
    .unwrap();
    assert_eq!(
        code(customers.create(&PostParams::default(), &top).await),
        403
    );
    assert_eq!(
        code(support::apply_claim(&carol, &other, "stolen", basic("Stolen")).await),
        403
    );

    // Her own viewer: dave reads every namespace of the customer, and nothing else.
    let users: Api<CustomerUsers> = Api::namespaced(carol.clone(), &parent);
    users
        .patch("people", &PatchParams::apply("selfservice-test"), &Patch::Apply(json!({
            "apiVersion": "customers.dev/v1alpha1", "kind": "CustomerUsers",
            "metadata": {"name": "people"}, "spec": {"viewers": [{"kind": "User", "name": "dave"}]}
        })))
        .await
        .unwrap();
    let dev = format!("{parent}-dev");
    for ns in [parent.as_str(), dev.as_str()] {
        let reads: Api<ConfigMap> = Api::namespaced(dave.clone(), ns);
        support::wait_for(&format!("dave reads {ns}"), || {
            let reads = reads.clone();
            async move { (code(reads.list(&ListParams::default()).await) == 0).then_some(()) }
        })
        .await;
        assert_eq!(
            code(reads.create(&PostParams::default(), &configmap()).await),
            403,
            "dave only reads {ns}"
        );
    }
    for ns in [other.as_str(), inner.as_str()] {
        let reads: Api<ConfigMap> = Api::namespaced(dave.clone(), ns);
        assert_eq!(
            code(reads.list(&ListParams::default()).await),
            403,
            "dave reads nothing in {ns}"
        );
    }
    // Removing her takes it away everywhere; the platform's access stays.
    users.delete("people", &Default::default()).await.unwrap();
    for ns in [parent.as_str(), dev.as_str()] {
        let reads: Api<ConfigMap> = Api::namespaced(dave.clone(), ns);
        support::wait_for(&format!("dave no longer reads {ns}"), || {
            let reads = reads.clone();
            async move { (code(reads.list(&ListParams::default()).await) == 403).then_some(()) }
        })
        .await;
        let carols: Api<ConfigMap> = Api::namespaced(carol.clone(), ns);
        assert_eq!(
            code(carols.list(&ListParams::default()).await),
            0,
            "carol keeps her access in {ns}"
        );
    }
    Api::<CustomerClaim>::namespaced(carol.clone(), &parent)
        .delete(&inner, &Default::default())
        .await
        .unwrap();
    support::gone(&Api::<Customer>::all(admin.clone()), &inner).await;
    support::delete_customers(&admin, &[parent, other]).await;
}

#[tokio::test]
async fn a_claim_never_touches_a_customer_it_did_not_make() {
    let admin = setup().await;
    let p = support::unique("ssc");
    support::create_partner(&admin, &p, json!({
        "displayName": "C", "contactEmail": "ops@c.example", "admins": [{"kind": "User", "name": "alice"}]
    })).await;
    let taken = support::unique("taken");
    support::create_customer(&admin, &taken, basic("Taken")).await;
    let before = support::settled_customer(&admin, &taken).await;
    let alice = support::as_user("alice").await;
    let ns = partner_namespace(&p);
    support::apply_claim(&alice, &ns, &taken, basic("Mine now"))
        .await
        .unwrap();
    let conflict = support::wait_claim(&alice, &ns, &taken, "False", "Conflict").await;
    assert!(support::ready_message(&conflict).contains("left untouched"));
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = customer(&admin, &taken).await.unwrap();
    assert_eq!(
        after.resource_version(),
        before.resource_version(),
        "the Customer is untouched; before: {}\nafter: {}",
        serde_json::to_string(&before).unwrap(),
        serde_json::to_string(&after).unwrap()
    );
    // Deleting the claim deletes nothing of it either.
    let claims: Api<CustomerClaim> = Api::namespaced(alice.clone(), &ns);
    claims.delete(&taken, &Default::default()).await.unwrap();
    support::gone(&claims, &taken).await;
    assert_eq!(
        customer(&admin, &taken).await.unwrap().resource_version(),
        before.resource_version()
    );
    delete_partner_and_wait(&admin, &p).await;
    support::delete_customers(&admin, &[taken]).await;
}

/// The namespaces the named policy of `ns` names as peers.
async fn peers(client: &Client, ns: &str, policy: &str) -> BTreeSet<String> {
    let Some(policy) = Api::<NetworkPolicy>::namespaced(client.clone(), ns)
        .get_opt(policy)
        .await
        .unwrap()
    else {
        return BTreeSet::new();
    };
    customer_operator::desired::network::peers(&policy.spec.unwrap_or_default())
        .iter()
        .filter_map(|p| p.namespace_selector.clone()?.match_expressions)
        .flatten()
        .flat_map(|e| e.values.unwrap_or_default())
        .collect()
}

async fn wait_peers(client: &Client, ns: &str, policy: &str, peer: &str, present: bool) {
    support::wait_for(
        &format!("{policy} in {ns} names {peer}: {present}"),
        || async move { (peers(client, ns, policy).await.contains(peer) == present).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn a_connection_across_partners_opens_only_with_both_sides_consent() {
    let admin = setup().await;
    let (p1, p2) = (support::unique("ss1"), support::unique("ss2"));
    for (p, user) in [(&p1, "alice"), (&p2, "bob")] {
        support::create_partner(&admin, p, json!({
            "displayName": "P", "contactEmail": "ops@p.example", "admins": [{"kind": "User", "name": user}]
        })).await;
    }
    let (alice, bob) = (
        support::as_user("alice").await,
        support::as_user("bob").await,
    );
    let (ns1, ns2) = (partner_namespace(&p1), partner_namespace(&p2));
    let (a, b) = (support::unique("ssx"), support::unique("ssy"));
    let opens_to = |peer: &str| {
        let mut spec = basic("Conn");
        spec["network"] = json!({"allowFrom": [{"customer": peer}]});
        spec
    };
    support::apply_claim(&alice, &ns1, &a, opens_to(&b))
        .await
        .unwrap();
    support::apply_claim(&bob, &ns2, &b, basic("B"))
        .await
        .unwrap();
    support::wait_claim(&bob, &ns2, &b, "True", "Reconciled").await;
    // Until the operator has seen b's Customer, a reports it missing ("waiting for:
    // Customer ..."); once it has, a waits for b's consent. The second is the answer.
    support::wait_claim_saying(
        &alice,
        &ns1,
        &a,
        "False",
        "ConnectionsPending",
        "waiting for its consent",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !peers(&admin, &a, ALLOW_FROM).await.contains(&b),
        "a's ingress stays closed to b"
    );
    assert!(
        !peers(&admin, &b, ALLOW_TO_PEERS).await.contains(&a),
        "b's egress stays closed to a"
    );
    // b declares it too: both sides open, both ways.
    support::apply_claim(&bob, &ns2, &b, opens_to(&a))
        .await
        .unwrap();
    wait_peers(&admin, &a, ALLOW_FROM, &b, true).await;
    wait_peers(&admin, &b, ALLOW_TO_PEERS, &a, true).await;
    wait_peers(&admin, &b, ALLOW_FROM, &a, true).await;
    wait_peers(&admin, &a, ALLOW_TO_PEERS, &b, true).await;
    support::wait_claim(&alice, &ns1, &a, "True", "Reconciled").await;
    // b withdraws: both close.
    support::apply_claim(&bob, &ns2, &b, basic("B"))
        .await
        .unwrap();
    wait_peers(&admin, &a, ALLOW_FROM, &b, false).await;
    wait_peers(&admin, &b, ALLOW_TO_PEERS, &a, false).await;
    wait_peers(&admin, &b, ALLOW_FROM, &a, false).await;
    wait_peers(&admin, &a, ALLOW_TO_PEERS, &b, false).await;
    for (client, ns, name) in [(&alice, &ns1, &a), (&bob, &ns2, &b)] {
        Api::<CustomerClaim>::namespaced(client.clone(), ns)
            .delete(name, &Default::default())
            .await
            .unwrap();
    }
    for p in [&p1, &p2] {
        delete_partner_and_wait(&admin, p).await;
    }
}

#[tokio::test]
async fn deleting_a_claim_deletes_its_customer_unless_the_platform_protected_it() {
    let admin = setup().await;
    let p = support::unique("ssd");
    support::create_partner(&admin, &p, json!({
        "displayName": "D", "contactEmail": "ops@d.example", "admins": [{"kind": "User", "name": "alice"}]
    })).await;
    let alice = support::as_user("alice").await;
    let ns = partner_namespace(&p);
    let claims: Api<CustomerClaim> = Api::namespaced(alice.clone(), &ns);
    let (plain, kept) = (support::unique("ssg"), support::unique("ssk"));
    for name in [&plain, &kept] {
        support::apply_claim(&alice, &ns, name, basic("D"))
            .await
            .unwrap();
        support::wait_claim(&alice, &ns, name, "True", "Reconciled").await;
    }
    claims.delete(&plain, &Default::default()).await.unwrap();
    support::gone(&Api::<Customer>::all(admin.clone()), &plain).await;
    support::gone(&Api::<Namespace>::all(admin.clone()), &plain).await;
    support::gone(&claims, &plain).await;

    // The platform team protects the other one; the claim's own changes leave that alone.
    support::patch_customer_spec(&admin, &kept, json!({"deletionProtection": true})).await;
    support::apply_claim(&alice, &ns, &kept, basic("D renamed"))
        .await
        .unwrap();
    let customers: Api<Customer> = Api::all(admin.clone());
    support::wait_for("the claim's change reaches the Customer", || {
        let customers = customers.clone();
        let kept = kept.clone();
        async move { (customers.get(&kept).await.ok()?.spec.display_name == "D renamed").then_some(()) }
    })
    .await;
    assert!(
        customer(&admin, &kept)
            .await
            .unwrap()
            .spec
            .deletion_protection,
        "the platform team's field stays"
    );
    claims.delete(&kept, &Default::default()).await.unwrap();
    let blocked = support::wait_claim(&alice, &ns, &kept, "False", "DeletionBlocked").await;
    assert!(support::ready_message(&blocked).contains("deletionProtection"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let still = customer(&admin, &kept).await.unwrap();
    assert!(
        still.metadata.deletion_timestamp.is_none(),
        "nothing is deleted"
    );
    assert!(
        Api::<Namespace>::all(admin.clone())
            .get_opt(&kept)
            .await
            .unwrap()
            .is_some()
    );
    support::patch_customer_spec(&admin, &kept, json!({"deletionProtection": false})).await;
    support::gone(&customers, &kept).await;
    support::gone(&claims, &kept).await;
    delete_partner_and_wait(&admin, &p).await;
}

#[tokio::test]
async fn deleting_a_partner_follows_its_deletion_policy() {
    let admin = setup().await;
    let alice = support::as_user("alice").await;
    let customers: Api<Customer> = Api::all(admin.clone());
    let partners: Api<Partner> = Api::all(admin.clone());
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    for policy in ["Block", "Orphan", "Cascade"] {
        let p = support::unique(&format!("ss{}", policy.to_lowercase()));
        support::create_partner(
            &admin,
            &p,
            json!({
                "displayName": "E", "contactEmail": "ops@e.example",
                "admins": [{"kind": "User", "name": "alice"}], "deletionPolicy": policy
            }),
        )
        .await;
        let ns = partner_namespace(&p);
        let names = [format!("{p}-a"), format!("{p}-b")];
        for name in &names {
            support::apply_claim(&alice, &ns, name, basic("E"))
                .await
                .unwrap();
            support::wait_claim(&alice, &ns, name, "True", "Reconciled").await;
        }
        partners.delete(&p, &Default::default()).await.unwrap();
        match policy {
            "Block" => {
                support::wait_for("DeletionBlocked lists the customers", || {
                    let partners = partners.clone();
                    let p = p.clone();
                    let names = names.clone();
                    async move {
                        let status = partners.get(&p).await.ok()?.status?;
                        let blocked = status
                            .conditions
                            .iter()
                            .find(|c| c.type_ == types::DELETION_BLOCKED)?;
                        names
                            .iter()
                            .all(|n| blocked.message.contains(n.as_str()))
                            .then_some(())
                    }
                })
                .await;
                tokio::time::sleep(Duration::from_secs(3)).await;
                for name in &names {
                    assert!(
                        customer(&admin, name).await.is_some(),
                        "Block deletes nothing"
                    );
                }
                assert!(namespaces.get_opt(&ns).await.unwrap().is_some());
                let claims: Api<CustomerClaim> = Api::namespaced(alice.clone(), &ns);
                for name in &names {
                    claims.delete(name, &Default::default()).await.unwrap();
                }
                support::gone(&partners, &p).await;
                for name in &names {
                    assert!(customer(&admin, name).await.is_none());
                }
            }
            "Orphan" => {
                support::gone(&partners, &p).await;
                support::gone(&namespaces, &ns).await;
                for name in &names {
                    let left = customer(&admin, name)
                        .await
                        .expect("Orphan leaves the Customer");
                    assert!(left.metadata.deletion_timestamp.is_none());
                    assert!(
                        left.labels().get(LABEL_CLAIM_NAME).is_none(),
                        "it is the platform team's now"
                    );
                    assert!(
                        namespaces.get_opt(name).await.unwrap().is_some(),
                        "with its namespace"
                    );
                }
                support::delete_customers(&admin, &names).await;
            }
            _ => {
                support::gone(&partners, &p).await;
                for name in &names {
                    support::gone(&customers, name).await;
                    support::gone(&namespaces, name).await;
                }
                support::gone(&namespaces, &ns).await;
            }
        }
    }
}
