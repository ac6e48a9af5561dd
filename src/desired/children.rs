//! The kinds of object the operator writes into each customer namespace, listed once.
//!
//! [`Children`] holds one value per kind. Code that handles every kind destructures it
//! without `..`, so a kind added here fails to compile until every place that writes,
//! watches, caches, prunes or counts children handles it.

use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;

use super::access::BINDING_NAMES;
use super::network::POLICY_NAMES;
use super::{LIMITS_NAME, QUOTA_NAME};

/// A kind of namespaced object the operator writes for customers.
pub trait Kind:
    kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + std::fmt::Debug
    + serde::Serialize
    + serde::de::DeserializeOwned
    + Send
    + Sync
    + 'static
{
}

impl Kind for NetworkPolicy {}
impl Kind for RoleBinding {}
impl Kind for ResourceQuota {}
impl Kind for LimitRange {}

/// What [`Children`] holds for each kind: `Of<K>` for the kind `K`.
pub trait Family {
    /// The value kept for objects of kind `K`.
    type Of<K: Kind>;
}

/// One value per kind of child object.
pub struct Children<F: Family> {
    /// NetworkPolicies.
    pub network_policies: F::Of<NetworkPolicy>,
    /// RoleBindings.
    pub role_bindings: F::Of<RoleBinding>,
    /// ResourceQuotas.
    pub resource_quotas: F::Of<ResourceQuota>,
    /// LimitRanges.
    pub limit_ranges: F::Of<LimitRange>,
}

/// The objects of each kind, borrowed (from [`super::Desired`]).
pub struct Objects<'a>(std::marker::PhantomData<&'a ()>);

impl<'a> Family for Objects<'a> {
    type Of<K: Kind> = &'a [K];
}

/// The object names the builder can give each kind (a namespace holds at most one
/// object of each of these names).
pub struct Names;

impl Family for Names {
    type Of<K: Kind> = &'static [&'static str];
}

/// A count per kind.
pub struct Counts;

impl Family for Counts {
    type Of<K: Kind> = u32;
}

/// Every name the builder gives objects of each kind.
pub const NAMES: Children<Names> = Children {
    network_policies: &POLICY_NAMES,
    role_bindings: &BINDING_NAMES,
    resource_quotas: &[QUOTA_NAME],
    limit_ranges: &[LIMITS_NAME],
};
