//! Running the operator as a service: metrics and health endpoints, log format,
//! graceful shutdown, and leader election between replicas.
//!
//! - [`metrics`]: the Prometheus metrics.
//! - [`health`]: where the replica stands, for `/readyz`.
//! - [`server`]: the HTTP server of `/metrics`, `/healthz` and `/readyz`.
//! - [`leader`]: leader election on a Lease.
//!
//! Nothing here knows the controllers; [`crate::service`] runs them behind these.

pub mod health;
pub mod leader;
pub mod metrics;
pub mod server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, Client};
use tokio::task::JoinHandle;
use tracing_subscriber::EnvFilter;

use health::Health;
use leader::LeaseConfig;
use metrics::Metrics;

/// What can go wrong running the operator as a service.
#[derive(thiserror::Error, Debug)]
pub enum Error {
    /// The metrics and health server could not listen on its address.
    #[error(
        "listening on {address}: {source}; is another operator running on this machine? Give this one another address with --metrics-addr (host:port, port 0 picks a free one) or --metrics-addr off"
    )]
    Bind {
        /// The address asked for.
        address: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// A setting of the service is unusable.
    #[error("{0}")]
    Config(String),
    /// This replica lost the leader Lease and stopped all work.
    #[error("lost the leader lease: {0}")]
    LeaseLost(String),
    /// Installing the CRDs failed.
    #[error("installing the CRDs: {0}")]
    Crds(#[from] kube::Error),
    /// The CRDs were not served in time.
    #[error("the CRDs were not established within 60 s")]
    Timeout,
}

/// Results of running the service.
pub type Result<T, E = Error> = std::result::Result<T, E>;

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
    /// Set to [`health::Phase::Syncing`] when the controllers start, [`health::Phase::Ready`] once
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
pub struct AbortOnDrop(pub Option<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

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
    for crd in crate::api::crds() {
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

/// Waits until every CRD of the API exists and is established, checking every 2 s.
pub async fn crds_established(client: &Client) {
    use kube::ResourceExt;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let names: Vec<String> = crate::api::crds().iter().map(|c| c.name_any()).collect();
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
