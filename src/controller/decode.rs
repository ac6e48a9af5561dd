//! Customers are watched as untyped objects and decoded one by one, so that one object
//! the types cannot read (stored under an older or looser schema) is reported on its own
//! status and in an Event ([`super::unreadable`]) instead of stalling the watch of every
//! Customer.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use kube::api::{ApiResource, DynamicObject};
use kube::runtime::watcher::Event;
use kube::{Api, Client, ResourceExt};

use crate::api::{Customer, CustomerSpec};

/// Reason on the Ready condition of a Customer the operator cannot read.
pub const UNREADABLE: &str = "Unreadable";

/// Customers that could not be decoded: a stand-in with their metadata, and the error.
#[derive(Clone, Debug, Default)]
pub struct Unreadable(Arc<Mutex<BTreeMap<String, (Customer, String)>>>);

impl Unreadable {
    fn set(&self, stand_in: Customer, error: String) {
        let mut map = self.0.lock().expect("unreadable lock");
        map.insert(stand_in.name_any(), (stand_in, error));
    }
    fn clear(&self, name: &str) {
        self.0.lock().expect("unreadable lock").remove(name);
    }
    /// Every unreadable Customer (a stand-in) and why.
    pub fn snapshot(&self) -> Vec<(Customer, String)> {
        self.0
            .lock()
            .expect("unreadable lock")
            .values()
            .cloned()
            .collect()
    }
}

/// A Customer with only the metadata of `object`, to take it out of the cache.
fn stand_in(object: &DynamicObject) -> Customer {
    Customer {
        metadata: object.metadata.clone(),
        spec: CustomerSpec::default(),
        status: None,
    }
}

/// The typed Customer of an untyped one.
pub fn decode(object: &DynamicObject) -> Result<Customer, String> {
    serde_json::to_value(object)
        .and_then(serde_json::from_value)
        .map_err(|e| e.to_string())
}

/// Turns a watch event of untyped Customers into one of typed Customers. An object that
/// does not decode is recorded in `unreadable` and leaves the cache (a `Delete`), or is
/// left out of a relist.
pub fn decode_event(
    event: Event<DynamicObject>,
    unreadable: &Unreadable,
) -> Option<Event<Customer>> {
    match event {
        Event::Init => Some(Event::Init),
        Event::InitDone => Some(Event::InitDone),
        Event::Delete(object) => {
            unreadable.clear(&object.name_any());
            Some(Event::Delete(
                decode(&object).unwrap_or_else(|_| stand_in(&object)),
            ))
        }
        Event::Apply(object) => match decode(&object) {
            Ok(customer) => {
                unreadable.clear(&object.name_any());
                Some(Event::Apply(customer))
            }
            Err(error) => {
                unreadable.set(stand_in(&object), error);
                Some(Event::Delete(stand_in(&object)))
            }
        },
        Event::InitApply(object) => match decode(&object) {
            Ok(customer) => {
                unreadable.clear(&object.name_any());
                Some(Event::InitApply(customer))
            }
            Err(error) => {
                unreadable.set(stand_in(&object), error);
                None
            }
        },
    }
}

/// The untyped Customer API.
pub fn untyped(client: &Client) -> Api<DynamicObject> {
    Api::all_with(client.clone(), &ApiResource::erase::<Customer>(&()))
}
