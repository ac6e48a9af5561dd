//! `customer-operator list` and `customer-operator overview NAME`, which are also the
//! kubectl plugin `kubectl customer list|overview NAME`: what a partner's customer
//! console shows, read with the caller's own credentials.
//!
//! Two sources, in this order: every Customer, when the caller may list them (a platform
//! admin); otherwise the CustomerClaims of one namespace (a partner's or a customer's),
//! whose status mirrors the Customer each of them made. The fetching is at the end of
//! this file; everything before it is pure: a [`View`] of a Customer or a claim, and the
//! text made from views and the quotas read for them.

use std::fmt::Write as _;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::ResourceQuota;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, ResourceExt};

use crate::api::{AllowFrom, Customer, CustomerClaim, NamespaceStatus, PortSpec, Summary};

/// The condition type that names the connections still waiting for their peer.
pub const CONNECTIONS_PENDING: &str = "ConnectionsPending";
/// The condition type of readiness.
pub const READY: &str = "Ready";

/// What the caller asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// `list`: every customer the caller may see, one line each.
    List,
    /// `overview NAME`: one customer with its assets.
    Overview(String),
}

/// Where to read from: the kubeconfig, its context and the namespace, as kubectl takes
/// them (`--kubeconfig`, else `$KUBECONFIG`, else `~/.kube/config`; `--context`, else
/// the current context; `-n`, else the context's namespace).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Target {
    /// The kubeconfig file; `None` reads `$KUBECONFIG` (a list of files) or
    /// `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// The context to use; `None` is the kubeconfig's current context.
    pub context: Option<String>,
    /// The namespace of the CustomerClaims to read when the caller may not list
    /// Customers; `None` is the context's namespace.
    pub namespace: Option<String>,
}

/// Why the console shows nothing: each one line for people, without the chain of
/// errors behind it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The kubeconfig cannot be read or does not name a usable context.
    #[error("{0}")]
    Config(String),
    /// RBAC refuses the caller (403).
    #[error("you may not {verb} {resource}{} (forbidden)", in_namespace(.namespace))]
    Forbidden {
        /// What the console tried: `list` or `read`.
        verb: &'static str,
        /// The resource's plural name.
        resource: &'static str,
        /// Its namespace, for namespaced resources.
        namespace: Option<String>,
    },
    /// The object does not exist.
    #[error("{kind} {name:?} not found{}", in_namespace(.namespace))]
    NotFound {
        /// The kind, in lower case (`customer`, `customerclaim`).
        kind: &'static str,
        /// The object's name.
        name: String,
        /// Its namespace, for namespaced kinds.
        namespace: Option<String>,
    },
    /// The caller may not read Customers, and no namespace says where her
    /// CustomerClaims are.
    #[error(
        "you may not {verb} customers (forbidden), and no namespace is set to read customerclaims in: pass -n with the partner's or the customer's namespace"
    )]
    NoNamespace {
        /// What the console tried on Customers: `list` or `read`.
        verb: &'static str,
    },
    /// The apiserver does not accept the caller's credentials (401).
    #[error(
        "the cluster at {server} does not accept the credentials of the kubeconfig (unauthorized)"
    )]
    Unauthorized {
        /// The apiserver's address.
        server: String,
    },
    /// The apiserver cannot be reached, or the answer cannot be read.
    #[error("cannot talk to the cluster at {server}: {detail}")]
    Unreachable {
        /// The apiserver's address.
        server: String,
        /// What went wrong, on one line.
        detail: String,
    },
    /// Any other refusal of the apiserver.
    #[error("the apiserver refused to {verb} {resource}{}: {message} ({code})", in_namespace(.namespace))]
    Api {
        /// What the console tried.
        verb: &'static str,
        /// The resource's plural name.
        resource: &'static str,
        /// Its namespace, for namespaced resources.
        namespace: Option<String>,
        /// The HTTP status code.
        code: u16,
        /// The apiserver's message.
        message: String,
    },
}

fn in_namespace(namespace: &Option<String>) -> String {
    namespace
        .as_deref()
        .map(|ns| format!(" in namespace {ns}"))
        .unwrap_or_default()
}

/// One customer as the console shows it, from a Customer or from the CustomerClaim
/// that made it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct View {
    /// The Customer's name (a claim's name is its Customer's).
    pub name: String,
    /// The claim this view was read from, as `namespace/name`; `None` for a Customer.
    pub claim: Option<String>,
    /// The display name.
    pub display_name: String,
    /// The contact address.
    pub contact_email: String,
    /// The partner, if any.
    pub partner: Option<String>,
    /// The parent customer of an inner customer.
    pub parent: Option<String>,
    /// The group the customer is a member of (or asks for, before it is made).
    pub group: Option<String>,
    /// The Ready condition, if there is one yet.
    pub ready: Option<Condition>,
    /// The namespaces and their phase.
    pub namespaces: Vec<NamespaceStatus>,
    /// The counts of the objects the operator keeps.
    pub summary: Option<Summary>,
    /// The connections the customer opens (`spec.network.allowFrom`).
    pub allow_from: Vec<AllowFrom>,
    /// The `ConnectionsPending` condition while it is True.
    pub connections_pending: Option<Condition>,
}

fn pending_condition<'a>(conditions: impl IntoIterator<Item = &'a Condition>) -> Option<Condition> {
    conditions
        .into_iter()
        .find(|c| c.type_ == CONNECTIONS_PENDING && c.status == "True")
        .cloned()
}

impl View {
    /// The view of a Customer.
    pub fn of_customer(customer: &Customer) -> View {
        let status = customer.status.as_ref();
        let spec = &customer.spec;
        let conditions = status.map(|s| s.conditions.as_slice()).unwrap_or_default();
        View {
            name: customer.name_any(),
            claim: None,
            display_name: spec.display_name.clone(),
            contact_email: spec.contact_email.clone(),
            partner: spec
                .partner
                .as_ref()
                .map(|p| p.name.clone())
                .or_else(|| status.and_then(|s| s.partner.clone())),
            parent: spec.parent.clone(),
            group: status
                .and_then(|s| s.group.clone())
                .or_else(|| spec.group.clone()),
            ready: conditions.iter().find(|c| c.type_ == READY).cloned(),
            namespaces: status.map(|s| s.namespaces.clone()).unwrap_or_default(),
            summary: status.and_then(|s| s.summary.clone()),
            allow_from: spec
                .network
                .as_ref()
                .map(|n| n.allow_from.clone())
                .unwrap_or_default(),
            connections_pending: pending_condition(conditions),
        }
    }

    /// The view of a CustomerClaim: its spec and the Customer's state it mirrors.
    pub fn of_claim(claim: &CustomerClaim) -> View {
        let status = claim.status.as_ref();
        let spec = &claim.spec;
        let name = claim.name_any();
        View {
            name: status
                .and_then(|s| s.customer.clone())
                .unwrap_or_else(|| name.clone()),
            claim: Some(format!("{}/{name}", claim.namespace().unwrap_or_default())),
            display_name: spec.display_name.clone(),
            contact_email: spec.contact_email.clone(),
            partner: status.and_then(|s| s.partner.clone()),
            parent: status.and_then(|s| s.parent.clone()),
            group: status
                .and_then(|s| s.group.clone())
                .or_else(|| spec.group.clone()),
            ready: status.and_then(|s| s.conditions.iter().find(|c| c.type_ == READY).cloned()),
            namespaces: status.map(|s| s.namespaces.clone()).unwrap_or_default(),
            summary: status.and_then(|s| s.summary.clone()),
            allow_from: spec
                .network
                .as_ref()
                .map(|n| n.allow_from.clone())
                .unwrap_or_default(),
            connections_pending: status
                .and_then(|s| pending_condition(s.customer_conditions.iter().chain(&s.conditions))),
        }
    }

    /// `True`, `False` or `Unknown`, as the Ready condition says.
    pub fn ready_status(&self) -> &str {
        self.ready.as_ref().map_or("Unknown", |c| c.status.as_str())
    }

    /// The Ready condition's reason, or `-` without one.
    pub fn ready_reason(&self) -> &str {
        self.ready
            .as_ref()
            .map(|c| c.reason.as_str())
            .filter(|r| !r.is_empty())
            .unwrap_or("-")
    }

    /// The namespaces whose quotas belong to the customer: those it holds (not one in
    /// `Conflict`, which is someone else's, nor a `Missing` one).
    pub fn own_namespaces(&self) -> impl Iterator<Item = &str> {
        self.namespaces
            .iter()
            .filter(|ns| ns.phase != "Conflict" && ns.phase != "Missing")
            .map(|ns| ns.name.as_str())
    }
}

/// A peer that `ConnectionsPending` names: `Customer b`, `CustomerGroup g`, with what
/// follows in parentheses (`waiting for its consent`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingPeer {
    /// `Customer` or `CustomerGroup` (or whatever word the message puts first).
    pub kind: String,
    /// The peer's name.
    pub name: String,
    /// The note in parentheses after the name, if any.
    pub note: Option<String>,
}

/// The peers a `ConnectionsPending` message names: the list after its last `: `,
/// separated by `, `, each `Kind name` with an optional `(note)`.
pub fn pending_peers(message: &str) -> Vec<PendingPeer> {
    let Some((_, list)) = message.rsplit_once(": ") else {
        return Vec::new();
    };
    list.split(", ")
        .filter_map(|item| {
            let item = item.trim();
            let (head, note) = match item.split_once(" (") {
                Some((head, rest)) => (head, Some(rest.trim_end_matches(')').to_string())),
                None => (item, None),
            };
            let (kind, name) = head.split_once(' ')?;
            Some(PendingPeer {
                kind: kind.to_string(),
                name: name.trim().to_string(),
                note,
            })
        })
        .collect()
}

/// One `allowFrom` entry in words: `Customer b`, `CustomerGroup g` or `namespaces with
/// team=shared`, then its ports (`443/TCP, 8000-8080/UDP`, or `every port`).
pub fn describe_allow_from(allow: &AllowFrom) -> String {
    let peer = peer_of(allow);
    let ports = if allow.ports.is_empty() {
        "every port".to_string()
    } else {
        allow
            .ports
            .iter()
            .map(describe_port)
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("{peer} on {ports}")
}

fn peer_of(allow: &AllowFrom) -> String {
    if let Some(customer) = &allow.customer {
        format!("Customer {customer}")
    } else if let Some(group) = &allow.group {
        format!("CustomerGroup {group}")
    } else if let Some(selector) = &allow.namespace_selector {
        format!("namespaces with {}", describe_selector(selector))
    } else {
        "nothing".to_string()
    }
}

fn describe_port(port: &PortSpec) -> String {
    let protocol = port.protocol.map_or("TCP", |p| p.as_str());
    match port.end_port {
        Some(end) if end != port.port => format!("{}-{end}/{protocol}", port.port),
        _ => format!("{}/{protocol}", port.port),
    }
}

fn describe_selector(selector: &LabelSelector) -> String {
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for expression in selector.match_expressions.iter().flatten() {
        let values = expression.values.clone().unwrap_or_default().join(",");
        parts.push(match expression.operator.as_str() {
            "Exists" | "DoesNotExist" => format!("{} {}", expression.key, expression.operator),
            op => format!("{} {op} ({values})", expression.key),
        });
    }
    if parts.is_empty() {
        "any labels".to_string()
    } else {
        parts.join(", ")
    }
}

/// The connections of a customer, split into the open ones and those
/// `ConnectionsPending` names (each with its note, e.g. `waiting for its consent`). A
/// peer the condition names that no `allowFrom` entry lists is shown as pending as the
/// condition words it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Connections {
    /// The connections in force, one line each.
    pub open: Vec<String>,
    /// The connections still waiting, one line each.
    pub pending: Vec<String>,
}

/// The connections of `view`, open and pending.
pub fn connections(view: &View) -> Connections {
    let peers = view
        .connections_pending
        .as_ref()
        .map(|c| pending_peers(&c.message))
        .unwrap_or_default();
    let mut matched = vec![false; peers.len()];
    let mut out = Connections::default();
    for allow in &view.allow_from {
        let hit = peers.iter().position(|p| match p.kind.as_str() {
            "Customer" => allow.customer.as_deref() == Some(p.name.as_str()),
            "CustomerGroup" => allow.group.as_deref() == Some(p.name.as_str()),
            _ => false,
        });
        let line = describe_allow_from(allow);
        match hit {
            Some(i) => {
                matched[i] = true;
                out.pending.push(with_note(line, peers[i].note.as_deref()));
            }
            None => out.open.push(line),
        }
    }
    for (peer, _) in peers.iter().zip(&matched).filter(|(_, m)| !**m) {
        let line = format!("{} {}", peer.kind, peer.name);
        out.pending.push(with_note(line, peer.note.as_deref()));
    }
    out
}

fn with_note(line: String, note: Option<&str>) -> String {
    match note {
        Some(note) => format!("{line} ({note})"),
        None => line,
    }
}

/// What could be read of the ResourceQuotas in one of the customer's namespaces.
#[derive(Clone, Debug, PartialEq)]
pub enum QuotaRead {
    /// The quotas there (possibly none).
    Read(Vec<ResourceQuota>),
    /// RBAC does not let the caller list them.
    NotReadable,
}

/// The quotas of one namespace, as read.
#[derive(Clone, Debug, PartialEq)]
pub struct NamespaceQuotas {
    /// The namespace.
    pub namespace: String,
    /// What was read there.
    pub quotas: QuotaRead,
}

/// One quota as `used/hard` per resource of `spec.hard` (`status.hard` when the spec
/// has none), in name order: `pods 2/10, requests.cpu 500m/8`. A resource the quota
/// controller has not counted yet shows `?` as used.
pub fn describe_quota(quota: &ResourceQuota) -> String {
    let status = quota.status.as_ref();
    let hard = quota
        .spec
        .as_ref()
        .and_then(|s| s.hard.as_ref())
        .filter(|h| !h.is_empty())
        .or_else(|| status.and_then(|s| s.hard.as_ref()));
    let used = status.and_then(|s| s.used.as_ref());
    let Some(hard) = hard.filter(|h| !h.is_empty()) else {
        return "no hard limits".to_string();
    };
    hard.iter()
        .map(|(resource, limit)| {
            let used = used
                .and_then(|u| u.get(resource))
                .map_or("?", |q| q.0.as_str());
            format!("{resource} {used}/{}", limit.0)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rows of text as columns two spaces apart, each padded to its widest cell (the last
/// column unpadded).
pub fn columns(rows: &[Vec<String>]) -> String {
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..width)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 < row.len() {
                let pad = widths[i] - cell.chars().count();
                let _ = write!(line, "{cell}{}  ", " ".repeat(pad));
            } else {
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn or_dash(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "-".into())
}

/// `list`: one line per customer (name, display name, contact, partner, group, Ready
/// and its reason, namespaces), under a header; `empty` when there is none.
pub fn list_table(views: &[View], empty: &str) -> String {
    if views.is_empty() {
        return format!("{empty}\n");
    }
    let mut rows = vec![
        [
            "NAME",
            "DISPLAY NAME",
            "CONTACT",
            "PARTNER",
            "GROUP",
            "READY",
            "REASON",
            "NAMESPACES",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for view in views {
        rows.push(vec![
            view.name.clone(),
            view.display_name.clone(),
            view.contact_email.clone(),
            or_dash(&view.partner),
            or_dash(&view.group),
            view.ready_status().to_string(),
            view.ready_reason().to_string(),
            view.namespaces.len().to_string(),
        ]);
    }
    columns(&rows)
}

/// `overview`: one customer, its readiness, its assets (namespaces, the counts of
/// NetworkPolicies, RoleBindings and quota objects, quota used against hard per
/// namespace) and its connections, open and pending.
pub fn overview(view: &View, quotas: &[NamespaceQuotas]) -> String {
    let mut out = String::new();
    field(&mut out, "Customer:", &view.name);
    field(&mut out, "Display name:", &view.display_name);
    field(&mut out, "Contact:", &view.contact_email);
    field(&mut out, "Partner:", &or_dash(&view.partner));
    if let Some(parent) = &view.parent {
        field(&mut out, "Parent:", parent);
    }
    field(&mut out, "Group:", &or_dash(&view.group));
    field(&mut out, "Ready:", &readiness(view));
    if let Some(claim) = &view.claim {
        field(&mut out, "Claim:", claim);
    }

    out.push_str("Namespaces:\n");
    if view.namespaces.is_empty() {
        out.push_str("  none yet\n");
    } else {
        let rows: Vec<Vec<String>> = view
            .namespaces
            .iter()
            .map(|ns| vec![format!("  {}", ns.name), ns.phase.clone()])
            .collect();
        out.push_str(&columns(&rows));
    }
    match &view.summary {
        Some(s) => {
            field(
                &mut out,
                "NetworkPolicies:",
                &s.network_policies.to_string(),
            );
            field(&mut out, "RoleBindings:", &s.role_bindings.to_string());
            field(&mut out, "Quota objects:", &s.quotas.to_string());
        }
        None => field(&mut out, "Objects:", "not counted yet"),
    }

    out.push_str("Quota (used/hard):\n");
    out.push_str(&quota_block(quotas));

    let connections = connections(view);
    out.push_str("Connections:\n");
    let mut rows = Vec::new();
    for line in &connections.open {
        rows.push(vec!["  open:".to_string(), line.clone()]);
    }
    for line in &connections.pending {
        rows.push(vec!["  pending:".to_string(), line.clone()]);
    }
    if rows.is_empty() {
        out.push_str("  none\n");
    } else {
        out.push_str(&columns(&rows));
    }
    out
}

/// Width of the labels of [`overview`], so that every value starts in one column.
const LABEL_WIDTH: usize = 18;

fn field(out: &mut String, label: &str, value: &str) {
    let _ = writeln!(out, "{label:<LABEL_WIDTH$}{value}");
}

fn readiness(view: &View) -> String {
    match &view.ready {
        None => "Unknown (no status yet)".to_string(),
        Some(c) => {
            let mut text = c.status.clone();
            if !c.reason.is_empty() {
                let _ = write!(text, " ({})", c.reason);
            }
            if !c.message.is_empty() {
                let _ = write!(text, ": {}", c.message);
            }
            text
        }
    }
}

fn quota_block(quotas: &[NamespaceQuotas]) -> String {
    if quotas.is_empty() {
        return "  no namespace yet\n".to_string();
    }
    let mut rows = Vec::new();
    for ns in quotas {
        let namespace = format!("  {}", ns.namespace);
        match &ns.quotas {
            QuotaRead::NotReadable => rows.push(vec![namespace, "not readable".into()]),
            QuotaRead::Read(list) if list.is_empty() => {
                rows.push(vec![namespace, "no ResourceQuota".into()])
            }
            QuotaRead::Read(list) => {
                let mut sorted: Vec<&ResourceQuota> = list.iter().collect();
                sorted.sort_by_key(|q| q.name_any());
                for quota in sorted {
                    rows.push(vec![
                        namespace.clone(),
                        quota.name_any(),
                        describe_quota(quota),
                    ]);
                }
            }
        }
    }
    columns(&rows)
}

// ------------------------------------------------------------------ the cluster

/// A client acting as the kubeconfig's user, and the namespace to read claims in.
pub struct Connection {
    /// The client.
    pub client: Client,
    /// The apiserver's address, for messages.
    pub server: String,
    /// `-n`, else the context's namespace.
    pub namespace: Option<String>,
}

/// Reads the kubeconfig as kubectl does and makes a client of the chosen context.
pub async fn connect(target: &Target) -> Result<Connection, Error> {
    let kubeconfig = match &target.kubeconfig {
        Some(path) => Kubeconfig::read_from(path)
            .map_err(|e| Error::Config(format!("{}: {}", path.display(), one_line(&e))))?,
        None => Kubeconfig::read().map_err(|e| {
            Error::Config(format!(
                "no kubeconfig to read ({}): set KUBECONFIG or pass --kubeconfig",
                one_line(&e)
            ))
        })?,
    };
    let context_name = target
        .context
        .clone()
        .or_else(|| kubeconfig.current_context.clone());
    let Some(context_name) = context_name else {
        return Err(Error::Config(
            "the kubeconfig has no current context: pass --context".into(),
        ));
    };
    let context = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .ok_or_else(|| {
            Error::Config(format!("context {context_name:?} is not in the kubeconfig"))
        })?;
    let context_namespace = context
        .context
        .as_ref()
        .and_then(|c| c.namespace.clone())
        .filter(|ns| !ns.is_empty());
    let options = KubeConfigOptions {
        context: Some(context_name.clone()),
        ..Default::default()
    };
    let config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| Error::Config(format!("context {context_name:?}: {}", one_line(&e))))?;
    let server = config.cluster_url.to_string();
    let client = Client::try_from(config).map_err(|e| Error::Unreachable {
        server: server.clone(),
        detail: one_line(&e),
    })?;
    Ok(Connection {
        client,
        server,
        namespace: target.namespace.clone().or(context_namespace),
    })
}

/// An error and its causes on one line, `a: b: c`, without repeating a cause that
/// the message already includes.
fn one_line(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What an apiserver error means for the console, for the request `verb` on
/// `resource` (in `namespace`).
struct Attempt<'a> {
    verb: &'static str,
    resource: &'static str,
    kind: &'static str,
    name: Option<&'a str>,
    namespace: Option<&'a str>,
}

impl Attempt<'_> {
    fn error(&self, server: &str, error: kube::Error) -> Error {
        let namespace = self.namespace.map(str::to_string);
        match error {
            kube::Error::Api(status) => match status.code {
                401 => Error::Unauthorized {
                    server: server.to_string(),
                },
                403 => Error::Forbidden {
                    verb: self.verb,
                    resource: self.resource,
                    namespace,
                },
                404 if self.name.is_some() => Error::NotFound {
                    kind: self.kind,
                    name: self.name.unwrap_or_default().to_string(),
                    namespace,
                },
                code => Error::Api {
                    verb: self.verb,
                    resource: self.resource,
                    namespace,
                    code,
                    message: status
                        .message
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" "),
                },
            },
            other => Error::Unreachable {
                server: server.to_string(),
                detail: one_line(&other),
            },
        }
    }
}

fn is_forbidden(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 403)
}

/// Runs `list` or `overview` against the cluster of `target` and returns the text to
/// print.
pub async fn run(target: &Target, request: &Request) -> Result<String, Error> {
    let connection = connect(target).await?;
    match request {
        Request::List => list(&connection).await,
        Request::Overview(name) => show(&connection, name).await,
    }
}

async fn list(connection: &Connection) -> Result<String, Error> {
    let client = &connection.client;
    let customers: Api<Customer> = Api::all(client.clone());
    match customers.list(&ListParams::default()).await {
        Ok(list) => {
            let views: Vec<View> = list.items.iter().map(View::of_customer).collect();
            Ok(list_table(&views, "No customers."))
        }
        Err(e) if is_forbidden(&e) => {
            let namespace = connection
                .namespace
                .as_deref()
                .ok_or(Error::NoNamespace { verb: "list" })?;
            let claims: Api<CustomerClaim> = Api::namespaced(client.clone(), namespace);
            let attempt = Attempt {
                verb: "list",
                resource: "customerclaims",
                kind: "customerclaim",
                name: None,
                namespace: Some(namespace),
            };
            let list = claims
                .list(&ListParams::default())
                .await
                .map_err(|e| attempt.error(&connection.server, e))?;
            let views: Vec<View> = list.items.iter().map(View::of_claim).collect();
            Ok(list_table(
                &views,
                &format!("No customer claims in namespace {namespace}."),
            ))
        }
        Err(e) => Err(Attempt {
            verb: "list",
            resource: "customers",
            kind: "customer",
            name: None,
            namespace: None,
        }
        .error(&connection.server, e)),
    }
}

async fn show(connection: &Connection, name: &str) -> Result<String, Error> {
    let view = read_view(connection, name).await?;
    let mut quotas = Vec::new();
    for namespace in view.own_namespaces() {
        quotas.push(read_quotas(connection, namespace).await?);
    }
    Ok(overview(&view, &quotas))
}

/// Customer `name` when the caller may read Customers, else claim `name` in the
/// connection's namespace.
async fn read_view(connection: &Connection, name: &str) -> Result<View, Error> {
    let client = &connection.client;
    let customers: Api<Customer> = Api::all(client.clone());
    let attempt = Attempt {
        verb: "read",
        resource: "customers",
        kind: "customer",
        name: Some(name),
        namespace: None,
    };
    match customers.get(name).await {
        Ok(customer) => Ok(View::of_customer(&customer)),
        Err(e) if is_forbidden(&e) => {
            let namespace = connection
                .namespace
                .as_deref()
                .ok_or(Error::NoNamespace { verb: "read" })?;
            let claims: Api<CustomerClaim> = Api::namespaced(client.clone(), namespace);
            let attempt = Attempt {
                resource: "customerclaims",
                kind: "customerclaim",
                namespace: Some(namespace),
                ..attempt
            };
            claims
                .get(name)
                .await
                .map(|claim| View::of_claim(&claim))
                .map_err(|e| attempt.error(&connection.server, e))
        }
        Err(e) => Err(attempt.error(&connection.server, e)),
    }
}

async fn read_quotas(connection: &Connection, namespace: &str) -> Result<NamespaceQuotas, Error> {
    let quotas: Api<ResourceQuota> = Api::namespaced(connection.client.clone(), namespace);
    let quotas = match quotas.list(&ListParams::default()).await {
        Ok(list) => QuotaRead::Read(list.items),
        Err(e) if is_forbidden(&e) => QuotaRead::NotReadable,
        Err(e) => {
            return Err(Attempt {
                verb: "list",
                resource: "resourcequotas",
                kind: "resourcequota",
                name: None,
                namespace: Some(namespace),
            }
            .error(&connection.server, e));
        }
    };
    Ok(NamespaceQuotas {
        namespace: namespace.to_string(),
        quotas,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn customer() -> Customer {
        serde_json::from_value(json!({
            "apiVersion": "customers.dev/v1alpha1", "kind": "Customer",
            "metadata": {"name": "astral"},
            "spec": {
                "displayName": "Astral Voyage",
                "contactEmail": "ops@astral.example",
                "partner": {"name": "acme"},
                "network": {"allowFrom": [
                    {"customer": "galactic", "ports": [{"port": 443}]},
                    {"customer": "beta", "ports": [{"port": 8000, "endPort": 8080, "protocol": "UDP"}]},
                    {"group": "space"},
                    {"namespaceSelector": {"matchLabels": {"team": "shared"}}}
                ]}
            },
            "status": {
                "group": "all",
                "namespaces": [
                    {"name": "astral", "phase": "Active"},
                    {"name": "astral-dev", "phase": "Conflict"}
                ],
                "summary": {"namespaces": 2, "networkPolicies": 6, "roleBindings": 3, "quotas": 2},
                "conditions": [
                    {"type": "Ready", "status": "False", "reason": "ConnectionsPending",
                     "message": "waiting for: Customer beta", "lastTransitionTime": "2025-01-01T00:00:00Z"},
                    {"type": "ConnectionsPending", "status": "True", "reason": "PeerNotFound",
                     "message": "allowFrom names what does not exist yet; the connection opens when it appears: Customer beta (waiting for its consent), CustomerGroup space, Customer gone",
                     "lastTransitionTime": "2025-01-01T00:00:00Z"}
                ]
            }
        }))
        .unwrap()
    }

    fn claim() -> CustomerClaim {
        serde_json::from_value(json!({
            "apiVersion": "customers.dev/v1alpha1", "kind": "CustomerClaim",
            "metadata": {"name": "shop", "namespace": "partner-acme"},
            "spec": {"displayName": "Shop", "contactEmail": "shop@acme.example", "group": "asked",
                     "network": {"allowFrom": [{"customer": "other"}]}},
            "status": {
                "customer": "shop", "partner": "acme", "group": "retail",
                "namespaces": [{"name": "shop", "phase": "Active"}],
                "summary": {"namespaces": 1, "networkPolicies": 4, "roleBindings": 2, "quotas": 1},
                "conditions": [{"type": "Ready", "status": "True", "reason": "Reconciled",
                                "message": "everything the spec asks for is in place",
                                "lastTransitionTime": "2025-01-01T00:00:00Z"}],
                "customerConditions": [{"type": "ConnectionsPending", "status": "True", "reason": "ConsentMissing",
                                        "message": "waiting for the other side: Customer other (waiting for its consent)",
                                        "lastTransitionTime": "2025-01-01T00:00:00Z"}]
            }
        }))
        .unwrap()
    }

    fn quota(hard: &[(&str, &str)], used: &[(&str, &str)]) -> ResourceQuota {
        let map = |pairs: &[(&str, &str)]| -> serde_json::Value {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect()
        };
        serde_json::from_value(json!({
            "metadata": {"name": "customer-quota", "namespace": "astral"},
            "spec": {"hard": map(hard)},
            "status": {"hard": map(hard), "used": map(used)}
        }))
        .unwrap()
    }

    #[test]
    fn a_customer_view_takes_spec_and_status() {
        let view = View::of_customer(&customer());
        assert_eq!(view.name, "astral");
        assert_eq!(view.claim, None);
        assert_eq!(view.display_name, "Astral Voyage");
        assert_eq!(view.contact_email, "ops@astral.example");
        assert_eq!(view.partner.as_deref(), Some("acme"));
        assert_eq!(view.group.as_deref(), Some("all"));
        assert_eq!(view.ready_status(), "False");
        assert_eq!(view.ready_reason(), "ConnectionsPending");
        assert_eq!(view.allow_from.len(), 4);
        assert!(view.connections_pending.is_some());
        // A namespace in Conflict is someone else's: its quotas are not the customer's.
        assert_eq!(view.own_namespaces().collect::<Vec<_>>(), vec!["astral"]);
    }

    #[test]
    fn a_claim_view_mirrors_its_customer() {
        let view = View::of_claim(&claim());
        assert_eq!(view.name, "shop");
        assert_eq!(view.claim.as_deref(), Some("partner-acme/shop"));
        assert_eq!(view.partner.as_deref(), Some("acme"));
        // The Customer's group wins over what the claim asks for.
        assert_eq!(view.group.as_deref(), Some("retail"));
        assert_eq!(view.ready_status(), "True");
        assert_eq!(view.summary.as_ref().unwrap().network_policies, 4);
        let pending = connections(&view);
        assert!(pending.open.is_empty());
        assert_eq!(
            pending.pending,
            vec!["Customer other on every port (waiting for its consent)"]
        );
    }

    #[test]
    fn a_view_without_status_is_unknown() {
        let mut claim = claim();
        claim.status = None;
        let view = View::of_claim(&claim);
        assert_eq!(view.ready_status(), "Unknown");
        assert_eq!(view.ready_reason(), "-");
        assert_eq!(view.group.as_deref(), Some("asked"));
        assert!(overview(&view, &[]).contains("Ready:            Unknown (no status yet)"));
    }

    #[test]
    fn pending_peers_are_the_list_after_the_last_colon() {
        let peers = pending_peers(
            "some text: more: Customer b, CustomerGroup g, Customer c (waiting for its consent)",
        );
        let names: Vec<(&str, &str, Option<&str>)> = peers
            .iter()
            .map(|p| (p.kind.as_str(), p.name.as_str(), p.note.as_deref()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("Customer", "b", None),
                ("CustomerGroup", "g", None),
                ("Customer", "c", Some("waiting for its consent")),
            ]
        );
        assert!(pending_peers("no list here").is_empty());
    }

    #[test]
    fn connections_split_into_open_and_pending() {
        let split = connections(&View::of_customer(&customer()));
        assert_eq!(
            split.open,
            vec![
                "Customer galactic on 443/TCP",
                "namespaces with team=shared on every port"
            ]
        );
        assert_eq!(
            split.pending,
            vec![
                "Customer beta on 8000-8080/UDP (waiting for its consent)",
                "CustomerGroup space on every port",
                // Named by the condition, listed by no allowFrom entry: shown as it is.
                "Customer gone",
            ]
        );
    }

    #[test]
    fn without_the_condition_every_connection_is_open() {
        let mut customer = customer();
        let status = customer.status.as_mut().unwrap();
        status.conditions.retain(|c| c.type_ != CONNECTIONS_PENDING);
        let split = connections(&View::of_customer(&customer));
        assert_eq!(split.open.len(), 4);
        assert!(split.pending.is_empty());
        // A condition that is False names nothing pending either.
        let mut customer = self::customer();
        for c in &mut customer.status.as_mut().unwrap().conditions {
            c.status = "False".into();
        }
        assert!(
            connections(&View::of_customer(&customer))
                .pending
                .is_empty()
        );
    }

    #[test]
    fn selectors_read_as_labels_and_expressions() {
        let allow: AllowFrom = serde_json::from_value(json!({"namespaceSelector": {
            "matchLabels": {"a": "1"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["dev", "qa"]},
                {"key": "x", "operator": "Exists"}
            ]
        }}))
        .unwrap();
        assert_eq!(
            describe_allow_from(&allow),
            "namespaces with a=1, env In (dev,qa), x Exists on every port"
        );
    }

    #[test]
    fn a_quota_shows_used_against_hard() {
        let q = quota(
            &[("pods", "10"), ("requests.cpu", "8")],
            &[("pods", "2"), ("requests.cpu", "500m")],
        );
        assert_eq!(describe_quota(&q), "pods 2/10, requests.cpu 500m/8");
        let uncounted = quota(&[("pods", "10")], &[]);
        assert_eq!(describe_quota(&uncounted), "pods ?/10");
    }

    #[test]
    fn list_is_a_table_with_a_header() {
        let views = [View::of_customer(&customer()), View::of_claim(&claim())];
        let text = list_table(&views, "No customers.");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            [
                "NAME",
                "DISPLAY",
                "NAME",
                "CONTACT",
                "PARTNER",
                "GROUP",
                "READY",
                "REASON",
                "NAMESPACES"
            ]
        );
        assert_eq!(
            lines[1]
                .split("  ")
                .filter(|c| !c.is_empty())
                .map(str::trim)
                .collect::<Vec<_>>(),
            [
                "astral",
                "Astral Voyage",
                "ops@astral.example",
                "acme",
                "all",
                "False",
                "ConnectionsPending",
                "2"
            ]
        );
        // Columns line up: every cell of a column starts where its header does.
        let at = lines[0].find("CONTACT").unwrap();
        assert_eq!(lines[1].find("ops@").unwrap(), at);
        assert_eq!(lines[2].find("shop@").unwrap(), at);
        assert_eq!(list_table(&[], "No customers."), "No customers.\n");
    }

    #[test]
    fn overview_shows_every_field() {
        let view = View::of_customer(&customer());
        let quotas = [NamespaceQuotas {
            namespace: "astral".into(),
            quotas: QuotaRead::Read(vec![quota(&[("pods", "10")], &[("pods", "3")])]),
        }];
        let text = overview(&view, &quotas);
        for expected in [
            "Customer:         astral",
            "Display name:     Astral Voyage",
            "Contact:          ops@astral.example",
            "Partner:          acme",
            "Group:            all",
            "Ready:            False (ConnectionsPending): waiting for: Customer beta",
            "  astral      Active",
            "  astral-dev  Conflict",
            "NetworkPolicies:  6",
            "RoleBindings:     3",
            "Quota objects:    2",
            "  astral  customer-quota  pods 3/10",
            "  open:     Customer galactic on 443/TCP",
            "  pending:  Customer beta on 8000-8080/UDP (waiting for its consent)",
        ] {
            assert!(
                text.contains(expected),
                "{expected:?} missing from:\n{text}"
            );
        }
        assert!(!text.contains("Claim:"));
        assert!(!text.contains("Parent:"));
    }

    #[test]
    fn overview_of_a_claim_names_it_and_unreadable_quotas() {
        let view = View::of_claim(&claim());
        let quotas = [
            NamespaceQuotas {
                namespace: "shop".into(),
                quotas: QuotaRead::NotReadable,
            },
            NamespaceQuotas {
                namespace: "shop-dev".into(),
                quotas: QuotaRead::Read(vec![]),
            },
        ];
        let text = overview(&view, &quotas);
        assert!(
            text.contains("Claim:            partner-acme/shop"),
            "{text}"
        );
        assert!(text.contains("  shop      not readable"), "{text}");
        assert!(text.contains("  shop-dev  no ResourceQuota"), "{text}");
        let mut bare = view.clone();
        bare.summary = None;
        bare.namespaces.clear();
        bare.allow_from.clear();
        bare.connections_pending = None;
        let text = overview(&bare, &[]);
        assert!(text.contains("Objects:          not counted yet"), "{text}");
        assert!(text.contains("Namespaces:\n  none yet\n"), "{text}");
        assert!(text.contains("Connections:\n  none\n"), "{text}");
    }

    #[test]
    fn refusals_are_one_line() {
        let forbidden = Error::Forbidden {
            verb: "read",
            resource: "customerclaims",
            namespace: Some("partner-other".into()),
        };
        assert_eq!(
            forbidden.to_string(),
            "you may not read customerclaims in namespace partner-other (forbidden)"
        );
        let missing = Error::NotFound {
            kind: "customerclaim",
            name: "x".into(),
            namespace: Some("partner-acme".into()),
        };
        assert_eq!(
            missing.to_string(),
            "customerclaim \"x\" not found in namespace partner-acme"
        );
        let cluster = Error::NotFound {
            kind: "customer",
            name: "x".into(),
            namespace: None,
        };
        assert_eq!(cluster.to_string(), "customer \"x\" not found");
        let nowhere = Error::NoNamespace { verb: "list" }.to_string();
        assert!(nowhere.contains("pass -n with the partner's or the customer's namespace"));
        for e in [forbidden, missing, cluster] {
            assert!(!e.to_string().contains('\n'));
        }
    }

    #[test]
    fn kube_errors_become_the_console_s_own() {
        let attempt = Attempt {
            verb: "read",
            resource: "customerclaims",
            kind: "customerclaim",
            name: Some("x"),
            namespace: Some("ns"),
        };
        let status = |code: u16| {
            kube::Error::Api(Box::new(
                kube::core::Status::failure("the apiserver's words", "Reason").with_code(code),
            ))
        };
        assert!(matches!(
            attempt.error("https://s", status(403)),
            Error::Forbidden { .. }
        ));
        assert!(matches!(
            attempt.error("https://s", status(404)),
            Error::NotFound { .. }
        ));
        assert!(matches!(
            attempt.error("https://s", status(401)),
            Error::Unauthorized { .. }
        ));
        assert_eq!(
            attempt.error("https://s", status(500)).to_string(),
            "the apiserver refused to read customerclaims in namespace ns: the apiserver's words (500)"
        );
    }

    #[test]
    fn columns_pad_all_but_the_last() {
        let rows = vec![
            vec!["a".to_string(), "bb".into(), "c".into()],
            vec!["aaa".to_string(), "b".into()],
        ];
        assert_eq!(columns(&rows), "a    bb  c\naaa  b\n");
    }
}
