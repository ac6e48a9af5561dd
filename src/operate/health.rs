//! Where the replica stands ([`Phase`]), shared between the controllers, leader election
//! and `/readyz`.

use std::sync::{Arc, Mutex};

/// Where the replica stands, as `/readyz` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Just started: nothing checked yet.
    Starting,
    /// Leader election is on, another replica leads, and the CRDs exist: this replica is
    /// ready to take over. Ready.
    Standby,
    /// The controllers run and their caches are filling. Not ready.
    Syncing,
    /// The controllers run on filled caches. Ready.
    Ready,
    /// The controllers run, but the apiserver no longer serves the operator's API (its
    /// CRDs were deleted: an uninstall). Not ready.
    ApiMissing,
    /// Shutting down (finishing reconciles in flight, releasing the lease). Not ready.
    Stopping,
}

impl Phase {
    /// Whether `/readyz` answers 200.
    pub fn is_ready(self) -> bool {
        matches!(self, Phase::Standby | Phase::Ready)
    }

    /// The word `/readyz` answers with.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Standby => "standby",
            Phase::Syncing => "syncing caches",
            Phase::Ready => "ready",
            Phase::ApiMissing => "the customers.dev API is not served (CRDs deleted)",
            Phase::Stopping => "stopping",
        }
    }
}

/// The replica's [`Phase`], shared between the controller and the server.
#[derive(Clone, Debug)]
pub struct Health(Arc<Mutex<Phase>>);

impl Default for Health {
    fn default() -> Self {
        Health(Arc::new(Mutex::new(Phase::Starting)))
    }
}

impl Health {
    /// The phase now.
    pub fn phase(&self) -> Phase {
        *self.0.lock().expect("health lock")
    }

    /// Moves to `phase`.
    pub fn set(&self, phase: Phase) {
        *self.0.lock().expect("health lock") = phase;
    }

    /// Moves from `from` to `to`, only if the phase still is `from` (a cache that fills
    /// while the replica is already stopping must not make it ready again).
    pub fn advance(&self, from: Phase, to: Phase) {
        let mut phase = self.0.lock().expect("health lock");
        if *phase == from {
            *phase = to;
        }
    }
}
