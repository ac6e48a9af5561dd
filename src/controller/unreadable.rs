//! Reporting the Customers the operator cannot read (see [`super::decode`]).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::decode::{UNREADABLE, Unreadable, untyped};
use super::events::{self, EventType};
use super::status::{set_condition, types};

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
