//! What a customer's objects depend on besides its own spec: the other customers and the
//! groups. The controller answers from its caches, `render` from the files it read.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::ResourceExt;

use crate::api::{Customer, CustomerGroup};

/// Read access to the Customers and CustomerGroups the operator knows.
pub trait Directory {
    /// The Customer of that name, if known.
    fn customer(&self, name: &str) -> Option<Arc<Customer>>;
    /// The CustomerGroup of that name, if known.
    fn group(&self, name: &str) -> Option<Arc<CustomerGroup>>;
    /// Every known Customer.
    fn customers(&self) -> Vec<Arc<Customer>>;
    /// The customer that holds an existing namespace of this name (its label and an
    /// ownerReference to it), if known. Offline there are no namespaces: `None`.
    fn namespace_holder(&self, _namespace: &str) -> Option<String> {
        None
    }
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
    fn namespace_holder(&self, namespace: &str) -> Option<String> {
        self.namespace_holders.get(namespace).cloned()
    }
}
