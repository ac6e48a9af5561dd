//! Types shared by `Customer` and `CustomerGroup`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Pattern of a DNS-1123 label: lower-case letters, digits and '-', starting and ending
/// with a letter or digit.
pub const DNS_LABEL_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// The kind of an RBAC subject.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
pub enum SubjectKind {
    /// A user, as the cluster's authenticator names it.
    User,
    /// A group of users, as the cluster's authenticator names it.
    Group,
    /// A ServiceAccount; `namespace` is then required.
    ServiceAccount,
}

/// A person, group or ServiceAccount that receives a role in the customer's namespaces.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.kind != 'ServiceAccount' || (has(self.__namespace__) && self.__namespace__ != '')",
    "message": "a ServiceAccount subject needs a namespace"
}]))]
pub struct Subject {
    /// User, Group or ServiceAccount.
    pub kind: SubjectKind,
    /// The user's, group's or ServiceAccount's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The ServiceAccount's namespace; only for kind ServiceAccount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub namespace: Option<String>,
}

/// Who works in the namespaces, by role.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct Access {
    /// Receive ClusterRole `customer-admin` in every namespace of the customer.
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

/// Isolation level of a customer's namespaces: Strict (only its own namespaces, the
/// cluster DNS and what is opened explicitly), Standard (Strict plus ingress from the
/// platform namespaces, and internet egress by default) or None (no NetworkPolicy). A
/// customer that sets none takes its group's default, else Standard. Every value can be
/// written unquoted in YAML.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Isolation {
    /// Deny everything but traffic among the customer's own namespaces, DNS, and what
    /// `allowFrom` and the group zone open; internet egress only when asked for.
    Strict,
    /// Like Strict, plus ingress from the operator's platform namespaces (ingress
    /// controllers, monitoring) and internet egress by default.
    Standard,
    /// No NetworkPolicy at all: the namespaces are open. Formerly `Off`, which YAML 1.1
    /// readers (kubectl, Helm) take for the boolean false; objects stored with `Off`
    /// still read as None.
    #[serde(alias = "Off")]
    None,
}

/// A port (or port range) a connection may use.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.endPort) || self.endPort >= self.port",
    "message": "endPort must not be below port"
}]))]
pub struct PortSpec {
    /// The port number.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Last port of a range that starts at `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub end_port: Option<i32>,
    /// TCP (default), UDP or SCTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
}

/// Transport protocol of a port: TCP (the default), UDP or SCTP.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Protocol {
    /// TCP.
    #[serde(rename = "TCP")]
    Tcp,
    /// UDP.
    #[serde(rename = "UDP")]
    Udp,
    /// SCTP.
    #[serde(rename = "SCTP")]
    Sctp,
}

impl Protocol {
    /// The protocol's name as NetworkPolicy spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

/// The customer's quota: a ResourceQuota `customer-quota` in every namespace of the
/// customer, holding `hard` per namespace and a share of `total` for all of them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct QuotaSpec {
    /// Hard limits of each namespace by resource name (`requests.cpu`, `limits.memory`,
    /// `pods`, ...).
    #[serde(default)]
    #[schemars(extend("maxProperties" = 64))]
    pub hard: BTreeMap<String, Quantity>,
    /// Limits of all the customer's namespaces together, by resource name. The operator
    /// moves each namespace's ResourceQuota with its usage: every namespace gets what it
    /// uses plus an even share of what the others leave free, so the sum never exceeds
    /// the total. A resource in both `hard` and `total` is held to the smaller of the two
    /// in each namespace. Lowering it below what is used deletes nothing: it sets the
    /// `QuotaExceeded` condition and blocks new use until usage falls below it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    pub total: BTreeMap<String, Quantity>,
}

/// The kind of object a LimitRange item applies to.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum LimitType {
    /// Each container.
    Container,
    /// Each pod (all its containers together).
    Pod,
    /// Each PersistentVolumeClaim.
    PersistentVolumeClaim,
}

impl LimitType {
    /// The type's name as LimitRange spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitType::Container => "Container",
            LimitType::Pod => "Pod",
            LimitType::PersistentVolumeClaim => "PersistentVolumeClaim",
        }
    }
}

/// One item of the LimitRange written into every namespace of the customer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LimitItem {
    /// Container, Pod or PersistentVolumeClaim.
    #[serde(rename = "type")]
    pub limit_type: LimitType,
    /// Default limits for containers that set none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub default: BTreeMap<String, Quantity>,
    /// Default requests for containers that set none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub default_request: BTreeMap<String, Quantity>,
    /// Upper bounds.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub max: BTreeMap<String, Quantity>,
    /// Lower bounds.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub min: BTreeMap<String, Quantity>,
    /// Largest allowed ratio of limit to request, by resource.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub max_limit_request_ratio: BTreeMap<String, Quantity>,
}

/// Where a customer opens its ingress to. Exactly one of `customer`, `group` and
/// `namespaceSelector` is set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "(has(self.customer) ? 1 : 0) + (has(self.group) ? 1 : 0) + (has(self.namespaceSelector) ? 1 : 0) == 1",
    "message": "set exactly one of customer, group and namespaceSelector"
}]))]
pub struct AllowFrom {
    /// Another Customer whose namespaces may connect; the operator opens that
    /// customer's egress to this one as well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 40), regex(pattern = DNS_LABEL_PATTERN))]
    pub customer: Option<String>,
    /// A CustomerGroup whose member customers may connect; the operator opens their
    /// egress to this customer as well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63), regex(pattern = DNS_LABEL_PATTERN))]
    pub group: Option<String>,
    /// Non-customer namespaces, chosen by their labels, that may connect (for example a
    /// shared service). Only ingress is opened; their egress is not the operator's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Ports the peer may connect to; none means every port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub ports: Vec<PortSpec>,
}

/// The state of one of the customer's namespaces.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct NamespaceStatus {
    /// The namespace's full name.
    pub name: String,
    /// Active, Terminating, Missing or Conflict (exists but belongs to someone else).
    pub phase: String,
}

/// Conditions as Kubernetes writes them.
pub type Conditions = Vec<Condition>;

/// What Argo CD may deploy for a customer, when the operator writes an AppProject per
/// customer (`--argocd-projects`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArgoCd {
    /// Repositories the customer's Argo CD Applications may take manifests from, as
    /// Argo CD reads them: URLs or globs (`https://git.example/team/*`), `!` before one
    /// excludes it. A group's list is added to each member's. None at all: no
    /// Application of the customer can be created.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 50),
        inner(length(min = 1, max = 1000), regex(pattern = r"^[^\s,]+$"))
    )]
    pub source_repos: Vec<String>,
}
