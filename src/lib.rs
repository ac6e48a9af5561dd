//! customer-operator: one `Customer` object becomes a customer's namespaces, network
//! isolation, access and quotas.
//!
//! - [`api`]: the CRD types.
//! - [`desired`]: pure functions from a Customer and its context to the objects that
//!   should exist.
//! - [`controller`]: the Customer and CustomerGroup controllers behind
//!   `customer-operator run`.
//! - [`render`]: the offline preview behind `customer-operator render`.
//! - [`operate`]: metrics, health, log format, graceful shutdown and leader election
//!   for `customer-operator run`; it knows nothing of the controllers.
//! - [`service`]: `customer-operator run` itself: the controllers behind [`operate`].
//! - [`isolation`]: the NetworkPolicy evaluator and the reachability matrix behind
//!   the `NetworkIsolated` condition and [`verify`], `customer-operator verify`.
//! - [`settings`]: the cluster-wide settings of `run`, `render` and `verify`.
//! - [`error`]: why a spec is refused, and the errors of the offline commands.
//! - [`cidr`]: IP ranges, for the settings and the evaluator.
//! - [`text`]: counts with the right plural, for messages.

pub mod api;
pub mod cidr;
pub mod console;
pub mod controller;
pub mod desired;
pub mod error;
pub mod isolation;
pub mod operate;
pub mod render;
pub mod service;
pub mod settings;
pub mod text;
pub mod verify;

pub use error::{Error, Result};
