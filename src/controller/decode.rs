//! Customers are watched as untyped objects and decoded one by one, so that one object
//! the types cannot read (stored under an older or looser schema) is reported on its own
//! status and in an Event instead of stalling the watch of every Customer.

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::watcher::Event;
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use super::events::{self, EventType};
use super::status::{set_condition, types};
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
    fn snapshot(&self) -> Vec<(Customer, String)> {
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

/// Hands every Customer the main watch sees change or go (decoded; the unreadable ones
/// are left out) to the streams that map changes to related customers and to groups.
pub struct Touched {
    related: UnboundedSender<Customer>,
    members: UnboundedSender<Customer>,
}

/// A stream of changed Customers fed by [`Touched`].
pub type TouchedStream = futures::stream::Map<
    UnboundedReceiver<Customer>,
    fn(Customer) -> Result<Customer, kube::runtime::watcher::Error>,
>;

impl Touched {
    /// The sender and its two streams: related customers, group members.
    pub fn channels() -> (Touched, TouchedStream, TouchedStream) {
        use futures::StreamExt;
        let (related, related_rx) = futures::channel::mpsc::unbounded();
        let (members, members_rx) = futures::channel::mpsc::unbounded();
        let ok: fn(Customer) -> Result<Customer, kube::runtime::watcher::Error> = Ok;
        (
            Touched { related, members },
            related_rx.map(ok),
            members_rx.map(ok),
        )
    }

    /// Passes on the Customer of a watch event, if it has one.
    pub fn send(&self, event: &kube::runtime::watcher::Event<Customer>) {
        use kube::runtime::watcher::Event;
        if let Event::Apply(c) | Event::InitApply(c) | Event::Delete(c) = event {
            // A closed receiver means the controller is shutting down.
            let _ = self.related.unbounded_send(c.clone());
            let _ = self.members.unbounded_send(c.clone());
        }
    }
}

/// The untyped Customer API.
pub fn untyped(client: &Client) -> Api<DynamicObject> {
    Api::all_with(client.clone(), &ApiResource::erase::<Customer>(&()))
}

/// Reports each unreadable Customer once per distinct error: a Warning Event and the log,
/// and Ready=False with reason `Unreadable` on its status (a status write that the
/// apiserver may refuse; the Event and the log are there either way). Runs until the
/// process ends.
pub async fn report(client: Client, unreadable: Unreadable) {
    let mut reported: BTreeMap<String, String> = BTreeMap::new();
    loop {
        for (customer, error) in unreadable.snapshot() {
            let name = customer.name_any();
            if reported.get(&name) == Some(&error) {
                continue;
            }
            let message =
                format!("the operator cannot read this Customer, nothing is done for it: {error}");
            let mut conditions = Vec::new();
            set_condition(
                &mut conditions,
                types::READY,
                false,
                UNREADABLE,
                message.clone(),
                customer.metadata.generation,
                Timestamp::now(),
            );
            let patch = json!({"status": {"conditions": conditions}});
            if let Err(e) = untyped(&client)
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                tracing::debug!(customer = %name, error = %e, "status of an unreadable Customer not writable");
            }
            events::publish(&client, &customer, EventType::Warning, UNREADABLE, &message).await;
            tracing::warn!(customer = %name, %error, "unreadable Customer");
            reported.insert(name, error);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
