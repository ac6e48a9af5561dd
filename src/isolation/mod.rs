//! Checked isolation: a NetworkPolicy evaluator and, on top of it, the customer-by-customer
//! reachability matrix behind `customer-operator verify` and the `NetworkIsolated`
//! condition. Pure: no client in here.
//!
//! - [`evaluate`]: namespaces, policies and a probe in, allowed or denied out, with the
//!   policy, rule and peer that decided each side.
//! - [`matrix`]: which customer can reach which, and what no declaration covers.
//! - [`ports`], [`selector`] (and [`crate::cidr`]): the pieces they are made of.

pub mod evaluate;
pub mod matrix;
pub mod ports;
pub mod selector;

pub use evaluate::{Decision, Direction, Grant, Network, Pod, PolicyRef, Probe, Side, Verdict};
pub use matrix::{Analysis, Declared, Finding, Link, Tenancy, analyse};
pub use ports::PortSet;
pub use selector::Labels;
