//! Indexes of watched objects by one key of their metadata (a label, the namespace),
//! kept up to date from the watch events, so that a reconcile looks up the few objects
//! that concern it instead of passing over every cached one.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use futures::{Stream, StreamExt};
use kube::Resource;
use kube::core::ObjectMeta;
use kube::runtime::watcher::Event;

/// Which key an object is filed under; `None` leaves it out.
pub type KeyOf = fn(&ObjectMeta) -> Option<String>;

/// Names of watched objects by key; clone it to share.
#[derive(Clone)]
pub struct Index {
    key_of: KeyOf,
    state: Arc<RwLock<State>>,
}

/// An object's namespace and name.
type Id = (String, String);

#[derive(Default)]
struct State {
    /// Key to the names filed under it.
    names: HashMap<String, BTreeSet<String>>,
    /// Namespace and name of each object to the keys it is filed under.
    filed: HashMap<Id, Vec<String>>,
    /// Objects of a relist in progress, which replaces everything at its end.
    relist: Option<Vec<(Id, Vec<String>)>>,
}

impl State {
    fn file(&mut self, id: Id, keys: Vec<String>) {
        self.remove(&id);
        if keys.is_empty() {
            return;
        }
        for key in &keys {
            self.names
                .entry(key.clone())
                .or_default()
                .insert(id.1.clone());
        }
        self.filed.insert(id, keys);
    }

    fn remove(&mut self, id: &Id) {
        let Some(keys) = self.filed.remove(id) else {
            return;
        };
        for key in keys {
            if let Some(names) = self.names.get_mut(&key) {
                names.remove(&id.1);
                if names.is_empty() {
                    self.names.remove(&key);
                }
            }
        }
    }
}

fn identity(meta: &ObjectMeta) -> Id {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

impl Index {
    /// An empty index that files each object under `key_of` of its metadata.
    pub fn new(key_of: KeyOf) -> Self {
        Index {
            key_of,
            state: Arc::default(),
        }
    }

    /// Takes one watch event into account.
    pub fn observe<K: Resource>(&self, event: &Event<K>) {
        let key_of = self.key_of;
        self.observe_keys(event, |object| key_of(object.meta()).into_iter().collect());
    }

    /// Takes one watch event into account, filing each object under every key `keys`
    /// gives it (for an index by what an object's spec names; the index's own key is
    /// not used).
    pub fn observe_keys<K: Resource>(&self, event: &Event<K>, keys: impl Fn(&K) -> Vec<String>) {
        let mut state = self.state.write().expect("index lock");
        match event {
            Event::Init => state.relist = Some(Vec::new()),
            Event::InitApply(object) => {
                let keys = keys(object);
                if let Some(relist) = state.relist.as_mut().filter(|_| !keys.is_empty()) {
                    relist.push((identity(object.meta()), keys));
                }
            }
            Event::InitDone => {
                let relisted = state.relist.take().unwrap_or_default();
                *state = State::default();
                for (id, keys) in relisted {
                    state.file(id, keys);
                }
            }
            Event::Apply(object) => state.file(identity(object.meta()), keys(object)),
            Event::Delete(object) => state.remove(&identity(object.meta())),
        }
    }

    /// Passes `stream` through, keeping the index up to date with its events.
    pub fn follow<K, E, S>(&self, stream: S) -> impl Stream<Item = S::Item> + use<K, E, S>
    where
        K: Resource,
        S: Stream<Item = Result<Event<K>, E>>,
    {
        let index = self.clone();
        stream.inspect(move |event| {
            if let Ok(event) = event {
                index.observe(event);
            }
        })
    }

    /// The names of the objects filed under `key`.
    pub fn names(&self, key: &str) -> Vec<String> {
        let state = self.state.read().expect("index lock");
        state
            .names
            .get(key)
            .map(|names| names.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether any object is filed under `key`.
    pub fn contains(&self, key: &str) -> bool {
        self.state
            .read()
            .expect("index lock")
            .names
            .contains_key(key)
    }

    /// Every key some object is filed under.
    pub fn keys(&self) -> Vec<String> {
        let state = self.state.read().expect("index lock");
        state.names.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::networking::v1::NetworkPolicy;

    fn policy(namespace: &str, name: &str) -> NetworkPolicy {
        let mut p = NetworkPolicy::default();
        p.metadata.namespace = Some(namespace.into());
        p.metadata.name = Some(name.into());
        p
    }

    fn keys(index: &Index) -> Vec<String> {
        let state = index.state.read().unwrap();
        let mut keys: Vec<String> = state.names.keys().cloned().collect();
        keys.sort();
        keys
    }

    fn by_namespace() -> Index {
        Index::new(|meta| meta.namespace.clone())
    }

    #[test]
    fn objects_are_filed_moved_and_removed() {
        let index = Index::new(|meta| meta.labels.as_ref()?.get("owner").cloned());
        let mut a = policy("x", "a");
        a.metadata.labels = Some([("owner".to_string(), "one".to_string())].into());
        index.observe(&Event::Apply(a.clone()));
        assert_eq!(index.names("one"), vec!["a"]);
        a.metadata.labels = Some([("owner".to_string(), "two".to_string())].into());
        index.observe(&Event::Apply(a.clone()));
        assert!(!index.contains("one"));
        assert_eq!(index.names("two"), vec!["a"]);
        a.metadata.labels = None;
        index.observe(&Event::Apply(a.clone()));
        assert!(keys(&index).is_empty());
        index.observe(&Event::Apply(policy("x", "b")));
        assert!(keys(&index).is_empty(), "no key, not filed");
    }

    #[test]
    fn same_name_in_two_namespaces_is_two_objects() {
        let index = by_namespace();
        index.observe(&Event::Apply(policy("x", "a")));
        index.observe(&Event::Apply(policy("y", "a")));
        index.observe(&Event::Delete(policy("x", "a")));
        assert!(!index.contains("x"));
        assert_eq!(index.names("y"), vec!["a"]);
    }

    #[test]
    fn keys_are_those_something_is_filed_under() {
        let index = by_namespace();
        index.observe(&Event::Apply(policy("a", "p")));
        index.observe(&Event::Apply(policy("b", "q")));
        index.observe(&Event::Delete(policy("a", "p")));
        assert_eq!(index.keys(), vec!["b"]);
    }

    #[test]
    fn a_relist_replaces_everything_at_its_end() {
        let index = by_namespace();
        index.observe(&Event::Apply(policy("x", "gone")));
        index.observe(&Event::<NetworkPolicy>::Init);
        index.observe(&Event::InitApply(policy("y", "kept")));
        assert_eq!(
            index.names("x"),
            vec!["gone"],
            "the old state until the end"
        );
        index.observe(&Event::<NetworkPolicy>::InitDone);
        assert!(!index.contains("x"));
        assert_eq!(keys(&index), vec!["y"]);
    }
}
