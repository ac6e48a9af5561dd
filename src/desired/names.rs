//! The names of a customer's namespaces: what a spec asks for, and whether a namespace
//! name is one of them. Used by the resolver and by the directories alike.

use kube::ResourceExt;

use crate::api::Customer;

/// The full names of a customer's namespaces, in spec order: `<customer>-<suffix>`, or
/// `<customer>` for an empty suffix or an empty list.
pub fn namespace_names(customer: &Customer) -> Vec<String> {
    let name = customer.name_any();
    if customer.spec.namespaces.is_empty() {
        return vec![name];
    }
    customer
        .spec
        .namespaces
        .iter()
        .map(|ns| full_namespace_name(&name, ns.suffix()))
        .collect()
}

/// Whether `namespace` is one of the customer's namespaces ([`namespace_names`]),
/// without building their names.
pub fn claims(customer: &Customer, namespace: &str) -> bool {
    let name = customer.metadata.name.as_deref().unwrap_or_default();
    let Some(rest) = namespace.strip_prefix(name) else {
        return false;
    };
    if customer.spec.namespaces.is_empty() {
        return rest.is_empty();
    }
    customer.spec.namespaces.iter().any(|ns| match ns.suffix() {
        "" => rest.is_empty(),
        suffix => rest.strip_prefix('-') == Some(suffix),
    })
}

/// `<customer>-<suffix>`, or `<customer>` when the suffix is empty.
pub fn full_namespace_name(customer: &str, suffix: &str) -> String {
    if suffix.is_empty() {
        customer.to_string()
    } else {
        format!("{customer}-{suffix}")
    }
}
