//! Argo CD's AppProject (`argoproj.io/v1alpha1`), as far as the operator writes it: one
//! per customer, in the Argo CD namespace, when `--argocd-projects` is on and the
//! cluster serves the kind. The CRD is Argo CD's: the operator neither generates nor
//! installs it, and types only the fields it sets (others, such as a role's JWT tokens
//! or `status`, are not read and are not the operator's).

use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// The API group of AppProject.
pub const APP_PROJECT_GROUP: &str = "argoproj.io";
/// The name of the AppProject CRD, to find out whether a cluster serves it.
pub const APP_PROJECT_CRD: &str = "appprojects.argoproj.io";
/// The in-cluster server as Argo CD names it in a destination.
pub const IN_CLUSTER_SERVER: &str = "https://kubernetes.default.svc";

/// What an AppProject allows the Applications of the project: where they deploy, from
/// which repositories, which kinds, and who may do what with them.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "argoproj.io",
    version = "v1alpha1",
    kind = "AppProject",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct AppProjectSpec {
    /// What the project is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The clusters and namespaces its Applications may deploy into; nothing else.
    #[serde(default)]
    pub destinations: Vec<ApplicationDestination>,
    /// The repositories its Applications may take manifests from (globs); none: no
    /// Application can be created.
    #[serde(default)]
    pub source_repos: Vec<String>,
    /// The namespaces Applications of this project may be written in, besides Argo CD's
    /// own ("applications in any namespace", where Argo CD is set up for it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_namespaces: Vec<String>,
    /// Cluster-scoped kinds its Applications may write; empty or absent: none.
    #[serde(default)]
    pub cluster_resource_whitelist: Vec<GroupKind>,
    /// Namespaced kinds its Applications may not write, though Argo CD's own identity
    /// could.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace_resource_blacklist: Vec<GroupKind>,
    /// Project roles: policies and the groups (SSO claims) that hold them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<ProjectRole>,
}

/// One place Applications may deploy to.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplicationDestination {
    /// The cluster's API server URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The namespace (a glob in Argo CD; the operator writes exact names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// An API group and a kind (globs in Argo CD).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupKind {
    /// The API group; `""` for the core group.
    pub group: String,
    /// The kind.
    pub kind: String,
}

/// A project role: Casbin policies on the project's objects, held by SSO groups.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct ProjectRole {
    /// The role's name (letters, digits, `-` and `_`).
    pub name: String,
    /// What the role is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Policies of the form `p, proj:<project>:<role>, <resource>, <action>,
    /// <project>/<object>, allow`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
    /// The values of the SSO claims Argo CD matches (the groups claim, and those its
    /// RBAC `scopes` name) that hold the role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}
