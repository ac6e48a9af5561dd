//! The problems that make the operator refuse a spec ([`Problem`], [`Reason`]), and the
//! errors of the commands that read files and settings (`render`, `verify`, `crds`, the
//! settings of `run`). The controllers and the service have error types of their own
//! ([`crate::controller::error`], [`crate::operate::Error`]).

use std::fmt;

/// Why a spec cannot be turned into objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// `metadata.name` is not a DNS-1123 label of at most 40 characters.
    InvalidName,
    /// A field breaks a rule the CRD schema states (length, format).
    InvalidField,
    /// `spec.group` names a CustomerGroup that does not exist.
    UnknownGroup,
    /// `spec.parent` names a Customer that does not exist.
    UnknownParent,
    /// Following `spec.parent` comes back to this customer.
    ParentCycle,
    /// The chain of parents is longer than allowed.
    ParentTooDeep,
    /// A namespace name is reserved for the system, the platform or the operator.
    ReservedNamespace,
    /// Two namespaces of the customer have the same name.
    DuplicateNamespace,
    /// A label or annotation key is reserved for the operator.
    ReservedLabel,
    /// A label or annotation key or value is not valid.
    InvalidLabel,
    /// A subject is incomplete (a ServiceAccount without namespace).
    InvalidSubject,
    /// An `allowFrom` entry is malformed.
    InvalidAllowFrom,
    /// A quota or limit quantity is malformed, or one the apiserver refuses there.
    InvalidQuantity,
    /// A subject is a system one (`system:` user or group, a ServiceAccount of a system
    /// namespace) the operator is not configured to allow.
    SystemSubject,
    /// A CustomerClaim asks for more than its partner or its parent customer allows.
    OutsideBounds,
}

impl Reason {
    /// The reason as a condition or Event reason (CamelCase).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidName => "InvalidName",
            Reason::InvalidField => "InvalidField",
            Reason::UnknownGroup => "UnknownGroup",
            Reason::UnknownParent => "UnknownParent",
            Reason::ParentCycle => "ParentCycle",
            Reason::ParentTooDeep => "ParentTooDeep",
            Reason::ReservedNamespace => "ReservedNamespace",
            Reason::DuplicateNamespace => "DuplicateNamespace",
            Reason::ReservedLabel => "ReservedLabel",
            Reason::InvalidLabel => "InvalidLabel",
            Reason::InvalidSubject => "InvalidSubject",
            Reason::InvalidAllowFrom => "InvalidAllowFrom",
            Reason::InvalidQuantity => "InvalidQuantity",
            Reason::SystemSubject => "SystemSubject",
            Reason::OutsideBounds => "OutsideBounds",
        }
    }
}

/// One thing wrong with a spec: why, where, and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Why the spec is refused.
    pub reason: Reason,
    /// The field at fault, as a path (`spec.namespaces[1].name`).
    pub field: String,
    /// What is wrong, for a person.
    pub message: String,
}

impl Problem {
    /// A problem with `field` for `reason`.
    pub fn new(reason: Reason, field: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            reason,
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} ({})",
            self.field,
            self.message,
            self.reason.as_str()
        )
    }
}

/// An error of the offline commands and of the settings.
#[derive(thiserror::Error, Debug)]
pub enum Error {
    /// A spec the operator refuses; nothing is changed for it.
    #[error("{}", join_problems(.0))]
    Invalid(Vec<Problem>),
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// A document in a file is not a valid Customer or CustomerGroup.
    #[error("{path}: {object}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The object (`Customer/name`, or the document's position).
        object: String,
        /// What is wrong, naming the field.
        message: String,
    },
    /// Input documents `render` or `verify` cannot use, one line each.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Unusable(Vec<Error>),
    /// Reading the cluster (`verify` without files) failed.
    #[error("reading the cluster: {0}")]
    Kube(#[from] kube::Error),
    /// Output could not be serialized.
    #[error("serializing: {0}")]
    Serialize(String),
    /// A setting of the operator is unusable.
    #[error("{0}")]
    Config(String),
}

impl Error {
    /// A short CamelCase reason for conditions, Events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Invalid(problems) => problems
                .first()
                .map(|p| p.reason.as_str())
                .unwrap_or("Invalid"),
            Error::Read { .. } => "ReadFailed",
            Error::Parse { .. } => "ParseFailed",
            Error::Unusable(_) => "UnusableInput",
            Error::Kube(_) => "KubeApiError",
            Error::Serialize(_) => "SerializeFailed",
            Error::Config(_) => "InvalidConfig",
        }
    }
}

/// A value that could not be turned into JSON or read back from it.
impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Self {
        Error::Serialize(error.to_string())
    }
}

fn join_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
