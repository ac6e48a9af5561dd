//! What can go wrong in a reconcile, naming the step and the object it was at.

use std::fmt;

use kube::Resource;

/// The step of a reconcile a failed request was sent by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Adding the operator's finalizer to a Customer or group.
    AddFinalizer,
    /// Removing the operator's finalizer.
    RemoveFinalizer,
    /// Recording a Customer's former partner in its status.
    RecordPartner,
    /// Reading a namespace before its first update, for its managed fields.
    ReadNamespace,
    /// Creating a namespace (refused when the name exists).
    CreateNamespace,
    /// Making the fields of the operator's create its apply's.
    AdoptNamespace,
    /// Server-side applying an object.
    Apply,
    /// Deleting an object.
    Delete,
    /// Listing the NetworkPolicies others wrote in a customer namespace.
    ListPolicies,
    /// Writing a Customer's or a group's status.
    WriteStatus,
    /// Reading the Customer CRD (is it being deleted?).
    ReadCrd,
    /// Taking a Customer's ownership record off its objects (uninstall).
    Release,
    /// Reading a namespace's ResourceQuota to share out the whole-customer quota.
    ReadQuota,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::AddFinalizer => "add the finalizer to",
            Step::RemoveFinalizer => "remove the finalizer from",
            Step::RecordPartner => "record the former partner of",
            Step::ReadNamespace => "read",
            Step::CreateNamespace => "create",
            Step::AdoptNamespace => "take over the fields of its create in",
            Step::Apply => "apply",
            Step::Delete => "delete",
            Step::ListPolicies => "list the NetworkPolicies in",
            Step::WriteStatus => "write the status of",
            Step::ReadCrd => "read",
            Step::Release => "release",
            Step::ReadQuota => "read the usage of",
        })
    }
}

/// Every error of a reconcile.
#[derive(thiserror::Error, Debug)]
pub enum Error {
    /// A request to the apiserver failed.
    #[error("{step} {object}: {source}")]
    Api {
        /// The step that sent it.
        step: Step,
        /// The object (`NetworkPolicy nova-bakery/customer-default-deny`).
        object: String,
        /// What the client or the apiserver said.
        source: kube::Error,
    },
    /// The apiserver refused to store an object the operator applies (a value the
    /// operator's checks let through, an object of that name someone else created).
    #[error("the apiserver refused {object}: {message}")]
    ApplyRefused {
        /// The object (`RoleBinding shop/customer-admins`).
        object: String,
        /// What the apiserver said.
        message: String,
        /// The refusal.
        source: kube::Error,
    },
    /// The controller's caches did not fill in time (shutting down, or no apiserver).
    #[error("the {0} cache has not filled yet")]
    CachesNotReady(&'static str),
    /// A reconcile took too long and was abandoned.
    #[error("reconcile timed out")]
    Timeout,
    /// An object could not be turned into JSON or read back from it.
    #[error("serializing: {0}")]
    Serialize(String),
}

impl Error {
    /// A short CamelCase reason for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Api { .. } => "KubeApiError",
            Error::ApplyRefused { .. } => "ApplyRefused",
            Error::CachesNotReady(_) => "CachesNotReady",
            Error::Timeout => "Timeout",
            Error::Serialize(_) => "SerializeFailed",
        }
    }

    /// The apiserver's answer, when the request reached it and it refused.
    pub fn status(&self) -> Option<&kube::core::Status> {
        match self {
            Error::Api {
                source: kube::Error::Api(status),
                ..
            } => Some(status),
            _ => None,
        }
    }

    /// Whether the apiserver answered 404 Not Found.
    pub fn is_not_found(&self) -> bool {
        self.status().is_some_and(|s| s.code == 404)
    }
}

impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Self {
        Error::Serialize(error.to_string())
    }
}

/// Results of a reconcile.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Names the step and the object of a request that failed.
pub trait At<T> {
    /// The error, if any, as [`Error::Api`] at `step` for `object`.
    fn at(self, step: Step, object: impl fmt::Display) -> Result<T>;
}

impl<T> At<T> for kube::Result<T> {
    fn at(self, step: Step, object: impl fmt::Display) -> Result<T> {
        self.map_err(|source| Error::Api {
            step,
            object: object.to_string(),
            source,
        })
    }
}

/// An object as errors name it: `Kind namespace/name`, or `Kind name`.
pub fn named<K: Resource<DynamicType = ()>>(object: &K) -> String {
    describe(
        &K::kind(&()),
        object.meta().namespace.as_deref(),
        object.meta().name.as_deref().unwrap_or_default(),
    )
}

/// `kind namespace/name`, or `kind name` for a cluster-scoped object.
pub fn describe(kind: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

impl crate::operate::metrics::Failure for Error {
    fn reason(&self) -> &'static str {
        Error::reason(self)
    }
}
