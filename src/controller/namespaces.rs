//! The customer's namespaces against the apiserver: what is known of each, the writes a
//! [`NamespacePlan`] asks for, and deleting those no longer wanted.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use super::Context;
use super::apply::delete_exactly;
use super::error::{At, Result, Step, describe};
use super::plan::{Live, NamespacePhase, NamespacePlan, NamespaceWrite};
use crate::api::{Customer, NamespaceStatus};
use crate::desired::Desired;

/// What is known of each namespace the customer wants (the cache, else the operator's
/// own write a moment ago, else a read) and of each it keeps (the cache only).
pub async fn look_up(ctx: &Context, wanted: &Desired) -> Result<BTreeMap<String, Live>> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let cached = |name: &str| {
        ctx.caches
            .namespaces
            .get(&ObjectRef::new(name))
            .map(Live::Present)
    };
    let mut live = BTreeMap::new();
    for ns in &wanted.namespaces {
        let name = ns.name_any();
        let known = match cached(&name) {
            Some(known) => known,
            // Created a moment ago (the cache will show it): no need to read it.
            None if ctx.written_just_now(ns)? => Live::WrittenJustNow,
            None => match api
                .get_metadata_opt(&name)
                .await
                .at(Step::ReadNamespace, describe("Namespace", None, &name))?
            {
                Some(meta) => Live::Present(std::sync::Arc::new(meta)),
                None => Live::Absent,
            },
        };
        live.insert(name, known);
    }
    for kept in &wanted.kept {
        if let Some(known) = cached(kept) {
            live.insert(kept.clone(), known);
        }
    }
    Ok(live)
}

/// Sends the plan's writes, one namespace after the other.
pub async fn apply(ctx: &Context, plan: &NamespacePlan<'_>) -> Result<()> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    for write in &plan.writes {
        match write {
            NamespaceWrite::Create(ns) => {
                ctx.apply(&api, *ns, None).await?;
            }
            NamespaceWrite::Update(ns, live) => {
                // The live namespace as the apply compares it, serialized from the cache
                // without a copy.
                let live = serde_json::json!({
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": &live.metadata,
                });
                ctx.apply(&api, *ns, Some(&live)).await?;
            }
        }
    }
    Ok(())
}

/// Deletes the customer's own namespaces that the spec no longer lists and
/// `deletionProtection` does not keep ([`Desired::kept`]).
pub async fn prune(customer: &Customer, ctx: &Context, wanted: &Desired, uid: &str) -> Result<()> {
    let keep: BTreeSet<String> = wanted
        .namespaces
        .iter()
        .map(|n| n.name_any())
        .chain(wanted.kept.iter().cloned())
        .collect();
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    for ns in ctx.caches.own_namespaces(&customer.name_any(), uid) {
        if keep.contains(&ns.name_any()) || ns.metadata.deletion_timestamp.is_some() {
            continue;
        }
        delete_exactly(&api, &ns.name_any(), ns.uid()).await?;
    }
    Ok(())
}

/// The customer's namespaces during a blocked deletion, as they really are: those it
/// owns (Active or Terminating) and those its status listed that are gone.
pub fn as_they_are(customer: &Customer, ctx: &Context, uid: &str) -> Vec<NamespaceStatus> {
    let mut out: Vec<NamespaceStatus> = ctx
        .caches
        .own_namespaces(&customer.name_any(), uid)
        .iter()
        .map(|ns| {
            let phase = if ns.metadata.deletion_timestamp.is_some() {
                NamespacePhase::Terminating
            } else {
                NamespacePhase::Active
            };
            phase.of_namespace(&ns.name_any())
        })
        .collect();
    let listed = customer.status.iter().flat_map(|s| &s.namespaces);
    for earlier in listed.filter(|n| NamespacePhase::of(n) != Some(NamespacePhase::Conflict)) {
        if !out.iter().any(|n| n.name == earlier.name) {
            out.push(NamespacePhase::Gone.of_namespace(&earlier.name));
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}
