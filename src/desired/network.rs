//! The NetworkPolicies of one customer namespace.
//!
//! Peers are always chosen by namespace name (`kubernetes.io/metadata.name`), which only
//! the apiserver sets, never by a label a tenant could copy.

use std::collections::BTreeSet;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::api::{Isolation, LABEL_NAMESPACE_NAME, PortSpec, Protocol};
use crate::settings::Settings;

/// Name of the policy that denies all ingress and egress.
pub const DEFAULT_DENY: &str = "customer-default-deny";
/// Name of the policy that opens traffic among the customer's own namespaces.
pub const ALLOW_SAME_CUSTOMER: &str = "customer-allow-same-customer";
/// Name of the policy that opens egress to the cluster DNS.
pub const ALLOW_DNS: &str = "customer-allow-dns";
/// Name of the policy that opens ingress from the platform namespaces.
pub const ALLOW_PLATFORM: &str = "customer-allow-platform";
/// Name of the policy that opens egress to the internet.
pub const ALLOW_INTERNET: &str = "customer-allow-internet-egress";
/// Name of the policy that opens the ingress `spec.network.allowFrom` asks for.
pub const ALLOW_FROM: &str = "customer-allow-from";
/// Name of the policy that opens egress to customers that opened their ingress to this one.
pub const ALLOW_TO_PEERS: &str = "customer-allow-to-peers";
/// Name of the policy that opens the group's network zone.
pub const ALLOW_GROUP: &str = "customer-allow-group";
/// Every name a NetworkPolicy of the operator may have (pruning looks these up).
pub const POLICY_NAMES: [&str; 8] = [
    DEFAULT_DENY,
    ALLOW_SAME_CUSTOMER,
    ALLOW_DNS,
    ALLOW_PLATFORM,
    ALLOW_INTERNET,
    ALLOW_FROM,
    ALLOW_TO_PEERS,
    ALLOW_GROUP,
];

/// A set of peers and the ports they may use.
#[derive(Clone, Debug, PartialEq)]
pub enum Peer {
    /// Namespaces by name.
    Namespaces(BTreeSet<String>),
    /// Namespaces by a label selector (only for non-customer namespaces).
    Selector(LabelSelector),
}

/// A connection rule: who, and on which ports (none = all).
#[derive(Clone, Debug, PartialEq)]
pub struct PeerRule {
    /// Who is on the other side.
    pub peer: Peer,
    /// Which ports.
    pub ports: Vec<PortSpec>,
}

/// Everything that decides the policies of one customer's namespaces.
#[derive(Clone, Debug)]
pub struct NetworkPlan<'a> {
    /// The isolation level.
    pub isolation: Isolation,
    /// Whether internet egress is open.
    pub internet_egress: bool,
    /// All namespaces of the customer (same-customer traffic).
    pub own_namespaces: &'a BTreeSet<String>,
    /// Ingress the customer opened (`allowFrom`).
    pub allow_from: Vec<PeerRule>,
    /// Egress to customers that opened their ingress to this one.
    pub egress_to_peers: Vec<PeerRule>,
    /// Other members of the group zone, when the group opens it.
    pub group_zone: BTreeSet<String>,
    /// The operator's settings.
    pub settings: &'a Settings,
}

/// The policies of one namespace, each named by a constant of this module, as specs.
pub fn policy_specs(plan: &NetworkPlan<'_>) -> Vec<(&'static str, NetworkPolicySpec)> {
    if plan.isolation == Isolation::None {
        return Vec::new();
    }
    let mut out = vec![
        (DEFAULT_DENY, policy(Some(Vec::new()), Some(Vec::new()))),
        (
            ALLOW_SAME_CUSTOMER,
            policy(
                Some(vec![ingress(by_names(plan.own_namespaces), &[])]),
                Some(vec![egress(by_names(plan.own_namespaces), &[])]),
            ),
        ),
        (ALLOW_DNS, policy(None, Some(vec![dns_rule(plan.settings)]))),
    ];
    if plan.isolation == Isolation::Standard && !plan.settings.platform_namespaces.is_empty() {
        let platform: BTreeSet<String> =
            plan.settings.platform_namespaces.iter().cloned().collect();
        out.push((
            ALLOW_PLATFORM,
            policy(Some(vec![ingress(by_names(&platform), &[])]), None),
        ));
    }
    if plan.internet_egress {
        out.push((
            ALLOW_INTERNET,
            policy(None, Some(vec![internet_rule(plan.settings)])),
        ));
    }
    let from: Vec<_> = plan
        .allow_from
        .iter()
        .map(|r| ingress(peer_of(&r.peer), &r.ports))
        .collect();
    if !from.is_empty() {
        out.push((ALLOW_FROM, policy(Some(from), None)));
    }
    let to: Vec<_> = plan
        .egress_to_peers
        .iter()
        .map(|r| egress(peer_of(&r.peer), &r.ports))
        .collect();
    if !to.is_empty() {
        out.push((ALLOW_TO_PEERS, policy(None, Some(to))));
    }
    if !plan.group_zone.is_empty() {
        out.push((
            ALLOW_GROUP,
            policy(
                Some(vec![ingress(by_names(&plan.group_zone), &[])]),
                Some(vec![egress(by_names(&plan.group_zone), &[])]),
            ),
        ));
    }
    out
}

/// A policy over every pod of the namespace with these ingress and egress rules. A `None`
/// side is left out of `policyTypes` (not restricted by this policy); an empty one is in
/// `policyTypes` with no rule, so it denies that direction.
fn policy(
    ingress: Option<Vec<NetworkPolicyIngressRule>>,
    egress: Option<Vec<NetworkPolicyEgressRule>>,
) -> NetworkPolicySpec {
    let mut types = Vec::new();
    if ingress.is_some() {
        types.push("Ingress".to_string());
    }
    if egress.is_some() {
        types.push("Egress".to_string());
    }
    NetworkPolicySpec {
        pod_selector: Some(LabelSelector::default()),
        policy_types: Some(types),
        ingress: ingress.filter(|rules| !rules.is_empty()),
        egress: egress.filter(|rules| !rules.is_empty()),
    }
}

fn ingress(from: NetworkPolicyPeer, ports: &[PortSpec]) -> NetworkPolicyIngressRule {
    NetworkPolicyIngressRule {
        from: Some(vec![from]),
        ports: policy_ports(ports),
    }
}

fn egress(to: NetworkPolicyPeer, ports: &[PortSpec]) -> NetworkPolicyEgressRule {
    NetworkPolicyEgressRule {
        to: Some(vec![to]),
        ports: policy_ports(ports),
    }
}

fn policy_ports(ports: &[PortSpec]) -> Option<Vec<NetworkPolicyPort>> {
    if ports.is_empty() {
        return None;
    }
    Some(
        ports
            .iter()
            .map(|p| NetworkPolicyPort {
                port: Some(IntOrString::Int(p.port)),
                end_port: p.end_port,
                protocol: Some(p.protocol.unwrap_or(Protocol::Tcp).as_str().to_string()),
            })
            .collect(),
    )
}

fn peer_of(peer: &Peer) -> NetworkPolicyPeer {
    match peer {
        Peer::Namespaces(names) => by_names(names),
        Peer::Selector(selector) => NetworkPolicyPeer {
            namespace_selector: Some(selector.clone()),
            ..Default::default()
        },
    }
}

/// Every peer a policy names, ingress sources and egress destinations alike.
pub fn peers(spec: &NetworkPolicySpec) -> Vec<NetworkPolicyPeer> {
    let from = spec
        .ingress
        .iter()
        .flatten()
        .flat_map(|r| r.from.iter().flatten());
    let to = spec
        .egress
        .iter()
        .flatten()
        .flat_map(|r| r.to.iter().flatten());
    from.chain(to).cloned().collect()
}

/// A peer of every pod in the namespaces of these names.
pub fn by_names(names: &BTreeSet<String>) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: LABEL_NAMESPACE_NAME.to_string(),
                operator: "In".to_string(),
                values: Some(names.iter().cloned().collect()),
            }]),
            match_labels: None,
        }),
        ..Default::default()
    }
}

fn dns_rule(settings: &Settings) -> NetworkPolicyEgressRule {
    let dns = &settings.dns;
    let port = |protocol: Protocol| PortSpec {
        port: 53,
        end_port: None,
        protocol: Some(protocol),
    };
    NetworkPolicyEgressRule {
        to: Some(vec![NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(
                    [(LABEL_NAMESPACE_NAME.to_string(), dns.namespace.clone())].into(),
                ),
                match_expressions: None,
            }),
            pod_selector: Some(LabelSelector {
                match_labels: Some(dns.pod_labels.clone()),
                match_expressions: None,
            }),
            ip_block: None,
        }]),
        ports: policy_ports(&[port(Protocol::Udp), port(Protocol::Tcp)]),
    }
}

fn internet_rule(settings: &Settings) -> NetworkPolicyEgressRule {
    let (v6, v4): (Vec<String>, Vec<String>) = settings
        .private_cidrs
        .iter()
        .cloned()
        .partition(|cidr| cidr.contains(':'));
    let block = |cidr: &str, except: Vec<String>| NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: cidr.to_string(),
            except: (!except.is_empty()).then_some(except),
        }),
        ..Default::default()
    };
    NetworkPolicyEgressRule {
        to: Some(vec![block("0.0.0.0/0", v4), block("::/0", v6)]),
        ports: None,
    }
}
