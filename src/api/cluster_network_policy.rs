//! sig-network's ClusterNetworkPolicy (`policy.networking.k8s.io/v1alpha2`, from the
//! network-policy-api project), as far as the operator writes and evaluates it. The CRD
//! is theirs: the operator neither generates nor installs it, and reads every field of
//! it that decides traffic between pods.
//!
//! One peer type serves both directions: ingress peers take only `namespaces` and
//! `pods` (the apiserver refuses the rest there), egress peers also `networks`, `nodes`
//! and `domainNames`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// The API group of ClusterNetworkPolicy.
pub const CLUSTER_NETWORK_POLICY_GROUP: &str = "policy.networking.k8s.io";
/// The name of the ClusterNetworkPolicy CRD, to find out whether a cluster serves it.
pub const CLUSTER_NETWORK_POLICY_CRD: &str = "clusternetworkpolicies.policy.networking.k8s.io";

/// What a ClusterNetworkPolicy asks: a tier and a priority in it, the pods it applies
/// to, and ordered rules per direction.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "policy.networking.k8s.io",
    version = "v1alpha2",
    kind = "ClusterNetworkPolicy",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterNetworkPolicySpec {
    /// Admin (above NetworkPolicies) or Baseline (below them).
    pub tier: Tier,
    /// 0 to 1000; lower goes first within the tier.
    pub priority: i32,
    /// The pods the policy applies to.
    pub subject: Subject,
    /// Rules for traffic into the subject's pods, first match wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<IngressRule>,
    /// Rules for traffic out of the subject's pods, first match wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<EgressRule>,
}

/// Where a ClusterNetworkPolicy stands among the tiers.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    /// Evaluated before NetworkPolicies; a decision here is final.
    Admin,
    /// Evaluated for pods no NetworkPolicy selects.
    Baseline,
}

/// The pods a policy applies to: one of the two fields.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    /// Every pod of the namespaces this selects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<LabelSelector>,
    /// Pods by namespace and pod selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<NamespacedPods>,
}

/// Pods that match `podSelector` in namespaces that match `namespaceSelector`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NamespacedPods {
    /// The namespaces; empty selects all.
    #[serde(default)]
    pub namespace_selector: LabelSelector,
    /// The pods in them; empty selects all.
    #[serde(default)]
    pub pod_selector: LabelSelector,
}

/// What a rule does with the traffic it matches.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Allowed; no later rule or tier is asked (for egress, the destination's ingress
    /// still is).
    Accept,
    /// Dropped; no later rule or tier is asked.
    Deny,
    /// The rest of this tier is skipped; the next tier decides.
    Pass,
}

/// A rule for traffic into the subject.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IngressRule {
    /// A name for reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What the rule does.
    pub action: Action,
    /// The sources it matches (any one of them).
    pub from: Vec<Peer>,
    /// The destination ports it matches; none: every port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protocols: Vec<ProtocolMatch>,
}

/// A rule for traffic out of the subject.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EgressRule {
    /// A name for reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What the rule does.
    pub action: Action,
    /// The destinations it matches (any one of them).
    pub to: Vec<Peer>,
    /// The destination ports it matches; none: every port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protocols: Vec<ProtocolMatch>,
}

/// One peer: exactly one field is set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Peer {
    /// Every pod of the namespaces this selects (not host-network pods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<LabelSelector>,
    /// Pods by namespace and pod selector (not host-network pods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<NamespacedPods>,
    /// Address blocks in CIDR notation (egress only); pod addresses match them too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<String>,
    /// Nodes by label (egress only, experimental).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<LabelSelector>,
    /// Domain names (egress Accept only, experimental).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domain_names: Vec<String>,
}

/// One protocol's match: exactly one field is set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProtocolMatch {
    /// TCP, on a port or range, or any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<PortMatch>,
    /// UDP, on a port or range, or any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp: Option<PortMatch>,
    /// SCTP, on a port or range, or any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sctp: Option<PortMatch>,
    /// A container port by name (experimental).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_named_port: Option<String>,
}

/// The destination port of one protocol.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PortMatch {
    /// The port; unset: every port of the protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_port: Option<Port>,
}

/// A port number or an inclusive range: one of the two.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Port {
    /// One port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<i32>,
    /// A range, start below end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<PortRange>,
}

/// An inclusive port range.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PortRange {
    /// The first port.
    pub start: i32,
    /// The last port.
    pub end: i32,
}
