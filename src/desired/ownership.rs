//! Which Customer an object belongs to: the one decision behind every change and delete
//! the operator makes outside its own Customers.
//!
//! The operator records its ownership in the annotation [`ANNOTATION_OWNER_UID`] (the
//! Customer's uid), not in an ownerReference: the garbage collector follows
//! ownerReferences, and `kubectl delete --cascade=foreground` (or `orphan`) of a
//! protected Customer would then delete (or orphan) its namespaces and policies while
//! the operator's finalizer still holds the Customer. Objects written by earlier
//! versions carry an ownerReference instead; it counts as the same record until the
//! next apply replaces it with the annotation.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use std::sync::Arc;

use kube::ResourceExt;

use super::Existing;
use crate::api::{ANNOTATION_ADOPT, API_VERSION, Customer, LABEL_CUSTOMER};

/// Annotation holding the uid of the Customer that owns the object.
pub const ANNOTATION_OWNER_UID: &str = "customers.dev/owner-uid";

/// The uid of the Customer recorded as the object's owner: the annotation, else (an
/// object from an earlier version) an ownerReference to a Customer.
pub fn owner_uid(meta: &ObjectMeta) -> Option<&str> {
    if let Some(uid) = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_OWNER_UID))
    {
        return Some(uid.as_str());
    }
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.api_version == API_VERSION && o.kind == "Customer")
        .map(|o| o.uid.as_str())
}

/// Whether the object is recorded as owned by the Customer with this uid.
pub fn is_owned_by(meta: &ObjectMeta, uid: &str) -> bool {
    !uid.is_empty() && is_recorded_owner(meta, Some(uid))
}

/// The same rule where Customers may come from files (`verify -f`): a Customer without
/// a uid owns what records an empty one, as `render` writes for it; an object that
/// records no owner at all (a look-alike with copied labels) is nobody's.
pub fn is_recorded_owner(meta: &ObjectMeta, customer_uid: Option<&str>) -> bool {
    owner_uid(meta) == Some(customer_uid.unwrap_or(""))
}

/// What an existing namespace is to the customers: held by the Customer its ownership
/// record names (found by the namespace's label or, when the label was removed or
/// changed, by its name), or by the customer its label names that is gone (its namespace
/// still waits for deletion); else handed over by a cluster admin
/// (`customers.dev/adopt`), else foreign. A former incarnation's leftover (a uid no
/// current Customer has) is foreign. `customer` looks a Customer up by name. The one
/// rule for who owns a namespace.
pub fn holder(ns: &ObjectMeta, customer: impl Fn(&str) -> Option<Arc<Customer>>) -> Existing {
    let name = ns.name.as_deref().unwrap_or_default();
    if let Some(uid) = owner_uid(ns) {
        let label = ns.labels.as_ref().and_then(|l| l.get(LABEL_CUSTOMER));
        let recorded = label
            .map(String::as_str)
            .into_iter()
            .chain(name_prefixes(name))
            .find(|c| customer(c).is_some_and(|c| c.uid().as_deref() == Some(uid)));
        if let Some(holder) = recorded {
            return Existing::HeldBy(holder.to_string());
        }
        if let Some(label) = label.filter(|l| customer(l).is_none()) {
            return Existing::HeldBy(label.clone());
        }
    }
    match ns
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_ADOPT))
    {
        Some(to) => Existing::HandedTo(to.clone()),
        None => Existing::Foreign,
    }
}

/// The names that could be a customer asking for this namespace: every prefix of it
/// that ends before a `-` (`a` and `a-b` for `a-b-c`), and the whole name.
pub fn name_prefixes(namespace: &str) -> impl Iterator<Item = &str> {
    namespace
        .match_indices('-')
        .map(|(at, _)| &namespace[..at])
        .chain([namespace])
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn with_annotation(uid: &str) -> ObjectMeta {
        ObjectMeta {
            annotations: Some([(ANNOTATION_OWNER_UID.to_string(), uid.to_string())].into()),
            ..Default::default()
        }
    }

    fn with_reference(kind: &str, uid: &str) -> ObjectMeta {
        ObjectMeta {
            owner_references: Some(vec![OwnerReference {
                api_version: API_VERSION.into(),
                kind: kind.into(),
                name: "a".into(),
                uid: uid.into(),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn the_annotation_or_an_earlier_versions_owner_reference_records_the_owner() {
        assert!(is_owned_by(&with_annotation("u1"), "u1"));
        assert!(!is_owned_by(&with_annotation("u1"), "u2"));
        assert!(is_owned_by(&with_reference("Customer", "u1"), "u1"));
        assert!(!is_owned_by(&with_reference("Deployment", "u1"), "u1"));
        assert!(!is_owned_by(&ObjectMeta::default(), "u1"));
        assert!(!is_owned_by(&with_annotation(""), ""));
        // Both present (an upgrade half done): the annotation decides.
        let mut both = with_reference("Customer", "old");
        both.annotations = with_annotation("new").annotations;
        assert_eq!(owner_uid(&both), Some("new"));
    }
}
