//! The evaluator: given namespaces with their labels, the `networking.k8s.io/v1`
//! NetworkPolicies in them and the ClusterNetworkPolicies of the cluster, what one pod
//! may send to another.
//!
//! The tiers, in the order the ClusterNetworkPolicy API states (each policy's own rules
//! are in [`super::tiers`]):
//! - First the Admin ClusterNetworkPolicies that select the pod, then the NetworkPolicy
//!   tier, then the Baseline ClusterNetworkPolicies, then the Kubernetes default, which
//!   allows. In a ClusterNetworkPolicy tier the first rule that matches decides: Accept
//!   and Deny finally, Pass sends the traffic on to the next tier; what no rule of the
//!   tier matches goes on too.
//! - The NetworkPolicy tier decides finally for a pod some NetworkPolicy selects for the
//!   direction (allowed when one of their rules allows, else denied), also after an
//!   Admin Pass; for any other pod it passes everything on to the Baseline tier.
//! - Each direction is evaluated on its own: an egress Accept lets the traffic out of
//!   the source, and the destination's ingress still decides whether it gets in.
//! - This is done port by port: per pod, peer and direction, the ports an earlier rule
//!   matched are decided, and each rule decides, out of the ports still open, those it
//!   matches.
//! - What the API leaves out: a pod's traffic to itself is always allowed (the same pod:
//!   equal namespace, labels and a known address; a pod without address stands for any
//!   pod with those labels); host-network pods are never a subject nor matched by a
//!   `namespaces` or `pods` peer (they may match `networks` by address).
//!
//! NetworkPolicies, as the Kubernetes documentation states them:
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
//! Host-network pods: how NetworkPolicy treats them is left to the plugin. The evaluator
//! takes the reading that finds more paths: no NetworkPolicy isolates a host-network
//! pod (what most plugins do, seeing its traffic as its node's), and NetworkPolicy peers
//! match it as any pod (what plugins that tell such pods apart do); a host-network pod
//! without a given address may have any address. Traffic from the pod's own node and
//! reply traffic are outside this evaluator.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use serde::Serialize;

pub use super::tiers::{ClusterPolicyRef, Reach};

use super::ports::{MAX_PORT, MIN_PORT, PortSet};
use super::selector::{self, Labels};
use super::tiers::{ClusterPolicy, ClusterRule, Target};
use crate::api::cluster_network_policy::{Action, Tier};
use crate::api::{ClusterNetworkPolicy, LABEL_NAMESPACE_NAME, Protocol};
use crate::cidr::{self, Cidr};

/// Every address: where a host-network pod of unknown address may be.
const ANYWHERE: [Cidr; 2] = [Cidr::ALL_V4, Cidr::ALL_V6];

/// The labels of a namespace the network does not know.
static NO_LABELS: Labels = Labels::new();

/// A pod as the evaluator sees it: its namespace, its labels, its address if known, and
/// whether it runs on its node's network.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pod {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's labels.
    pub labels: Labels,
    /// The pod's address; unknown means somewhere in the pod ranges (for a host-network
    /// pod: anywhere).
    pub ip: Option<IpAddr>,
    /// Whether the pod uses its node's network (`hostNetwork: true`).
    pub host_network: bool,
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
            host_network: false,
        }
    }

    /// The same pod with a known address.
    pub fn with_ip(mut self, ip: IpAddr) -> Self {
        self.ip = Some(ip);
        self
    }

    /// The same pod on its node's network.
    pub fn with_host_network(mut self) -> Self {
        self.host_network = true;
        self
    }

    /// Whether `other` is this very pod: equal, with a known address.
    fn is_same(&self, other: &Pod) -> bool {
        self.ip.is_some() && self == other
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

/// A policy of any tier: a NetworkPolicy or a ClusterNetworkPolicy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyId {
    /// A `networking.k8s.io/v1` NetworkPolicy.
    NetworkPolicy(PolicyRef),
    /// A ClusterNetworkPolicy, with its tier and priority.
    Cluster(ClusterPolicyRef),
}

/// `ns/name`, or `ClusterNetworkPolicy name (Admin, priority 100)`.
impl fmt::Display for PolicyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyId::NetworkPolicy(p) => p.fmt(f),
            PolicyId::Cluster(c) => c.fmt(f),
        }
    }
}

/// One rule of one policy that matched a peer, and the ports it decided there: a
/// NetworkPolicy rule allows them (its action reads Accept); a ClusterNetworkPolicy
/// rule accepts, denies or passes them on to the next tier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The policy.
    pub policy: Arc<PolicyId>,
    /// Ingress or egress.
    pub direction: Direction,
    /// Index of the rule in the policy's `ingress` or `egress` list (0-based).
    pub rule: usize,
    /// The rule's `name` (ClusterNetworkPolicy rules may have one).
    pub name: Option<Arc<str>>,
    /// What the rule does: Accept for a NetworkPolicy rule.
    pub action: Action,
    /// The peer of the rule that matched, as text; `None` when the rule has no peer
    /// list and so matches every peer.
    pub peer: Option<Arc<str>>,
    /// The ports the rule decides: those it matches that no earlier rule or tier took.
    pub ports: PortSet,
}

/// `ns/name ingress rule 1 (peer namespaceSelector {...}; TCP 443)`, or
/// `ClusterNetworkPolicy x (Admin, priority 100) ingress rule 3 "deny-rest" (peer
/// namespaces {}; all ports)`.
impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let every = match self.direction {
            Direction::Ingress => "every source",
            Direction::Egress => "every destination",
        };
        let name = self
            .name
            .as_deref()
            .map(|n| format!(" {n:?}"))
            .unwrap_or_default();
        write!(
            f,
            "{} {} rule {}{name} (peer {}; {})",
            self.policy,
            self.direction.as_str().to_lowercase(),
            self.rule + 1,
            self.peer.as_deref().unwrap_or(every),
            self.ports
        )
    }
}

/// What decided some ports of one side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum By {
    /// The pod's traffic to itself, always allowed.
    Itself,
    /// A rule: of a ClusterNetworkPolicy (Accept, Deny, or Pass on to the next tier),
    /// or of a NetworkPolicy (it allows).
    Rule(Grant),
    /// These NetworkPolicies select the pod and no rule of theirs allows it.
    NoRuleAllows(Vec<Arc<PolicyRef>>),
    /// No tier decided: the Kubernetes default allows it.
    Default,
}

/// Some ports of one side and what decided them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The ports.
    pub ports: PortSet,
    /// What decided them.
    pub by: By,
}

impl Step {
    /// Whether the step lets its ports through; a Pass decides nothing.
    pub fn allows(&self) -> bool {
        match &self.by {
            By::Itself | By::Default => true,
            By::Rule(grant) => grant.action == Action::Accept,
            By::NoRuleAllows(_) => false,
        }
    }
}

/// How the policies of every tier treat one pod's traffic with one peer in one
/// direction, port by port.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Side {
    /// The policies that select the pod for this direction, in the order of evaluation.
    pub policies: Vec<Arc<PolicyId>>,
    /// What decided which ports, in the order of evaluation. A port is decided by the
    /// first step holding it that is not a Pass; a Pass step's ports are decided by a
    /// later tier's. The grants of the NetworkPolicy tier may overlap each other (their
    /// union allows).
    pub steps: Vec<Step>,
}

impl Side {
    /// Every port this side allows.
    pub fn ports(&self) -> PortSet {
        let mut ports = PortSet::none();
        for step in self.steps.iter().filter(|s| s.allows()) {
            ports.union_with(&step.ports);
        }
        ports
    }

    /// Whether no policy of any tier selects the pod for this direction.
    pub fn is_unrestricted(&self) -> bool {
        self.policies.is_empty()
    }

    /// The rules that allow some port of `ports`: NetworkPolicy grants and
    /// ClusterNetworkPolicy Accept rules.
    pub fn grants_within<'a>(&'a self, ports: &'a PortSet) -> impl Iterator<Item = &'a Grant> {
        self.steps_within(ports).filter_map(|s| match &s.by {
            By::Rule(grant) if grant.action == Action::Accept => Some(grant),
            _ => None,
        })
    }

    /// The steps that decide (or pass on) some port of `ports`.
    pub fn steps_within<'a>(&'a self, ports: &'a PortSet) -> impl Iterator<Item = &'a Step> {
        self.steps
            .iter()
            .filter(move |s| !s.ports.intersect(ports).is_empty())
    }

    /// How this side decides one port.
    pub fn decide(&self, protocol: Protocol, port: u16) -> Decision {
        let mut passed = Vec::new();
        for step in self
            .steps
            .iter()
            .filter(|s| s.ports.contains(protocol, port))
        {
            return match &step.by {
                By::Itself => Decision::Itself,
                By::Rule(grant) => match grant.action {
                    Action::Accept => Decision::Allowed(grant.clone()),
                    Action::Deny => Decision::DeniedBy(grant.clone()),
                    Action::Pass => {
                        passed.push(grant.clone());
                        continue;
                    }
                },
                By::NoRuleAllows(policies) => Decision::Denied(policies.clone()),
                By::Default if self.is_unrestricted() => Decision::Unrestricted,
                By::Default => Decision::Default(passed),
            };
        }
        Decision::Default(passed)
    }
}

/// How one side decided one probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No policy of any tier selects the pod for this direction.
    Unrestricted,
    /// This rule allows it: a NetworkPolicy grant or a ClusterNetworkPolicy Accept.
    Allowed(Grant),
    /// These NetworkPolicies select the pod and none allows it.
    Denied(Vec<Arc<PolicyRef>>),
    /// This ClusterNetworkPolicy Deny rule denies it.
    DeniedBy(Grant),
    /// Policies select the pod and no tier decides: the Kubernetes default allows it,
    /// after these Pass rules (maybe none) sent it on.
    Default(Vec<Grant>),
    /// The pod's traffic to itself.
    Itself,
}

impl Decision {
    /// Whether traffic passes this side.
    pub fn allows(&self) -> bool {
        !matches!(self, Decision::Denied(_) | Decision::DeniedBy(_))
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
            Decision::DeniedBy(grant) => write!(f, "denied by {grant}"),
            Decision::Default(passed) if passed.is_empty() => {
                f.write_str("no rule of any tier decides it: the Kubernetes default allows it")
            }
            Decision::Default(passed) => {
                let names: Vec<String> = passed.iter().map(|g| g.to_string()).collect();
                write!(
                    f,
                    "passed on by {}, and no later tier decides it: the Kubernetes default allows it",
                    names.join(", then ")
                )
            }
            Decision::Itself => f.write_str("a pod's traffic to itself"),
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
    key: Arc<PolicyId>,
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
    /// The ClusterNetworkPolicies, by tier, priority and name.
    cluster: Vec<ClusterPolicy>,
    /// The id of each of `cluster`, as reports name it.
    cluster_keys: Vec<Arc<PolicyId>>,
    /// Per namespace, the ClusterNetworkPolicies whose subject may select pods there
    /// (indexes into `cluster`, in its order).
    cluster_at: Vec<Vec<usize>>,
    classes: Vec<Vec<Labels>>,
    pod_ranges: Vec<Cidr>,
}

impl Network {
    /// Compiles namespaces (name and labels) and NetworkPolicies. A policy in a
    /// namespace not listed adds that namespace, without labels. `pod_ranges` are where
    /// pods may have their addresses (empty: anywhere). ClusterNetworkPolicies come with
    /// [`Network::with_cluster_policies`].
    pub fn new<'a>(
        namespaces: impl IntoIterator<Item = (String, Labels)>,
        policies: impl IntoIterator<Item = &'a NetworkPolicy>,
        pod_ranges: &[Cidr],
    ) -> Self {
        let mut network = Network {
            pod_ranges: if pod_ranges.is_empty() {
                ANYWHERE.to_vec()
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
        network.find_classes();
        network
    }

    /// The same network with these ClusterNetworkPolicies (added to any it has): they
    /// select and match the pods of its namespaces. Within a tier they are evaluated by
    /// priority and, for equal priorities (whose order the API leaves undefined), by
    /// name.
    pub fn with_cluster_policies<'a>(
        mut self,
        policies: impl IntoIterator<Item = &'a ClusterNetworkPolicy>,
    ) -> Self {
        self.cluster
            .extend(policies.into_iter().map(ClusterPolicy::compile));
        self.cluster.sort_by(|a, b| a.order().cmp(&b.order()));
        self.cluster_keys = self
            .cluster
            .iter()
            .map(|p| Arc::new(PolicyId::Cluster((*p.id).clone())))
            .collect();
        let mut cluster_at = vec![Vec::new(); self.names.len()];
        for (index, policy) in self.cluster.iter().enumerate() {
            let mut at = BTreeSet::new();
            for namespaces in policy.subject_namespaces() {
                at.extend(self.namespaces_matching(namespaces));
            }
            for namespace in at {
                cluster_at[namespace].push(index);
            }
        }
        self.cluster_at = cluster_at;
        self.find_classes();
        self
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
        self.cluster_at.push(Vec::new());
        at
    }

    /// The pods each namespace is probed with: one without labels, one for every
    /// selector that the policies of any tier apply to pods there (a label set it
    /// matches), and, when there are several, one carrying all of those labels at once.
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
        for policy in &self.cluster {
            for (namespaces, pods) in policy.pod_selectors() {
                let Some(witness) = selector::witness(pods) else {
                    continue;
                };
                for at in self.namespaces_matching(namespaces) {
                    found[at].insert(witness.clone());
                }
            }
        }
        self.classes = found
            .into_iter()
            .map(|witnesses| {
                let mut merged = Labels::new();
                for witness in &witnesses {
                    for (key, value) in witness {
                        merged.entry(key.clone()).or_insert_with(|| value.clone());
                    }
                }
                let mut classes: BTreeSet<Labels> = witnesses;
                classes.insert(Labels::new());
                classes.insert(merged);
                classes.into_iter().collect()
            })
            .collect();
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

    /// Where a pod's address may be when it is not given.
    fn ranges_of(&self, pod: &Pod) -> &[Cidr] {
        if pod.host_network {
            &ANYWHERE
        } else {
            &self.pod_ranges
        }
    }

    /// A pod as the ClusterNetworkPolicies see it.
    fn target<'a>(&'a self, pod: &'a Pod) -> Target<'a> {
        Target {
            namespace_labels: self.namespace_labels(&pod.namespace).unwrap_or(&NO_LABELS),
            labels: &pod.labels,
            host_network: pod.host_network,
            ip: pod.ip,
            ranges: self.ranges_of(pod),
        }
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

    /// The NetworkPolicies that select `pod` for `direction`, with their rules for it;
    /// none for a host-network pod.
    fn selecting<'a>(
        &'a self,
        direction: Direction,
        pod: &'a Pod,
    ) -> impl Iterator<Item = (&'a Compiled, &'a [Rule])> + 'a {
        let policies: &[Compiled] = match self.by_name.get(&pod.namespace) {
            Some(&at) if !pod.host_network => &self.policies[at],
            _ => &[],
        };
        policies.iter().filter_map(move |p| {
            let rules = p.rules(direction)?;
            selector::matches(&p.selects, &pod.labels).then_some((p, rules))
        })
    }

    /// The ClusterNetworkPolicies of `tier` that select `pod` and have rules for
    /// `direction`, in the order of evaluation, with their ids.
    fn cluster_selecting(
        &self,
        tier: Tier,
        direction: Direction,
        pod: &Pod,
    ) -> Vec<(&ClusterPolicy, &Arc<PolicyId>)> {
        let target = self.target(pod);
        let ingress = direction == Direction::Ingress;
        let wanted = |&index: &usize| {
            let policy = &self.cluster[index];
            (policy.id.tier == tier && !policy.rules(ingress).is_empty() && policy.selects(&target))
                .then(|| (policy, &self.cluster_keys[index]))
        };
        match self.by_name.get(&pod.namespace) {
            Some(&at) => self.cluster_at[at].iter().filter_map(wanted).collect(),
            None => (0..self.cluster.len())
                .filter_map(|index| wanted(&index))
                .collect(),
        }
    }

    /// How the policies of every tier treat `pod`'s traffic with `peer` in `direction`
    /// (for ingress the peer is the source, for egress the destination), port by port.
    pub fn side(&self, direction: Direction, pod: &Pod, peer: &Pod) -> Side {
        let mut side = Side::default();
        if pod.is_same(peer) {
            side.steps.push(Step {
                ports: PortSet::all(),
                by: By::Itself,
            });
            return side;
        }
        let open = self.cluster_tier(Tier::Admin, direction, pod, peer, PortSet::all(), &mut side);
        let open = self.network_policy_tier(direction, pod, peer, open, &mut side);
        let open = self.cluster_tier(Tier::Baseline, direction, pod, peer, open, &mut side);
        if !open.is_empty() {
            side.steps.push(Step {
                ports: open,
                by: By::Default,
            });
        }
        side
    }

    /// One ClusterNetworkPolicy tier for the ports `open` that reach it: the steps of
    /// the rules that match, and the ports that go on to the next tier (passed on, or
    /// matched by no rule).
    fn cluster_tier(
        &self,
        tier: Tier,
        direction: Direction,
        pod: &Pod,
        peer: &Pod,
        mut open: PortSet,
        side: &mut Side,
    ) -> PortSet {
        let target = self.target(peer);
        let mut passed = PortSet::none();
        for (policy, key) in self.cluster_selecting(tier, direction, pod) {
            side.policies.push(key.clone());
            for rule in policy.rules(direction == Direction::Ingress) {
                let ports = open.intersect(&rule.ports);
                if ports.is_empty() {
                    continue;
                }
                let Some(peer_text) = rule.matching_peer(&target) else {
                    continue;
                };
                open = open.minus(&ports);
                if rule.action == Action::Pass {
                    passed.union_with(&ports);
                }
                side.steps.push(Step {
                    by: By::Rule(cluster_grant(key, direction, rule, peer_text, &ports)),
                    ports,
                });
            }
        }
        open.union_with(&passed);
        open
    }

    /// The NetworkPolicy tier for the ports `open` that reach it: when a NetworkPolicy
    /// selects the pod, its grants and the denial of the rest (nothing goes on);
    /// otherwise everything goes on.
    fn network_policy_tier(
        &self,
        direction: Direction,
        pod: &Pod,
        peer: &Pod,
        open: PortSet,
        side: &mut Side,
    ) -> PortSet {
        let mut selecting = Vec::new();
        let mut allowed = PortSet::none();
        for (policy, rules) in self.selecting(direction, pod) {
            selecting.push(policy.id.clone());
            side.policies.push(policy.key.clone());
            for (index, rule) in rules.iter().enumerate() {
                let ports = rule.ports.intersect(&open);
                if ports.is_empty() {
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
                    allowed.union_with(&ports);
                    side.steps.push(Step {
                        ports: ports.clone(),
                        by: By::Rule(Grant {
                            policy: policy.key.clone(),
                            direction,
                            rule: index,
                            name: None,
                            action: Action::Accept,
                            peer: peer_text,
                            ports,
                        }),
                    });
                }
            }
        }
        if selecting.is_empty() {
            return open;
        }
        let denied = open.minus(&allowed);
        if !denied.is_empty() {
            side.steps.push(Step {
                ports: denied,
                by: By::NoRuleAllows(selecting),
            });
        }
        PortSet::none()
    }

    fn peer_matches(&self, peer: &Peer, policy_namespace: &str, pod: &Pod) -> bool {
        match &peer.kind {
            PeerKind::Everything => true,
            PeerKind::Pods { namespaces, pods } => {
                let in_scope = match namespaces {
                    None => pod.namespace == policy_namespace,
                    Some(selector) => {
                        let labels = self.namespace_labels(&pod.namespace).unwrap_or(&NO_LABELS);
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
                None => cidr::overlaps_outside(block, except, self.ranges_of(pod)),
            },
        }
    }

    /// The namespaces whose pods (on the pod network, of unknown address, other than
    /// `pod` itself) the policies of every tier may allow as `pod`'s peers in
    /// `direction`: what an Admin or Baseline Accept may match, what the NetworkPolicies
    /// selecting the pod may allow of what reaches their tier, and what may reach the
    /// Kubernetes default. A namespace leaves the running only when a rule matches
    /// every pod there on every port still open (a Deny, a Pass to a tier that does not
    /// allow it).
    pub fn reach(&self, direction: Direction, pod: &Pod) -> Reach {
        if pod.host_network {
            return Reach::All;
        }
        let mut possible = Reach::none();
        let open = self.reach_cluster_tier(Tier::Admin, direction, pod, Reach::All, &mut possible);
        let open = match self.reach_network_policies(direction, pod) {
            Some(allowed) => {
                possible.union_with(&allowed.intersect(&open));
                Reach::none()
            }
            None => open,
        };
        let open = self.reach_cluster_tier(Tier::Baseline, direction, pod, open, &mut possible);
        possible.union_with(&open);
        possible
    }

    /// One ClusterNetworkPolicy tier for the namespaces `open` that reach it: adds to
    /// `possible` what its Accept rules may match; gives the namespaces that may go on.
    fn reach_cluster_tier(
        &self,
        tier: Tier,
        direction: Direction,
        pod: &Pod,
        mut open: Reach,
        possible: &mut Reach,
    ) -> Reach {
        let count = self.names.len();
        let matching = |s: &LabelSelector| self.namespaces_matching(s);
        let mut passed = Reach::none();
        for (policy, _) in self.cluster_selecting(tier, direction, pod) {
            for rule in policy.rules(direction == Direction::Ingress) {
                if open.is_empty() {
                    break;
                }
                let (full, partial) = rule.spread(&self.pod_ranges, &matching);
                let mut touched = full.intersect(&open);
                touched.union_with(&partial.intersect(&open));
                match rule.action {
                    Action::Accept => possible.union_with(&touched),
                    Action::Pass => passed.union_with(&touched),
                    Action::Deny => {}
                }
                open = open.minus(&full, count);
            }
        }
        open.union_with(&passed);
        open
    }

    /// What the NetworkPolicies selecting `pod` may allow as peers in `direction`:
    /// `None` when none selects it; every namespace when a rule matches every peer or
    /// an ipBlock may hold pods; else those its selectors match.
    fn reach_network_policies(&self, direction: Direction, pod: &Pod) -> Option<Reach> {
        let mut out = BTreeSet::new();
        let mut restricted = false;
        for (policy, rules) in self.selecting(direction, pod) {
            restricted = true;
            for rule in rules.iter().filter(|r| !r.ports.is_empty()) {
                if rule.peers.is_empty() {
                    return Some(Reach::All);
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
                                return Some(Reach::All);
                            }
                        }
                    }
                }
            }
        }
        restricted.then_some(Reach::Some(out))
    }

    /// Decides one probe: the source's egress and the destination's ingress, each
    /// with the rule or policies that decide it.
    pub fn check(&self, probe: &Probe) -> Verdict {
        let (protocol, port) = (probe.protocol, probe.port);
        Verdict {
            egress: self
                .side(Direction::Egress, &probe.from, &probe.to)
                .decide(protocol, port),
            ingress: self
                .side(Direction::Ingress, &probe.to, &probe.from)
                .decide(protocol, port),
        }
    }
}

/// The grant of a ClusterNetworkPolicy rule that matched a peer on `ports`.
fn cluster_grant(
    key: &Arc<PolicyId>,
    direction: Direction,
    rule: &ClusterRule,
    peer: Arc<str>,
    ports: &PortSet,
) -> Grant {
    Grant {
        policy: key.clone(),
        direction,
        rule: rule.index,
        name: rule.name.clone(),
        action: rule.action,
        peer: Some(peer),
        ports: ports.clone(),
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
    let id = PolicyRef {
        namespace: namespace.clone(),
        name: policy.name_any(),
    };
    Compiled {
        key: Arc::new(PolicyId::NetworkPolicy(id.clone())),
        id: Arc::new(id),
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
