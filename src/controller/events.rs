//! Events about Customers, as `events.k8s.io/v1` Events regarding the Customer itself,
//! written by kube-runtime's Recorder. A Customer is cluster-scoped, so its Events live in
//! the `default` namespace, where `kubectl events --for customer/NAME` and
//! `kubectl describe customer NAME` find them. Publishing never fails a reconcile.

use kube::runtime::events::{Event, EventType as RecordedType, Recorder, Reporter};
use kube::{Client, Resource};

use crate::api::{Customer, FIELD_MANAGER};

/// Namespace the Events about cluster-scoped Customers are written to.
pub const EVENT_NAMESPACE: &str = "default";

/// The `action` of every Event: what the operator was doing when it saw the reason.
pub const ACTION: &str = "Reconcile";

/// Normal or Warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Something a person may want to know.
    Normal,
    /// Something a person must act on.
    Warning,
}

/// Who reports the Events: the operator, and its pod (`POD_NAME`, set by the chart) or
/// host as the instance.
fn reporter() -> Reporter {
    Reporter {
        controller: FIELD_MANAGER.into(),
        instance: std::env::var("POD_NAME")
            .ok()
            .filter(|name| !name.is_empty()),
    }
}

/// Writes one Event about `customer`; a failure is logged, never returned.
pub async fn publish(
    client: &Client,
    customer: &Customer,
    kind: EventType,
    reason: &str,
    message: &str,
) {
    let event = Event {
        type_: match kind {
            EventType::Normal => RecordedType::Normal,
            EventType::Warning => RecordedType::Warning,
        },
        reason: reason.into(),
        note: Some(message.chars().take(1024).collect()),
        action: ACTION.into(),
        secondary: None,
    };
    let recorder = Recorder::new(client.clone(), reporter());
    if let Err(error) = recorder.publish(&event, &customer.object_ref(&())).await {
        tracing::warn!(customer = %kube::ResourceExt::name_any(customer), %reason, %error, "could not publish event");
    }
}
