//! The `NetworkIsolated` check of one Customer, from the caches: every NetworkPolicy in
//! its namespaces (the operator's own as just applied, and anyone else's) and the
//! ClusterNetworkPolicy tiers around them evaluated against the namespaces of every
//! other customer.

use std::collections::BTreeSet;

use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::ListParams;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use super::Context;
use super::caches::{FOREIGN, foreign_selector};
use super::compact::Compact;
use super::error::{At, Result, Step};
use super::related::opens_by_labels;
use crate::api::{ClusterNetworkPolicy, Customer, Isolation, LABEL_CUSTOMER};
use crate::desired::Built;
use crate::desired::network::POLICY_NAMES;
use crate::isolation::matrix::Tenancy;
use crate::isolation::{Declared, Labels, Network, analyse};

/// The openings into `customer`'s namespaces `usable` that no declaration covers, one
/// line each, sorted; none when its isolation is None (which declares everything).
/// `built` holds the policies the reconcile just applied (the cache may not have them
/// yet); the customer's own policies in the cache (label and ownership record `uid`)
/// are replaced by them, everyone else's are taken as they are.
pub async fn undeclared_inbound(
    ctx: &Context,
    customer: &Customer,
    built: &Built,
    usable: &BTreeSet<String>,
    uid: &str,
) -> Result<Vec<String>> {
    let settings = &ctx.options.settings;
    let wanted = &built.wanted;
    if built.resolved.effective.isolation == Isolation::None {
        return Ok(Vec::new());
    }
    // The operator's own policies admit exactly what the spec declares (the builder's
    // output is checked by the evaluator in tests/offline/isolation.rs), except an `allowFrom`
    // by namespace labels, which a customer namespace may match. Without such a rule
    // and without a policy someone else wrote in its namespaces, the customer is
    // isolated as declared, and the full analysis (a pass over every namespace and
    // policy) is skipped: at a thousand customers it would dominate every reconcile.
    let by_labels = opens_by_labels(customer);
    let caches = &ctx.caches;
    let foreign_here: Vec<&String> = usable
        .iter()
        .filter(|ns| caches.foreign_policies.contains(ns))
        .collect();
    let foreign_cluster_policies = foreign_cluster_policies(ctx);
    if !by_labels && foreign_here.is_empty() && foreign_cluster_policies.is_empty() {
        return Ok(Vec::new());
    }
    let me = customer.name_any();
    let namespaces = namespaces_in_view(ctx, &me, wanted, usable);
    let mut live = others_policies_in(ctx, &me, uid, usable)?;
    let foreign = ListParams::default().labels(&foreign_selector());
    for ns in foreign_here {
        let api: Api<NetworkPolicy> = Api::namespaced(ctx.client.clone(), ns);
        let listed = api.list(&foreign).await.at(Step::ListPolicies, ns)?;
        live.extend(listed.items);
    }
    let applied = wanted
        .network_policies
        .iter()
        .filter(|p| usable.contains(&p.namespace().unwrap_or_default()));
    // The tiers around the NetworkPolicies: this customer's ClusterNetworkPolicies as
    // just applied and everyone else's but the operator's (the other customers' decide
    // only their own side, which the receiving-side judgment does not rest on).
    let cluster_policies = wanted
        .cluster_network_policies
        .iter()
        .chain(foreign_cluster_policies.iter().map(|p| &**p));
    let network = Network::new(
        namespaces.iter().cloned(),
        live.iter().chain(applied),
        &ctx.pod_ranges,
    )
    .with_cluster_policies(cluster_policies);
    let tenancy = Tenancy::new(
        namespaces.iter().map(|(n, l)| (n.as_str(), l)),
        caches,
        settings,
    );
    let declared = Declared::into_customer(customer, &built.resolved.effective, caches, settings);
    Ok(analyse(&network, &tenancy, &declared, Some(&me))
        .findings
        .iter()
        .map(|f| format!("from customer {}: {}", f.from, f.summary()))
        .collect())
}

/// Every customer namespace with its labels: the other customers' from the cache, the
/// customer's own usable ones as the spec asks for them (a look-alike that carries its
/// label is not one of them), with their live labels where the cache has them.
fn namespaces_in_view(
    ctx: &Context,
    me: &str,
    wanted: &crate::desired::Desired,
    usable: &BTreeSet<String>,
) -> Vec<(String, Labels)> {
    let caches = &ctx.caches;
    let mut namespaces: Vec<(String, Labels)> = caches
        .namespaces
        .state()
        .iter()
        .filter_map(|ns| {
            let owner = ns.labels().get(LABEL_CUSTOMER)?;
            (owner != me).then(|| (ns.name_any(), ns.labels().clone()))
        })
        .collect();
    for ns in wanted
        .namespaces
        .iter()
        .filter(|n| usable.contains(&n.name_any()))
    {
        let live = caches.namespaces.get(&ObjectRef::new(&ns.name_any()));
        let labels = live
            .map(|l| l.labels().clone())
            .unwrap_or_else(|| ns.labels().clone());
        namespaces.push((ns.name_any(), labels));
    }
    namespaces
}

/// The ClusterNetworkPolicies the operator did not write (a platform team's own).
fn foreign_cluster_policies(ctx: &Context) -> Vec<std::sync::Arc<ClusterNetworkPolicy>> {
    let caches = &ctx.caches;
    caches
        .foreign_cluster_policies
        .names(FOREIGN)
        .iter()
        .filter_map(|name| caches.cluster_policies.get(&ObjectRef::new(name)))
        .collect()
}

/// The operator's policies in the customer's namespaces that are not this customer's
/// (left from an earlier holder).
fn others_policies_in(
    ctx: &Context,
    me: &str,
    uid: &str,
    usable: &BTreeSet<String>,
) -> Result<Vec<NetworkPolicy>> {
    let cache = &ctx.caches.children.network_policies;
    let own = |p: &Compact<NetworkPolicy>| {
        p.labels().get(LABEL_CUSTOMER).map(String::as_str) == Some(me)
            && crate::desired::ownership::is_owned_by(kube::Resource::meta(p), uid)
    };
    usable
        .iter()
        .flat_map(|ns| {
            POLICY_NAMES
                .iter()
                .filter_map(move |name| cache.get(&ObjectRef::new(name).within(ns)))
        })
        .filter(|p| !own(p))
        .map(|p| p.expand())
        .collect()
}
