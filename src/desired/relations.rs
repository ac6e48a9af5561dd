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
/// parent admins it provides), recursively. For a customer that is moving between groups
/// (its status still names the group it leaves), the members and peers of the group it
/// leaves count too: their connections to it must close.
pub fn dependents(
    changed: &Customer,
    customers: &[Arc<Customer>],
    default_group: &str,
    zone_open: impl Fn(&str) -> bool,
) -> Vec<String> {
    let name = changed.metadata.name.as_deref().unwrap_or_default();
    let mut groups = BTreeSet::from([group_name_or(changed, default_group)]);
    groups.extend(changed.status.as_ref().and_then(|s| s.group.clone()));
    // Groups whose zone is open are looked up once, not once per customer.
    let open_zones: BTreeSet<&str> = groups
        .iter()
        .map(String::as_str)
        .filter(|g| zone_open(g))
        .collect();
    let opens = |c: &Customer, peer: &str, in_group: &dyn Fn(&str) -> bool| {
        c.spec
            .network
            .iter()
            .flat_map(|n| n.allow_from.iter())
            .any(|a| {
                a.customer.as_deref() == Some(peer) || a.group.as_deref().is_some_and(in_group)
            })
    };
    let mut out = BTreeSet::new();
    for other in customers {
        let other_name = other.metadata.name.as_deref().unwrap_or_default();
        if other_name == name {
            continue;
        }
        let other_group = other.spec.group.as_deref().unwrap_or(default_group);
        if opens(other, name, &|g| groups.contains(g))
            || opens(changed, other_name, &|g| g == other_group)
            || open_zones.contains(other_group)
        {
            out.insert(other_name.to_string());
        }
    }
    let mut parents = vec![name.to_string()];
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
    out.remove(name);
    out.into_iter().collect()
}

/// The inner customers a customer being deleted deletes first and waits for: those
/// that name it as their parent, except itself and its own parents. In a cycle of
/// parents (refused, but it can be stored and then deleted) each member is both an
/// inner customer and a parent of the others; waiting for them would wait forever.
pub fn inner_customers(customer: &Customer, customers: &[Arc<Customer>]) -> Vec<Arc<Customer>> {
    let me = customer.name_any();
    let mut ancestors = BTreeSet::from([me.clone()]);
    let mut next = customer.spec.parent.clone();
    while let Some(parent) = next.filter(|p| ancestors.insert(p.clone())) {
        next = customers
            .iter()
            .find(|c| c.name_any() == parent)
            .and_then(|c| c.spec.parent.clone());
    }
    customers
        .iter()
        .filter(|c| c.spec.parent.as_deref() == Some(me.as_str()))
        .filter(|c| !ancestors.contains(&c.name_any()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleting_a_cycle_of_parents_waits_for_no_member_of_it() {
        let with_parent = |name: &str, parent: &str| {
            let mut c = customer(name, None);
            c.spec.parent = Some(parent.into());
            Arc::new(c)
        };
        let all = vec![
            with_parent("self", "self"),
            with_parent("chicken", "egg"),
            with_parent("egg", "chicken"),
            with_parent("chick", "chicken"),
            Arc::new(customer("top", None)),
            with_parent("middle", "top"),
            with_parent("bottom", "middle"),
        ];
        let names = |c: &str| -> Vec<String> {
            let me = all.iter().find(|x| x.name_any() == c).unwrap();
            inner_customers(me, &all)
                .iter()
                .map(|x| x.name_any())
                .collect()
        };
        assert!(names("self").is_empty());
        assert_eq!(names("chicken"), ["chick"]);
        assert!(names("egg").is_empty());
        assert_eq!(names("top"), ["middle"]);
        assert_eq!(names("middle"), ["bottom"]);
    }
    use crate::api::{AllowFrom, CustomerNetwork, CustomerSpec, CustomerStatus};

    fn customer(name: &str, group: Option<&str>) -> Customer {
        Customer::new(
            name,
            CustomerSpec {
                display_name: name.into(),
                contact_email: "ops@example.org".into(),
                group: group.map(str::to_string),
                ..Default::default()
            },
        )
    }

    fn allowing(mut c: Customer, peer: AllowFrom) -> Customer {
        c.spec.network = Some(CustomerNetwork {
            allow_from: vec![peer],
            ..Default::default()
        });
        c
    }

    fn from_customer(name: &str) -> AllowFrom {
        AllowFrom {
            customer: Some(name.into()),
            ..Default::default()
        }
    }

    fn from_group(name: &str) -> AllowFrom {
        AllowFrom {
            group: Some(name.into()),
            ..Default::default()
        }
    }

    fn of(changed: &Customer, all: Vec<Customer>, open: &[&str]) -> Vec<String> {
        let all: Vec<Arc<Customer>> = all.into_iter().map(Arc::new).collect();
        dependents(changed, &all, "all", |g| open.contains(&g))
    }

    #[test]
    fn both_sides_of_an_allow_from_depend_on_each_other() {
        let a = allowing(customer("a", None), from_customer("b"));
        let b = customer("b", None);
        let c = customer("c", None);
        let all = vec![a.clone(), b.clone(), c.clone()];
        assert_eq!(of(&a, all.clone(), &[]), vec!["b"]);
        assert_eq!(of(&b, all.clone(), &[]), vec!["a"]);
        assert!(of(&c, all, &[]).is_empty());
    }

    #[test]
    fn an_open_zone_ties_its_members_and_a_group_peer_its_members() {
        let a = customer("a", Some("zone"));
        let b = customer("b", Some("zone"));
        let c = allowing(customer("c", None), from_group("zone"));
        let d = customer("d", None);
        let all = vec![a.clone(), b.clone(), c.clone(), d.clone()];
        assert_eq!(of(&a, all.clone(), &["zone"]), vec!["b", "c"]);
        assert_eq!(of(&a, all.clone(), &[]), vec!["c"]);
        assert_eq!(of(&d, all, &["zone"]), Vec::<String>::new());
    }

    #[test]
    fn inner_customers_depend_on_every_ancestor() {
        let top = customer("top", None);
        let mut mid = customer("mid", None);
        mid.spec.parent = Some("top".into());
        let mut leaf = customer("leaf", None);
        leaf.spec.parent = Some("mid".into());
        let all = vec![top.clone(), mid.clone(), leaf.clone()];
        assert_eq!(of(&top, all.clone(), &[]), vec!["leaf", "mid"]);
        assert_eq!(of(&leaf, all, &[]), Vec::<String>::new());
    }

    #[test]
    fn a_customer_leaving_a_group_touches_the_group_it_leaves() {
        let mut mover = customer("mover", Some("new"));
        mover.status = Some(CustomerStatus {
            group: Some("old".into()),
            ..Default::default()
        });
        let stayer = customer("stayer", Some("old"));
        let watcher = allowing(customer("watcher", None), from_group("old"));
        let newcomer = customer("newcomer", Some("new"));
        let all = vec![mover.clone(), stayer, watcher, newcomer];
        assert_eq!(
            of(&mover, all, &["old", "new"]),
            vec!["newcomer", "stayer", "watcher"]
        );
    }
}
