//! The Customer and CustomerGroup controllers behind `customer-operator run`.
//!
//! [`caches`] builds every cache and the streams that fill them, [`triggers`] says who
//! is reconciled when something changes, [`wiring`] assembles the two controllers, and
//! [`reconcile`] is one Customer's reconcile, a pipeline of steps (validate, build, plan
//! the namespaces, apply, check the isolation, write the status).

pub mod app_projects;
pub mod apply;
pub mod caches;
pub mod check_isolation;
pub mod children;
pub mod claim;
pub mod cleanup;
pub mod cluster_policies;
pub mod compact;
pub mod counting;
pub mod decode;
pub mod error;
pub mod events;
pub mod finalizer;
pub mod group;
pub mod index;
pub mod inflight;
pub mod namespaces;
pub mod partner;
pub mod plan;
pub mod reconcile;
pub mod related;
pub mod resync;
pub mod retry;
pub mod roles;
pub mod status;
pub mod status_write;
pub mod sweep;
pub mod synced;
pub mod total_quota;
pub mod triggers;
pub mod unreadable;
pub mod wiring;

use std::sync::Arc;
use std::time::Duration;

use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::api::CLUSTER_NETWORK_POLICY_CRD;
use crate::cidr::Cidr;
use crate::operate::health::Phase;
use crate::operate::metrics::Metrics;
use crate::operate::{self, Hooks};
use crate::settings::{IsolationBackend, Settings};
use error::{Error, Result};

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Cluster-wide settings that shape every customer's objects.
    pub settings: Settings,
    /// Customers reconciled at the same time.
    pub concurrency: u16,
    /// How often an unchanged Customer is checked again.
    pub resync: Duration,
    /// Counts reconciles per Customer.
    pub reconciles: counting::ReconcileCounter,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            settings: Settings::default(),
            concurrency: 8,
            resync: Duration::from_secs(300),
            reconciles: Default::default(),
        }
    }
}

/// What every reconcile shares: the client, the caches and what the operator wrote.
pub struct Context {
    /// The client, as the operator's ServiceAccount.
    pub client: Client,
    /// How the controller runs.
    pub options: Options,
    /// Every cache.
    pub caches: caches::Caches,
    /// Where pods have their addresses (`Settings::pod_cidrs`), parsed.
    pub pod_ranges: Vec<Cidr>,
    /// Consecutive failures per Customer, for backoff.
    pub failures: retry::Failures,
    /// Where applies are counted.
    pub metrics: Arc<Metrics>,
    /// Writes the caches have not seen yet.
    pub in_flight: Arc<inflight::InFlight>,
    /// When each Customer was last reconciled, for the periodic pass ([`resync`]).
    pub last_reconciled: Arc<resync::LastReconciled>,
    /// The customer ClusterRoles that do not exist ([`roles::missing_roles`]).
    pub missing_roles: roles::MissingRoles,
}

impl Context {
    /// Waits until every cache has been filled once, so a decision never rests on a
    /// cache that has not listed yet. Gives up after 20 s (the caches stop filling when
    /// the controller shuts down), naming the cache, and the reconcile is retried.
    pub async fn caches_ready(&self) -> Result<()> {
        let sync = &self.caches.sync;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        match tokio::time::timeout_at(deadline, sync.wait()).await {
            Ok(()) => Ok(()),
            Err(_) => Err(Error::CachesNotReady(
                sync.pending().first().copied().unwrap_or("some"),
            )),
        }
    }

    /// Applies `object` unless `live` (the live object as JSON) already matches it (see
    /// [`apply::plan`]) or the cache has not yet seen the operator's own write of the
    /// same content ([`inflight`]), and counts the apply in the metrics.
    pub async fn apply<K>(
        &self,
        api: &Api<K>,
        object: &K,
        live: Option<&serde_json::Value>,
    ) -> Result<apply::Applied>
    where
        K: Resource<DynamicType = ()>
            + serde::Serialize
            + DeserializeOwned
            + Clone
            + std::fmt::Debug,
    {
        let (applied, outcome) = apply::plan(object, live)?;
        if outcome == apply::Applied::Unchanged {
            return Ok(outcome);
        }
        let kind = K::kind(&());
        let target = inflight::target(&kind, object);
        let content = apply::content_hash(&applied);
        let send = async {
            apply::send(api, &object.name_any(), &applied)
                .await
                .map_err(|error| apply::refusal(error, object))
        };
        if self.write_once(target, content, send).await?.is_none() {
            return Ok(apply::Applied::InFlight);
        }
        self.metrics.applied(&kind, outcome.cause());
        Ok(outcome)
    }

    /// Sends `write` unless it would repeat a write of the same `content` to `target`
    /// that the cache of its kind does not show yet ([`inflight`]); then remembers the
    /// resourceVersion the apiserver stored. `None` when nothing was sent.
    pub async fn write_once<K: Resource>(
        &self,
        target: inflight::Target,
        content: u64,
        write: impl std::future::Future<Output = Result<K>>,
    ) -> Result<Option<K>> {
        let progress = self.caches.progress.seen(inflight::watched_kind(&target));
        self.send_once(target, content, progress, write).await
    }

    /// Sends `write`, a write to `part` (a kind, with a subresource if any) of `snapshot`
    /// computed from the object as the reconcile found it, unless it would repeat a
    /// write of the same `content` that the snapshot does not show: one the watch
    /// delivered only after the snapshot was taken counts as in flight too.
    pub async fn write_once_over<S: Resource, K: Resource>(
        &self,
        snapshot: &S,
        part: &str,
        content: u64,
        write: impl std::future::Future<Output = Result<K>>,
    ) -> Result<Option<K>> {
        let seen = inflight::seen_in(snapshot);
        self.send_once(inflight::target(part, snapshot), content, seen, write)
            .await
    }

    /// Sends `write` unless it repeats a write of `content` to `target` that a view of
    /// the objects reaching resourceVersion `seen` does not show yet.
    async fn send_once<K: Resource>(
        &self,
        target: inflight::Target,
        content: u64,
        seen: u64,
        write: impl std::future::Future<Output = Result<K>>,
    ) -> Result<Option<K>> {
        if self.in_flight.repeats(&target, content, seen) {
            return Ok(None);
        }
        let stored = write.await?;
        let version = stored.meta().resource_version.clone();
        self.in_flight.record(target, content, version.as_deref());
        Ok(Some(stored))
    }

    /// When to look at a Customer again: after the resync period when it is `settled`,
    /// else [`SOON`].
    pub fn requeue(&self, settled: bool) -> kube::runtime::controller::Action {
        let after = if settled { self.options.resync } else { SOON };
        kube::runtime::controller::Action::requeue(after)
    }

    /// Whether the operator wrote `object` as it is now a moment ago and the cache does
    /// not show that write yet (see [`inflight`]).
    pub fn written_just_now<K>(&self, object: &K) -> Result<bool>
    where
        K: Resource<DynamicType = ()> + serde::Serialize,
    {
        let target = inflight::target(&K::kind(&()), object);
        let content = apply::content_hash(&apply::applied_form(object)?);
        let progress = self.caches.progress.seen(inflight::watched_kind(&target));
        Ok(self.in_flight.repeats(&target, content, progress))
    }
}

/// Requeue while something is still on its way (namespaces terminating, conflicts).
pub const SOON: Duration = Duration::from_secs(5);

/// The Customer's uid (every Customer the apiserver holds has one).
pub fn uid_of(customer: &crate::api::Customer) -> Result<String> {
    customer
        .uid()
        .ok_or_else(|| Error::Serialize("Customer without uid".into()))
}

/// Runs the Customer controller until SIGTERM or SIGINT, with metrics nobody serves.
pub async fn run(client: Client, options: Options) -> crate::Result<()> {
    let hooks = Hooks {
        metrics: Arc::new(Metrics::new()),
        health: Default::default(),
        shutdown: operate::on_signals(),
    };
    run_with(client, options, hooks).await
}

/// Runs the Customer and CustomerGroup controllers until `hooks.shutdown` resolves, then
/// lets the reconciles in flight finish. Counts reconciles in `hooks.metrics` and
/// reports cache readiness in `hooks.health`.
pub async fn run_with(client: Client, options: Options, hooks: Hooks) -> crate::Result<()> {
    let pod_ranges = options.settings.pod_ranges()?;
    hooks.health.set(Phase::Syncing);
    let unreadable = decode::Unreadable::default();
    let caches::Watched {
        caches,
        changes,
        group_members,
        claims,
        partners,
    } = caches::Caches::watch(
        &client,
        options.resync,
        &unreadable,
        cluster_policies_in_view(&client, &options.settings).await?,
        app_projects::namespace_in_view(&client, &options.settings)
            .await?
            .as_deref(),
        caches::serves_streaming_lists(&client).await,
    );
    tokio::spawn(unreadable::report(client.clone(), unreadable));
    let context = Arc::new(Context {
        client,
        options,
        caches,
        pod_ranges,
        failures: Default::default(),
        metrics: hooks.metrics.clone(),
        in_flight: Default::default(),
        last_reconciled: Default::default(),
        missing_roles: Default::default(),
    });
    let weak = Arc::downgrade(&context);
    hooks
        .metrics
        .observe_cluster(move || weak.upgrade().map(|ctx| ctx.caches.cluster_state()));
    let synced = tokio::spawn({
        let (sync, health) = (context.caches.sync.clone(), hooks.health.clone());
        async move {
            sync.wait().await;
            health.advance(Phase::Syncing, Phase::Ready);
            tracing::info!("caches filled: ready");
        }
    });
    futures::join!(
        wiring::customer_controller(context.clone(), changes, &hooks),
        wiring::group_controller(context.clone(), group_members, &hooks),
        wiring::claim_controller(context.clone(), claims, &hooks),
        wiring::partner_controller(context, partners, &hooks),
    );
    synced.abort();
    Ok(())
}

/// Whether to watch ClusterNetworkPolicies: whenever the cluster serves them (the
/// operator's may need pruning after a switch back to NetworkPolicies). The
/// ClusterNetworkPolicy backend on a cluster without them is a configuration error.
async fn cluster_policies_in_view(client: &Client, settings: &Settings) -> crate::Result<bool> {
    let served = cluster_policies::served(client)
        .await
        .map_err(|e| crate::error::Error::Config(e.to_string()))?;
    if settings.isolation_backend == IsolationBackend::ClusterNetworkPolicy && !served {
        return Err(crate::error::Error::Config(format!(
            "--isolation-backend ClusterNetworkPolicy: the cluster does not serve ClusterNetworkPolicies (no CRD {CLUSTER_NETWORK_POLICY_CRD}, or the operator may not read it); install it (the chart's clusterNetworkPolicy.installCRD) or use --isolation-backend NetworkPolicy"
        )));
    }
    Ok(served)
}

#[cfg(test)]
mod fixtures;
