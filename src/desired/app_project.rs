//! The Argo CD AppProject of one customer (`--argocd-projects`): named after the
//! customer, in the Argo CD namespace, so that the customer's Applications deploy into
//! its own namespaces and nowhere else, without a webhook.
//!
//! What it allows, and why:
//!
//! - **destinations**: each namespace the customer holds (and those `deletionProtection`
//!   keeps), on the in-cluster server, by exact name; nothing else. A namespace in
//!   conflict is not the customer's and is left out.
//! - **clusterResourceWhitelist** `[]`: no cluster-scoped kind (Argo CD reads an empty and
//!   an absent list alike here: nothing; it is the namespaced whitelist where absent means
//!   everything, and the operator writes none).
//! - **namespaceResourceBlacklist**: what the customer's own ClusterRoles may not write.
//!   Argo CD writes with its own identity (usually cluster-admin), so the customer's RBAC
//!   does not bind it: without the list, anyone who may sync an Application could change
//!   the quota, the limits, the isolation (under the NetworkPolicy backend) or grant
//!   themselves any role in the namespace.
//! - **sourceRepos**: the customer's `spec.argoCD.sourceRepos` plus its group's.
//! - **sourceNamespaces**: the customer's namespaces, so that where Argo CD runs with
//!   "applications in any namespace" the customer's Applications may live beside its
//!   workloads (the customer's RBAC decides who writes them there).
//! - **roles**: `customer-admin`, `customer-edit` and `customer-view`, held by the
//!   customer's admins, editors and viewers (and the group's managers and the parents'
//!   admins, as in the RoleBindings): Group and User subjects by name, in `groups`
//!   (Argo CD matches them against the groups claim and the claims its RBAC `scopes`
//!   names); ServiceAccounts have no meaning in Argo CD and are left out, as are names
//!   Argo CD cannot hold in a policy (a comma, a quote, a line break). While the
//!   customer is frozen, every role keeps its holders and may only `get`, as its
//!   RoleBindings grant only `customer-view`.

use std::collections::BTreeSet;

use super::access::{AccessPlan, ROLE_ADMIN, ROLE_EDIT, ROLE_VIEW};
use crate::api::app_project::{ApplicationDestination, GroupKind, IN_CLUSTER_SERVER, ProjectRole};
use crate::api::{AppProjectSpec, Subject, SubjectKind};
use crate::settings::IsolationBackend;

/// What the builder needs to know of one customer for its AppProject.
pub struct ProjectPlan<'a> {
    /// The project's name: the customer's.
    pub project: &'a str,
    /// The namespaces the customer holds (and keeps).
    pub namespaces: &'a BTreeSet<String>,
    /// The repositories, the customer's and its group's.
    pub source_repos: BTreeSet<String>,
    /// Who works on the customer.
    pub access: &'a AccessPlan,
    /// The isolation backend (decides whether NetworkPolicies are the operator's).
    pub backend: IsolationBackend,
}

/// The Application actions of each role.
const ROLE_ACTIONS: [(&str, &[&str]); 3] = [
    (ROLE_ADMIN, &["*"]),
    (
        ROLE_EDIT,
        &["get", "create", "update", "delete", "sync", "action/*"],
    ),
    (ROLE_VIEW, VIEW_ACTIONS),
];

/// The namespaced kinds a customer's Applications may not write, by isolation backend.
pub fn blacklist(backend: IsolationBackend) -> Vec<GroupKind> {
    let kind = |group: &str, kind: &str| GroupKind {
        group: group.into(),
        kind: kind.into(),
    };
    let mut kinds = vec![
        kind("", "ResourceQuota"),
        kind("", "LimitRange"),
        kind("rbac.authorization.k8s.io", "Role"),
        kind("rbac.authorization.k8s.io", "RoleBinding"),
        // CustomerUsers grant roles and CustomerClaims ask for customers: a customer
        // admin's decision, not every editor's with sync rights.
        kind("customers.dev", "*"),
    ];
    if backend == IsolationBackend::NetworkPolicy {
        kinds.push(kind("networking.k8s.io", "NetworkPolicy"));
    }
    kinds.sort();
    kinds
}

/// The AppProject's spec.
pub fn spec(plan: &ProjectPlan<'_>) -> AppProjectSpec {
    let namespaces: Vec<String> = plan.namespaces.iter().cloned().collect();
    AppProjectSpec {
        description: Some(format!(
            "Customer {}: its namespaces only (written by customer-operator)",
            plan.project
        )),
        destinations: namespaces
            .iter()
            .map(|ns| ApplicationDestination {
                server: Some(IN_CLUSTER_SERVER.into()),
                namespace: Some(ns.clone()),
            })
            .collect(),
        source_repos: plan.source_repos.iter().cloned().collect(),
        source_namespaces: namespaces,
        cluster_resource_whitelist: Vec::new(),
        namespace_resource_blacklist: blacklist(plan.backend),
        roles: roles(plan.project, plan.access),
    }
}

/// The actions of `customer-view`, the only ones any role keeps while frozen.
const VIEW_ACTIONS: &[&str] = &["get"];

/// The roles that someone holds, in the order admin, edit, view.
fn roles(project: &str, access: &AccessPlan) -> Vec<ProjectRole> {
    let holders: [Vec<&Subject>; 3] = [
        access
            .own
            .admins
            .iter()
            .chain(&access.group.admins)
            .chain(&access.parent_admins)
            .collect(),
        access
            .own
            .editors
            .iter()
            .chain(&access.group.editors)
            .collect(),
        access
            .own
            .viewers
            .iter()
            .chain(&access.group.viewers)
            .collect(),
    ];
    ROLE_ACTIONS
        .iter()
        .zip(holders)
        .filter_map(|((role, actions), subjects)| {
            let groups = claim_values(&subjects);
            let actions = if access.frozen { VIEW_ACTIONS } else { actions };
            (!groups.is_empty()).then(|| ProjectRole {
                name: (*role).into(),
                description: Some(format!("holders of {role} in the customer's namespaces")),
                policies: actions
                    .iter()
                    .map(|action| {
                        format!(
                            "p, proj:{project}:{role}, applications, {action}, {project}/*, allow"
                        )
                    })
                    .collect(),
                groups,
            })
        })
        .collect()
}

/// The names Argo CD can match, without duplicates, sorted: Users and Groups, not
/// ServiceAccounts, not names a policy line cannot hold.
fn claim_values(subjects: &[&Subject]) -> Vec<String> {
    subjects
        .iter()
        .filter(|s| matches!(s.kind, SubjectKind::User | SubjectKind::Group))
        .map(|s| s.name.trim())
        .filter(|name| !name.is_empty() && !name.contains([',', '"', '\n', '\r', '\t']))
        .map(str::to_string)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Access;

    fn subject(kind: SubjectKind, name: &str) -> Subject {
        Subject {
            kind,
            name: name.into(),
            namespace: (kind == SubjectKind::ServiceAccount).then(|| "ci".into()),
        }
    }

    #[test]
    fn service_accounts_and_unusable_names_hold_no_role() {
        let access = AccessPlan {
            own: Access {
                admins: vec![
                    subject(SubjectKind::ServiceAccount, "deployer"),
                    subject(SubjectKind::Group, "ops,admins"),
                ],
                viewers: vec![subject(SubjectKind::User, "ann@example.com")],
                ..Default::default()
            },
            ..Default::default()
        };
        let roles = roles("nova", &access);
        assert_eq!(roles.len(), 1, "{roles:?}");
        assert_eq!(roles[0].name, ROLE_VIEW);
        assert_eq!(roles[0].groups, ["ann@example.com"]);
        assert_eq!(
            roles[0].policies,
            ["p, proj:nova:customer-view, applications, get, nova/*, allow"]
        );
    }

    #[test]
    fn a_frozen_customer_keeps_its_roles_with_get_only() {
        let mut access = AccessPlan {
            own: Access {
                admins: vec![subject(SubjectKind::Group, "ops")],
                editors: vec![subject(SubjectKind::User, "bob")],
                ..Default::default()
            },
            ..Default::default()
        };
        let before = roles("nova", &access);
        access.frozen = true;
        let frozen = roles("nova", &access);
        let names = |roles: &[ProjectRole]| -> Vec<(String, Vec<String>)> {
            roles
                .iter()
                .map(|r| (r.name.clone(), r.groups.clone()))
                .collect()
        };
        assert_eq!(names(&frozen), names(&before));
        for role in &frozen {
            assert_eq!(
                role.policies,
                [format!(
                    "p, proj:nova:{}, applications, get, nova/*, allow",
                    role.name
                )]
            );
        }
        assert!(before[0].policies.len() == 1 && before[0].policies[0].contains(", *, "));
    }

    #[test]
    fn network_policies_are_blacklisted_only_under_the_network_policy_backend() {
        let has_netpol = |b| {
            blacklist(b)
                .iter()
                .any(|k| k.group == "networking.k8s.io" && k.kind == "NetworkPolicy")
        };
        assert!(has_netpol(IsolationBackend::NetworkPolicy));
        assert!(!has_netpol(IsolationBackend::ClusterNetworkPolicy));
    }
}
