//! The NetworkPolicy evaluator: given namespaces with their labels and the
//! `networking.k8s.io/v1` NetworkPolicies in them, what one pod may send to another.
//!
//! The rules, as the Kubernetes documentation of NetworkPolicy states them:
//! - A pod that no policy selects for a direction is not isolated in that direction:
//!   everything is allowed there. A policy selects the pods of its own namespace that
//!   its `podSelector` matches; the empty selector selects every pod there.
//! - A policy restricts the directions in `policyTypes`; without `policyTypes` (or with
//!   an empty list) it restricts ingress, and egress too when it has egress rules.
//! - Once isolated, a pod allows what at least one rule of at least one policy selecting
//!   it allows (the union). A policy in `policyTypes` with no rule allows nothing.
//! - A rule allows when a peer matches and the port matches. A rule without `from` (or
//!   `to`), or with an empty list, matches every peer; without `ports` every port.
//! - A peer with `podSelector` alone means pods of the policy's own namespace; with
//!   `namespaceSelector` alone every pod of the matching namespaces; with both, pods
//!   matching the pod selector *in* namespaces matching the namespace selector. Two
//!   peers in a list are either one.
//! - A port without `protocol` is TCP; `endPort` makes a range; a named port (`http`)
//!   is resolved by the destination pod's container ports, which the evaluator does not
//!   know, so it is taken to be any port of its protocol (conservative: it can only
//!   find more paths, never fewer).
//! - Traffic flows only when the source's egress and the destination's ingress both
//!   allow it.
//!
//! `ipBlock` and pods: the documentation says ipBlocks are meant for addresses outside
//! the cluster, and whether a plugin applies them to pod addresses varies. The evaluator
//! assumes it may: a pod whose address is not given is taken to have some address in
//! the pod ranges it is told (default: the private ranges), and an ipBlock matches it
//! when some address of the block outside its `except` ranges lies in those ranges.
//! With a pod address given, the block matches exactly. An ipBlock whose `cidr` does not
//! parse matches every pod; an `except` that does not parse is ignored (both refused by
//! the apiserver, and both read so as to find more paths).
//!
//! Traffic from the pod's own node, reply traffic and host-network pods are outside
//! NetworkPolicy and outside this evaluator.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use serde::Serialize;

use super::ports::{MAX_PORT, MIN_PORT, PortSet};
use super::selector::{self, Labels};
use crate::api::{LABEL_NAMESPACE_NAME, Protocol};
use crate::cidr::{self, Cidr};

/// A pod as the evaluator sees it: its namespace, its labels, and its address if known.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pod {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's labels.
    pub labels: Labels,
    /// The pod's address; unknown means somewhere in the pod ranges.
    pub ip: Option<IpAddr>,
}

impl Pod {
    /// A pod in `namespace` with these labels and no known address.
    pub fn new(namespace: &str, labels: &[(&str, &str)]) -> Self {
        Pod {
            namespace: namespace.to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ip: None,
        }
    }

    /// The same pod with a known address.
    pub fn with_ip(mut self, ip: IpAddr) -> Self {
        self.ip = Some(ip);
        self
    }
}

/// One connection attempt: from a pod to a pod, on a port and protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The pod that opens the connection.
    pub from: Pod,
    /// The pod it connects to.
    pub to: Pod,
    /// The destination port.
    pub port: u16,
    /// The protocol.
    pub protocol: Protocol,
}

/// A direction of traffic as seen from the pod a policy selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Direction {
    /// Traffic into the pod.
    Ingress,
    /// Traffic out of the pod.
    Egress,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "Ingress",
            Direction::Egress => "Egress",
        }
    }
}

/// A NetworkPolicy by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PolicyRef {
    /// The policy's namespace.
    pub namespace: String,
    /// The policy's name.
    pub name: String,
}

/// `namespace/name`.
impl fmt::Display for PolicyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What one rule of one policy allows a pod to exchange with one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The policy.
    pub policy: Arc<PolicyRef>,
    /// Ingress or egress.
    pub direction: Direction,
    /// Index of the rule in the policy's `ingress` or `egress` list (0-based).
    pub rule: usize,
    /// The peer of the rule that matched, as text; `None` when the rule has no peer
    /// list and so matches every peer.
    pub peer: Option<Arc<str>>,
    /// The ports the rule allows.
    pub ports: PortSet,
}

/// `ns/name ingress rule 1 (peer namespaceSelector {...}; TCP 443)`.
impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let every = match self.direction {
            Direction::Ingress => "every source",
            Direction::Egress => "every destination",
        };
        write!(
            f,
            "{} {} rule {} (peer {}; {})",
            self.policy,
            self.direction.as_str().to_lowercase(),
            self.rule + 1,
            self.peer.as_deref().unwrap_or(every),
            self.ports
        )
    }
}

/// How the policies of one pod treat traffic with one peer in one direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Side {
    /// No policy selects the pod for this direction: everything is allowed.
    Unrestricted,
    /// These policies select the pod; these grants (maybe none) allow traffic.
    Restricted {
        /// The policies that select the pod for this direction.
        policies: Vec<Arc<PolicyRef>>,
        /// What their rules allow with this peer.
        grants: Vec<Grant>,
    },
}

impl Side {
    /// Every port this side allows.
    pub fn ports(&self) -> PortSet {
        match self {
            Side::Unrestricted => PortSet::all(),
            Side::Restricted { grants, .. } => {
                let mut ports = PortSet::none();
                for grant in grants {
                    ports.union_with(&grant.ports);
                }
                ports
            }
        }
    }

    /// The grants that allow some port of `ports`.
    pub fn grants_within<'a>(&'a self, ports: &'a PortSet) -> impl Iterator<Item = &'a Grant> {
        let grants: &[Grant] = match self {
            Side::Unrestricted => &[],
            Side::Restricted { grants, .. } => grants,
        };
        grants
            .iter()
            .filter(move |g| !g.ports.intersect(ports).is_empty())
    }
}

/// How one side decided one probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No policy selects the pod for this direction.
    Unrestricted,
    /// This grant allows it.
    Allowed(Grant),
    /// These policies select the pod and none allows it.
    Denied(Vec<Arc<PolicyRef>>),
}

impl Decision {
    /// Whether traffic passes this side.
    pub fn allows(&self) -> bool {
        !matches!(self, Decision::Denied(_))
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Unrestricted => f.write_str("no policy selects the pod"),
            Decision::Allowed(grant) => write!(f, "allowed by {grant}"),
            Decision::Denied(policies) => {
                let names: Vec<String> = policies.iter().map(|p| p.to_string()).collect();
                write!(f, "denied: no rule of {} allows it", names.join(", "))
            }
        }
    }
}

/// The outcome of a probe: each side's decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The source pod's egress.
    pub egress: Decision,
    /// The destination pod's ingress.
    pub ingress: Decision,
}

impl Verdict {
    /// Whether the connection is allowed: both sides allow it.
    pub fn allowed(&self) -> bool {
        self.egress.allows() && self.ingress.allows()
    }
}

/// `allowed (egress: ...; ingress: ...)` or `denied (...)`.
impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let outcome = if self.allowed() { "allowed" } else { "denied" };
        write!(
            f,
            "{outcome} (egress: {}; ingress: {})",
            self.egress, self.ingress
        )
    }
}

/// Which namespaces may hold a peer that a pod's policies allow in one direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reach {
    /// Any namespace.
    All,
    /// Only these (by index in the [`Network`]).
    Some(BTreeSet<usize>),
}

/// A peer of a rule, ready to match.
#[derive(Clone, Debug)]
enum PeerKind {
    /// Matches every pod (a peer that sets no field, which the apiserver refuses).
    Everything,
    /// Pods by selectors; no namespace selector means the policy's own namespace, no
    /// pod selector every pod.
    Pods {
        namespaces: Option<LabelSelector>,
        pods: Option<LabelSelector>,
    },
    /// An address block; `None` when the cidr does not parse.
    Block {
        cidr: Option<Cidr>,
        except: Vec<Cidr>,
    },
}

#[derive(Clone, Debug)]
struct Peer {
    kind: PeerKind,
    text: Arc<str>,
}

#[derive(Clone, Debug)]
struct Rule {
    /// Empty: every peer.
    peers: Vec<Peer>,
    ports: PortSet,
}

#[derive(Clone, Debug)]
struct Compiled {
    id: Arc<PolicyRef>,
    selects: LabelSelector,
    ingress: Option<Vec<Rule>>,
    egress: Option<Vec<Rule>>,
}

impl Compiled {
    fn rules(&self, direction: Direction) -> Option<&[Rule]> {
        match direction {
            Direction::Ingress => self.ingress.as_deref(),
            Direction::Egress => self.egress.as_deref(),
        }
    }
}

/// Namespaces, their labels and policies, compiled for evaluation.
#[derive(Clone, Debug, Default)]
pub struct Network {
    names: Vec<String>,
    labels: Vec<Labels>,
    by_name: HashMap<String, usize>,
    /// label key -> value -> namespaces carrying it.
    index: HashMap<String, HashMap<String, Vec<usize>>>,
    policies: Vec<Vec<Compiled>>,
    classes: Vec<Vec<Labels>>,
    pod_ranges: Vec<Cidr>,
}

impl Network {
    /// Compiles namespaces (name and labels) and policies. A policy in a namespace not
    /// listed adds that namespace, without labels. `pod_ranges` are where pods may have
    /// their addresses (empty: anywhere).
    pub fn new<'a>(
        namespaces: impl IntoIterator<Item = (String, Labels)>,
        policies: impl IntoIterator<Item = &'a NetworkPolicy>,
        pod_ranges: &[Cidr],
    ) -> Self {
        let mut network = Network {
            pod_ranges: if pod_ranges.is_empty() {
                vec![Cidr::ALL_V4, Cidr::ALL_V6]
            } else {
                pod_ranges.to_vec()
            },
            ..Default::default()
        };
        for (name, labels) in namespaces {
            network.add_namespace(name, labels);
        }
        for policy in policies {
            let ns = policy.namespace().unwrap_or_default();
            let at = match network.by_name.get(&ns) {
                Some(&at) => at,
                None => network.add_namespace(ns, Labels::new()),
            };
            network.policies[at].push(compile(policy));
        }
        // By name, so that reports read the same whatever order the policies came in.
        for policies in &mut network.policies {
            policies.sort_by(|a, b| a.id.name.cmp(&b.id.name));
        }
        network.classes = (0..network.names.len())
            .map(|_| vec![Labels::new()])
            .collect();
        network.find_classes();
        network
    }

    /// Adds a namespace with its labels, and `kubernetes.io/metadata.name` set to its
    /// name whatever the labels say, as the apiserver sets it on every namespace.
    fn add_namespace(&mut self, name: String, mut labels: Labels) -> usize {
        labels.insert(LABEL_NAMESPACE_NAME.to_string(), name.clone());
        if let Some(&at) = self.by_name.get(&name) {
            self.labels[at] = labels;
            return at;
        }
        let at = self.names.len();
        for (key, value) in &labels {
            self.index
                .entry(key.clone())
                .or_default()
                .entry(value.clone())
                .or_default()
                .push(at);
        }
        self.by_name.insert(name.clone(), at);
        self.names.push(name);
        self.labels.push(labels);
        self.policies.push(Vec::new());
        at
    }

    /// The pods each namespace is probed with: one without labels, one for every
    /// selector that the policies apply to pods there (a label set it matches), and,
    /// when there are several, one carrying all of those labels at once.
    fn find_classes(&mut self) {
        let mut found: Vec<BTreeSet<Labels>> = vec![BTreeSet::new(); self.names.len()];
        for (at, policies) in self.policies.iter().enumerate() {
            for policy in policies {
                found[at].extend(selector::witness(&policy.selects));
                let rules = policy.ingress.iter().chain(&policy.egress).flatten();
                for peer in rules.flat_map(|r| &r.peers) {
                    let PeerKind::Pods {
                        namespaces,
                        pods: Some(pods),
                    } = &peer.kind
                    else {
                        continue;
                    };
                    let Some(witness) = selector::witness(pods) else {
                        continue;
                    };
                    match namespaces {
                        None => {
                            found[at].insert(witness);
                        }
                        Some(ns_selector) => {
                            for other in self.namespaces_matching(ns_selector) {
                                found[other].insert(witness.clone());
                            }
                        }
                    }
                }
            }
        }
        for (at, witnesses) in found.into_iter().enumerate() {
            let mut merged = Labels::new();
            for witness in &witnesses {
                for (key, value) in witness {
                    merged.entry(key.clone()).or_insert_with(|| value.clone());
                }
            }
            let mut classes: BTreeSet<Labels> = witnesses;
            classes.insert(Labels::new());
            classes.insert(merged);
            self.classes[at] = classes.into_iter().collect();
        }
    }

    /// The index of a namespace.
    pub fn namespace_index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The name of the namespace at `index`.
    pub fn namespace_name(&self, index: usize) -> &str {
        &self.names[index]
    }

    /// The pod label sets a namespace is probed with (the first is the unlabelled pod).
    pub fn pod_classes(&self, namespace: &str) -> &[Labels] {
        match self.by_name.get(namespace) {
            Some(&at) => &self.classes[at],
            None => &[],
        }
    }

    fn namespace_labels(&self, name: &str) -> Option<&Labels> {
        self.by_name.get(name).map(|&at| &self.labels[at])
    }

    /// The namespaces `selector` matches, found through the label index when the
    /// selector names a label they must carry.
    fn namespaces_matching(&self, selector: &LabelSelector) -> Vec<usize> {
        let candidates: Vec<usize> = match selector::anchor(selector) {
            None => (0..self.names.len()).collect(),
            Some((key, values)) => match self.index.get(key) {
                None => Vec::new(),
                Some(by_value) => match values {
                    None => by_value.values().flatten().copied().collect(),
                    Some(values) => values
                        .iter()
                        .filter_map(|v| by_value.get(*v))
                        .flatten()
                        .copied()
                        .collect(),
                },
            },
        };
        candidates
            .into_iter()
            .filter(|&at| selector::matches(selector, &self.labels[at]))
            .collect()
    }

    fn selecting<'a>(
        &'a self,
        direction: Direction,
        pod: &'a Pod,
    ) -> impl Iterator<Item = (&'a Compiled, &'a [Rule])> + 'a {
        let policies: &[Compiled] = match self.by_name.get(&pod.namespace) {
            Some(&at) => &self.policies[at],
            None => &[],
        };
        policies.iter().filter_map(move |p| {
            let rules = p.rules(direction)?;
            selector::matches(&p.selects, &pod.labels).then_some((p, rules))
        })
    }

    /// How the policies of `pod` treat traffic with `peer` in `direction` (for ingress
    /// the peer is the source, for egress the destination).
    pub fn side(&self, direction: Direction, pod: &Pod, peer: &Pod) -> Side {
        let mut policies = Vec::new();
        let mut grants = Vec::new();
        for (policy, rules) in self.selecting(direction, pod) {
            policies.push(policy.id.clone());
            for (index, rule) in rules.iter().enumerate() {
                if rule.ports.is_empty() {
                    continue;
                }
                let matched = if rule.peers.is_empty() {
                    Some(None)
                } else {
                    rule.peers
                        .iter()
                        .find(|p| self.peer_matches(p, &policy.id.namespace, peer))
                        .map(|p| Some(p.text.clone()))
                };
                if let Some(peer_text) = matched {
                    grants.push(Grant {
                        policy: policy.id.clone(),
                        direction,
                        rule: index,
                        peer: peer_text,
                        ports: rule.ports.clone(),
                    });
                }
            }
        }
        if policies.is_empty() {
            Side::Unrestricted
        } else {
            Side::Restricted { policies, grants }
        }
    }

    fn peer_matches(&self, peer: &Peer, policy_namespace: &str, pod: &Pod) -> bool {
        match &peer.kind {
            PeerKind::Everything => true,
            PeerKind::Pods { namespaces, pods } => {
                let in_scope = match namespaces {
                    None => pod.namespace == policy_namespace,
                    Some(selector) => {
                        let empty = Labels::new();
                        let labels = self.namespace_labels(&pod.namespace).unwrap_or(&empty);
                        selector::matches(selector, labels)
                    }
                };
                in_scope
                    && pods
                        .as_ref()
                        .is_none_or(|s| selector::matches(s, &pod.labels))
            }
            PeerKind::Block { cidr: None, .. } => true,
            PeerKind::Block {
                cidr: Some(block),
                except,
            } => match pod.ip {
                Some(ip) => block.contains(ip) && !except.iter().any(|e| e.contains(ip)),
                None => cidr::overlaps_outside(block, except, &self.pod_ranges),
            },
        }
    }

    /// The namespaces whose pods the policies of `pod` may allow as peers in
    /// `direction`: every namespace when no policy selects the pod, or a rule matches
    /// every peer, or an ipBlock may hold pods; else those its selectors match.
    pub fn reach(&self, direction: Direction, pod: &Pod) -> Reach {
        let mut out = BTreeSet::new();
        let mut restricted = false;
        for (policy, rules) in self.selecting(direction, pod) {
            restricted = true;
            for rule in rules.iter().filter(|r| !r.ports.is_empty()) {
                if rule.peers.is_empty() {
                    return Reach::All;
                }
                for peer in &rule.peers {
                    match &peer.kind {
                        PeerKind::Pods {
                            namespaces: None, ..
                        } => {
                            out.extend(self.namespace_index(&policy.id.namespace));
                        }
                        PeerKind::Pods {
                            namespaces: Some(selector),
                            ..
                        } => out.extend(self.namespaces_matching(selector)),
                        _ => {
                            if self.peer_matches(peer, &policy.id.namespace, &Pod::default()) {
                                return Reach::All;
                            }
                        }
                    }
                }
            }
        }
        if restricted {
            Reach::Some(out)
        } else {
            Reach::All
        }
    }

    /// Decides one probe: the source's egress and the destination's ingress, each
    /// with the grant that allows it or the policies that deny it.
    pub fn check(&self, probe: &Probe) -> Verdict {
        let decide = |side: Side| match side {
            Side::Unrestricted => Decision::Unrestricted,
            Side::Restricted { policies, grants } => grants
                .into_iter()
                .find(|g| g.ports.contains(probe.protocol, probe.port))
                .map(Decision::Allowed)
                .unwrap_or(Decision::Denied(policies)),
        };
        Verdict {
            egress: decide(self.side(Direction::Egress, &probe.from, &probe.to)),
            ingress: decide(self.side(Direction::Ingress, &probe.to, &probe.from)),
        }
    }
}

/// The directions a policy restricts: `policyTypes` when set and not empty, else
/// Ingress, plus Egress when it has egress rules (the apiserver's default).
fn restricts(policy: &NetworkPolicy, direction: Direction) -> bool {
    let spec = policy.spec.as_ref();
    match spec
        .and_then(|s| s.policy_types.as_ref())
        .filter(|t| !t.is_empty())
    {
        Some(types) => types.iter().any(|t| t == direction.as_str()),
        None => match direction {
            Direction::Ingress => true,
            Direction::Egress => spec
                .and_then(|s| s.egress.as_ref())
                .is_some_and(|e| !e.is_empty()),
        },
    }
}

fn compile(policy: &NetworkPolicy) -> Compiled {
    let spec = policy.spec.as_ref();
    let namespace = policy.namespace().unwrap_or_default();
    let rule =
        |peers: &Option<Vec<NetworkPolicyPeer>>, ports: &Option<Vec<NetworkPolicyPort>>| Rule {
            peers: peers
                .iter()
                .flatten()
                .map(|p| compile_peer(p, &namespace))
                .collect(),
            ports: compile_ports(ports.as_deref().unwrap_or_default()),
        };
    let ingress = restricts(policy, Direction::Ingress).then(|| {
        let rules = spec.and_then(|s| s.ingress.as_ref());
        rules
            .iter()
            .flat_map(|r| r.iter())
            .map(|r| rule(&r.from, &r.ports))
            .collect()
    });
    let egress = restricts(policy, Direction::Egress).then(|| {
        let rules = spec.and_then(|s| s.egress.as_ref());
        rules
            .iter()
            .flat_map(|r| r.iter())
            .map(|r| rule(&r.to, &r.ports))
            .collect()
    });
    Compiled {
        id: Arc::new(PolicyRef {
            namespace: namespace.clone(),
            name: policy.name_any(),
        }),
        selects: spec
            .and_then(|s| s.pod_selector.clone())
            .unwrap_or_default(),
        ingress,
        egress,
    }
}

fn compile_peer(peer: &NetworkPolicyPeer, namespace: &str) -> Peer {
    if let Some(block) = &peer.ip_block {
        let except: Vec<String> = block.except.clone().unwrap_or_default();
        let text = if except.is_empty() {
            format!("ipBlock {}", block.cidr)
        } else {
            format!("ipBlock {} except {}", block.cidr, except.join(", "))
        };
        return Peer {
            kind: PeerKind::Block {
                cidr: block.cidr.parse().ok(),
                except: except.iter().filter_map(|e| e.parse().ok()).collect(),
            },
            text: text.into(),
        };
    }
    let (namespaces, pods) = (&peer.namespace_selector, &peer.pod_selector);
    let text = match (namespaces, pods) {
        (None, None) => {
            return Peer {
                kind: PeerKind::Everything,
                text: "an empty peer (matches everything)".into(),
            };
        }
        (None, Some(p)) => format!("podSelector {} in {namespace}", selector::describe(p)),
        (Some(n), None) => format!("namespaceSelector {}", selector::describe(n)),
        (Some(n), Some(p)) => format!(
            "namespaceSelector {} and podSelector {}",
            selector::describe(n),
            selector::describe(p)
        ),
    };
    Peer {
        kind: PeerKind::Pods {
            namespaces: namespaces.clone(),
            pods: pods.clone(),
        },
        text: text.into(),
    }
}

/// The ports of a rule: none listed means every port.
fn compile_ports(ports: &[NetworkPolicyPort]) -> PortSet {
    if ports.is_empty() {
        return PortSet::all();
    }
    let mut set = PortSet::none();
    for port in ports {
        let protocols: &[Protocol] = match port.protocol.as_deref() {
            None | Some("TCP") => &[Protocol::Tcp],
            Some("UDP") => &[Protocol::Udp],
            Some("SCTP") => &[Protocol::Sctp],
            // Refused by the apiserver; read as every protocol.
            Some(_) => &[Protocol::Tcp, Protocol::Udp, Protocol::Sctp],
        };
        let range = match &port.port {
            None | Some(IntOrString::String(_)) => (MIN_PORT, MAX_PORT),
            Some(IntOrString::Int(first)) => {
                let clamp = |p: i32| p.clamp(MIN_PORT.into(), MAX_PORT.into()) as u16;
                let last = port.end_port.unwrap_or(*first).max(*first);
                (clamp(*first), clamp(last))
            }
        };
        for &protocol in protocols {
            set.add(protocol, range.0, range.1);
        }
    }
    set
}
