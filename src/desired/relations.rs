//! Which customers' objects depend on another customer or a group, so that a change
//! re-reconciles exactly those (from the caches, without a list call).

use std::collections::BTreeSet;
use std::sync::Arc;

use kube::ResourceExt;

use super::resolve::group_name_or;
use crate::api::Customer;

/// The customers that are members of `group`.
pub fn members(group: &str, customers: &[Arc<Customer>], default_group: &str) -> Vec<String> {
    customers
        .iter()
        .filter(|c| group_name_or(c, default_group) == group)
        .map(|c| c.name_any())
        .collect()
}

/// The customers whose objects name `changed` or its namespaces: peers on either side of
/// an `allowFrom`, the other members of an open group zone, and inner customers (whose
/// parent admins it provides), recursively.
pub fn dependents(
    changed: &Customer,
    customers: &[Arc<Customer>],
    default_group: &str,
    zone_open: impl Fn(&str) -> bool,
) -> Vec<String> {
    let name = changed.name_any();
    let group = group_name_or(changed, default_group);
    let opens = |c: &Customer, peer: &str, peer_group: &str| {
        c.spec
            .network
            .iter()
            .flat_map(|n| n.allow_from.iter())
            .any(|a| a.customer.as_deref() == Some(peer) || a.group.as_deref() == Some(peer_group))
    };
    let mut out = BTreeSet::new();
    for other in customers {
        let other_name = other.name_any();
        if other_name == name {
            continue;
        }
        let other_group = group_name_or(other, default_group);
        if opens(other, &name, &group)
            || opens(changed, &other_name, &other_group)
            || (other_group == group && zone_open(&group))
        {
            out.insert(other_name);
        }
    }
    let mut parents = vec![name.clone()];
    while let Some(parent) = parents.pop() {
        for inner in customers
            .iter()
            .filter(|c| c.spec.parent.as_deref() == Some(&parent))
        {
            if out.insert(inner.name_any()) && inner.name_any() != name {
                parents.push(inner.name_any());
            }
        }
    }
    out.remove(&name);
    out.into_iter().collect()
}
