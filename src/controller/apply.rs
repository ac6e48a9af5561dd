//! How the operator writes a child: a server-side apply that skips what would change
//! nothing (and the comparison behind it), and a delete of exactly the object checked.

use std::fmt::Debug;

use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{At, Error, Result, Step, named};
use crate::api::FIELD_MANAGER;

/// Annotation holding a hash of the object as the operator last applied it, so a spec
/// that drops a field is applied again (and server-side apply removes the field).
pub const APPLIED_HASH: &str = "customers.dev/applied-hash";

/// The object as JSON with `apiVersion`, `kind` and the applied-hash annotation.
pub fn applied_form<K>(object: &K) -> Result<Value>
where
    K: Resource<DynamicType = ()> + Serialize,
{
    let mut value = serde_json::to_value(object)?;
    value["apiVersion"] = K::api_version(&()).into();
    value["kind"] = K::kind(&()).into();
    let hash = format!("{:016x}", fnv1a(value.to_string().as_bytes()));
    value["metadata"]["annotations"][APPLIED_HASH] = hash.into();
    Ok(value)
}

/// Whether the live object already is what `applied` asks for: every field of `applied`
/// is present and equal in `live` (the apiserver may add defaults; quantities may be
/// written in another form), lists have the same length.
pub fn is_current(applied: &Value, live: &Value) -> bool {
    match (applied, live) {
        (Value::Object(want), Value::Object(have)) => want
            .iter()
            .all(|(key, w)| have.get(key).is_some_and(|h| is_current(w, h))),
        (Value::Array(want), Value::Array(have)) => {
            want.len() == have.len() && want.iter().zip(have).all(|(w, h)| is_current(w, h))
        }
        (Value::String(want), Value::String(have)) => want == have || same_quantity(want, have),
        (want, have) => want == have,
    }
}

/// What an apply did, or would do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The live object already was what the operator wants: no request was sent.
    Unchanged,
    /// The object did not exist and was created.
    Created,
    /// What the operator wants changed since its last apply (the spec, a group, a peer):
    /// the object was brought up to date.
    Updated,
    /// What the operator wants is what it last applied (same applied-hash), yet the live
    /// object differed: someone else changed it, and the operator put it back.
    Repaired,
    /// The cache did not show the operator's own write of the same content yet (see
    /// [`super::inflight`]): no request was sent.
    InFlight,
}

impl Applied {
    /// Why a request was sent, for the metrics: `create`, `update` or `drift`; `None`
    /// when none was.
    pub fn cause(self) -> Option<&'static str> {
        match self {
            Applied::Unchanged | Applied::InFlight => None,
            Applied::Created => Some("create"),
            Applied::Updated => Some("update"),
            Applied::Repaired => Some("drift"),
        }
    }
}

/// What applying `applied` over `live` would be: nothing, a create, an update of what
/// the operator wants, or a repair of someone else's change.
pub fn classify(applied: &Value, live: Option<&Value>) -> Applied {
    let Some(live) = live else {
        return Applied::Created;
    };
    if is_current(applied, live) {
        return Applied::Unchanged;
    }
    let hash = |v: &Value| {
        v["metadata"]["annotations"][APPLIED_HASH]
            .as_str()
            .map(str::to_owned)
    };
    match hash(live) {
        Some(last) if Some(&last) == hash(applied).as_ref() => Applied::Repaired,
        _ => Applied::Updated,
    }
}

/// The applied form of `object` and what applying it over `live` (the live object as
/// JSON) would be.
pub fn plan<K>(object: &K, live: Option<&Value>) -> Result<(Value, Applied)>
where
    K: Resource<DynamicType = ()> + Serialize,
{
    let applied = applied_form(object)?;
    let outcome = classify(&applied, live);
    Ok((applied, outcome))
}

/// The applied-hash of an applied form, as a number (0 if it has none).
pub fn content_hash(applied: &Value) -> u64 {
    applied["metadata"]["annotations"][APPLIED_HASH]
        .as_str()
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .unwrap_or_default()
}

/// Server-side applies an applied form (force: the operator owns these fields); returns
/// the object as stored.
pub async fn send<K>(api: &Api<K>, name: &str, applied: &Value) -> kube::Result<K>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
{
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(applied),
    )
    .await
}

/// A failed apply of `object`: one the apiserver refused for the object itself (400,
/// 403, 422: not a conflict, an overload or an outage) as [`Error::ApplyRefused`], any
/// other as [`Error::Api`]; both name the object.
pub fn refusal<K: Resource<DynamicType = ()>>(error: kube::Error, object: &K) -> Error {
    match error {
        kube::Error::Api(status) if matches!(status.code, 400 | 403 | 422) => Error::ApplyRefused {
            object: named(object),
            message: status.message.clone(),
            source: kube::Error::Api(status),
        },
        source => Error::Api {
            step: Step::Apply,
            object: named(object),
            source,
        },
    }
}

/// Deletes an object only if it is still the one that was checked (same uid); one
/// already gone or replaced is fine.
pub async fn delete_exactly<K>(api: &Api<K>, name: &str, uid: Option<String>) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid,
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(e).at(Step::Delete, describe_in::<K>(api, name)),
    }
}

/// `Kind namespace/name` of an object an [`Api`] addresses.
fn describe_in<K: Resource<DynamicType = ()>>(api: &Api<K>, name: &str) -> String {
    super::error::describe(&K::kind(&()), api.namespace(), name)
}

/// A hash of any text (FNV-1a), for the applied-hash and the in-flight record.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Two spellings of the same quantity (`1.5` and `1500m`, `1000` and `1k`).
fn same_quantity(a: &str, b: &str) -> bool {
    match (quantity_value(a), quantity_value(b)) {
        (Some(x), Some(y)) => (x - y).abs() <= f64::EPSILON * x.abs().max(y.abs()) * 4.0,
        _ => false,
    }
}

fn quantity_value(s: &str) -> Option<f64> {
    if !crate::desired::validate::is_quantity(s) {
        return None;
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '+' | '-')))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exp => 10f64.powi(exp[1..].parse().ok()?),
    };
    Some(number * factor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn current_allows_defaults_but_not_changes() {
        let want = json!({"spec": {"ports": [{"port": 443}]}, "metadata": {"labels": {"a": "1"}}});
        let defaulted = json!({"spec": {"ports": [{"port": 443, "protocol": "TCP"}]},
                               "metadata": {"labels": {"a": "1", "b": "2"}, "uid": "x"}});
        assert!(is_current(&want, &defaulted));
        let edited = json!({"spec": {"ports": [{"port": 80}]}, "metadata": {"labels": {"a": "1"}}});
        assert!(!is_current(&want, &edited));
        let extra_rule = json!({"spec": {"ports": [{"port": 443}, {"port": 22}]}, "metadata": {"labels": {"a": "1"}}});
        assert!(!is_current(&want, &extra_rule));
        assert!(!is_current(&want, &json!({"spec": {}})));
    }

    #[test]
    fn quantities_compare_by_value() {
        assert!(is_current(&json!({"cpu": "1.5"}), &json!({"cpu": "1500m"})));
        assert!(is_current(&json!({"n": "1000"}), &json!({"n": "1k"})));
        assert!(is_current(&json!({"m": "1Gi"}), &json!({"m": "1024Mi"})));
        assert!(!is_current(&json!({"m": "1Gi"}), &json!({"m": "1G"})));
    }

    #[test]
    fn an_apply_is_a_create_an_update_or_a_drift_repair() {
        use k8s_openapi::api::core::v1::Namespace;
        let mut ns = Namespace::default();
        ns.metadata.name = Some("a".into());
        ns.metadata.labels = Some([("x".to_string(), "y".to_string())].into());
        let wanted = applied_form(&ns).unwrap();
        assert_eq!(classify(&wanted, None), Applied::Created);
        assert_eq!(classify(&wanted, Some(&wanted)), Applied::Unchanged);
        let mut edited = wanted.clone();
        edited["metadata"]["labels"]["x"] = "z".into();
        assert_eq!(classify(&wanted, Some(&edited)), Applied::Repaired);
        ns.metadata.labels = Some([("x".to_string(), "w".to_string())].into());
        let changed = applied_form(&ns).unwrap();
        assert_eq!(classify(&changed, Some(&wanted)), Applied::Updated);
        let mut unmarked = edited.clone();
        unmarked["metadata"]["annotations"] = json!({});
        assert_eq!(classify(&wanted, Some(&unmarked)), Applied::Updated);
    }

    #[test]
    fn hash_changes_with_content() {
        use k8s_openapi::api::core::v1::Namespace;
        let mut ns = Namespace::default();
        ns.metadata.name = Some("a".into());
        let a = applied_form(&ns).unwrap();
        ns.metadata.labels = Some([("x".to_string(), "y".to_string())].into());
        let b = applied_form(&ns).unwrap();
        assert_ne!(
            a["metadata"]["annotations"][APPLIED_HASH],
            b["metadata"]["annotations"][APPLIED_HASH]
        );
        assert_eq!(a["kind"], "Namespace");
    }
}
