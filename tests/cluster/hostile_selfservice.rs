//! Hostile users of self-service (issue 22, part 6), as the test apiserver's token users
//! with the chart's roles: a partner's admin (alice) and a customer's admin (carol) try
//! to reach another partner's or customer's objects, raise their own quota, lift a
//! freeze, join a group they may not, and open another customer's network. Each attempt
//! is refused (403 from RBAC, 400 from the schema, or the claim `Refused` naming the
//! field), and the objects of every existing customer keep their uid and
//! resourceVersion throughout. One operator in this test process.

mod support;

use std::time::Duration;

use customer_operator::api::{Customer, CustomerClaim, CustomerGroup, Partner, partner_namespace};
use customer_operator::controller::status::{condition, types};
use k8s_openapi::api::core::v1::{Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use support::{basic, code};

/// `spec` with `extra`'s fields added.
fn with(mut spec: Value, extra: Value) -> Value {
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    spec
}

/// Waits until the claim's Ready condition, for its generation, has this reason (False
/// but for `Reconciled`); returns its message.
async fn wait_claim(client: &Client, namespace: &str, name: &str, reason: &str) -> String {
    let status = if reason == "Reconciled" {
        "True"
    } else {
        "False"
    };
    support::ready_message(&support::wait_claim(client, namespace, name, status, reason).await)
}

async fn create_group(admin: &Client, name: &str) {
    Api::<CustomerGroup>::all(admin.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "customers.dev/v1alpha1", "kind": "CustomerGroup",
                "metadata": {"name": name}, "spec": {"displayName": "Gold"}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
}

/// Freezes the Customer as the platform team does, and waits until it is frozen.
async fn freeze(admin: &Client, name: &str) {
    support::patch_customer_spec(admin, name, json!({"frozen": true})).await;
    support::wait_condition(admin, name, types::FROZEN, "True").await;
}

async fn still_frozen(admin: &Client, name: &str) -> bool {
    let c = Api::<Customer>::all(admin.clone()).get(name).await.unwrap();
    c.spec.frozen && condition(c.status.as_ref(), types::FROZEN).is_some_and(|f| f.status == "True")
}

/// A merge patch of a Customer's spec, as `client`.
async fn patch_customer(client: &Client, name: &str, spec: Value) -> kube::Result<Customer> {
    Api::<Customer>::all(client.clone())
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": spec})),
        )
        .await
}

/// A merge patch raising the pods of the ResourceQuotas in `ns` (listed as `admin`),
/// as `client`.
async fn raise_quota(client: &Client, admin: &Client, ns: &str) -> u16 {
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), ns);
    let names: Vec<String> = Api::<ResourceQuota>::namespaced(admin.clone(), ns)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|q| q.name_any())
        .collect();
    assert!(!names.is_empty(), "a quota in {ns}");
    let mut worst = 0;
    for name in names {
        let patch = Patch::Merge(json!({"spec": {"hard": {"pods": "1000"}}}));
        worst = worst.max(code(
            quotas.patch(&name, &PatchParams::default(), &patch).await,
        ));
    }
    worst
}

/// A NetworkPolicy letting everything into `ns`, created as `client`.
async fn open_namespace(client: &Client, ns: &str) -> u16 {
    let policy: NetworkPolicy = serde_json::from_value(json!({
        "metadata": {"name": "let-everyone-in"},
        "spec": {"podSelector": {}, "ingress": [{}], "egress": [{}],
                 "policyTypes": ["Ingress", "Egress"]}
    }))
    .unwrap();
    code(
        Api::<NetworkPolicy>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &policy)
            .await,
    )
}

/// One refused attempt: what was tried, and how it was refused.
struct Refusals(Vec<String>);

impl Refusals {
    fn status(&mut self, what: &str, got: u16, want: u16) {
        assert_eq!(got, want, "{what}: answered {got}, not {want}");
        self.0.push(format!("{what}: {got}"));
    }
    /// Refused by the apiserver with a message naming `field` (an unknown field in a
    /// server-side apply is answered 500 "field not declared in schema").
    fn named<T>(&mut self, what: &str, result: kube::Result<T>, field: &str) {
        match result {
            Err(kube::Error::Api(s)) if s.message.contains(field) => {
                self.0.push(format!("{what}: {} naming {field}", s.code));
            }
            Err(other) => panic!("{what}: refused without naming {field}: {other}"),
            Ok(_) => panic!("{what}: accepted"),
        }
    }
    /// The claim's Ready condition has `reason`, and its message names `field`.
    fn claim(&mut self, what: &str, reason: &str, message: &str, field: &str) {
        assert!(message.contains(field), "{what}: {message} names {field}");
        self.0.push(format!("{what}: {reason} ({field})"));
    }
}

#[tokio::test]
async fn a_hostile_partner_admin_is_refused_and_changes_nothing() {
    let admin = support::client().await;
    support::operator();
    let (pa, pb, gold) = (
        support::unique("hpa"),
        support::unique("hpb"),
        support::unique("hgold"),
    );
    support::create_partner(
        &admin,
        &pa,
        json!({"displayName": "Acme", "contactEmail": "ops@acme.example",
               "admins": [{"kind": "User", "name": "alice"}],
               "limits": {"maxCustomers": 3, "maxQuota": {"pods": "20"}}}),
    )
    .await;
    support::create_partner(
        &admin,
        &pb,
        json!({"displayName": "Other", "contactEmail": "ops@other.example",
               "admins": [{"kind": "User", "name": "bob"}]}),
    )
    .await;
    create_group(&admin, &gold).await;
    let (ns_a, ns_b) = (partner_namespace(&pa), partner_namespace(&pb));
    let (alice, bob) = (
        support::as_user("alice").await,
        support::as_user("bob").await,
    );
    let (mine, theirs) = (support::unique("hma"), support::unique("hmb"));
    let my_spec = with(
        basic("Mine"),
        json!({"quota": {"hard": {"pods": "10"}}, "namespaces": [{"name": ""}, {"name": "dev"}]}),
    );
    support::apply_claim(&alice, &ns_a, &mine, my_spec.clone())
        .await
        .unwrap();
    support::apply_claim(&bob, &ns_b, &theirs, basic("Theirs"))
        .await
        .unwrap();
    wait_claim(&alice, &ns_a, &mine, "Reconciled").await;
    wait_claim(&bob, &ns_b, &theirs, "Reconciled").await;
    let both = [mine.clone(), theirs.clone()];
    let before = support::snapshot(&admin, &both).await;
    let my_customer = Api::<Customer>::all(admin.clone())
        .get(&mine)
        .await
        .unwrap();
    let mut refusals = Refusals(Vec::new());

    // Another partner's customers: its namespace, its claims, its Customer, its
    // customer's namespace, and a claim of hers named like its customer.
    refusals.status(
        "a claim in the other partner's namespace",
        code(support::apply_claim(&alice, &ns_b, &theirs, basic("Taken")).await),
        403,
    );
    refusals.status(
        "reading the other partner's claim",
        code(
            Api::<CustomerClaim>::namespaced(alice.clone(), &ns_b)
                .get(&theirs)
                .await,
        ),
        403,
    );
    refusals.status(
        "changing the other partner's Customer",
        code(patch_customer(&alice, &theirs, json!({"displayName": "Mine now"})).await),
        403,
    );
    refusals.status(
        "reading the other partner's customer's namespace",
        code(Api::<Namespace>::all(alice.clone()).get(&theirs).await),
        403,
    );
    refusals.status(
        "a NetworkPolicy in the other partner's customer's namespace",
        open_namespace(&alice, &theirs).await,
        403,
    );
    let within_bounds = with(basic("Taken"), json!({"quota": {"hard": {"pods": "10"}}}));
    support::apply_claim(&alice, &ns_a, &theirs, within_bounds)
        .await
        .unwrap();
    let message = wait_claim(&alice, &ns_a, &theirs, "Conflict").await;
    refusals.claim(
        "a claim of hers named like the other partner's customer",
        "Conflict",
        &message,
        "left untouched",
    );
    Api::<CustomerClaim>::namespaced(alice.clone(), &ns_a)
        .delete(&theirs, &Default::default())
        .await
        .unwrap();

    // Her own customer's quota, group and network beyond her partner's bounds.
    let raised = with(my_spec.clone(), json!({"quota": {"hard": {"pods": "50"}}}));
    support::apply_claim(&alice, &ns_a, &mine, raised)
        .await
        .unwrap();
    let message = wait_claim(&alice, &ns_a, &mine, "Refused").await;
    refusals.claim(
        "raising her customer's quota by its claim",
        "Refused",
        &message,
        "spec.quota.hard.pods",
    );
    refusals.status(
        "raising the quota in her customer's namespace",
        raise_quota(&alice, &admin, &mine).await,
        403,
    );
    refusals.status(
        "raising her customer's quota on the Customer",
        code(patch_customer(&alice, &mine, json!({"quota": {"hard": {"pods": "50"}}})).await),
        403,
    );
    let total = with(
        my_spec.clone(),
        json!({"quota": {"hard": {"pods": "10"}, "total": {"pods": "100"}}}),
    );
    support::apply_claim(&alice, &ns_a, &mine, total)
        .await
        .unwrap();
    let message = wait_claim(&alice, &ns_a, &mine, "Refused").await;
    refusals.claim(
        "a whole-customer quota above her partner's bound",
        "Refused",
        &message,
        "spec.quota.total.pods",
    );
    let grouped = with(my_spec.clone(), json!({"group": gold}));
    support::apply_claim(&alice, &ns_a, &mine, grouped)
        .await
        .unwrap();
    let message = wait_claim(&alice, &ns_a, &mine, "Refused").await;
    refusals.claim(
        "joining a group her partner does not allow",
        "Refused",
        &message,
        "spec.group",
    );
    let open = with(my_spec.clone(), json!({"network": {"isolation": "None"}}));
    support::apply_claim(&alice, &ns_a, &mine, open)
        .await
        .unwrap();
    let message = wait_claim(&alice, &ns_a, &mine, "Refused").await;
    refusals.claim(
        "lifting her customer's isolation",
        "Refused",
        &message,
        "spec.network.isolation",
    );
    refusals.status(
        "a NetworkPolicy in her own customer's namespace",
        open_namespace(&alice, &mine).await,
        403,
    );
    // A connection to the other partner's customer: pending its consent; the other
    // customer's policies (its egress toward hers included) stay as they were.
    let connect = with(
        my_spec.clone(),
        json!({"network": {"allowFrom": [{"customer": theirs}]}}),
    );
    support::apply_claim(&alice, &ns_a, &mine, connect)
        .await
        .unwrap();
    let message = wait_claim(&alice, &ns_a, &mine, "ConnectionsPending").await;
    refusals.claim(
        "opening a connection with the other partner's customer",
        "ConnectionsPending",
        &message,
        "waiting for its consent",
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let theirs_now = support::snapshot(&admin, std::slice::from_ref(&theirs)).await;
    let theirs_before: std::collections::BTreeMap<_, _> = before
        .iter()
        .filter(|((_, ns, _), _)| ns.starts_with(&theirs) || ns.is_empty())
        .filter(|((kind, _, name), _)| kind != "Namespace" || name.starts_with(&theirs))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(
        support::snapshot_diff(&theirs_before, &theirs_now),
        Vec::<String>::new(),
        "the other partner's customer is untouched by her connection"
    );
    support::apply_claim(&alice, &ns_a, &mine, my_spec.clone())
        .await
        .unwrap();
    wait_claim(&alice, &ns_a, &mine, "Reconciled").await;
    let after = support::snapshot(&admin, &both).await;
    assert_eq!(
        support::snapshot_diff(&before, &after),
        Vec::<String>::new(),
        "no object of either customer changed"
    );
    let my_customer_now = Api::<Customer>::all(admin.clone())
        .get(&mine)
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&my_customer_now.spec).unwrap(),
        serde_json::to_value(&my_customer.spec).unwrap(),
        "her Customer's spec is as her bounded claim made it"
    );

    // A freeze the platform team set: she can neither lift it by her claim nor on the
    // Customer.
    freeze(&admin, &mine).await;
    let frozen = support::snapshot(&admin, &both).await;
    refusals.named(
        "lifting the freeze by her claim (no such field)",
        support::apply_claim(
            &alice,
            &ns_a,
            &mine,
            with(my_spec.clone(), json!({"frozen": false})),
        )
        .await,
        "frozen",
    );
    refusals.status(
        "lifting the freeze on the Customer",
        code(patch_customer(&alice, &mine, json!({"frozen": false})).await),
        403,
    );
    refusals.status(
        "changing the Partner's limits",
        code(
            Api::<Partner>::all(alice.clone())
                .patch(
                    &pa,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"limits": {"maxCustomers": 100}}})),
                )
                .await,
        ),
        403,
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(still_frozen(&admin, &mine).await, "still frozen");
    assert_eq!(
        support::snapshot_diff(&frozen, &support::snapshot(&admin, &both).await),
        Vec::<String>::new(),
        "no object of either customer changed while frozen"
    );
    support::figures(&format!(
        "hostile partner admin: {} attempts refused, 0 objects of 2 customers changed: {}",
        refusals.0.len(),
        refusals.0.join("; ")
    ));

    support::patch_customer_spec(&admin, &mine, json!({"frozen": false})).await;
    for (client, ns) in [(&alice, &ns_a), (&bob, &ns_b)] {
        let claims: Api<CustomerClaim> = Api::namespaced(client.clone(), ns);
        for c in claims.list(&Default::default()).await.unwrap() {
            let _ = claims.delete(&c.name_any(), &Default::default()).await;
        }
    }
    let partners: Api<Partner> = Api::all(admin.clone());
    for p in [&pa, &pb] {
        let _ = partners.delete(p, &Default::default()).await;
        support::gone(&partners, p).await;
    }
    let _ = Api::<CustomerGroup>::all(admin.clone())
        .delete(&gold, &Default::default())
        .await;
}

#[tokio::test]
async fn a_hostile_customer_admin_using_self_service_is_refused_and_changes_nothing() {
    let admin = support::client().await;
    support::operator();
    let (parent, other, gold) = (
        support::unique("hcp"),
        support::unique("hco"),
        support::unique("hcgold"),
    );
    create_group(&admin, &gold).await;
    support::create_customer(
        &admin,
        &parent,
        json!({"displayName": "Parent", "contactEmail": "p@x.example",
               "quota": {"hard": {"pods": "10"}},
               "access": {"admins": [{"kind": "User", "name": "carol"}]}}),
    )
    .await;
    support::create_customer(&admin, &other, basic("Other")).await;
    support::wait_condition(&admin, &parent, types::READY, "True").await;
    support::wait_condition(&admin, &other, types::READY, "True").await;
    let carol = support::as_user("carol").await;
    let both = [parent.clone(), other.clone()];
    let before = support::snapshot(&admin, &both).await;
    let mut refusals = Refusals(Vec::new());

    // The other customer: claims and users in its namespace, its Customer, its network.
    refusals.status(
        "an inner claim in the other customer's namespace",
        code(support::apply_claim(&carol, &other, "stolen", basic("Stolen")).await),
        403,
    );
    refusals.status(
        "CustomerUsers in the other customer's namespace",
        code(
            Api::<customer_operator::api::CustomerUsers>::namespaced(carol.clone(), &other)
                .patch(
                    "people",
                    &PatchParams::apply("hostile-test"),
                    &Patch::Apply(json!({
                        "apiVersion": "customers.dev/v1alpha1", "kind": "CustomerUsers",
                        "metadata": {"name": "people"},
                        "spec": {"admins": [{"kind": "User", "name": "carol"}]}
                    })),
                )
                .await,
        ),
        403,
    );
    refusals.status(
        "changing the other Customer",
        code(patch_customer(&carol, &other, json!({"displayName": "Mine"})).await),
        403,
    );
    refusals.status(
        "a NetworkPolicy in the other customer's namespace",
        open_namespace(&carol, &other).await,
        403,
    );

    // Her own customer: its quota, its group, its isolation, directly or through an
    // inner customer.
    refusals.status(
        "raising the quota in her namespace",
        raise_quota(&carol, &admin, &parent).await,
        403,
    );
    refusals.status(
        "raising the quota on her Customer",
        code(
            patch_customer(
                &carol,
                &parent,
                json!({"quota": {"hard": {"pods": "1000"}}}),
            )
            .await,
        ),
        403,
    );
    refusals.status(
        "a NetworkPolicy in her own namespace",
        open_namespace(&carol, &parent).await,
        403,
    );
    let inner = format!("{parent}-in");
    for (extra, field, what) in [
        (
            json!({"quota": {"hard": {"pods": "50"}}}),
            "spec.quota",
            "an inner customer with more quota than hers",
        ),
        (
            json!({"group": gold}),
            "spec.group",
            "an inner customer in another group",
        ),
        (
            json!({"network": {"isolation": "None"}}),
            "spec.network.isolation",
            "an inner customer less isolated than hers",
        ),
    ] {
        support::apply_claim(&carol, &parent, &inner, with(basic("Inner"), extra))
            .await
            .unwrap();
        let message = wait_claim(&carol, &parent, &inner, "Refused").await;
        refusals.claim(what, "Refused", &message, field);
        assert!(
            Api::<Customer>::all(admin.clone())
                .get_opt(&inner)
                .await
                .unwrap()
                .is_none(),
            "{what}: no Customer made"
        );
    }
    Api::<CustomerClaim>::namespaced(carol.clone(), &parent)
        .delete(&inner, &Default::default())
        .await
        .unwrap();
    support::gone(
        &Api::<CustomerClaim>::namespaced(admin.clone(), &parent),
        &inner,
    )
    .await;
    let after = support::snapshot(&admin, &both).await;
    assert_eq!(
        support::snapshot_diff(&before, &after),
        Vec::<String>::new(),
        "no object of either customer changed"
    );

    // Frozen by the platform team: she cannot lift it, nor make anything meanwhile.
    freeze(&admin, &parent).await;
    let frozen = support::snapshot(&admin, &both).await;
    refusals.status(
        "lifting the freeze on her Customer",
        code(patch_customer(&carol, &parent, json!({"frozen": false})).await),
        403,
    );
    let claims: Api<CustomerClaim> = Api::namespaced(carol.clone(), &parent);
    let refused_claim = support::wait_for("carol's claims refused while frozen", || {
        let claims = claims.clone();
        async move {
            let dry = PostParams {
                dry_run: true,
                ..Default::default()
            };
            let claim: CustomerClaim = serde_json::from_value(json!({
                "apiVersion": "customers.dev/v1alpha1", "kind": "CustomerClaim",
                "metadata": {"name": "while-frozen"}, "spec": basic("While frozen")
            }))
            .unwrap();
            let got = code(claims.create(&dry, &claim).await);
            (got != 0).then_some(got)
        }
    })
    .await;
    refusals.status("an inner claim while frozen", refused_claim, 403);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(still_frozen(&admin, &parent).await, "still frozen");
    assert_eq!(
        support::snapshot_diff(&frozen, &support::snapshot(&admin, &both).await),
        Vec::<String>::new(),
        "no object of either customer changed while frozen"
    );
    support::figures(&format!(
        "hostile customer admin (self-service): {} attempts refused, 0 objects of 2 \
         customers changed: {}",
        refusals.0.len(),
        refusals.0.join("; ")
    ));
    support::patch_customer_spec(&admin, &parent, json!({"frozen": false})).await;
    support::delete_customers(&admin, &both).await;
    let _ = Api::<CustomerGroup>::all(admin.clone())
        .delete(&gold, &Default::default())
        .await;
}
