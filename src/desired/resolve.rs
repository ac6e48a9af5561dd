//! A customer's effective settings: its own fields, else its group's defaults, else the
//! operator's.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::ResourceExt;

use super::directory::Directory;
use crate::api::{Customer, CustomerGroup, Isolation, LimitItem, QuotaSpec};
use crate::error::{Problem, Reason};
use crate::settings::Settings;

/// Longest chain of parents a customer may have (a top-level customer has none).
pub const MAX_PARENT_DEPTH: usize = 5;

/// The group a customer belongs to: `spec.group`, else the default group.
pub fn group_name(customer: &Customer, settings: &Settings) -> String {
    group_name_or(customer, &settings.default_group)
}

/// The group a customer belongs to: `spec.group`, else `default_group`.
pub fn group_name_or(customer: &Customer, default_group: &str) -> String {
    customer
        .spec
        .group
        .clone()
        .unwrap_or_else(|| default_group.to_string())
}

pub use super::names::{claims, full_namespace_name, namespace_names};

/// The customer's parents, nearest first. Refused when a parent is unknown, the chain
/// loops, or it is longer than [`MAX_PARENT_DEPTH`].
pub fn ancestors(customer: &Customer, dir: &dyn Directory) -> Result<Vec<Arc<Customer>>, Problem> {
    let me = customer.name_any();
    let mut chain: Vec<Arc<Customer>> = Vec::new();
    let mut next = customer.spec.parent.clone();
    while let Some(parent) = next {
        if parent == me || chain.iter().any(|c| c.name_any() == parent) {
            let mut path: Vec<String> = vec![me.clone()];
            path.extend(chain.iter().map(|c| c.name_any()));
            path.push(parent);
            return Err(Problem::new(
                Reason::ParentCycle,
                "spec.parent",
                format!("parents form a cycle: {}", path.join(" -> ")),
            ));
        }
        if chain.len() == MAX_PARENT_DEPTH {
            return Err(Problem::new(
                Reason::ParentTooDeep,
                "spec.parent",
                format!("a customer may have at most {MAX_PARENT_DEPTH} levels of parents"),
            ));
        }
        let Some(found) = dir.customer(&parent) else {
            let field = if chain.is_empty() {
                "spec.parent".to_string()
            } else {
                format!("spec.parent (via {})", chain.last().unwrap().name_any())
            };
            return Err(Problem::new(
                Reason::UnknownParent,
                field,
                format!("parent Customer {parent:?} does not exist"),
            ));
        };
        next = found.spec.parent.clone();
        chain.push(found);
    }
    Ok(chain)
}

/// Why a customer is frozen: the one place that decides it (its own `spec.frozen`,
/// else its group's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Freeze {
    /// The Customer's own `spec.frozen`.
    Own,
    /// The `spec.frozen` of its CustomerGroup, named.
    Group(String),
}

impl Freeze {
    /// The reason the `Frozen` condition and a held deletion give.
    pub fn reason(&self) -> &'static str {
        match self {
            Freeze::Own => "Frozen",
            Freeze::Group(_) => "GroupFrozen",
        }
    }

    /// Where the freeze comes from and how to lift it.
    pub fn source(&self) -> String {
        match self {
            Freeze::Own => "spec.frozen of the Customer".to_string(),
            Freeze::Group(group) => format!("spec.frozen of CustomerGroup {group}"),
        }
    }
}

/// Whether the customer is frozen, and by what: its own `spec.frozen` wins over its
/// group's, so the condition names the nearer source. A frozen parent does not freeze
/// its inner customers.
pub fn frozen_by(customer: &Customer, dir: &dyn Directory, settings: &Settings) -> Option<Freeze> {
    if customer.spec.frozen {
        return Some(Freeze::Own);
    }
    let group = group_name(customer, settings);
    dir.group(&group)
        .filter(|g| g.spec.frozen)
        .map(|_| Freeze::Group(group))
}

/// A customer's settings after group defaults are applied.
#[derive(Clone, Debug)]
pub struct Effective {
    /// The group name (explicit or default).
    pub group_name: String,
    /// The group object, when one of that name exists.
    pub group: Option<Arc<CustomerGroup>>,
    /// Isolation level.
    pub isolation: Isolation,
    /// Whether internet egress is open.
    pub internet_egress: bool,
    /// The quota, if any.
    pub quota: Option<QuotaSpec>,
    /// The LimitRange items, if any.
    pub limits: Option<Vec<LimitItem>>,
    /// Labels the group puts on every member namespace.
    pub group_namespace_labels: BTreeMap<String, String>,
    /// Whether the customer is frozen, and by what.
    pub frozen: Option<Freeze>,
}

/// Applies the group's defaults to the fields the customer leaves unset.
pub fn effective(customer: &Customer, dir: &dyn Directory, settings: &Settings) -> Effective {
    let group_name = group_name(customer, settings);
    let group = dir.group(&group_name);
    let defaults = group.as_ref().and_then(|g| g.spec.defaults.clone());
    let default_network = defaults.as_ref().and_then(|d| d.network.clone());
    let own_network = customer.spec.network.as_ref();
    let isolation = own_network
        .and_then(|n| n.isolation)
        .or_else(|| default_network.as_ref().and_then(|n| n.isolation))
        .unwrap_or(Isolation::Standard);
    let internet_egress = own_network
        .and_then(|n| n.internet_egress)
        .or_else(|| default_network.as_ref().and_then(|n| n.internet_egress))
        .unwrap_or(isolation == Isolation::Standard);
    Effective {
        frozen: frozen_by(customer, dir, settings),
        quota: customer
            .spec
            .quota
            .clone()
            .or_else(|| defaults.as_ref().and_then(|d| d.quota.clone())),
        limits: customer
            .spec
            .limits
            .clone()
            .or_else(|| defaults.as_ref().and_then(|d| d.limits.clone())),
        group_namespace_labels: defaults.map(|d| d.namespace_labels).unwrap_or_default(),
        group_name,
        group,
        isolation,
        internet_egress,
    }
}

/// Whether `other` was there first and so keeps a namespace name both ask for: the older
/// creation time wins, the name breaks ties (and decides offline, where there is no time).
pub fn is_senior(other: &Customer, me: &Customer) -> bool {
    let key = |c: &Customer| (c.creation_timestamp().map(|t| t.0), c.name_any());
    match (other.creation_timestamp(), me.creation_timestamp()) {
        (Some(_), None) => true,
        (None, Some(_)) => false,
        _ => key(other) < key(me),
    }
}
