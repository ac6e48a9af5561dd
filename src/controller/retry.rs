//! When a failed reconcile is tried again, and how long every watch pauses after an
//! error.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::ResourceExt;
use kube::runtime::controller::Action;

use super::Context;
use super::error::Error;
use crate::api::Customer;

/// Consecutive failures per Customer, for backoff.
#[derive(Debug, Default)]
pub struct Failures(Mutex<HashMap<String, u32>>);

impl Failures {
    /// Counts one more failure of the Customer; returns how many in a row.
    fn count(&self, name: &str) -> u32 {
        let mut failures = self.0.lock().expect("failures lock");
        let count = failures.entry(name.to_string()).or_insert(0);
        *count = count.saturating_add(1);
        *count
    }

    /// Forgets the failures of a Customer after a successful reconcile.
    pub fn reset(&self, name: &str) {
        self.0.lock().expect("failures lock").remove(name);
    }
}

/// The pause of all triggers after a watch error. Each watch already backs off on its
/// own ([`WatchBackoff`]), so the shared pause stays short: the runtime's default (up
/// to 30 s, growing with every error of any watch) held every Customer back, new ones
/// included, whenever one watch failed (a CRD reinstalled, an expired resource version).
pub struct BriefPause;

impl Iterator for BriefPause {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        Some(Duration::from_millis(200))
    }
}

impl kube::runtime::utils::Backoff for BriefPause {
    fn reset(&mut self) {}
}

/// Backs off per Customer, reset by a success; see [`retry_delay`].
pub fn error_policy(customer: Arc<Customer>, error: &Error, context: Arc<Context>) -> Action {
    let count = context.failures.count(&customer.name_any());
    let delay = retry_delay(error, count);
    tracing::warn!(customer = %customer.name_any(), reason = error.reason(), %error, ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// When to retry a Customer after its `failures`-th failure in a row: 1 s, 2 s, 4 s ...
/// up to 5 minutes for an error of the Customer's own (a request the apiserver refuses);
/// 0.5 s after a conflict (the cache was behind); at most 5 s when the apiserver is
/// unreachable or failing (connection errors, timeouts, 429 and 5xx), which is nobody's
/// fault and ends for every Customer at once: a long backoff earned during an outage
/// would only delay the recovery.
pub fn retry_delay(error: &Error, failures: u32) -> Duration {
    let exponential = Duration::from_secs(1u64 << failures.saturating_sub(1).min(8))
        .min(Duration::from_secs(300));
    match error {
        Error::Api {
            source: kube::Error::Api(s),
            ..
        } if s.code == 409 => Duration::from_millis(500),
        Error::Api {
            source: kube::Error::Api(s),
            ..
        } if s.code == 429 || s.code >= 500 => exponential.min(OUTAGE_RETRY),
        Error::Api {
            source: kube::Error::Api(_),
            ..
        } => exponential,
        Error::Api { .. } | Error::CachesNotReady(_) | Error::Timeout => {
            exponential.min(OUTAGE_RETRY)
        }
        Error::ApplyRefused { .. } | Error::Serialize(_) => exponential,
    }
}

/// Longest wait between retries while the apiserver is unreachable or failing.
const OUTAGE_RETRY: Duration = Duration::from_secs(5);

/// Reconnection pause of every watch: 250 ms, doubling up to 4 s, back to 250 ms once
/// the watch delivers again. kube's default grows to 30 s, so after an apiserver
/// outage the caches could stay stale for up to 30 s after it is back.
pub struct WatchBackoff {
    next: Duration,
}

impl Default for WatchBackoff {
    fn default() -> Self {
        WatchBackoff {
            next: Duration::from_millis(250),
        }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        let now = self.next;
        self.next = (self.next * 2).min(Duration::from_secs(4));
        Some(now)
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    fn reset(&mut self) {
        *self = WatchBackoff::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> Error {
        Error::Api {
            step: super::super::error::Step::Apply,
            object: "NetworkPolicy a/b".into(),
            source: kube::Error::Api(Box::new(kube::core::Status {
                code,
                ..Default::default()
            })),
        }
    }

    #[test]
    fn an_outage_is_retried_within_seconds_and_a_refusal_backs_off() {
        assert_eq!(retry_delay(&api_error(422), 9), Duration::from_secs(256));
        assert_eq!(retry_delay(&api_error(422), 3), Duration::from_secs(4));
        assert_eq!(retry_delay(&api_error(409), 9), Duration::from_millis(500));
        assert_eq!(retry_delay(&api_error(503), 9), OUTAGE_RETRY);
        assert_eq!(retry_delay(&Error::Timeout, 2), Duration::from_secs(2));
        assert_eq!(
            retry_delay(&Error::CachesNotReady("Customers"), 20),
            OUTAGE_RETRY
        );
    }

    #[test]
    fn watches_reconnect_within_four_seconds() {
        let mut backoff = WatchBackoff::default();
        let delays: Vec<Duration> = backoff.by_ref().take(7).collect();
        assert_eq!(delays[0], Duration::from_millis(250));
        assert_eq!(delays[6], Duration::from_secs(4));
        kube::runtime::utils::Backoff::reset(&mut backoff);
        assert_eq!(backoff.next(), Some(Duration::from_millis(250)));
    }
}
