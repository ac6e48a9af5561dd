//! The operator's finalizer on Customers and CustomerGroups: added before anything is
//! created for the object, removed when its cleanup is done.

use std::fmt::Debug;

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::error::{At, Result, Step, named};
use crate::api::FINALIZER;

/// Whether the object carries the operator's finalizer.
pub fn has_finalizer<K: Resource>(object: &K) -> bool {
    object.finalizers().iter().any(|f| f == FINALIZER)
}

/// Adds the operator's finalizer (a merge patch guarded by the resourceVersion: a cache
/// behind the stored object makes it fail with a conflict, retried shortly); returns
/// the object as stored.
pub async fn add<K>(api: &Api<K>, object: &K) -> Result<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let mut finalizers = object.finalizers().to_vec();
    finalizers.push(FINALIZER.to_string());
    set(api, object, finalizers)
        .await
        .at(Step::AddFinalizer, named(object))
}

/// Removes the operator's finalizer; an object already gone is fine.
pub async fn remove<K>(api: &Api<K>, object: &K) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let finalizers = object
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    match set(api, object, finalizers).await {
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        other => other.map(drop).at(Step::RemoveFinalizer, named(object)),
    }
}

async fn set<K>(api: &Api<K>, object: &K, finalizers: Vec<String>) -> kube::Result<K>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": object.resource_version()}});
    api.patch(
        &object.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
}
