//! The Customer controller against the real test control plane: provisioning, spec
//! changes and pruning, drift repair, conflicts and adoption, deletion and its safety.
//! One operator runs in this test process for all tests; each test uses its own names.

mod support;

use support::converged::{keys, labelled};
use support::{create_customer as create, patch_customer_spec as patch_spec, wait_condition};

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use customer_operator::api::{Customer, LABEL_CUSTOMER};
use customer_operator::controller::status::{condition, types};
use customer_operator::settings::Settings;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

fn settings() -> Settings {
    Settings {
        platform_namespaces: vec!["ingress-nginx".into()],
        ..Settings::default()
    }
}

async fn setup() -> Client {
    let client = support::client().await;
    support::operator();
    client
}

/// Every object of the customer in the cluster matches the desired form.
async fn assert_cluster_matches_render(client: &Client, customer: &Customer) {
    let dir = support::converged::directory(client).await;
    let differences = support::converged::differences(client, customer, &dir, &settings()).await;
    assert!(
        differences.is_empty(),
        "differ from render: {differences:?}"
    );
}

async fn namespace_gone(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    support::wait_for(&format!("namespace {name} gone"), || {
        let api = api.clone();
        async move {
            api.get_opt(name)
                .await
                .ok()
                .and_then(|n| n.is_none().then_some(()))
        }
    })
    .await;
}

async fn customer_gone(client: &Client, name: &str) {
    let customers: Api<Customer> = Api::all(client.clone());
    support::wait_for(&format!("customer {name} gone"), || {
        let customers = customers.clone();
        async move {
            customers
                .get_opt(name)
                .await
                .ok()
                .and_then(|c| c.is_none().then_some(()))
        }
    })
    .await;
}

fn spec_two_namespaces() -> Value {
    json!({
        "displayName": "Controller test", "contactEmail": "ops@ctl.example",
        "namespaces": [{"name": "prod"}, {"name": "dev"}],
        "access": {"admins": [{"kind": "User", "name": "alice"}, {"kind": "User", "name": "bob"}],
                   "viewers": [{"kind": "User", "name": "vic"}]},
        "network": {"isolation": "Standard"},
        "quota": {"hard": {"pods": "10", "requests.cpu": "1500m"}},
        "limits": [{"type": "Container", "default": {"cpu": "500m", "memory": "256Mi"}}]
    })
}

#[tokio::test]
async fn customer_becomes_ready_with_exactly_what_render_prints() {
    let client = setup().await;
    let name = support::unique("ready");
    create(&client, &name, spec_two_namespaces()).await;
    let customer = wait_condition(&client, &name, types::READY, "True").await;
    let status = customer.status.as_ref().unwrap();
    assert_eq!(status.namespaces.len(), 2);
    let summary = status.summary.as_ref().unwrap();
    assert_eq!(summary.namespaces, 2);
    assert_eq!(summary.network_policies, 2 * 5);
    assert_eq!(summary.role_bindings, 2 * 2);
    assert_eq!(summary.quotas, 2 * 2);
    for type_ in [
        types::NAMESPACES_READY,
        types::NETWORK_ISOLATED,
        types::ACCESS_GRANTED,
    ] {
        assert_eq!(
            condition(Some(status), type_).unwrap().status,
            "True",
            "{type_}"
        );
    }
    assert!(
        customer
            .finalizers()
            .contains(&"customers.dev/cleanup".to_string())
    );
    assert_cluster_matches_render(&client, &customer).await;
}

#[tokio::test]
async fn spec_changes_converge_and_prune_only_what_is_no_longer_asked_for() {
    let client = setup().await;
    let name = support::unique("edit");
    create(&client, &name, spec_two_namespaces()).await;
    wait_condition(&client, &name, types::READY, "True").await;
    // Drop a namespace, go Strict, drop an admin and all viewers.
    patch_spec(
        &client,
        &name,
        json!({
            "namespaces": [{"name": "prod"}],
            "access": {"admins": [{"kind": "User", "name": "alice"}], "viewers": null},
            "network": {"isolation": "Strict"}
        }),
    )
    .await;
    let customer = wait_condition(&client, &name, types::READY, "True").await;
    namespace_gone(&client, &format!("{name}-dev")).await;
    let policies: Vec<NetworkPolicy> = labelled(&client, &name).await;
    let names: BTreeSet<String> = policies.iter().map(|p| p.name_any()).collect();
    assert!(!names.contains("customer-allow-platform"), "{names:?}");
    assert!(
        !names.contains("customer-allow-internet-egress"),
        "{names:?}"
    );
    let bindings: Vec<RoleBinding> = labelled(&client, &name).await;
    assert_eq!(bindings.len(), 1);
    assert_eq!(bindings[0].subjects.as_ref().unwrap().len(), 1);
    assert_cluster_matches_render(&client, &customer).await;
}

/// The operator creates a namespace with a plain create (refused when the name exists),
/// and its first update makes the create's fields the apply's: a label dropped from the
/// spec is then removed, and one managed-fields entry of the operator is left.
#[tokio::test]
async fn a_label_dropped_from_the_spec_leaves_the_namespace_the_operator_created() {
    let client = setup().await;
    let name = support::unique("relabel");
    let ns = format!("{name}-prod");
    create(
        &client,
        &name,
        json!({"displayName": "Relabel", "contactEmail": "ops@relabel.example",
               "namespaces": [{"name": "prod", "labels": {"tier": "gold", "zone": "a"}}]}),
    )
    .await;
    wait_condition(&client, &name, types::READY, "True").await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let entries = |n: &Namespace| -> Vec<(String, String)> {
        n.managed_fields()
            .iter()
            .filter(|m| m.manager.as_deref() == Some("customer-operator"))
            .map(|m| {
                (
                    m.manager.clone().unwrap_or_default(),
                    m.operation.clone().unwrap_or_default(),
                )
            })
            .collect()
    };
    let created = namespaces.get(&ns).await.unwrap();
    assert_eq!(created.labels()["tier"], "gold");
    assert_eq!(
        entries(&created),
        [("customer-operator".to_string(), "Update".to_string())],
        "a plain create"
    );
    patch_spec(
        &client,
        &name,
        json!({"namespaces": [{"name": "prod", "labels": {"zone": "b"}}]}),
    )
    .await;
    support::wait_for("tier dropped, zone b", || {
        let namespaces = namespaces.clone();
        let ns = ns.clone();
        async move {
            let n = namespaces.get(&ns).await.ok()?;
            (!n.labels().contains_key("tier") && n.labels()["zone"] == "b").then_some(())
        }
    })
    .await;
    let updated = namespaces.get(&ns).await.unwrap();
    assert_eq!(
        entries(&updated),
        [("customer-operator".to_string(), "Apply".to_string())],
        "the create's entry became the apply's"
    );
    assert_eq!(updated.uid(), created.uid(), "the same namespace");
}

#[tokio::test]
async fn drift_is_put_back() {
    let client = setup().await;
    let name = support::unique("drift");
    create(&client, &name, spec_two_namespaces()).await;
    wait_condition(&client, &name, types::READY, "True").await;
    let ns = format!("{name}-prod");
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &ns);
    let before = policies.get("customer-default-deny").await.unwrap();
    let started = Instant::now();
    policies
        .delete("customer-default-deny", &DeleteParams::default())
        .await
        .unwrap();
    support::wait_for("deleted policy back", || {
        let policies = policies.clone();
        let old_uid = before.uid();
        async move {
            let p = policies.get_opt("customer-default-deny").await.ok()??;
            (p.uid() != old_uid).then_some(())
        }
    })
    .await;
    let repaired_in = started.elapsed();
    println!("deleted NetworkPolicy restored in {repaired_in:?}");
    assert!(repaired_in < Duration::from_secs(10));

    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), &ns);
    bindings
        .patch(
            "customer-admins",
            &PatchParams::default(),
            &Patch::Merge(&json!({"subjects": [{"kind": "User", "name": "mallory", "apiGroup": "rbac.authorization.k8s.io"}]})),
        )
        .await
        .unwrap();
    support::wait_for("edited binding restored", || {
        let bindings = bindings.clone();
        async move {
            let b = bindings.get("customer-admins").await.ok()?;
            let names: Vec<String> = b.subjects?.into_iter().map(|s| s.name).collect();
            (names == ["alice", "bob"]).then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn foreign_namespace_is_untouched_until_handed_over() {
    let client = setup().await;
    let name = support::unique("clash");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let foreign: Namespace = serde_json::from_value(json!({
        "metadata": {"name": format!("{name}-prod"), "labels": {"team": "someone-else"}}
    }))
    .unwrap();
    let foreign = namespaces
        .create(&PostParams::default(), &foreign)
        .await
        .unwrap();
    create(&client, &name, spec_two_namespaces()).await;
    let customer = wait_condition(&client, &name, types::CONFLICT, "True").await;
    let conflict = condition(customer.status.as_ref(), types::CONFLICT).unwrap();
    assert!(
        conflict.message.contains(&format!("{name}-prod")),
        "{}",
        conflict.message
    );
    support::event_seen(&client, &name, "Warning", "NamespaceNotOwned").await;
    // The rest converges: the other namespace is there with its policies.
    wait_condition(&client, &name, types::NAMESPACES_READY, "False").await;
    support::wait_for("dev namespace policies", || {
        let client = client.clone();
        let ns = format!("{name}-dev");
        async move {
            let p: Api<NetworkPolicy> = Api::namespaced(client, &ns);
            p.get_opt("customer-default-deny").await.ok()?.map(|_| ())
        }
    })
    .await;
    let untouched = namespaces.get(&format!("{name}-prod")).await.unwrap();
    assert_eq!(untouched.resource_version(), foreign.resource_version());
    assert!(untouched.owner_references().is_empty());
    let inside: Api<NetworkPolicy> = Api::namespaced(client.clone(), &format!("{name}-prod"));
    assert!(
        inside
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // A cluster admin hands it over.
    namespaces
        .patch(
            &format!("{name}-prod"),
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"annotations": {"customers.dev/adopt": name}}})),
        )
        .await
        .unwrap();
    let customer = wait_condition(&client, &name, types::READY, "True").await;
    assert!(condition(customer.status.as_ref(), types::CONFLICT).is_none());
    let adopted = namespaces.get(&format!("{name}-prod")).await.unwrap();
    assert_eq!(
        adopted.annotations().get("customers.dev/owner-uid"),
        customer.uid().as_ref()
    );
    assert_eq!(adopted.labels()["team"], "someone-else");
}

#[tokio::test]
async fn deletion_removes_own_namespaces_and_spares_look_alikes() {
    let client = setup().await;
    let name = support::unique("bye");
    create(&client, &name, spec_two_namespaces()).await;
    wait_condition(&client, &name, types::READY, "True").await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let look_alike: Namespace = serde_json::from_value(json!({
        "metadata": {"name": format!("{name}-lookalike"),
                     "labels": {"customers.dev/customer": name, "app.kubernetes.io/managed-by": "customer-operator"}}
    }))
    .unwrap();
    namespaces
        .create(&PostParams::default(), &look_alike)
        .await
        .unwrap();
    let customers: Api<Customer> = Api::all(client.clone());
    customers
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    namespace_gone(&client, &format!("{name}-prod")).await;
    namespace_gone(&client, &format!("{name}-dev")).await;
    customer_gone(&client, &name).await;
    let survivor = namespaces.get(&format!("{name}-lookalike")).await.unwrap();
    assert!(survivor.metadata.deletion_timestamp.is_none());
    namespaces
        .delete(&format!("{name}-lookalike"), &DeleteParams::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn deletion_protection_holds_until_switched_off() {
    let client = setup().await;
    let name = support::unique("guard");
    let mut spec = spec_two_namespaces();
    spec["deletionProtection"] = json!(true);
    create(&client, &name, spec).await;
    wait_condition(&client, &name, types::READY, "True").await;
    let customers: Api<Customer> = Api::all(client.clone());
    customers
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    let blocked = wait_condition(&client, &name, types::DELETION_BLOCKED, "True").await;
    let message = &condition(blocked.status.as_ref(), types::DELETION_BLOCKED)
        .unwrap()
        .message;
    assert!(message.contains("deletionProtection"), "{message}");
    support::event_seen(&client, &name, "Warning", "DeletionProtection").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for suffix in ["prod", "dev"] {
        let ns = namespaces.get(&format!("{name}-{suffix}")).await.unwrap();
        assert!(ns.metadata.deletion_timestamp.is_none());
    }
    patch_spec(&client, &name, json!({"deletionProtection": false})).await;
    namespace_gone(&client, &format!("{name}-prod")).await;
    customer_gone(&client, &name).await;
}

#[tokio::test]
async fn refused_spec_changes_nothing() {
    let client = setup().await;
    let name = support::unique("refuse");
    create(&client, &name, spec_two_namespaces()).await;
    wait_condition(&client, &name, types::READY, "True").await;
    let before: Vec<NetworkPolicy> = labelled(&client, &name).await;
    patch_spec(
        &client,
        &name,
        json!({"group": "no-such-group", "network": {"isolation": "None"}}),
    )
    .await;
    let customers: Api<Customer> = Api::all(client.clone());
    let refused = support::wait_for("UnknownGroup", || {
        let customers = customers.clone();
        let name = name.clone();
        async move {
            let c = customers.get(&name).await.ok()?;
            let ready = condition(c.status.as_ref(), types::READY)?;
            (ready.reason == "UnknownGroup").then_some(c)
        }
    })
    .await;
    assert_eq!(
        refused.status.as_ref().unwrap().observed_generation,
        Some(1)
    );
    support::event_seen(&client, &name, "Warning", "UnknownGroup").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after: Vec<NetworkPolicy> = labelled(&client, &name).await;
    assert_eq!(keys(&before), keys(&after));
    for (a, b) in before.iter().zip(&after) {
        assert_eq!(a.resource_version(), b.resource_version());
    }
}

#[tokio::test]
async fn allow_from_waits_for_its_peer_then_opens_and_closes_both_sides() {
    let client = setup().await;
    let (a, c) = (support::unique("conna"), support::unique("connc"));
    create(
        &client,
        &a,
        json!({"displayName": "A", "contactEmail": "ops@a.example",
               "network": {"allowFrom": [{"customer": c, "ports": [{"port": 443}]}]}}),
    )
    .await;
    let waiting = wait_condition(&client, &a, types::CONNECTIONS_PENDING, "True").await;
    let message = &condition(waiting.status.as_ref(), types::CONNECTIONS_PENDING)
        .unwrap()
        .message;
    assert!(message.contains(&c), "{message}");
    assert_eq!(
        condition(waiting.status.as_ref(), types::READY)
            .unwrap()
            .status,
        "False"
    );
    support::event_seen(&client, &a, "Warning", "PeerNotFound").await;

    create(
        &client,
        &c,
        json!({"displayName": "C", "contactEmail": "ops@c.example"}),
    )
    .await;
    let ready = wait_condition(&client, &a, types::READY, "True").await;
    assert!(condition(ready.status.as_ref(), types::CONNECTIONS_PENDING).is_none());
    let peers_of = |p: &NetworkPolicy, ingress: bool| -> Vec<String> {
        let spec = p.spec.as_ref().unwrap();
        let peer = if ingress {
            spec.ingress.as_ref().unwrap()[0].from.as_ref().unwrap()[0].clone()
        } else {
            spec.egress.as_ref().unwrap()[0].to.as_ref().unwrap()[0].clone()
        };
        peer.namespace_selector.unwrap().match_expressions.unwrap()[0]
            .values
            .clone()
            .unwrap()
    };
    let a_policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &a);
    let c_policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &c);
    let ingress = support::wait_for("A's ingress from C", || {
        let a_policies = a_policies.clone();
        async move { a_policies.get_opt("customer-allow-from").await.ok()? }
    })
    .await;
    assert_eq!(peers_of(&ingress, true), vec![c.clone()]);
    let egress = support::wait_for("C's egress to A", || {
        let c_policies = c_policies.clone();
        async move { c_policies.get_opt("customer-allow-to-peers").await.ok()? }
    })
    .await;
    assert_eq!(peers_of(&egress, false), vec![a.clone()]);
    // Exactly that pair: each side has one policy more than a customer without the
    // connection, and nothing else names the other side.
    let names = |api: &Api<NetworkPolicy>| {
        let api = api.clone();
        async move {
            let list = api.list(&Default::default()).await.unwrap().items;
            let text = serde_json::to_string(&list).unwrap();
            let names: BTreeSet<String> = list.iter().map(|p| p.name_any()).collect();
            (names, text)
        }
    };
    let baseline: BTreeSet<String> = [
        "customer-default-deny",
        "customer-allow-same-customer",
        "customer-allow-dns",
        "customer-allow-platform",
        "customer-allow-internet-egress",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let (a_names, a_text) = names(&a_policies).await;
    let (c_names, c_text) = names(&c_policies).await;
    let with = |extra: &str| {
        let mut set = baseline.clone();
        set.insert(extra.to_string());
        set
    };
    assert_eq!(a_names, with("customer-allow-from"));
    assert_eq!(c_names, with("customer-allow-to-peers"));
    assert_eq!(a_text.matches(c.as_str()).count(), 1, "{a_text}");
    assert_eq!(c_text.matches(a.as_str()).count(), 1, "{c_text}");
    let ports = ingress.spec.as_ref().unwrap().ingress.as_ref().unwrap()[0]
        .ports
        .clone()
        .unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!(
        ports[0].port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(443))
    );

    // Dropping the declaration closes both sides.
    patch_spec(&client, &a, json!({"network": {"allowFrom": null}})).await;
    for (api, policy) in [
        (&a_policies, "customer-allow-from"),
        (&c_policies, "customer-allow-to-peers"),
    ] {
        support::wait_for(&format!("{policy} gone"), || {
            let api = api.clone();
            async move {
                api.get_opt(policy)
                    .await
                    .ok()
                    .and_then(|p| p.is_none().then_some(()))
            }
        })
        .await;
    }
    assert_eq!(names(&a_policies).await.0, baseline);
    assert_eq!(names(&c_policies).await.0, baseline);
}

#[tokio::test]
async fn a_new_namespace_is_denied_before_anything_is_allowed() {
    use futures::{StreamExt, TryStreamExt};
    use kube::runtime::watcher::{self, Event, watcher};
    let client = setup().await;
    let name = support::unique("denyfirst");
    let policies: Api<NetworkPolicy> = Api::all(client.clone());
    let selector = format!("{LABEL_CUSTOMER}={name}");
    let mut events = watcher(policies, watcher::Config::default().labels(&selector)).boxed();
    while let Some(event) = events.try_next().await.unwrap() {
        if matches!(event, Event::InitDone) {
            break;
        }
    }
    create(
        &client,
        &name,
        json!({"displayName": "Deny first", "contactEmail": "ops@deny.example",
               "namespaces": [{"name": "a"}, {"name": "b"}]}),
    )
    .await;
    let mut order = Vec::new();
    while order.len() < 10 {
        let event = tokio::time::timeout(Duration::from_secs(60), events.try_next())
            .await
            .expect("policies within 60 s")
            .unwrap()
            .expect("watch goes on");
        if let Event::Apply(p) = event {
            let key = (p.namespace().unwrap(), p.name_any());
            if !order.contains(&key) {
                order.push(key);
            }
        }
    }
    for ns in [format!("{name}-a"), format!("{name}-b")] {
        let first = order.iter().position(|(n, _)| *n == ns).unwrap();
        assert_eq!(order[first].1, "customer-default-deny", "{order:?}");
    }
}
