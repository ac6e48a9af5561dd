//! The CustomerClaim controller: a claim's Customer made and kept from the claim (its
//! own field manager, so the platform team's fields stay the platform team's), its
//! state mirrored onto the claim, and the Customer deleted with the claim.
//!
//! The steps: find the requester (the partner whose namespace it is, or the customer
//! that holds it), check the claim against its bounds ([`selfservice::check_claim`])
//! and the Customer rules, decide (conflict, count limit, apply), write the status.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};

use super::Context;
use super::apply::{delete_exactly, fnv1a};
use super::error::{At, Error, Result, Step};
use super::finalizer;
use super::status::{condition, set_condition, types};
use super::triggers::customers_of_partner;
use crate::api::{CLAIM_FIELD_MANAGER, Customer, CustomerClaim, CustomerClaimStatus};
use crate::desired::resolve;
use crate::desired::selfservice::{self, Requester};
use crate::desired::validate::validate_customer;
use crate::error::Problem;

/// Label on a claimed Customer: a hash of what the claim last applied, so that a claim
/// that drops a field is applied again (and the field goes).
pub const LABEL_CLAIM_HASH: &str = "customers.dev/claim-hash";

/// How long a new Customer may take to show in the cache before the next claim of the
/// same partner is decided (the count limit counts from the cache).
const SEEN_WITHIN: Duration = Duration::from_secs(5);

/// What a claim's reconcile found, for its status.
#[derive(Clone, Debug)]
pub enum ClaimOutcome {
    /// Its namespace is neither a partner's nor a customer's.
    NoRequester(String),
    /// Asks for what its requester may not have, or for a Customer the rules refuse.
    Refused(Vec<Problem>),
    /// Another Customer has the claim's name (not made from this claim).
    Conflict(String),
    /// The partner has as many customers as it may.
    LimitReached {
        /// The partner.
        partner: String,
        /// Its `maxCustomers`.
        limit: u32,
    },
    /// The partner or parent is being deleted: nothing new is made for it.
    RequesterDeleting(String),
    /// The platform team set a field the claim sets too, to another value.
    FieldConflict(String),
    /// The claim's Customer, as cached (`None` right after its creation).
    Made(Requester, Option<Arc<Customer>>),
    /// The claim is being deleted and its Customer is protected.
    DeletionBlocked(String),
    /// The claim is being deleted and so is its Customer.
    Deleting(String),
}

/// Reconciles one CustomerClaim.
pub async fn reconcile(claim: Arc<CustomerClaim>, ctx: Arc<Context>) -> Result<Action> {
    ctx.caches_ready().await?;
    let api: Api<CustomerClaim> =
        Api::namespaced(ctx.client.clone(), &claim.namespace().unwrap_or_default());
    if claim.meta().deletion_timestamp.is_some() {
        if !finalizer::has_finalizer(&*claim) {
            return Ok(Action::await_change());
        }
        return match release(&claim, &ctx).await? {
            Some(outcome) => {
                write_status(&api, &claim, &outcome).await?;
                Ok(Action::requeue(Duration::from_secs(5)))
            }
            None => {
                finalizer::remove(&api, &*claim).await?;
                Ok(Action::await_change())
            }
        };
    }
    if !finalizer::has_finalizer(&*claim) {
        finalizer::add(&api, &*claim).await?;
        return Ok(Action::await_change());
    }
    let outcome = converge(&claim, &ctx).await?;
    write_status(&api, &claim, &outcome).await?;
    let settled = matches!(&outcome, ClaimOutcome::Made(_, Some(c)) if is_ready(c));
    Ok(ctx.requeue(settled))
}

/// Decides what the claim gets and makes it so.
async fn converge(claim: &CustomerClaim, ctx: &Context) -> Result<ClaimOutcome> {
    let namespace = claim.namespace().unwrap_or_default();
    let dir = &ctx.caches;
    let settings = &ctx.options.settings;
    let Some(requester) = selfservice::requester(&namespace, dir) else {
        return Ok(ClaimOutcome::NoRequester(namespace));
    };
    if requester_deleting(&requester) {
        return Ok(ClaimOutcome::RequesterDeleting(requester.describe()));
    }
    let mut problems = selfservice::check_claim(claim, &requester, dir, settings);
    let would_be = selfservice::customer_for(claim, &requester);
    problems.extend(validate_customer(&would_be, dir, settings));
    if !problems.is_empty() {
        return Ok(ClaimOutcome::Refused(problems));
    }
    let name = claim.name_any();
    let existing = dir.customer(&name);
    if let Some(other) = existing
        .as_ref()
        .filter(|c| !selfservice::made_by(c, claim))
    {
        let whose = selfservice::claim_of(other)
            .map(|(ns, n)| format!("made from CustomerClaim {ns}/{n}"))
            .unwrap_or_else(|| "written by the platform team".into());
        return Ok(ClaimOutcome::Conflict(format!(
            "a Customer named {name} already exists ({whose}); it is left untouched: choose another name"
        )));
    }
    if existing.is_none()
        && let Requester::Partner(partner) = &requester
        && let Some(limit) = partner.spec.limits.max_customers
        && customers_of_partner(&partner.name_any(), dir).len() >= limit as usize
    {
        return Ok(ClaimOutcome::LimitReached {
            partner: partner.name_any(),
            limit,
        });
    }
    let mut body = selfservice::applied_customer(claim, &requester);
    let hash = format!("{:016x}", fnv1a(body.to_string().as_bytes()));
    let current = existing
        .as_ref()
        .is_some_and(|c| c.labels().get(LABEL_CLAIM_HASH) == Some(&hash));
    if current {
        return Ok(ClaimOutcome::Made(requester, existing));
    }
    body["metadata"]["labels"][LABEL_CLAIM_HASH] = hash.into();
    let customers: Api<Customer> = Api::all(ctx.client.clone());
    let params = PatchParams::apply(CLAIM_FIELD_MANAGER);
    match customers.patch(&name, &params, &Patch::Apply(&body)).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {
            return Ok(ClaimOutcome::FieldConflict(s.message));
        }
        Err(e) => {
            return Err(e).at(
                Step::Apply,
                format!("Customer {name} (from CustomerClaim {namespace}/{name})"),
            );
        }
    }
    if existing.is_none() {
        wait_until_cached(ctx, &name).await;
    }
    Ok(ClaimOutcome::Made(requester, dir.customer(&name)))
}

/// Whether the partner or parent customer a claim asks through is being deleted.
fn requester_deleting(requester: &Requester) -> bool {
    match requester {
        Requester::Partner(p) => p.meta().deletion_timestamp.is_some(),
        Requester::Parent(c) => c.meta().deletion_timestamp.is_some(),
    }
}

/// Waits (briefly) until the cache holds the Customer just created, so that the next
/// claim's count limit counts it.
async fn wait_until_cached(ctx: &Context, name: &str) {
    let deadline = tokio::time::Instant::now() + SEEN_WITHIN;
    while ctx.caches.customer(name).is_none() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A deleted claim: its Customer goes first, through the Customer's own finalizer;
/// `None` once it is gone (or the claim never made one). A Customer the platform team
/// protected is not deleted, and the claim stays, saying so.
async fn release(claim: &CustomerClaim, ctx: &Context) -> Result<Option<ClaimOutcome>> {
    let name = claim.name_any();
    let Some(customer) = ctx
        .caches
        .customer(&name)
        .filter(|c| selfservice::made_by(c, claim))
    else {
        return Ok(None);
    };
    if customer.spec.deletion_protection {
        return Ok(Some(ClaimOutcome::DeletionBlocked(format!(
            "Customer {name} has spec.deletionProtection set by the platform team: nothing is deleted until it is set to false; the claim stays until then"
        ))));
    }
    if let Some(freeze) = resolve::frozen_by(&customer, &ctx.caches, &ctx.options.settings) {
        return Ok(Some(ClaimOutcome::DeletionBlocked(format!(
            "Customer {name} is frozen by {}: nothing is deleted until it is unfrozen; the claim stays until then",
            freeze.source()
        ))));
    }
    if customer.meta().deletion_timestamp.is_none() {
        let customers: Api<Customer> = Api::all(ctx.client.clone());
        delete_exactly(&customers, &name, customer.uid()).await?;
    }
    Ok(Some(ClaimOutcome::Deleting(format!(
        "deleting Customer {name} and its namespaces"
    ))))
}

fn is_ready(customer: &Customer) -> bool {
    condition(customer.status.as_ref(), types::READY).is_some_and(|c| c.status == "True")
}

/// The claim's new status; transition times stay when a condition's status does.
pub fn claim_status(
    old: Option<&CustomerClaimStatus>,
    generation: Option<i64>,
    outcome: &ClaimOutcome,
    now: Timestamp,
) -> CustomerClaimStatus {
    let mut status = old.cloned().unwrap_or_default();
    status.observed_generation = generation;
    let mut ready = |ok: bool, reason: &str, message: String| {
        set_condition(
            &mut status.conditions,
            types::READY,
            ok,
            reason,
            message,
            generation,
            now,
        )
    };
    match outcome {
        ClaimOutcome::NoRequester(namespace) => ready(
            false,
            "NotARequestNamespace",
            format!(
                "namespace {namespace} is neither a partner's namespace nor a customer's: a claim here asks for nothing"
            ),
        ),
        ClaimOutcome::Refused(problems) => ready(
            false,
            "Refused",
            format!(
                "refused, nothing changed: {}",
                problems
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ),
        ClaimOutcome::Conflict(message) => ready(false, "Conflict", message.clone()),
        ClaimOutcome::LimitReached { partner, limit } => ready(
            false,
            "LimitReached",
            format!(
                "Partner {partner} has {limit} customers, as many as spec.limits.maxCustomers allows: nothing is created until one goes or the limit is raised"
            ),
        ),
        ClaimOutcome::RequesterDeleting(who) => ready(
            false,
            "RequesterDeleting",
            format!("{who} is being deleted: nothing new is made for it"),
        ),
        ClaimOutcome::FieldConflict(message) => ready(
            false,
            "FieldConflict",
            format!(
                "the platform team set a field of the Customer that this claim sets too; the claim does not overwrite it: {message}"
            ),
        ),
        ClaimOutcome::DeletionBlocked(message) => ready(false, "DeletionBlocked", message.clone()),
        ClaimOutcome::Deleting(message) => ready(false, "Deleting", message.clone()),
        ClaimOutcome::Made(requester, customer) => {
            mirror(&mut status, requester, customer.as_deref(), generation, now);
        }
    }
    status
}

/// The Customer's state on the claim: Ready as the Customer has it, its other
/// conditions, namespaces, summary and group.
fn mirror(
    status: &mut CustomerClaimStatus,
    requester: &Requester,
    customer: Option<&Customer>,
    generation: Option<i64>,
    now: Timestamp,
) {
    let (partner, parent) = match requester {
        Requester::Partner(p) => (Some(p.name_any()), None),
        Requester::Parent(c) => (None, Some(c.name_any())),
    };
    status.partner = partner;
    status.parent = parent;
    let Some(customer) = customer else {
        set_condition(
            &mut status.conditions,
            types::READY,
            false,
            "Creating",
            "the Customer is being created".into(),
            generation,
            now,
        );
        return;
    };
    status.customer = Some(customer.name_any());
    let theirs = customer.status.clone().unwrap_or_default();
    status.group = theirs.group.clone();
    status.namespaces = theirs.namespaces.clone();
    status.summary = theirs.summary.clone();
    status.customer_conditions = theirs
        .conditions
        .iter()
        .filter(|c| c.type_ != types::READY)
        .cloned()
        .collect();
    let (ok, reason, message) = match condition(Some(&theirs), types::READY) {
        Some(c) => (c.status == "True", c.reason.clone(), c.message.clone()),
        None => (
            false,
            "Creating".to_string(),
            "the operator has not reconciled the Customer yet".to_string(),
        ),
    };
    set_condition(
        &mut status.conditions,
        types::READY,
        ok,
        &reason,
        message,
        generation,
        now,
    );
}

async fn write_status(
    api: &Api<CustomerClaim>,
    claim: &CustomerClaim,
    outcome: &ClaimOutcome,
) -> Result<()> {
    let old = claim.status.as_ref();
    let new = claim_status(old, claim.meta().generation, outcome, Timestamp::now());
    super::status_write::write_status_of(api, claim, old, &new).await
}

/// Retries a failed claim reconcile after a few seconds.
pub fn error_policy(claim: Arc<CustomerClaim>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(claim = %claim.name_any(), namespace = claim.namespace().unwrap_or_default(), reason = error.reason(), %error, "claim reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CustomerClaimSpec, CustomerStatus, Partner, PartnerSpec};
    use crate::error::Reason;

    fn partner() -> Requester {
        Requester::Partner(Arc::new(Partner::new("acme", PartnerSpec::default())))
    }

    #[test]
    fn a_refused_claim_names_every_field_and_a_made_one_mirrors_its_customer() {
        let t = Timestamp::from_second(1_000).unwrap();
        let refused = claim_status(
            None,
            Some(2),
            &ClaimOutcome::Refused(vec![Problem::new(
                Reason::OutsideBounds,
                "spec.group",
                "group \"gold\" is not one Partner acme allows",
            )]),
            t,
        );
        let ready = &refused.conditions[0];
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "Refused")
        );
        assert!(ready.message.contains("spec.group"), "{}", ready.message);

        let mut customer = Customer::new("x", Default::default());
        let mut theirs = CustomerStatus::default();
        set_condition(
            &mut theirs.conditions,
            types::READY,
            true,
            "Reconciled",
            "ok".into(),
            Some(1),
            t,
        );
        set_condition(
            &mut theirs.conditions,
            "ConnectionsPending",
            true,
            "PeerNotFound",
            "waiting for: Customer b".into(),
            Some(1),
            t,
        );
        theirs.group = Some("all".into());
        customer.status = Some(theirs);
        let made = claim_status(
            Some(&refused),
            Some(2),
            &ClaimOutcome::Made(partner(), Some(Arc::new(customer))),
            t,
        );
        let ready = condition_of(&made, types::READY);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "Reconciled")
        );
        assert_eq!(made.customer.as_deref(), Some("x"));
        assert_eq!(made.partner.as_deref(), Some("acme"));
        assert_eq!(made.group.as_deref(), Some("all"));
        assert_eq!(made.customer_conditions.len(), 1);
        let again = claim_status(
            Some(&made),
            Some(2),
            &ClaimOutcome::Made(partner(), made_customer(&made)),
            t,
        );
        assert_eq!(
            again.conditions, made.conditions,
            "an unchanged state changes no condition"
        );
        let _ = CustomerClaimSpec::default();
    }

    fn condition_of<'a>(
        status: &'a CustomerClaimStatus,
        type_: &str,
    ) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
        status.conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    fn made_customer(status: &CustomerClaimStatus) -> Option<Arc<Customer>> {
        let mut customer = Customer::new("x", Default::default());
        let mut theirs = CustomerStatus {
            group: status.group.clone(),
            ..Default::default()
        };
        theirs.conditions = status.customer_conditions.clone();
        theirs
            .conditions
            .push(condition_of(status, types::READY).clone());
        customer.status = Some(theirs);
        Some(Arc::new(customer))
    }
}
