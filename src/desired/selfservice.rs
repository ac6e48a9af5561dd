//! Self-service, pure: who a CustomerClaim asks as (a partner or a parent customer), what
//! it may ask for, the Customer fields it sets, a partner's own objects, and when a
//! connection from a claimed customer may open.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use serde_json::{Value, json};

use super::access;
use super::directory::Directory;
use super::ownership::ANNOTATION_OWNER_UID;
use super::resolve;
use super::validate::nanos;
use crate::api::{
    Customer, CustomerClaim, CustomerSpec, Isolation, LABEL_CLAIM_NAME, LABEL_CLAIM_NAMESPACE,
    LABEL_MANAGED_BY, LABEL_PARTNER_NAMESPACE, MANAGED_BY, PARTNER_NAMESPACE_PREFIX, Partner,
    PartnerRef, QuotaSpec, partner_namespace,
};
use crate::error::{Problem, Reason};
use crate::settings::Settings;

/// ClusterRole of a partner's admins in the partner's namespace (shipped by the chart):
/// CustomerClaims and nothing else.
pub const ROLE_PARTNER_ADMIN: &str = "customer-partner-admin";
/// Name of the RoleBinding of the partner's admins in the partner's namespace.
pub const PARTNER_ADMINS_BINDING: &str = "customer-partner-admins";

/// On whose behalf a CustomerClaim asks, from the namespace it is in.
#[derive(Clone, Debug)]
pub enum Requester {
    /// A claim in this partner's namespace: a Customer of the partner.
    Partner(Arc<Partner>),
    /// A claim in a namespace of this customer: an inner customer of it.
    Parent(Arc<Customer>),
}

impl Requester {
    /// The requester as a claim's status names it (`Partner acme`, `Customer galactic`).
    pub fn describe(&self) -> String {
        match self {
            Requester::Partner(p) => format!("Partner {}", p.name_any()),
            Requester::Parent(c) => format!("Customer {}", c.name_any()),
        }
    }
}

/// The requester of claims in `namespace`: the partner whose namespace it is (the
/// operator made it for that Partner), else the customer that holds it; `None` when it
/// is neither, and claims there ask for nothing.
pub fn requester(namespace: &str, dir: &dyn Directory) -> Option<Requester> {
    if let Some(name) = namespace.strip_prefix(PARTNER_NAMESPACE_PREFIX) {
        return dir
            .partner(name)
            .filter(|p| dir.is_partner_namespace(namespace, p))
            .map(Requester::Partner);
    }
    let holder = dir.namespace_holder(namespace)?;
    dir.customer(&holder).map(Requester::Parent)
}

/// The name of the claim that made this Customer, as `(namespace, name)`, from its labels.
pub fn claim_of(customer: &Customer) -> Option<(String, String)> {
    let labels = customer.metadata.labels.as_ref()?;
    Some((
        labels.get(LABEL_CLAIM_NAMESPACE)?.clone(),
        labels.get(LABEL_CLAIM_NAME)?.clone(),
    ))
}

/// Whether this Customer is the one `claim` made.
pub fn made_by(customer: &Customer, claim: &CustomerClaim) -> bool {
    claim_of(customer) == Some((claim.namespace().unwrap_or_default(), claim.name_any()))
}

/// The Customer a claim asks for, as a typed object (for validation and `render`): the
/// claim's fields, the partner or parent its requester decides, and the labels that
/// name the claim.
pub fn customer_for(claim: &CustomerClaim, requester: &Requester) -> Customer {
    let spec = &claim.spec;
    let (partner, parent) = match requester {
        Requester::Partner(p) => (
            Some(PartnerRef {
                name: p.name_any(),
                security_consultants: Vec::new(),
            }),
            None,
        ),
        Requester::Parent(c) => (None, Some(c.name_any())),
    };
    let mut customer = Customer::new(
        &claim.name_any(),
        CustomerSpec {
            display_name: spec.display_name.clone(),
            contact_email: spec.contact_email.clone(),
            description: spec.description.clone(),
            group: spec.group.clone(),
            parent,
            partner,
            namespaces: spec.namespaces.clone(),
            access: spec.access.clone(),
            network: spec.network.clone(),
            quota: spec.quota.clone(),
            limits: spec.limits.clone(),
            deletion_protection: false,
            frozen: false,
            argo_cd: None,
        },
    );
    customer.metadata.labels = Some(claim_labels(claim));
    customer
}

/// The labels that name the claim a Customer was made from.
fn claim_labels(claim: &CustomerClaim) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            LABEL_CLAIM_NAMESPACE.to_string(),
            claim.namespace().unwrap_or_default(),
        ),
        (LABEL_CLAIM_NAME.to_string(), claim.name_any()),
    ])
}

/// The server-side apply body of the claim's fields of its Customer: only what the claim
/// sets, so that the fields the platform team sets (deletion protection, a group, the
/// partner's consultants) stay under its own field manager.
pub fn applied_customer(claim: &CustomerClaim, requester: &Requester) -> Value {
    let built = customer_for(claim, requester);
    let mut spec = serde_json::to_value(&built.spec).expect("a spec always serializes");
    let fields = spec.as_object_mut().expect("a spec is an object");
    fields.remove("deletionProtection");
    if let Some(partner) = fields.get_mut("partner").and_then(Value::as_object_mut) {
        partner.remove("securityConsultants");
    }
    json!({
        "apiVersion": crate::api::API_VERSION,
        "kind": "Customer",
        "metadata": {"name": built.name_any(), "labels": claim_labels(claim)},
        "spec": spec,
    })
}

/// Every field of the claim outside what its requester may ask for. The would-be
/// Customer's effective isolation and quota are checked (a group default counts), so a
/// claim that leaves a field unset cannot get more than one that sets it.
pub fn check_claim(
    claim: &CustomerClaim,
    requester: &Requester,
    dir: &dyn Directory,
    settings: &Settings,
) -> Vec<Problem> {
    let customer = customer_for(claim, requester);
    let effective = resolve::effective(&customer, dir, settings);
    let mut problems = Vec::new();
    let isolation_field = if claim
        .spec
        .network
        .as_ref()
        .and_then(|n| n.isolation)
        .is_some()
    {
        "spec.network.isolation".to_string()
    } else {
        format!(
            "spec.network.isolation (unset: CustomerGroup {}'s default)",
            effective.group_name
        )
    };
    let quota_field = if claim.spec.quota.is_some() {
        "spec.quota"
    } else {
        "spec.quota (unset: the group's default)"
    };
    match requester {
        Requester::Partner(partner) => {
            let limits = &partner.spec.limits;
            let allowed_groups = if limits.allowed_groups.is_empty() {
                vec![settings.default_group.clone()]
            } else {
                limits.allowed_groups.clone()
            };
            if !allowed_groups.contains(&effective.group_name) {
                problems.push(outside(
                    "spec.group",
                    format!(
                        "group {:?} is not one Partner {} allows (allowed: {})",
                        effective.group_name,
                        partner.name_any(),
                        allowed_groups.join(", ")
                    ),
                ));
            }
            let allowed_isolation = if limits.allowed_isolation.is_empty() {
                vec![Isolation::Strict, Isolation::Standard]
            } else {
                limits.allowed_isolation.clone()
            };
            if !allowed_isolation.contains(&effective.isolation) {
                problems.push(outside(
                    &isolation_field,
                    format!(
                        "isolation {:?} is not one Partner {} allows (allowed: {})",
                        effective.isolation,
                        partner.name_any(),
                        allowed_isolation
                            .iter()
                            .map(|i| format!("{i:?}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            if let Some(max) = &limits.max_quota {
                let bound = QuotaSpec {
                    hard: max.clone(),
                    ..Default::default()
                };
                let whose = format!("Partner {}'s spec.limits.maxQuota", partner.name_any());
                check_within(
                    &mut problems,
                    quota_field,
                    effective.quota.as_ref(),
                    &bound,
                    &whose,
                );
            }
        }
        Requester::Parent(parent) => {
            let parents = resolve::effective(parent, dir, settings);
            if claim.spec.group.is_some() && effective.group_name != parents.group_name {
                problems.push(outside(
                    "spec.group",
                    format!(
                        "an inner customer joins its parent's group {:?}, not {:?}",
                        parents.group_name, effective.group_name
                    ),
                ));
            }
            if strength(effective.isolation) < strength(parents.isolation) {
                problems.push(outside(
                    &isolation_field,
                    format!(
                        "isolation {:?} is weaker than the parent Customer {}'s {:?}",
                        effective.isolation,
                        parent.name_any(),
                        parents.isolation
                    ),
                ));
            }
            if let Some(bound) = &parents.quota {
                let whose = format!("the parent Customer {}'s quota", parent.name_any());
                check_within(
                    &mut problems,
                    quota_field,
                    effective.quota.as_ref(),
                    bound,
                    &whose,
                );
            }
        }
    }
    problems
}

/// How strongly an isolation level isolates: None < Standard < Strict.
fn strength(isolation: Isolation) -> u8 {
    match isolation {
        Isolation::None => 0,
        Isolation::Standard => 1,
        Isolation::Strict => 2,
    }
}

fn outside(field: &str, message: String) -> Problem {
    Problem::new(Reason::OutsideBounds, field, message)
}

/// Every resource of `bound` must be limited by `quota`, at most as much; and `quota`
/// may limit nothing `bound` does not.
fn check_within(
    problems: &mut Vec<Problem>,
    field: &str,
    quota: Option<&QuotaSpec>,
    bound: &QuotaSpec,
    whose: &str,
) {
    let empty = QuotaSpec::default();
    let quota = quota.unwrap_or(&empty);
    for (resource, max) in &bound.hard {
        if !quota.hard.contains_key(resource) && !quota.total.contains_key(resource) {
            problems.push(outside(
                &format!("{field}.hard.{resource}"),
                format!("must be set, at most {} ({whose})", max.0),
            ));
        }
    }
    for (part, limits) in [("hard", &quota.hard), ("total", &quota.total)] {
        for (resource, asked) in limits {
            let message = match bound.hard.get(resource) {
                None => format!("{whose} does not bound {resource}, so a claim may not set it"),
                Some(max)
                    if nanos(&asked.0)
                        .zip(nanos(&max.0))
                        .is_none_or(|(a, m)| a > m) =>
                {
                    format!("{} is more than {} ({whose})", asked.0, max.0)
                }
                Some(_) => continue,
            };
            problems.push(outside(&format!("{field}.{part}.{resource}"), message));
        }
    }
}

/// Whether the `allowFrom` of `opener` toward `peer` may open. A Customer the platform
/// team wrote opens as it always has; one made from a claim opens toward customers of
/// the same partner or of the same parent tree, and toward anyone else only when that
/// customer names it in its own `allowFrom` too (mutual consent).
pub fn consented(opener: &Customer, peer: &Customer, dir: &dyn Directory) -> bool {
    if claim_of(opener).is_none() {
        return true;
    }
    let partner = |c: &Customer| c.spec.partner.as_ref().map(|p| p.name.clone());
    if partner(opener).is_some() && partner(opener) == partner(peer) {
        return true;
    }
    if root(opener, dir) == root(peer, dir) {
        return true;
    }
    let me = opener.name_any();
    peer.spec
        .network
        .iter()
        .flat_map(|n| n.allow_from.iter())
        .any(|a| a.customer.as_deref() == Some(me.as_str()))
}

/// The top of a customer's parent tree (itself when it has no parent).
fn root(customer: &Customer, dir: &dyn Directory) -> String {
    resolve::ancestors(customer, dir)
        .ok()
        .and_then(|chain| chain.last().map(|c| c.name_any()))
        .unwrap_or_else(|| customer.name_any())
}

/// The partner's namespace, labelled and annotated as the partner's.
pub fn partner_namespace_object(partner: &Partner) -> Namespace {
    Namespace {
        metadata: partner_meta(partner, partner_namespace(&partner.name_any()), None),
        ..Default::default()
    }
}

/// The RoleBinding that gives the partner's admins `customer-partner-admin` in the
/// partner's namespace.
pub fn partner_admins_binding(partner: &Partner) -> RoleBinding {
    let namespace = partner_namespace(&partner.name_any());
    let plan = access::AccessPlan {
        own: crate::api::Access {
            admins: partner.spec.admins.clone(),
            ..Default::default()
        },
        ..Default::default()
    };
    let subjects = access::bindings(&plan)
        .into_iter()
        .next()
        .map(|(_, _, subjects)| subjects)
        .unwrap_or_default();
    RoleBinding {
        metadata: partner_meta(partner, PARTNER_ADMINS_BINDING.to_string(), Some(namespace)),
        role_ref: k8s_openapi::api::rbac::v1::RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: ROLE_PARTNER_ADMIN.into(),
        },
        subjects: Some(subjects),
    }
}

fn partner_meta(partner: &Partner, name: String, namespace: Option<String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace,
        labels: Some(BTreeMap::from([
            (LABEL_PARTNER_NAMESPACE.to_string(), partner.name_any()),
            (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
        ])),
        annotations: partner
            .uid()
            .map(|uid| BTreeMap::from([(ANNOTATION_OWNER_UID.to_string(), uid)])),
        ..Default::default()
    }
}

/// Whether this namespace's metadata marks it as the namespace the operator made for
/// `partner`: its label names the partner and its owner annotation holds the partner's
/// uid (offline, without uids, the label alone).
pub fn is_partner_namespace_of(meta: &ObjectMeta, partner: &Partner) -> bool {
    let labelled = meta
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_PARTNER_NAMESPACE))
        .is_some_and(|p| *p == partner.name_any());
    let owner = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_OWNER_UID));
    labelled && owner.map(String::as_str) == partner.metadata.uid.as_deref()
}
