//! Writing a Customer's status: only when it changed, with a Warning Event for each
//! condition a person must act on; and the record of a former partner, written before a
//! partner change takes effect.

use std::collections::BTreeSet;

use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::Context;
use super::error::{At, Result, Step, named};
use super::events::{self, EventType};
use super::status::{self, Outcome, ReadyReason, types};
use crate::api::{Customer, CustomerStatus, LABEL_CUSTOMER, Subject};
use crate::desired::access::CONSULTANTS_BINDING;
use crate::desired::ownership::is_owned_by;
use crate::desired::{partner, resolve};

/// Writes the status when it differs from the stored one; publishes an Event for each
/// condition that newly turned bad or whose message changed.
pub async fn write(customer: &Customer, ctx: &Context, outcome: &Outcome) -> Result<()> {
    let old = customer.status.as_ref();
    let group = resolve::group_name(customer, &ctx.options.settings);
    let partner = customer.spec.partner.as_ref().map(|p| p.name.as_str());
    let now = Timestamp::now();
    let generation = customer.meta().generation;
    let mut new = status::compute(old, generation, &group, partner, outcome, now);
    let freeze = resolve::frozen_by(customer, &ctx.caches, &ctx.options.settings);
    status::record_freeze(&mut new, freeze.as_ref(), outcome, generation, now);
    if old == Some(&new) {
        return Ok(());
    }
    let name = customer.name_any();
    let write = async {
        tracing::debug!(customer = %name, ?old, ?new, "status changed");
        announce(customer, ctx, old, &new).await;
        let before = serde_json::to_value(old)?;
        let patch = json!({"status": status::merge_patch(&before, &serde_json::to_value(&new)?)});
        Api::<Customer>::all(ctx.client.clone())
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .at(Step::WriteStatus, named(customer))
    };
    // Not sent when the same status (but for its times) was written a moment ago and the
    // Customer this reconcile started from does not show it: written again, it would
    // differ in its transition times only and change the stored object for nothing.
    ctx.write_once_over(customer, "Customer/status", status_hash(&new)?, write)
        .await?;
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
    let warnings: Vec<_> = [
        types::CONFLICT,
        types::DELETION_BLOCKED,
        types::CONNECTIONS_PENDING,
        types::NETWORK_ISOLATED,
        types::ACCESS_GRANTED,
        types::QUOTA_EXCEEDED,
        types::ARGOCD_PROJECT,
    ]
    .into_iter()
    .filter_map(|type_| changed(type_).filter(|c| status::is_warning(c)))
    .chain(
        changed(types::READY).filter(|c| c.status == "False" && ReadyReason::is_refusal(&c.reason)),
    )
    .cloned()
    .collect();
    if let Some((reason, message)) = freeze_change(old, new) {
        events::publish(&ctx.client, customer, EventType::Normal, reason, &message).await;
    }
    for c in warnings {
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

/// The Normal Event of a freeze that took effect (`Frozen`, saying by what) or was lifted
/// (`Unfrozen`), if this status change is one.
fn freeze_change(
    old: Option<&CustomerStatus>,
    new: &CustomerStatus,
) -> Option<(&'static str, String)> {
    fn frozen(s: Option<&CustomerStatus>) -> Option<&Condition> {
        status::condition(s, types::FROZEN).filter(|c| c.status == "True")
    }
    match (frozen(old), frozen(Some(new))) {
        (None, Some(now)) => Some(("Frozen", now.message.clone())),
        (Some(_), None) => Some((
            "Unfrozen",
            "unfrozen: the customer's people have their roles back".to_string(),
        )),
        _ => None,
    }
}

/// Before a partner change takes effect, records in the status which consultants held
/// roles for the former partner (read from the live bindings), together with the new
/// partner, in one write: the record survives a crash at any later point.
pub async fn remember_former_partner(customer: &Customer, ctx: &Context) -> Result<Customer> {
    let mut customer = customer.clone();
    let uid = customer.uid().unwrap_or_default();
    let name = customer.name_any();
    let holders = consultants_holding_roles(&customer, ctx, &uid)?;
    let former = partner::former_partner(&customer, &holders);
    let status = customer.status.get_or_insert_with(Default::default);
    if status.former_partner == former {
        return Ok(customer);
    }
    let named_partner = customer.spec.partner.as_ref().map(|p| p.name.clone());
    let recorded = status::merge_patch(
        &serde_json::to_value(&status.former_partner)?,
        &serde_json::to_value(&former)?,
    );
    let patch = json!({"status": {"partner": named_partner, "formerPartner": recorded}});
    Api::<Customer>::all(ctx.client.clone())
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .at(Step::RecordPartner, format!("Customer {name}"))?;
    status.partner = named_partner;
    status.former_partner = former;
    Ok(customer)
}

/// The consultants the customer's live consultant bindings name, in the namespaces the
/// spec asks for and those the status last listed (one the same edit drops still holds
/// its binding).
fn consultants_holding_roles(
    customer: &Customer,
    ctx: &Context,
    uid: &str,
) -> Result<Vec<Subject>> {
    let name = customer.name_any();
    let mut namespaces: BTreeSet<String> = resolve::namespace_names(customer).into_iter().collect();
    namespaces.extend(
        customer
            .status
            .iter()
            .flat_map(|s| s.namespaces.iter().map(|n| n.name.clone())),
    );
    let cache = &ctx.caches.children.role_bindings;
    let bindings = namespaces
        .iter()
        .filter_map(|ns| cache.get(&ObjectRef::new(CONSULTANTS_BINDING).within(ns)))
        .filter(|b| b.labels().get(LABEL_CUSTOMER) == Some(&name) && is_owned_by(b.meta(), uid))
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
    Ok(holders.into_iter().collect())
}

/// Writes `new` as the status of `object` (a merge patch from `old`, nulls for what
/// went), unless it is what the object already shows.
pub async fn write_status_of<K, S>(api: &Api<K>, object: &K, old: Option<&S>, new: &S) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: serde::Serialize + PartialEq + Default + Clone,
{
    if old == Some(new) {
        return Ok(());
    }
    let old_value = serde_json::to_value(old.cloned().unwrap_or_default())?;
    let patch = json!({"status": status::merge_patch(&old_value, &serde_json::to_value(new)?)});
    api.patch_status(
        &object.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .at(Step::WriteStatus, named(object))?;
    Ok(())
}
