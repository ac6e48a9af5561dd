//! The checks only the operator can make (references, reserved names), plus the schema's
//! own rules again, so that `render` and old apiservers refuse the same specs.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;

use super::directory::Directory;
use super::resolve::{self, full_namespace_name};
use crate::api::customer::{MAX_CUSTOMER_NAME, MAX_NAMESPACE_SUFFIX};
use crate::api::{
    Access, Customer, LABEL_MANAGED_BY, LABEL_NAMESPACE_NAME, LimitItem, QuotaSpec, Subject,
    SubjectKind,
};
use crate::error::{Problem, Reason};
use crate::settings::Settings;

/// Every problem of a Customer; empty when the operator can build it.
pub fn validate_customer(
    customer: &Customer,
    dir: &dyn Directory,
    settings: &Settings,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let name = customer.name_any();
    if !is_dns_label(&name) || name.len() > MAX_CUSTOMER_NAME {
        problems.push(Problem::new(
            Reason::InvalidName,
            "metadata.name",
            format!(
                "{name:?} must be a DNS-1123 label (lower-case letters, digits, '-') of at most {MAX_CUSTOMER_NAME} characters"
            ),
        ));
    }
    let spec = &customer.spec;
    check_length(
        &mut problems,
        "spec.displayName",
        &spec.display_name,
        1,
        100,
    );
    if !is_email(&spec.contact_email) {
        problems.push(Problem::new(
            Reason::InvalidField,
            "spec.contactEmail",
            format!("{:?} is not an email address", spec.contact_email),
        ));
    }
    check_namespaces(&mut problems, customer, settings);
    let group = resolve::group_name(customer, settings);
    if spec.group.is_some() && group != settings.default_group && dir.group(&group).is_none() {
        problems.push(Problem::new(
            Reason::UnknownGroup,
            "spec.group",
            format!("CustomerGroup {group:?} does not exist"),
        ));
    }
    if let Some(defaults) = dir.group(&group).and_then(|g| g.spec.defaults.clone()) {
        let field = format!("CustomerGroup {group}: spec.defaults.namespaceLabels");
        check_labels(&mut problems, &field, &defaults.namespace_labels, true);
    }
    if let Some(access) = dir.group(&group).and_then(|g| g.spec.access.clone()) {
        check_access(
            &mut problems,
            &format!("CustomerGroup {group}: spec.access"),
            &access,
        );
    }
    match resolve::ancestors(customer, dir) {
        // Parents' admins become admins here: a subject the apiserver would refuse in a
        // RoleBinding must not reach this customer's bindings.
        Ok(ancestors) => {
            for parent in ancestors {
                if let Some(access) = &parent.spec.access {
                    let field =
                        format!("parent Customer {}: spec.access.admins", parent.name_any());
                    check_subjects(&mut problems, &field, &access.admins);
                }
            }
        }
        Err(problem) => problems.push(problem),
    }
    if let Some(access) = &spec.access {
        check_access(&mut problems, "spec.access", access);
    }
    if let Some(partner) = &spec.partner {
        if !is_dns_label(&partner.name) {
            problems.push(Problem::new(
                Reason::InvalidField,
                "spec.partner.name",
                format!(
                    "{:?} must be a DNS-1123 label (lower-case letters, digits, '-') of at most 63 characters",
                    partner.name
                ),
            ));
        }
        check_subjects(
            &mut problems,
            "spec.partner.securityConsultants",
            &partner.security_consultants,
        );
    }
    if let Some(network) = &spec.network {
        for (i, allow) in network.allow_from.iter().enumerate() {
            let field = format!("spec.network.allowFrom[{i}]");
            let set = [
                allow.customer.is_some(),
                allow.group.is_some(),
                allow.namespace_selector.is_some(),
            ];
            if set.iter().filter(|s| **s).count() != 1 {
                problems.push(Problem::new(
                    Reason::InvalidAllowFrom,
                    &field,
                    "set exactly one of customer, group and namespaceSelector",
                ));
            }
            if allow.customer.as_deref() == Some(name.as_str()) {
                problems.push(Problem::new(
                    Reason::InvalidAllowFrom,
                    format!("{field}.customer"),
                    "a customer always reaches its own namespaces; name another customer",
                ));
            }
            for (j, port) in allow.ports.iter().enumerate() {
                if port.end_port.is_some_and(|end| end < port.port) {
                    problems.push(Problem::new(
                        Reason::InvalidAllowFrom,
                        format!("{field}.ports[{j}].endPort"),
                        "endPort must not be below port",
                    ));
                }
            }
        }
    }
    if let Some(quota) = &spec.quota {
        check_quota(&mut problems, "spec.quota", quota);
    }
    if let Some(limits) = &spec.limits {
        check_limits(&mut problems, "spec.limits", limits);
    }
    problems
}

fn check_namespaces(problems: &mut Vec<Problem>, customer: &Customer, settings: &Settings) {
    let name = customer.name_any();
    let mut seen = BTreeSet::new();
    for (i, ns) in customer.spec.namespaces.iter().enumerate() {
        let field = format!("spec.namespaces[{i}]");
        let suffix = ns.suffix();
        if !(suffix.is_empty() || is_dns_label(suffix)) || suffix.len() > MAX_NAMESPACE_SUFFIX {
            problems.push(Problem::new(
                Reason::InvalidField,
                format!("{field}.name"),
                format!(
                    "{:?} must be empty or a DNS-1123 label of at most {MAX_NAMESPACE_SUFFIX} characters",
                    ns.name
                ),
            ));
        }
        let full = full_namespace_name(&name, suffix);
        if !seen.insert(full.clone()) {
            problems.push(Problem::new(
                Reason::DuplicateNamespace,
                format!("{field}.name"),
                format!("namespace {full:?} is listed twice"),
            ));
        }
        check_labels(problems, &format!("{field}.labels"), &ns.labels, true);
        check_labels(
            problems,
            &format!("{field}.annotations"),
            &ns.annotations,
            false,
        );
    }
    for full in resolve::namespace_names(customer) {
        if settings.is_reserved_namespace(&full) {
            problems.push(Problem::new(
                Reason::ReservedNamespace,
                "spec.namespaces",
                format!(
                    "namespace {full:?} is reserved for the system, the platform or the operator"
                ),
            ));
        }
    }
}

/// Whether a label or annotation key belongs to the operator.
pub fn is_reserved_key(key: &str) -> bool {
    key.starts_with("customers.dev/") || key == LABEL_MANAGED_BY || key == LABEL_NAMESPACE_NAME
}

fn check_labels(
    problems: &mut Vec<Problem>,
    field: &str,
    entries: &BTreeMap<String, String>,
    values_are_labels: bool,
) {
    for (key, value) in entries {
        if is_reserved_key(key) {
            problems.push(Problem::new(
                Reason::ReservedLabel,
                format!("{field}[{key}]"),
                "keys under customers.dev/, app.kubernetes.io/managed-by and kubernetes.io/metadata.name are set by the operator",
            ));
        } else if !is_qualified_name(key) {
            problems.push(Problem::new(
                Reason::InvalidLabel,
                format!("{field}[{key}]"),
                "not a valid key: [prefix/]name, name of at most 63 letters, digits, '-', '_', '.'",
            ));
        } else if values_are_labels && !is_label_value(value) {
            problems.push(Problem::new(
                Reason::InvalidLabel,
                format!("{field}[{key}]"),
                format!("{value:?} is not a valid label value (at most 63 letters, digits, '-', '_', '.')"),
            ));
        }
    }
}

fn check_access(problems: &mut Vec<Problem>, field: &str, access: &Access) {
    check_subjects(problems, &format!("{field}.admins"), &access.admins);
    check_subjects(problems, &format!("{field}.editors"), &access.editors);
    check_subjects(problems, &format!("{field}.viewers"), &access.viewers);
}

fn check_subjects(problems: &mut Vec<Problem>, field: &str, subjects: &[Subject]) {
    for (i, subject) in subjects.iter().enumerate() {
        let namespace = subject.namespace.as_deref().unwrap_or("");
        if subject.kind == SubjectKind::ServiceAccount && namespace.is_empty() {
            problems.push(Problem::new(
                Reason::InvalidSubject,
                format!("{field}[{i}].namespace"),
                "a ServiceAccount subject needs a namespace",
            ));
        }
        if subject.name.is_empty() {
            problems.push(Problem::new(
                Reason::InvalidSubject,
                format!("{field}[{i}].name"),
                "a subject needs a name",
            ));
        }
        // What the apiserver checks in a RoleBinding: a ServiceAccount's name is a DNS
        // subdomain and its namespace a namespace name.
        if subject.kind == SubjectKind::ServiceAccount {
            if !subject.name.is_empty() && !is_dns_subdomain(&subject.name) {
                problems.push(Problem::new(
                    Reason::InvalidSubject,
                    format!("{field}[{i}].name"),
                    format!(
                        "{:?} is not a ServiceAccount name (lower-case DNS subdomain)",
                        subject.name
                    ),
                ));
            }
            if !namespace.is_empty() && !is_dns_label(namespace) {
                problems.push(Problem::new(
                    Reason::InvalidSubject,
                    format!("{field}[{i}].namespace"),
                    format!("{namespace:?} is not a namespace name"),
                ));
            }
        }
    }
}

fn check_quota(problems: &mut Vec<Problem>, field: &str, quota: &QuotaSpec) {
    let field = format!("{field}.hard");
    check_quantities(problems, &field, &quota.hard);
    for key in quota.hard.keys() {
        // The apiserver takes a name without a prefix only when it is a standard one.
        if is_qualified_name(key) && !key.contains('/') && !is_standard_quota_resource(key) {
            problems.push(Problem::new(
                Reason::InvalidField,
                format!("{field}[{key}]"),
                "not a resource a quota can limit (for example pods, requests.cpu, limits.memory, count/deployments.apps)",
            ));
        }
    }
}

/// The quota resource names the apiserver accepts without a `prefix/`.
pub fn is_standard_quota_resource(name: &str) -> bool {
    const NAMES: &[&str] = &[
        "pods",
        "services",
        "replicationcontrollers",
        "resourcequotas",
        "secrets",
        "configmaps",
        "persistentvolumeclaims",
        "services.nodeports",
        "services.loadbalancers",
        "cpu",
        "memory",
        "storage",
        "ephemeral-storage",
        "requests.cpu",
        "requests.memory",
        "requests.storage",
        "requests.ephemeral-storage",
        "limits.cpu",
        "limits.memory",
        "limits.ephemeral-storage",
    ];
    NAMES.contains(&name)
        || ["hugepages-", "requests.hugepages-"]
            .iter()
            .any(|p| name.strip_prefix(p).is_some_and(|rest| !rest.is_empty()))
}

fn check_limits(problems: &mut Vec<Problem>, field: &str, limits: &[LimitItem]) {
    for (i, item) in limits.iter().enumerate() {
        let f = format!("{field}[{i}]");
        check_quantities(problems, &format!("{f}.default"), &item.default);
        check_quantities(
            problems,
            &format!("{f}.defaultRequest"),
            &item.default_request,
        );
        check_quantities(problems, &format!("{f}.max"), &item.max);
        check_quantities(problems, &format!("{f}.min"), &item.min);
        check_quantities(
            problems,
            &format!("{f}.maxLimitRequestRatio"),
            &item.max_limit_request_ratio,
        );
    }
}

fn check_quantities(problems: &mut Vec<Problem>, field: &str, map: &BTreeMap<String, Quantity>) {
    for (key, quantity) in map {
        if !is_qualified_name(key) {
            problems.push(Problem::new(
                Reason::InvalidField,
                format!("{field}[{key}]"),
                "not a valid resource name",
            ));
        }
        if quantity.0.trim_start().starts_with('-') && is_quantity(&quantity.0) {
            problems.push(Problem::new(
                Reason::InvalidQuantity,
                format!("{field}[{key}]"),
                format!(
                    "{:?} is negative; quotas and limits must be 0 or more",
                    quantity.0
                ),
            ));
        } else if !is_quantity(&quantity.0) {
            problems.push(Problem::new(
                Reason::InvalidQuantity,
                format!("{field}[{key}]"),
                format!(
                    "{:?} is not a quantity (for example 500m, 2, 8Gi)",
                    quantity.0
                ),
            ));
        }
    }
}

fn check_length(problems: &mut Vec<Problem>, field: &str, value: &str, min: usize, max: usize) {
    let len = value.chars().count();
    if len < min || len > max {
        problems.push(Problem::new(
            Reason::InvalidField,
            field,
            format!("must be {min} to {max} characters long, is {len}"),
        ));
    }
}

/// A DNS-1123 label: 1 to 63 of `a-z`, `0-9`, `-`, starting and ending alphanumeric.
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// A DNS-1123 subdomain: dot-separated labels, at most 253 characters.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// A label value: empty, or up to 63 alphanumerics, '-', '_', '.', starting and ending
/// alphanumeric.
pub fn is_label_value(s: &str) -> bool {
    s.is_empty() || is_label_name(s)
}

fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// A label or annotation key: `[prefix/]name`, prefix a DNS subdomain.
pub fn is_qualified_name(s: &str) -> bool {
    match s.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_label_name(name),
        None => is_label_name(s),
    }
}

/// The shape of an address, as the CRD pattern checks it: one '@', no spaces, and a dot
/// in the domain.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let clean = |p: &str| !p.is_empty() && !p.contains('@') && !p.chars().any(char::is_whitespace);
    s.len() <= 254
        && clean(local)
        && clean(domain)
        && domain
            .split_once('.')
            .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty())
}

/// A Kubernetes quantity: a signed decimal number with an optional binary (`Ki`..`Ei`),
/// decimal (`n`, `u`, `m`, `k`, `M`..`E`) or exponent (`e3`) suffix.
pub fn is_quantity(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(digits_end);
    let number_ok = number.chars().any(|c| c.is_ascii_digit()) && number.matches('.').count() <= 1;
    let suffix_ok = match suffix {
        "" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" | "n" | "u" | "m" | "k" | "M" | "G" | "T"
        | "P" | "E" => true,
        _ => suffix
            .strip_prefix(['e', 'E'])
            .map(|exp| exp.strip_prefix(['+', '-']).unwrap_or(exp))
            .is_some_and(|exp| !exp.is_empty() && exp.chars().all(|c| c.is_ascii_digit())),
    };
    number_ok && suffix_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reasons(yaml: &str, extra: &str) -> Vec<(Reason, String)> {
        let mut docs: Vec<Customer> = Vec::new();
        for doc in [yaml, extra].into_iter().filter(|d| !d.is_empty()) {
            docs.push(serde_yaml::from_str(doc).expect("test customer parses"));
        }
        let dir = crate::desired::MapDirectory::new(docs.clone(), []);
        validate_customer(&docs[0], &dir, &Settings::default())
            .into_iter()
            .map(|p| (p.reason, p.field))
            .collect()
    }

    const HEAD: &str = "apiVersion: customers.dev/v1alpha1\nkind: Customer\n";

    #[test]
    fn what_the_apiserver_refuses_in_children_is_refused_up_front() {
        let c = |spec: &str| {
            format!(
                "{HEAD}metadata: {{name: acme}}\nspec: {{displayName: A, contactEmail: a@b.c, {spec}}}"
            )
        };
        assert_eq!(
            reasons(&c("partner: {name: Acme Corp}"), ""),
            [(Reason::InvalidField, "spec.partner.name".into())]
        );
        assert_eq!(
            reasons(
                &c("access: {admins: [{kind: ServiceAccount, name: Bot, namespace: tools}]}"),
                ""
            ),
            [(Reason::InvalidSubject, "spec.access.admins[0].name".into())]
        );
        assert_eq!(
            reasons(&c("quota: {hard: {pods: '-1'}}"), ""),
            [(Reason::InvalidQuantity, "spec.quota.hard[pods]".into())]
        );
        assert_eq!(
            reasons(&c("quota: {hard: {gpus: '2'}}"), ""),
            [(Reason::InvalidField, "spec.quota.hard[gpus]".into())]
        );
        assert!(
            reasons(
                &c("quota: {hard: {count/deployments.apps: '2', requests.hugepages-2Mi: 1Gi}}"),
                ""
            )
            .is_empty()
        );
        let parent = format!(
            "{HEAD}metadata: {{name: top}}\nspec: {{displayName: T, contactEmail: t@b.c, access: {{admins: [{{kind: ServiceAccount, name: ci}}]}}}}"
        );
        assert_eq!(
            reasons(&c("parent: top"), &parent),
            [(
                Reason::InvalidSubject,
                "parent Customer top: spec.access.admins[0].namespace".into()
            )]
        );
    }

    #[test]
    fn quantities() {
        for ok in ["1", "500m", "8Gi", "0.5", "1e3", "+2", "100", "1.5Ki", "2E"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "abc", "1.2.3", "8GB", "Gi", "1e", "--1", "1 Gi"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn label_keys_and_values() {
        assert!(is_qualified_name("team"));
        assert!(is_qualified_name("example.com/team_a"));
        assert!(!is_qualified_name("Example.com/team"));
        assert!(!is_qualified_name("a/b/c"));
        assert!(!is_qualified_name(&"x".repeat(64)));
        assert!(is_label_value(""));
        assert!(is_label_value("Blue_1.x"));
        assert!(!is_label_value("-x"));
        assert!(!is_label_value(&"x".repeat(64)));
    }

    #[test]
    fn emails() {
        assert!(is_email("ops@astral-voyage.example"));
        for bad in ["ops", "ops@", "@x.y", "a b@x.y", "a@b", "a@@b.c", "a@.c"] {
            assert!(!is_email(bad), "{bad}");
        }
    }

    #[test]
    fn dns_labels() {
        assert!(is_dns_label("a"));
        assert!(is_dns_label("astral-voyage-2"));
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", "a b"] {
            assert!(!is_dns_label(bad), "{bad}");
        }
        assert!(!is_dns_label(&"a".repeat(64)));
    }
}
