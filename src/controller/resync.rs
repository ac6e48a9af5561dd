//! The periodic pass over the Customers. Every reconcile asks to be run again after the
//! resync period, so a Customer nobody changes is checked once a period by its own
//! schedule. The pass is the backstop for a schedule that was lost (a reconcile that
//! ended waiting for a change that never came): once a period it queues the Customers
//! not reconciled within the last period, and only those. Queueing every Customer
//! instead would reconcile again, at each pass, the ones just reconciled a moment before
//! (all of them, while thousands are being created).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::Stream;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::api::Customer;

/// When each Customer was last reconciled, by name.
#[derive(Debug, Default)]
pub struct LastReconciled(Mutex<HashMap<String, Instant>>);

impl LastReconciled {
    /// Notes that `customer` is being reconciled now.
    pub fn note(&self, customer: &str) {
        let mut last = self.0.lock().expect("last-reconciled lock");
        match last.get_mut(customer) {
            Some(at) => *at = Instant::now(),
            None => {
                last.insert(customer.to_string(), Instant::now());
            }
        }
    }

    /// Of `names`, those not reconciled within `period` before `now`. Forgets the
    /// Customers that are not among `names` (gone).
    pub fn due(&self, names: &[String], period: Duration, now: Instant) -> Vec<String> {
        let mut last = self.0.lock().expect("last-reconciled lock");
        let mut kept = HashMap::with_capacity(names.len());
        let mut due = Vec::new();
        for name in names {
            match last.remove_entry(name) {
                Some((name, at)) => {
                    if now.saturating_duration_since(at) >= period {
                        due.push(name.clone());
                    }
                    kept.insert(name, at);
                }
                None => due.push(name.clone()),
            }
        }
        *last = kept;
        due
    }
}

/// Once every `period`, the cached Customers not reconciled within the period.
pub fn due(
    customers: Store<Customer>,
    last: Arc<LastReconciled>,
    period: Duration,
) -> impl Stream<Item = ObjectRef<Customer>> + Send + 'static {
    let passes = futures::stream::unfold((), move |()| async move {
        tokio::time::sleep(period).await;
        Some(((), ()))
    });
    futures::StreamExt::flat_map(passes, move |()| {
        let names: Vec<String> = customers.state().iter().map(|c| c.name_any()).collect();
        let due = last.due(&names, period, Instant::now());
        futures::stream::iter(due.into_iter().map(|name| ObjectRef::new(&name)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn only_customers_not_reconciled_within_the_period_are_due() {
        let last = LastReconciled::default();
        let period = Duration::from_secs(60);
        last.note("recent");
        last.note("old");
        last.0.lock().unwrap().insert(
            "old".into(),
            Instant::now() - period - Duration::from_secs(1),
        );
        let all = names(&["recent", "old", "never"]);
        let mut due = last.due(&all, period, Instant::now());
        due.sort();
        assert_eq!(due, ["never", "old"]);
    }

    #[test]
    fn a_customer_gone_is_forgotten() {
        let last = LastReconciled::default();
        last.note("gone");
        last.note("here");
        let due = last.due(&names(&["here"]), Duration::from_secs(60), Instant::now());
        assert!(due.is_empty());
        assert_eq!(last.0.lock().unwrap().len(), 1);
    }
}
