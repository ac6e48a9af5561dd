//! A new Customer is written as Ready once, and then left alone: every version the
//! apiserver stores after its first Ready status would be a write for nothing (its
//! transition times changed, say, by a reconcile that started from a Customer the cache
//! had not yet shown with its status). Many customers are created at once, so that
//! reconciles queue behind each other, and a watch records every version of each.
//! Its own test binary, so that no other test's changes reconcile these customers.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use customer_operator::api::Customer;
use customer_operator::controller::status::{condition, types};
use futures::StreamExt;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};

/// How many customers are created together.
const CUSTOMERS: usize = 80;

/// Whether this version of a Customer is Ready for its current generation.
fn ready(customer: &Customer) -> bool {
    let status = customer.status.as_ref();
    status.and_then(|s| s.observed_generation) == customer.meta().generation
        && condition(status, types::READY).is_some_and(|c| c.status == "True")
}

#[tokio::test]
async fn a_new_customer_is_not_written_again_once_ready() {
    let client = support::client().await;
    support::operator();
    let prefix = support::unique("settle");
    let names: Vec<String> = (0..CUSTOMERS).map(|i| format!("{prefix}-{i}")).collect();
    let wanted: BTreeSet<String> = names.iter().cloned().collect();

    // Every version of each of these customers, as the watch delivers them.
    let versions: Arc<Mutex<BTreeMap<String, Vec<Customer>>>> = Arc::default();
    let api: Api<Customer> = Api::all(client.clone());
    let recorder = {
        let versions = versions.clone();
        let stream = watcher(api.clone(), watcher::Config::default()).applied_objects();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(Ok(customer)) = stream.next().await {
                if wanted.contains(&customer.name_any()) {
                    let mut versions = versions.lock().unwrap();
                    versions
                        .entry(customer.name_any())
                        .or_default()
                        .push(customer);
                }
            }
        })
    };
    support::create_customers(&client, &names, |_| support::basic("Settle")).await;
    for name in &names {
        support::wait_condition(&client, name, types::READY, "True").await;
    }
    // Long enough for any reconcile queued behind the first to have run; shorter than
    // the operator's resync in this binary would matter not, as a resync writes nothing.
    tokio::time::sleep(Duration::from_secs(6)).await;
    recorder.abort();

    let versions = std::mem::take(&mut *versions.lock().unwrap());
    let rewritten: Vec<String> = names
        .iter()
        .filter_map(|name| {
            let seen = versions.get(name)?;
            let first_ready = seen.iter().position(ready)?;
            let later = &seen[first_ready + 1..];
            (!later.is_empty()).then(|| {
                let status = |c: &Customer| serde_json::to_string(&c.status).unwrap();
                format!(
                    "{name}: Ready at {}, then {} more version(s); first Ready status {}, last {}",
                    seen[first_ready].resource_version().unwrap_or_default(),
                    later.len(),
                    status(&seen[first_ready]),
                    status(later.last().unwrap()),
                )
            })
        })
        .collect();
    let watched = names.iter().filter(|n| versions.contains_key(*n)).count();
    assert_eq!(watched, CUSTOMERS, "the watch saw every customer");
    assert!(
        rewritten.is_empty(),
        "{} of {CUSTOMERS} customers were written after they were Ready:\n{}",
        rewritten.len(),
        rewritten.join("\n")
    );
    support::delete_customers(&client, &names).await;
}
