//! Running the operator as a service: metrics and health endpoints, log format,
//! graceful shutdown, and leader election between replicas.
//!
//! - [`metrics`]: the Prometheus metrics.
//! - [`health`]: the HTTP server of `/metrics`, `/healthz` and `/readyz`.
//! - [`leader`]: leader election on a Lease.

pub mod health;
pub mod leader;
pub mod metrics;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, Client, Resource};
use tokio::task::JoinHandle;
use tracing_subscriber::EnvFilter;

use crate::api::{Customer, CustomerGroup};
use crate::controller;
use crate::error::{Error, Result};
use health::{Health, Phase};
use leader::LeaseConfig;
use metrics::Metrics;

/// How log lines look.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Plain,
    /// One JSON object per line (`timestamp`, `level`, `target`, `message` and the
    /// event's fields), for log collectors.
    Json,
}

/// Installs the global log subscriber: `RUST_LOG` filters (default `info`), lines go to
/// standard output in `format`.
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Plain => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// A trigger for graceful shutdown that any number of tasks can wait on.
pub type Shutdown = Shared<BoxFuture<'static, ()>>;

/// Resolves at the first SIGTERM or SIGINT; a second one ends the process at once
/// (exit code 130). Must be called inside the Tokio runtime.
pub fn on_signals() -> Shutdown {
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    async move {
        let mut terminate = match terminate {
            Ok(terminate) => terminate,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the operator");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = tokio::signal::ctrl_c() => "SIGINT",
        };
        tracing::info!(
            signal = name,
            "shutting down: finishing the reconciles in flight"
        );
        tokio::spawn(async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            tracing::warn!("second signal: exiting now");
            std::process::exit(130);
        });
    }
    .boxed()
    .shared()
}

/// What the controllers report to and stop on, besides their own work.
#[derive(Clone)]
pub struct Hooks {
    /// Where reconciles and applies are counted.
    pub metrics: Arc<Metrics>,
    /// Set to [`Phase::Syncing`] when the controllers start, [`Phase::Ready`] once
    /// their caches have filled.
    pub health: Health,
    /// When it resolves, the controllers take no new work, finish the reconciles in
    /// flight and return.
    pub shutdown: Shutdown,
}

/// How the operator runs as a service.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Where `/metrics`, `/healthz` and `/readyz` are served; `None`: nowhere.
    pub metrics_addr: Option<SocketAddr>,
    /// Leader election; `None`: this replica always runs the controllers.
    pub lease: Option<LeaseConfig>,
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop(Option<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

/// Runs the operator until SIGTERM or SIGINT: serves metrics and health, waits for the
/// Lease when leader election is on, runs the controllers, and on the signal lets the
/// reconciles in flight finish and hands the Lease back. Returns
/// [`Error::LeaseLost`] at once, without waiting for anything, if the Lease is lost.
pub async fn run(client: Client, controller: controller::Options, options: Options) -> Result<()> {
    let shutdown = on_signals();
    let metrics = Arc::new(Metrics::new());
    let health = Health::default();
    let _server = AbortOnDrop(match options.metrics_addr {
        Some(address) => {
            let listener = health::bind(address).await?;
            let local = listener.local_addr().map_err(|source| Error::Bind {
                address: address.to_string(),
                source,
            })?;
            tracing::info!(address = %local, "serving /metrics, /healthz and /readyz");
            Some(tokio::spawn(health::serve(
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
        return controller::run_with(client, controller, hooks).await;
    };
    lease.validate()?;
    let standby = async {
        crds_established(&client).await;
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
            result
        }
        Err(reason) => {
            health.set(Phase::Stopping);
            tracing::error!(%reason, "lost the leader lease: stopping all work now");
            Err(Error::LeaseLost(reason))
        }
    }
}

/// Waits until both CRDs exist and are established, checking every 2 s.
/// Whether the apiserver serves this CRD.
pub fn is_established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| {
            c.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
}

/// Server-side applies both CRDs and waits, up to 60 s, until the apiserver serves them. For tests, benchmarks and
/// the demo; in a cluster the chart installs them.
pub async fn install_crds(client: &Client) -> Result<()> {
    use kube::ResourceExt;
    use kube::api::{Patch, PatchParams};
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in [crate::api::customer_crd(), crate::api::customer_group_crd()] {
        crds.patch(
            &crd.name_any(),
            &PatchParams::apply(crate::api::FIELD_MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !crds
            .get(&crd.name_any())
            .await
            .is_ok_and(|c| is_established(&c))
        {
            if tokio::time::Instant::now() > deadline {
                return Err(Error::Timeout);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

async fn crds_established(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let names = [
        format!("{}.{}", Customer::plural(&()), Customer::group(&())),
        format!(
            "{}.{}",
            CustomerGroup::plural(&()),
            CustomerGroup::group(&())
        ),
    ];
    let mut told = false;
    loop {
        let mut missing = Vec::new();
        for name in &names {
            // A request that hangs (an apiserver that accepts connections while it
            // starts or stops) must not hold the standby forever.
            let read = tokio::time::timeout(leader::REQUEST_TIMEOUT, crds.get_opt(name));
            let established = match read.await.unwrap_or_else(|_| Err(timed_out())) {
                Ok(crd) => crd.as_ref().is_some_and(is_established),
                Err(error) => {
                    tracing::debug!(%error, crd = %name, "reading the CRD failed");
                    false
                }
            };
            if !established {
                missing.push(name.as_str());
            }
        }
        if missing.is_empty() {
            return;
        }
        if !told {
            tracing::warn!(crds = ?missing, "waiting for the CRDs to be installed");
            told = true;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The error of a request abandoned after [`leader::REQUEST_TIMEOUT`].
fn timed_out() -> kube::Error {
    kube::Error::Service(Box::new(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "no answer from the apiserver",
    )))
}
