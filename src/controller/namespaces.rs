//! The customer's namespaces against the apiserver: what is known of each, the writes a
//! [`NamespacePlan`] asks for, and deleting those no longer wanted.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};

use super::Context;
use super::apply::{self, delete_exactly};
use super::error::{At, Result, Step, describe};
use super::inflight;
use super::plan::{Live, NamespacePhase, NamespacePlan, NamespaceWrite};
use crate::api::{Customer, FIELD_MANAGER, NamespaceStatus};
use crate::desired::Desired;

/// What is known of each namespace the customer wants (the cache, else the operator's
/// own write a moment ago) and of each it keeps (the cache only). A wanted namespace
/// neither shows is planned as absent and created with a plain create, which the
/// apiserver refuses when the name exists: no read first.
pub fn look_up(ctx: &Context, wanted: &Desired) -> Result<BTreeMap<String, Live>> {
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
            // Created a moment ago (the cache will show it): nothing to do.
            None if ctx.written_just_now(ns)? => Live::WrittenJustNow,
            None => Live::Absent,
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
            NamespaceWrite::Create(ns) => create(ctx, &api, ns).await?,
            NamespaceWrite::Update(ns, live) => {
                // The live namespace as the apply compares it, serialized from the cache
                // without a copy.
                let live = serde_json::json!({
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": &live.metadata,
                });
                if apply::plan(*ns, Some(&live))?.1 != apply::Applied::Unchanged {
                    adopt_created_fields(&api, &ns.name_any()).await?;
                }
                ctx.apply(&api, *ns, Some(&live)).await?;
            }
        }
    }
    Ok(())
}

/// Creates a namespace with a plain create (its applied form, so the next reconcile sees
/// it up to date). The apiserver refuses it when the name exists, so a namespace someone
/// else created since the cache last looked is never labelled, recorded as the
/// customer's or deleted with it: the reconcile fails at [`Step::CreateNamespace`] and
/// the next one finds the namespace in the cache, not the customer's (a conflict).
async fn create(ctx: &Context, api: &Api<Namespace>, ns: &Namespace) -> Result<()> {
    let (applied, _) = apply::plan(ns, None)?;
    let target = inflight::target(&Namespace::kind(&()), ns);
    let content = apply::content_hash(&applied);
    let body: Namespace = serde_json::from_value(applied)?;
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let name = ns.name_any();
    let send = async {
        api.create(&params, &body)
            .await
            .at(Step::CreateNamespace, describe("Namespace", None, &name))
    };
    if ctx.write_once(target, content, send).await?.is_some() {
        ctx.metrics
            .applied(&Namespace::kind(&()), apply::Applied::Created.cause());
    }
    Ok(())
}

/// Before the first server-side apply to a namespace the operator created, makes the
/// create's fields the apply's: a create records them under the operator's manager with
/// operation `Update`, and a field an apply no longer sends is removed only if no other
/// entry owns it, so a label dropped from the spec would otherwise stay. Reads the
/// namespace (updates are rare; the cache keeps no managed fields) and, when it holds
/// such an entry, rewrites the entries in one JSON patch guarded by its resourceVersion.
async fn adopt_created_fields(api: &Api<Namespace>, name: &str) -> Result<()> {
    let object = describe("Namespace", None, name);
    let Some(live) = api
        .get_metadata_opt(name)
        .await
        .at(Step::ReadNamespace, &object)?
    else {
        return Ok(());
    };
    let entries = live.metadata.managed_fields.as_deref().unwrap_or_default();
    let Some(entries) = adopted(entries) else {
        return Ok(());
    };
    // A resourceVersion in a merge patch is a precondition: a namespace changed since
    // the read is refused (409) and the reconcile retried.
    let patch = serde_json::json!({"metadata": {
        "resourceVersion": live.metadata.resource_version,
        "managedFields": entries,
    }});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .at(Step::AdoptNamespace, &object)?;
    Ok(())
}

/// The managed fields with the operator's create entry (manager [`FIELD_MANAGER`],
/// operation `Update`) folded into its apply entry (or turned into one); `None` when
/// there is no create entry.
fn adopted(entries: &[ManagedFieldsEntry]) -> Option<Vec<ManagedFieldsEntry>> {
    let ours = |e: &ManagedFieldsEntry, operation: &str| {
        e.manager.as_deref() == Some(FIELD_MANAGER)
            && e.operation.as_deref() == Some(operation)
            && e.subresource.is_none()
    };
    let at = entries.iter().position(|e| ours(e, "Update"))?;
    let mut out = entries.to_vec();
    let created = out.remove(at);
    match out.iter_mut().find(|e| ours(e, "Apply")) {
        Some(applied) => {
            let mut fields = applied.fields_v1.take().map(|f| f.0).unwrap_or_default();
            union(
                &mut fields,
                created.fields_v1.map(|f| f.0).unwrap_or_default(),
            );
            applied.fields_v1 = Some(FieldsV1(fields));
        }
        None => out.insert(
            at,
            ManagedFieldsEntry {
                operation: Some("Apply".into()),
                ..created
            },
        ),
    }
    Some(out)
}

/// Adds the field set `more` to `fields` (both in the FieldsV1 form: nested objects).
fn union(fields: &mut serde_json::Value, more: serde_json::Value) {
    match (fields.as_object_mut(), more) {
        (Some(fields), serde_json::Value::Object(more)) => {
            for (key, value) in more {
                union(
                    fields.entry(key).or_insert_with(|| serde_json::json!({})),
                    value,
                );
            }
        }
        (None, more) => *fields = more,
        _ => {}
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(manager: &str, operation: &str, fields: serde_json::Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(operation.into()),
            api_version: Some("v1".into()),
            fields_type: Some("FieldsV1".into()),
            fields_v1: Some(FieldsV1(fields)),
            ..Default::default()
        }
    }

    #[test]
    fn the_create_entry_becomes_the_apply_entry() {
        let labels = json!({"f:metadata": {"f:labels": {"f:team": {}}}});
        let other = entry(
            "kubectl",
            "Update",
            json!({"f:metadata": {"f:labels": {"f:x": {}}}}),
        );
        let entries = [
            entry(FIELD_MANAGER, "Update", labels.clone()),
            other.clone(),
        ];
        let out = adopted(&entries).expect("a create entry");
        assert_eq!(out, [entry(FIELD_MANAGER, "Apply", labels), other]);
    }

    #[test]
    fn the_create_entry_is_folded_into_an_existing_apply_entry() {
        let entries = [
            entry(
                FIELD_MANAGER,
                "Apply",
                json!({"f:metadata": {"f:labels": {"f:a": {}}}}),
            ),
            entry(
                FIELD_MANAGER,
                "Update",
                json!({"f:metadata": {"f:labels": {"f:b": {}}, "f:annotations": {"f:c": {}}}}),
            ),
        ];
        let out = adopted(&entries).expect("a create entry");
        assert_eq!(
            out,
            [entry(
                FIELD_MANAGER,
                "Apply",
                json!({"f:metadata": {"f:labels": {"f:a": {}, "f:b": {}}, "f:annotations": {"f:c": {}}}})
            )]
        );
    }

    #[test]
    fn without_a_create_entry_nothing_is_rewritten() {
        let entries = [
            entry(FIELD_MANAGER, "Apply", json!({})),
            entry("someone", "Update", json!({})),
        ];
        assert_eq!(adopted(&entries), None);
    }
}
