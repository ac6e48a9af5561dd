//! The Customer controller: watches Customers, their groups and every child the operator
//! labels, and reconciles each Customer through `desired/`.

pub mod apply;
pub mod compact;
pub mod counting;
pub mod decode;
pub mod events;
pub mod group;
pub mod index;
pub mod inflight;
pub mod isolation;
pub mod reconcile;
pub mod status;
pub mod synced;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;

use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Config as WatcherConfig, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::api::{
    ANNOTATION_ADOPT, Customer, CustomerGroup, LABEL_CUSTOMER, LABEL_MANAGED_BY, MANAGED_BY,
};
use crate::desired::{self, Directory, resolve};
use crate::error::Error;
use crate::isolation::cidr::Cidr;
use crate::operate::health::Phase;
use crate::operate::metrics::{self, Metrics};
use crate::operate::{self, Hooks};
use crate::settings::Settings;
use compact::Compact;

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

/// What every reconcile shares: the client and the caches.
pub struct Context {
    /// The client, as the operator's ServiceAccount.
    pub client: Client,
    /// How the controller runs.
    pub options: Options,
    /// All Customers.
    pub customers: Store<Customer>,
    /// All CustomerGroups.
    pub groups: Store<CustomerGroup>,
    /// Every namespace (metadata only): the customers' and everyone else's.
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    /// NetworkPolicies the operator labelled.
    pub policies: Store<Compact<NetworkPolicy>>,
    /// The names of every other NetworkPolicy (no
    /// `app.kubernetes.io/managed-by=customer-operator`) by namespace, from a
    /// metadata-only watch: the isolation check reads the ones in a customer's
    /// namespaces and evaluates them with the operator's.
    pub foreign_policies: index::Index,
    /// The names of the labelled namespaces by the Customer their label names.
    pub namespaces_by_customer: index::Index,
    /// RoleBindings the operator labelled.
    pub bindings: Store<Compact<RoleBinding>>,
    /// ResourceQuotas the operator labelled.
    pub quotas: Store<Compact<ResourceQuota>>,
    /// LimitRanges the operator labelled.
    pub limits: Store<Compact<LimitRange>>,
    /// Where pods have their addresses (`Settings::pod_cidrs`), parsed.
    pub pod_ranges: Vec<Cidr>,
    /// Consecutive failures per Customer, for backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// Where applies are counted.
    pub metrics: Arc<Metrics>,
    /// Which caches have listed once.
    pub sync: synced::CacheSync,
    /// How far the watch of each kind the operator writes has got.
    pub progress: inflight::Progresses,
    /// Writes the caches have not seen yet.
    pub in_flight: inflight::InFlight,
    /// The customer ClusterRoles that do not exist ([`missing_roles`]).
    pub missing_roles: Arc<std::sync::RwLock<std::collections::BTreeSet<String>>>,
}

impl Context {
    /// Waits until every cache has been filled once, so a decision never rests on a
    /// cache that has not listed yet. Gives up after 20 s (the caches stop filling when
    /// the controller shuts down), naming the cache, and the reconcile is retried.
    pub async fn caches_ready(&self) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        match tokio::time::timeout_at(deadline, self.sync.wait()).await {
            Ok(()) => Ok(()),
            Err(_) => Err(Error::CachesNotReady(
                self.sync.pending().first().copied().unwrap_or("some"),
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
    ) -> Result<apply::Applied, Error>
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
        let sent = self
            .write_once(
                target,
                content,
                apply::send(api, &object.name_any(), &applied),
            )
            .await
            .map_err(|error| apply::refusal(error, &kind, object))?;
        if sent.is_none() {
            return Ok(apply::Applied::InFlight);
        }
        self.metrics.applied(&kind, outcome);
        Ok(outcome)
    }

    /// Sends `write` unless it would repeat a write of the same `content` to `target`
    /// that the cache of its kind does not show yet ([`inflight`]); then remembers the
    /// resourceVersion the apiserver stored. `None` when nothing was sent.
    pub async fn write_once<K: Resource>(
        &self,
        target: inflight::Target,
        content: u64,
        write: impl std::future::Future<Output = Result<K, Error>>,
    ) -> Result<Option<K>, Error> {
        let progress = self.progress.seen(inflight::watched_kind(&target));
        if self.in_flight.repeats(&target, content, progress) {
            return Ok(None);
        }
        let stored = write.await?;
        let version = stored.meta().resource_version.clone();
        self.in_flight
            .record(target, content, version.as_deref(), progress);
        Ok(Some(stored))
    }

    /// Whether the operator wrote `object` as it is now a moment ago and the cache does
    /// not show that write yet (see [`inflight`]).
    pub fn written_just_now<K>(&self, object: &K) -> Result<bool, Error>
    where
        K: Resource<DynamicType = ()> + serde::Serialize,
    {
        let target = inflight::target(&K::kind(&()), object);
        let content = apply::content_hash(&apply::applied_form(object)?);
        let progress = self.progress.seen(inflight::watched_kind(&target));
        Ok(self.in_flight.repeats(&target, content, progress))
    }
}

impl Directory for Context {
    fn customer(&self, name: &str) -> Option<Arc<Customer>> {
        self.customers.get(&ObjectRef::new(name))
    }
    fn group(&self, name: &str) -> Option<Arc<CustomerGroup>> {
        self.groups.get(&ObjectRef::new(name))
    }
    fn customers(&self) -> Vec<Arc<Customer>> {
        self.customers.state()
    }
    fn namespace(&self, namespace: &str) -> desired::Existing {
        use desired::Existing;
        let Some(ns) = self.namespaces.get(&ObjectRef::new(namespace)) else {
            return Existing::Absent;
        };
        if let Some(uid) = desired::ownership::owner_uid(&ns.metadata) {
            // The customer it records, found by its label or, when the label was
            // removed or changed, by the namespace's name; or the customer its label
            // names that is gone (its namespace still waits for deletion). Not a former
            // incarnation's leftover.
            let label = ns.labels().get(LABEL_CUSTOMER);
            let named = label.map(|l| ObjectRef::new(l));
            let recorded = named
                .iter()
                .cloned()
                .chain(claimants(namespace, &self.customers))
                .find(|c| {
                    self.customers
                        .get(c)
                        .is_some_and(|c| c.uid().as_deref() == Some(uid))
                });
            if let Some(holder) = recorded {
                return Existing::HeldBy(holder.name);
            }
            if let Some(holder) =
                label.filter(|_| named.is_some_and(|n| self.customers.get(&n).is_none()))
            {
                return Existing::HeldBy(holder.clone());
            }
        }
        match ns.annotations().get(ANNOTATION_ADOPT) {
            Some(to) => Existing::HandedTo(to.clone()),
            None => Existing::Foreign,
        }
    }
    fn owned_namespaces(&self, customer: &str, uid: &str) -> Vec<String> {
        reconcile::own_namespaces(self, customer, uid)
            .iter()
            .map(|ns| ns.name_any())
            .collect()
    }
}

/// The watcher settings for objects the operator labels.
fn managed() -> WatcherConfig {
    WatcherConfig::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY}"))
}

/// The label selector of the NetworkPolicies the operator did not write.
pub fn foreign_selector() -> String {
    format!("{LABEL_MANAGED_BY}!={MANAGED_BY}")
}

/// Drops `managedFields` before an object enters a cache: the operator never reads them,
/// and they are often the larger part of a small object.
fn forget_managed_fields<K: Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
}

/// Drops what the operator never reads from a Customer before it enters the cache:
/// `managedFields` and the annotations (`kubectl apply` keeps a copy of the whole object
/// in one of them).
fn trim_customer(customer: &mut Customer) {
    let meta = customer.meta_mut();
    meta.managed_fields = None;
    meta.annotations = None;
}

/// The Customer a labelled child belongs to.
fn owner_of<K: Resource>(child: &K) -> Option<ObjectRef<Customer>> {
    child
        .meta()
        .labels
        .as_ref()?
        .get(LABEL_CUSTOMER)
        .map(|name| ObjectRef::new(name))
}

/// The cached Customers whose names could begin a namespace's name (`a` and `a-b` for
/// `a-b-c`): the ones that may ask for it. A namespace whose customer label was removed
/// or changed, or a foreign one that appears or goes, concerns them.
fn claimants(namespace: &str, customers: &Store<Customer>) -> Vec<ObjectRef<Customer>> {
    namespace
        .match_indices('-')
        .map(|(at, _)| &namespace[..at])
        .chain([namespace])
        .map(ObjectRef::new)
        .filter(|candidate| customers.get(candidate).is_some())
        .collect()
}

/// A reflector over the children of one kind that `config` selects, kept in compact
/// form, as a stream that also drives it; `sync` learns when it has listed once.
fn reflected<K>(
    client: &Client,
    config: WatcherConfig,
    sync: &synced::CacheSync,
    name: &'static str,
    progress: &inflight::Progresses,
) -> (
    Store<Compact<K>>,
    impl futures::Stream<Item = Result<Compact<K>, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let stream = watcher(Api::<Compact<K>>::all(client.clone()), config)
        .backoff(WatchBackoff::default())
        .reflect(writer);
    let stream = inflight::follow(progress.of::<K>(), stream);
    (store, sync.mark(name, stream).touched_objects())
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
    let sync = synced::CacheSync::new(&[
        "Customers",
        "CustomerGroups",
        "Namespaces",
        "NetworkPolicies",
        "foreign NetworkPolicies",
        "RoleBindings",
        "ResourceQuotas",
        "LimitRanges",
    ]);
    let progresses = inflight::Progresses::new();
    let (namespaces, namespace_writer) = reflector::store();
    let namespaces_by_customer =
        index::Index::new(|meta| meta.labels.as_ref()?.get(LABEL_CUSTOMER).cloned());
    let namespace_stream = sync
        .mark(
            "Namespaces",
            namespaces_by_customer.follow(inflight::follow(
                progresses.of::<Namespace>(),
                // Every namespace, not only the labelled ones: a namespace that exists
                // and is no customer's must be known to be foreign (never a peer), and
                // one whose label was removed must stay in view to be repaired.
                watcher(
                    Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
                    WatcherConfig::default(),
                )
                .backoff(WatchBackoff::default())
                .modify(forget_managed_fields)
                .reflect(namespace_writer),
            )),
        )
        .touched_objects();
    let (policies, policy_stream) =
        reflected::<NetworkPolicy>(&client, managed(), &sync, "NetworkPolicies", &progresses);
    // Where everyone else's NetworkPolicies are, for the isolation check: names by
    // namespace only (a cluster may hold many, and few of them are in customer
    // namespaces).
    let foreign_policies = index::Index::new(|meta| meta.namespace.clone());
    let foreign_policy_stream = sync
        .mark(
            "foreign NetworkPolicies",
            foreign_policies.follow(
                watcher(
                    Api::<PartialObjectMeta<NetworkPolicy>>::all(client.clone()),
                    WatcherConfig::default().labels(&foreign_selector()),
                )
                .backoff(WatchBackoff::default()),
            ),
        )
        .touched_objects();
    let (bindings, binding_stream) =
        reflected::<RoleBinding>(&client, managed(), &sync, "RoleBindings", &progresses);
    let (quotas, quota_stream) =
        reflected::<ResourceQuota>(&client, managed(), &sync, "ResourceQuotas", &progresses);
    let (limits, limit_stream) =
        reflected::<LimitRange>(&client, managed(), &sync, "LimitRanges", &progresses);
    let (groups, group_writer) = reflector::store();
    let group_stream = sync
        .mark(
            "CustomerGroups",
            watcher(
                Api::<CustomerGroup>::all(client.clone()),
                WatcherConfig::default(),
            )
            .backoff(WatchBackoff::default())
            .reflect(group_writer),
        )
        .touched_objects();

    let unreadable = decode::Unreadable::default();
    let (customers, customer_writer) = reflector::store::<Customer>();
    let for_decode = unreadable.clone();
    // One watch of Customers feeds the cache and, through channels, the two streams of
    // changed Customers (related customers, group members): the apiserver sends every
    // Customer event once.
    let (touched, related_stream, member_stream) = decode::Touched::channels();
    let trouble = Trouble::default();
    let sweep = missed_customers(
        client.clone(),
        customers.clone(),
        options.resync,
        trouble.clone(),
    );
    let customer_progress = progresses.of::<Customer>();
    let sweep_cache = customers.clone();
    let customer_stream = sync
        .mark(
            "Customers",
            inflight::follow(
                customer_progress,
                futures::stream::select(
                    watcher(decode::untyped(&client), WatcherConfig::default())
                        .backoff(WatchBackoff::default())
                        .map(|event| (false, event)),
                    sweep.map(|event| (true, event)),
                )
                // What the sweep read may be older than what the watch delivered since: it
                // must never take the cache back (checked here, in the same pass over the
                // stream as the cache update, so nothing can come in between).
                .filter_map(move |(swept, event)| {
                    let news = !swept || event.as_ref().is_ok_and(|e| news_to(&sweep_cache, e));
                    futures::future::ready(news.then_some(event))
                })
                .filter_map(move |event| {
                    let decoded = match event {
                        Ok(event) => decode::decode_event(event, &for_decode).map(Ok),
                        Err(error) => {
                            trouble.report();
                            Some(Err(error))
                        }
                    };
                    futures::future::ready(decoded)
                })
                .modify(trim_customer)
                .inspect(move |event| {
                    if let Ok(event) = event {
                        touched.send(event);
                    }
                })
                .reflect(customer_writer),
            ),
        )
        .applied_objects();
    tokio::spawn(decode::report(client.clone(), unreadable));
    let controller = Controller::for_stream(customer_stream, customers.clone())
        .with_config(ControllerConfig::default().concurrency(options.concurrency))
        .trigger_backoff(BriefPause);
    let default_group = options.settings.default_group.clone();
    let context = Arc::new(Context {
        client: client.clone(),
        options,
        customers: customers.clone(),
        groups: groups.clone(),
        namespaces,
        policies,
        foreign_policies,
        namespaces_by_customer,
        bindings,
        quotas,
        limits,
        pod_ranges,
        failures: Mutex::new(HashMap::new()),
        metrics: hooks.metrics.clone(),
        sync: sync.clone(),
        progress: progresses,
        in_flight: Default::default(),
        missing_roles: Default::default(),
    });
    let weak = Arc::downgrade(&context);
    hooks
        .metrics
        .observe_cluster(move || weak.upgrade().map(|ctx| metrics::cluster_state(&ctx)));
    let synced = tokio::spawn({
        let health = hooks.health.clone();
        async move {
            sync.wait().await;
            health.advance(Phase::Syncing, Phase::Ready);
            tracing::info!("caches filled: ready");
        }
    });
    // A trigger that names a Customer the cache does not hold yet is dropped by the
    // runtime; a periodic pass over every cached Customer makes sure none is forgotten.
    let resync = context.options.resync;
    let group_controller = group_controller(
        &client,
        member_stream,
        context.clone(),
        default_group.clone(),
        resync,
        &hooks,
    );
    let members_store = customers.clone();
    let related_store = customers.clone();
    let groups_for_related = groups.clone();
    let default_for_members = default_group.clone();
    // A policy change concerns the customer whose namespace holds it; a new or
    // relabelled namespace also concerns the customers whose policies select namespaces
    // by labels.
    let (ns_for_policies, ns_by_customer) = (
        context.namespaces.clone(),
        context.namespaces_by_customer.clone(),
    );
    let (policies_for_namespaces, customers_for_namespaces) =
        (context.foreign_policies.clone(), customers.clone());
    let ns_for_foreign = context.namespaces.clone();
    let customers_for_claims = customers.clone();
    let presence = ApiPresence::new(&hooks.health);
    let customer_controller = controller
        .watches_stream(namespace_stream, move |ns| {
            let exposed = isolation::customers_exposed_to_new_namespaces(
                &policies_for_namespaces,
                &ns_by_customer,
                &customers_for_namespaces,
            );
            owner_of(&ns)
                .into_iter()
                .chain(claimants(&ns.name_any(), &customers_for_claims))
                .chain(exposed)
                .collect::<Vec<_>>()
        })
        .watches_stream(policy_stream, move |p| {
            isolation::customers_of_policy(p.meta(), &ns_for_policies)
        })
        .watches_stream(foreign_policy_stream, move |p| {
            isolation::customers_of_policy(&p.metadata, &ns_for_foreign)
        })
        .watches_stream(binding_stream, |o| owner_of(&o))
        .watches_stream(quota_stream, |o| owner_of(&o))
        .watches_stream(limit_stream, |o| owner_of(&o))
        .watches_stream(group_stream, move |group: CustomerGroup| {
            desired::members(
                &group.name_any(),
                &members_store.state(),
                &default_for_members,
            )
            .into_iter()
            .map(|name| ObjectRef::new(&name))
            .collect::<Vec<_>>()
        })
        .watches_stream(related_stream, move |changed: Customer| {
            let zone_open = |group: &str| {
                groups_for_related
                    .get(&ObjectRef::new(group))
                    .and_then(|g| g.spec.network.clone())
                    .is_some_and(|n| n.allow_within_group)
            };
            desired::dependents(&changed, &related_store.state(), &default_group, zone_open)
                .into_iter()
                .map(|name| ObjectRef::new(&name))
                .collect::<Vec<_>>()
        })
        .reconcile_all_on(ticks(resync))
        .reconcile_all_on(missing_roles(client.clone(), context.missing_roles.clone()))
        .graceful_shutdown_on(hooks.shutdown.clone())
        .run(
            hooks.metrics.measured(reconcile::reconcile),
            error_policy,
            context,
        )
        .for_each(move |result| {
            match result {
                Ok((object, _)) => {
                    presence.served();
                    tracing::debug!(customer = %object.name, "reconciled")
                }
                Err(kube::runtime::controller::Error::ObjectNotFound(object)) => {
                    tracing::debug!(customer = %object.name, "gone before its reconcile")
                }
                // error_policy has logged it, with the Customer, the reason and the retry.
                Err(kube::runtime::controller::Error::ReconcilerFailed(_, object)) => {
                    tracing::debug!(customer = %object.name, "reconcile failed, retry scheduled")
                }
                Err(kube::runtime::controller::Error::QueueError(error))
                    if presence.missing(&error) => {}
                Err(error) => tracing::warn!(%error, "reconcile failed"),
            }
            futures::future::ready(())
        });
    futures::join!(customer_controller, group_controller);
    synced.abort();
    Ok(())
}

/// A safety net for watch events that never arrive: the Customers the apiserver lists
/// but the cache does not hold or holds in another version (each read again just
/// before, so that one deleted meanwhile is not brought back) are fed to the cache as if
/// the watch had delivered them, and cached ones the apiserver no longer has are
/// removed. Added after the 1.20 test apiserver was seen to drop a Customer created
/// while the operator's watch was starting or right after a restart; kept on current
/// versions as a safety net that costs one paged list of names and versions per period.
///
/// It runs every `period`, and also 3 s and 15 s after the Customer watch reported an
/// error (the apiserver went away or restarted), so that such a Customer waits seconds,
/// not a whole resync period.
fn missed_customers(
    client: Client,
    cache: Store<Customer>,
    period: Duration,
    trouble: Trouble,
) -> impl futures::Stream<Item = Result<watcher::Event<kube::api::DynamicObject>, watcher::Error>>
+ Send
+ 'static {
    sweep_times(period, trouble)
        .then(move |()| {
            let (api, cache) = (decode::untyped(&client), cache.clone());
            async move {
                let listed = match list_versions(&api).await {
                    Ok(listed) => listed,
                    Err(error) => {
                        tracing::debug!(%error, "listing Customers for the sweep failed");
                        return futures::stream::iter(Vec::new());
                    }
                };
                let mut missed = Vec::new();
                for object in &listed {
                    let name = object.name_any();
                    let cached = cache.get(&ObjectRef::new(&name));
                    // The cache holds this version or a newer one (as happens all the
                    // time while Customers change quickly): nothing to read.
                    if cached.as_ref().is_some_and(|c| !newer_than_cached(object, c)) {
                        continue;
                    }
                    if let Ok(Some(fresh)) = api.get_opt(&name).await {
                        if cached.is_none() {
                            tracing::warn!(customer = %name, "the watch missed this Customer; taking it from a list");
                        }
                        missed.push(Ok(watcher::Event::Apply(fresh)));
                    }
                }
                let names: std::collections::BTreeSet<String> =
                    listed.iter().map(|o| o.name_any()).collect();
                for gone in cache.state().iter().filter(|c| !names.contains(&c.name_any())) {
                    if let (Ok(None), Ok(object)) = (
                        api.get_opt(&gone.name_any()).await,
                        serde_json::from_value(serde_json::to_value(&**gone).unwrap_or_default()),
                    ) {
                        tracing::warn!(customer = %gone.name_any(), "the watch missed the deletion of this Customer");
                        missed.push(Ok(watcher::Event::Delete(object)));
                    }
                }
                futures::stream::iter(missed)
            }
        })
        .flatten()
}

/// Customers read per request by the sweep.
const SWEEP_PAGE: u32 = 100;

/// The metadata of every Customer, without `managedFields` and annotations, read a page
/// at a time: a full list, even of metadata only, carries every Customer's
/// `managedFields` and would be the largest allocation of the whole operator.
async fn list_versions(
    api: &Api<kube::api::DynamicObject>,
) -> kube::Result<Vec<PartialObjectMeta<kube::api::DynamicObject>>> {
    all_pages(|token| {
        let mut params = kube::api::ListParams::default().limit(SWEEP_PAGE);
        params.continue_token = token;
        async move {
            let page = api.list_metadata(&params).await?;
            let items = page.items.into_iter().map(|mut object| {
                object.metadata.managed_fields = None;
                object.metadata.annotations = None;
                object
            });
            Ok((items.collect(), page.metadata.continue_))
        }
    })
    .await
}

/// Every item of a paged list: `fetch` reads the page a continue token names (the first
/// with none) and returns its items and the next token (none or empty after the last).
async fn all_pages<T, F, P>(mut fetch: F) -> kube::Result<Vec<T>>
where
    F: FnMut(Option<String>) -> P,
    P: std::future::Future<Output = kube::Result<(Vec<T>, Option<String>)>>,
{
    let mut all = Vec::new();
    let mut token = None;
    loop {
        let (items, next) = fetch(token).await?;
        all.extend(items);
        match next {
            Some(next) if !next.is_empty() => token = Some(next),
            _ => return Ok(all),
        }
    }
}

/// Whether `object` is a version of a Customer the cache has not reached: the same
/// incarnation (uid) in a newer version, or another incarnation.
fn newer_than_cached<R: Resource>(object: &R, cached: &Customer) -> bool {
    if cached.uid() != object.uid() {
        return true;
    }
    let version = |v: Option<String>| inflight::numeric(v.as_deref());
    match (
        version(object.resource_version()),
        version(cached.resource_version()),
    ) {
        (Some(new), Some(old)) => new > old,
        _ => object.resource_version() != cached.resource_version(),
    }
}

/// Whether an event of the sweep ([`missed_customers`]) tells the cache something new:
/// a Customer it does not hold, or holds in an older version or another incarnation (uid),
/// or the deletion of the very one it holds.
fn news_to(cache: &Store<Customer>, event: &watcher::Event<kube::api::DynamicObject>) -> bool {
    let cached = |object: &kube::api::DynamicObject| cache.get(&ObjectRef::new(&object.name_any()));
    match event {
        watcher::Event::Apply(object) => {
            cached(object).is_none_or(|c| newer_than_cached(object, &c))
        }
        watcher::Event::Delete(object) => cached(object).is_some_and(|c| c.uid() == object.uid()),
        _ => true,
    }
}

/// When the Customer watch last reported an error, for [`missed_customers`].
#[derive(Clone, Default)]
struct Trouble(Arc<Mutex<Option<tokio::time::Instant>>>);

impl Trouble {
    fn report(&self) {
        *self.0.lock().expect("trouble lock") = Some(tokio::time::Instant::now());
    }
}

/// Yields every `period`, and 3 s and 15 s after each reported trouble.
fn sweep_times(
    period: Duration,
    trouble: Trouble,
) -> impl futures::Stream<Item = ()> + Send + 'static {
    let start = tokio::time::Instant::now();
    futures::stream::unfold(
        (start, Vec::<tokio::time::Instant>::new()),
        move |(mut last, mut pending)| {
            let trouble = trouble.clone();
            async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let now = tokio::time::Instant::now();
                    if let Some(at) = trouble.0.lock().expect("trouble lock").take() {
                        pending.push(at + Duration::from_secs(3));
                        pending.push(at + Duration::from_secs(15));
                    }
                    let due = pending.iter().any(|t| *t <= now);
                    pending.retain(|t| *t > now);
                    if due || now.duration_since(last) >= period {
                        last = now;
                        return Some(((), (last, pending)));
                    }
                }
            }
        },
    )
}

/// How often the customer ClusterRoles are looked up.
const ROLES_CHECK: Duration = Duration::from_secs(5);

/// Looks up the four customer ClusterRoles every [`ROLES_CHECK`], keeps the names of
/// those that do not exist in `missing`, and yields when that set changes (every
/// Customer's `AccessGranted` depends on it). A role that cannot be read (the
/// operator's RBAC does not allow it) counts as present.
fn missing_roles(
    client: Client,
    missing: Arc<std::sync::RwLock<std::collections::BTreeSet<String>>>,
) -> impl futures::Stream<Item = ()> + Send + 'static {
    use crate::desired::access::{ROLE_ADMIN, ROLE_EDIT, ROLE_SECURITY_CONSULTANT, ROLE_VIEW};
    use k8s_openapi::api::rbac::v1::ClusterRole;
    let api: Api<ClusterRole> = Api::all(client);
    futures::stream::unfold((api, missing), |(api, missing)| async move {
        loop {
            let mut now = std::collections::BTreeSet::new();
            for role in [ROLE_ADMIN, ROLE_EDIT, ROLE_VIEW, ROLE_SECURITY_CONSULTANT] {
                match api.get_metadata_opt(role).await {
                    Ok(None) => {
                        now.insert(role.to_string());
                    }
                    Ok(Some(_)) => {}
                    Err(error) => {
                        tracing::debug!(%error, role, "looking up a customer ClusterRole")
                    }
                }
            }
            let changed = *missing.read().expect("roles lock") != now;
            if changed {
                if !now.is_empty() {
                    tracing::warn!(roles = ?now, "customer ClusterRoles missing: the RoleBindings to them grant nothing");
                }
                *missing.write().expect("roles lock") = now;
                return Some(((), (api, missing)));
            }
            tokio::time::sleep(ROLES_CHECK).await;
        }
    })
}

/// A stream that yields once every `period`.
fn ticks(period: Duration) -> impl futures::Stream<Item = ()> + Send + 'static {
    futures::stream::unfold((), move |()| async move {
        tokio::time::sleep(period).await;
        Some(((), ()))
    })
}

/// The CustomerGroup controller: reconciles a group when it changes, when one of its
/// members changes, and every `resync`.
fn group_controller(
    client: &Client,
    member_stream: impl futures::Stream<Item = Result<Customer, watcher::Error>> + Send + 'static,
    directory: Arc<Context>,
    default_group: String,
    resync: Duration,
    hooks: &Hooks,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let context = Arc::new(group::GroupContext {
        client: client.clone(),
        customers: directory.customers.clone(),
        default_group: default_group.clone(),
        resync,
        directory,
    });
    let presence = ApiPresence::new(&hooks.health);
    Controller::new(
        Api::<CustomerGroup>::all(client.clone()),
        WatcherConfig::default(),
    )
    // Its own watch of groups backs off like every other watch: a shorter pause sent a
    // request (and a warning) five times a second while the CRD was gone.
    .trigger_backoff(WatchBackoff::default())
    .watches_stream(member_stream, move |customer: Customer| {
        // The group it is in, and the one its status still names (the one it leaves).
        let mut groups = vec![resolve::group_name_or(&customer, &default_group)];
        groups.extend(customer.status.as_ref().and_then(|s| s.group.clone()));
        groups.dedup();
        groups
            .into_iter()
            .map(|g| ObjectRef::new(&g))
            .collect::<Vec<_>>()
    })
    .reconcile_all_on(ticks(resync))
    .graceful_shutdown_on(hooks.shutdown.clone())
    .run(
        hooks.metrics.measured(group::reconcile),
        group::error_policy,
        context,
    )
    .for_each(move |result| {
        match result {
            Ok((object, _)) => {
                presence.served();
                tracing::debug!(group = %object.name, "reconciled")
            }
            Err(kube::runtime::controller::Error::ObjectNotFound(_)) => {}
            // group::error_policy has logged it, with the group and the reason.
            Err(kube::runtime::controller::Error::ReconcilerFailed(_, object)) => {
                tracing::debug!(group = %object.name, "group reconcile failed, retry scheduled")
            }
            Err(kube::runtime::controller::Error::QueueError(error))
                if presence.missing(&error) => {}
            Err(error) => tracing::warn!(%error, "group reconcile failed"),
        }
        futures::future::ready(())
    })
}

/// Whether the apiserver serves the operator's API, as the controllers' watches find it:
/// while it does not (the CRDs were deleted, an uninstall), `/readyz` reports not ready
/// and the watches' 404s are logged once, not at every retry.
#[derive(Clone)]
struct ApiPresence {
    health: crate::operate::health::Health,
    missing: Arc<std::sync::atomic::AtomicBool>,
}

impl ApiPresence {
    fn new(health: &crate::operate::health::Health) -> Self {
        ApiPresence {
            health: health.clone(),
            missing: Default::default(),
        }
    }

    /// Whether a watch error says the API is not served (404); the first one of an
    /// absence is logged and makes the replica not ready.
    fn missing(&self, error: &watcher::Error) -> bool {
        let not_found = match error {
            watcher::Error::InitialListFailed(kube::Error::Api(s))
            | watcher::Error::WatchStartFailed(kube::Error::Api(s))
            | watcher::Error::WatchFailed(kube::Error::Api(s)) => s.code == 404,
            watcher::Error::WatchError(s) => s.code == 404,
            _ => false,
        };
        if not_found {
            use std::sync::atomic::Ordering;
            if !self.missing.swap(true, Ordering::SeqCst) {
                tracing::warn!(
                    "the apiserver does not serve the customers.dev API (its CRDs were deleted?): waiting for it, not ready meanwhile"
                );
            }
            self.health.advance(Phase::Ready, Phase::ApiMissing);
        }
        not_found
    }

    /// A reconcile succeeded: the API is served.
    fn served(&self) {
        use std::sync::atomic::Ordering;
        if self.missing.swap(false, Ordering::SeqCst) {
            tracing::info!("the customers.dev API is served again");
            self.health.advance(Phase::ApiMissing, Phase::Ready);
        }
    }
}

/// The pause of all triggers after a watch error. Each watch already backs off on its
/// own ([`WatchBackoff`]), so the shared pause stays short: the runtime's default (up
/// to 30 s, growing with every error of any watch) held every Customer back, new ones
/// included, whenever one watch failed (a CRD reinstalled, an expired resource version).
struct BriefPause;

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
fn error_policy(customer: Arc<Customer>, error: &Error, context: Arc<Context>) -> Action {
    let mut failures = context.failures.lock().expect("failures lock");
    let count = failures.entry(customer.name_any()).or_insert(0);
    *count = count.saturating_add(1);
    let delay = retry_delay(error, *count);
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
        Error::Kube(kube::Error::Api(s)) if s.code == 409 => Duration::from_millis(500),
        Error::Kube(kube::Error::Api(s)) if s.code == 429 || s.code >= 500 => {
            exponential.min(OUTAGE_RETRY)
        }
        Error::Kube(kube::Error::Api(_)) => exponential,
        Error::Kube(_) | Error::CachesNotReady(_) | Error::Timeout => exponential.min(OUTAGE_RETRY),
        _ => exponential,
    }
}

/// Longest wait between retries while the apiserver is unreachable or failing.
const OUTAGE_RETRY: Duration = Duration::from_secs(5);

/// Reconnection pause of every watch: 250 ms, doubling up to 4 s, back to 250 ms once
/// the watch delivers again. kube's default grows to 30 s, so after an apiserver
/// outage the caches could stay stale for up to 30 s after it is back.
pub(crate) struct WatchBackoff {
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

impl Context {
    /// Forgets the failures of a Customer after a successful reconcile.
    pub fn reset_failures(&self, name: &str) {
        self.failures.lock().expect("failures lock").remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> Error {
        Error::Kube(kube::Error::Api(Box::new(kube::core::Status {
            code,
            ..Default::default()
        })))
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
    fn the_sweep_never_takes_the_cache_back() {
        let customer = |uid: &str, version: &str| {
            let mut c =
                kube::api::DynamicObject::new("a", &kube::api::ApiResource::erase::<Customer>(&()));
            c.metadata.uid = Some(uid.into());
            c.metadata.resource_version = Some(version.into());
            c
        };
        let (cache, mut writer) = reflector::store::<Customer>();
        let apply = |o: kube::api::DynamicObject| watcher::Event::Apply(o);
        assert!(news_to(&cache, &apply(customer("u1", "5"))), "not cached");
        let mut cached = Customer::new("a", Default::default());
        cached.metadata.uid = Some("u1".into());
        cached.metadata.resource_version = Some("7".into());
        writer.apply_watcher_event(&watcher::Event::Apply(cached));
        assert!(!news_to(&cache, &apply(customer("u1", "5"))), "older");
        assert!(!news_to(&cache, &apply(customer("u1", "7"))), "the same");
        assert!(news_to(&cache, &apply(customer("u1", "12"))), "newer");
        assert!(news_to(&cache, &apply(customer("u2", "3"))), "re-created");
        let delete = |o: kube::api::DynamicObject| watcher::Event::Delete(o);
        assert!(news_to(&cache, &delete(customer("u1", "7"))));
        assert!(
            !news_to(&cache, &delete(customer("u0", "2"))),
            "an earlier incarnation"
        );
    }

    #[tokio::test]
    async fn the_sweep_reads_every_page() {
        let pages = |token: Option<String>| async move {
            Ok(match token.as_deref() {
                None => (vec![1, 2], Some("b".to_string())),
                Some("b") => (vec![3], Some("c".to_string())),
                Some(_) => (vec![4], Some(String::new())),
            })
        };
        assert_eq!(all_pages(pages).await.unwrap(), vec![1, 2, 3, 4]);
        let single = |_: Option<String>| async { Ok((vec![7], None)) };
        assert_eq!(all_pages(single).await.unwrap(), vec![7]);
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
