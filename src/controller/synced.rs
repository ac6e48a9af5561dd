//! Which caches have listed once: for reconciles that must not decide on an empty cache,
//! and for `/readyz`.
//!
//! `Store::wait_until_ready` of kube-runtime 5 wakes only the task that polled it last
//! (it keeps one waker), so with several waiters (the controller's runner, concurrent
//! reconciles, the readiness probe) all but one may sleep until their timeout. This
//! tracker watches the streams that fill the caches instead, and wakes every waiter.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use kube::runtime::watcher::Event;
use tokio::sync::watch;

/// The caches that have not listed yet; clone it to share.
#[derive(Clone, Debug)]
pub struct CacheSync(Arc<watch::Sender<BTreeSet<&'static str>>>);

impl CacheSync {
    /// A tracker waiting for the caches of these names.
    pub fn new(names: &[&'static str]) -> Self {
        CacheSync(Arc::new(watch::Sender::new(
            names.iter().copied().collect(),
        )))
    }

    /// Passes `stream` through, marking the cache `name` filled at its first `InitDone`.
    /// Put it after `reflect`, which has applied an event to the cache before passing it
    /// on.
    pub fn mark<K, E, S>(
        &self,
        name: &'static str,
        stream: S,
    ) -> impl Stream<Item = S::Item> + use<K, E, S>
    where
        S: Stream<Item = Result<Event<K>, E>>,
    {
        let tracker = self.clone();
        stream.inspect(move |event| {
            if matches!(event, Ok(Event::InitDone)) {
                tracker.0.send_if_modified(|pending| pending.remove(name));
            }
        })
    }

    /// The caches that have not listed yet.
    pub fn pending(&self) -> Vec<&'static str> {
        self.0.borrow().iter().copied().collect()
    }

    /// Waits until every cache has listed once.
    pub async fn wait(&self) {
        let mut changes = self.0.subscribe();
        // The sender lives in `self`, so this cannot fail.
        let _ = changes.wait_for(BTreeSet::is_empty).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn every_waiter_wakes_when_the_last_cache_fills() {
        let sync = CacheSync::new(&["A", "B"]);
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let sync = sync.clone();
                tokio::spawn(async move { sync.wait().await })
            })
            .collect();
        let a = futures::stream::iter([Ok::<Event<()>, ()>(Event::Init), Ok(Event::InitDone)]);
        sync.mark("A", a).collect::<Vec<_>>().await;
        assert_eq!(sync.pending(), vec!["B"]);
        let b = futures::stream::iter([Ok::<Event<()>, ()>(Event::InitDone)]);
        sync.mark("B", b).collect::<Vec<_>>().await;
        for waiter in waiters {
            tokio::time::timeout(Duration::from_secs(1), waiter)
                .await
                .expect("woken")
                .unwrap();
        }
        assert!(sync.pending().is_empty());
    }
}
