//! Pure functions from a Customer and what it depends on to every object that should exist
//! for it. No client in here.

pub mod access;
pub mod app_project;
pub mod children;
pub mod cluster_policy;
pub mod directory;
pub mod names;
pub mod network;
pub mod ownership;
pub mod partner;
pub mod relations;
pub mod resolve;
pub mod selfservice;
pub mod shared_quota;
pub mod validate;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec, Namespace, ResourceQuota, ResourceQuotaSpec,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use serde::Serialize;

pub use directory::{Directory, Existing, MapDirectory};
pub use relations::members;

use k8s_openapi::api::networking::v1::NetworkPolicySpec;
use k8s_openapi::api::rbac::v1::{RoleRef, Subject as RbacSubject};

use crate::api::{
    AllowFrom, AppProject, ClusterNetworkPolicy, Customer, LABEL_CUSTOMER, LABEL_GROUP,
    LABEL_MANAGED_BY, LABEL_PARTNER, LABEL_QUOTA_TOTAL, LimitItem, LimitType, MANAGED_BY,
};
use crate::error::{Error, Problem, Result};
use crate::settings::{IsolationBackend, Settings};
use children::{Children, Objects};
use network::{NetworkPlan, Peer, PeerRule};

/// How a waiting `allowFrom` peer is marked when it exists and its consent is missing.
pub const CONSENT_PENDING: &str = "(waiting for its consent)";

/// Name of the ResourceQuota in each namespace.
pub const QUOTA_NAME: &str = "customer-quota";
/// Name of the LimitRange in each namespace.
pub const LIMITS_NAME: &str = "customer-limits";

/// A namespace the customer asks for that another customer holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NamespaceConflict {
    /// The namespace.
    pub namespace: String,
    /// The customer that holds it.
    pub holder: String,
}

/// Every object that should exist for one customer.
#[derive(Clone, Debug, Default)]
pub struct Desired {
    /// The customer's namespaces.
    pub namespaces: Vec<Namespace>,
    /// ClusterNetworkPolicies (the ClusterNetworkPolicy backend): Admin, then Baseline.
    pub cluster_network_policies: Vec<ClusterNetworkPolicy>,
    /// The customer's Argo CD AppProject (`--argocd-projects`).
    pub app_project: Option<AppProject>,
    /// NetworkPolicies, in every namespace.
    pub network_policies: Vec<NetworkPolicy>,
    /// RoleBindings, in every namespace.
    pub role_bindings: Vec<RoleBinding>,
    /// ResourceQuotas, in every namespace.
    pub resource_quotas: Vec<ResourceQuota>,
    /// LimitRanges, in every namespace.
    pub limit_ranges: Vec<LimitRange>,
    /// Namespaces left out because another customer holds them.
    pub conflicts: Vec<NamespaceConflict>,
    /// Namespaces left out because they exist and are no customer's.
    pub foreign: Vec<String>,
    /// Namespaces the customer owns that the spec no longer lists, kept because of
    /// `deletionProtection`: their policies, bindings, quota and limits still follow
    /// the spec, but they are nobody's peer.
    pub kept: Vec<String>,
    /// `allowFrom` peers that do not exist yet (`Customer x`, `CustomerGroup g`); their
    /// connection opens when they appear.
    pub waiting_peers: Vec<String>,
    /// Consultants listed under a new partner that held roles for the former one; they
    /// get no role (`User carol@acme.example`).
    pub carried_over: Vec<String>,
}

impl Desired {
    /// Every object as JSON, with `apiVersion` and `kind`, namespaces first.
    pub fn to_values(&self) -> Result<Vec<serde_json::Value>> {
        let mut out = Vec::new();
        push_values(&mut out, &self.namespaces)?;
        push_values(&mut out, &self.cluster_network_policies)?;
        push_values(&mut out, self.app_project.as_slice())?;
        let Children {
            network_policies,
            role_bindings,
            resource_quotas,
            limit_ranges,
        } = self.children();
        push_values(&mut out, network_policies)?;
        push_values(&mut out, role_bindings)?;
        push_values(&mut out, resource_quotas)?;
        push_values(&mut out, limit_ranges)?;
        Ok(out)
    }

    /// The namespaced objects, by kind.
    pub fn children(&self) -> Children<Objects<'_>> {
        let Desired {
            namespaces: _,
            cluster_network_policies: _,
            app_project: _,
            network_policies,
            role_bindings,
            resource_quotas,
            limit_ranges,
            conflicts: _,
            foreign: _,
            kept: _,
            waiting_peers: _,
            carried_over: _,
        } = self;
        Children {
            network_policies,
            role_bindings,
            resource_quotas,
            limit_ranges,
        }
    }
}

fn push_values<K: kube::Resource<DynamicType = ()> + Serialize>(
    out: &mut Vec<serde_json::Value>,
    objects: &[K],
) -> Result<()> {
    for object in objects {
        let mut value = serde_json::to_value(object)?;
        if let Some(map) = value.as_object_mut() {
            map.insert("apiVersion".into(), K::api_version(&()).into());
            map.insert("kind".into(), K::kind(&()).into());
        }
        out.push(value);
    }
    Ok(())
}

/// The labels every object of the customer carries.
pub fn owner_labels(customer: &Customer, settings: &Settings) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        (LABEL_CUSTOMER.to_string(), customer.name_any()),
        (
            LABEL_GROUP.to_string(),
            resolve::group_name(customer, settings),
        ),
        (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
    ]);
    if let Some(partner) = &customer.spec.partner {
        labels.insert(LABEL_PARTNER.to_string(), partner.name.clone());
    }
    labels
}

/// The annotation that records the customer as the owner of each of its objects
/// ([`ownership`]). Offline (`render`) the Customer has no uid yet and the value is
/// empty, as a Customer read from files has none either.
pub fn owner_annotations(customer: &Customer) -> BTreeMap<String, String> {
    [(
        ownership::ANNOTATION_OWNER_UID.to_string(),
        customer.uid().unwrap_or_default(),
    )]
    .into()
}

/// The namespaces of the customer that it really holds. A namespace that exists stays
/// with the customer that holds it, whoever asks for the same name later; for one that
/// does not exist yet, the senior customer ([`resolve::is_senior`]) wins. Those another
/// customer keeps are left out, as conflicts, and so are those that exist and are no
/// customer's (foreign): a namespace the customer does not own is never its peer.
pub fn held_namespaces(
    customer: &Customer,
    dir: &dyn Directory,
) -> (Vec<String>, Vec<NamespaceConflict>, Vec<String>) {
    let me = customer.name_any();
    let mut held = Vec::new();
    let mut conflicts = Vec::new();
    let mut foreign = Vec::new();
    for name in resolve::namespace_names(customer) {
        let current = match dir.namespace(&name) {
            Existing::HeldBy(holder) if holder == me => {
                held.push(name);
                continue;
            }
            Existing::Foreign => {
                foreign.push(name);
                continue;
            }
            Existing::HandedTo(to) if to != me => {
                foreign.push(name);
                continue;
            }
            Existing::HeldBy(holder) => Some(holder),
            Existing::HandedTo(_) | Existing::Absent => None,
        };
        // Only a customer whose name begins the namespace's (up to a dash) can claim
        // it: those few are looked up by name.
        let claimants: Vec<Arc<Customer>> = ownership::name_prefixes(&name)
            .filter(|prefix| *prefix != me)
            .filter_map(|prefix| dir.customer(prefix))
            .filter(|other| resolve::claims(other, &name))
            .collect();
        let senior = || {
            claimants
                .iter()
                .find(|other| resolve::is_senior(other, customer))
        };
        let holder = match current.as_deref() {
            Some(holder) => claimants
                .iter()
                .find(|other| other.metadata.name.as_deref() == Some(holder))
                .or_else(senior),
            None => senior(),
        };
        match holder {
            Some(other) => conflicts.push(NamespaceConflict {
                namespace: name,
                holder: other.name_any(),
            }),
            None => held.push(name),
        }
    }
    (held, conflicts, foreign)
}

/// Whether the operator has never accepted this Customer (no `observedGeneration`) and
/// refuses its spec: such a customer has no objects, so it opens nothing for anyone.
pub fn is_refused_newcomer(customer: &Customer, dir: &dyn Directory, settings: &Settings) -> bool {
    customer
        .status
        .as_ref()
        .and_then(|s| s.observed_generation)
        .is_none()
        && !validate::validate_customer(customer, dir, settings).is_empty()
}

/// What validation resolved for a customer, once per reconcile: its group defaults and
/// its chain of parents. Every later step reads them from here.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The customer's settings after its group's defaults.
    pub effective: resolve::Effective,
    /// Its parents, nearest first.
    pub ancestors: Vec<Arc<Customer>>,
}

/// A validated spec and what it asks for: the hand-over of the build step.
pub struct Built {
    /// What validation resolved (group defaults, parents), once for the whole reconcile.
    pub resolved: Resolved,
    /// Every object the spec asks for.
    pub wanted: Desired,
}

/// Checks the spec against the rules and what it depends on, and resolves its group
/// defaults and parents; or the problems for which it is refused (then nothing is to
/// change).
pub fn validate(
    customer: &Customer,
    dir: &dyn Directory,
    settings: &Settings,
) -> std::result::Result<Resolved, Vec<Problem>> {
    match validate::check_and_resolve(customer, dir, settings) {
        (problems, Some(resolved)) if problems.is_empty() => Ok(resolved),
        (problems, _) => Err(problems),
    }
}

/// Every object that should exist for `customer`, or the problems that keep the operator
/// from building it (then nothing is to change): [`validate`], then [`build`].
pub fn desired(customer: &Customer, dir: &dyn Directory, settings: &Settings) -> Result<Desired> {
    let resolved = validate(customer, dir, settings).map_err(Error::Invalid)?;
    Ok(build(customer, &resolved, dir, settings))
}

/// Every object that should exist for a validated `customer`.
pub fn build(
    customer: &Customer,
    resolved: &Resolved,
    dir: &dyn Directory,
    settings: &Settings,
) -> Desired {
    let (held, conflicts, foreign) = held_namespaces(customer, dir);
    let kept = kept_namespaces(customer, dir, &held);
    let peers = Peers::new(customer, dir, settings);
    let own: BTreeSet<String> = held.iter().cloned().collect();
    let plan = peers.plan(customer, resolved, &own);
    let (policy_specs, cluster_specs) = match settings.isolation_backend {
        IsolationBackend::NetworkPolicy => (network::policy_specs(&plan), Vec::new()),
        IsolationBackend::ClusterNetworkPolicy => {
            let subject: BTreeSet<String> = held.iter().chain(&kept).cloned().collect();
            let me = customer.name_any();
            let specs = cluster_policy::cluster_policy_specs(&me, &plan, &subject);
            (Vec::new(), specs)
        }
    };
    let mut out = Desired {
        conflicts,
        foreign,
        kept: kept.clone(),
        waiting_peers: peers.waiting(customer),
        carried_over: partner::carried_over(customer)
            .iter()
            .map(partner::describe)
            .collect(),
        ..Default::default()
    };
    let quota_namespaces: Vec<&str> = held.iter().chain(&kept).map(String::as_str).collect();
    let objects = ObjectsOf {
        customer,
        resolved,
        labels: owner_labels(customer, settings),
        owner: owner_annotations(customer),
        quota_hard: resolved
            .effective
            .quota
            .as_ref()
            .map_or_else(BTreeMap::new, |q| {
                shared_quota::hard_limits(&q.total, &q.hard, &quota_namespaces, &BTreeMap::new())
            }),
    };
    out.namespaces = held.iter().map(|ns| objects.namespace(ns)).collect();
    out.cluster_network_policies = cluster_specs
        .into_iter()
        .map(|(name, spec)| ClusterNetworkPolicy {
            metadata: objects.cluster_meta(&name),
            spec,
        })
        .collect();
    // The children of kept namespaces follow the spec like those of listed ones (an
    // admin removed from spec.access loses her role there too).
    let access = access_plan(customer, resolved, dir);
    let bindings = access::bindings(&access);
    out.app_project = settings.argocd_namespace.as_deref().map(|argocd| {
        let namespaces = held.iter().chain(&kept).cloned().collect();
        objects.app_project(argocd, &namespaces, &access, settings)
    });
    for ns_name in held.iter().chain(&kept) {
        objects.children(ns_name, &policy_specs, &bindings, &mut out);
    }
    out
}

/// What the other customers and the groups are to one customer's network: the peers it
/// names, those that open to it, and its group's members. A customer the operator never
/// accepted has no objects: it is nobody's peer, so that a refused newcomer cannot change
/// anyone else's policies. (Checked only for the customers that concern this one:
/// validating every other customer on every reconcile would make each reconcile cost as
/// much as the whole cluster.)
struct Peers<'a> {
    me: String,
    dir: &'a dyn Directory,
    settings: &'a Settings,
}

impl<'a> Peers<'a> {
    fn new(customer: &Customer, dir: &'a dyn Directory, settings: &'a Settings) -> Self {
        Peers {
            me: customer.name_any(),
            dir,
            settings,
        }
    }

    /// The group's members other than this customer.
    fn other_members(&self, group: &str) -> Vec<Arc<Customer>> {
        let mut members = self.dir.members(group, &self.settings.default_group);
        members.retain(|c| c.metadata.name.as_deref() != Some(self.me.as_str()));
        members
    }

    fn accepted(&self, customer: &Customer) -> bool {
        !is_refused_newcomer(customer, self.dir, self.settings)
    }

    /// The customer of that name, if the operator accepted it.
    fn peer(&self, name: &str) -> Option<Arc<Customer>> {
        self.dir.customer(name).filter(|c| self.accepted(c))
    }

    /// Whether `opener`'s `allowFrom` toward `peer` may open ([`selfservice::consented`]).
    fn consented(&self, opener: &Customer, peer: &Customer) -> bool {
        selfservice::consented(opener, peer, self.dir)
    }

    /// The namespaces of the group's other accepted members toward which `opener` may
    /// open.
    fn members_consenting(&self, group: &str, opener: &Customer) -> BTreeSet<String> {
        self.other_members(group)
            .iter()
            .filter(|c| self.accepted(c) && self.consented(opener, c))
            .flat_map(|c| self.held_by(c))
            .collect()
    }

    fn held_by(&self, customer: &Customer) -> BTreeSet<String> {
        held_namespaces(customer, self.dir).0.into_iter().collect()
    }

    /// The namespaces of the group's other accepted members.
    fn members_of(&self, group: &str) -> BTreeSet<String> {
        self.other_members(group)
            .iter()
            .filter(|c| self.accepted(c))
            .flat_map(|c| self.held_by(c))
            .collect()
    }

    /// `allowFrom` peers that do not exist yet (`Customer x`, `CustomerGroup g`), or
    /// whose consent a claimed customer waits for (`Customer x (waiting for its
    /// consent)`).
    fn waiting(&self, customer: &Customer) -> Vec<String> {
        allow_from(customer)
            .filter_map(|allow| {
                if let Some(c) = allow.customer.as_deref() {
                    match self.peer(c) {
                        None => Some(format!("Customer {c}")),
                        Some(peer) if !self.consented(customer, &peer) => {
                            Some(format!("Customer {c} {CONSENT_PENDING}"))
                        }
                        Some(_) => None,
                    }
                } else {
                    allow
                        .group
                        .as_deref()
                        .filter(|g| self.dir.group(g).is_none() && self.members_of(g).is_empty())
                        .map(|g| format!("CustomerGroup {g}"))
                }
            })
            .collect()
    }

    /// The ingress the customer's `allowFrom` opens, to the peers that exist.
    fn ingress(&self, customer: &Customer) -> Vec<PeerRule> {
        allow_from(customer)
            .filter_map(|allow| {
                let peer = if let Some(selector) = &allow.namespace_selector {
                    Peer::Selector(selector.clone())
                } else if let Some(group) = &allow.group {
                    Peer::Namespaces(self.members_consenting(group, customer))
                } else {
                    let other = allow
                        .customer
                        .as_deref()
                        .and_then(|c| self.peer(c))
                        .filter(|peer| self.consented(customer, peer));
                    Peer::Namespaces(other.map(|c| self.held_by(&c)).unwrap_or_default())
                };
                let empty = matches!(&peer, Peer::Namespaces(names) if names.is_empty());
                (!empty).then(|| PeerRule {
                    peer,
                    ports: allow.ports.clone(),
                })
            })
            .collect()
    }

    /// The egress to the accepted customers that opened their ingress to this one (by
    /// name or by its group).
    fn egress(&self, customer: &Customer, group: &str) -> Vec<PeerRule> {
        let me = self.me.as_str();
        self.dir
            .opening_to(me, group)
            .into_iter()
            .filter(|other| other.metadata.name.as_deref() != Some(me))
            .flat_map(|other| {
                let other: &Customer = &other;
                let opens_to_me: Vec<AllowFrom> = allow_from(other)
                    .filter(|a| {
                        a.customer.as_deref() == Some(me) || a.group.as_deref() == Some(group)
                    })
                    .cloned()
                    .collect();
                let consented = self.consented(other, customer);
                let names = if opens_to_me.is_empty() || !self.accepted(other) || !consented {
                    BTreeSet::new()
                } else {
                    self.held_by(other)
                };
                opens_to_me.into_iter().filter_map(move |a| {
                    (!names.is_empty()).then(|| PeerRule {
                        peer: Peer::Namespaces(names.clone()),
                        ports: a.ports,
                    })
                })
            })
            .collect()
    }

    /// The network plan of the customer whose namespaces are `own`.
    fn plan<'p>(
        &self,
        customer: &Customer,
        resolved: &Resolved,
        own: &'p BTreeSet<String>,
    ) -> NetworkPlan<'p>
    where
        'a: 'p,
    {
        let effective = &resolved.effective;
        let zone_open = effective
            .group
            .as_ref()
            .and_then(|g| g.spec.network.as_ref())
            .is_some_and(|n| n.allow_within_group);
        NetworkPlan {
            isolation: effective.isolation,
            internet_egress: effective.internet_egress,
            own_namespaces: own,
            allow_from: self.ingress(customer),
            egress_to_peers: self.egress(customer, &effective.group_name),
            group_zone: if zone_open {
                self.members_of(&effective.group_name)
            } else {
                BTreeSet::new()
            },
            settings: self.settings,
        }
    }
}

/// The customer's `allowFrom` entries.
fn allow_from(customer: &Customer) -> impl Iterator<Item = &AllowFrom> {
    customer
        .spec
        .network
        .iter()
        .flat_map(|n| n.allow_from.iter())
}

/// Who gets which role in the customer's namespaces: its own people (the spec's and
/// those its admins added in CustomerUsers), its group's managers, the admins of every
/// parent (theirs and those their admins added), the partner's consultants (the
/// spec's, and the Partner's admins and consultants).
fn access_plan(
    customer: &Customer,
    resolved: &Resolved,
    dir: &dyn Directory,
) -> access::AccessPlan {
    let mut own = customer.spec.access.clone().unwrap_or_default();
    for added in dir.users_of(customer) {
        own.admins.extend(added.admins);
        own.editors.extend(added.editors);
        own.viewers.extend(added.viewers);
    }
    let parent_admins = resolved
        .ancestors
        .iter()
        .flat_map(|a| {
            let added = dir.users_of(a).into_iter().flat_map(|u| u.admins);
            a.spec
                .access
                .iter()
                .flat_map(|x| x.admins.iter().cloned())
                .chain(added)
                .collect::<Vec<_>>()
        })
        .collect();
    let mut consultants = partner::granted_consultants(customer);
    if let Some(p) = customer
        .spec
        .partner
        .as_ref()
        .and_then(|p| dir.partner(&p.name))
    {
        consultants.extend(p.spec.admins.iter().cloned());
        consultants.extend(p.spec.security_consultants.iter().cloned());
    }
    access::AccessPlan {
        own,
        group: resolved
            .effective
            .group
            .as_ref()
            .and_then(|g| g.spec.access.clone())
            .unwrap_or_default(),
        parent_admins,
        consultants,
        frozen: resolved.effective.frozen.is_some(),
    }
}

/// Builds the objects of one customer, namespace by namespace.
struct ObjectsOf<'a> {
    customer: &'a Customer,
    resolved: &'a Resolved,
    labels: BTreeMap<String, String>,
    owner: BTreeMap<String, String>,
    /// The hard limits of each namespace's quota: `spec.quota.hard`, and the total
    /// shared out as if nothing were used yet (the controller moves the shares with
    /// usage: [`shared_quota`]).
    quota_hard: BTreeMap<String, BTreeMap<String, Quantity>>,
}

impl ObjectsOf<'_> {
    fn meta(&self, name: &str, namespace: &str) -> ObjectMeta {
        ObjectMeta {
            namespace: Some(namespace.to_string()),
            ..self.cluster_meta(name)
        }
    }

    /// The metadata of a cluster-scoped object: its name, the operator's labels and the
    /// ownership record.
    fn cluster_meta(&self, name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(self.labels.clone()),
            annotations: Some(self.owner.clone()).filter(|a| !a.is_empty()),
            ..Default::default()
        }
    }

    /// The AppProject in the Argo CD namespace `argocd`, over `namespaces`.
    fn app_project(
        &self,
        argocd: &str,
        namespaces: &BTreeSet<String>,
        access: &access::AccessPlan,
        settings: &Settings,
    ) -> AppProject {
        let me = self.customer.name_any();
        let group = self.resolved.effective.group.as_ref();
        let repos =
            |a: Option<&crate::api::ArgoCd>| a.map(|a| a.source_repos.clone()).unwrap_or_default();
        let mut source_repos: BTreeSet<String> = repos(self.customer.spec.argo_cd.as_ref())
            .into_iter()
            .collect();
        source_repos.extend(repos(group.and_then(|g| g.spec.argo_cd.as_ref())));
        let plan = app_project::ProjectPlan {
            project: &me,
            namespaces,
            source_repos,
            access,
            backend: settings.isolation_backend,
        };
        AppProject {
            metadata: self.meta(&me, argocd),
            spec: app_project::spec(&plan),
        }
    }

    /// The Namespace: the group's labels, the entry's labels and annotations, then the
    /// operator's own.
    fn namespace(&self, ns_name: &str) -> Namespace {
        let me = self.customer.name_any();
        let entry = self
            .customer
            .spec
            .namespaces
            .iter()
            .find(|ns| resolve::full_namespace_name(&me, ns.suffix()) == ns_name);
        let mut ns_labels = self.resolved.effective.group_namespace_labels.clone();
        ns_labels.extend(entry.map(|e| e.labels.clone()).unwrap_or_default());
        ns_labels.extend(self.labels.clone());
        let mut annotations = entry.map(|e| e.annotations.clone()).unwrap_or_default();
        annotations.extend(self.owner.clone());
        Namespace {
            metadata: ObjectMeta {
                name: Some(ns_name.to_string()),
                labels: Some(ns_labels),
                annotations: Some(annotations).filter(|a| !a.is_empty()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// The children of one namespace, of every kind, added to `out`.
    fn children(
        &self,
        ns_name: &str,
        policy_specs: &[(&'static str, NetworkPolicySpec)],
        bindings: &[(&'static str, RoleRef, Vec<RbacSubject>)],
        out: &mut Desired,
    ) {
        let effective = &self.resolved.effective;
        for (name, spec) in policy_specs {
            out.network_policies.push(NetworkPolicy {
                metadata: self.meta(name, ns_name),
                spec: Some(spec.clone()),
            });
        }
        for (name, role_ref, subjects) in bindings {
            out.role_bindings.push(RoleBinding {
                metadata: self.meta(name, ns_name),
                role_ref: role_ref.clone(),
                subjects: Some(subjects.clone()),
            });
        }
        if let Some(quota) = &effective.quota {
            let mut metadata = self.meta(QUOTA_NAME, ns_name);
            if !quota.total.is_empty() {
                metadata
                    .labels
                    .get_or_insert_with(BTreeMap::new)
                    .insert(LABEL_QUOTA_TOTAL.into(), "shared".into());
            }
            out.resource_quotas.push(ResourceQuota {
                metadata,
                spec: Some(ResourceQuotaSpec {
                    hard: Some(self.quota_hard.get(ns_name).cloned().unwrap_or_default()),
                    ..Default::default()
                }),
                status: None,
            });
        }
        if let Some(limits) = effective.limits.as_ref().filter(|l| !l.is_empty()) {
            out.limit_ranges.push(LimitRange {
                metadata: self.meta(LIMITS_NAME, ns_name),
                spec: Some(LimitRangeSpec {
                    limits: limits.iter().map(limit_range_item).collect(),
                }),
            });
        }
    }
}

/// The namespaces the customer owns that its spec no longer lists, kept because
/// `deletionProtection` is true (without it they are deleted).
fn kept_namespaces(customer: &Customer, dir: &dyn Directory, held: &[String]) -> Vec<String> {
    if !customer.spec.deletion_protection {
        return Vec::new();
    }
    let Some(uid) = customer.uid() else {
        return Vec::new();
    };
    dir.owned_namespaces(&customer.name_any(), &uid)
        .into_iter()
        .filter(|ns| !held.contains(ns))
        .collect()
}

/// A LimitRange item as the apiserver stores it: for containers, an unset default limit
/// takes the max, and an unset default request takes the default limit, else the min.
/// Writing the defaulted form makes a repeated apply a true no-op.
fn limit_range_item(item: &LimitItem) -> LimitRangeItem {
    let mut default = item.default.clone();
    let mut default_request = item.default_request.clone();
    if item.limit_type == LimitType::Container {
        for (key, value) in &item.max {
            default.entry(key.clone()).or_insert_with(|| value.clone());
        }
        for (key, value) in default.iter().chain(&item.min) {
            default_request
                .entry(key.clone())
                .or_insert_with(|| value.clone());
        }
    }
    let map = |m: &BTreeMap<_, _>| (!m.is_empty()).then(|| m.clone());
    LimitRangeItem {
        type_: item.limit_type.as_str().to_string(),
        default: map(&default),
        default_request: map(&default_request),
        max: map(&item.max),
        min: map(&item.min),
        max_limit_request_ratio: map(&item.max_limit_request_ratio),
    }
}
