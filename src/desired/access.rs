//! The RoleBindings of one customer namespace.

use std::collections::BTreeSet;

use k8s_openapi::api::rbac::v1::{RoleRef, Subject as RbacSubject};

use crate::api::{Access, Subject, SubjectKind};

/// ClusterRole of customer admins (shipped by the chart).
pub const ROLE_ADMIN: &str = "customer-admin";
/// ClusterRole of customer editors.
pub const ROLE_EDIT: &str = "customer-edit";
/// ClusterRole of customer viewers.
pub const ROLE_VIEW: &str = "customer-view";
/// ClusterRole of a partner's security consultants.
pub const ROLE_SECURITY_CONSULTANT: &str = "customer-security-consultant";

/// Name of the RoleBinding of the partner's security consultants.
pub const CONSULTANTS_BINDING: &str = "customer-security-consultants";

/// Name of the RoleBinding that grants the parent customers' admins `customer-admin`.
pub const PARENT_ADMINS_BINDING: &str = "customer-parent-admins";

/// Name of the binding that replaces [`PARENT_ADMINS_BINDING`] while the customer is
/// frozen (it grants `customer-view`).
pub const PARENT_ADMINS_FROZEN_BINDING: &str = "customer-parent-admins-frozen";

/// Every name a RoleBinding of the operator may have (pruning looks these up): the
/// bindings of an unfrozen customer, then those that replace the writing ones while it
/// is frozen. A RoleBinding's roleRef cannot change, so a frozen binding has a name of
/// its own.
pub const BINDING_NAMES: [&str; 13] = [
    "customer-admins",
    "customer-editors",
    "customer-viewers",
    "customer-group-admins",
    "customer-group-editors",
    "customer-group-viewers",
    PARENT_ADMINS_BINDING,
    CONSULTANTS_BINDING,
    "customer-admins-frozen",
    "customer-editors-frozen",
    "customer-group-admins-frozen",
    "customer-group-editors-frozen",
    PARENT_ADMINS_FROZEN_BINDING,
];

/// Who gets roles in a customer's namespaces, from where.
#[derive(Clone, Debug, Default)]
pub struct AccessPlan {
    /// The customer's own people.
    pub own: Access,
    /// The group's managers.
    pub group: Access,
    /// Admins of every parent, nearest first.
    pub parent_admins: Vec<Subject>,
    /// The partner's security consultants.
    pub consultants: Vec<Subject>,
    /// While true, every binding that grants `customer-admin` or `customer-edit` grants
    /// `customer-view` instead, under its frozen name.
    pub frozen: bool,
}

/// The bindings of one namespace: (name, ClusterRole, subjects), only those with subjects.
pub fn bindings(plan: &AccessPlan) -> Vec<(&'static str, RoleRef, Vec<RbacSubject>)> {
    let writing = |name: &'static str, frozen_name: &'static str, role: &'static str| {
        if plan.frozen {
            (frozen_name, ROLE_VIEW)
        } else {
            (name, role)
        }
    };
    let n = &BINDING_NAMES;
    let sources: [((&'static str, &'static str), &[Subject]); 8] = [
        (writing(n[0], n[8], ROLE_ADMIN), &plan.own.admins),
        (writing(n[1], n[9], ROLE_EDIT), &plan.own.editors),
        ((n[2], ROLE_VIEW), &plan.own.viewers),
        (writing(n[3], n[10], ROLE_ADMIN), &plan.group.admins),
        (writing(n[4], n[11], ROLE_EDIT), &plan.group.editors),
        ((n[5], ROLE_VIEW), &plan.group.viewers),
        (writing(n[6], n[12], ROLE_ADMIN), &plan.parent_admins),
        ((n[7], ROLE_SECURITY_CONSULTANT), &plan.consultants),
    ];
    sources
        .into_iter()
        .filter(|(_, subjects)| !subjects.is_empty())
        .map(|((name, role), subjects)| (name, cluster_role(role), rbac_subjects(subjects)))
        .collect()
}

fn cluster_role(name: &str) -> RoleRef {
    RoleRef {
        api_group: "rbac.authorization.k8s.io".into(),
        kind: "ClusterRole".into(),
        name: name.into(),
    }
}

/// RBAC subjects, without duplicates, in a stable order.
fn rbac_subjects(subjects: &[Subject]) -> Vec<RbacSubject> {
    let unique: BTreeSet<&Subject> = subjects.iter().collect();
    unique
        .into_iter()
        .map(|s| match s.kind {
            SubjectKind::ServiceAccount => RbacSubject {
                api_group: None,
                kind: "ServiceAccount".into(),
                name: s.name.clone(),
                namespace: s.namespace.clone(),
            },
            SubjectKind::User | SubjectKind::Group => RbacSubject {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: if s.kind == SubjectKind::User {
                    "User"
                } else {
                    "Group"
                }
                .into(),
                name: s.name.clone(),
                namespace: None,
            },
        })
        .collect()
}
