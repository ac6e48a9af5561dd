//! Label selectors: whether one matches a set of labels, a set of labels that one
//! matches, and a short text for messages.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

/// Labels of a pod or a namespace.
pub type Labels = BTreeMap<String, String>;

/// The value a witness pod gets for a label that must only exist.
const ANY_VALUE: &str = "any";

/// Whether `selector` matches `labels`: every `matchLabels` entry and every
/// `matchExpressions` requirement holds. The empty selector matches everything.
pub fn matches(selector: &LabelSelector, labels: &Labels) -> bool {
    selector
        .match_labels
        .iter()
        .flatten()
        .all(|(key, value)| labels.get(key) == Some(value))
        && selector
            .match_expressions
            .iter()
            .flatten()
            .all(|req| requirement_holds(req, labels))
}

/// One requirement: `In` (the label is there with one of the values), `NotIn` (it is
/// absent or has none of them), `Exists`, `DoesNotExist`. The apiserver refuses any
/// other operator; such a requirement holds for nothing.
fn requirement_holds(req: &LabelSelectorRequirement, labels: &Labels) -> bool {
    let values = req.values.as_deref().unwrap_or_default();
    let value = labels.get(&req.key);
    match req.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        _ => false,
    }
}

/// A set of labels that `selector` matches, built from its positive parts (`matchLabels`,
/// the first value of `In`, a placeholder value for `Exists`); `None` when the selector
/// contradicts itself.
pub fn witness(selector: &LabelSelector) -> Option<Labels> {
    let mut labels = selector.match_labels.clone().unwrap_or_default();
    for req in selector.match_expressions.iter().flatten() {
        if labels.contains_key(&req.key) {
            continue;
        }
        match req.operator.as_str() {
            "In" => {
                let first = req.values.as_ref()?.first()?;
                labels.insert(req.key.clone(), first.clone());
            }
            "Exists" => {
                labels.insert(req.key.clone(), ANY_VALUE.to_string());
            }
            _ => {}
        }
    }
    matches(selector, &labels).then_some(labels)
}

/// The label keys and (key, value) pairs one of which a namespace must carry to match
/// `selector`, as the smallest such condition: a `matchLabels` entry or an `In`
/// requirement gives values, an `Exists` the key alone. `None` when the selector has no
/// positive part (it may match a namespace without any label).
pub fn anchor(selector: &LabelSelector) -> Option<(&str, Option<Vec<&str>>)> {
    if let Some((key, value)) = selector.match_labels.iter().flatten().next() {
        return Some((key, Some(vec![value.as_str()])));
    }
    let expressions = selector.match_expressions.iter().flatten();
    let mut exists = None;
    for req in expressions {
        match req.operator.as_str() {
            "In" => {
                let values = req.values.iter().flatten().map(String::as_str).collect();
                return Some((&req.key, Some(values)));
            }
            "Exists" => exists = exists.or(Some((req.key.as_str(), None))),
            _ => {}
        }
    }
    exists
}

/// A short text: `{}` for the empty selector, else `{app=web, tier In (a, b)}`.
pub fn describe(selector: &LabelSelector) -> String {
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for req in selector.match_expressions.iter().flatten() {
        let values = req.values.clone().unwrap_or_default().join(", ");
        parts.push(match req.operator.as_str() {
            "Exists" => format!("{} Exists", req.key),
            "DoesNotExist" => format!("{} DoesNotExist", req.key),
            op => format!("{} {op} ({values})", req.key),
        });
    }
    format!("{{{}}}", parts.join(", "))
}

/// Labels as `app=web,tier=front`, or `any pod` for none.
pub fn describe_labels(labels: &Labels) -> String {
    if labels.is_empty() {
        return "any pod".to_string();
    }
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(yaml: &str) -> LabelSelector {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn witness_satisfies_or_is_none() {
        let s = selector(
            "{matchLabels: {app: web}, matchExpressions: [{key: tier, operator: In, values: [a, b]}, {key: x, operator: Exists}, {key: y, operator: DoesNotExist}]}",
        );
        let w = witness(&s).unwrap();
        assert_eq!(describe_labels(&w), "app=web,tier=a,x=any");
        let contradiction = selector(
            "{matchLabels: {app: web}, matchExpressions: [{key: app, operator: NotIn, values: [web]}]}",
        );
        assert_eq!(witness(&contradiction), None);
        assert_eq!(witness(&LabelSelector::default()), Some(Labels::new()));
        assert_eq!(
            describe(&s),
            "{app=web, tier In (a, b), x Exists, y DoesNotExist}"
        );
    }
}
