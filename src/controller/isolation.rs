//! The `NetworkIsolated` check of one Customer, from the caches: every NetworkPolicy in
//! its namespaces (the operator's own as just applied, and anyone else's) evaluated
//! against the namespaces of every other customer.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::ListParams;
use kube::core::{ObjectMeta, PartialObjectMeta};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};

use super::Context;
use super::compact::Compact;
use super::index::Index;
use crate::api::{Customer, Isolation, LABEL_CUSTOMER};
use crate::desired::network::POLICY_NAMES;
use crate::desired::{Desired, resolve};
use crate::error::Result;
use crate::isolation::matrix::Tenancy;
use crate::isolation::{Declared, Labels, Network, analyse};

/// The openings into `customer`'s namespaces `usable` that no declaration covers, one
/// line each, sorted; none when its isolation is None (which declares everything). `wanted` holds the policies the reconcile just applied (the cache
/// may not have them yet); the customer's own policies in the cache (label and
/// ownerReference `uid`) are replaced by them, everyone else's are taken as they are.
pub async fn undeclared_inbound(
    ctx: &Context,
    customer: &Customer,
    wanted: &Desired,
    usable: &BTreeSet<String>,
    uid: &str,
) -> Result<Vec<String>> {
    let settings = &ctx.options.settings;
    if resolve::effective(customer, ctx, settings).isolation == Isolation::None {
        return Ok(Vec::new());
    }
    // The operator's own policies admit exactly what the spec declares (the builder's
    // output is checked by the evaluator in tests/isolation.rs), except an `allowFrom`
    // by namespace labels, which a customer namespace may match. Without such a rule
    // and without a policy someone else wrote in its namespaces, the customer is
    // isolated as declared, and the full analysis (a pass over every namespace and
    // policy) is skipped: at a thousand customers it would dominate every reconcile.
    let by_labels = opens_by_labels(customer);
    let foreign_here: Vec<&String> = usable
        .iter()
        .filter(|ns| ctx.foreign_policies.contains(ns))
        .collect();
    if !by_labels && foreign_here.is_empty() {
        return Ok(Vec::new());
    }
    let me = customer.name_any();
    let mut namespaces: Vec<(String, Labels)> = ctx
        .namespaces
        .state()
        .iter()
        .filter_map(|ns| {
            let owner = ns.labels().get(LABEL_CUSTOMER)?;
            // The customer's own namespaces come from the spec below; a look-alike that
            // carries its label is not one of them.
            (*owner != me).then(|| (ns.name_any(), ns.labels().clone()))
        })
        .collect();
    for ns in wanted
        .namespaces
        .iter()
        .filter(|n| usable.contains(&n.name_any()))
    {
        let live = ctx.namespaces.get(&ObjectRef::new(&ns.name_any()));
        let labels = live
            .map(|l| l.labels().clone())
            .unwrap_or_else(|| ns.labels().clone());
        namespaces.push((ns.name_any(), labels));
    }
    let own = |p: &Compact<NetworkPolicy>| {
        p.labels().get(LABEL_CUSTOMER) == Some(&me)
            && crate::desired::ownership::is_owned_by(kube::Resource::meta(p), uid)
    };
    // In the customer's namespaces: the operator's policies that are not this
    // customer's (left from an earlier holder), and everyone else's, read fresh.
    let mut live: Vec<NetworkPolicy> = usable
        .iter()
        .flat_map(|ns| {
            POLICY_NAMES
                .iter()
                .filter_map(move |name| ctx.policies.get(&ObjectRef::new(name).within(ns)))
        })
        .filter(|p| !own(p))
        .map(|p| p.expand())
        .collect::<Result<_>>()?;
    let foreign = ListParams::default().labels(&super::foreign_selector());
    for ns in foreign_here {
        let api: Api<NetworkPolicy> = Api::namespaced(ctx.client.clone(), ns);
        live.extend(api.list(&foreign).await?.items);
    }
    let applied = wanted
        .network_policies
        .iter()
        .filter(|p| usable.contains(&p.namespace().unwrap_or_default()));
    let network = Network::new(
        namespaces.iter().cloned(),
        live.iter().chain(applied),
        &ctx.pod_ranges,
    );
    let tenancy = Tenancy::new(
        namespaces.iter().map(|(n, l)| (n.as_str(), l)),
        ctx,
        settings,
    );
    let declared = Declared::into_customer(customer, ctx, settings);
    Ok(analyse(&network, &tenancy, &declared, Some(&me))
        .findings
        .iter()
        .map(|f| format!("from customer {}: {}", f.from, f.summary()))
        .collect())
}

/// The customers whose isolation a change of this NetworkPolicy may change: the one its
/// label names and the one whose namespace holds it.
pub fn customers_of_policy(
    policy: &ObjectMeta,
    namespaces: &Store<PartialObjectMeta<Namespace>>,
) -> Vec<ObjectRef<Customer>> {
    let by_label = policy
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_CUSTOMER))
        .cloned();
    let by_namespace = namespaces
        .get(&ObjectRef::new(
            policy.namespace.as_deref().unwrap_or_default(),
        ))
        .and_then(|ns| ns.labels().get(LABEL_CUSTOMER).cloned());
    let names: BTreeSet<String> = by_label.into_iter().chain(by_namespace).collect();
    names.iter().map(|n| ObjectRef::new(n)).collect()
}

/// The customers a new or relabelled namespace of another customer may open a path
/// into: those whose namespaces hold one of the `foreign` (not the operator's)
/// NetworkPolicies, and those with an `allowFrom.namespaceSelector` (both may select
/// namespaces by labels).
pub fn customers_exposed_to_new_namespaces(
    foreign: &Index,
    namespaces_by_customer: &Index,
    customers: &Store<Customer>,
) -> Vec<ObjectRef<Customer>> {
    let mut names: BTreeSet<String> = namespaces_by_customer
        .keys_with_names_in(foreign)
        .into_iter()
        .collect();
    for customer in customers.state() {
        if opens_by_labels(&customer) {
            names.insert(customer.name_any());
        }
    }
    names.iter().map(|n| ObjectRef::new(n)).collect()
}

/// Whether the customer opens its ingress to namespaces chosen by labels, which a
/// customer namespace may match.
fn opens_by_labels(customer: &Customer) -> bool {
    customer
        .spec
        .network
        .iter()
        .flat_map(|n| &n.allow_from)
        .any(|a| a.namespace_selector.is_some())
}
