//! The Partner controller: the partner's namespace and its admins' RoleBinding there,
//! the partner's status (its customers, how many are Ready, the limits in use), and what
//! deleting a partner does to its customers (`deletionPolicy`).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::Context;
use super::apply::delete_exactly;
use super::claim::LABEL_CLAIM_HASH;
use super::error::{At, Error, Result, Step, named};
use super::finalizer;
use super::status::{condition, remove_condition, set_condition, types};
use super::triggers::customers_of_partner;
use crate::api::{
    Customer, CustomerClaim, DeletionPolicy, LABEL_CLAIM_NAME, LABEL_CLAIM_NAMESPACE, Partner,
    PartnerStatus, PartnerUsage, partner_namespace,
};
use crate::desired::selfservice::{self, PARTNER_ADMINS_BINDING};
use crate::text::count;

/// What a partner's reconcile found, for its status.
#[derive(Clone, Debug, PartialEq)]
pub enum PartnerOutcome {
    /// In use: its customers and how many are Ready; `conflict` when its namespace
    /// exists and is not the operator's for this partner.
    Active {
        /// The partner's customers, by name.
        customers: Vec<String>,
        /// How many of them are Ready.
        ready: u32,
        /// Why the namespace could not be made, if it could not.
        conflict: Option<String>,
    },
    /// Deletion waits: Block with these customers left.
    Blocked(Vec<String>),
    /// Deletion under way.
    Terminating {
        /// What is happening.
        message: String,
        /// Customers left.
        customers: Vec<String>,
    },
}

/// Reconciles one Partner.
pub async fn reconcile(partner: Arc<Partner>, ctx: Arc<Context>) -> Result<Action> {
    ctx.caches_ready().await?;
    let api: Api<Partner> = Api::all(ctx.client.clone());
    if partner.meta().deletion_timestamp.is_some() {
        if !finalizer::has_finalizer(&*partner) {
            return Ok(Action::await_change());
        }
        return match follow_policy(&partner, &ctx).await? {
            Some(outcome) => {
                write_status(&api, &partner, &outcome).await?;
                Ok(Action::requeue(Duration::from_secs(2)))
            }
            None => {
                delete_namespace(&partner, &ctx).await?;
                finalizer::remove(&api, &*partner).await?;
                Ok(Action::await_change())
            }
        };
    }
    if !finalizer::has_finalizer(&*partner) {
        finalizer::add(&api, &*partner).await?;
        return Ok(Action::await_change());
    }
    let conflict = apply_namespace(&partner, &ctx).await?;
    let (customers, ready) = customers_and_ready(&partner, &ctx);
    let outcome = PartnerOutcome::Active {
        customers,
        ready,
        conflict,
    };
    write_status(&api, &partner, &outcome).await?;
    Ok(ctx.requeue(true))
}

/// Applies the partner's namespace and its admins' RoleBinding; a namespace of that
/// name that is not the operator's for this partner is left untouched (returns why).
async fn apply_namespace(partner: &Partner, ctx: &Context) -> Result<Option<String>> {
    let name = partner_namespace(&partner.name_any());
    let cached = ctx.caches.namespaces.get(&ObjectRef::new(&name));
    if let Some(ns) = &cached
        && !selfservice::is_partner_namespace_of(&ns.metadata, partner)
    {
        return Ok(Some(format!(
            "namespace {name} exists and is not this Partner's: it is left untouched, and the partner's admins have no namespace for their claims"
        )));
    }
    let live_namespace =
        cached.map(|ns| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": &ns.metadata}));
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    ctx.apply(
        &namespaces,
        &selfservice::partner_namespace_object(partner),
        live_namespace.as_ref(),
    )
    .await?;
    let binding = selfservice::partner_admins_binding(partner);
    let live_binding = ctx
        .caches
        .children
        .role_bindings
        .get(&ObjectRef::new(PARTNER_ADMINS_BINDING).within(&name))
        .map(|b| b.value())
        .transpose()?;
    let bindings: Api<RoleBinding> = Api::namespaced(ctx.client.clone(), &name);
    ctx.apply(&bindings, &binding, live_binding.as_ref())
        .await?;
    Ok(None)
}

/// The partner's customers, sorted, and how many of them are Ready.
fn customers_and_ready(partner: &Partner, ctx: &Context) -> (Vec<String>, u32) {
    let mine: Vec<Arc<Customer>> = customers_of_partner(&partner.name_any(), &ctx.caches);
    let ready = mine
        .iter()
        .filter(|c| condition(c.status.as_ref(), types::READY).is_some_and(|r| r.status == "True"))
        .count() as u32;
    let mut names: Vec<String> = mine.iter().map(|c| c.name_any()).collect();
    names.sort();
    (names, ready)
}

/// Block waits for the customers to go; Orphan hands the claimed ones to the platform
/// team (their claim labels go, so deleting the claims deletes nothing); Cascade
/// deletes the claims (each deletes its Customer) and the other customers of the
/// partner, each through its own finalizer. `None` once the partner's namespace may go.
async fn follow_policy(partner: &Partner, ctx: &Context) -> Result<Option<PartnerOutcome>> {
    let (customers, _) = customers_and_ready(partner, ctx);
    let namespace = partner_namespace(&partner.name_any());
    let claimed: Vec<Arc<Customer>> = ctx
        .caches
        .customers
        .state()
        .into_iter()
        .filter(|c| selfservice::claim_of(c).is_some_and(|(ns, _)| ns == namespace))
        .collect();
    match partner.spec.deletion_policy {
        DeletionPolicy::Block if customers.is_empty() && claimed.is_empty() => Ok(None),
        DeletionPolicy::Block => {
            let mut left = customers;
            left.extend(claimed.iter().map(|c| c.name_any()));
            left.sort();
            left.dedup();
            Ok(Some(PartnerOutcome::Blocked(left)))
        }
        DeletionPolicy::Orphan if claimed.is_empty() => Ok(None),
        DeletionPolicy::Orphan => {
            let api: Api<Customer> = Api::all(ctx.client.clone());
            let patch = json!({"metadata": {"labels": {
                LABEL_CLAIM_NAMESPACE: null, LABEL_CLAIM_NAME: null, LABEL_CLAIM_HASH: null
            }}});
            for customer in &claimed {
                api.patch(
                    &customer.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
                .at(Step::Release, named(&**customer))?;
            }
            Ok(Some(PartnerOutcome::Terminating {
                message: format!(
                    "deletionPolicy is Orphan: handing the claimed customers to the platform team: {}",
                    names(&claimed).join(", ")
                ),
                customers,
            }))
        }
        DeletionPolicy::Cascade if customers.is_empty() && claimed.is_empty() => Ok(None),
        DeletionPolicy::Cascade => {
            cascade(ctx, &namespace, &customers).await?;
            let mut left = customers.clone();
            left.extend(names(&claimed));
            left.sort();
            left.dedup();
            Ok(Some(PartnerOutcome::Terminating {
                message: format!(
                    "deletionPolicy is Cascade: waiting for the partner's customers to be deleted: {}",
                    left.join(", ")
                ),
                customers,
            }))
        }
    }
}

/// Deletes the claims in the partner's namespace and the partner's customers that no
/// claim made.
async fn cascade(ctx: &Context, namespace: &str, customers: &[String]) -> Result<()> {
    let claims: Api<CustomerClaim> = Api::namespaced(ctx.client.clone(), namespace);
    for claim in ctx.caches.claims.state().iter().filter(|c| {
        c.namespace().as_deref() == Some(namespace) && c.meta().deletion_timestamp.is_none()
    }) {
        delete_exactly(&claims, &claim.name_any(), claim.uid()).await?;
    }
    let api: Api<Customer> = Api::all(ctx.client.clone());
    for name in customers {
        let Some(customer) = ctx.caches.customer(name) else {
            continue;
        };
        let made_here = selfservice::claim_of(&customer).is_some_and(|(ns, _)| ns == namespace);
        if !made_here && customer.meta().deletion_timestamp.is_none() {
            delete_exactly(&api, name, customer.uid()).await?;
        }
    }
    Ok(())
}

/// Deletes the partner's namespace (exactly the one the operator made for it; the claims
/// in it go with it).
async fn delete_namespace(partner: &Partner, ctx: &Context) -> Result<()> {
    let name = partner_namespace(&partner.name_any());
    let Some(ns) = ctx.caches.namespaces.get(&ObjectRef::new(&name)) else {
        return Ok(());
    };
    if !selfservice::is_partner_namespace_of(&ns.metadata, partner) {
        return Ok(());
    }
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    delete_exactly(&namespaces, &name, ns.metadata.uid.clone()).await
}

fn names(customers: &[Arc<Customer>]) -> Vec<String> {
    customers.iter().map(|c| c.name_any()).collect()
}

/// The partner's new status; transition times stay when a condition's status does.
pub fn partner_status(
    old: Option<&PartnerStatus>,
    partner: &Partner,
    outcome: &PartnerOutcome,
    now: Timestamp,
) -> PartnerStatus {
    let generation = partner.meta().generation;
    let mut status = old.cloned().unwrap_or_default();
    status.observed_generation = generation;
    status.namespace = Some(partner_namespace(&partner.name_any()));
    let max_customers = partner.spec.limits.max_customers;
    let conditions = &mut status.conditions;
    let customers = match outcome {
        PartnerOutcome::Active {
            customers,
            ready,
            conflict,
        } => {
            status.ready = *ready;
            let namespace = partner_namespace(&partner.name_any());
            set_active(
                conditions,
                &namespace,
                customers.len(),
                conflict.as_deref(),
                generation,
                now,
            );
            customers
        }
        PartnerOutcome::Blocked(customers) => {
            set_condition(
                conditions,
                types::DELETION_BLOCKED,
                true,
                "HasCustomers",
                format!(
                    "deletionPolicy is Block: the partner is deleted once it has no customers; customers: {}",
                    customers.join(", ")
                ),
                generation,
                now,
            );
            customers
        }
        PartnerOutcome::Terminating { message, customers } => {
            set_condition(
                conditions,
                types::TERMINATING,
                true,
                "Deleting",
                message.clone(),
                generation,
                now,
            );
            customers
        }
    };
    status.customers = customers.clone();
    status.in_use = PartnerUsage {
        customers: customers.len() as u32,
        max_customers,
    };
    status
}

/// The conditions of a partner in use: Ready, or NamespaceConflict when its namespace
/// is someone else's.
fn set_active(
    conditions: &mut Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    namespace: &str,
    customers: usize,
    conflict: Option<&str>,
    generation: Option<i64>,
    now: Timestamp,
) {
    let (ok, reason, message) = match conflict {
        Some(message) => (false, "NamespaceConflict", message.to_string()),
        None => (
            true,
            "Reconciled",
            format!(
                "namespace {namespace} is in place; {}",
                count(customers as u64, "customer", "customers")
            ),
        ),
    };
    set_condition(
        conditions,
        types::READY,
        ok,
        reason,
        message,
        generation,
        now,
    );
    remove_condition(conditions, types::DELETION_BLOCKED);
    remove_condition(conditions, types::TERMINATING);
}

async fn write_status(
    api: &Api<Partner>,
    partner: &Partner,
    outcome: &PartnerOutcome,
) -> Result<()> {
    let old = partner.status.as_ref();
    let new = partner_status(old, partner, outcome, Timestamp::now());
    super::status_write::write_status_of(api, partner, old, &new).await
}

/// Retries a failed partner reconcile after a few seconds.
pub fn error_policy(partner: Arc<Partner>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(partner = %partner.name_any(), reason = error.reason(), %error, "partner reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{PartnerLimits, PartnerSpec};

    #[test]
    fn status_counts_customers_against_the_limit_and_explains_a_blocked_deletion() {
        let t = Timestamp::from_second(1_000).unwrap();
        let partner = Partner::new(
            "acme",
            PartnerSpec {
                limits: PartnerLimits {
                    max_customers: Some(3),
                    ..Default::default()
                },
                ..Default::default()
            },
        );
        let active = partner_status(
            None,
            &partner,
            &PartnerOutcome::Active {
                customers: vec!["a".into(), "b".into()],
                ready: 1,
                conflict: None,
            },
            t,
        );
        assert_eq!(
            active.in_use,
            PartnerUsage {
                customers: 2,
                max_customers: Some(3)
            }
        );
        assert_eq!(
            (active.ready, active.namespace.as_deref()),
            (1, Some("partner-acme"))
        );
        let blocked = partner_status(
            Some(&active),
            &partner,
            &PartnerOutcome::Blocked(vec!["a".into()]),
            t,
        );
        let c = blocked
            .conditions
            .iter()
            .find(|c| c.type_ == types::DELETION_BLOCKED)
            .unwrap();
        assert!(c.message.contains("customers: a"), "{}", c.message);
        let conflict = partner_status(
            Some(&active),
            &partner,
            &PartnerOutcome::Active {
                customers: vec![],
                ready: 0,
                conflict: Some("namespace partner-acme exists".into()),
            },
            t,
        );
        let ready = conflict
            .conditions
            .iter()
            .find(|c| c.type_ == types::READY)
            .unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "NamespaceConflict")
        );
    }
}
