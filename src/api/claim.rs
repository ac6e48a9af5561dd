//! The self-service kinds, both namespaced so that RBAC by namespace decides who may
//! write them: `CustomerClaim` (a request for a Customer) and `CustomerUsers` (a
//! customer's own people).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    Access, Conditions, DNS_LABEL_PATTERN, LimitItem, NamespaceStatus, QuotaSpec, Subject,
};
use super::customer::{CustomerNamespace, CustomerNetwork, Summary};

/// A request for a Customer. In a partner's namespace it asks for a Customer of that
/// partner; in a namespace of customer C, for an inner customer of C. The Customer takes
/// the claim's name; the operator creates and updates it from the claim, mirrors its
/// state here, and deletes it when the claim is deleted.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "customers.dev",
    version = "v1alpha1",
    kind = "CustomerClaim",
    plural = "customerclaims",
    shortname = "claim",
    category = "customers",
    namespaced,
    status = "CustomerClaimStatus",
    doc = "A request for a Customer, written by a partner's admins or a customer's admins.",
    printcolumn = r#"{"name":"Display Name","type":"string","jsonPath":".spec.displayName"}"#,
    printcolumn = r#"{"name":"Namespaces","type":"integer","jsonPath":".status.summary.namespaces"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct CustomerClaimSpec {
    /// The customer's name as people read it.
    #[schemars(length(min = 1, max = 100), extend("x-kubernetes-validations" = [
        {"rule": "!self.matches(r'^[\\s\\p{Z}]*$')", "message": "must not be only whitespace"},
        {"rule": "!self.matches(r'[\\x{202A}-\\x{202E}\\x{2066}-\\x{2069}]')", "message": "must not contain bidirectional override or isolate characters (U+202A..U+202E, U+2066..U+2069)"}
    ]))]
    pub display_name: String,
    /// The customer's primary contact address.
    #[schemars(
        email,
        length(min = 3, max = 254),
        regex(pattern = r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    )]
    pub contact_email: String,
    /// Free text about the customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1000))]
    pub description: Option<String>,
    /// The CustomerGroup to join: one the partner allows (`spec.limits.allowedGroups`),
    /// or for an inner customer the parent's group. Unset leaves the group to the platform
    /// team (the default group unless it sets one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS_LABEL_PATTERN))]
    pub group: Option<String>,
    /// The customer's namespaces, as in a Customer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20), extend("x-kubernetes-validations" = [{
        "rule": "self.all(x, self.exists_one(y, (has(y.name) ? y.name : '') == (has(x.name) ? x.name : '')))",
        "message": "each namespace name may appear only once"
    }]))]
    pub namespaces: Vec<CustomerNamespace>,
    /// The customer's people, as in a Customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<Access>,
    /// Isolation, connections and internet egress, as in a Customer; the isolation level
    /// must be one the partner allows (an inner customer's may not be weaker than its
    /// parent's), and a connection to another partner's customer opens only when that
    /// customer declares it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<CustomerNetwork>,
    /// ResourceQuota per namespace, within the partner's `maxQuota` (or the parent's
    /// quota for an inner customer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaSpec>,
    /// LimitRange items per namespace, as in a Customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 10))]
    pub limits: Option<Vec<LimitItem>>,
}

/// What the operator did for a CustomerClaim, and the state of its Customer.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomerClaimStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready: the Customer's own Ready condition once it exists; before that, or when
    /// the claim is refused, why not (Refused, Conflict, LimitReached, FieldConflict,
    /// DeletionBlocked, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Conditions,
    /// The Customer this claim made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    /// The partner of that Customer (claims in a partner's namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner: Option<String>,
    /// The parent of that Customer (claims in a customer's namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// The Customer's group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The Customer's namespaces and their phase.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<NamespaceStatus>,
    /// Counts of the objects the operator keeps for the Customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
    /// The Customer's conditions other than Ready (NetworkIsolated, AccessGranted,
    /// ConnectionsPending, ...), as the Customer shows them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub customer_conditions: Vec<Condition>,
}

/// A customer's own people, written by the customer's admins in any namespace of the
/// customer. They get the customer roles in every namespace of the customer (admins also
/// in its inner customers'), in addition to whatever the Customer, its group and its
/// partner grant; nothing here can take those away.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "customers.dev",
    version = "v1alpha1",
    kind = "CustomerUsers",
    plural = "customerusers",
    shortname = "cusers",
    category = "customers",
    namespaced,
    doc = "A customer's own admins, editors and viewers, managed by the customer's admins.",
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct CustomerUsersSpec {
    /// Receive ClusterRole `customer-admin` in every namespace of the customer and of its
    /// inner customers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub admins: Vec<Subject>,
    /// Receive ClusterRole `customer-edit` in every namespace of the customer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub editors: Vec<Subject>,
    /// Receive ClusterRole `customer-view` in every namespace of the customer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub viewers: Vec<Subject>,
}

impl CustomerUsersSpec {
    /// The same people as an [`Access`].
    pub fn access(&self) -> Access {
        Access {
            admins: self.admins.clone(),
            editors: self.editors.clone(),
            viewers: self.viewers.clone(),
        }
    }
}
