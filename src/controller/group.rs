//! The CustomerGroup controller: member count and conditions, and what deleting a group
//! does to its members (`deletionPolicy`).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use super::reconcile::{add_finalizer, delete_exactly, remove_finalizer};
use super::status::{remove_condition, set_condition, types};
use crate::api::{Customer, CustomerGroup, CustomerGroupStatus, DeletionPolicy, FINALIZER};
use crate::desired;
use crate::error::{Error, Result};
use crate::text::count;

/// What group reconciles share.
pub struct GroupContext {
    /// The operator's client.
    pub client: Client,
    /// All Customers.
    pub customers: Store<Customer>,
    /// The group of customers that set no `spec.group`.
    pub default_group: String,
    /// How often an unchanged group is checked again.
    pub resync: Duration,
}

/// What a group reconcile found, for its status.
#[derive(Clone, Debug, PartialEq)]
pub enum GroupOutcome {
    /// The group is in use by these members.
    Active(Vec<String>),
    /// Deletion waits: Block with these members left.
    Blocked(Vec<String>),
    /// Deletion under way: members being moved or deleted.
    Terminating(String),
}

/// The group's new status; transition times stay when a condition's status does.
pub fn group_status(
    old: Option<&CustomerGroupStatus>,
    generation: Option<i64>,
    outcome: &GroupOutcome,
    now: Timestamp,
) -> CustomerGroupStatus {
    let mut status = old.cloned().unwrap_or_default();
    status.observed_generation = generation;
    let conditions = &mut status.conditions;
    match outcome {
        GroupOutcome::Active(members) => {
            status.members = members.len() as u32;
            set_condition(
                conditions,
                types::READY,
                true,
                "Reconciled",
                count(members.len() as u64, "member", "members"),
                generation,
                now,
            );
            remove_condition(conditions, types::DELETION_BLOCKED);
            remove_condition(conditions, types::TERMINATING);
        }
        GroupOutcome::Blocked(members) => {
            status.members = members.len() as u32;
            set_condition(
                conditions,
                types::DELETION_BLOCKED,
                true,
                "HasMembers",
                format!(
                    "deletionPolicy is Block: the group is deleted once it has no members; members: {}",
                    members.join(", ")
                ),
                generation,
                now,
            );
        }
        GroupOutcome::Terminating(message) => {
            set_condition(
                conditions,
                types::TERMINATING,
                true,
                "Deleting",
                message.clone(),
                generation,
                now,
            );
        }
    }
    status
}

/// Reconciles one CustomerGroup.
pub async fn reconcile(group: Arc<CustomerGroup>, ctx: Arc<GroupContext>) -> Result<Action> {
    let api: Api<CustomerGroup> = Api::all(ctx.client.clone());
    let name = group.name_any();
    let mut members: Vec<String> =
        desired::members(&name, &ctx.customers.state(), &ctx.default_group);
    members.sort();
    if group.meta().deletion_timestamp.is_none() {
        if !group.finalizers().iter().any(|f| f == FINALIZER) {
            add_finalizer(&api, &*group).await?;
            return Ok(Action::await_change());
        }
        write_status(&api, &group, &GroupOutcome::Active(members)).await?;
        return Ok(Action::requeue(ctx.resync));
    }
    if !group.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let customers: Api<Customer> = Api::all(ctx.client.clone());
    let outcome = match group.spec.deletion_policy {
        DeletionPolicy::Block if !members.is_empty() => GroupOutcome::Blocked(members),
        DeletionPolicy::Orphan => {
            let named: Vec<Arc<Customer>> = ctx
                .customers
                .state()
                .into_iter()
                .filter(|c| c.spec.group.as_deref() == Some(name.as_str()))
                .collect();
            if named.is_empty() {
                remove_finalizer(&api, &*group).await?;
                return Ok(Action::await_change());
            }
            let patch = json!({"spec": {"group": null}});
            for customer in &named {
                customers
                    .patch(
                        &customer.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await?;
            }
            let names: Vec<String> = named.iter().map(|c| c.name_any()).collect();
            GroupOutcome::Terminating(format!(
                "moving members to the default group {}: {}",
                ctx.default_group,
                names.join(", ")
            ))
        }
        DeletionPolicy::Cascade if !members.is_empty() => {
            for customer in ctx
                .customers
                .state()
                .iter()
                .filter(|c| members.contains(&c.name_any()))
            {
                if customer.meta().deletion_timestamp.is_none() {
                    delete_exactly(&customers, &customer.name_any(), customer.uid()).await?;
                }
            }
            GroupOutcome::Terminating(format!(
                "waiting for members to be deleted: {}",
                members.join(", ")
            ))
        }
        _ => {
            remove_finalizer(&api, &*group).await?;
            return Ok(Action::await_change());
        }
    };
    write_status(&api, &group, &outcome).await?;
    Ok(Action::requeue(Duration::from_secs(2)))
}

async fn write_status(
    api: &Api<CustomerGroup>,
    group: &CustomerGroup,
    outcome: &GroupOutcome,
) -> Result<()> {
    let old = group.status.as_ref();
    let new = group_status(old, group.meta().generation, outcome, Timestamp::now());
    if old == Some(&new) {
        return Ok(());
    }
    let patch = json!({"status": new});
    api.patch_status(
        &group.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// Retries a failed group reconcile after a few seconds.
pub fn error_policy(group: Arc<CustomerGroup>, error: &Error, _ctx: Arc<GroupContext>) -> Action {
    tracing::warn!(group = %group.name_any(), reason = error.reason(), %error, "group reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_counts_members_and_explains_a_blocked_deletion() {
        let t = Timestamp::from_second(1_000).unwrap();
        let active = group_status(
            None,
            Some(1),
            &GroupOutcome::Active(vec!["a".into(), "b".into()]),
            t,
        );
        assert_eq!(active.members, 2);
        let blocked = group_status(
            Some(&active),
            Some(1),
            &GroupOutcome::Blocked(vec!["a".into()]),
            t,
        );
        let c = blocked
            .conditions
            .iter()
            .find(|c| c.type_ == types::DELETION_BLOCKED)
            .unwrap();
        assert!(c.message.contains("members: a"));
        assert_eq!(blocked.members, 1);
        let again = group_status(
            Some(&active),
            Some(1),
            &GroupOutcome::Active(vec!["a".into(), "b".into()]),
            t,
        );
        assert_eq!(again, active);
    }
}
