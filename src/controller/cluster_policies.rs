//! A customer's ClusterNetworkPolicies against the apiserver: applied before its
//! namespaces exist (a policy selects them by name, so a new namespace is isolated from
//! its first moment), pruned only after the NetworkPolicies that replace them are in
//! place, and deleted when the customer has no namespace left.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, ResourceExt};

use super::Context;
use super::apply::delete_exactly;
use super::error::{At, Result, Step, describe};
use crate::api::{CLUSTER_NETWORK_POLICY_CRD, ClusterNetworkPolicy, Customer, LABEL_CUSTOMER};
use crate::desired::Desired;
use crate::desired::cluster_policy;
use crate::desired::ownership::is_owned_by;

/// Whether the cluster serves ClusterNetworkPolicies (their CRD exists); false as well
/// when the operator may not read that CRD.
pub async fn served(client: &Client) -> Result<bool> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    match crds.get_opt(CLUSTER_NETWORK_POLICY_CRD).await {
        Ok(crd) => Ok(crd.is_some_and(|crd| crd.metadata.deletion_timestamp.is_none())),
        // RBAC that predates the ClusterNetworkPolicy backend: the operator cannot have
        // written any, and the NetworkPolicy backend goes on without them.
        Err(kube::Error::Api(status)) if status.code == 403 => {
            tracing::warn!(
                "may not read the CRD {CLUSTER_NETWORK_POLICY_CRD}: ClusterNetworkPolicies are not watched"
            );
            Ok(false)
        }
        Err(error) => Err(error).at(
            Step::ReadCrd,
            describe("CustomResourceDefinition", None, CLUSTER_NETWORK_POLICY_CRD),
        ),
    }
}

/// Applies the customer's wanted ClusterNetworkPolicies (none under the NetworkPolicy
/// backend). Returns how many are wanted.
pub async fn apply(ctx: &Context, wanted: &Desired) -> Result<u32> {
    let api: Api<ClusterNetworkPolicy> = Api::all(ctx.client.clone());
    for policy in &wanted.cluster_network_policies {
        let live = ctx
            .caches
            .cluster_policies
            .get(&ObjectRef::new(&policy.name_any()))
            .map(|live| serde_json::to_value(&*live))
            .transpose()?;
        ctx.apply(&api, policy, live.as_ref()).await?;
    }
    Ok(wanted.cluster_network_policies.len() as u32)
}

/// Deletes the customer's ClusterNetworkPolicies that are not wanted (after a switch to
/// the NetworkPolicy backend, or when its isolation became None): only those that carry
/// its label and its ownership record `uid`.
pub async fn prune(ctx: &Context, customer: &Customer, uid: &str, wanted: &Desired) -> Result<()> {
    let keep: Vec<String> = wanted
        .cluster_network_policies
        .iter()
        .map(|p| p.name_any())
        .collect();
    delete_owned(ctx, customer, uid, &keep).await
}

/// Deletes every ClusterNetworkPolicy of the customer (its namespaces are gone).
pub async fn delete_all(ctx: &Context, customer: &Customer, uid: &str) -> Result<()> {
    delete_owned(ctx, customer, uid, &[]).await
}

async fn delete_owned(
    ctx: &Context,
    customer: &Customer,
    uid: &str,
    keep: &[String],
) -> Result<()> {
    let name = customer.name_any();
    let api: Api<ClusterNetworkPolicy> = Api::all(ctx.client.clone());
    for policy_name in cluster_policy::names(&name) {
        if keep.contains(&policy_name) {
            continue;
        }
        let Some(live) = ctx
            .caches
            .cluster_policies
            .get(&ObjectRef::new(&policy_name))
        else {
            continue;
        };
        let mine =
            live.labels().get(LABEL_CUSTOMER) == Some(&name) && is_owned_by(&live.metadata, uid);
        if mine && live.metadata.deletion_timestamp.is_none() {
            delete_exactly(&api, &policy_name, live.uid()).await?;
        }
    }
    Ok(())
}
