//! The form in which the caches keep the children the operator writes (NetworkPolicies,
//! RoleBindings, ResourceQuotas, LimitRanges): the metadata the operator reads, typed, and
//! everything else as one compact JSON text.
//!
//! A typed child spends most of its memory on label maps and optional fields (a
//! LimitRange holds four quantity maps, a NetworkPolicy a label selector per peer), yet
//! the operator only ever compares the content with what it wants to apply, as JSON
//! ([`super::apply::is_current`]). At a thousand customers with eight children each the
//! compact form keeps the cache at a fraction of the typed size.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use kube::Resource;
use kube::core::ObjectMeta;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::apply::APPLIED_HASH;
use super::error::{Error, Result};
use crate::desired::ownership::ANNOTATION_OWNER_UID;

/// A child of kind `K` as a cache keeps it: see the module documentation.
pub struct Compact<K> {
    /// Name, namespace, uid, resourceVersion, labels, ownerReferences and deletion
    /// timestamp; no annotations and no `managedFields`.
    pub metadata: ObjectMeta,
    /// The operator's applied-hash annotation, if the object carries one.
    applied_hash: Option<Box<str>>,
    /// The object without its metadata and status, as JSON text.
    body: Box<str>,
    kind: PhantomData<fn() -> K>,
}

impl<K> Compact<K>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned,
{
    /// The compact form of `object`: what the operator never reads (`managedFields`,
    /// every annotation but the applied-hash and the owner uid, the creation time, the generation, the
    /// status) is left out.
    pub fn new(object: &K) -> Result<Self> {
        let mut value = serde_json::to_value(object)?;
        let body = value.as_object_mut().ok_or_else(|| {
            Error::Serialize(format!("a {} that is not a JSON object", K::kind(&())))
        })?;
        body.remove("metadata");
        // The applied forms never hold a status (a quota's usage keeps changing).
        body.remove("status");
        let meta = object.meta();
        let applied_hash = meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(APPLIED_HASH))
            .map(|h| h.as_str().into());
        let owner = meta
            .annotations
            .as_ref()
            .and_then(|a| a.get_key_value(ANNOTATION_OWNER_UID))
            .map(|(k, v)| [(k.clone(), v.clone())].into());
        let metadata = ObjectMeta {
            annotations: owner,
            name: meta.name.clone(),
            namespace: meta.namespace.clone(),
            uid: meta.uid.clone(),
            resource_version: meta.resource_version.clone(),
            labels: meta.labels.clone(),
            owner_references: meta.owner_references.clone(),
            deletion_timestamp: meta.deletion_timestamp.clone(),
            ..Default::default()
        };
        Ok(Compact {
            metadata,
            applied_hash,
            body: value.to_string().into_boxed_str(),
            kind: PhantomData,
        })
    }

    /// The object without metadata and status, as JSON text.
    pub fn body(&self) -> &str {
        &self.body
    }

    /// The object as JSON, as the operator compares it with what it applies: the kept
    /// metadata with the applied-hash annotation, and the rest of the object.
    pub fn value(&self) -> Result<Value> {
        let mut value: Value = serde_json::from_str(&self.body)?;
        let mut metadata = serde_json::to_value(&self.metadata)?;
        if let Some(hash) = &self.applied_hash {
            metadata["annotations"][APPLIED_HASH] = Value::from(&**hash);
        }
        value["metadata"] = metadata;
        Ok(value)
    }

    /// The object, typed (with the metadata the compact form keeps).
    pub fn expand(&self) -> Result<K> {
        Ok(serde_json::from_value(self.value()?)?)
    }
}

/// Reads the full object and keeps its compact form: a watch of `Compact<K>` delivers
/// children already compact.
impl<'de, K> Deserialize<'de> for Compact<K>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let object = K::deserialize(deserializer)?;
        Compact::new(&object).map_err(D::Error::custom)
    }
}

impl<K> Clone for Compact<K> {
    fn clone(&self) -> Self {
        Compact {
            metadata: self.metadata.clone(),
            applied_hash: self.applied_hash.clone(),
            body: self.body.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> fmt::Debug for Compact<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compact")
            .field("metadata", &self.metadata)
            .field("applied_hash", &self.applied_hash)
            .field("body", &self.body)
            .finish()
    }
}

impl<K: Resource<DynamicType = ()>> Resource for Compact<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::apply::{Applied, applied_form, classify};
    use k8s_openapi::api::core::v1::{LimitRange, LimitRangeItem, LimitRangeSpec};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn limits() -> LimitRange {
        let mut object = LimitRange::default();
        object.metadata.name = Some("limits".into());
        object.metadata.namespace = Some("ns".into());
        object.metadata.labels = Some([("a".to_string(), "1".to_string())].into());
        object.spec = Some(LimitRangeSpec {
            limits: vec![LimitRangeItem {
                type_: "Container".into(),
                default: Some([("cpu".to_string(), Quantity("500m".into()))].into()),
                ..Default::default()
            }],
        });
        object
    }

    /// What the apiserver stores after the operator applied `object`.
    fn as_stored(object: &LimitRange) -> LimitRange {
        let mut live: LimitRange = serde_json::from_value(applied_form(object).unwrap()).unwrap();
        live.metadata.uid = Some("u1".into());
        live.metadata.resource_version = Some("42".into());
        live.metadata.creation_timestamp = Some(Time(Default::default()));
        live.metadata.managed_fields = Some(vec![Default::default()]);
        live.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert("other-tool/config".into(), "x".repeat(2000));
        live
    }

    #[test]
    fn the_compact_form_decides_as_the_typed_object_does() {
        let wanted = applied_form(&limits()).unwrap();
        let stored = as_stored(&limits());
        let compact = Compact::new(&stored).unwrap();
        assert_eq!(
            classify(&wanted, Some(&compact.value().unwrap())),
            Applied::Unchanged
        );

        let mut edited = stored.clone();
        edited.spec.as_mut().unwrap().limits[0].default =
            Some([("cpu".to_string(), Quantity("2".into()))].into());
        let compact = Compact::new(&edited).unwrap();
        assert_eq!(
            classify(&wanted, Some(&compact.value().unwrap())),
            Applied::Repaired
        );

        let mut relabelled = stored.clone();
        relabelled.metadata.labels = Some([("a".to_string(), "2".to_string())].into());
        let compact = Compact::new(&relabelled).unwrap();
        assert_eq!(
            classify(&wanted, Some(&compact.value().unwrap())),
            Applied::Repaired
        );

        let mut unmarked = stored;
        unmarked.metadata.annotations = None;
        let compact = Compact::new(&unmarked).unwrap();
        assert_eq!(
            classify(&wanted, Some(&compact.value().unwrap())),
            Applied::Updated
        );
    }

    #[test]
    fn the_compact_form_keeps_what_the_operator_reads_and_drops_the_rest() {
        let stored = as_stored(&limits());
        let compact = Compact::new(&stored).unwrap();
        let meta = &compact.metadata;
        assert_eq!(meta.uid.as_deref(), Some("u1"));
        assert_eq!(meta.resource_version.as_deref(), Some("42"));
        assert_eq!(meta.labels, stored.metadata.labels);
        assert!(meta.annotations.is_none() && meta.managed_fields.is_none());
        assert!(!compact.body.contains("other-tool"));
        let expanded = compact.expand().unwrap();
        assert_eq!(expanded.spec, stored.spec);
        assert_eq!(
            expanded.metadata.annotations.unwrap().get(APPLIED_HASH),
            stored.metadata.annotations.unwrap().get(APPLIED_HASH)
        );
    }
}
