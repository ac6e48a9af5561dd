//! The `Partner` kind: an integrator that manages customers for the platform team, and
//! the bounds within which its admins create them themselves.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Conditions, DNS_LABEL_PATTERN, Isolation, Subject};
use super::group::DeletionPolicy;

/// Longest allowed Partner name, so that its namespace `partner-<name>` fits in 63
/// characters.
pub const MAX_PARTNER_NAME: usize = 55;
/// Prefix of every partner's namespace. No Customer may be named `partner` or start with
/// `partner-`, so no customer namespace can take a partner's.
pub const PARTNER_NAMESPACE_PREFIX: &str = "partner-";

/// An integrator that manages customers: its people, and the bounds of the customers its
/// admins request themselves (CustomerClaims in the partner's namespace).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "customers.dev",
    version = "v1alpha1",
    kind = "Partner",
    plural = "partners",
    shortname = "ptr",
    category = "customers",
    status = "PartnerStatus",
    doc = "An integrator that manages customers, and the bounds of the customers it requests itself.",
    printcolumn = r#"{"name":"Display Name","type":"string","jsonPath":".spec.displayName"}"#,
    printcolumn = r#"{"name":"Namespace","type":"string","jsonPath":".status.namespace"}"#,
    printcolumn = r#"{"name":"Customers","type":"integer","jsonPath":".status.inUse.customers"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct PartnerSpec {
    /// The partner's name as people read it.
    #[schemars(length(min = 1, max = 100), extend("x-kubernetes-validations" = [
        {"rule": "!self.matches(r'^[\\s\\p{Z}]*$')", "message": "must not be only whitespace"},
        {"rule": "!self.matches(r'[\\x{202A}-\\x{202E}\\x{2066}-\\x{2069}]')", "message": "must not contain bidirectional override or isolate characters (U+202A..U+202E, U+2066..U+2069)"}
    ]))]
    pub display_name: String,
    /// The partner's primary contact address.
    #[schemars(
        email,
        length(min = 3, max = 254),
        regex(pattern = r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    )]
    pub contact_email: String,
    /// The partner's admins: they manage CustomerClaims in the partner's namespace
    /// (ClusterRole `customer-partner-admin` there) and read the namespaces of the
    /// partner's customers (ClusterRole `customer-security-consultant`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub admins: Vec<Subject>,
    /// The partner's security consultants: ClusterRole `customer-security-consultant` in
    /// every namespace of every customer of the partner.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub security_consultants: Vec<Subject>,
    /// What the partner's admins may ask for in their CustomerClaims.
    #[serde(default)]
    pub limits: PartnerLimits,
    /// What deleting the partner does to its customers: Block (default) keeps the partner
    /// until it has none, Orphan leaves them to the platform team, Cascade deletes them.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// The bounds of the customers a partner's admins request.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartnerLimits {
    /// How many customers the partner may have (Customers whose `spec.partner.name` is
    /// this partner); unset means no limit. A CustomerClaim beyond it waits with
    /// `LimitReached`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100000))]
    pub max_customers: Option<u32>,
    /// The CustomerGroups the partner's customers may join; empty means only the
    /// operator's default group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(min = 1, max = 63), regex(pattern = DNS_LABEL_PATTERN)))]
    pub allowed_groups: Vec<String>,
    /// The largest quota a claim may set, by resource. When set, a claim's quota may
    /// name only these resources, each at most this much.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxProperties" = 64))]
    pub max_quota: Option<BTreeMap<String, Quantity>>,
    /// The isolation levels a claim may ask for; empty means Strict and Standard.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 3))]
    pub allowed_isolation: Vec<Isolation>,
}

/// What the operator observed and did for a Partner.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartnerStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready (the namespace and its RoleBinding are in place), and DeletionBlocked while
    /// a deletion waits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Conditions,
    /// The partner's namespace, where its admins write CustomerClaims.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The partner's customers, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub customers: Vec<String>,
    /// How many of them are Ready.
    #[serde(default)]
    pub ready: u32,
    /// The limits in use.
    #[serde(default)]
    pub in_use: PartnerUsage,
}

/// The limits a partner uses.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartnerUsage {
    /// The partner's customers.
    pub customers: u32,
    /// `spec.limits.maxCustomers`, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_customers: Option<u32>,
}

/// The namespace of the partner of this name.
pub fn partner_namespace(partner: &str) -> String {
    format!("{PARTNER_NAMESPACE_PREFIX}{partner}")
}

/// Whether a Customer of this name could have a namespace that is a partner's.
pub fn is_reserved_customer_name(name: &str) -> bool {
    name == PARTNER_NAMESPACE_PREFIX.trim_end_matches('-')
        || name.starts_with(PARTNER_NAMESPACE_PREFIX)
}
