//! `customer-operator verify`: the customer-by-customer reachability matrix of a cluster,
//! or of files, from every NetworkPolicy in the customers' namespaces and every
//! ClusterNetworkPolicy, and the openings between customers that no `allowFrom` or group
//! zone declares.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::{Api, Client, ResourceExt};
use serde::Serialize;

use crate::api::LABEL_CUSTOMER;
use crate::api::{ClusterNetworkPolicy, Customer, CustomerGroup};
use crate::controller::decode;
use crate::desired::{self, MapDirectory};
use crate::error::{Error, Result};
use crate::isolation::matrix::{Tenancy, Tenant};
use crate::isolation::{Declared, Finding, Labels, Link, Network, PortSet, analyse};
use crate::render::Inputs;
use crate::settings::Settings;

/// Above this many customers the table leaves the grid out (the lists stay).
const MAX_GRID: usize = 60;

/// What `verify` looks at: namespaces, their policies, the ClusterNetworkPolicies, and
/// the Customers and groups that say what is declared.
#[derive(Clone, Debug, Default)]
pub struct World {
    /// Every namespace (customer namespaces carry `customers.dev/customer`).
    pub namespaces: Vec<Namespace>,
    /// Every NetworkPolicy.
    pub policies: Vec<NetworkPolicy>,
    /// Every ClusterNetworkPolicy (Admin and Baseline tier).
    pub cluster_policies: Vec<ClusterNetworkPolicy>,
    /// The Customers.
    pub customers: Vec<Customer>,
    /// The CustomerGroups.
    pub groups: Vec<CustomerGroup>,
    /// Things the reader of the report should know (skipped input).
    pub notes: Vec<String>,
}

/// The world the files describe: their Customers rendered with the operator's builder,
/// plus the Namespaces, NetworkPolicies and ClusterNetworkPolicies the files hold
/// (which replace rendered ones of the same name). Render output alone is taken as
/// it is; without Customers nothing is declared.
pub fn world_from_inputs(inputs: &Inputs, settings: &Settings) -> Result<World> {
    let mut namespaces: BTreeMap<String, Namespace> = BTreeMap::new();
    let mut policies: BTreeMap<(String, String), NetworkPolicy> = BTreeMap::new();
    let mut cluster_policies: BTreeMap<String, ClusterNetworkPolicy> = BTreeMap::new();
    for (_, wanted) in inputs.desired(settings)? {
        namespaces.extend(wanted.namespaces.into_iter().map(|n| (n.name_any(), n)));
        policies.extend(wanted.network_policies.into_iter().map(|p| (key(&p), p)));
        cluster_policies.extend(
            wanted
                .cluster_network_policies
                .into_iter()
                .map(|p| (p.name_any(), p)),
        );
    }
    cluster_policies.extend(
        inputs
            .cluster_policies
            .iter()
            .map(|(_, p)| (p.name_any(), p.clone())),
    );
    namespaces.extend(
        inputs
            .namespaces
            .iter()
            .map(|(_, n)| (n.name_any(), n.clone())),
    );
    policies.extend(
        inputs
            .network_policies
            .iter()
            .map(|(_, p)| (key(p), p.clone())),
    );
    if !inputs.unevaluated.is_empty() {
        return Err(Error::Unusable(
            inputs
                .unevaluated
                .iter()
                .map(|(file, object)| Error::Parse {
                    path: file.display().to_string(),
                    object: object.clone(),
                    message: "verify evaluates networking.k8s.io/v1 NetworkPolicies only (and policy.networking.k8s.io/v1alpha2 ClusterNetworkPolicies) and cannot judge what this policy opens or closes; leave it out of the input to check the others alone".into(),
                })
                .collect(),
        ));
    }
    let mut notes = Vec::new();
    if inputs.customers.is_empty() {
        notes.push("no Customer in the input: nothing is declared".to_string());
    }
    Ok(World {
        namespaces: namespaces.into_values().collect(),
        policies: policies.into_values().collect(),
        cluster_policies: cluster_policies.into_values().collect(),
        customers: inputs.customers.iter().map(|(_, c)| c.clone()).collect(),
        groups: inputs.groups.iter().map(|(_, g)| g.clone()).collect(),
        notes,
    })
}

fn key(policy: &NetworkPolicy) -> (String, String) {
    (policy.namespace().unwrap_or_default(), policy.name_any())
}

/// The world of a cluster: every namespace, every NetworkPolicy, every
/// ClusterNetworkPolicy (none when the cluster does not serve the kind: 404), the
/// Customers (one that does not decode is left out, with a note) and the CustomerGroups.
pub async fn world_from_cluster(client: &Client) -> Result<World> {
    let namespaces = Api::<Namespace>::all(client.clone())
        .list(&Default::default())
        .await?
        .items;
    let policies = Api::<NetworkPolicy>::all(client.clone())
        .list(&Default::default())
        .await?
        .items;
    let cluster_policies = match Api::<ClusterNetworkPolicy>::all(client.clone())
        .list(&Default::default())
        .await
    {
        Ok(list) => list.items,
        Err(kube::Error::Api(status)) if status.code == 404 => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let groups = Api::<CustomerGroup>::all(client.clone())
        .list(&Default::default())
        .await?
        .items;
    let mut customers = Vec::new();
    let mut notes = Vec::new();
    for object in decode::untyped(client)
        .list(&Default::default())
        .await?
        .items
    {
        match decode::decode(&object) {
            Ok(customer) => customers.push(customer),
            Err(message) => notes.push(format!(
                "Customer {} left out, it does not decode: {message}",
                object.name_any()
            )),
        }
    }
    Ok(World {
        namespaces,
        policies,
        cluster_policies,
        customers,
        groups,
        notes,
    })
}

/// A group whose members may reach each other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Zone {
    /// The group.
    pub group: String,
    /// Its member customers.
    pub members: Vec<String>,
}

/// A connection a Customer declares, and how much of it is open.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Connection {
    /// The customer that may connect.
    pub from: String,
    /// The customer that declared it.
    pub to: String,
    /// The ports declared.
    pub declared: PortSet,
    /// What declares them.
    pub reasons: Vec<String>,
    /// The ports on which `from` can reach `to` now.
    pub open: PortSet,
}

/// The outcome of `verify`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The customers, their groups, isolation and namespaces.
    pub customers: Vec<Tenant>,
    /// Groups with an open zone.
    pub zones: Vec<Zone>,
    /// Every connection declared by `allowFrom` or a group zone.
    pub declared: Vec<Connection>,
    /// Every ordered pair of customers with anything admitted between them.
    pub links: Vec<Link>,
    /// Every opening between customers that nothing declares.
    pub undeclared: Vec<Finding>,
    /// Things the reader should know.
    pub notes: Vec<String>,
}

impl Report {
    /// Whether every customer is isolated exactly as declared.
    pub fn isolated(&self) -> bool {
        self.undeclared.is_empty()
    }
}

/// The world compiled for the check.
pub struct Model {
    /// The Customers and groups.
    pub dir: MapDirectory,
    /// The namespaces and their policies.
    pub network: Network,
    /// Which namespace is whose.
    pub tenancy: Tenancy,
    /// What the Customers declare.
    pub declared: Declared,
    /// Namespaces labelled as a customer's that it does not hold, for the report.
    pub lookalikes: Vec<String>,
}

/// Compiles the world: policies, namespaces and their owners, declarations. A namespace
/// is a customer's when its `customers.dev/customer` label names the customer and the
/// customer holds it ([`desired::ownership`], the controller's rule); a namespace whose
/// label names a Customer that does not hold it is nobody's. Without the Customer in the
/// world (render output alone) the label is all there is to go by.
pub fn model(world: &World, settings: &Settings) -> Result<Model> {
    let dir = MapDirectory::new(
        world.customers.iter().cloned(),
        world.groups.iter().cloned(),
    );
    let labels = |n: &Namespace| (n.name_any(), n.labels().clone());
    let network = Network::new(
        world.namespaces.iter().map(labels),
        &world.policies,
        &settings.pod_ranges()?,
    )
    .with_cluster_policies(&world.cluster_policies);
    let mut lookalikes = Vec::new();
    let owned: Vec<(String, Labels)> = world
        .namespaces
        .iter()
        .map(|n| {
            let mut labels = n.labels().clone();
            let claimed = labels.get(LABEL_CUSTOMER).and_then(|c| dir.customers.get(c));
            if let Some(customer) = claimed
                && !desired::ownership::is_recorded_owner(&n.metadata, customer.uid().as_deref())
            {
                lookalikes.push(format!(
                    "namespace {} is labelled {LABEL_CUSTOMER}={} but that Customer does not hold it (it records no ownership by it): counted as nobody's",
                    n.name_any(),
                    customer.name_any()
                ));
                labels.remove(LABEL_CUSTOMER);
            }
            (n.name_any(), labels)
        })
        .collect();
    let tenancy = Tenancy::new(
        owned.iter().map(|(name, labels)| (name.as_str(), labels)),
        &dir,
        settings,
    );
    let declared = Declared::new(&dir, settings);
    Ok(Model {
        dir,
        network,
        tenancy,
        declared,
        lookalikes,
    })
}

/// Evaluates every NetworkPolicy and ClusterNetworkPolicy of the world and builds the
/// report.
pub fn verify(world: &World, settings: &Settings) -> Result<Report> {
    let Model {
        dir,
        network,
        tenancy,
        declared,
        lookalikes,
    } = model(world, settings)?;
    let analysis = analyse(&network, &tenancy, &declared, None);
    let reachable = |from: &str, to: &str| {
        analysis
            .links
            .iter()
            .find(|l| l.from == from && l.to == to)
            .map(|l| l.reachable.clone())
            .unwrap_or_default()
    };
    let connections = declared
        .connections()
        .into_iter()
        .map(|(from, to, declaration)| Connection {
            from: from.to_string(),
            to: to.to_string(),
            declared: declaration.ports.clone(),
            reasons: declaration.reasons.clone(),
            open: reachable(from, to),
        })
        .collect();
    let customers: Vec<_> = dir.customers.values().cloned().collect();
    let zones = world
        .groups
        .iter()
        .filter(|g| {
            g.spec
                .network
                .as_ref()
                .is_some_and(|n| n.allow_within_group)
        })
        .map(|g| Zone {
            group: g.name_any(),
            members: desired::members(&g.name_any(), &customers, &settings.default_group),
        })
        .collect();
    Ok(Report {
        customers: tenancy.tenants().cloned().collect(),
        zones,
        declared: connections,
        links: analysis.links,
        undeclared: analysis.findings,
        notes: world.notes.iter().cloned().chain(lookalikes).collect(),
    })
}

/// The report as JSON.
pub fn json(report: &Report) -> Result<String> {
    serde_json::to_string_pretty(report)
        .map(|text| text + "\n")
        .map_err(Error::from)
}

/// The report as text: the customers, the group zones, the matrix, the declared
/// connections and the undeclared paths.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    let names: Vec<&str> = report.customers.iter().map(|c| c.name.as_str()).collect();
    let width = names.iter().map(|n| n.len()).max().unwrap_or(0).max(8);
    let group_width = report
        .customers
        .iter()
        .map(|c| c.group.len())
        .max()
        .unwrap_or(0)
        .max(5);
    out.push_str(&format!(
        "{:<width$}  {:<group_width$}  {:<9}  NAMESPACES\n",
        "CUSTOMER", "GROUP", "ISOLATION"
    ));
    for c in &report.customers {
        let isolation = c
            .isolation
            .map(|i| format!("{i:?}"))
            .unwrap_or_else(|| "unknown".into());
        out.push_str(&format!(
            "{:<width$}  {:<group_width$}  {isolation:<9}  {}\n",
            c.name,
            c.group,
            c.namespaces.join(", ")
        ));
    }
    out.push('\n');
    if report.zones.is_empty() {
        out.push_str("Group zones (allowWithinGroup): none\n");
    } else {
        out.push_str("Group zones (allowWithinGroup):\n");
        for zone in &report.zones {
            out.push_str(&format!("  {}: {}\n", zone.group, zone.members.join(", ")));
        }
    }
    out.push('\n');
    if names.len() > MAX_GRID {
        out.push_str(&format!(
            "Reachability: {} customers, too many for a grid; see the lists below or --output json\n",
            names.len()
        ));
    } else {
        grid(report, &names, width, &mut out);
    }
    out.push('\n');
    if report.declared.is_empty() {
        out.push_str("Declared connections: none\n");
    } else {
        out.push_str("Declared connections:\n");
        for c in &report.declared {
            out.push_str(&format!(
                "  {} -> {}: {} declared ({}); open: {}\n",
                c.from,
                c.to,
                c.declared,
                c.reasons.join(", "),
                c.open
            ));
        }
    }
    out.push('\n');
    if report.undeclared.is_empty() {
        out.push_str("Undeclared paths: none\n");
    } else {
        out.push_str(&format!("Undeclared paths: {}\n", report.undeclared.len()));
        for f in &report.undeclared {
            let now = if f.reachable.is_empty() {
                "blocked today only by the source's egress".to_string()
            } else {
                format!("reachable now on {}", f.reachable)
            };
            out.push_str(&format!(
                "  {} -> {} on {} ({now})\n    from {} ({}) to {} ({})\n    admitted by {}\n    source egress: {}\n",
                f.from,
                f.to,
                f.ports,
                f.source.namespace,
                f.source.pod,
                f.destination.namespace,
                f.destination.pod,
                f.admitted_by.join("; "),
                f.egress
            ));
        }
    }
    for note in &report.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    out
}

/// The matrix: one row per source customer, one column per destination.
fn grid(report: &Report, names: &[&str], width: usize, out: &mut String) {
    out.push_str(
        "Reachability (row connects to column): + declared, ! undeclared and reachable now,\n\
         ? undeclared, blocked today only by the source's egress, . none, = itself\n",
    );
    let digits = names.len().to_string().len();
    let cell = digits + 1;
    out.push_str(&format!("{:width$}", "", width = digits + 2 + width));
    for i in 1..=names.len() {
        out.push_str(&format!("{i:>cell$}"));
    }
    out.push('\n');
    for (row, from) in names.iter().enumerate() {
        out.push_str(&format!("{:>digits$}  {from:<width$}", row + 1));
        for to in names {
            let mark = if from == to {
                "="
            } else {
                match report.links.iter().find(|l| l.from == *from && l.to == *to) {
                    None => ".",
                    Some(link) => {
                        let undeclared = link.undeclared();
                        if !undeclared.intersect(&link.reachable).is_empty() {
                            "!"
                        } else if !undeclared.is_empty() {
                            "?"
                        } else if !link.reachable.is_empty() {
                            "+"
                        } else {
                            "."
                        }
                    }
                }
            };
            out.push_str(&format!("{mark:>cell$}"));
        }
        out.push('\n');
    }
}
