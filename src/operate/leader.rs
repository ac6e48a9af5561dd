//! Leader election on a `coordination.k8s.io/v1` Lease, so that two replicas are safe:
//! only the holder of the Lease runs the controllers.
//!
//! Every write to the Lease is a `replace` guarded by the `resourceVersion` that was
//! read, so of two replicas racing for a free Lease exactly one wins. Expiry is judged
//! the way client-go judges it, by the local monotonic clock rather than by comparing
//! timestamps of two machines: a standby takes the Lease over once it has seen the same
//! Lease record, unchanged, for the record's `leaseDurationSeconds`.
//!
//! The holder renews every `renew`; if it has not renewed successfully within
//! `duration - renew` of its last successful renewal (counted from when that request was
//! *sent*, so before the apiserver stored it), it gives up and reports the Lease lost. A
//! standby cannot take over before `duration` after that write, so the two never run at
//! once as long as both clocks run at the same rate.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client, ResourceExt};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{Error, Result};

/// Which Lease, as whom, and its timing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity in `spec.holderIdentity` (the pod name); unique per
    /// replica.
    pub identity: String,
    /// How long the Lease holds without renewal (`spec.leaseDurationSeconds`).
    pub duration: Duration,
    /// How often the holder renews, and (capped at 2 s) how often a standby looks.
    pub renew: Duration,
}

impl LeaseConfig {
    /// Checks that the timing can work: whole seconds, and the holder renews at least
    /// twice per lease duration (it gives up `duration - renew` after its last renewal).
    pub fn validate(&self) -> Result<()> {
        let problem = if self.identity.is_empty() {
            Some("the leader identity is empty (set POD_NAME or --leader-identity)".to_string())
        } else if self.duration < Duration::from_secs(1) || self.duration.subsec_nanos() != 0 {
            Some("the lease duration must be a whole number of seconds, at least 1".to_string())
        } else if self.renew.is_zero() || self.renew * 2 >= self.duration {
            Some(format!(
                "the renew period ({:?}) must be more than zero and less than half the lease \
                 duration ({:?})",
                self.renew, self.duration
            ))
        } else {
            None
        };
        match problem {
            Some(message) => Err(Error::Config(message)),
            None => Ok(()),
        }
    }

    /// How long after its last successful renewal the holder gives up.
    pub fn renew_deadline(&self) -> Duration {
        self.duration.saturating_sub(self.renew)
    }

    /// How often a replica that does not hold the Lease looks at it again.
    pub fn retry(&self) -> Duration {
        self.renew.min(Duration::from_secs(2))
    }
}

/// The outcome of one attempt at the Lease.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Attempt {
    /// This replica holds the Lease (acquired or renewed).
    Held,
    /// Another replica holds it and its record has not expired yet.
    Busy(String),
}

/// Reads and writes the Lease, remembering when its record last changed.
struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    /// The resourceVersion last seen, and when it was first seen.
    observed: Option<(String, Instant)>,
}

impl Elector {
    fn new(client: Client, config: LeaseConfig) -> Self {
        Elector {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: None,
        }
    }

    fn record(&self, previous: Option<&LeaseSpec>, now: Timestamp) -> LeaseSpec {
        let mine = previous.and_then(|s| s.holder_identity.as_deref())
            == Some(self.config.identity.as_str());
        let transitions = previous.and_then(|s| s.lease_transitions).unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(self.config.duration.as_secs().min(i32::MAX as u64) as i32),
            acquire_time: match previous {
                Some(spec) if mine => spec.acquire_time.clone(),
                _ => Some(MicroTime(now)),
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(match previous {
                Some(_) if !mine => transitions.saturating_add(1),
                _ => transitions,
            }),
            ..LeaseSpec::default()
        }
    }

    /// Takes the Lease if it is free, expired or already ours; renews it when ours.
    async fn try_acquire_or_renew(&mut self) -> Result<Attempt, kube::Error> {
        let now = Timestamp::now();
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.record(None, now)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Attempt::Held),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Busy(
                    "another replica (created it meanwhile)".into(),
                )),
                Err(error) => Err(error),
            };
        };
        let version = lease.resource_version().unwrap_or_default();
        let first_seen = match &self.observed {
            Some((seen, at)) if *seen == version => *at,
            _ => {
                let at = Instant::now();
                self.observed = Some((version, at));
                at
            }
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let lasts = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs)
            .unwrap_or(self.config.duration);
        match &holder {
            Some(holder) if *holder != self.config.identity && first_seen.elapsed() < lasts => {
                return Ok(Attempt::Busy(holder.clone()));
            }
            _ => {}
        }
        lease.spec = Some(self.record(Some(&spec), now));
        // `replace` carries the resourceVersion just read: if anyone wrote in between,
        // the apiserver answers 409 and nothing changes.
        self.api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await?;
        Ok(Attempt::Held)
    }

    /// Clears the holder if it is still this replica, so a standby takes over at once.
    async fn release(&mut self) -> Result<bool, kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            return Ok(false);
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(false);
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        lease.spec = Some(spec);
        self.api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await?;
        Ok(true)
    }
}

/// The Lease this replica holds, renewed in the background until it is released or lost.
pub struct Leadership {
    lost: watch::Receiver<Option<String>>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Elector>,
}

/// Longest wait for one request while standing by: a request that hangs (an apiserver
/// that accepts connections while it starts or stops) is abandoned and tried again.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Waits until this replica holds the Lease (creating it if needed), then keeps it
/// renewed in the background. Errors reaching the apiserver are logged and retried.
pub async fn acquire(client: Client, config: LeaseConfig) -> Result<Leadership> {
    config.validate()?;
    let mut elector = Elector::new(client, config);
    let mut waiting_for = None;
    let acquired_at = loop {
        let sent = Instant::now();
        let attempt = tokio::time::timeout(REQUEST_TIMEOUT, elector.try_acquire_or_renew());
        let Ok(outcome) = attempt.await else {
            tracing::warn!(lease = %elector.config.name, "reading the lease got no answer; retrying");
            continue;
        };
        match outcome {
            Ok(Attempt::Held) => break sent,
            Ok(Attempt::Busy(holder)) => {
                if waiting_for.as_ref() != Some(&holder) {
                    tracing::info!(lease = %elector.config.name, %holder, "standing by: another replica holds the lease");
                    waiting_for = Some(holder);
                }
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                tracing::debug!("the lease changed while this replica tried to take it");
            }
            Err(error) => {
                tracing::warn!(%error, lease = %elector.config.name, "reading the lease failed")
            }
        }
        tokio::time::sleep(elector.config.retry()).await;
    };
    tracing::info!(
        lease = %elector.config.name,
        namespace = %elector.config.namespace,
        identity = %elector.config.identity,
        "acquired the lease: this replica leads"
    );
    let (lost_tx, lost) = watch::channel(None);
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(keep(elector, acquired_at, stopped, lost_tx));
    Ok(Leadership {
        lost,
        stop: Some(stop),
        task,
    })
}

/// Renews the Lease every `renew` until told to stop; reports it lost when another
/// replica holds it or no renewal succeeded within the renew deadline.
async fn keep(
    mut elector: Elector,
    mut renewed_at: Instant,
    mut stop: oneshot::Receiver<()>,
    lost: watch::Sender<Option<String>>,
) -> Elector {
    let config = elector.config.clone();
    let mut wait = config.renew;
    loop {
        let deadline = renewed_at + config.renew_deadline();
        let attempt = async {
            tokio::time::sleep_until((Instant::now() + wait).min(deadline)).await;
            let sent = Instant::now();
            (
                sent,
                tokio::time::timeout_at(deadline, elector.try_acquire_or_renew()).await,
            )
        };
        let (sent, outcome) = tokio::select! {
            _ = &mut stop => return elector,
            outcome = attempt => outcome,
        };
        let reason = match outcome {
            Ok(Ok(Attempt::Held)) => {
                renewed_at = sent;
                wait = config.renew;
                continue;
            }
            Ok(Ok(Attempt::Busy(holder))) => format!("the lease is now held by {holder}"),
            Ok(Err(error)) if Instant::now() < deadline => {
                tracing::warn!(%error, "renewing the lease failed; retrying");
                wait = config.retry().min(Duration::from_secs(1));
                continue;
            }
            Ok(Err(error)) => format!(
                "no renewal succeeded within {:?} (last error: {error})",
                config.renew_deadline()
            ),
            Err(_) => format!("no renewal succeeded within {:?}", config.renew_deadline()),
        };
        let _ = lost.send(Some(reason));
        return elector;
    }
}

impl Leadership {
    /// Resolves when the Lease is lost, with the reason. The caller must stop all work
    /// at once.
    pub async fn lost(&mut self) -> String {
        match self.lost.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            Err(_) => "the lease renewal stopped".to_string(),
        }
    }

    /// Stops renewing and hands the Lease back (clears the holder), so that a standby
    /// takes over at its next look instead of waiting for the Lease to expire.
    pub async fn release(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let mut elector = match (&mut self.task).await {
            Ok(elector) => elector,
            Err(error) => {
                tracing::warn!(%error, "the lease renewal task failed");
                return;
            }
        };
        if self.lost.borrow().is_some() {
            return;
        }
        match elector.release().await {
            Ok(true) => tracing::info!(lease = %elector.config.name, "released the lease"),
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(%error, "releasing the lease failed; a standby takes over when it expires")
            }
        }
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(duration: u64, renew_ms: u64) -> LeaseConfig {
        LeaseConfig {
            namespace: "ns".into(),
            name: "lease".into(),
            identity: "a".into(),
            duration: Duration::from_secs(duration),
            renew: Duration::from_millis(renew_ms),
        }
    }

    #[test]
    fn timing_must_leave_room_for_renewals() {
        assert!(config(15, 5_000).validate().is_ok());
        assert!(config(4, 1_000).validate().is_ok());
        assert!(config(10, 5_000).validate().is_err());
        assert!(config(15, 0).validate().is_err());
        assert!(config(0, 100).validate().is_err());
        let mut anonymous = config(15, 5_000);
        anonymous.identity.clear();
        assert!(anonymous.validate().is_err());
        assert_eq!(config(15, 5_000).renew_deadline(), Duration::from_secs(10));
        assert_eq!(config(15, 5_000).retry(), Duration::from_secs(2));
        assert_eq!(config(4, 1_000).retry(), Duration::from_secs(1));
    }
}
