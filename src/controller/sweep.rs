//! A safety net for Customer watch events that never arrive: a periodic paged list of
//! names and versions, compared with the cache.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::DynamicObject;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};

use super::{decode, inflight};
use crate::api::Customer;

/// A safety net for watch events that never arrive: the Customers the apiserver lists
/// but the cache does not hold or holds in another version (each read again just
/// before, so that one deleted meanwhile is not brought back) are fed to the cache as if
/// the watch had delivered them, and cached ones the apiserver no longer has are
/// removed. Added after the 1.20 test apiserver was seen to drop a Customer created
/// while the operator's watch was starting or right after a restart; kept on current
/// versions as a safety net that costs one paged list of names and versions per period.
///
/// It runs every `period`, and also 3 s and 15 s after the Customer watch last reported
/// an error (the apiserver went away or restarted; further errors meanwhile move both
/// later), so that such a Customer waits seconds, not a whole resync period.
pub fn missed_customers(
    client: Client,
    cache: Store<Customer>,
    period: Duration,
    trouble: Trouble,
) -> impl futures::Stream<Item = Result<watcher::Event<DynamicObject>, watcher::Error>> + Send + 'static
{
    sweep_times(period, trouble)
        .then(move |()| {
            let (api, cache) = (decode::untyped(&client), cache.clone());
            async move {
                let listed = match list_versions(&api).await {
                    Ok(listed) => listed,
                    Err(error) => {
                        tracing::debug!(%error, "listing Customers for the sweep failed");
                        return futures::stream::iter(Vec::new());
                    }
                };
                let mut missed = Vec::new();
                for object in &listed {
                    let name = object.name_any();
                    let cached = cache.get(&ObjectRef::new(&name));
                    // The cache holds this version or a newer one (as happens all the
                    // time while Customers change quickly): nothing to read.
                    if cached.as_ref().is_some_and(|c| !newer_than_cached(object, c)) {
                        continue;
                    }
                    if let Ok(Some(fresh)) = api.get_opt(&name).await {
                        if cached.is_none() {
                            tracing::warn!(customer = %name, "the watch missed this Customer; taking it from a list");
                        }
                        missed.push(Ok(watcher::Event::Apply(fresh)));
                    }
                }
                let names: std::collections::BTreeSet<String> =
                    listed.iter().map(|o| o.name_any()).collect();
                for gone in cache.state().iter().filter(|c| !names.contains(&c.name_any())) {
                    if let (Ok(None), Ok(object)) = (
                        api.get_opt(&gone.name_any()).await,
                        serde_json::from_value(serde_json::to_value(&**gone).unwrap_or_default()),
                    ) {
                        tracing::warn!(customer = %gone.name_any(), "the watch missed the deletion of this Customer");
                        missed.push(Ok(watcher::Event::Delete(object)));
                    }
                }
                futures::stream::iter(missed)
            }
        })
        .flatten()
}

/// Customers read per request by the sweep.
const SWEEP_PAGE: u32 = 100;

/// The metadata of every Customer, without `managedFields` and annotations, read a page
/// at a time: a full list, even of metadata only, carries every Customer's
/// `managedFields` and would be the largest allocation of the whole operator.
async fn list_versions(
    api: &Api<DynamicObject>,
) -> kube::Result<Vec<PartialObjectMeta<DynamicObject>>> {
    all_pages(|token| {
        let mut params = kube::api::ListParams::default().limit(SWEEP_PAGE);
        params.continue_token = token;
        async move {
            let page = api.list_metadata(&params).await?;
            let items = page.items.into_iter().map(|mut object| {
                object.metadata.managed_fields = None;
                object.metadata.annotations = None;
                object
            });
            Ok((items.collect(), page.metadata.continue_))
        }
    })
    .await
}

/// Every item of a paged list: `fetch` reads the page a continue token names (the first
/// with none) and returns its items and the next token (none or empty after the last).
async fn all_pages<T, F, P>(mut fetch: F) -> kube::Result<Vec<T>>
where
    F: FnMut(Option<String>) -> P,
    P: std::future::Future<Output = kube::Result<(Vec<T>, Option<String>)>>,
{
    let mut all = Vec::new();
    let mut token = None;
    loop {
        let (items, next) = fetch(token).await?;
        all.extend(items);
        match next {
            Some(next) if !next.is_empty() => token = Some(next),
            _ => return Ok(all),
        }
    }
}

/// Whether `object` is a version of a Customer the cache has not reached: the same
/// incarnation (uid) in a newer version, or another incarnation.
fn newer_than_cached<R: Resource>(object: &R, cached: &Customer) -> bool {
    if cached.uid() != object.uid() {
        return true;
    }
    let version = |v: Option<String>| inflight::numeric(v.as_deref());
    match (
        version(object.resource_version()),
        version(cached.resource_version()),
    ) {
        (Some(new), Some(old)) => new > old,
        _ => object.resource_version() != cached.resource_version(),
    }
}

/// Whether an event of the sweep ([`missed_customers`]) tells the cache something new:
/// a Customer it does not hold, or holds in an older version or another incarnation (uid),
/// or the deletion of the very one it holds.
pub fn news_to(cache: &Store<Customer>, event: &watcher::Event<DynamicObject>) -> bool {
    let cached = |object: &DynamicObject| cache.get(&ObjectRef::new(&object.name_any()));
    match event {
        watcher::Event::Apply(object) => {
            cached(object).is_none_or(|c| newer_than_cached(object, &c))
        }
        watcher::Event::Delete(object) => cached(object).is_some_and(|c| c.uid() == object.uid()),
        _ => true,
    }
}

/// When the Customer watch last reported an error, for [`missed_customers`].
#[derive(Clone, Default)]
pub struct Trouble(Arc<Mutex<Option<tokio::time::Instant>>>);

impl Trouble {
    /// Records that the watch failed just now.
    pub fn report(&self) {
        *self.0.lock().expect("trouble lock") = Some(tokio::time::Instant::now());
    }
}

/// Yields every `period`, and 3 s and 15 s after the latest reported trouble (trouble
/// reported meanwhile moves both later).
fn sweep_times(
    period: Duration,
    trouble: Trouble,
) -> impl futures::Stream<Item = ()> + Send + 'static {
    let start = tokio::time::Instant::now();
    futures::stream::unfold(
        (start, Vec::<tokio::time::Instant>::new()),
        move |(mut last, mut pending)| {
            let trouble = trouble.clone();
            async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let now = tokio::time::Instant::now();
                    if let Some(at) = trouble.0.lock().expect("trouble lock").take() {
                        // A list after the latest failure covers every earlier one: a
                        // burst of failures (a restarting apiserver answers 403 and 429
                        // for seconds) brings two comparisons, not two for each.
                        pending = vec![at + Duration::from_secs(3), at + Duration::from_secs(15)];
                    }
                    let due = pending.iter().any(|t| *t <= now);
                    pending.retain(|t| *t > now);
                    if due || now.duration_since(last) >= period {
                        last = now;
                        return Some(((), (last, pending)));
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector;

    #[test]
    fn the_sweep_never_takes_the_cache_back() {
        let customer = |uid: &str, version: &str| {
            let mut c = DynamicObject::new("a", &kube::api::ApiResource::erase::<Customer>(&()));
            c.metadata.uid = Some(uid.into());
            c.metadata.resource_version = Some(version.into());
            c
        };
        let (cache, mut writer) = reflector::store::<Customer>();
        let apply = |o: DynamicObject| watcher::Event::Apply(o);
        assert!(news_to(&cache, &apply(customer("u1", "5"))), "not cached");
        let mut cached = Customer::new("a", Default::default());
        cached.metadata.uid = Some("u1".into());
        cached.metadata.resource_version = Some("7".into());
        writer.apply_watcher_event(&watcher::Event::Apply(cached));
        assert!(!news_to(&cache, &apply(customer("u1", "5"))), "older");
        assert!(!news_to(&cache, &apply(customer("u1", "7"))), "the same");
        assert!(news_to(&cache, &apply(customer("u1", "12"))), "newer");
        assert!(news_to(&cache, &apply(customer("u2", "3"))), "re-created");
        let delete = |o: DynamicObject| watcher::Event::Delete(o);
        assert!(news_to(&cache, &delete(customer("u1", "7"))));
        assert!(
            !news_to(&cache, &delete(customer("u0", "2"))),
            "an earlier incarnation"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_watch_failures_brings_two_comparisons_after_the_last() {
        let trouble = Trouble::default();
        let reporter = trouble.clone();
        let start = tokio::time::Instant::now();
        tokio::spawn(async move {
            for at in [0, 1, 2, 4] {
                tokio::time::sleep_until(start + Duration::from_secs(at)).await;
                reporter.report();
            }
        });
        let times: Vec<u64> = sweep_times(Duration::from_secs(3600), trouble)
            .map(|()| start.elapsed().as_secs())
            .take_until(tokio::time::sleep(Duration::from_secs(60)))
            .collect()
            .await;
        assert_eq!(times, vec![7, 19], "3 s and 15 s after the failure at 4 s");
    }

    #[tokio::test]
    async fn the_sweep_reads_every_page() {
        let pages = |token: Option<String>| async move {
            Ok(match token.as_deref() {
                None => (vec![1, 2], Some("b".to_string())),
                Some("b") => (vec![3], Some("c".to_string())),
                Some(_) => (vec![4], Some(String::new())),
            })
        };
        assert_eq!(all_pages(pages).await.unwrap(), vec![1, 2, 3, 4]);
        let single = |_: Option<String>| async { Ok((vec![7], None)) };
        assert_eq!(all_pages(single).await.unwrap(), vec![7]);
    }
}
