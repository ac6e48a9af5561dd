//! The operator's Prometheus metrics (prometheus-client), served on `/metrics`.
//!
//! Counters and the histogram are updated as reconciles and applies happen; the gauges of
//! managed objects and of customers by condition are read from the controller's caches
//! at scrape time, so they are never stale and cost nothing between scrapes.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::FutureExt;
use futures::future::BoxFuture;
use kube::Resource;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::api::{Customer, CustomerGroup};

/// A failed reconcile, as the metrics count it: by a short CamelCase reason.
pub trait Failure {
    /// The reason.
    fn reason(&self) -> &'static str;
}

/// Prefix of every metric name.
pub const PREFIX: &str = "customer_operator";

/// Content type of the text the registry encodes (OpenMetrics, which Prometheus reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of a per-kind metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// `Customer` or `CustomerGroup`.
    pub kind: String,
}

/// Labels of a failed reconcile.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// `Customer` or `CustomerGroup`.
    pub kind: String,
    /// The error's reason ([`Error::reason`]).
    pub reason: String,
}

/// Labels of a write to a managed object.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApplyLabels {
    /// Kind of the object (`Namespace`, `NetworkPolicy`, ...).
    pub kind: String,
    /// `create`, `update` or `drift` (see [`Applied`]).
    pub cause: String,
}

/// What the caches hold, for the gauges computed at scrape time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterState {
    /// Objects carrying the operator's managed-by label, by kind.
    pub managed: BTreeMap<&'static str, i64>,
    /// Customers by (condition type, condition status).
    pub conditions: BTreeMap<(String, String), i64>,
}

type Source = Box<dyn Fn() -> Option<ClusterState> + Send + Sync>;

/// Reads the [`ClusterState`] at scrape time from whatever the controller registered.
#[derive(Default)]
struct StateCollector {
    source: Mutex<Option<Source>>,
}

impl fmt::Debug for StateCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StateCollector")
    }
}

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let state = match self.source.lock().expect("metrics source lock").as_ref() {
            Some(source) => source(),
            None => None,
        };
        let Some(state) = state else {
            return Ok(());
        };
        {
            let mut managed = encoder.encode_descriptor(
                "managed_objects",
                "Objects the operator manages (carrying its managed-by label), by kind.",
                None,
                MetricType::Gauge,
            )?;
            for (kind, count) in &state.managed {
                managed
                    .encode_family(&[("kind", *kind)])?
                    .encode_gauge(count)?;
            }
        }
        let mut customers = encoder.encode_descriptor(
            "customers",
            "Customers by condition type and status.",
            None,
            MetricType::Gauge,
        )?;
        for ((condition, status), count) in &state.conditions {
            customers
                .encode_family(&[
                    ("condition", condition.as_str()),
                    ("status", status.as_str()),
                ])?
                .encode_gauge(count)?;
        }
        Ok(())
    }
}

/// Every metric of the operator, and the registry that serves them.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<KindLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    duration: Family<KindLabels, Histogram, fn() -> Histogram>,
    applies: Family<ApplyLabels, Counter>,
    leader: Gauge,
    state: Arc<StateCollector>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn duration_histogram() -> Histogram {
    // 5 ms to about 20 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 13))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh set of metrics in a registry of its own.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let reconciles = Family::<KindLabels, Counter>::default();
        let failures = Family::<FailureLabels, Counter>::default();
        let duration = Family::<KindLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram,
        );
        let applies = Family::<ApplyLabels, Counter>::default();
        let leader = Gauge::default();
        let state = Arc::new(StateCollector::default());
        registry.register(
            "reconciles",
            "Reconciles run to completion (successful or not), by kind",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_failures",
            "Reconciles that failed, by kind and reason",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took, by kind",
            duration.clone(),
        );
        registry.register(
            "applies",
            "Server-side applies of managed objects, by kind and cause: create (the object \
             was missing), update (what the operator wants changed), drift (someone else \
             changed the object and the operator put it back)",
            applies.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica runs the controllers (holds the lease, or runs without \
             leader election), else 0",
            leader.clone(),
        );
        registry.register_collector(Box::new(state.clone()));
        for kind in [Customer::kind(&()), CustomerGroup::kind(&())] {
            let labels = KindLabels {
                kind: kind.to_string(),
            };
            let _ = reconciles.get_or_create(&labels);
        }
        Metrics {
            registry,
            reconciles,
            failures,
            duration,
            applies,
            leader,
            state,
        }
    }

    /// The metrics as OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail; an encoder error would be a bug in a collector.
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::warn!(%error, "encoding metrics failed");
        }
        text
    }

    /// Runs one reconcile of an object of `kind`, counting it, timing it and counting
    /// its failure by reason.
    pub async fn measure<T, E, F>(self: Arc<Self>, kind: String, reconcile: F) -> Result<T, E>
    where
        E: Failure,
        F: Future<Output = Result<T, E>>,
    {
        let started = Instant::now();
        let result = reconcile.await;
        let labels = KindLabels { kind };
        self.duration
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        self.reconciles.get_or_create(&labels).inc();
        if let Err(error) = &result {
            self.failures
                .get_or_create(&FailureLabels {
                    kind: labels.kind.clone(),
                    reason: error.reason().to_string(),
                })
                .inc();
        }
        result
    }

    /// Wraps a reconcile function so that every reconcile it runs is measured (see
    /// [`Metrics::measure`]) under the kind of `K`.
    pub fn measured<K, C, T, E, F>(
        self: &Arc<Self>,
        reconcile: fn(Arc<K>, Arc<C>) -> F,
    ) -> impl FnMut(Arc<K>, Arc<C>) -> BoxFuture<'static, Result<T, E>> + use<K, C, T, E, F>
    where
        K: Resource<DynamicType = ()>,
        T: Send + 'static,
        E: Failure + Send + 'static,
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        let metrics = self.clone();
        let kind = K::kind(&()).to_string();
        move |object, ctx| {
            metrics
                .clone()
                .measure(kind.clone(), reconcile(object, ctx))
                .boxed()
        }
    }

    /// Counts one server-side apply of an object of `kind` for `cause` (`create`,
    /// `update` or `drift`; nothing for `None`, an apply skipped because nothing
    /// changed).
    pub fn applied(&self, kind: &str, cause: Option<&str>) {
        let Some(cause) = cause else {
            return;
        };
        self.applies
            .get_or_create(&ApplyLabels {
                kind: kind.to_string(),
                cause: cause.to_string(),
            })
            .inc();
    }

    /// Sets the leader gauge.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Reads the managed-object and customer gauges from `source` at every scrape; a
    /// source that answers `None` (its controller has stopped) leaves them out.
    pub fn observe_cluster(
        &self,
        source: impl Fn() -> Option<ClusterState> + Send + Sync + 'static,
    ) {
        *self.state.source.lock().expect("metrics source lock") = Some(Box::new(source));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reconcile failure for the test.
    #[derive(Debug)]
    struct Timeout;

    impl Failure for Timeout {
        fn reason(&self) -> &'static str {
            "Timeout"
        }
    }

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
    }

    #[tokio::test]
    async fn counts_reconciles_failures_and_applies() {
        let metrics = Arc::new(Metrics::new());
        let text = metrics.encode();
        assert_eq!(
            value(
                &text,
                r#"customer_operator_reconciles_total{kind="Customer"}"#
            ),
            Some(0.0)
        );
        assert!(!text.contains("customer_operator_managed_objects"));
        metrics
            .clone()
            .measure("Customer".into(), async { Ok::<_, Timeout>(()) })
            .await
            .unwrap();
        let _ = metrics
            .clone()
            .measure("Customer".into(), async { Err::<(), _>(Timeout) })
            .await;
        metrics.applied("NetworkPolicy", Some("drift"));
        metrics.applied("NetworkPolicy", None);
        metrics.applied("Namespace", Some("create"));
        metrics.set_leader(true);
        metrics.observe_cluster(|| {
            Some(ClusterState {
                managed: [("Namespace", 3)].into(),
                conditions: [(("Ready".into(), "True".into()), 2)].into(),
            })
        });
        let text = metrics.encode();
        for (series, expected) in [
            (
                r#"customer_operator_reconciles_total{kind="Customer"}"#,
                2.0,
            ),
            (
                r#"customer_operator_reconcile_failures_total{kind="Customer",reason="Timeout"}"#,
                1.0,
            ),
            (
                r#"customer_operator_reconcile_duration_seconds_count{kind="Customer"}"#,
                2.0,
            ),
            (
                r#"customer_operator_applies_total{kind="NetworkPolicy",cause="drift"}"#,
                1.0,
            ),
            (
                r#"customer_operator_applies_total{kind="Namespace",cause="create"}"#,
                1.0,
            ),
            ("customer_operator_leader", 1.0),
            (
                r#"customer_operator_managed_objects{kind="Namespace"}"#,
                3.0,
            ),
            (
                r#"customer_operator_customers{condition="Ready",status="True"}"#,
                2.0,
            ),
        ] {
            assert_eq!(value(&text, series), Some(expected), "{series}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
