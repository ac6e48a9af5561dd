//! customer-operator: one `Customer` object becomes a customer's namespaces, network
//! isolation, access and quotas.
//!
//! - [`api`]: the CRD types.
//! - [`desired`]: pure functions from a Customer and its context to the objects that
//!   should exist.
//! - [`controller`]: the Customer controller behind `customer-operator run`.
//! - [`render`]: the offline preview behind `customer-operator render`.
//! - [`operate`]: metrics, health, log format, graceful shutdown and leader election
//!   for `customer-operator run`.
//! - [`isolation`]: the NetworkPolicy evaluator and the reachability matrix behind
//!   the `NetworkIsolated` condition and [`verify`], `customer-operator verify`.
//! - [`text`]: counts with the right plural, for messages.

pub mod api;
pub mod controller;
pub mod desired;
pub mod error;
pub mod isolation;
pub mod operate;
pub mod render;
pub mod settings;
pub mod text;
pub mod verify;

pub use error::{Error, Result};
