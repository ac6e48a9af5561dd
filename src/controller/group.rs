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

use super::apply::delete_exactly;
use super::error::{At, Error, Result, Step, named as named_object};
use super::finalizer;
use super::status::{remove_condition, set_condition, types};
use crate::api::{Customer, CustomerGroup, CustomerGroupStatus, DeletionPolicy};
use crate::desired;
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
    /// The Customer controller's caches and settings, to judge members' specs.
    pub directory: Arc<super::Context>,
}

/// What a group reconcile found, for its status.
#[derive(Clone, Debug, PartialEq)]
pub enum GroupOutcome {
    /// The group is in use by these members; `refused` are those whose spec the
    /// group's defaults or access make the operator refuse, with why.
    Active {
        /// Every member.
        members: Vec<String>,
        /// Members refused because of the group, one line each.
        refused: Vec<String>,
    },
    /// Deletion waits: Block with these members left.
    Blocked(Vec<String>),
    /// Deletion under way: members being moved or deleted (`members` is how many are
    /// left).
    Terminating {
        /// What is happening, for the condition.
        message: String,
        /// Members left.
        members: u32,
    },
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
        GroupOutcome::Active { members, refused } => {
            status.members = members.len() as u32;
            if refused.is_empty() {
                set_condition(
                    conditions,
                    types::READY,
                    true,
                    "Reconciled",
                    count(members.len() as u64, "member", "members"),
                    generation,
                    now,
                );
            } else {
                set_condition(
                    conditions,
                    types::READY,
                    false,
                    "MembersRefused",
                    format!(
                        "the group's defaults or access make the operator refuse {} of {}: {}",
                        refused.len(),
                        count(members.len() as u64, "member", "members"),
                        refused.join("; ")
                    ),
                    generation,
                    now,
                );
            }
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
        GroupOutcome::Terminating { message, members } => {
            status.members = *members;
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
    // Members come from the Customer cache: judged before it has listed, a group would
    // count none (and a Block group being deleted would be let go with members left).
    ctx.directory.caches_ready().await?;
    let api: Api<CustomerGroup> = Api::all(ctx.client.clone());
    let name = group.name_any();
    let members: Vec<String> = ctx
        .directory
        .caches
        .related(&ctx.default_group)
        .members(&name)
        .into_iter()
        .collect();
    if group.meta().deletion_timestamp.is_none() {
        if !finalizer::has_finalizer(&*group) {
            finalizer::add(&api, &*group).await?;
            return Ok(Action::await_change());
        }
        let refused = refused_members(&group, &members, &ctx);
        write_status(&api, &group, &GroupOutcome::Active { members, refused }).await?;
        return Ok(Action::requeue(ctx.resync));
    }
    if !finalizer::has_finalizer(&*group) {
        return Ok(Action::await_change());
    }
    let outcome = match group.spec.deletion_policy {
        DeletionPolicy::Block if !members.is_empty() => Some(GroupOutcome::Blocked(members)),
        DeletionPolicy::Orphan | DeletionPolicy::Cascade => release_members(&group, &ctx).await?,
        _ => None,
    };
    let Some(outcome) = outcome else {
        finalizer::remove(&api, &*group).await?;
        return Ok(Action::await_change());
    };
    write_status(&api, &group, &outcome).await?;
    Ok(Action::requeue(Duration::from_secs(2)))
}

/// Orphan moves the members to the default group, Cascade deletes them; `None` once no
/// member is left. Only the Customers that name this group: those that name none are
/// members of the default group, whatever a group object of that name says.
async fn release_members(
    group: &CustomerGroup,
    ctx: &GroupContext,
) -> Result<Option<GroupOutcome>> {
    let name = group.name_any();
    let named: Vec<Arc<Customer>> = ctx
        .customers
        .state()
        .into_iter()
        .filter(|c| c.spec.group.as_deref() == Some(name.as_str()))
        .collect();
    if named.is_empty() {
        return Ok(None);
    }
    let customers: Api<Customer> = Api::all(ctx.client.clone());
    let names: Vec<String> = named.iter().map(|c| c.name_any()).collect();
    let message = if group.spec.deletion_policy == DeletionPolicy::Orphan {
        let patch = json!({"spec": {"group": null}});
        for customer in &named {
            customers
                .patch(
                    &customer.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
                .at(Step::Apply, named_object(&**customer))?;
        }
        format!(
            "moving members to the default group {}: {}",
            ctx.default_group,
            names.join(", ")
        )
    } else {
        for customer in named
            .iter()
            .filter(|c| c.meta().deletion_timestamp.is_none())
        {
            delete_exactly(&customers, &customer.name_any(), customer.uid()).await?;
        }
        let spared = if name == ctx.default_group {
            "; Customers that set no spec.group are members of the default group and are not deleted"
        } else {
            ""
        };
        format!(
            "waiting for members to be deleted: {}{spared}",
            names.join(", ")
        )
    };
    Ok(Some(GroupOutcome::Terminating {
        message,
        members: named.len() as u32,
    }))
}

/// The members whose spec the operator refuses because of this group (its defaults or
/// access), each with the problems.
fn refused_members(group: &CustomerGroup, members: &[String], ctx: &GroupContext) -> Vec<String> {
    let about_group = format!("CustomerGroup {}", group.name_any());
    let dir = &*ctx.directory;
    members
        .iter()
        .filter_map(|name| {
            let customer = ctx
                .customers
                .get(&kube::runtime::reflector::ObjectRef::new(name))?;
            let problems: Vec<String> =
                desired::validate::validate_customer(&customer, &dir.caches, &dir.options.settings)
                    .into_iter()
                    .filter(|p| p.field.starts_with(&about_group))
                    .map(|p| p.to_string())
                    .collect();
            (!problems.is_empty()).then(|| format!("{name}: {}", problems.join(", ")))
        })
        .collect()
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
    .await
    .at(Step::WriteStatus, named_object(group))?;
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
            &GroupOutcome::Active {
                members: vec!["a".into(), "b".into()],
                refused: vec![],
            },
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
            &GroupOutcome::Active {
                members: vec!["a".into(), "b".into()],
                refused: vec![],
            },
            t,
        );
        assert_eq!(again, active);
        let refused = group_status(
            Some(&active),
            Some(1),
            &GroupOutcome::Active {
                members: vec!["a".into(), "b".into()],
                refused: vec!["a: bad".into(), "b: bad".into()],
            },
            t,
        );
        let ready = refused
            .conditions
            .iter()
            .find(|c| c.type_ == types::READY)
            .unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "MembersRefused")
        );
        let terminating = group_status(
            Some(&active),
            Some(1),
            &GroupOutcome::Terminating {
                message: "waiting".into(),
                members: 1,
            },
            t,
        );
        assert_eq!(terminating.members, 1, "the count follows a Cascade");
    }
}
