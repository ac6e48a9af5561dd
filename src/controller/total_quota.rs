//! The whole-customer quota (`spec.quota.total`) against the apiserver: each namespace's
//! ResourceQuota read as it is stored now (its hard limits and its `status.used`), and
//! the shares [`crate::desired::shared_quota`] computes from them put into the quotas
//! the reconcile applies.

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ResourceQuota;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::{Api, ResourceExt};

use super::Context;
use super::error::{At, Result, Step, describe};
use crate::api::{Customer, LABEL_CUSTOMER, QuotaSpec, TotalQuotaStatus};
use crate::desired::ownership::is_owned_by;
use crate::desired::shared_quota::{self, Observed, format_nanos};
use crate::desired::validate::nanos;
use crate::desired::{Desired, QUOTA_NAME};

/// Quotas one reconcile reads at the same time.
const PARALLEL_READS: usize = 4;

/// The wanted objects with each namespace's share of the total in its quota, and the
/// total's limits and usage for the status; `None` when the customer has no total.
pub async fn share_out(
    ctx: &Context,
    customer: &Customer,
    uid: &str,
    quota: Option<&QuotaSpec>,
    wanted: &Desired,
) -> Result<Option<(Desired, TotalQuotaStatus)>> {
    let Some(quota) = quota.filter(|q| !q.total.is_empty()) else {
        return Ok(None);
    };
    let namespaces: Vec<String> = wanted
        .resource_quotas
        .iter()
        .filter_map(|q| q.namespace())
        .collect();
    let observed: BTreeMap<String, BTreeMap<String, Observed>> =
        futures::stream::iter(namespaces.iter().cloned())
            .map(|ns| async move {
                let live = read(ctx, &ns).await?;
                let mine = live.filter(|q| {
                    q.labels().get(LABEL_CUSTOMER) == customer.metadata.name.as_ref()
                        && is_owned_by(&q.metadata, uid)
                });
                Ok::<_, super::error::Error>((ns, mine.map(|q| observe(&q)).unwrap_or_default()))
            })
            .buffer_unordered(PARALLEL_READS)
            .try_collect()
            .await?;
    let names: Vec<&str> = namespaces.iter().map(String::as_str).collect();
    let mut hard = shared_quota::hard_limits(&quota.total, &quota.hard, &names, &observed);
    let mut shared = wanted.clone();
    for object in &mut shared.resource_quotas {
        let limits = hard.remove(&object.namespace().unwrap_or_default());
        if let (Some(spec), Some(limits)) = (object.spec.as_mut(), limits) {
            spec.hard = Some(limits);
        }
    }
    Ok(Some((shared, usage(&quota.total, &observed))))
}

/// A namespace's ResourceQuota as stored now (not the cache: the shares depend on the
/// latest hard limits and usage).
async fn read(ctx: &Context, namespace: &str) -> Result<Option<ResourceQuota>> {
    Api::<ResourceQuota>::namespaced(ctx.client.clone(), namespace)
        .get_opt(QUOTA_NAME)
        .await
        .at(
            Step::ReadQuota,
            describe("ResourceQuota", Some(namespace), QUOTA_NAME),
        )
}

/// The hard limit and usage of every resource a quota names, in nano-units.
fn observe(quota: &ResourceQuota) -> BTreeMap<String, Observed> {
    let value = |map: Option<&BTreeMap<String, Quantity>>, key: &str| {
        map.and_then(|m| m.get(key)).and_then(|q| nanos(&q.0))
    };
    let hard = quota.spec.as_ref().and_then(|s| s.hard.as_ref());
    let enforced = quota.status.as_ref().and_then(|s| s.hard.as_ref());
    let used = quota.status.as_ref().and_then(|s| s.used.as_ref());
    [hard, enforced, used]
        .into_iter()
        .flatten()
        .flat_map(|m| m.keys())
        .map(|key| {
            let seen = Observed {
                hard: value(hard, key),
                enforced: value(enforced, key),
                used: value(used, key),
            };
            (key.clone(), seen)
        })
        .collect()
}

/// The total's limits and what all namespaces use of each, summed.
fn usage(
    total: &BTreeMap<String, Quantity>,
    observed: &BTreeMap<String, BTreeMap<String, Observed>>,
) -> TotalQuotaStatus {
    let used = total
        .keys()
        .map(|resource| {
            let sum: i128 = observed
                .values()
                .filter_map(|o| o.get(resource)?.used)
                .sum();
            (resource.clone(), Quantity(format_nanos(sum)))
        })
        .collect();
    TotalQuotaStatus {
        hard: total.clone(),
        used,
    }
}
