//! How customers relate to each other and to groups: members of a group, inner
//! customers of a parent.

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
    use crate::api::CustomerSpec;

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
}
