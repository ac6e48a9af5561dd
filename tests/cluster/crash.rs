//! Crash safety (issue 7, item 1): the operator binary runs as a child process and is
//! SIGKILLed at seeded random moments while Customers are created and deleted, and
//! started again each time. Afterwards the cluster holds exactly what the specs ask
//! for: every object of every living customer as `desired/` builds it (none missing,
//! none extra), no namespace without a living owner, no namespace of a living customer
//! ever deleted, no Customer left with its finalizer.
//!
//! Sizes come from the environment (CI defaults in brackets):
//! `CUSTOMER_OPERATOR_CRASH_CUSTOMERS` [60], `..._DELETES` [30], `..._ROUNDS` [3],
//! `..._KILLS` (per round) [3], `..._SEED` [7]. `scripts/reliability.sh` runs it bigger.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use customer_operator::api::{Customer, LABEL_CUSTOMER, LABEL_MANAGED_BY, MANAGED_BY};
use customer_operator::controller::status::{condition, types};
use customer_operator::settings::Settings;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::{Value, json};
use support::process::{OperatorProcess, Seeded, setting};

fn settings() -> Settings {
    Settings {
        platform_namespaces: vec!["ingress-nginx".into()],
        ..Settings::default()
    }
}

/// The spec of customer `i`: every third has two namespaces, every fifth is in the zone
/// group, every seventh opens to the one before it, and some are inner customers of an
/// earlier one (so deleting that one deletes them too).
fn spec(prefix: &str, i: usize) -> Value {
    let mut spec = json!({
        "displayName": format!("Crash {i}"),
        "contactEmail": "ops@crash.example",
        "access": {"admins": [{"kind": "User", "name": format!("admin{i}")}]},
        "quota": {"hard": {"pods": "10"}},
    });
    if i.is_multiple_of(3) {
        spec["namespaces"] = json!([{"name": "a"}, {"name": "b"}]);
    }
    if i.is_multiple_of(5) {
        spec["group"] = json!(format!("{prefix}-zone"));
    }
    if i.is_multiple_of(7) && i > 0 {
        spec["network"] =
            json!({"allowFrom": [{"customer": name(prefix, i - 1), "ports": [{"port": 443}]}]});
    }
    if i % 11 == 5 {
        spec["parent"] = json!(name(prefix, i - 5));
    }
    spec
}

fn name(prefix: &str, i: usize) -> String {
    format!("{prefix}-c{i}")
}

/// The customer and every inner customer below it, by the specs.
fn with_descendants(prefix: &str, i: usize, count: usize) -> BTreeSet<usize> {
    let mut out = BTreeSet::from([i]);
    loop {
        let more: Vec<usize> = (0..count)
            .filter(|j| !out.contains(j))
            .filter(|j| {
                spec(prefix, *j)["parent"]
                    .as_str()
                    .is_some_and(|p| out.iter().any(|k| name(prefix, *k) == p))
            })
            .collect();
        if more.is_empty() {
            return out;
        }
        out.extend(more);
    }
}

/// Records every namespace of this run that is deleted or starts terminating.
fn watch_namespace_deletions(
    client: &Client,
    prefix: &str,
) -> (Arc<Mutex<BTreeSet<String>>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let api: Api<Namespace> = Api::all(client.clone());
    let config = watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY}"));
    let (record, prefix) = (seen.clone(), format!("{prefix}-"));
    let task = tokio::spawn(async move {
        let mut events = watcher(api, config).boxed();
        while let Ok(Some(event)) = events.try_next().await {
            let (ns, deleted) = match event {
                watcher::Event::Apply(ns) | watcher::Event::InitApply(ns) => {
                    let terminating = ns.meta().deletion_timestamp.is_some();
                    (ns, terminating)
                }
                watcher::Event::Delete(ns) => (ns, true),
                _ => continue,
            };
            if deleted && ns.name_any().starts_with(&prefix) {
                record.lock().unwrap().insert(ns.name_any());
            }
        }
    });
    (seen, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_nothing() {
    let client = support::client().await;
    let count = setting("CUSTOMER_OPERATOR_CRASH_CUSTOMERS", 60) as usize;
    let deletes = (setting("CUSTOMER_OPERATOR_CRASH_DELETES", 30) as usize).min(count);
    let rounds = (setting("CUSTOMER_OPERATOR_CRASH_ROUNDS", 3) as usize).max(1);
    let kills = setting("CUSTOMER_OPERATOR_CRASH_KILLS", 3);
    let seed = setting("CUSTOMER_OPERATOR_CRASH_SEED", 7);
    let prefix = support::unique("cr");
    let log = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/crash-operator.log");
    let _ = std::fs::remove_file(&log);
    let mut operator = OperatorProcess::start(&support::kubeconfig(), &log);
    let (deleted_namespaces, watch) = watch_namespace_deletions(&client, &prefix);
    let mut rng = Seeded::new(seed);

    let groups = support::untyped(&client, "CustomerGroup");
    let group = json!({"apiVersion": "customers.dev/v1alpha1", "kind": "CustomerGroup",
        "metadata": {"name": format!("{prefix}-zone")},
        "spec": {"displayName": "Crash zone", "network": {"allowWithinGroup": true}}});
    groups
        .create(
            &PostParams::default(),
            &serde_json::from_value(group).unwrap(),
        )
        .await
        .unwrap();

    let customers: Api<Customer> = Api::all(client.clone());
    let mut created: Vec<usize> = Vec::new();
    let mut gone: BTreeSet<usize> = BTreeSet::new();
    let mut asked_to_delete = 0;
    for round in 0..rounds {
        let batch: Vec<usize> = (round * count / rounds..(round + 1) * count / rounds).collect();
        // Deletions of this round: among the customers created in earlier rounds and in
        // this one, chosen by the seed.
        let mut doomed = Vec::new();
        let quota = (round + 1) * deletes / rounds - round * deletes / rounds;
        let mut candidates: Vec<usize> = created
            .iter()
            .chain(&batch)
            .copied()
            .filter(|i| !gone.contains(i))
            .collect();
        while doomed.len() < quota && !candidates.is_empty() {
            let pick = candidates.remove(rng.range(0, candidates.len() as u64) as usize);
            doomed.push(pick);
        }
        let pauses: Vec<(u64, u64)> = (0..kills)
            .map(|_| (rng.range(200, 2500), rng.range(0, 800)))
            .collect();
        let work = async {
            futures::stream::iter(batch.iter().copied())
                .for_each_concurrent(8, |i| {
                    let client = client.clone();
                    let prefix = prefix.clone();
                    async move {
                        support::create_customer(&client, &name(&prefix, i), spec(&prefix, i))
                            .await;
                    }
                })
                .await;
            for i in &doomed {
                // Delete only what the operator has taken charge of (its finalizer is
                // on): a Customer deleted before that is gone at once, and its inner
                // customers are left to report UnknownParent (see RELIABILITY.md).
                let n = name(&prefix, *i);
                support::wait_for(&format!("finalizer on {n}"), || {
                    let (customers, n) = (customers.clone(), n.clone());
                    async move {
                        match customers.get_opt(&n).await {
                            Ok(Some(c)) => (!c.finalizers().is_empty()
                                || c.meta().deletion_timestamp.is_some())
                            .then_some(()),
                            // Already gone with its parent.
                            Ok(None) => Some(()),
                            Err(_) => None,
                        }
                    }
                })
                .await;
                // A doomed customer may already be gone with its parent.
                let _ = customers
                    .delete(&name(&prefix, *i), &DeleteParams::default())
                    .await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        let killer = async {
            for (run, pause) in &pauses {
                tokio::time::sleep(Duration::from_millis(*run)).await;
                operator.kill();
                tokio::time::sleep(Duration::from_millis(*pause)).await;
                operator.restart();
            }
        };
        futures::join!(work, killer);
        created.extend(&batch);
        asked_to_delete += doomed.len();
        for i in doomed {
            gone.extend(with_descendants(&prefix, i, count));
        }
    }
    let restarted = Instant::now();

    // Converged: the deleted ones are gone, the others Ready for their generation.
    let living: Vec<String> = created
        .iter()
        .filter(|i| !gone.contains(i))
        .map(|i| name(&prefix, *i))
        .collect();
    let dead: Vec<String> = gone.iter().map(|i| name(&prefix, *i)).collect();
    // A living customer whose allowFrom names a deleted one waits for it, by design.
    let waits: BTreeSet<String> = created
        .iter()
        .filter(|i| !gone.contains(i))
        .filter(|i| {
            spec(&prefix, **i)["network"]["allowFrom"][0]["customer"]
                .as_str()
                .is_some_and(|peer| dead.iter().any(|d| d == peer))
        })
        .map(|i| name(&prefix, *i))
        .collect();
    let limit = Duration::from_secs(60 + 2 * count as u64);
    support::wait_within(limit, "convergence after the last restart", || {
        let (customers, living, dead, waits) = (customers.clone(), &living, &dead, &waits);
        async move {
            let list = customers.list(&ListParams::default()).await.ok()?;
            let by_name: BTreeMap<String, &Customer> =
                list.items.iter().map(|c| (c.name_any(), c)).collect();
            let all_gone = dead.iter().all(|d| !by_name.contains_key(d));
            let all_ready = living.iter().all(|n| {
                by_name.get(n).is_some_and(|c| {
                    condition(c.status.as_ref(), types::READY).is_some_and(|r| {
                        let expected = if waits.contains(n) {
                            r.status == "False" && r.reason == "ConnectionsPending"
                        } else {
                            r.status == "True"
                        };
                        expected && r.observed_generation == c.meta().generation
                    })
                })
            });
            (all_gone && all_ready).then_some(())
        }
    })
    .await;
    let converged_after = restarted.elapsed();
    assert!(
        operator.exited().is_none(),
        "the operator exited by itself; log: {}",
        log.display()
    );

    // Exactly what the specs ask for.
    let dir = support::converged::directory(&client).await;
    let mut problems = Vec::new();
    let mut objects = 0;
    let mut kept_namespaces = BTreeSet::new();
    for n in &living {
        let customer = dir.customers.get(n).expect("living customer listed");
        problems
            .extend(support::converged::differences(&client, customer, &dir, &settings()).await);
        let wanted = customer_operator::desired::desired(customer, &dir, &settings()).unwrap();
        objects += wanted.to_values().unwrap().len();
        kept_namespaces.extend(wanted.namespaces.iter().map(|ns| ns.name_any()));
    }
    // No orphan: every namespace of this run has a living owner whose uid it names.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let labelled = namespaces
        .list(&ListParams::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY}")))
        .await
        .unwrap();
    let mut orphans = Vec::new();
    for ns in labelled
        .items
        .iter()
        .filter(|ns| ns.name_any().starts_with(&format!("{prefix}-")))
    {
        let owner = ns.labels().get(LABEL_CUSTOMER).cloned().unwrap_or_default();
        let owner_uid = dir.customers.get(&owner).and_then(|c| c.uid());
        let named = owner_uid
            .is_some_and(|uid| customer_operator::desired::ownership::is_owned_by(ns.meta(), &uid));
        if !living.contains(&owner) || !named || ns.meta().deletion_timestamp.is_some() {
            orphans.push(ns.name_any());
        }
    }
    // No namespace that should stay was ever deleted (seen by the watch).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let wrongly_deleted: Vec<String> = deleted_namespaces
        .lock()
        .unwrap()
        .intersection(&kept_namespaces)
        .cloned()
        .collect();
    watch.abort();
    assert!(
        problems.is_empty(),
        "objects differ from the specs: {problems:#?}"
    );
    assert!(orphans.is_empty(), "orphan namespaces: {orphans:?}");
    assert!(
        wrongly_deleted.is_empty(),
        "namespaces of living customers were deleted: {wrongly_deleted:?}"
    );
    support::figures(&format!(
        "crash safety: seed {seed}, {rounds} rounds, {count} customers created, {asked_to_delete} deleted \
         ({} with inner customers), {} SIGKILLs and restarts, converged {:.1} s after the last restart; \
         {objects} objects of {} living customers checked: missing or different 0, duplicates 0, \
         orphan namespaces 0, namespaces wrongly deleted 0, finalizers stuck 0",
        dead.len(),
        operator.kills,
        converged_after.as_secs_f64(),
        living.len()
    ));

    // Leave the cluster as it was for the tests after this one.
    for n in &living {
        let _ = customers.delete(n, &DeleteParams::default()).await;
    }
    support::wait_within(limit, "this run's customers gone", || {
        let customers = customers.clone();
        let prefix = prefix.clone();
        async move {
            let list = customers.list(&ListParams::default()).await.ok()?;
            (!list.items.iter().any(|c| c.name_any().starts_with(&prefix))).then_some(())
        }
    })
    .await;
    let _ = groups
        .delete(&format!("{prefix}-zone"), &DeleteParams::default())
        .await;
}
