//! The controllers' view of the cluster: one value holding every cache, built by one
//! function ([`Caches::watch`]) together with the streams of changes that keep the caches
//! filled and wake the controllers.

use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::core::{ObjectMeta, PartialObjectMeta};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Config as WatcherConfig, watcher};
use kube::{Api, Client, Resource, ResourceExt};

use super::compact::Compact;
use super::decode::{self, Unreadable};
use super::retry::WatchBackoff;
use super::sweep::{self, Trouble};
use super::{index::Index, inflight, synced::CacheSync};
use crate::api::{
    Access, AppProject, ClusterNetworkPolicy, Customer, CustomerClaim, CustomerGroup,
    CustomerUsers, LABEL_CUSTOMER, LABEL_MANAGED_BY, MANAGED_BY, Partner,
};
use crate::desired::children::{Children, Family, Kind};
use crate::desired::{self, Directory, ownership};
use crate::operate::metrics::ClusterState;

/// The cache of each child kind: only the objects the operator labelled, compacted.
pub struct Cached;

impl Family for Cached {
    type Of<K: Kind> = Store<Compact<K>>;
}

/// The stream of changes of each child kind.
pub struct Changed;

impl Family for Changed {
    type Of<K: Kind> = Stream<Compact<K>>;
}

/// A stream of changed objects, as a controller takes it.
pub type Stream<K> = BoxStream<'static, Result<K, watcher::Error>>;

/// Every cache of the controllers.
#[derive(Clone)]
pub struct Caches {
    /// All Customers.
    pub customers: Store<Customer>,
    /// The Customers by what their specs name (peers, groups, parent, partner; see
    /// [`super::related`]).
    pub customers_by_reference: Index,
    /// All CustomerGroups.
    pub groups: Store<CustomerGroup>,
    /// Every namespace (metadata only): the customers' and everyone else's.
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    /// The names of the labelled namespaces by the Customer their label names.
    pub namespaces_by_customer: Index,
    /// The names of every NetworkPolicy the operator did not write, by namespace, from a
    /// metadata-only watch: the isolation check reads the ones in a customer's
    /// namespaces and evaluates them with the operator's.
    pub foreign_policies: Index,
    /// The same policies by the customer whose namespace holds them: the customers a new
    /// namespace of someone else's may open a path into.
    pub foreign_policies_by_customer: Index,
    /// The children the operator labelled, by kind.
    pub children: Children<Cached>,
    /// Every ClusterNetworkPolicy, the operator's and everyone else's; always empty when
    /// the cluster does not serve the kind.
    pub cluster_policies: Store<ClusterNetworkPolicy>,
    /// The names of the ClusterNetworkPolicies the operator did not write, under
    /// [`FOREIGN`]: a reconcile looks them up instead of passing over every policy.
    pub foreign_cluster_policies: Index,
    /// Every AppProject of the Argo CD namespace, when the operator writes them
    /// (`--argocd-projects` and the cluster serves the kind); `None` otherwise.
    pub app_projects: Option<Store<AppProject>>,
    /// All Partners.
    pub partners: Store<Partner>,
    /// All CustomerClaims.
    pub claims: Store<CustomerClaim>,
    /// All CustomerUsers.
    pub users: Store<CustomerUsers>,
    /// The names of the CustomerUsers by namespace.
    pub users_by_namespace: Index,
    /// Which caches have listed once.
    pub sync: CacheSync,
    /// How far the watch of each kind the operator writes has got.
    pub progress: Arc<inflight::Progresses>,
}

impl Clone for Children<Cached> {
    fn clone(&self) -> Self {
        let Children {
            network_policies,
            role_bindings,
            resource_quotas,
            limit_ranges,
        } = self;
        Children {
            network_policies: network_policies.clone(),
            role_bindings: role_bindings.clone(),
            resource_quotas: resource_quotas.clone(),
            limit_ranges: limit_ranges.clone(),
        }
    }
}

/// What changed, as the watches behind [`Caches`] deliver it.
pub struct Changes {
    /// Customers, for the Customer controller's own queue.
    pub customers: Stream<Customer>,
    /// The same Customers again, to find the customers related to each.
    pub related: Stream<Customer>,
    /// CustomerGroups.
    pub groups: Stream<CustomerGroup>,
    /// Namespaces.
    pub namespaces: Stream<PartialObjectMeta<Namespace>>,
    /// NetworkPolicies the operator did not write.
    pub foreign_policies: Stream<PartialObjectMeta<NetworkPolicy>>,
    /// The children the operator labelled.
    pub children: Children<Changed>,
    /// ClusterNetworkPolicies (nothing when the cluster does not serve them).
    pub cluster_policies: Stream<ClusterNetworkPolicy>,
    /// AppProjects of the Argo CD namespace (nothing when they are not watched).
    pub app_projects: Stream<AppProject>,
    /// CustomerUsers, for the Customer controller.
    pub users: Stream<CustomerUsers>,
    /// Partners, for the Customer controller.
    pub partners: Stream<Partner>,
}

/// What changed, for the CustomerClaim controller.
pub struct ClaimChanges {
    /// CustomerClaims, for its own queue.
    pub claims: Stream<CustomerClaim>,
    /// Partners (their bounds and deletion).
    pub partners: Stream<Partner>,
    /// Customers (the claims' own, and the customers counted against a limit).
    pub customers: Stream<Customer>,
}

/// What changed, for the Partner controller.
pub struct PartnerChanges {
    /// Partners, for its own queue.
    pub partners: Stream<Partner>,
    /// Customers (a partner's customers and their readiness).
    pub customers: Stream<Customer>,
}

/// Every cache and every stream of changes, as [`Caches::watch`] starts them.
pub struct Watched {
    /// The caches.
    pub caches: Caches,
    /// The changes for the Customer controller.
    pub changes: Changes,
    /// The changed Customers for the group controller.
    pub group_members: Stream<Customer>,
    /// The changes for the claim controller.
    pub claims: ClaimChanges,
    /// The changes for the partner controller.
    pub partners: PartnerChanges,
}

/// A cache's name, for [`CacheSync`] and the error naming one not filled.
pub struct CacheName;

impl Family for CacheName {
    type Of<K: Kind> = &'static str;
}

/// The names of the child caches.
const CHILD_CACHES: Children<CacheName> = Children {
    network_policies: "NetworkPolicies",
    role_bindings: "RoleBindings",
    resource_quotas: "ResourceQuotas",
    limit_ranges: "LimitRanges",
};

/// The key of [`Caches::foreign_cluster_policies`].
pub const FOREIGN: &str = "foreign";

/// The name of the ClusterNetworkPolicy cache.
const CLUSTER_POLICY_CACHE: &str = "ClusterNetworkPolicies";

/// The name of the AppProject cache.
const APP_PROJECT_CACHE: &str = "AppProjects";

/// The names of every cache; the ClusterNetworkPolicies' only when they are watched.
fn cache_names(cluster_policies: bool, app_projects: bool) -> Vec<&'static str> {
    let Children {
        network_policies,
        role_bindings,
        resource_quotas,
        limit_ranges,
    } = CHILD_CACHES;
    let mut names = vec![
        "Customers",
        "CustomerGroups",
        "Namespaces",
        "foreign NetworkPolicies",
        "Partners",
        "CustomerClaims",
        "CustomerUsers",
        network_policies,
        role_bindings,
        resource_quotas,
        limit_ranges,
    ];
    if cluster_policies {
        names.push(CLUSTER_POLICY_CACHE);
    }
    if app_projects {
        names.push(APP_PROJECT_CACHE);
    }
    names
}

impl Caches {
    /// Starts a watch per cache (nothing is read before the returned streams are
    /// polled), with a sweep for missed Customer events every `resync`; unreadable
    /// Customers are recorded in `unreadable`; ClusterNetworkPolicies are watched when
    /// `cluster_policies` says the cluster serves them, and the AppProjects of the
    /// namespace `app_projects` names, if any; with `streaming_lists`, every watch
    /// starts with the apiserver's stream of the current objects (served from its watch
    /// cache) instead of a paged list. Returns the caches and the changes for each
    /// controller.
    pub fn watch(
        client: &Client,
        resync: std::time::Duration,
        unreadable: &Unreadable,
        cluster_policies: bool,
        app_projects: Option<&str>,
        streaming_lists: bool,
    ) -> Watched {
        let sync = CacheSync::new(&cache_names(cluster_policies, app_projects.is_some()));
        let progress = Arc::new(inflight::Progresses::new());
        let watching = Watching {
            client,
            sync: &sync,
            progress: &progress,
            streaming_lists,
        };
        let (namespaces, namespaces_by_customer, namespace_changes) = watching.namespaces();
        let (foreign_policies, foreign_policies_by_customer, foreign_changes) =
            watching.foreign_policies(&namespaces);
        let (groups, group_changes) = watching.groups();
        let (children, child_changes) = watching.children();
        let foreign_cluster_policies = Index::new(foreign_key);
        let (cluster_policies, cluster_policy_changes) =
            watching.cluster_policies(cluster_policies, &foreign_cluster_policies);
        let (app_projects, app_project_changes) = watching.app_projects(app_projects);
        let customers = watching.customers(resync, unreadable);
        let (partners, [partner_changes, partners_for_customers, partners_for_claims]) =
            watching.everything::<Partner, 3>("Partners", None);
        let (claims, [claim_changes]) =
            watching.everything::<CustomerClaim, 1>("CustomerClaims", None);
        let users_by_namespace = Index::new(|meta| meta.namespace.clone());
        let (users, [user_changes]) =
            watching.everything::<CustomerUsers, 1>("CustomerUsers", Some(&users_by_namespace));
        let caches = Caches {
            partners,
            claims,
            users,
            users_by_namespace,
            customers: customers.cache,
            customers_by_reference: customers.by_reference,
            groups,
            namespaces,
            namespaces_by_customer,
            foreign_policies,
            foreign_policies_by_customer,
            children,
            cluster_policies,
            foreign_cluster_policies,
            app_projects,
            sync,
            progress,
        };
        let changes = Changes {
            customers: customers.changes,
            related: customers.related,
            groups: group_changes,
            namespaces: namespace_changes,
            foreign_policies: foreign_changes,
            children: child_changes,
            cluster_policies: cluster_policy_changes,
            app_projects: app_project_changes,
            users: user_changes,
            partners: partners_for_customers,
        };
        Watched {
            caches,
            changes,
            group_members: customers.members,
            claims: ClaimChanges {
                claims: claim_changes,
                partners: partners_for_claims,
                customers: customers.claimed,
            },
            partners: PartnerChanges {
                partners: partner_changes,
                customers: customers.partnered,
            },
        }
    }

    /// The Customer of that name.
    pub fn customer(&self, name: &str) -> Option<Arc<Customer>> {
        self.customers.get(&ObjectRef::new(name))
    }

    /// Lookups of the Customers by what their specs name.
    pub fn related<'a>(&'a self, default_group: &'a str) -> super::related::Related<'a> {
        super::related::Related {
            index: &self.customers_by_reference,
            customers: &self.customers,
            default_group,
        }
    }

    /// The customer's own namespaces (its label, and recorded as owned by it).
    pub fn own_namespaces(
        &self,
        customer: &str,
        uid: &str,
    ) -> Vec<Arc<PartialObjectMeta<Namespace>>> {
        self.namespaces_by_customer
            .names(customer)
            .iter()
            .filter_map(|name| self.namespaces.get(&ObjectRef::new(name)))
            .filter(|ns| {
                ns.labels().get(LABEL_CUSTOMER).map(String::as_str) == Some(customer)
                    && ownership::is_owned_by(&ns.metadata, uid)
            })
            .collect()
    }

    /// What the caches hold, for the gauges computed at scrape time.
    pub fn cluster_state(&self) -> ClusterState {
        let managed_namespaces = self
            .namespaces
            .state()
            .iter()
            .filter(|ns| ns.labels().get(LABEL_MANAGED_BY).map(String::as_str) == Some(MANAGED_BY))
            .count();
        let Children {
            network_policies,
            role_bindings,
            resource_quotas,
            limit_ranges,
        } = &self.children;
        let mut state = ClusterState::default();
        for (kind, count) in [
            (
                <Namespace as k8s_openapi::Resource>::KIND,
                managed_namespaces,
            ),
            (kind_of(network_policies), network_policies.len()),
            (kind_of(role_bindings), role_bindings.len()),
            (kind_of(resource_quotas), resource_quotas.len()),
            (kind_of(limit_ranges), limit_ranges.len()),
        ] {
            state
                .managed
                .insert(kind, i64::try_from(count).unwrap_or(i64::MAX));
        }
        for customer in self.customers.state() {
            for condition in customer.status.iter().flat_map(|s| &s.conditions) {
                *state
                    .conditions
                    .entry((condition.type_.clone(), condition.status.clone()))
                    .or_insert(0) += 1;
            }
        }
        state
    }
}

/// The kind of the objects a cache holds.
fn kind_of<K: Kind + k8s_openapi::Resource>(_: &Store<Compact<K>>) -> &'static str {
    K::KIND
}

impl Directory for Caches {
    fn customer(&self, name: &str) -> Option<Arc<Customer>> {
        Caches::customer(self, name)
    }
    fn group(&self, name: &str) -> Option<Arc<CustomerGroup>> {
        self.groups.get(&ObjectRef::new(name))
    }
    fn customers(&self) -> Vec<Arc<Customer>> {
        self.customers.state()
    }
    fn opening_to(&self, customer: &str, group: &str) -> Vec<Arc<Customer>> {
        super::related::opening_to(&self.customers_by_reference, customer, group)
            .iter()
            .filter_map(|n| self.customer(n))
            .collect()
    }
    fn members(&self, group: &str, default_group: &str) -> Vec<Arc<Customer>> {
        self.related(default_group)
            .members(group)
            .iter()
            .filter_map(|n| self.customer(n))
            .collect()
    }
    fn namespace(&self, namespace: &str) -> desired::Existing {
        match self.namespaces.get(&ObjectRef::new(namespace)) {
            Some(ns) => ownership::holder(&ns.metadata, |name| self.customer(name)),
            None => desired::Existing::Absent,
        }
    }
    fn owned_namespaces(&self, customer: &str, uid: &str) -> Vec<String> {
        self.own_namespaces(customer, uid)
            .iter()
            .map(|ns| ns.name_any())
            .collect()
    }
    fn partner(&self, name: &str) -> Option<Arc<Partner>> {
        self.partners.get(&ObjectRef::new(name))
    }
    fn is_partner_namespace(&self, namespace: &str, partner: &Partner) -> bool {
        self.namespaces
            .get(&ObjectRef::new(namespace))
            .is_some_and(|ns| desired::selfservice::is_partner_namespace_of(&ns.metadata, partner))
    }
    /// Only the CustomerUsers in namespaces the customer holds (its label, and its uid
    /// recorded as the owner) count.
    fn users_of(&self, customer: &Customer) -> Vec<Access> {
        let Some(uid) = customer.uid() else {
            return Vec::new();
        };
        self.own_namespaces(&customer.name_any(), &uid)
            .iter()
            .flat_map(|ns| {
                let namespace = ns.name_any();
                self.users_by_namespace
                    .names(&namespace)
                    .into_iter()
                    .filter_map(move |name| {
                        self.users.get(&ObjectRef::new(&name).within(&namespace))
                    })
            })
            .map(|u| u.spec.access())
            .collect()
    }
}

/// [`FOREIGN`] for an object the operator did not write, else no key.
fn foreign_key(meta: &ObjectMeta) -> Option<String> {
    let labels = meta.labels.as_ref();
    let ours = labels
        .and_then(|l| l.get(LABEL_MANAGED_BY))
        .map(String::as_str);
    (ours != Some(MANAGED_BY)).then(|| FOREIGN.to_string())
}

/// The label selector of the objects the operator labels.
fn managed_selector() -> String {
    format!("{LABEL_MANAGED_BY}={MANAGED_BY}")
}

/// Whether the apiserver streams the initial list of a watch (`sendInitialEvents`, the
/// WatchList feature: on by default in Kubernetes 1.34 and later, off in 1.33), asked
/// once at start with a watch of namespaces that ends at once. A restart then reads the
/// world from the apiserver's watch cache as a stream, not as pages of a list.
pub async fn serves_streaming_lists(client: &Client) -> bool {
    let params = kube::api::WatchParams {
        timeout: Some(1),
        ..kube::api::WatchParams::streaming_lists()
    };
    Api::<Namespace>::all(client.clone())
        .watch_metadata(&params, "")
        .await
        .is_ok()
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

/// What every watch is built with.
struct Watching<'a> {
    client: &'a Client,
    sync: &'a CacheSync,
    progress: &'a inflight::Progresses,
    /// Whether the apiserver streams a watch's initial list ([`serves_streaming_lists`]).
    streaming_lists: bool,
}

/// The Customer cache and its streams of changes.
struct CustomerWatch {
    cache: Store<Customer>,
    by_reference: Index,
    changes: Stream<Customer>,
    related: Stream<Customer>,
    members: Stream<Customer>,
    claimed: Stream<Customer>,
    partnered: Stream<Customer>,
}

impl Watching<'_> {
    /// The watcher settings every watch starts from.
    fn config(&self) -> WatcherConfig {
        if self.streaming_lists {
            WatcherConfig::default().streaming_lists()
        } else {
            WatcherConfig::default()
        }
    }

    /// Every namespace, not only the labelled ones: a namespace that exists and is no
    /// customer's must be known to be foreign (never a peer), and one whose label was
    /// removed must stay in view to be repaired.
    fn namespaces(
        &self,
    ) -> (
        Store<PartialObjectMeta<Namespace>>,
        Index,
        Stream<PartialObjectMeta<Namespace>>,
    ) {
        let (store, writer) = reflector::store();
        let by_customer = Index::new(|meta| meta.labels.as_ref()?.get(LABEL_CUSTOMER).cloned());
        let events = watcher(
            Api::<PartialObjectMeta<Namespace>>::all(self.client.clone()),
            self.config(),
        )
        .backoff(WatchBackoff::default())
        .modify(forget_managed_fields)
        .reflect(writer);
        let events = by_customer.follow(inflight::follow(self.progress.of::<Namespace>(), events));
        let changes = self
            .sync
            .mark("Namespaces", events)
            .touched_objects()
            .boxed();
        (store, by_customer, changes)
    }

    /// Where everyone else's NetworkPolicies are: names by namespace only (a cluster may
    /// hold many, and few of them are in customer namespaces).
    /// Everyone else's NetworkPolicies (metadata only), by namespace, and by the
    /// customer whose label their namespace carries when the policy's event comes (a
    /// namespace labelled later is found by the next resync).
    fn foreign_policies(
        &self,
        namespaces: &Store<PartialObjectMeta<Namespace>>,
    ) -> (Index, Index, Stream<PartialObjectMeta<NetworkPolicy>>) {
        let index = Index::new(|meta| meta.namespace.clone());
        let by_customer = Index::new(|_| None);
        let (filing, namespaces) = (by_customer.clone(), namespaces.clone());
        let events = watcher(
            Api::<PartialObjectMeta<NetworkPolicy>>::all(self.client.clone()),
            self.config().labels(&foreign_selector()),
        )
        .backoff(WatchBackoff::default())
        .inspect(move |event| {
            if let Ok(event) = event {
                filing.observe_keys(event, |policy: &PartialObjectMeta<NetworkPolicy>| {
                    let namespace = policy.metadata.namespace.as_deref().unwrap_or_default();
                    namespaces
                        .get(&ObjectRef::new(namespace))
                        .and_then(|ns| ns.labels().get(LABEL_CUSTOMER).cloned())
                        .into_iter()
                        .collect()
                });
            }
        });
        let changes = self
            .sync
            .mark("foreign NetworkPolicies", index.follow(events))
            .touched_objects()
            .boxed();
        (index, by_customer, changes)
    }

    fn groups(&self) -> (Store<CustomerGroup>, Stream<CustomerGroup>) {
        let (store, writer) = reflector::store();
        let events = watcher(
            Api::<CustomerGroup>::all(self.client.clone()),
            self.config(),
        )
        .backoff(WatchBackoff::default())
        .reflect(writer);
        let changes = self
            .sync
            .mark("CustomerGroups", events)
            .touched_objects()
            .boxed();
        (store, changes)
    }

    /// A reflector over the labelled children of each kind, in compact form.
    fn children(&self) -> (Children<Cached>, Children<Changed>) {
        let names = CHILD_CACHES;
        let (network_policies, policy_changes) = self.child(names.network_policies);
        let (role_bindings, binding_changes) = self.child(names.role_bindings);
        let (resource_quotas, quota_changes) = self.child(names.resource_quotas);
        let (limit_ranges, limit_changes) = self.child(names.limit_ranges);
        (
            Children {
                network_policies,
                role_bindings,
                resource_quotas,
                limit_ranges,
            },
            Children {
                network_policies: policy_changes,
                role_bindings: binding_changes,
                resource_quotas: quota_changes,
                limit_ranges: limit_changes,
            },
        )
    }

    /// Every ClusterNetworkPolicy when `served`, with `foreign` following them; else an
    /// empty cache and a stream that never yields.
    fn cluster_policies(
        &self,
        served: bool,
        foreign: &Index,
    ) -> (Store<ClusterNetworkPolicy>, Stream<ClusterNetworkPolicy>) {
        let (store, writer) = reflector::store();
        if !served {
            return (store, futures::stream::pending().boxed());
        }
        let events = watcher(
            Api::<ClusterNetworkPolicy>::all(self.client.clone()),
            self.config(),
        )
        .backoff(WatchBackoff::default())
        .modify(forget_managed_fields)
        .reflect(writer);
        let events = foreign.follow(events);
        let events = inflight::follow(self.progress.of::<ClusterNetworkPolicy>(), events);
        let changes = self.sync.mark(CLUSTER_POLICY_CACHE, events);
        (store, changes.touched_objects().boxed())
    }

    /// Every AppProject of the namespace `namespace`, if one is given; else no cache and
    /// a stream that never yields.
    fn app_projects(
        &self,
        namespace: Option<&str>,
    ) -> (Option<Store<AppProject>>, Stream<AppProject>) {
        let Some(namespace) = namespace else {
            return (None, futures::stream::pending().boxed());
        };
        let (store, writer) = reflector::store();
        let events = watcher(
            Api::<AppProject>::namespaced(self.client.clone(), namespace),
            self.config(),
        )
        .backoff(WatchBackoff::default())
        .modify(forget_managed_fields)
        .reflect(writer);
        let changes = self.sync.mark(APP_PROJECT_CACHE, events);
        (Some(store), changes.touched_objects().boxed())
    }

    fn child<K: Kind>(&self, name: &'static str) -> (Store<Compact<K>>, Stream<Compact<K>>) {
        let (store, writer) = reflector::store();
        let events = watcher(
            Api::<Compact<K>>::all(self.client.clone()),
            self.config().labels(&managed_selector()),
        )
        .backoff(WatchBackoff::default())
        .reflect(writer);
        let events = inflight::follow(self.progress.of::<K>(), events);
        (
            store,
            self.sync.mark(name, events).touched_objects().boxed(),
        )
    }

    /// One watch of Customers feeds the cache and, through channels, the two streams of
    /// changed Customers (related customers, group members): the apiserver sends every
    /// Customer event once. The sweep for missed events ([`sweep`]) joins the watch.
    fn customers(&self, resync: std::time::Duration, unreadable: &Unreadable) -> CustomerWatch {
        let (cache, writer) = reflector::store::<Customer>();
        let (touched, [related, members, claimed, partnered]) = Touched::channels();
        let by_reference = super::related::index();
        let filing = by_reference.clone();
        let trouble = Trouble::default();
        let swept =
            sweep::missed_customers(self.client.clone(), cache.clone(), resync, trouble.clone());
        let events = futures::stream::select(
            watcher(decode::untyped(self.client), self.config())
                .backoff(WatchBackoff::default())
                .map(|event| (false, event)),
            swept.map(|event| (true, event)),
        );
        // What the sweep read may be older than what the watch delivered since: it must
        // never take the cache back (checked here, in the same pass over the stream as
        // the cache update, so nothing can come in between).
        let sweep_cache = cache.clone();
        let for_decode = unreadable.clone();
        let events = events
            .filter_map(move |(swept, event)| {
                let news = !swept
                    || event
                        .as_ref()
                        .is_ok_and(|e| sweep::news_to(&sweep_cache, e));
                futures::future::ready(news.then_some(event))
            })
            .filter_map(move |event| {
                futures::future::ready(match event {
                    Ok(event) => decode::decode_event(event, &for_decode).map(Ok),
                    Err(error) => {
                        trouble.report();
                        Some(Err(error))
                    }
                })
            })
            .modify(trim_customer)
            .inspect(move |event| {
                if let Ok(event) = event {
                    filing.observe_keys(event, super::related::keys);
                    touched.send(event);
                }
            })
            .reflect(writer);
        let events = inflight::follow(self.progress.of::<Customer>(), events);
        CustomerWatch {
            cache,
            by_reference,
            changes: self
                .sync
                .mark("Customers", events)
                .applied_objects()
                .boxed(),
            related: related.boxed(),
            members: members.boxed(),
            claimed: claimed.boxed(),
            partnered: partnered.boxed(),
        }
    }

    /// A cache of every object of a kind the operator reads whole (few, small objects:
    /// Partners, CustomerClaims, CustomerUsers), optionally indexed, and `N` streams of
    /// its changes (the first also marks the cache filled).
    fn everything<K, const N: usize>(
        &self,
        name: &'static str,
        index: Option<&Index>,
    ) -> (Store<K>, [Stream<K>; N])
    where
        K: Resource<DynamicType = ()>
            + Clone
            + std::fmt::Debug
            + serde::de::DeserializeOwned
            + Send
            + Sync
            + 'static,
    {
        let (store, writer) = reflector::store();
        let (fan_out, mut copies) = FanOut::<K>::channels::<N>();
        let events = watcher(Api::<K>::all(self.client.clone()), self.config())
            .backoff(WatchBackoff::default())
            .modify(forget_managed_fields)
            .reflect(writer);
        let events = match index {
            Some(index) => index.follow(events).boxed(),
            None => events.boxed(),
        };
        let main = self
            .sync
            .mark(name, events)
            .touched_objects()
            .inspect(move |object| {
                if let Ok(object) = object {
                    fan_out.send(object);
                }
            })
            .boxed();
        copies[0] = main;
        (store, copies)
    }
}

/// Hands each changed object to further streams: the same changes for several
/// controllers from one watch.
struct FanOut<K> {
    senders: Vec<futures::channel::mpsc::UnboundedSender<K>>,
}

impl<K: Clone + Send + 'static> FanOut<K> {
    /// The sender and `N` streams; the first stream is a placeholder for the caller's
    /// own (the senders feed the other `N - 1`).
    fn channels<const N: usize>() -> (FanOut<K>, [Stream<K>; N]) {
        let mut senders = Vec::new();
        let streams = std::array::from_fn(|i| {
            if i == 0 {
                futures::stream::empty().boxed()
            } else {
                let (tx, rx) = futures::channel::mpsc::unbounded();
                senders.push(tx);
                rx.map(Ok).boxed()
            }
        });
        (FanOut { senders }, streams)
    }

    fn send(&self, object: &K) {
        for sender in &self.senders {
            // A closed receiver means the controller is shutting down.
            let _ = sender.unbounded_send(object.clone());
        }
    }
}

/// Hands every Customer the main watch sees change or go (decoded; the unreadable ones
/// are left out) to the streams that map changes to related customers, to groups, to
/// claims and to partners.
struct Touched {
    senders: Vec<futures::channel::mpsc::UnboundedSender<Customer>>,
}

impl Touched {
    /// The sender and its `N` streams.
    fn channels<const N: usize>() -> (
        Touched,
        [impl futures::Stream<Item = Result<Customer, watcher::Error>>; N],
    ) {
        let mut senders = Vec::new();
        let streams = std::array::from_fn(|_| {
            let (tx, rx) = futures::channel::mpsc::unbounded();
            senders.push(tx);
            rx.map(Ok)
        });
        (Touched { senders }, streams)
    }

    /// Passes on the Customer of a watch event, if it has one.
    fn send(&self, event: &watcher::Event<Customer>) {
        use watcher::Event;
        if let Event::Apply(c) | Event::InitApply(c) | Event::Delete(c) = event {
            for sender in &self.senders {
                // A closed receiver means the controller is shutting down.
                let _ = sender.unbounded_send(c.clone());
            }
        }
    }
}
