//! What deleting a Customer does: waits while `deletionProtection` or a freeze holds it, deletes its
//! inner customers and then its namespaces, and only then lets it go; on an uninstall
//! (the CRD itself is being deleted) it leaves everything in place instead.

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::apply::delete_exactly;
use super::compact::Compact;
use super::error::{At, Result, Step, describe, named};
use super::status::{DeletionHold, Outcome};
use super::{
    Context, SOON, app_projects, cluster_policies, finalizer, namespaces, plan::NamespacePhase,
    status_write, uid_of,
};
use crate::api::{ANNOTATION_ADOPT, Customer, LABEL_CUSTOMER};
use crate::desired::children::{Children, Kind};
use crate::desired::ownership::ANNOTATION_OWNER_UID;
use crate::desired::relations::inner_customers;
use crate::desired::resolve;

/// Cleans up after a deleted Customer, one step per reconcile.
pub async fn cleanup(customer: &Customer, ctx: &Context) -> Result<Action> {
    if !finalizer::has_finalizer(customer) {
        return Ok(Action::await_change());
    }
    let uid = uid_of(customer)?;
    let api = Api::<Customer>::all(ctx.client.clone());
    if crd_is_going(ctx).await? {
        release(customer, ctx, &uid).await?;
        finalizer::remove(&api, customer).await?;
        return Ok(Action::await_change());
    }
    let hold = DeletionHold {
        protection: customer.spec.deletion_protection,
        freeze: resolve::frozen_by(customer, &ctx.caches, &ctx.options.settings),
    };
    if hold.holds() {
        let namespaces = namespaces::as_they_are(customer, ctx, &uid);
        let settled = namespaces
            .iter()
            .all(|n| NamespacePhase::of(n) != Some(NamespacePhase::Terminating));
        let blocked = Outcome::DeletionBlocked(namespaces, hold);
        status_write::write(customer, ctx, &blocked).await?;
        return Ok(ctx.requeue(settled));
    }
    // The AppProject goes first: nothing is deployed into namespaces on their way out.
    app_projects::delete_all(ctx, customer, &uid).await?;
    let waiting = match delete_inner_customers(customer, ctx).await? {
        Some(waiting) => Some(waiting),
        None => delete_namespaces(customer, ctx, &uid).await?,
    };
    if let Some(waiting) = waiting {
        status_write::write(customer, ctx, &Outcome::Terminating(waiting)).await?;
        return Ok(Action::requeue(SOON));
    }
    // The ClusterNetworkPolicies go last: they isolate the namespaces until those are
    // gone.
    cluster_policies::delete_all(ctx, customer, &uid).await?;
    finalizer::remove(&api, customer).await?;
    Ok(Action::await_change())
}

/// Deletes the inner customers; what the deletion waits for, if any are left.
async fn delete_inner_customers(customer: &Customer, ctx: &Context) -> Result<Option<String>> {
    let inner = inner_customers(customer, &ctx.caches.customers.state());
    if inner.is_empty() {
        return Ok(None);
    }
    let customers: Api<Customer> = Api::all(ctx.client.clone());
    for c in inner
        .iter()
        .filter(|c| c.meta().deletion_timestamp.is_none())
    {
        delete_exactly(&customers, &c.name_any(), c.uid()).await?;
    }
    let names: Vec<String> = inner.iter().map(|c| c.name_any()).collect();
    Ok(Some(format!(
        "waiting for inner customers to be deleted: {}",
        names.join(", ")
    )))
}

/// Deletes the customer's own namespaces; what the deletion waits for, if any are left.
async fn delete_namespaces(
    customer: &Customer,
    ctx: &Context,
    uid: &str,
) -> Result<Option<String>> {
    let own = ctx.caches.own_namespaces(&customer.name_any(), uid);
    if own.is_empty() {
        return Ok(None);
    }
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    for ns in own
        .iter()
        .filter(|n| n.metadata.deletion_timestamp.is_none())
    {
        delete_exactly(&api, &ns.name_any(), ns.uid()).await?;
    }
    let names: Vec<String> = own.iter().map(|n| n.name_any()).collect();
    Ok(Some(format!(
        "waiting for namespaces to be deleted: {}",
        names.join(", ")
    )))
}

/// Whether the Customer CRD itself is being deleted (an uninstall).
async fn crd_is_going(ctx: &Context) -> Result<bool> {
    let crds: Api<CustomResourceDefinition> = Api::all(ctx.client.clone());
    let name = format!("{}.{}", Customer::plural(&()), Customer::group(&()));
    let crd = crds.get_opt(&name).await.at(
        Step::ReadCrd,
        describe("CustomResourceDefinition", None, &name),
    )?;
    Ok(match crd {
        Some(crd) => crd.metadata.deletion_timestamp.is_some(),
        None => true,
    })
}

/// On uninstall: takes the Customer's ownership record off its namespaces (so that a
/// Customer of the same name created again is not refused them as a former
/// incarnation's) and marks each for adoption by a Customer of that name; takes an
/// ownerReference of an earlier version off their children (so the garbage collector
/// keeps them).
async fn release(customer: &Customer, ctx: &Context, uid: &str) -> Result<()> {
    let name = customer.name_any();
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    for ns in ctx.caches.own_namespaces(&name, uid) {
        let patch = json!({"metadata": {
            "ownerReferences": others(&ns.metadata, uid),
            "annotations": {ANNOTATION_ADOPT: name, ANNOTATION_OWNER_UID: null},
        }});
        api.patch(
            &ns.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .at(Step::Release, describe("Namespace", None, &ns.name_any()))?;
    }
    let Children {
        network_policies,
        role_bindings,
        resource_quotas,
        limit_ranges,
    } = &ctx.caches.children;
    release_kind(ctx, network_policies, &name, uid).await?;
    release_kind(ctx, role_bindings, &name, uid).await?;
    release_kind(ctx, resource_quotas, &name, uid).await?;
    release_kind(ctx, limit_ranges, &name, uid).await?;
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

async fn release_kind<K: Kind>(
    ctx: &Context,
    store: &Store<Compact<K>>,
    customer: &str,
    uid: &str,
) -> Result<()> {
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
        .await
        .at(Step::Release, named(&*live))?;
    }
    Ok(())
}
