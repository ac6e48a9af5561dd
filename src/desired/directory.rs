//! What a customer's objects depend on besides its own spec: the other customers and the
//! groups. The controller answers from its caches, `render` from the files it read.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kube::ResourceExt;

use crate::api::{Access, Customer, CustomerGroup, CustomerUsers, Partner};

/// Read access to the Customers and CustomerGroups the operator knows.
pub trait Directory {
    /// The Customer of that name, if known.
    fn customer(&self, name: &str) -> Option<Arc<Customer>>;
    /// The CustomerGroup of that name, if known.
    fn group(&self, name: &str) -> Option<Arc<CustomerGroup>>;
    /// Every known Customer.
    fn customers(&self) -> Vec<Arc<Customer>>;
    /// The Customers whose `allowFrom` names the customer `customer` or the group
    /// `group`, sorted by name (candidates: the caller checks each rule). The controller
    /// answers from an index; the default passes over [`Directory::customers`].
    fn opening_to(&self, customer: &str, group: &str) -> Vec<Arc<Customer>> {
        let mut opening: Vec<Arc<Customer>> = self
            .customers()
            .into_iter()
            .filter(|c| {
                c.spec.network.iter().flat_map(|n| &n.allow_from).any(|a| {
                    a.customer.as_deref() == Some(customer) || a.group.as_deref() == Some(group)
                })
            })
            .collect();
        opening.sort_by_key(|c| c.name_any());
        opening
    }
    /// The members of `group` (the Customers that name it, and for `default_group` those
    /// that name none), sorted by name. The controller answers from an index; the
    /// default passes over [`Directory::customers`].
    fn members(&self, group: &str, default_group: &str) -> Vec<Arc<Customer>> {
        let mut members: Vec<Arc<Customer>> = self
            .customers()
            .into_iter()
            .filter(|c| c.spec.group.as_deref().unwrap_or(default_group) == group)
            .collect();
        members.sort_by_key(|c| c.name_any());
        members
    }
    /// What the namespace of this name is, if it exists. Offline there are no
    /// namespaces: [`Existing::Absent`].
    fn namespace(&self, _namespace: &str) -> Existing {
        Existing::Absent
    }
    /// The existing namespaces that carry the customer's label and record the Customer
    /// of this uid as their owner. Offline: none.
    fn owned_namespaces(&self, _customer: &str, _uid: &str) -> Vec<String> {
        Vec::new()
    }
    /// The Partner of that name, if known.
    fn partner(&self, _name: &str) -> Option<Arc<Partner>> {
        None
    }
    /// Whether `namespace` is the one the operator made for `partner` (claims there ask
    /// on the partner's behalf). Offline there are no namespaces: true.
    fn is_partner_namespace(&self, _namespace: &str, _partner: &Partner) -> bool {
        true
    }
    /// The customer that holds this namespace, if any.
    fn namespace_holder(&self, namespace: &str) -> Option<String> {
        match self.namespace(namespace) {
            Existing::HeldBy(holder) => Some(holder),
            _ => None,
        }
    }
    /// The people the customer's admins added themselves (CustomerUsers in the
    /// customer's own namespaces).
    fn users_of(&self, _customer: &Customer) -> Vec<Access> {
        Vec::new()
    }
}

/// What an existing namespace is to the customers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Existing {
    /// No namespace of that name exists (or none is known).
    Absent,
    /// It is this customer's: its label names it and it records its owner
    /// ([`super::ownership`]).
    HeldBy(String),
    /// It is no customer's, and a cluster admin hands it over to this customer
    /// (`customers.dev/adopt`).
    HandedTo(String),
    /// It exists and is no customer's: never adopted, changed or trusted.
    Foreign,
}

/// A [`Directory`] held in maps: for `render`, tests and benchmarks.
#[derive(Clone, Debug, Default)]
pub struct MapDirectory {
    /// Customers by name.
    pub customers: BTreeMap<String, Arc<Customer>>,
    /// Groups by name.
    pub groups: BTreeMap<String, Arc<CustomerGroup>>,
    /// Existing namespaces and the customer that holds each (empty offline).
    pub namespace_holders: BTreeMap<String, String>,
    /// Existing namespaces that are no customer's (empty offline).
    pub foreign_namespaces: BTreeSet<String>,
    /// Partners by name.
    pub partners: BTreeMap<String, Arc<Partner>>,
    /// CustomerUsers, each with its namespace.
    pub users: Vec<Arc<CustomerUsers>>,
}

impl MapDirectory {
    /// A directory of these customers and groups.
    pub fn new(
        customers: impl IntoIterator<Item = Customer>,
        groups: impl IntoIterator<Item = CustomerGroup>,
    ) -> Self {
        MapDirectory {
            customers: customers
                .into_iter()
                .map(|c| (c.name_any(), Arc::new(c)))
                .collect(),
            groups: groups
                .into_iter()
                .map(|g| (g.name_any(), Arc::new(g)))
                .collect(),
            namespace_holders: BTreeMap::new(),
            foreign_namespaces: BTreeSet::new(),
            partners: BTreeMap::new(),
            users: Vec::new(),
        }
    }
}

impl Directory for MapDirectory {
    fn customer(&self, name: &str) -> Option<Arc<Customer>> {
        self.customers.get(name).cloned()
    }
    fn group(&self, name: &str) -> Option<Arc<CustomerGroup>> {
        self.groups.get(name).cloned()
    }
    fn customers(&self) -> Vec<Arc<Customer>> {
        self.customers.values().cloned().collect()
    }
    fn partner(&self, name: &str) -> Option<Arc<Partner>> {
        self.partners.get(name).cloned()
    }
    /// A namespace no holder is recorded for is held by the customer that asks for it
    /// (offline, every namespace is still to be made).
    fn namespace_holder(&self, namespace: &str) -> Option<String> {
        if let Some(holder) = self.namespace_holders.get(namespace) {
            return Some(holder.clone());
        }
        if self.foreign_namespaces.contains(namespace) {
            return None;
        }
        self.customers
            .values()
            .find(|c| super::names::claims(c, namespace))
            .map(|c| c.name_any())
    }
    fn users_of(&self, customer: &Customer) -> Vec<Access> {
        let name = customer.name_any();
        self.users
            .iter()
            .filter(|u| {
                u.metadata
                    .namespace
                    .as_deref()
                    .and_then(|ns| self.namespace_holder(ns))
                    .as_deref()
                    == Some(name.as_str())
            })
            .map(|u| u.spec.access())
            .collect()
    }
    fn namespace(&self, namespace: &str) -> Existing {
        if let Some(holder) = self.namespace_holders.get(namespace) {
            Existing::HeldBy(holder.clone())
        } else if self.foreign_namespaces.contains(namespace) {
            Existing::Foreign
        } else {
            Existing::Absent
        }
    }
}
