//! The operator as a service: metrics and health served, leader election, and the
//! controllers run by the leader. It stands above [`crate::operate`] and
//! [`crate::controller`], which know nothing of each other.

use std::sync::Arc;

use kube::Client;

use crate::controller;
use crate::operate::health::{Health, Phase};
use crate::operate::metrics::Metrics;
use crate::operate::{self, AbortOnDrop, Hooks, leader, on_signals, server};

/// Why the service stopped.
#[derive(thiserror::Error, Debug)]
pub enum Error {
    /// Serving, leader election or the CRDs failed.
    #[error(transparent)]
    Operate(#[from] operate::Error),
    /// The controllers could not start (an unusable setting).
    #[error(transparent)]
    Controller(#[from] crate::Error),
}

/// Runs the operator until SIGTERM or SIGINT: serves metrics and health, waits for the
/// Lease when leader election is on, runs the controllers, and on the signal lets the
/// reconciles in flight finish and hands the Lease back. Returns
/// [`operate::Error::LeaseLost`] at once, without waiting for anything, if the Lease is lost.
pub async fn run(
    client: Client,
    controller: controller::Options,
    options: operate::Options,
) -> Result<(), Error> {
    let shutdown = on_signals();
    let metrics = Arc::new(Metrics::new());
    let health = Health::default();
    let _server = AbortOnDrop(match options.metrics_addr {
        Some(address) => {
            let listener = server::bind(address).await?;
            let local = listener
                .local_addr()
                .map_err(|source| operate::Error::Bind {
                    address: address.to_string(),
                    source,
                })?;
            tracing::info!(address = %local, "serving /metrics, /healthz and /readyz");
            Some(tokio::spawn(server::serve(
                listener,
                metrics.clone(),
                health.clone(),
            )))
        }
        None => None,
    });
    let _stopping = AbortOnDrop(Some(tokio::spawn({
        let (shutdown, health) = (shutdown.clone(), health.clone());
        async move {
            shutdown.await;
            health.set(Phase::Stopping);
        }
    })));
    let hooks = Hooks {
        metrics: metrics.clone(),
        health: health.clone(),
        shutdown: shutdown.clone(),
    };
    let Some(lease) = options.lease else {
        metrics.set_leader(true);
        return Ok(controller::run_with(client, controller, hooks).await?);
    };
    lease.validate()?;
    let standby = async {
        operate::crds_established(&client).await;
        health.advance(Phase::Starting, Phase::Standby);
        leader::acquire(client.clone(), lease).await
    };
    let mut leadership = tokio::select! {
        leadership = standby => leadership?,
        _ = shutdown.clone() => return Ok(()),
    };
    metrics.set_leader(true);
    let outcome = tokio::select! {
        result = controller::run_with(client, controller, hooks) => Ok(result),
        reason = leadership.lost() => Err(reason),
    };
    metrics.set_leader(false);
    match outcome {
        Ok(result) => {
            leadership.release().await;
            Ok(result?)
        }
        Err(reason) => {
            health.set(Phase::Stopping);
            tracing::error!(%reason, "lost the leader lease: stopping all work now");
            Err(operate::Error::LeaseLost(reason).into())
        }
    }
}
