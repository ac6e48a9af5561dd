//! ClusterNetworkPolicies (`policy.networking.k8s.io/v1alpha2`) compiled for the
//! evaluator: each policy's tier and place in it, the pods it applies to, and its rules
//! with the peers and ports each matches. How the tiers and the NetworkPolicies chain
//! is [`super::evaluate`]'s business; one policy reads as the API's types state it:
//!
//! - A policy applies to the pods its `subject` selects: every pod of the namespaces
//!   `namespaces` selects, or the pods `pods.podSelector` selects in the namespaces
//!   `pods.namespaceSelector` selects. Host-network pods are never selected. A subject
//!   with no field set (refused by the apiserver) selects nothing.
//! - Within a tier policies go by `priority`, lower first. The API leaves the order of
//!   two policies of one priority undefined (a plugin may apply either); they are taken
//!   by name here, so that a report reads the same every time.
//! - Within a policy rules go in list order; the first whose peer and port both match
//!   decides. A policy without rules for a direction does not touch that direction.
//! - Peers: `namespaces` (every pod of the matching namespaces) and `pods` (pods the pod
//!   selector matches in namespaces the namespace selector matches), neither of which
//!   matches a host-network pod; `networks` (egress only), CIDRs, which pod addresses
//!   match too (a host-network pod's address is its node's); `nodes` and `domainNames`
//!   (experimental, egress only), which no pod matches here. An ingress peer has only
//!   `namespaces` and `pods`: other fields there are left out, as a plugin reading the
//!   API's ingress peer type would not see them.
//! - A peer with no field set (or none its direction has) comes from a CRD version this
//!   code does not know. The API asks to fail closed then: an Accept rule matches no
//!   traffic with it, a Deny or Pass rule all traffic. The evaluator reads an empty
//!   `from`/`to` list, a protocol entry with no field set and a CIDR that does not parse
//!   (all refused by the apiserver) the same way.
//! - Ports: `protocols` lists TCP, UDP or SCTP, each on a `destinationPort` (a number
//!   or an inclusive range) or on every port of it when it has none; a rule without
//!   `protocols` matches every port of every protocol.
//! - `destinationNamedPort` (experimental) names a container port, which the evaluator
//!   does not know. As for a NetworkPolicy's named port, it is read so as to find more
//!   paths, never fewer: in an Accept rule every port of every protocol, in a Deny rule
//!   no port. In a Pass rule it is taken as every port: that errs either way, since the
//!   traffic passed on meets the next tier instead of the policy's later rules.
//! - A peer's address, when not given, lies somewhere in the pod ranges (a host-network
//!   pod's anywhere). An Accept or Pass rule's `networks` then match the pod when some
//!   address of the ranges lies in them (it may be there), a Deny rule's only when every
//!   one does (it must be): both readings find more paths, never fewer.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;

use super::ports::{MAX_PORT, MIN_PORT, PortSet};
use super::selector::{self, Labels};
use crate::api::cluster_network_policy::{
    Action, NamespacedPods, Peer as PeerSpec, PortMatch, ProtocolMatch, Tier,
};
use crate::api::{ClusterNetworkPolicy, Protocol};
use crate::cidr::{self, Cidr};

/// A ClusterNetworkPolicy by name, with its tier and priority.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ClusterPolicyRef {
    /// The policy's name.
    pub name: String,
    /// Its tier.
    pub tier: Tier,
    /// Its priority in the tier.
    pub priority: i32,
}

/// `ClusterNetworkPolicy customer-admin.acme (Admin, priority 100)`.
impl fmt::Display for ClusterPolicyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ClusterNetworkPolicy {} ({:?}, priority {})",
            self.name, self.tier, self.priority
        )
    }
}

/// Which namespaces hold peers a pod's policies may allow, by index in the
/// [`super::Network`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reach {
    /// Any namespace.
    All,
    /// Only these.
    Some(BTreeSet<usize>),
}

impl Reach {
    /// No namespace.
    pub fn none() -> Self {
        Reach::Some(BTreeSet::new())
    }

    /// Whether no namespace is in it.
    pub fn is_empty(&self) -> bool {
        matches!(self, Reach::Some(set) if set.is_empty())
    }

    /// Adds the namespaces of `other`.
    pub fn union_with(&mut self, other: &Reach) {
        match (&mut *self, other) {
            (Reach::All, _) => {}
            (_, Reach::All) => *self = Reach::All,
            (Reach::Some(mine), Reach::Some(theirs)) => mine.extend(theirs),
        }
    }

    /// The namespaces in both.
    pub fn intersect(&self, other: &Reach) -> Reach {
        match (self, other) {
            (Reach::All, x) | (x, Reach::All) => x.clone(),
            (Reach::Some(a), Reach::Some(b)) => Reach::Some(a.intersection(b).copied().collect()),
        }
    }

    /// The namespaces of this one not in `other`, of `count` namespaces in all.
    pub fn minus(&self, other: &Reach, count: usize) -> Reach {
        match (self, other) {
            (_, Reach::All) => Reach::none(),
            (Reach::All, Reach::Some(b)) => {
                Reach::Some((0..count).filter(|i| !b.contains(i)).collect())
            }
            (Reach::Some(a), Reach::Some(b)) => Reach::Some(a.difference(b).copied().collect()),
        }
    }
}

/// A pod as a subject or a peer of a ClusterNetworkPolicy sees it.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// The labels of the pod's namespace.
    pub namespace_labels: &'a Labels,
    /// The pod's labels.
    pub labels: &'a Labels,
    /// Whether the pod is on its node's network.
    pub host_network: bool,
    /// The pod's address, if known.
    pub ip: Option<IpAddr>,
    /// Where its address lies when not known.
    pub ranges: &'a [Cidr],
}

/// One ClusterNetworkPolicy, ready to evaluate.
#[derive(Clone, Debug)]
pub struct ClusterPolicy {
    /// Its name, tier and priority.
    pub id: Arc<ClusterPolicyRef>,
    subject_namespaces: Option<LabelSelector>,
    subject_pods: Option<NamespacedPods>,
    ingress: Vec<ClusterRule>,
    egress: Vec<ClusterRule>,
}

impl ClusterPolicy {
    /// Compiles one policy.
    pub fn compile(policy: &ClusterNetworkPolicy) -> Self {
        let spec = &policy.spec;
        let ingress = spec
            .ingress
            .iter()
            .enumerate()
            .map(|(index, r)| {
                ClusterRule::compile(index, &r.name, r.action, &r.from, &r.protocols, true)
            })
            .collect();
        let egress = spec
            .egress
            .iter()
            .enumerate()
            .map(|(index, r)| {
                ClusterRule::compile(index, &r.name, r.action, &r.to, &r.protocols, false)
            })
            .collect();
        ClusterPolicy {
            id: Arc::new(ClusterPolicyRef {
                name: policy.name_any(),
                tier: spec.tier,
                priority: spec.priority,
            }),
            subject_namespaces: spec.subject.namespaces.clone(),
            subject_pods: spec.subject.pods.clone(),
            ingress,
            egress,
        }
    }

    /// Where the policy stands: tier, then priority, then name.
    pub fn order(&self) -> (Tier, i32, &str) {
        (self.id.tier, self.id.priority, &self.id.name)
    }

    /// The rules for traffic into (`ingress`) or out of the subject's pods.
    pub fn rules(&self, ingress: bool) -> &[ClusterRule] {
        if ingress { &self.ingress } else { &self.egress }
    }

    /// The namespace selectors of the subject: the policy may apply to pods only in
    /// the namespaces one of them matches.
    pub fn subject_namespaces(&self) -> impl Iterator<Item = &LabelSelector> {
        self.subject_namespaces
            .iter()
            .chain(self.subject_pods.iter().map(|p| &p.namespace_selector))
    }

    /// Whether the subject selects this pod.
    pub fn selects(&self, pod: &Target) -> bool {
        if pod.host_network {
            return false;
        }
        let by_namespace = self
            .subject_namespaces
            .as_ref()
            .is_some_and(|s| selector::matches(s, pod.namespace_labels));
        by_namespace
            || self
                .subject_pods
                .as_ref()
                .is_some_and(|p| pods_match(p, pod))
    }

    /// Every (namespace selector, pod selector) pair of the subject and of the `pods`
    /// peers: the pod labels worth probing, and the namespaces where.
    pub fn pod_selectors(&self) -> impl Iterator<Item = (&LabelSelector, &LabelSelector)> {
        let peers = self
            .ingress
            .iter()
            .chain(&self.egress)
            .flat_map(|r| &r.peers)
            .filter_map(|p| match &p.kind {
                PeerKind::Pods(pods) => Some(pods),
                _ => None,
            });
        self.subject_pods
            .iter()
            .chain(peers)
            .map(|p| (&p.namespace_selector, &p.pod_selector))
    }
}

fn pods_match(pods: &NamespacedPods, pod: &Target) -> bool {
    selector::matches(&pods.namespace_selector, pod.namespace_labels)
        && selector::matches(&pods.pod_selector, pod.labels)
}

/// One rule of a ClusterNetworkPolicy, ready to match.
#[derive(Clone, Debug)]
pub struct ClusterRule {
    /// Its index in the policy's `ingress` or `egress` list (0-based).
    pub index: usize,
    /// Its `name`, if set.
    pub name: Option<Arc<str>>,
    /// What it does with the traffic it matches.
    pub action: Action,
    /// The ports it matches, named ports and unreadable entries read for its action.
    pub ports: PortSet,
    peers: Vec<Peer>,
}

#[derive(Clone, Debug)]
enum PeerKind {
    /// Fail closed for Deny and Pass: every pod.
    Everything,
    /// Fail closed for Accept, and the peers no pod is: no pod.
    Nothing,
    Namespaces(LabelSelector),
    Pods(NamespacedPods),
    Networks(Vec<Cidr>),
}

#[derive(Clone, Debug)]
struct Peer {
    kind: PeerKind,
    text: Arc<str>,
}

impl ClusterRule {
    fn compile(
        index: usize,
        name: &Option<String>,
        action: Action,
        peers: &[PeerSpec],
        protocols: &[ProtocolMatch],
        ingress: bool,
    ) -> Self {
        let mut compiled: Vec<Peer> = peers
            .iter()
            .flat_map(|p| compile_peer(p, action, ingress))
            .collect();
        if peers.is_empty() {
            compiled.push(fail_closed(action, "no peer (an empty list)"));
        }
        ClusterRule {
            index,
            name: name.as_deref().map(Arc::from),
            action,
            ports: compile_protocols(protocols, action),
            peers: compiled,
        }
    }

    /// The text of the first peer that matches `pod`, if one does.
    pub fn matching_peer(&self, pod: &Target) -> Option<Arc<str>> {
        self.peers
            .iter()
            .find(|p| self.peer_matches(p, pod))
            .map(|p| p.text.clone())
    }

    fn peer_matches(&self, peer: &Peer, pod: &Target) -> bool {
        match &peer.kind {
            PeerKind::Everything => true,
            PeerKind::Nothing => false,
            PeerKind::Namespaces(s) => {
                !pod.host_network && selector::matches(s, pod.namespace_labels)
            }
            PeerKind::Pods(pods) => !pod.host_network && pods_match(pods, pod),
            PeerKind::Networks(blocks) => match pod.ip {
                Some(ip) => blocks.iter().any(|b| b.contains(ip)),
                None if self.action == Action::Deny => cidr::covers(blocks, pod.ranges),
                None => blocks
                    .iter()
                    .any(|b| cidr::overlaps_outside(b, &[], pod.ranges)),
            },
        }
    }

    /// The namespaces whose every pod-network pod of unknown address in `ranges` the
    /// rule matches on every port (first), and those where it may match some pod or
    /// port (second). `matching` gives the namespaces a selector matches.
    pub fn spread(
        &self,
        ranges: &[Cidr],
        matching: &dyn Fn(&LabelSelector) -> Vec<usize>,
    ) -> (Reach, Reach) {
        let (mut full, mut partial) = (Reach::none(), Reach::none());
        if self.ports.is_empty() {
            return (full, partial);
        }
        for peer in &self.peers {
            match &peer.kind {
                PeerKind::Everything => full = Reach::All,
                PeerKind::Nothing => {}
                PeerKind::Namespaces(s) => {
                    full.union_with(&Reach::Some(matching(s).into_iter().collect()))
                }
                PeerKind::Pods(pods) => {
                    let at = Reach::Some(matching(&pods.namespace_selector).into_iter().collect());
                    if is_empty_selector(&pods.pod_selector) {
                        full.union_with(&at);
                    } else {
                        partial.union_with(&at);
                    }
                }
                PeerKind::Networks(blocks) => {
                    if cidr::covers(blocks, ranges) {
                        full = Reach::All;
                    } else if self.action != Action::Deny
                        && blocks
                            .iter()
                            .any(|b| cidr::overlaps_outside(b, &[], ranges))
                    {
                        partial = Reach::All;
                    }
                }
            }
        }
        if !self.ports.is_all() {
            partial.union_with(&full);
            full = Reach::none();
        }
        (full, partial)
    }
}

fn is_empty_selector(s: &LabelSelector) -> bool {
    s.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && s.match_expressions.as_ref().is_none_or(|e| e.is_empty())
}

fn fail_closed(action: Action, what: &str) -> Peer {
    match action {
        Action::Accept => Peer {
            kind: PeerKind::Nothing,
            text: format!("{what}; fail closed: matches nothing").into(),
        },
        Action::Deny | Action::Pass => Peer {
            kind: PeerKind::Everything,
            text: format!("{what}; fail closed: matches everything").into(),
        },
    }
}

/// The peers one peer entry makes: one per field it sets that its direction has, or a
/// failing-closed one when it sets none.
fn compile_peer(peer: &PeerSpec, action: Action, ingress: bool) -> Vec<Peer> {
    let mut out = Vec::new();
    if let Some(s) = &peer.namespaces {
        out.push(Peer {
            kind: PeerKind::Namespaces(s.clone()),
            text: format!("namespaces {}", selector::describe(s)).into(),
        });
    }
    if let Some(p) = &peer.pods {
        out.push(Peer {
            kind: PeerKind::Pods(p.clone()),
            text: format!(
                "pods {} in namespaces {}",
                selector::describe(&p.pod_selector),
                selector::describe(&p.namespace_selector)
            )
            .into(),
        });
    }
    if !ingress {
        if !peer.networks.is_empty() {
            let parsed: Vec<Option<Cidr>> = peer.networks.iter().map(|n| n.parse().ok()).collect();
            let text = format!("networks {}", peer.networks.join(", "));
            if parsed.iter().any(Option::is_none) && action != Action::Accept {
                out.push(fail_closed(
                    action,
                    &format!("{text} (a CIDR does not parse)"),
                ));
            } else {
                out.push(Peer {
                    kind: PeerKind::Networks(parsed.into_iter().flatten().collect()),
                    text: text.into(),
                });
            }
        }
        if let Some(s) = &peer.nodes {
            out.push(Peer {
                kind: PeerKind::Nothing,
                text: format!("nodes {} (no pod)", selector::describe(s)).into(),
            });
        }
        if !peer.domain_names.is_empty() {
            out.push(Peer {
                kind: PeerKind::Nothing,
                text: format!("domainNames {} (no pod)", peer.domain_names.join(", ")).into(),
            });
        }
    }
    if out.is_empty() {
        out.push(fail_closed(action, "a peer with no field set"));
    }
    out
}

/// The ports of a rule's `protocols`: none means every port.
fn compile_protocols(protocols: &[ProtocolMatch], action: Action) -> PortSet {
    if protocols.is_empty() {
        return PortSet::all();
    }
    let mut set = PortSet::none();
    for entry in protocols {
        let by_protocol = [
            (Protocol::Tcp, &entry.tcp),
            (Protocol::Udp, &entry.udp),
            (Protocol::Sctp, &entry.sctp),
        ];
        let mut readable = false;
        for (protocol, port) in by_protocol {
            let Some(port) = port else { continue };
            readable = true;
            match port_range(port) {
                Some((first, last)) => set.add(protocol, first, last),
                None if action == Action::Accept => {}
                None => set.add_protocol(protocol),
            }
        }
        if entry.destination_named_port.is_some() {
            readable = true;
            if action != Action::Deny {
                set.union_with(&PortSet::all());
            }
        }
        if !readable && action != Action::Accept {
            set.union_with(&PortSet::all());
        }
    }
    set
}

/// The ports of one protocol's match: no `destinationPort` is every port; `None` when
/// the port sets neither a number nor a range.
fn port_range(port: &PortMatch) -> Option<(u16, u16)> {
    let clamp = |p: i32| p.clamp(MIN_PORT.into(), MAX_PORT.into()) as u16;
    let Some(destination) = &port.destination_port else {
        return Some((MIN_PORT, MAX_PORT));
    };
    if let Some(number) = destination.number {
        return Some((clamp(number), clamp(number)));
    }
    destination.range.as_ref().map(|r| {
        let (first, last) = (r.start.min(r.end), r.start.max(r.end));
        (clamp(first), clamp(last))
    })
}
