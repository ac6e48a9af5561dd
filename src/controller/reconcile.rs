//! One reconcile of one Customer: apply what `desired/` asks for, prune what it no
//! longer asks for, write status; or, when it is being deleted, clean up.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::compact::Compact;
use super::events::{self, EventType};
use super::status::{self, Observed, Outcome, types};
use super::{Context, inflight};
use crate::api::{
    ANNOTATION_ADOPT, Customer, CustomerStatus, FINALIZER, LABEL_CUSTOMER, NamespaceStatus,
    Subject, Summary,
};
use crate::desired::access::BINDING_NAMES;
use crate::desired::access::{CONSULTANTS_BINDING, PARENT_ADMINS_BINDING};
use crate::desired::network::{DEFAULT_DENY, POLICY_NAMES};
use crate::desired::ownership::{ANNOTATION_OWNER_UID, is_owned_by};
use crate::desired::{self, Desired, partner, resolve};
use crate::desired::{LIMITS_NAME, QUOTA_NAME};
use crate::error::{Error, Reason, Result};

/// Requeue while something is still on its way (namespaces terminating, conflicts).
const SOON: Duration = Duration::from_secs(5);

/// Longest a reconcile may take before it is abandoned and retried (a request that
/// hangs must not hold the Customer forever).
const RECONCILE_TIMEOUT: Duration = Duration::from_secs(30);

/// Reconciles one Customer.
pub async fn reconcile(customer: Arc<Customer>, ctx: Arc<Context>) -> Result<Action> {
    ctx.caches_ready().await?;
    ctx.options.reconciles.record(&customer.name_any());
    tokio::time::timeout(RECONCILE_TIMEOUT, reconcile_now(&customer, &ctx))
        .await
        .map_err(|_| Error::Timeout)?
}

async fn reconcile_now(customer: &Arc<Customer>, ctx: &Arc<Context>) -> Result<Action> {
    let has_finalizer = |c: &Customer| c.finalizers().iter().any(|f| f == FINALIZER);
    let action = if customer.meta().deletion_timestamp.is_some() {
        cleanup(customer, ctx).await?
    } else if !has_finalizer(customer) {
        // Go on with the Customer as stored with its finalizer: the cache may not have
        // it yet, and waiting for it only adds latency.
        match add_finalizer_once(customer, ctx).await? {
            Some(stored) => converge(&stored, ctx).await?,
            None => Action::await_change(),
        }
    } else {
        converge(customer, ctx).await?
    };
    ctx.reset_failures(&customer.name_any());
    Ok(action)
}

/// Adds the finalizer to a Customer as cached, guarded by its resourceVersion (a cache
/// behind the stored object makes it fail with a conflict, retried shortly). Returns the
/// Customer as stored, or `None` when there is nothing to do now: the Customer is gone,
/// or the finalizer was added a moment ago and the cache does not show it yet (its
/// event brings the next reconcile).
async fn add_finalizer_once(customer: &Customer, ctx: &Context) -> Result<Option<Customer>> {
    let api = Api::<Customer>::all(ctx.client.clone());
    let target = inflight::target("Customer/finalizers", customer);
    match ctx
        .write_once(target, 1, add_finalizer(&api, customer))
        .await
    {
        Err(Error::Kube(kube::Error::Api(s))) if s.code == 404 => Ok(None),
        other => other,
    }
}

fn uid_of(customer: &Customer) -> Result<String> {
    customer
        .uid()
        .ok_or_else(|| Error::Serialize("Customer without uid".into()))
}

/// Adds the operator's finalizer (a merge patch guarded by the resourceVersion); returns
/// the object as stored.
pub(crate) async fn add_finalizer<K>(api: &Api<K>, object: &K) -> Result<K>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let mut finalizers = object.finalizers().to_vec();
    finalizers.push(FINALIZER.to_string());
    set_finalizers(api, object, finalizers).await
}

/// Removes the operator's finalizer; an object already gone is fine.
pub(crate) async fn remove_finalizer<K>(api: &Api<K>, object: &K) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let finalizers = object
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    match set_finalizers(api, object, finalizers).await {
        Err(Error::Kube(kube::Error::Api(s))) if s.code == 404 => Ok(()),
        other => other.map(drop),
    }
}

async fn set_finalizers<K>(api: &Api<K>, object: &K, finalizers: Vec<String>) -> Result<K>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": object.resource_version()}});
    Ok(api
        .patch(
            &object.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?)
}

/// Writes the status when it differs from the stored one; publishes an Event for each
/// condition that newly turned bad or whose message changed.
async fn write_status(customer: &Customer, ctx: &Context, outcome: &Outcome) -> Result<()> {
    let old = customer.status.as_ref();
    let group = resolve::group_name(customer, &ctx.options.settings);
    let partner = customer.spec.partner.as_ref().map(|p| p.name.as_str());
    let new = status::compute(
        old,
        customer.meta().generation,
        &group,
        partner,
        outcome,
        Timestamp::now(),
    );
    if old == Some(&new) {
        return Ok(());
    }
    let name = customer.name_any();
    let write = async {
        tracing::debug!(customer = %name, ?old, ?new, "status changed");
        announce(customer, ctx, old, &new).await;
        let before = serde_json::to_value(old)?;
        let patch = json!({"status": status::merge_patch(&before, &serde_json::to_value(&new)?)});
        Ok(Api::<Customer>::all(ctx.client.clone())
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?)
    };
    // Not sent when the same status (but for its times) was written a moment ago and the
    // cache does not show it yet: its event brings another reconcile.
    let target = inflight::target("Customer/status", customer);
    ctx.write_once(target, status_hash(&new)?, write).await?;
    Ok(())
}

/// A hash of a status without its conditions' transition times.
fn status_hash(status: &CustomerStatus) -> Result<u64> {
    let mut value = serde_json::to_value(status)?;
    if let Some(conditions) = value["conditions"].as_array_mut() {
        for condition in conditions {
            if let Some(c) = condition.as_object_mut() {
                c.remove("lastTransitionTime");
            }
        }
    }
    Ok(super::apply::fnv1a(value.to_string().as_bytes()))
}

/// Events for what a person should see: a refused spec, a conflict, a blocked deletion.
async fn announce(
    customer: &Customer,
    ctx: &Context,
    old: Option<&CustomerStatus>,
    new: &CustomerStatus,
) {
    let changed = |type_: &str| {
        let before = status::condition(old, type_).map(|c| (&c.status, &c.reason, &c.message));
        let after = status::condition(Some(new), type_).map(|c| (&c.status, &c.reason, &c.message));
        (before != after)
            .then(|| status::condition(Some(new), type_))
            .flatten()
    };
    for type_ in [
        types::CONFLICT,
        types::DELETION_BLOCKED,
        types::CONNECTIONS_PENDING,
        types::NETWORK_ISOLATED,
        types::ACCESS_GRANTED,
    ] {
        if let Some(c) = changed(type_).filter(|c| status::is_warning(c)) {
            events::publish(
                &ctx.client,
                customer,
                EventType::Warning,
                &c.reason,
                &c.message,
            )
            .await;
        }
    }
    if let Some(c) = changed(types::READY).filter(|c| c.status == "False") {
        let refused = !matches!(
            c.reason.as_str(),
            "Conflict"
                | "NamespacesPending"
                | "Terminating"
                | "DeletionBlocked"
                | "ConnectionsPending"
                | status::UNDECLARED_INBOUND
        );
        if refused {
            events::publish(
                &ctx.client,
                customer,
                EventType::Warning,
                &c.reason,
                &c.message,
            )
            .await;
        }
    }
}

/// Before a partner change takes effect, records in the status which consultants held
/// roles for the former partner (read from the live bindings), together with the new
/// partner, in one write: the record survives a crash at any later point.
async fn remember_former_partner(customer: &Customer, ctx: &Context) -> Result<Customer> {
    let mut customer = customer.clone();
    let uid = uid_of(&customer)?;
    let name = customer.name_any();
    // The namespaces the spec asks for and those the status last listed (one the same
    // edit drops still holds its binding).
    let mut namespaces: BTreeSet<String> =
        resolve::namespace_names(&customer).into_iter().collect();
    namespaces.extend(
        customer
            .status
            .iter()
            .flat_map(|s| s.namespaces.iter().map(|n| n.name.clone())),
    );
    let bindings = namespaces
        .iter()
        .filter_map(|ns| {
            ctx.bindings
                .get(&ObjectRef::new(CONSULTANTS_BINDING).within(ns))
        })
        .filter(|b| b.labels().get(LABEL_CUSTOMER) == Some(&name) && is_owned_by(b.meta(), &uid))
        .map(|b| b.expand())
        .collect::<Result<Vec<RoleBinding>>>()?;
    let holders: BTreeSet<Subject> = bindings
        .iter()
        .flat_map(|b| {
            b.subjects
                .iter()
                .flatten()
                .filter_map(partner::subject_from_rbac)
        })
        .collect();
    let holders: Vec<Subject> = holders.into_iter().collect();
    let former = partner::former_partner(&customer, &holders);
    let status = customer.status.get_or_insert_with(Default::default);
    if status.former_partner == former {
        return Ok(customer);
    }
    let named = customer.spec.partner.as_ref().map(|p| p.name.clone());
    let recorded = status::merge_patch(
        &serde_json::to_value(&status.former_partner)?,
        &serde_json::to_value(&former)?,
    );
    let patch = json!({"status": {"partner": named, "formerPartner": recorded}});
    Api::<Customer>::all(ctx.client.clone())
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    status.partner = named;
    status.former_partner = former;
    Ok(customer)
}

/// Converges a Customer; when the apiserver refuses one of its objects, says so in the
/// status (Ready=False, reason ApplyRefused, naming the object; an Event) before the
/// error goes to the retry with backoff.
async fn converge(customer: &Customer, ctx: &Context) -> Result<Action> {
    match converge_now(customer, ctx).await {
        Err(Error::ApplyRefused {
            object,
            message,
            source,
        }) => {
            let refused = format!("the apiserver refused {object}: {message}");
            write_status(customer, ctx, &Outcome::Refused(refused)).await?;
            Err(Error::ApplyRefused {
                object,
                message,
                source,
            })
        }
        other => other,
    }
}

async fn converge_now(customer: &Customer, ctx: &Context) -> Result<Action> {
    let customer = &remember_former_partner(customer, ctx).await?;
    let settings = &ctx.options.settings;
    let wanted = match desired::desired(customer, ctx, settings) {
        Ok(wanted) => wanted,
        Err(Error::Invalid(problems)) => {
            if problems.iter().any(|p| is_parent_problem(p.reason)) {
                withdraw_parent_admins(customer, ctx).await?;
            }
            write_status(customer, ctx, &Outcome::Invalid(problems)).await?;
            return Ok(Action::requeue(ctx.options.resync));
        }
        Err(other) => return Err(other),
    };
    let uid = uid_of(customer)?;
    let name = customer.name_any();
    let mut observed = Observed {
        isolation: Some(resolve::effective(customer, ctx, settings).isolation),
        ..Default::default()
    };
    for conflict in &wanted.conflicts {
        observed.conflicts.push(format!(
            "{} (Customer {})",
            conflict.namespace, conflict.holder
        ));
        observed.namespaces.push(NamespaceStatus {
            name: conflict.namespace.clone(),
            phase: "Conflict".into(),
        });
    }
    for foreign in &wanted.foreign {
        observed
            .conflicts
            .push(format!("{foreign} (exists, not the customer's)"));
        observed.namespaces.push(NamespaceStatus {
            name: foreign.clone(),
            phase: "Conflict".into(),
        });
    }

    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let mut usable = BTreeSet::new();
    for ns in &wanted.namespaces {
        let ns_name = ns.name_any();
        let live = match ctx.namespaces.get(&ObjectRef::new(&ns_name)) {
            Some(meta) => Some((*meta).clone()),
            // Created a moment ago (the cache will show it): no need to read it.
            None if ctx.written_just_now(ns)? => {
                usable.insert(ns_name.clone());
                observed.namespaces.push(NamespaceStatus {
                    name: ns_name,
                    phase: "Active".into(),
                });
                continue;
            }
            None => namespaces.get_metadata_opt(&ns_name).await?,
        };
        let phase = match &live {
            None => {
                ctx.apply(&namespaces, ns, None).await?;
                usable.insert(ns_name.clone());
                "Active"
            }
            Some(meta) => {
                let ours = is_owned_by(&meta.metadata, &uid);
                let handed_over = meta.annotations().get(ANNOTATION_ADOPT) == Some(&name);
                if !(ours || handed_over) {
                    observed
                        .conflicts
                        .push(format!("{ns_name} (exists, not the customer's)"));
                    "Conflict"
                } else if meta.metadata.deletion_timestamp.is_some() {
                    "Terminating"
                } else {
                    let live_ns = serde_json::to_value(Namespace {
                        metadata: meta.metadata.clone(),
                        ..Default::default()
                    })?;
                    ctx.apply(&namespaces, ns, Some(&live_ns)).await?;
                    usable.insert(ns_name.clone());
                    "Active"
                }
            }
        };
        observed.namespaces.push(NamespaceStatus {
            name: ns_name,
            phase: phase.into(),
        });
    }

    // Kept namespaces (no longer listed, deletionProtection) are managed like listed ones.
    for kept in &wanted.kept {
        let terminating = ctx
            .namespaces
            .get(&ObjectRef::new(kept))
            .is_none_or(|ns| ns.metadata.deletion_timestamp.is_some());
        if !terminating {
            usable.insert(kept.clone());
        }
    }

    // The default-deny policy of every namespace goes first, before any policy that
    // allows something: a new namespace is never open while it converges. Then the
    // other policies, the quota and the limits side by side, then the RoleBindings.
    let scope = Scope {
        ctx,
        usable: &usable,
        customer: &name,
        uid: &uid,
    };
    let deny = |p: &NetworkPolicy| p.name_any() == DEFAULT_DENY;
    let policies = &wanted.network_policies;
    scope
        .converge(&ctx.policies, policies, deny, Prune::No)
        .await?;
    // Access comes last: nobody is granted a role in a namespace whose policies, quota
    // and limits are not in place (an apply the apiserver refuses stops here).
    let (policies, quotas, limits) = futures::try_join!(
        scope.converge(
            &ctx.policies,
            policies,
            |p| !deny(p),
            Prune::Names(&POLICY_NAMES)
        ),
        scope.converge(
            &ctx.quotas,
            &wanted.resource_quotas,
            |_| true,
            Prune::Names(&[QUOTA_NAME])
        ),
        scope.converge(
            &ctx.limits,
            &wanted.limit_ranges,
            |_| true,
            Prune::Names(&[LIMITS_NAME])
        ),
    )?;
    let bindings = scope
        .converge(
            &ctx.bindings,
            &wanted.role_bindings,
            |_| true,
            Prune::Names(&BINDING_NAMES),
        )
        .await?;
    let summary = Summary {
        namespaces: usable.len() as u32,
        network_policies: policies,
        role_bindings: bindings,
        quotas: quotas + limits,
    };
    observed.summary = summary;
    observed.undeclared_inbound =
        super::isolation::undeclared_inbound(ctx, customer, &wanted, &usable, &uid).await?;

    prune_namespaces(customer, ctx, &wanted, &uid).await?;
    observed.kept = wanted.kept.clone();
    observed.waiting_peers = wanted.waiting_peers.clone();
    observed.carried_over = wanted.carried_over.clone();
    let missing = ctx.missing_roles.read().expect("roles lock").clone();
    let mut referred: Vec<String> = wanted
        .role_bindings
        .iter()
        .filter(|b| usable.contains(&b.namespace().unwrap_or_default()))
        .map(|b| b.role_ref.name.clone())
        .filter(|role| missing.contains(role))
        .collect();
    referred.sort();
    referred.dedup();
    observed.missing_roles = referred;
    let settled = observed.conflicts.is_empty()
        && observed.waiting_peers.is_empty()
        && observed.namespaces.iter().all(|n| n.phase == "Active");
    write_status(customer, ctx, &Outcome::Applied(observed)).await?;
    Ok(Action::requeue(if settled {
        ctx.options.resync
    } else {
        SOON
    }))
}

/// Whether a refusal is about the customer's parent: then what the parent granted
/// before (its admins' binding) must not outlive the refusal.
fn is_parent_problem(reason: Reason) -> bool {
    matches!(
        reason,
        Reason::ParentCycle | Reason::UnknownParent | Reason::ParentTooDeep
    )
}

/// A refused parent (a cycle made by two edits, a parent deleted) grants nothing: deletes
/// the parent admins' binding in the customer's own namespaces. The rest of the
/// customer's objects stay as they were.
async fn withdraw_parent_admins(customer: &Customer, ctx: &Context) -> Result<()> {
    let (name, uid) = (customer.name_any(), uid_of(customer)?);
    for ns in own_namespaces(ctx, &name, &uid) {
        let ns = ns.name_any();
        let Some(live) = ctx
            .bindings
            .get(&ObjectRef::new(PARENT_ADMINS_BINDING).within(&ns))
        else {
            continue;
        };
        let mine =
            live.labels().get(LABEL_CUSTOMER) == Some(&name) && is_owned_by(live.meta(), &uid);
        if mine && live.meta().deletion_timestamp.is_none() {
            let api: Api<RoleBinding> = Api::namespaced(ctx.client.clone(), &ns);
            delete_exactly(&api, PARENT_ADMINS_BINDING, live.uid()).await?;
        }
    }
    Ok(())
}

/// Requests one reconcile sends at the same time for one kind of object.
const PARALLEL_APPLIES: usize = 4;

/// Whether [`Scope::converge`] also deletes what is no longer wanted, and which names
/// it looks up for that in each usable namespace (every name the builder gives objects
/// of the kind: a lookup each instead of a pass over every cached object).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Prune {
    Names(&'static [&'static str]),
    No,
}

/// One customer's reconcile, for its namespaced children.
struct Scope<'a> {
    ctx: &'a Context,
    /// Namespaces that exist, are the customer's and are not terminating.
    usable: &'a BTreeSet<String>,
    customer: &'a str,
    uid: &'a str,
}

impl Scope<'_> {
    /// Applies the objects of one kind that `selected` picks in the usable namespaces, a
    /// few at a time, and with `Prune::Yes` deletes the ones of this customer (label and
    /// ownerReference) that are wanted in no usable namespace. Returns how many are
    /// wanted in usable namespaces.
    async fn converge<K>(
        &self,
        store: &Store<Compact<K>>,
        wanted: &[K],
        selected: impl Fn(&K) -> bool,
        prune: Prune,
    ) -> Result<u32>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + Debug
            + Serialize
            + DeserializeOwned
            + Send
            + Sync
            + 'static,
    {
        let (ctx, usable, customer, uid) = (self.ctx, self.usable, self.customer, self.uid);
        let placed: Vec<&K> = wanted
            .iter()
            .filter(|o| usable.contains(&o.namespace().unwrap_or_default()))
            .collect();
        let mut applies = Vec::new();
        for object in placed.iter().copied() {
            if selected(object) {
                applies.push(apply_one(ctx, store, object));
            }
        }
        futures::stream::iter(applies)
            .buffer_unordered(PARALLEL_APPLIES)
            .try_collect::<Vec<_>>()
            .await?;
        let Prune::Names(names) = prune else {
            return Ok(placed.len() as u32);
        };
        let keep: BTreeSet<(String, &str)> = placed
            .iter()
            .filter_map(|o| Some((o.namespace()?, o.meta().name.as_deref()?)))
            .collect();
        for ns in usable {
            for name in names {
                if keep.contains(&(ns.clone(), *name)) {
                    continue;
                }
                let Some(live) = store.get(&ObjectRef::new(name).within(ns)) else {
                    continue;
                };
                let mine = live.labels().get(LABEL_CUSTOMER).map(String::as_str) == Some(customer)
                    && is_owned_by(live.meta(), uid);
                if mine && live.meta().deletion_timestamp.is_none() {
                    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
                    delete_exactly(&api, name, live.uid()).await?;
                }
            }
        }
        Ok(placed.len() as u32)
    }
}

/// Applies one namespaced object unless its cached live form already matches.
async fn apply_one<K>(
    ctx: &Context,
    store: &Store<Compact<K>>,
    object: &K,
) -> Result<super::apply::Applied>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
{
    let ns = object.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    let live = store
        .get(&ObjectRef::new(&object.name_any()).within(&ns))
        .map(|live| live.value())
        .transpose()?;
    ctx.apply(&api, object, live.as_ref()).await
}

/// Deletes an object only if it is still the one that was checked (same uid).
pub(crate) async fn delete_exactly<K>(api: &Api<K>, name: &str, uid: Option<String>) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid,
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The customer's own namespaces (its label, and recorded as owned by it), from the
/// cache.
pub(crate) fn own_namespaces(
    ctx: &Context,
    customer: &str,
    uid: &str,
) -> Vec<Arc<PartialObjectMeta<Namespace>>> {
    ctx.namespaces_by_customer
        .names(customer)
        .iter()
        .filter_map(|name| ctx.namespaces.get(&ObjectRef::new(name)))
        .filter(|ns| {
            ns.labels().get(LABEL_CUSTOMER).map(String::as_str) == Some(customer)
                && is_owned_by(&ns.metadata, uid)
        })
        .collect()
}

/// Deletes the customer's own namespaces that the spec no longer lists and
/// `deletionProtection` does not keep ([`Desired::kept`]).
async fn prune_namespaces(
    customer: &Customer,
    ctx: &Context,
    wanted: &Desired,
    uid: &str,
) -> Result<()> {
    let keep: BTreeSet<String> = wanted
        .namespaces
        .iter()
        .map(|n| n.name_any())
        .chain(wanted.kept.iter().cloned())
        .collect();
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    for ns in own_namespaces(ctx, &customer.name_any(), uid) {
        if keep.contains(&ns.name_any()) || ns.metadata.deletion_timestamp.is_some() {
            continue;
        }
        delete_exactly(&api, &ns.name_any(), ns.uid()).await?;
    }
    Ok(())
}

/// The customer's namespaces during a blocked deletion, as they really are: those it
/// owns (Active or Terminating) and those its status listed that are gone.
fn namespaces_as_they_are(customer: &Customer, ctx: &Context, uid: &str) -> Vec<NamespaceStatus> {
    let mut out: Vec<NamespaceStatus> = own_namespaces(ctx, &customer.name_any(), uid)
        .iter()
        .map(|ns| NamespaceStatus {
            name: ns.name_any(),
            phase: if ns.metadata.deletion_timestamp.is_some() {
                "Terminating"
            } else {
                "Active"
            }
            .into(),
        })
        .collect();
    let listed = customer.status.iter().flat_map(|s| &s.namespaces);
    for earlier in listed.filter(|n| n.phase != "Conflict") {
        if !out.iter().any(|n| n.name == earlier.name) {
            out.push(NamespaceStatus {
                name: earlier.name.clone(),
                phase: "Gone".into(),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Whether the Customer CRD itself is being deleted (an uninstall).
async fn crd_is_going(ctx: &Context) -> Result<bool> {
    let crds: Api<CustomResourceDefinition> = Api::all(ctx.client.clone());
    let name = format!("{}.{}", Customer::plural(&()), Customer::group(&()));
    Ok(match crds.get_opt(&name).await? {
        Some(crd) => crd.metadata.deletion_timestamp.is_some(),
        None => true,
    })
}

async fn cleanup(customer: &Customer, ctx: &Context) -> Result<Action> {
    if !customer.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let uid = uid_of(customer)?;
    let name = customer.name_any();
    if crd_is_going(ctx).await? {
        release(customer, ctx, &uid).await?;
        remove_finalizer(&Api::<Customer>::all(ctx.client.clone()), customer).await?;
        return Ok(Action::await_change());
    }
    if customer.spec.deletion_protection {
        let namespaces = namespaces_as_they_are(customer, ctx, &uid);
        let settled = namespaces.iter().all(|n| n.phase != "Terminating");
        write_status(customer, ctx, &Outcome::DeletionBlocked(namespaces)).await?;
        return Ok(Action::requeue(if settled {
            ctx.options.resync
        } else {
            SOON
        }));
    }
    let customers: Api<Customer> = Api::all(ctx.client.clone());
    let inner = desired::relations::inner_customers(customer, &ctx.customers.state());
    if !inner.is_empty() {
        for c in inner
            .iter()
            .filter(|c| c.meta().deletion_timestamp.is_none())
        {
            delete_exactly(&customers, &c.name_any(), c.uid()).await?;
        }
        let names: Vec<String> = inner.iter().map(|c| c.name_any()).collect();
        let waiting = format!(
            "waiting for inner customers to be deleted: {}",
            names.join(", ")
        );
        write_status(customer, ctx, &Outcome::Terminating(waiting)).await?;
        return Ok(Action::requeue(SOON));
    }
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let own = own_namespaces(ctx, &name, &uid);
    if !own.is_empty() {
        for ns in own
            .iter()
            .filter(|n| n.metadata.deletion_timestamp.is_none())
        {
            delete_exactly(&namespaces, &ns.name_any(), ns.uid()).await?;
        }
        let names: Vec<String> = own.iter().map(|n| n.name_any()).collect();
        let waiting = format!("waiting for namespaces to be deleted: {}", names.join(", "));
        write_status(customer, ctx, &Outcome::Terminating(waiting)).await?;
        return Ok(Action::requeue(SOON));
    }
    remove_finalizer(&Api::<Customer>::all(ctx.client.clone()), customer).await?;
    Ok(Action::await_change())
}

/// On uninstall: takes the Customer's ownership record off its namespaces (so that a
/// Customer of the same name created again is not refused them as a former
/// incarnation's) and marks each for adoption by a Customer of that name; takes an
/// ownerReference of an earlier version off their children (so the garbage collector
/// keeps them).
async fn release(customer: &Customer, ctx: &Context, uid: &str) -> Result<()> {
    let name = customer.name_any();
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    for ns in own_namespaces(ctx, &name, uid) {
        let patch = json!({"metadata": {
            "ownerReferences": others(&ns.metadata, uid),
            "annotations": {ANNOTATION_ADOPT: name, ANNOTATION_OWNER_UID: null},
        }});
        namespaces
            .patch(
                &ns.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
    }
    release_kind(ctx, &ctx.policies, &name, uid).await?;
    release_kind(ctx, &ctx.bindings, &name, uid).await?;
    release_kind(ctx, &ctx.quotas, &name, uid).await?;
    release_kind(ctx, &ctx.limits, &name, uid).await?;
    Ok(())
}

fn others(meta: &kube::core::ObjectMeta, uid: &str) -> Vec<serde_json::Value> {
    meta.owner_references
        .iter()
        .flatten()
        .filter(|o| o.uid != uid)
        .map(|o| serde_json::to_value(o).unwrap_or_default())
        .collect()
}

async fn release_kind<K>(
    ctx: &Context,
    store: &Store<Compact<K>>,
    customer: &str,
    uid: &str,
) -> Result<()>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    for live in store.state() {
        let referenced = live.owner_references().iter().any(|o| o.uid == uid);
        if live.labels().get(LABEL_CUSTOMER).map(String::as_str) != Some(customer) || !referenced {
            continue;
        }
        let api: Api<K> =
            Api::namespaced(ctx.client.clone(), &live.namespace().unwrap_or_default());
        let patch = json!({"metadata": {"ownerReferences": others(live.meta(), uid)}});
        api.patch(
            &live.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    }
    Ok(())
}
