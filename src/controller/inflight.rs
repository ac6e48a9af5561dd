//! Writes whose watch events the caches have not seen yet.
//!
//! A reconcile that runs right after another (triggered by the events of the first one's
//! writes) may find the caches a few events behind: the objects it just wrote look
//! missing or old, and it would write them again. Each write is remembered with the
//! resourceVersion the apiserver gave it; while a cache has not reached that version
//! (the watch of a kind delivers its events in resourceVersion order), writing the same
//! content again is skipped.
//!
//! The watch event of a write the operator made shows nothing the writing reconcile did
//! not know: it is an echo ([`InFlight::echoes`]), and it does not reconcile the writer
//! again (see [`super::triggers::Echoes`]). Any other event of the object, someone
//! else's change or a later version, does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use kube::Resource;
use kube::runtime::watcher::Event;

/// How far the watch of one kind has got: the highest resourceVersion among its events.
#[derive(Debug, Default)]
pub struct Progress(AtomicU64);

impl Progress {
    /// Takes one watch event into account.
    pub fn observe<K: Resource>(&self, event: &Event<K>) {
        if let Event::Apply(o) | Event::Delete(o) | Event::InitApply(o) = event
            && let Some(version) = numeric(o.meta().resource_version.as_deref())
        {
            self.0.fetch_max(version, Ordering::Relaxed);
        }
    }

    /// The highest resourceVersion seen.
    pub fn seen(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Passes `stream` through, following its progress in `progress`.
pub fn follow<K, E, S>(progress: Arc<Progress>, stream: S) -> impl Stream<Item = S::Item>
where
    K: Resource,
    S: Stream<Item = Result<Event<K>, E>>,
{
    stream.inspect(move |event| {
        if let Ok(event) = event {
            progress.observe(event);
        }
    })
}

/// The watch progress of each kind the operator writes, by kind.
pub struct Progresses(HashMap<&'static str, Arc<Progress>>);

impl Progresses {
    /// A progress at zero for each kind the operator writes.
    pub fn new() -> Self {
        let kinds = [
            "Customer",
            "Namespace",
            "NetworkPolicy",
            "RoleBinding",
            "ResourceQuota",
            "LimitRange",
        ];
        Progresses(kinds.into_iter().map(|k| (k, Arc::default())).collect())
    }

    /// The progress of `K`'s watch, to follow (of another kind: one nothing consults).
    pub fn of<K: Resource<DynamicType = ()>>(&self) -> Arc<Progress> {
        self.0
            .get(K::kind(&()).as_ref())
            .cloned()
            .unwrap_or_default()
    }

    /// How far the watch of `kind` has got (the highest resourceVersion it delivered);
    /// `u64::MAX` for a kind without one, so that nothing of it counts as in flight.
    pub fn seen(&self, kind: &str) -> u64 {
        self.0.get(kind).map_or(u64::MAX, |p| p.seen())
    }
}

impl Default for Progresses {
    fn default() -> Self {
        Self::new()
    }
}

/// How far `snapshot`, an object as a reconcile found it, has seen its own writes: its
/// resourceVersion (a write with a later one is not in it); `u64::MAX` for a version
/// that is not a number, so that nothing counts as in flight.
pub fn seen_in<K: Resource>(snapshot: &K) -> u64 {
    numeric(snapshot.meta().resource_version.as_deref()).unwrap_or(u64::MAX)
}

/// A resourceVersion as a number; `None` for one that is not (then nothing is skipped).
pub fn numeric(version: Option<&str>) -> Option<u64> {
    version?.parse().ok()
}

/// Which object a write went to: kind (with subresource, as `Customer/status`),
/// namespace, name.
pub type Target = (String, String, String);

/// The target of a write of `part` (a kind, with a subresource if any) to `object`.
pub fn target<K: Resource>(part: &str, object: &K) -> Target {
    let meta = object.meta();
    (
        part.to_string(),
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

/// The kind whose watch shows a write to `target` (its kind without subresource).
pub fn watched_kind(target: &Target) -> &str {
    target.0.split('/').next().unwrap_or_default()
}

/// How long a write counts as in flight at most: should its event never arrive (a
/// watch restarted, etcd restored from a backup with older versions), the write is
/// repeated after this time at the latest.
pub const IN_FLIGHT_AT_MOST: Duration = Duration::from_secs(10);

/// How many writes are remembered before those older than [`IN_FLIGHT_AT_MOST`] are
/// first forgotten (a few seconds of writes at the apiserver's best rate). After a
/// pruning the next waits until the map has doubled, so that a rate above this many
/// writes per [`IN_FLIGHT_AT_MOST`] does not prune on every write.
const REMEMBERED_BEFORE_PRUNING: usize = 4096;

/// A write not yet seen by its cache, or seen a moment ago.
#[derive(Debug, Clone, Copy)]
struct Write {
    version: u64,
    content: u64,
    at: Instant,
}

/// The remembered writes, and the size at which they are next pruned.
#[derive(Debug, Default)]
struct Writes {
    by_target: HashMap<Target, Write>,
    prune_at: usize,
}

/// The writes not yet seen by their cache, by target.
#[derive(Debug, Default)]
pub struct InFlight(Mutex<Writes>);

impl InFlight {
    /// Whether writing `content` to `target` now would repeat a write whose event the
    /// cache (at `progress`) has not seen yet.
    pub fn repeats(&self, target: &Target, content: u64, progress: u64) -> bool {
        let writes = self.0.lock().expect("in-flight lock");
        match writes.by_target.get(target) {
            Some(w) if progress < w.version && w.at.elapsed() < IN_FLIGHT_AT_MOST => {
                w.content == content
            }
            _ => false,
        }
    }

    /// Remembers a write of `content` to `target` that the apiserver stored as
    /// `version`. A write is kept for [`IN_FLIGHT_AT_MOST`], also once its cache has
    /// seen it: its event may still be on its way to the rules that would take it for a
    /// change ([`InFlight::echoes`]); older writes are forgotten once the map is large.
    pub fn record(&self, target: Target, content: u64, version: Option<&str>) {
        let Some(version) = numeric(version) else {
            return;
        };
        let mut writes = self.0.lock().expect("in-flight lock");
        if writes.by_target.len() >= writes.prune_at.max(REMEMBERED_BEFORE_PRUNING) {
            writes
                .by_target
                .retain(|_, w| w.at.elapsed() < IN_FLIGHT_AT_MOST);
            writes.prune_at = 2 * writes.by_target.len();
        }
        let at = Instant::now();
        writes.by_target.insert(
            target,
            Write {
                version,
                content,
                at,
            },
        );
    }

    /// Whether `object`, as a watch event of `part` (a kind, or a kind with a
    /// subresource) shows it, is exactly what the operator's last write to it stored:
    /// its resourceVersion is the one that write was given.
    pub fn echoes<K: Resource>(&self, part: &str, object: &K) -> bool {
        let Some(version) = numeric(object.meta().resource_version.as_deref()) else {
            return false;
        };
        let target = target(part, object);
        let writes = self.0.lock().expect("in-flight lock");
        writes
            .by_target
            .get(&target)
            .is_some_and(|w| w.version == version)
    }

    /// How many writes are remembered.
    pub fn len(&self) -> usize {
        self.0.lock().expect("in-flight lock").by_target.len()
    }

    /// Whether no write is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::networking::v1::NetworkPolicy;

    fn target(name: &str) -> Target {
        ("NetworkPolicy".into(), "ns".into(), name.into())
    }

    #[test]
    fn a_subresource_is_shown_by_the_watch_of_its_kind() {
        let mut p = NetworkPolicy::default();
        p.metadata.namespace = Some("ns".into());
        p.metadata.name = Some("a".into());
        let status = super::target("NetworkPolicy/status", &p);
        assert_eq!(
            status,
            ("NetworkPolicy/status".into(), "ns".into(), "a".into())
        );
        assert_eq!(watched_kind(&status), "NetworkPolicy");
    }

    fn at(version: &str) -> NetworkPolicy {
        let mut p = NetworkPolicy::default();
        p.metadata.resource_version = Some(version.into());
        p
    }

    #[test]
    fn progress_is_the_highest_version_seen() {
        let progress = Progress::default();
        progress.observe(&Event::Apply(at("7")));
        progress.observe(&Event::InitApply(at("5")));
        progress.observe(&Event::Delete(at("9")));
        progress.observe(&Event::Apply(at("not-a-number")));
        assert_eq!(progress.seen(), 9);
    }

    #[test]
    fn a_write_is_repeated_only_once_the_cache_has_seen_it() {
        let writes = InFlight::default();
        writes.record(target("a"), 1, Some("10"));
        assert!(writes.repeats(&target("a"), 1, 9), "cache behind: skip");
        assert!(
            !writes.repeats(&target("a"), 2, 9),
            "other content: write it"
        );
        assert!(!writes.repeats(&target("b"), 1, 9), "another object");
        assert!(!writes.repeats(&target("a"), 1, 10), "cache has it: decide");
        assert_eq!(writes.len(), 1, "kept a while for its echo");
    }

    #[test]
    fn a_snapshot_older_than_a_write_does_not_show_it() {
        let writes = InFlight::default();
        writes.record(target("a"), 1, Some("10"));
        let taken_before = seen_in(&at("8"));
        assert!(
            writes.repeats(&target("a"), 1, taken_before),
            "the watch may have delivered version 10 since; the snapshot still lacks it"
        );
        assert!(!writes.repeats(&target("a"), 1, seen_in(&at("10"))));
        assert_eq!(seen_in(&at("opaque")), u64::MAX, "never skipped");
    }

    #[test]
    fn only_the_version_a_write_stored_is_its_echo() {
        let writes = InFlight::default();
        let mut policy = at("10");
        policy.metadata.namespace = Some("ns".into());
        policy.metadata.name = Some("a".into());
        writes.record(target("a"), 1, Some("10"));
        assert!(writes.echoes("NetworkPolicy", &policy));
        assert!(
            !writes.echoes("NetworkPolicy/status", &policy),
            "another part"
        );
        policy.metadata.resource_version = Some("11".into());
        assert!(
            !writes.echoes("NetworkPolicy", &policy),
            "a later change by anyone"
        );
        policy.metadata.resource_version = None;
        assert!(!writes.echoes("NetworkPolicy", &policy), "no version");
    }

    #[test]
    fn an_opaque_version_is_never_skipped() {
        let writes = InFlight::default();
        writes.record(target("a"), 1, Some("abc"));
        assert!(!writes.repeats(&target("a"), 1, 0));
    }

    #[test]
    fn the_map_forgets_only_writes_older_than_the_longest_flight() {
        let writes = InFlight::default();
        let age_all = |writes: &InFlight| {
            let old = Instant::now() - IN_FLIGHT_AT_MOST;
            for w in writes.0.lock().unwrap().by_target.values_mut() {
                w.at = old;
            }
        };
        for i in 0..REMEMBERED_BEFORE_PRUNING as u64 {
            writes.record(target(&i.to_string()), 1, Some(&(i + 1).to_string()));
        }
        writes.record(target("last"), 1, Some("9000"));
        assert_eq!(
            writes.len(),
            REMEMBERED_BEFORE_PRUNING + 1,
            "none is old enough to forget"
        );
        age_all(&writes);
        writes.record(target("next"), 1, Some("9001"));
        assert_eq!(
            writes.len(),
            REMEMBERED_BEFORE_PRUNING + 2,
            "a pruning that forgot nothing waits for the map to double"
        );
        while writes.len() < 2 * REMEMBERED_BEFORE_PRUNING {
            let more = format!("more-{}", writes.len());
            writes.record(target(&more), 1, Some("9002"));
        }
        age_all(&writes);
        writes.record(target("newest"), 1, Some("9003"));
        assert_eq!(writes.len(), 1, "only the newest is left");
    }
}
