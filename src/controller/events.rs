//! Events about Customers, as core/v1 Events in the `default` namespace: the one form
//! every apiserver from 1.20 accepts for a cluster-scoped object (1.20 refuses
//! `events.k8s.io/v1` Events about them). Publishing never fails a reconcile.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client, Resource, ResourceExt};

use crate::api::{API_VERSION, Customer, FIELD_MANAGER};

/// Namespace the Events are written to.
pub const EVENT_NAMESPACE: &str = "default";

/// Normal or Warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Something a person may want to know.
    Normal,
    /// Something a person must act on.
    Warning,
}

/// Writes one Event about `customer`; a failure is logged, never returned.
pub async fn publish(
    client: &Client,
    customer: &Customer,
    kind: EventType,
    reason: &str,
    message: &str,
) {
    let now = Timestamp::now();
    let event = Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}.", customer.name_any())),
            namespace: Some(EVENT_NAMESPACE.into()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some(API_VERSION.into()),
            kind: Some(Customer::kind(&()).into_owned()),
            name: Some(customer.name_any()),
            uid: customer.uid(),
            resource_version: customer.resource_version(),
            ..Default::default()
        },
        reason: Some(reason.into()),
        message: Some(message.chars().take(1024).collect()),
        type_: Some(format!("{kind:?}")),
        source: Some(EventSource {
            component: Some(FIELD_MANAGER.into()),
            host: None,
        }),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        count: Some(1),
        ..Default::default()
    };
    let api: Api<Event> = Api::namespaced(client.clone(), EVENT_NAMESPACE);
    if let Err(error) = api.create(&PostParams::default(), &event).await {
        tracing::warn!(customer = %customer.name_any(), %reason, %error, "could not publish event");
    }
}
