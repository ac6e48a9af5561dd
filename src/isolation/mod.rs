//! Checked isolation: an evaluator of NetworkPolicies and ClusterNetworkPolicies and, on
//! top of it, the customer-by-customer reachability matrix behind `customer-operator
//! verify` and the `NetworkIsolated` condition. Pure: no client in here.
//!
//! - [`evaluate`]: namespaces, policies of every tier and a probe in, allowed or denied
//!   out, with the policy, rule and peer that decided each side.
//! - [`tiers`]: ClusterNetworkPolicies compiled: order, subjects, rules, peers, ports.
//! - [`matrix`]: which customer can reach which, and what no declaration covers.
//! - [`ports`], [`selector`] (and [`crate::cidr`]): the pieces they are made of.

pub mod evaluate;
pub mod matrix;
pub mod ports;
pub mod selector;
pub mod tiers;

pub use evaluate::{
    By, Decision, Direction, Grant, Network, Pod, PolicyId, PolicyRef, Probe, Side, Step, Verdict,
};
pub use matrix::{Analysis, Declared, Finding, Link, Tenancy, analyse};
pub use ports::PortSet;
pub use selector::Labels;
pub use tiers::{ClusterPolicyRef, Reach};
