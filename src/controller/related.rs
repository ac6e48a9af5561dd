//! The Customers by what their specs name (a peer, a group, a parent, a partner), kept
//! from the Customer watch in an [`Index`], so that finding the customers a change
//! concerns is a few lookups, not a pass over every cached Customer: at ten thousand
//! customers such a pass for each of their events would cost more than the reconciles.

use std::collections::BTreeSet;
use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use super::index::Index;
use crate::api::Customer;
use crate::desired::resolve::group_name_or;

/// The key of the customers that open their ingress to a namespace selected by labels.
const BY_LABELS: &str = "by-labels";

/// An empty index of Customers by what they name; [`keys`] files them.
pub fn index() -> Index {
    Index::new(|_| None)
}

/// The keys a Customer is filed under: each customer and group its `allowFrom` names,
/// the group it names (`member:` alone when it names none: the default group's, whose
/// name is a setting), its parent, its partner, and [`BY_LABELS`].
pub fn keys(customer: &Customer) -> Vec<String> {
    let spec = &customer.spec;
    let mut keys: BTreeSet<String> = BTreeSet::new();
    for allow in spec.network.iter().flat_map(|n| &n.allow_from) {
        keys.extend(allow.customer.as_ref().map(|c| format!("peer:{c}")));
        keys.extend(allow.group.as_ref().map(|g| format!("peer-group:{g}")));
    }
    keys.insert(format!(
        "member:{}",
        spec.group.as_deref().unwrap_or_default()
    ));
    keys.extend(spec.parent.as_ref().map(|p| format!("parent:{p}")));
    keys.extend(spec.partner.as_ref().map(|p| format!("partner:{}", p.name)));
    if opens_by_labels(customer) {
        keys.insert(BY_LABELS.into());
    }
    keys.into_iter().collect()
}

/// Lookups in the index of Customers by what they name.
#[derive(Clone, Copy)]
pub struct Related<'a> {
    /// The index ([`index`], filed by [`keys`]).
    pub index: &'a Index,
    /// The Customers themselves.
    pub customers: &'a Store<Customer>,
    /// The group of customers that name none.
    pub default_group: &'a str,
}

impl Related<'_> {
    /// The names of the members of `group`: the customers that name it, and for the
    /// default group those that name none.
    pub fn members(&self, group: &str) -> BTreeSet<String> {
        let mut members: BTreeSet<String> = self
            .index
            .names(&format!("member:{group}"))
            .into_iter()
            .collect();
        if group == self.default_group {
            members.extend(self.index.names("member:"));
        }
        members
    }

    /// The customers whose objects name `changed` or its namespaces: peers on either
    /// side of an `allowFrom` (by name or by group), the other members of an open group
    /// zone, and inner customers (whose parent admins it provides), recursively. For a
    /// customer that is moving between groups (its status still names the group it
    /// leaves), the members and peers of the group it leaves count too: their
    /// connections to it must close.
    pub fn dependents(&self, changed: &Customer, zone_open: impl Fn(&str) -> bool) -> Vec<String> {
        let name = changed.name_any();
        let mut groups = BTreeSet::from([group_name_or(changed, self.default_group)]);
        groups.extend(changed.status.as_ref().and_then(|s| s.group.clone()));
        let mut out: BTreeSet<String> = self
            .index
            .names(&format!("peer:{name}"))
            .into_iter()
            .collect();
        for group in &groups {
            out.extend(self.index.names(&format!("peer-group:{group}")));
            if zone_open(group) {
                out.extend(self.members(group));
            }
        }
        for allow in changed.spec.network.iter().flat_map(|n| &n.allow_from) {
            if let Some(peer) = &allow.customer
                && self.customers.get(&ObjectRef::new(peer)).is_some()
            {
                out.insert(peer.clone());
            }
            if let Some(group) = &allow.group {
                out.extend(self.members(group));
            }
        }
        let mut parents = vec![name.clone()];
        while let Some(parent) = parents.pop() {
            for inner in self.index.names(&format!("parent:{parent}")) {
                if out.insert(inner.clone()) && inner != name {
                    parents.push(inner);
                }
            }
        }
        out.remove(&name);
        out.into_iter().collect()
    }
}

/// Whether the customer opens its ingress to namespaces chosen by labels, which a
/// customer namespace may match.
pub fn opens_by_labels(customer: &Customer) -> bool {
    customer
        .spec
        .network
        .iter()
        .flat_map(|n| &n.allow_from)
        .any(|a| a.namespace_selector.is_some())
}

/// The names of the customers whose `allowFrom` names the customer `customer` or the
/// group `group`, sorted.
pub fn opening_to(index: &Index, customer: &str, group: &str) -> BTreeSet<String> {
    index
        .names(&format!("peer:{customer}"))
        .into_iter()
        .chain(index.names(&format!("peer-group:{group}")))
        .collect()
}

/// The cached Customers whose `spec.partner.name` is `partner`.
pub fn of_partner(index: &Index, customers: &Store<Customer>, partner: &str) -> Vec<Arc<Customer>> {
    index
        .names(&format!("partner:{partner}"))
        .iter()
        .filter_map(|n| customers.get(&ObjectRef::new(n)))
        .collect()
}

/// The names of the customers whose `allowFrom` selects namespaces by labels.
pub fn opening_by_labels(index: &Index) -> Vec<String> {
    index.names(BY_LABELS)
}
