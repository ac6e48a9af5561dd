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

#[derive(Default)]
struct State {
    /// Key to the names filed under it.
    names: HashMap<String, BTreeSet<String>>,
    /// Namespace and name of each object to the key it is filed under.
    filed: HashMap<(String, String), String>,
    /// Objects of a relist in progress, which replaces everything at its end.
    relist: Option<Vec<((String, String), String)>>,
}

impl State {
    fn file(&mut self, id: (String, String), key: Option<String>) {
        self.remove(&id);
        if let Some(key) = key {
            self.names
                .entry(key.clone())
                .or_default()
                .insert(id.1.clone());
            self.filed.insert(id, key);
        }
    }

    fn remove(&mut self, id: &(String, String)) {
        let Some(key) = self.filed.remove(id) else {
            return;
        };
        if let Some(names) = self.names.get_mut(&key) {
            names.remove(&id.1);
            if names.is_empty() {
                self.names.remove(&key);
            }
        }
    }
}

fn identity(meta: &ObjectMeta) -> (String, String) {
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
        let mut state = self.state.write().expect("index lock");
        match event {
            Event::Init => state.relist = Some(Vec::new()),
            Event::InitApply(object) => {
                let meta = object.meta();
                if let (Some(relist), Some(key)) = (state.relist.as_mut(), (self.key_of)(meta)) {
                    relist.push((identity(meta), key));
                }
            }
            Event::InitDone => {
                let relisted = state.relist.take().unwrap_or_default();
                *state = State::default();
                for (id, key) in relisted {
                    state.file(id, Some(key));
                }
            }
            Event::Apply(object) => {
                let meta = object.meta();
                state.file(identity(meta), (self.key_of)(meta));
            }
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

    /// The keys under which some name is itself a key of `other`: with namespaces by
    /// customer and foreign policies by namespace, the customers that have a foreign
    /// policy in one of their namespaces. Copies nothing but the keys it returns.
    pub fn keys_with_names_in(&self, other: &Index) -> Vec<String> {
        let state = self.state.read().expect("index lock");
        let other = other.state.read().expect("index lock");
        state
            .names
            .iter()
            .filter(|(_, names)| names.iter().any(|n| other.names.contains_key(n)))
            .map(|(key, _)| key.clone())
            .collect()
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
    fn customers_with_a_foreign_policy_in_one_of_their_namespaces() {
        let namespaces = Index::new(|meta| meta.labels.as_ref()?.get("owner").cloned());
        let owned = |name: &str, owner: &str| {
            let mut ns = policy("", name);
            ns.metadata.labels = Some([("owner".to_string(), owner.to_string())].into());
            ns
        };
        namespaces.observe(&Event::Apply(owned("a-1", "a")));
        namespaces.observe(&Event::Apply(owned("a-2", "a")));
        namespaces.observe(&Event::Apply(owned("b-1", "b")));
        let foreign = by_namespace();
        foreign.observe(&Event::Apply(policy("a-2", "allow-all")));
        foreign.observe(&Event::Apply(policy("elsewhere", "p")));
        assert_eq!(namespaces.keys_with_names_in(&foreign), vec!["a"]);
        foreign.observe(&Event::Delete(policy("a-2", "allow-all")));
        assert!(namespaces.keys_with_names_in(&foreign).is_empty());
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
