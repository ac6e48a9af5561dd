//! How far a change reaches, counted against the real test control plane: 200 new
//! Customers take about one reconcile each (the watch events of the operator's own
//! writes reconcile nobody), a change to one CustomerGroup reconciles its members and
//! nobody else, and a member that leaves a group zone closes it at once for those who
//! stay (not at the next resync, which is 10 minutes here).

mod support;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use customer_operator::api::{Customer, CustomerGroup};
use customer_operator::controller::counting::ReconcileCounter;
use customer_operator::controller::status::{condition, types};
use futures::{StreamExt, stream};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

const CUSTOMERS: usize = 200;
const MEMBERS: usize = 10;
/// At most this many reconciles per new customer outside a group, on average.
const PER_NEW_CUSTOMER: f64 = 1.5;

/// Waits until no reconcile happened for 3 s; the counter starts afresh. Returns the
/// reconciles per Customer counted until then.
async fn quiet(counter: &ReconcileCounter) -> HashMap<String, u64> {
    let start = Instant::now();
    let mut counted = counter.take();
    loop {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let more = counter.take();
        if more.is_empty() {
            return counted;
        }
        for (name, n) in more {
            *counted.entry(name).or_default() += n;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "never quiet");
    }
}

async fn all_ready(api: &Api<Customer>, names: &BTreeSet<String>) {
    support::wait_within(
        Duration::from_secs(300),
        "every customer ready",
        || async move {
            let list = api.list(&Default::default()).await.ok()?;
            let ready = list
                .items
                .iter()
                .filter(|c| names.contains(&c.name_any()))
                .filter(|c| {
                    let status = c.status.as_ref();
                    status.and_then(|s| s.observed_generation) == c.meta().generation
                        && condition(status, types::READY).is_some_and(|r| r.status == "True")
                })
                .count();
            (ready == names.len()).then_some(())
        },
    )
    .await;
}

fn outside<'a>(counts: &'a HashMap<String, u64>, allowed: &BTreeSet<String>) -> Vec<&'a String> {
    counts.keys().filter(|n| !allowed.contains(*n)).collect()
}

#[tokio::test]
async fn a_group_change_reconciles_its_members_only() {
    let client = support::client().await;
    let (_, reconciles) = support::operator_with(Duration::from_secs(600));
    let customers: Api<Customer> = Api::all(client.clone());
    let groups: Api<CustomerGroup> = Api::all(client.clone());
    let prefix = support::unique("fan");
    let group = format!("{prefix}-g");
    let group_object: CustomerGroup = serde_json::from_value(json!({
        "apiVersion": "customers.dev/v1alpha1", "kind": "CustomerGroup",
        "metadata": {"name": group},
        "spec": {"displayName": "Fan-out", "network": {"allowWithinGroup": true},
                 "defaults": {"quota": {"hard": {"pods": "10"}}}}
    }))
    .unwrap();
    groups
        .create(&PostParams::default(), &group_object)
        .await
        .unwrap();
    let names: Vec<String> = (0..CUSTOMERS).map(|i| format!("{prefix}-{i}")).collect();
    let members: BTreeSet<String> = names[..MEMBERS].iter().cloned().collect();
    let started = Instant::now();
    stream::iter(names.iter().enumerate())
        .for_each_concurrent(16, |(i, name)| {
            let client = client.clone();
            let spec = if i < MEMBERS {
                json!({"displayName": "Member", "contactEmail": "ops@fan.example", "group": group})
            } else {
                json!({"displayName": "Other", "contactEmail": "ops@fan.example",
                       "network": {"isolation": "None"}})
            };
            async move {
                support::create_customer(&client, name, spec).await;
            }
        })
        .await;
    let all: BTreeSet<String> = names.iter().cloned().collect();
    all_ready(&customers, &all).await;
    eprintln!(
        "fanout: {CUSTOMERS} customers ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let made = quiet(&reconciles).await;
    let others: u64 = made
        .iter()
        .filter(|(name, _)| all.contains(*name) && !members.contains(*name))
        .map(|(_, n)| n)
        .sum();
    let per_other = others as f64 / (CUSTOMERS - MEMBERS) as f64;
    eprintln!(
        "fanout: creating them took {} reconciles, {per_other:.2} per customer outside the group",
        made.values().sum::<u64>()
    );
    // Each is created, given its finalizer, its namespace and status in one reconcile;
    // the echoes of those writes reconcile nobody (a few meet a cache behind and look
    // again).
    assert!(
        per_other <= PER_NEW_CUSTOMER,
        "{per_other:.2} reconciles per new customer: {made:?}"
    );

    // One change to the group: its members are reconciled, nobody else.
    groups
        .patch(
            &group,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"defaults": {"quota": {"hard": {"pods": "15"}}}}})),
        )
        .await
        .unwrap();
    for member in &members {
        support::wait_for(&format!("quota of {member} follows the group"), || async {
            (support::quota_pods(&client, member).await.as_deref() == Some("15")).then_some(())
        })
        .await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let counts = reconciles.take();
    eprintln!(
        "fanout: group change reconciled {} customers ({} reconciles) of {CUSTOMERS}; members {MEMBERS}",
        counts.len(),
        counts.values().sum::<u64>()
    );
    assert!(
        members.iter().all(|m| counts.contains_key(m)),
        "members: {counts:?}"
    );
    assert!(
        outside(&counts, &members).is_empty(),
        "non-members reconciled: {:?}",
        outside(&counts, &members)
    );
    quiet(&reconciles).await;

    // A member leaves the zone: the others close it at once.
    let mover = names[0].clone();
    let stay: Vec<String> = members.iter().filter(|m| **m != mover).cloned().collect();
    let moved = Instant::now();
    support::patch_customer_spec(&client, &mover, json!({"group": null})).await;
    for member in &stay {
        support::wait_within(
            Duration::from_secs(30),
            &format!("zone of {member} closed to {mover}"),
            || async {
                let peers = support::zone_peers(&client, member).await?;
                (!peers.contains(&mover) && peers.len() == stay.len() - 1).then_some(())
            },
        )
        .await;
    }
    eprintln!(
        "fanout: zone closed for the {} members that stay in {:.2} s after the move",
        stay.len(),
        moved.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let counts = reconciles.take();
    assert!(
        outside(&counts, &members).is_empty(),
        "non-members reconciled after the move: {:?}",
        outside(&counts, &members)
    );
    assert_eq!(support::zone_peers(&client, &mover).await, None);

    // Clean up, so the test binaries after this one meet a small cluster.
    stream::iter(names.iter())
        .for_each_concurrent(16, |name| {
            let customers = customers.clone();
            async move {
                let _ = customers.delete(name, &DeleteParams::default()).await;
            }
        })
        .await;
    support::wait_within(
        Duration::from_secs(300),
        "every customer deleted",
        || async {
            let list = customers.list(&Default::default()).await.ok()?;
            (!list.items.iter().any(|c| all.contains(&c.name_any()))).then_some(())
        },
    )
    .await;
    groups
        .delete(&group, &DeleteParams::default())
        .await
        .unwrap();
}
