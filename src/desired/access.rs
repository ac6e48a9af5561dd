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

/// Every name a RoleBinding of the operator may have (pruning looks these up).
pub const BINDING_NAMES: [&str; 8] = [
    "customer-admins",
    "customer-editors",
    "customer-viewers",
    "customer-group-admins",
    "customer-group-editors",
    "customer-group-viewers",
    PARENT_ADMINS_BINDING,
    CONSULTANTS_BINDING,
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
}

/// The bindings of one namespace: (name, ClusterRole, subjects), only those with subjects.
pub fn bindings(plan: &AccessPlan) -> Vec<(&'static str, RoleRef, Vec<RbacSubject>)> {
    let sources: [(&'static str, &'static str, &[Subject]); 8] = [
        (BINDING_NAMES[0], ROLE_ADMIN, &plan.own.admins),
        (BINDING_NAMES[1], ROLE_EDIT, &plan.own.editors),
        (BINDING_NAMES[2], ROLE_VIEW, &plan.own.viewers),
        (BINDING_NAMES[3], ROLE_ADMIN, &plan.group.admins),
        (BINDING_NAMES[4], ROLE_EDIT, &plan.group.editors),
        (BINDING_NAMES[5], ROLE_VIEW, &plan.group.viewers),
        (BINDING_NAMES[6], ROLE_ADMIN, &plan.parent_admins),
        (
            BINDING_NAMES[7],
            ROLE_SECURITY_CONSULTANT,
            &plan.consultants,
        ),
    ];
    sources
        .into_iter()
        .filter(|(_, _, subjects)| !subjects.is_empty())
        .map(|(name, role, subjects)| (name, cluster_role(role), rbac_subjects(subjects)))
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
