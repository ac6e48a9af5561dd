//! The `CustomerGroup` kind: shared defaults, managers and a network zone for customers.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Access, ArgoCd, Conditions, Isolation, LimitItem, QuotaSpec};

/// A group of customers: defaults for its members, managers who get roles in every
/// member's namespaces, and an optional network zone among the members.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "customers.dev",
    version = "v1alpha1",
    kind = "CustomerGroup",
    plural = "customergroups",
    shortname = "cg",
    category = "customers",
    status = "CustomerGroupStatus",
    doc = "A group of customers: shared defaults, managers and a network zone.",
    printcolumn = r#"{"name":"Display Name","type":"string","jsonPath":".spec.displayName"}"#,
    printcolumn = r#"{"name":"Members","type":"integer","jsonPath":".status.members"}"#,
    printcolumn = r#"{"name":"Deletion Policy","type":"string","jsonPath":".spec.deletionPolicy"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct CustomerGroupSpec {
    /// The group's name as people read it. Not only whitespace, and without bidirectional override
    /// or isolate characters (U+202A..U+202E, U+2066..U+2069).
    #[schemars(length(min = 1, max = 100), extend("x-kubernetes-validations" = [
        {"rule": "!self.matches(r'^[\\s\\p{Z}]*$')", "message": "must not be only whitespace"},
        {"rule": "!self.matches(r'[\\x{202A}-\\x{202E}\\x{2066}-\\x{2069}]')", "message": "must not contain bidirectional override or isolate characters (U+202A..U+202E, U+2066..U+2069)"}
    ]))]
    pub display_name: String,
    /// Free text about the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1000))]
    pub description: Option<String>,
    /// Managers of every member customer: admins get `customer-admin`, editors
    /// `customer-edit` and viewers `customer-view` in every member's namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<Access>,
    /// The group's network zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<GroupNetwork>,
    /// Defaults for members that do not set the field themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<GroupDefaults>,
    /// What deleting the group does to its members: Block (default) keeps the group until
    /// it has no members, Orphan moves them to the default group, Cascade deletes them.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// When true, every member is frozen as if it set `spec.frozen` itself: its people
    /// keep read access and lose every write, and deleting it is held. Inner customers of
    /// a member are members of their own group and are not frozen by this.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub frozen: bool,
    /// Argo CD for every member (with `--argocd-projects`): its `sourceRepos` are added to
    /// each member's own.
    #[serde(default, rename = "argoCD", skip_serializing_if = "Option::is_none")]
    pub argo_cd: Option<ArgoCd>,
}

/// The network zone of a group.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupNetwork {
    /// When true, members may reach each other's namespaces (ingress and egress are both
    /// opened). Nobody outside the group gains anything.
    #[serde(default)]
    pub allow_within_group: bool,
}

/// Defaults the group gives members that do not set the field themselves.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupDefaults {
    /// Default isolation level and internet egress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<DefaultNetwork>,
    /// Default ResourceQuota per namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaSpec>,
    /// Default LimitRange items per namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 10))]
    pub limits: Option<Vec<LimitItem>>,
    /// Labels put on every member namespace (a namespace's own labels win). Reserved keys
    /// are refused as in `Customer.spec.namespaces[].labels`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32))]
    pub namespace_labels: BTreeMap<String, String>,
}

/// Default network settings of a group.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DefaultNetwork {
    /// Default isolation level of members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<Isolation>,
    /// Default internet egress of members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internet_egress: Option<bool>,
}

/// What deleting a group does to its members.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Keep the group until it has no members.
    #[default]
    Block,
    /// Move the members to the default group.
    Orphan,
    /// Delete the members, each through its own cleanup, then the group.
    Cascade,
}

/// What the operator observed for a CustomerGroup.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomerGroupStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, and DeletionBlocked while a deletion waits for members to leave.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Conditions,
    /// The number of member customers.
    #[serde(default)]
    pub members: u32,
}
