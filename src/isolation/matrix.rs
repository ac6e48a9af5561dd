//! Customer by customer: which customer's pods can reach which other customer's pods,
//! and which of those openings no `allowFrom` or group zone declares.
//!
//! Isolation is judged on the receiving side. A customer is isolated when its
//! namespaces admit nothing from another customer beyond what it declared (its
//! `allowFrom`, its group's `allowWithinGroup`, or `isolation: None`, which declares
//! everything). Whether the other customer's egress would let such traffic out today is
//! reported too, but does not make the opening declared: a customer's isolation must
//! not rest on its neighbours' policies.

use std::collections::{BTreeMap, HashMap};

use kube::ResourceExt;
use serde::Serialize;

use super::evaluate::{By, Direction, Network, Pod, Reach, Side, Step};
use super::ports::PortSet;
use super::selector::{self, Labels};
use crate::api::cluster_network_policy::Action;
use crate::api::{Customer, Isolation, LABEL_CUSTOMER, LABEL_GROUP};
use crate::desired::{self, Directory, resolve};
use crate::settings::Settings;

/// A customer as the matrix sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Tenant {
    /// The customer's name.
    pub name: String,
    /// Its group (the default group when it names none).
    pub group: String,
    /// Its effective isolation; unknown when only its namespaces are known.
    pub isolation: Option<Isolation>,
    /// Its namespaces: those labelled `customers.dev/customer=<name>` that it holds.
    pub namespaces: Vec<String>,
}

/// The customers and which namespace belongs to which.
#[derive(Clone, Debug, Default)]
pub struct Tenancy {
    tenants: BTreeMap<String, Tenant>,
    owner: HashMap<String, String>,
}

impl Tenancy {
    /// The customers of `dir` and of the namespaces' `customers.dev/customer` labels;
    /// a namespace belongs to the customer its label names.
    pub fn new<'a>(
        namespaces: impl IntoIterator<Item = (&'a str, &'a Labels)>,
        dir: &dyn Directory,
        settings: &Settings,
    ) -> Self {
        let mut tenancy = Tenancy::default();
        for customer in dir.customers() {
            let effective = resolve::effective(&customer, dir, settings);
            tenancy.tenants.insert(
                customer.name_any(),
                Tenant {
                    name: customer.name_any(),
                    group: effective.group_name,
                    isolation: Some(effective.isolation),
                    namespaces: Vec::new(),
                },
            );
        }
        for (namespace, labels) in namespaces {
            let Some(customer) = labels.get(LABEL_CUSTOMER) else {
                continue;
            };
            let tenant = tenancy
                .tenants
                .entry(customer.clone())
                .or_insert_with(|| Tenant {
                    name: customer.clone(),
                    group: labels
                        .get(LABEL_GROUP)
                        .cloned()
                        .unwrap_or_else(|| settings.default_group.clone()),
                    isolation: None,
                    namespaces: Vec::new(),
                });
            tenant.namespaces.push(namespace.to_string());
            tenancy
                .owner
                .insert(namespace.to_string(), customer.clone());
        }
        for tenant in tenancy.tenants.values_mut() {
            tenant.namespaces.sort();
        }
        tenancy
    }

    /// Every customer, by name.
    pub fn tenants(&self) -> impl Iterator<Item = &Tenant> {
        self.tenants.values()
    }

    /// The customer a namespace belongs to.
    pub fn customer_of(&self, namespace: &str) -> Option<&str> {
        self.owner.get(namespace).map(String::as_str)
    }
}

/// What a customer declared open to one other customer: ports and why.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Declaration {
    /// The ports declared open.
    pub ports: PortSet,
    /// What declares them (`allowFrom customer x`, `group zone g`).
    pub reasons: Vec<String>,
}

/// What one customer declared open to others.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inbound {
    /// `isolation: None`: everything is declared open.
    pub open: bool,
    /// Declarations by source customer.
    pub from: BTreeMap<String, Declaration>,
}

/// The connections the Customers and groups declare, by destination customer.
#[derive(Clone, Debug, Default)]
pub struct Declared {
    into: HashMap<String, Inbound>,
}

impl Declared {
    /// The declarations of every customer of `dir`.
    pub fn new(dir: &dyn Directory, settings: &Settings) -> Self {
        let everyone = dir.customers();
        let mut by_group: HashMap<String, Vec<String>> = HashMap::new();
        for customer in &everyone {
            let group = resolve::group_name(customer, settings);
            by_group.entry(group).or_default().push(customer.name_any());
        }
        let members = |group: &str| by_group.get(group).cloned().unwrap_or_default();
        let into = everyone
            .iter()
            .map(|c| {
                let effective = resolve::effective(c, dir, settings);
                (c.name_any(), inbound(c, &effective, &members))
            })
            .collect();
        Declared { into }
    }

    /// The declarations of one customer only (enough to judge its inbound paths), whose
    /// settings after its group's defaults are `effective`.
    pub fn into_customer(
        customer: &Customer,
        effective: &resolve::Effective,
        dir: &dyn Directory,
        settings: &Settings,
    ) -> Self {
        let everyone = dir.customers();
        let members = |group: &str| desired::members(group, &everyone, &settings.default_group);
        let inbound = inbound(customer, effective, &members);
        Declared {
            into: HashMap::from([(customer.name_any(), inbound)]),
        }
    }

    /// The ports `to` declares open to `from`.
    pub fn ports(&self, from: &str, to: &str) -> PortSet {
        match self.into.get(to) {
            Some(inbound) if inbound.open => PortSet::all(),
            Some(inbound) => inbound
                .from
                .get(from)
                .map(|d| d.ports.clone())
                .unwrap_or_default(),
            None => PortSet::none(),
        }
    }

    /// Every declared connection (`from`, `to`, declaration), except the blanket
    /// openness of `isolation: None`.
    pub fn connections(&self) -> Vec<(&str, &str, &Declaration)> {
        let mut out: Vec<(&str, &str, &Declaration)> = self
            .into
            .iter()
            .flat_map(|(to, inbound)| {
                inbound
                    .from
                    .iter()
                    .map(move |(from, d)| (from.as_str(), to.as_str(), d))
            })
            .collect();
        out.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        out
    }
}

/// What `customer` declares open: its group zone, its `allowFrom` entries by customer
/// and by group (an `allowFrom.namespaceSelector` is for non-customer namespaces and
/// declares no customer), or everything when its isolation is None.
/// `effective` holds its settings after its group's defaults, `members` names the member
/// customers of a group.
fn inbound(
    customer: &Customer,
    effective: &resolve::Effective,
    members: &dyn Fn(&str) -> Vec<String>,
) -> Inbound {
    let me = customer.name_any();
    let mut out = Inbound {
        open: effective.isolation == Isolation::None,
        ..Default::default()
    };
    let mut add = |from: String, ports: PortSet, reason: String| {
        if from == me {
            return;
        }
        let entry = out.from.entry(from).or_default();
        entry.ports.union_with(&ports);
        if !entry.reasons.contains(&reason) {
            entry.reasons.push(reason);
        }
    };
    let zone_open = effective
        .group
        .as_ref()
        .and_then(|g| g.spec.network.as_ref())
        .is_some_and(|n| n.allow_within_group);
    if zone_open {
        for member in members(&effective.group_name) {
            let reason = format!("group zone {}", effective.group_name);
            add(member, PortSet::all(), reason);
        }
    }
    for allow in customer.spec.network.iter().flat_map(|n| &n.allow_from) {
        let ports = PortSet::from_specs(&allow.ports);
        if let Some(peer) = &allow.customer {
            add(
                peer.clone(),
                ports.clone(),
                format!("allowFrom customer {peer}"),
            );
        }
        if let Some(group) = &allow.group {
            for member in members(group) {
                add(member, ports.clone(), format!("allowFrom group {group}"));
            }
        }
    }
    out
}

/// One end of a path: a namespace and the labels of the pod probed there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// The namespace.
    pub namespace: String,
    /// The pod's labels as text (`any pod` for the unlabelled one).
    pub pod: String,
}

/// Everything between one ordered pair of customers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Link {
    /// The customer that opens connections.
    pub from: String,
    /// The customer it connects to.
    pub to: String,
    /// Ports that `to`'s ingress admits from some pod of `from`.
    pub admitted: PortSet,
    /// Ports on which some pod of `from` can reach some pod of `to` (both sides allow).
    pub reachable: PortSet,
    /// Ports `to` declares open to `from`.
    pub declared: PortSet,
}

impl Link {
    /// The admitted ports that no declaration covers.
    pub fn undeclared(&self) -> PortSet {
        self.admitted.minus(&self.declared)
    }
}

/// An opening into a customer that nothing declares.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// The customer whose pod may connect.
    pub from: String,
    /// The customer whose pod it may connect to.
    pub to: String,
    /// The source pod.
    pub source: Endpoint,
    /// The destination pod.
    pub destination: Endpoint,
    /// Ports the destination admits from the source and no declaration covers.
    pub ports: PortSet,
    /// Of those, the ports the source's egress allows too: reachable now.
    pub reachable: PortSet,
    /// What admits it on the destination's side (policy, rule and peer).
    pub admitted_by: Vec<String>,
    /// What the source's egress does with it.
    pub egress: String,
}

impl Finding {
    /// One line for a condition or an Event.
    pub fn summary(&self) -> String {
        format!(
            "{} ({}) may connect to {} ({}) on {}: admitted by {}",
            self.source.namespace,
            self.source.pod,
            self.destination.namespace,
            self.destination.pod,
            self.ports,
            self.admitted_by.join("; ")
        )
    }
}

/// Links between every ordered pair of customers that has any, and every undeclared
/// opening.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Analysis {
    /// Ordered pairs of customers with anything admitted, by (from, to).
    pub links: Vec<Link>,
    /// Openings no declaration covers.
    pub findings: Vec<Finding>,
}

/// Probes every pod class of every customer namespace (or only those of customer
/// `into`) as a destination against every pod class of every other customer's
/// namespaces that its ingress may admit.
pub fn analyse(
    network: &Network,
    tenancy: &Tenancy,
    declared: &Declared,
    into: Option<&str>,
) -> Analysis {
    let mut links: BTreeMap<(String, String), Link> = BTreeMap::new();
    let mut findings = Vec::new();
    let all: Vec<usize> = tenancy
        .owner
        .keys()
        .filter_map(|ns| network.namespace_index(ns))
        .collect();
    let mut destinations: Vec<(&String, &String)> = tenancy
        .owner
        .iter()
        .filter(|(_, customer)| into.is_none_or(|c| c == customer.as_str()))
        .collect();
    destinations.sort();
    for (dest_ns, dest_customer) in destinations {
        for dest_labels in network.pod_classes(dest_ns) {
            let dest = Pod {
                namespace: dest_ns.clone(),
                labels: dest_labels.clone(),
                ip: None,
                host_network: false,
            };
            let candidates = match network.reach(Direction::Ingress, &dest) {
                Reach::All => all.clone(),
                Reach::Some(set) => set.into_iter().collect(),
            };
            for source_ns in candidates.into_iter().map(|i| network.namespace_name(i)) {
                let Some(source_customer) = tenancy.customer_of(source_ns) else {
                    continue;
                };
                if source_customer == dest_customer {
                    continue;
                }
                let declared_ports = declared.ports(source_customer, dest_customer);
                for source_labels in network.pod_classes(source_ns) {
                    let source = Pod {
                        namespace: source_ns.to_string(),
                        labels: source_labels.clone(),
                        ip: None,
                        host_network: false,
                    };
                    let ingress = network.side(Direction::Ingress, &dest, &source);
                    let admitted = ingress.ports();
                    if admitted.is_empty() {
                        continue;
                    }
                    let egress = network.side(Direction::Egress, &source, &dest);
                    let egress_ports = egress.ports();
                    let link = links
                        .entry((source_customer.to_string(), dest_customer.clone()))
                        .or_insert_with(|| Link {
                            from: source_customer.to_string(),
                            to: dest_customer.clone(),
                            admitted: PortSet::none(),
                            reachable: PortSet::none(),
                            declared: declared_ports.clone(),
                        });
                    link.admitted.union_with(&admitted);
                    link.reachable
                        .union_with(&admitted.intersect(&egress_ports));
                    let undeclared = admitted.minus(&declared_ports);
                    if undeclared.is_empty() {
                        continue;
                    }
                    findings.push(Finding {
                        from: source_customer.to_string(),
                        to: dest_customer.clone(),
                        source: endpoint(&source),
                        destination: endpoint(&dest),
                        reachable: undeclared.intersect(&egress_ports),
                        admitted_by: admitted_by(&ingress, &undeclared),
                        egress: egress_text(&egress, &undeclared),
                        ports: undeclared,
                    });
                }
            }
        }
    }
    findings.sort_by(|a, b| {
        let key = |f: &Finding| {
            (
                f.to.clone(),
                f.from.clone(),
                f.destination.namespace.clone(),
                f.source.namespace.clone(),
                f.destination.pod.clone(),
                f.source.pod.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    Analysis {
        links: links.into_values().collect(),
        findings,
    }
}

fn endpoint(pod: &Pod) -> Endpoint {
    Endpoint {
        namespace: pod.namespace.clone(),
        pod: selector::describe_labels(&pod.labels),
    }
}

/// What admits `ports` on the destination's side: the rules that accept them, and the
/// Kubernetes default where no tier decides.
fn admitted_by(ingress: &Side, ports: &PortSet) -> Vec<String> {
    ingress
        .steps_within(ports)
        .filter(|s| s.allows())
        .map(|s| match &s.by {
            By::Rule(grant) => grant.to_string(),
            By::Default if ingress.is_unrestricted() => {
                "no policy of any tier selects the pod for ingress: the Kubernetes default allows it"
                    .into()
            }
            _ => undecided(ingress, s),
        })
        .collect()
}

/// The ports no tier decides (or the pod's own traffic), with the Pass rules that
/// sent them on.
fn undecided(side: &Side, step: &Step) -> String {
    if step.by == By::Itself {
        return "the pod's traffic to itself".into();
    }
    let passed: Vec<String> = side
        .steps_within(&step.ports)
        .filter_map(|s| match &s.by {
            By::Rule(grant) if grant.action == Action::Pass => {
                Some(format!("passed on by {grant}"))
            }
            _ => None,
        })
        .collect();
    let prefix = if passed.is_empty() {
        String::new()
    } else {
        format!("{}, then ", passed.join(", "))
    };
    format!(
        "{prefix}no rule of any tier decides {}: the Kubernetes default allows it",
        step.ports
    )
}

/// What the source's egress does with `ports`: allowed by what, or denied by what.
fn egress_text(egress: &Side, ports: &PortSet) -> String {
    if egress.is_unrestricted() {
        return "not restricted: no policy of any tier selects the source pod for egress".into();
    }
    let allowed = egress.ports().intersect(ports);
    let denied = ports.minus(&allowed);
    let mut allowing = Vec::new();
    let mut denying = Vec::new();
    for step in egress.steps_within(ports) {
        match &step.by {
            By::Rule(grant) if step.allows() => allowing.push(grant.to_string()),
            By::Rule(grant) if grant.action == Action::Deny => {
                denying.push(format!("denied by {grant}"))
            }
            By::Rule(_) => {}
            By::NoRuleAllows(policies) => {
                let names: Vec<&str> = policies.iter().map(|p| p.name.as_str()).collect();
                let none_of = match names.len() {
                    1 => "the 1 policy selecting the pod does not allow it".to_string(),
                    n => format!("none of the {n} policies selecting the pod allows it"),
                };
                denying.push(format!("{none_of} ({})", names.join(", ")));
            }
            By::Default | By::Itself => allowing.push(undecided(egress, step)),
        }
    }
    if allowed.is_empty() {
        format!("denied today: {}", denying.join("; "))
    } else if denied.is_empty() {
        format!("allowed by {}", allowing.join("; "))
    } else {
        format!(
            "allowed on {allowed} by {}; denied today on {denied}: {}",
            allowing.join("; "),
            denying.join("; ")
        )
    }
}
