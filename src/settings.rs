//! The operator's own settings: what a platform team configures once per cluster.

use std::collections::BTreeMap;

use crate::cidr::{self, Cidr};
use crate::error::{Error, Result};

/// Where the cluster DNS runs, so customers may reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsTarget {
    /// Namespace of the DNS pods.
    pub namespace: String,
    /// Labels of the DNS pods.
    pub pod_labels: BTreeMap<String, String>,
}

/// Cluster-wide settings that shape every customer's objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Group of customers whose `spec.group` is unset.
    pub default_group: String,
    /// Namespaces (ingress controllers, monitoring) that may reach customers with
    /// `Standard` isolation.
    pub platform_namespaces: Vec<String>,
    /// The cluster DNS that every isolated customer may query.
    pub dns: DnsTarget,
    /// Address ranges excluded from internet egress: private, link-local (cloud metadata),
    /// carrier-grade NAT, and the cluster's pod and service ranges. IPv4 and IPv6 both.
    pub private_cidrs: Vec<String>,
    /// The operator's own namespace, which no customer may take.
    pub operator_namespace: String,
    /// Where pods get their addresses (the cluster's pod ranges). The isolation check
    /// takes a pod to have some address in them when it judges whether an ipBlock may
    /// match it.
    pub pod_cidrs: Vec<String>,
    /// System subjects (`system:` users and groups, ServiceAccounts of system
    /// namespaces) a Customer or group may still name, by the name the apiserver
    /// authenticates them as: `system:authenticated`, or
    /// `system:serviceaccount:<namespace>:<name>` for a ServiceAccount. Empty: none.
    pub allowed_system_subjects: Vec<String>,
    /// Which kind of policy isolates the customers.
    pub isolation_backend: IsolationBackend,
    /// The priority of the operator's ClusterNetworkPolicies in both tiers (0 to 1000,
    /// lower first): the platform team's own policies go below it to come first.
    pub cluster_policy_priority: i32,
    /// Where the operator writes an Argo CD AppProject per customer; `None`: it writes
    /// none (`--argocd-projects` off).
    pub argocd_namespace: Option<String>,
}

/// Which kind of policy the operator isolates customers with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum IsolationBackend {
    /// NetworkPolicies in every customer namespace; customers may write none of their
    /// own.
    #[default]
    #[value(name = "NetworkPolicy")]
    NetworkPolicy,
    /// Two ClusterNetworkPolicies per customer (Admin and Baseline tier); the customers'
    /// own NetworkPolicies decide only among their own namespaces.
    #[value(name = "ClusterNetworkPolicy")]
    ClusterNetworkPolicy,
}

/// The priority of the operator's ClusterNetworkPolicies unless told otherwise.
pub const DEFAULT_CLUSTER_POLICY_PRIORITY: i32 = 100;

/// Ranges excluded from internet egress unless told otherwise.
pub const DEFAULT_PRIVATE_CIDRS: &[&str] = &[
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "127.0.0.0/8",
    "fc00::/7",
    "fe80::/10",
    "::1/128",
];

/// Where pods are taken to have their addresses unless told otherwise: the private and
/// carrier-grade NAT ranges, where clusters put their pod networks.
pub const DEFAULT_POD_CIDRS: &[&str] = &[
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "fc00::/7",
];

impl Default for Settings {
    fn default() -> Self {
        Settings {
            default_group: "all".into(),
            platform_namespaces: Vec::new(),
            dns: DnsTarget {
                namespace: "kube-system".into(),
                pod_labels: [("k8s-app".to_string(), "kube-dns".to_string())].into(),
            },
            private_cidrs: DEFAULT_PRIVATE_CIDRS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            operator_namespace: "customer-operator".into(),
            pod_cidrs: DEFAULT_POD_CIDRS.iter().map(|s| s.to_string()).collect(),
            allowed_system_subjects: Vec::new(),
            isolation_backend: IsolationBackend::NetworkPolicy,
            cluster_policy_priority: DEFAULT_CLUSTER_POLICY_PRIORITY,
            argocd_namespace: None,
        }
    }
}

impl Settings {
    /// The pod ranges, parsed.
    pub fn pod_ranges(&self) -> Result<Vec<Cidr>> {
        cidr::parse_all(&self.pod_cidrs)
            .map_err(|message| Error::Config(format!("pod CIDRs: {message}")))
    }

    /// Whether a ServiceAccount of this namespace is a system one, which no customer may
    /// name unless allowed: `kube-*`, `default` and the operator's own namespace.
    pub fn is_system_namespace(&self, name: &str) -> bool {
        name.starts_with("kube-") || name == "default" || name == self.operator_namespace
    }

    /// Whether a namespace name is one no customer may take: `kube-*`, `default`, the
    /// operator's own, the platform namespaces and the DNS namespace.
    pub fn is_reserved_namespace(&self, name: &str) -> bool {
        name.starts_with("kube-")
            || name == "default"
            || name == self.operator_namespace
            || name == self.dns.namespace
            || self.platform_namespaces.iter().any(|p| p == name)
    }
}
