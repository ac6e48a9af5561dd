//! Server-side apply that skips what would change nothing, and the comparison behind it.

use std::fmt::Debug;

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::FIELD_MANAGER;
use crate::error::{Error, Result};

/// Annotation holding a hash of the object as the operator last applied it, so a spec
/// that drops a field is applied again (and server-side apply removes the field).
pub const APPLIED_HASH: &str = "customers.dev/applied-hash";

/// The object as JSON with `apiVersion`, `kind` and the applied-hash annotation.
pub fn applied_form<K>(object: &K) -> Result<Value>
where
    K: Resource<DynamicType = ()> + Serialize,
{
    let mut value = serde_json::to_value(object).map_err(|e| Error::Serialize(e.to_string()))?;
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

/// Applies `object` unless `live` already matches it. Returns whether it wrote.
pub async fn apply_if_changed<K>(api: &Api<K>, object: &K, live: Option<&K>) -> Result<bool>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
{
    let applied = applied_form(object)?;
    if let Some(live) = live {
        let live = serde_json::to_value(live).map_err(|e| Error::Serialize(e.to_string()))?;
        if is_current(&applied, &live) {
            return Ok(false);
        }
    }
    api.patch(
        &object.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&applied),
    )
    .await?;
    Ok(true)
}

fn fnv1a(bytes: &[u8]) -> u64 {
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
