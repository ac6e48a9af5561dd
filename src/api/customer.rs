//! The `Customer` kind: one customer of the cluster and everything it is given.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    Access, AllowFrom, ArgoCd, Conditions, DNS_LABEL_PATTERN, Isolation, LimitItem,
    NamespaceStatus, QuotaSpec, Subject,
};

/// Longest allowed Customer name, so that `<customer>-<namespace>` fits in 63 characters.
pub const MAX_CUSTOMER_NAME: usize = 40;
/// Longest allowed namespace suffix: 63 - 40 - 1 for the dash.
pub const MAX_NAMESPACE_SUFFIX: usize = 22;

/// A customer of the cluster: its namespaces, network isolation, access and quotas.
/// The operator creates and keeps all of it, and removes it when the Customer is deleted.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "customers.dev",
    version = "v1alpha1",
    kind = "Customer",
    plural = "customers",
    shortname = "cust",
    category = "customers",
    status = "CustomerStatus",
    doc = "A customer of the cluster: its namespaces, network isolation, access and quotas.",
    printcolumn = r#"{"name":"Display Name","type":"string","jsonPath":".spec.displayName"}"#,
    printcolumn = r#"{"name":"Group","type":"string","jsonPath":".status.group"}"#,
    printcolumn = r#"{"name":"Partner","type":"string","jsonPath":".spec.partner.name"}"#,
    printcolumn = r#"{"name":"Namespaces","type":"integer","jsonPath":".status.summary.namespaces"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(oldSelf.partner) || !has(self.partner) || self.partner.name == oldSelf.partner.name || !has(self.partner.securityConsultants) || !has(oldSelf.partner.securityConsultants) || !self.partner.securityConsultants.exists(c, oldSelf.partner.securityConsultants.exists(o, o.kind == c.kind && o.name == c.name))",
    "message": "spec.partner.name changed: the previous partner's securityConsultants lose their roles and may not be carried over; remove them from securityConsultants and list the new partner's own consultants"
}]))]
pub struct CustomerSpec {
    /// The customer's name as people read it. Not only whitespace, and without bidirectional override
    /// or isolate characters (U+202A..U+202E, U+2066..U+2069).
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
    /// The CustomerGroup this customer belongs to; unset means the operator's default group
    /// (`all` unless the operator is told otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS_LABEL_PATTERN))]
    pub group: Option<String>,
    /// Another Customer this one is an inner customer of. The parent's admins become admins
    /// here too, and deleting the parent deletes this customer first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 40), regex(pattern = DNS_LABEL_PATTERN))]
    pub parent: Option<String>,
    /// The integrator that manages this customer, and its security consultants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner: Option<PartnerRef>,
    /// The customer's namespaces. Unset or empty means one namespace named after the customer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20), extend("x-kubernetes-validations" = [{
        "rule": "self.all(x, self.exists_one(y, (has(y.name) ? y.name : '') == (has(x.name) ? x.name : '')))",
        "message": "each namespace name may appear only once"
    }]))]
    pub namespaces: Vec<CustomerNamespace>,
    /// People of the customer and their roles in every namespace of the customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<Access>,
    /// Network isolation of the customer's namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<CustomerNetwork>,
    /// The quota of each namespace (`hard`) and of all of them together (`total`); unset
    /// takes the group's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaSpec>,
    /// LimitRange items written into each namespace; unset takes the group's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 10))]
    pub limits: Option<Vec<LimitItem>>,
    /// When true, deleting the Customer deletes nothing and is held until this is set to
    /// false again.
    #[serde(default)]
    pub deletion_protection: bool,
    /// When true, the customer's people keep read access and lose every write: their
    /// RoleBindings grant `customer-view` instead of `customer-admin` or `customer-edit`
    /// until this is false again. The operator still repairs drift, and deleting the
    /// Customer is held while it is frozen.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub frozen: bool,
    /// The customer's Argo CD project (written when the operator runs with
    /// `--argocd-projects` and Argo CD is installed): the repositories it may deploy from.
    #[serde(default, rename = "argoCD", skip_serializing_if = "Option::is_none")]
    pub argo_cd: Option<ArgoCd>,
}

/// The integrator that manages a customer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartnerRef {
    /// The partner's name. Changing it removes every role of the previous partner's
    /// consultants; the new partner's consultants must be named again.
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS_LABEL_PATTERN))]
    pub name: String,
    /// The partner's people who may read the customer's namespaces, NetworkPolicies and
    /// events (ClusterRole `customer-security-consultant`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub security_consultants: Vec<Subject>,
}

/// One namespace of a customer.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct CustomerNamespace {
    /// Suffix of the namespace: `prod` gives `<customer>-prod`; `""` or unset gives
    /// `<customer>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 22),
        regex(pattern = "^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$")
    )]
    pub name: Option<String>,
    /// Extra labels on the namespace. Keys under `customers.dev/`,
    /// `app.kubernetes.io/managed-by` and `kubernetes.io/metadata.name` are reserved.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32))]
    pub labels: BTreeMap<String, String>,
    /// Extra annotations on the namespace, with the same reserved keys as labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32))]
    pub annotations: BTreeMap<String, String>,
}

/// Network isolation of a customer.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomerNetwork {
    /// Strict, Standard or None (no NetworkPolicy); unset takes the group's default, else Standard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<Isolation>,
    /// Extra ingress this customer opens, to another customer, a group's members, or
    /// non-customer namespaces chosen by label.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub allow_from: Vec<AllowFrom>,
    /// Egress to the internet (every address but private, link-local and cluster
    /// ranges). Unset takes the group's default, else true for Standard and false for Strict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internet_egress: Option<bool>,
}

/// What the operator observed and did for a Customer.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomerStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, NamespacesReady, NetworkIsolated, AccessGranted, and Conflict,
    /// DeletionBlocked or Terminating while they apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Conditions,
    /// The group the customer is a member of (the default group when `spec.group` is unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The customer's namespaces and their phase.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<NamespaceStatus>,
    /// Counts of the objects the operator keeps for this customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
    /// The partner whose security consultants currently hold roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner: Option<String>,
    /// The whole-customer quota (`spec.quota.total`): its limits and what all the
    /// customer's namespaces use together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<TotalQuotaStatus>,
    /// The previous partner and the consultants that held roles for it. While
    /// `spec.partner.name` names another partner, these consultants get no role, even
    /// when the new partner lists them (the operator's own check of the partner-change
    /// rule, for apiservers that do not run the CRD's validation rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub former_partner: Option<FormerPartner>,
}

/// Limits and usage of the whole-customer quota, summed over the customer's namespaces.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct TotalQuotaStatus {
    /// The limits for all namespaces together (`spec.quota.total`).
    #[serde(default)]
    pub hard: BTreeMap<String, Quantity>,
    /// What the namespaces use together, from their ResourceQuotas' `status.used`.
    #[serde(default)]
    pub used: BTreeMap<String, Quantity>,
}

/// A partner the customer had before, and whose consultants held roles then.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FormerPartner {
    /// The previous partner's name.
    pub name: String,
    /// The consultants that held roles for the previous partner.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_consultants: Vec<Subject>,
}

/// Overview of the objects created for a customer.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Namespaces.
    pub namespaces: u32,
    /// NetworkPolicies across all namespaces.
    pub network_policies: u32,
    /// RoleBindings across all namespaces.
    pub role_bindings: u32,
    /// ResourceQuotas and LimitRanges across all namespaces.
    pub quotas: u32,
    /// ClusterNetworkPolicies (the ClusterNetworkPolicy isolation backend).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cluster_network_policies: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl CustomerNamespace {
    /// The suffix, `""` when unset.
    pub fn suffix(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }
}
