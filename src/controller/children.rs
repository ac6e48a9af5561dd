//! The customer's namespaced children against the apiserver: applied a few at a time,
//! the default-deny policy of every namespace first and the RoleBindings last, and those
//! no longer wanted deleted.

use std::collections::BTreeSet;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};

use super::Context;
use super::apply::{Applied, delete_exactly};
use super::compact::Compact;
use super::error::Result;
use crate::api::{Customer, LABEL_CUSTOMER};
use crate::desired::Desired;
use crate::desired::access::{PARENT_ADMINS_BINDING, PARENT_ADMINS_FROZEN_BINDING};
use crate::desired::children::{self, Children, Counts, Kind};
use crate::desired::network::DEFAULT_DENY;
use crate::desired::ownership::is_owned_by;

/// Requests one reconcile sends at the same time for one kind of object.
const PARALLEL_APPLIES: usize = 4;

/// Applies the wanted children in the `usable` namespaces and deletes the customer's
/// children wanted in none: the default-deny policy of every namespace goes first,
/// before any policy that allows something, so a new namespace is never open while it
/// converges; then the other policies, the quota and the limits side by side; access
/// comes last, so nobody is granted a role in a namespace whose policies, quota and
/// limits are not in place (an apply the apiserver refuses stops here). Returns how many
/// of each kind are wanted in usable namespaces.
pub async fn apply(
    ctx: &Context,
    customer: &Customer,
    uid: &str,
    wanted: &Desired,
    usable: &BTreeSet<String>,
) -> Result<Children<Counts>> {
    let scope = Scope {
        ctx,
        usable,
        customer: customer.metadata.name.as_deref().unwrap_or_default(),
        uid,
    };
    let Children {
        network_policies,
        role_bindings,
        resource_quotas,
        limit_ranges,
    } = wanted.children();
    let caches = &ctx.caches.children;
    let names = &children::NAMES;
    let deny = |p: &NetworkPolicy| p.name_any() == DEFAULT_DENY;
    scope
        .converge(&caches.network_policies, network_policies, deny, None)
        .await?;
    let (network_policies, resource_quotas, limit_ranges) = futures::try_join!(
        scope.converge(
            &caches.network_policies,
            network_policies,
            |p| !deny(p),
            Some(names.network_policies)
        ),
        scope.converge(
            &caches.resource_quotas,
            resource_quotas,
            |_| true,
            Some(names.resource_quotas)
        ),
        scope.converge(
            &caches.limit_ranges,
            limit_ranges,
            |_| true,
            Some(names.limit_ranges)
        ),
    )?;
    let role_bindings = scope
        .converge(
            &caches.role_bindings,
            role_bindings,
            |_| true,
            Some(names.role_bindings),
        )
        .await?;
    Ok(Children {
        network_policies,
        role_bindings,
        resource_quotas,
        limit_ranges,
    })
}

/// A refused parent (a cycle made by two edits, a parent deleted) grants nothing: deletes
/// the parent admins' binding (or its frozen form) in the customer's own namespaces. The
/// rest of the customer's objects stay as they were.
pub async fn withdraw_parent_admins(customer: &Customer, ctx: &Context, uid: &str) -> Result<()> {
    let name = customer.name_any();
    for ns in ctx.caches.own_namespaces(&name, uid) {
        let ns = ns.name_any();
        let bindings = &ctx.caches.children.role_bindings;
        for binding in [PARENT_ADMINS_BINDING, PARENT_ADMINS_FROZEN_BINDING] {
            let Some(live) = bindings.get(&ObjectRef::new(binding).within(&ns)) else {
                continue;
            };
            let mine =
                live.labels().get(LABEL_CUSTOMER) == Some(&name) && is_owned_by(live.meta(), uid);
            if mine && live.meta().deletion_timestamp.is_none() {
                let api: Api<RoleBinding> = Api::namespaced(ctx.client.clone(), &ns);
                delete_exactly(&api, binding, live.uid()).await?;
            }
        }
    }
    Ok(())
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
    /// few at a time; with `prune` (every name the builder gives objects of the kind: a
    /// lookup each instead of a pass over every cached object), deletes the ones of this
    /// customer (label and ownership record) that are wanted in no usable namespace.
    /// Returns how many are wanted in usable namespaces.
    async fn converge<K: Kind>(
        &self,
        store: &Store<Compact<K>>,
        wanted: &[K],
        selected: impl Fn(&K) -> bool,
        prune: Option<&[&str]>,
    ) -> Result<u32> {
        let placed: Vec<&K> = wanted
            .iter()
            .filter(|o| self.usable.contains(&o.namespace().unwrap_or_default()))
            .collect();
        let mut applies = Vec::new();
        for object in placed.iter().copied() {
            if selected(object) {
                applies.push(apply_one(self.ctx, store, object));
            }
        }
        futures::stream::iter(applies)
            .buffer_unordered(PARALLEL_APPLIES)
            .try_collect::<Vec<_>>()
            .await?;
        if let Some(names) = prune {
            self.prune(store, &placed, names).await?;
        }
        Ok(placed.len() as u32)
    }

    /// Deletes the customer's objects of these names that are not `placed`.
    async fn prune<K: Kind>(
        &self,
        store: &Store<Compact<K>>,
        placed: &[&K],
        names: &[&str],
    ) -> Result<()> {
        let keep: BTreeSet<(String, &str)> = placed
            .iter()
            .filter_map(|o| Some((o.namespace()?, o.meta().name.as_deref()?)))
            .collect();
        for ns in self.usable {
            for name in names {
                if keep.contains(&(ns.clone(), *name)) {
                    continue;
                }
                let Some(live) = store.get(&ObjectRef::new(name).within(ns)) else {
                    continue;
                };
                let mine = live.labels().get(LABEL_CUSTOMER).map(String::as_str)
                    == Some(self.customer)
                    && is_owned_by(live.meta(), self.uid);
                if mine && live.meta().deletion_timestamp.is_none() {
                    let api: Api<K> = Api::namespaced(self.ctx.client.clone(), ns);
                    delete_exactly(&api, name, live.uid()).await?;
                }
            }
        }
        Ok(())
    }
}

/// Applies one namespaced object unless its cached live form already matches.
async fn apply_one<K: Kind>(
    ctx: &Context,
    store: &Store<Compact<K>>,
    object: &K,
) -> Result<Applied> {
    let ns = object.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    let live = store
        .get(&ObjectRef::new(&object.name_any()).within(&ns))
        .map(|live| live.value())
        .transpose()?;
    ctx.apply(&api, object, live.as_ref()).await
}
