//! The ClusterNetworkPolicies of one customer, for the ClusterNetworkPolicy isolation
//! backend: one in the Admin tier that no namespace admin can override, one in the
//! Baseline tier that keeps a namespace where the customer wrote nothing default-deny.
//!
//! The tiers, in the order the network-policy-api evaluates them, and what each policy
//! of customer C (namespaces N, by name) does there:
//!
//! | tier | ingress into N | egress out of N |
//! |---|---|---|
//! | Admin `customer-admin.C` | Pass from N; Accept from the platform namespaces (Standard only); Accept each declared connection and the group zone; Deny every other namespace | Pass to N; Accept DNS; Accept the connections' peers and the group zone; Deny every other namespace; Deny the private ranges, or every address when internet egress is off |
//! | NetworkPolicy | the customer's own policies, if any select the pod | the same |
//! | Baseline `customer-baseline.C` | Accept from N; Deny every namespace | Accept to N; Accept every address when internet egress is on; Deny every namespace and address |
//!
//! So everything between C and anyone else is decided in the Admin tier, and only
//! traffic among C's own namespaces (and internet egress where it is open) reaches the
//! customer's own NetworkPolicies. Peers are chosen by namespace name
//! (`kubernetes.io/metadata.name`), which only the apiserver sets. Both policies share
//! one priority (`Settings::cluster_policy_priority`): their subjects are disjoint from
//! every other customer's, so no two of the operator's policies decide the same side of
//! a connection.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use super::network::{NetworkPlan, Peer as PlanPeer, PeerRule};
use crate::api::cluster_network_policy::{
    Action, EgressRule, IngressRule, NamespacedPods, Peer, Port, PortMatch, PortRange,
    ProtocolMatch, Subject, Tier,
};
use crate::api::{ClusterNetworkPolicySpec, Isolation, LABEL_NAMESPACE_NAME, PortSpec, Protocol};

/// Prefix of the name of a customer's Admin-tier policy (`customer-admin.<customer>`);
/// the dot keeps it apart from any customer name.
pub const ADMIN_PREFIX: &str = "customer-admin.";
/// Prefix of the name of a customer's Baseline-tier policy.
pub const BASELINE_PREFIX: &str = "customer-baseline.";

/// Every address, IPv4 and IPv6.
const EVERY_ADDRESS: [&str; 2] = ["0.0.0.0/0", "::/0"];

/// The names of the two ClusterNetworkPolicies of `customer`: Admin, then Baseline.
pub fn names(customer: &str) -> [String; 2] {
    [
        format!("{ADMIN_PREFIX}{customer}"),
        format!("{BASELINE_PREFIX}{customer}"),
    ]
}

/// The two policies of the customer whose plan this is, as (name, spec), over the
/// namespaces `subject` (its own and those `deletionProtection` keeps); none when its
/// isolation is None or it has no namespace.
pub fn cluster_policy_specs(
    customer: &str,
    plan: &NetworkPlan<'_>,
    subject: &BTreeSet<String>,
) -> Vec<(String, ClusterNetworkPolicySpec)> {
    if plan.isolation == Isolation::None || subject.is_empty() {
        return Vec::new();
    }
    let [admin, baseline] = names(customer);
    vec![
        (admin, admin_spec(plan, subject)),
        (baseline, baseline_spec(plan, subject)),
    ]
}

fn admin_spec(plan: &NetworkPlan<'_>, over: &BTreeSet<String>) -> ClusterNetworkPolicySpec {
    let own = plan.own_namespaces;
    let mut ingress = vec![ingress_rule(
        "pass-own-namespaces",
        Action::Pass,
        by_names(own),
        &[],
    )];
    let platform: BTreeSet<String> = plan.settings.platform_namespaces.iter().cloned().collect();
    if plan.isolation == Isolation::Standard && !platform.is_empty() {
        ingress.push(ingress_rule(
            "accept-platform",
            Action::Accept,
            by_names(&platform),
            &[],
        ));
    }
    for (at, (ports, peers)) in by_ports(&plan.allow_from).into_iter().enumerate() {
        let name = format!("accept-allow-from-{}", at + 1);
        ingress.push(IngressRule {
            name: Some(name),
            action: Action::Accept,
            from: peers,
            protocols: protocols(&ports),
        });
    }
    if !plan.group_zone.is_empty() {
        ingress.push(ingress_rule(
            "accept-group-zone",
            Action::Accept,
            by_names(&plan.group_zone),
            &[],
        ));
    }
    ingress.push(ingress_rule(
        "deny-other-namespaces",
        Action::Deny,
        every_namespace(),
        &[],
    ));
    let mut egress = vec![
        egress_rule(
            "pass-own-namespaces",
            Action::Pass,
            vec![by_names(own)],
            &[],
        ),
        dns_rule(plan),
    ];
    egress.extend(peer_rules("accept-to-peer", &plan.egress_to_peers));
    if !plan.group_zone.is_empty() {
        egress.push(egress_rule(
            "accept-group-zone",
            Action::Accept,
            vec![by_names(&plan.group_zone)],
            &[],
        ));
    }
    egress.push(egress_rule(
        "deny-other-namespaces",
        Action::Deny,
        vec![every_namespace()],
        &[],
    ));
    egress.push(if plan.internet_egress {
        egress_rule(
            "deny-private-ranges",
            Action::Deny,
            vec![networks(plan.settings.private_cidrs.iter().cloned())],
            &[],
        )
    } else {
        deny_every_address()
    });
    ClusterNetworkPolicySpec {
        tier: Tier::Admin,
        priority: plan.settings.cluster_policy_priority,
        subject: subject(over),
        ingress,
        egress,
    }
}

fn baseline_spec(plan: &NetworkPlan<'_>, over: &BTreeSet<String>) -> ClusterNetworkPolicySpec {
    let own = plan.own_namespaces;
    let mut egress = vec![egress_rule(
        "accept-own-namespaces",
        Action::Accept,
        vec![by_names(own)],
        &[],
    )];
    if plan.internet_egress {
        egress.push(egress_rule(
            "accept-internet",
            Action::Accept,
            vec![networks(EVERY_ADDRESS.map(String::from))],
            &[],
        ));
    }
    egress.push(egress_rule(
        "deny-every-namespace",
        Action::Deny,
        vec![every_namespace()],
        &[],
    ));
    egress.push(deny_every_address());
    ClusterNetworkPolicySpec {
        tier: Tier::Baseline,
        priority: plan.settings.cluster_policy_priority,
        subject: subject(over),
        ingress: vec![
            ingress_rule("accept-own-namespaces", Action::Accept, by_names(own), &[]),
            ingress_rule("deny-every-namespace", Action::Deny, every_namespace(), &[]),
        ],
        egress,
    }
}

fn deny_every_address() -> EgressRule {
    egress_rule(
        "deny-every-address",
        Action::Deny,
        vec![networks(EVERY_ADDRESS.map(String::from))],
        &[],
    )
}

fn peer_rules(prefix: &str, rules: &[PeerRule]) -> Vec<EgressRule> {
    by_ports(rules)
        .into_iter()
        .enumerate()
        .map(|(at, (ports, peers))| {
            let name = format!("{prefix}-{}", at + 1);
            egress_rule(&name, Action::Accept, peers, &ports)
        })
        .collect()
}

/// The ports of a merged rule, the namespaces it names and its other peers.
type Merged = (Vec<PortSpec>, BTreeSet<String>, Vec<Peer>);

/// The peers of `rules` merged by the ports they open, one rule per distinct list of
/// ports (a policy takes at most 25 rules per direction; one customer's connections on
/// the same ports become one peer selecting all their namespaces by name).
fn by_ports(rules: &[PeerRule]) -> Vec<(Vec<PortSpec>, Vec<Peer>)> {
    let mut merged: BTreeMap<String, Merged> = BTreeMap::new();
    for rule in rules {
        let key = serde_json::to_string(&rule.ports).unwrap_or_default();
        let entry = merged
            .entry(key)
            .or_insert_with(|| (rule.ports.clone(), BTreeSet::new(), Vec::new()));
        match &rule.peer {
            PlanPeer::Namespaces(names) => entry.1.extend(names.iter().cloned()),
            PlanPeer::Selector(selector) => entry.2.push(Peer {
                namespaces: Some(selector.clone()),
                ..Default::default()
            }),
        }
    }
    merged
        .into_values()
        .map(|(ports, names, mut peers)| {
            if !names.is_empty() {
                peers.insert(0, by_names(&names));
            }
            (ports, peers)
        })
        .collect()
}

fn dns_rule(plan: &NetworkPlan<'_>) -> EgressRule {
    let dns = &plan.settings.dns;
    let port = |protocol| PortSpec {
        port: 53,
        end_port: None,
        protocol: Some(protocol),
    };
    let peer = Peer {
        pods: Some(NamespacedPods {
            namespace_selector: LabelSelector {
                match_labels: Some(
                    [(LABEL_NAMESPACE_NAME.to_string(), dns.namespace.clone())].into(),
                ),
                match_expressions: None,
            },
            pod_selector: LabelSelector {
                match_labels: Some(dns.pod_labels.clone()),
                match_expressions: None,
            },
        }),
        ..Default::default()
    };
    egress_rule(
        "accept-dns",
        Action::Accept,
        vec![peer],
        &[port(Protocol::Udp), port(Protocol::Tcp)],
    )
}

fn subject(own: &BTreeSet<String>) -> Subject {
    Subject {
        namespaces: Some(names_selector(own)),
        pods: None,
    }
}

fn ingress_rule(name: &str, action: Action, from: Peer, ports: &[PortSpec]) -> IngressRule {
    IngressRule {
        name: Some(name.to_string()),
        action,
        from: vec![from],
        protocols: protocols(ports),
    }
}

fn egress_rule(name: &str, action: Action, to: Vec<Peer>, ports: &[PortSpec]) -> EgressRule {
    EgressRule {
        name: Some(name.to_string()),
        action,
        to,
        protocols: protocols(ports),
    }
}

/// The protocols of `ports`; none (every port) when the list is empty.
fn protocols(ports: &[PortSpec]) -> Vec<ProtocolMatch> {
    ports
        .iter()
        .map(|p| {
            // The API wants a range's start below its end; `port..=port` is one port.
            let range = p.end_port.filter(|&end| end > p.port);
            let port = Port {
                number: range.is_none().then_some(p.port),
                range: range.map(|end| PortRange { start: p.port, end }),
            };
            let matched = Some(PortMatch {
                destination_port: Some(port),
            });
            match p.protocol.unwrap_or(Protocol::Tcp) {
                Protocol::Tcp => ProtocolMatch {
                    tcp: matched,
                    ..Default::default()
                },
                Protocol::Udp => ProtocolMatch {
                    udp: matched,
                    ..Default::default()
                },
                Protocol::Sctp => ProtocolMatch {
                    sctp: matched,
                    ..Default::default()
                },
            }
        })
        .collect()
}

fn by_names(names: &BTreeSet<String>) -> Peer {
    Peer {
        namespaces: Some(names_selector(names)),
        ..Default::default()
    }
}

fn every_namespace() -> Peer {
    Peer {
        namespaces: Some(LabelSelector::default()),
        ..Default::default()
    }
}

fn networks(cidrs: impl IntoIterator<Item = String>) -> Peer {
    Peer {
        networks: cidrs.into_iter().collect(),
        ..Default::default()
    }
}

fn names_selector(names: &BTreeSet<String>) -> LabelSelector {
    LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: LABEL_NAMESPACE_NAME.to_string(),
            operator: "In".to_string(),
            values: Some(names.iter().cloned().collect()),
        }]),
        match_labels: None,
    }
}
