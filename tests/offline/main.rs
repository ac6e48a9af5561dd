//! The tests that need no control plane, as one test binary (`cargo test --test offline`):
//! each former `tests/<name>.rs` is a module here. The tests against a control plane are
//! `tests/cluster/<name>.rs`, one binary each.

mod app_project;
mod crds;
mod desired;
mod health_checks;
mod image;
mod isolation;
mod netpol_truth;
mod properties;
mod render_cli;
mod shape;
mod tiers_truth;
mod verify_cli;
