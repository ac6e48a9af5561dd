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
        ("customer-admins", ROLE_ADMIN, &plan.own.admins),
        ("customer-editors", ROLE_EDIT, &plan.own.editors),
        ("customer-viewers", ROLE_VIEW, &plan.own.viewers),
        ("customer-group-admins", ROLE_ADMIN, &plan.group.admins),
        ("customer-group-editors", ROLE_EDIT, &plan.group.editors),
        ("customer-group-viewers", ROLE_VIEW, &plan.group.viewers),
        ("customer-parent-admins", ROLE_ADMIN, &plan.parent_admins),
        (
            CONSULTANTS_BINDING,
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
