//! The checks only the operator can make (references, reserved names), plus the schema's
//! own rules again, so that `render` and old apiservers refuse the same specs.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;

use super::Resolved;
use super::directory::Directory;
use super::resolve::{self, full_namespace_name};
use crate::api::customer::{MAX_CUSTOMER_NAME, MAX_NAMESPACE_SUFFIX};
use crate::api::{
    Access, Customer, LABEL_MANAGED_BY, LABEL_NAMESPACE_NAME, LimitItem, LimitType, QuotaSpec,
    Subject, SubjectKind,
};
use crate::error::{Problem, Reason};
use crate::settings::Settings;

/// Every problem of a Customer; empty when the operator can build it.
pub fn validate_customer(
    customer: &Customer,
    dir: &dyn Directory,
    settings: &Settings,
) -> Vec<Problem> {
    check_and_resolve(customer, dir, settings).0
}

/// Every problem of a Customer, and what checking it resolved (its group's defaults and
/// its parents; `None` when its parents cannot be resolved).
pub fn check_and_resolve(
    customer: &Customer,
    dir: &dyn Directory,
    settings: &Settings,
) -> (Vec<Problem>, Option<Resolved>) {
    let mut problems = Vec::new();
    check_identity(&mut problems, customer);
    check_namespaces(&mut problems, customer, settings);
    let group = check_group(&mut problems, customer, dir, settings);
    let ancestors = match resolve::ancestors(customer, dir) {
        // Parents' admins become admins here: a subject the apiserver would refuse in a
        // RoleBinding must not reach this customer's bindings.
        Ok(ancestors) => {
            for parent in &ancestors {
                if let Some(access) = &parent.spec.access {
                    let field =
                        format!("parent Customer {}: spec.access.admins", parent.name_any());
                    check_subjects(&mut problems, &field, &access.admins, settings);
                }
            }
            Some(ancestors)
        }
        Err(problem) => {
            problems.push(problem);
            None
        }
    };
    let spec = &customer.spec;
    if let Some(access) = &spec.access {
        check_access(&mut problems, "spec.access", access, settings);
    }
    check_partner(&mut problems, customer, settings);
    check_allow_from(&mut problems, customer);
    // What the children will hold: the customer's own quota and limits, else its group's
    // defaults (a group default the apiserver would refuse refuses its members).
    let effective = resolve::effective(customer, dir, settings);
    let from = |own: bool, field: &str| {
        if own {
            format!("spec.{field}")
        } else {
            format!("CustomerGroup {group}: spec.defaults.{field}")
        }
    };
    if let Some(quota) = &effective.quota {
        check_quota(&mut problems, &from(spec.quota.is_some(), "quota"), quota);
    }
    if let Some(limits) = &effective.limits {
        check_limits(
            &mut problems,
            &from(spec.limits.is_some(), "limits"),
            limits,
        );
    }
    let resolved = ancestors.map(|ancestors| Resolved {
        effective,
        ancestors,
    });
    (problems, resolved)
}

/// The name, the display name and the contact email.
fn check_identity(problems: &mut Vec<Problem>, customer: &Customer) {
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
    if crate::api::is_reserved_customer_name(&name) {
        problems.push(Problem::new(
            Reason::InvalidName,
            "metadata.name",
            format!("{name:?}: the names `partner` and `partner-*` are reserved for the partners' namespaces"),
        ));
    }
    let spec = &customer.spec;
    check_length(problems, "spec.displayName", &spec.display_name, 1, 100);
    check_display_name(problems, "spec.displayName", &spec.display_name);
    if !is_email(&spec.contact_email) {
        problems.push(Problem::new(
            Reason::InvalidField,
            "spec.contactEmail",
            format!("{:?} is not an email address", spec.contact_email),
        ));
    }
}

/// The group exists, and what it gives its members (namespace labels, access) is valid;
/// returns the group's name.
fn check_group(
    problems: &mut Vec<Problem>,
    customer: &Customer,
    dir: &dyn Directory,
    settings: &Settings,
) -> String {
    let group = resolve::group_name(customer, settings);
    if customer.spec.group.is_some()
        && group != settings.default_group
        && dir.group(&group).is_none()
    {
        problems.push(Problem::new(
            Reason::UnknownGroup,
            "spec.group",
            format!("CustomerGroup {group:?} does not exist"),
        ));
    }
    if let Some(defaults) = dir.group(&group).and_then(|g| g.spec.defaults.clone()) {
        let field = format!("CustomerGroup {group}: spec.defaults.namespaceLabels");
        check_labels(problems, &field, &defaults.namespace_labels, true);
    }
    if let Some(access) = dir.group(&group).and_then(|g| g.spec.access.clone()) {
        check_access(
            problems,
            &format!("CustomerGroup {group}: spec.access"),
            &access,
            settings,
        );
    }
    group
}

/// The partner's name and consultants.
fn check_partner(problems: &mut Vec<Problem>, customer: &Customer, settings: &Settings) {
    let Some(partner) = &customer.spec.partner else {
        return;
    };
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
        problems,
        "spec.partner.securityConsultants",
        &partner.security_consultants,
        settings,
    );
}

/// Each `allowFrom` entry: exactly one peer, not the customer itself, a valid selector,
/// port ranges in order.
fn check_allow_from(problems: &mut Vec<Problem>, customer: &Customer) {
    let name = customer.name_any();
    let Some(network) = &customer.spec.network else {
        return;
    };
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
        if let Some(selector) = &allow.namespace_selector {
            check_selector(problems, &format!("{field}.namespaceSelector"), selector);
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

/// Bidirectional-override and isolate characters (U+202A..U+202E, U+2066..U+2069), which
/// make a name display as something else than it is.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn check_display_name(problems: &mut Vec<Problem>, field: &str, name: &str) {
    if !name.is_empty() && name.trim().is_empty() {
        problems.push(Problem::new(
            Reason::InvalidField,
            field,
            "must not be only whitespace",
        ));
    }
    if name.chars().any(is_bidi_control) {
        problems.push(Problem::new(
            Reason::InvalidField,
            field,
            "must not contain bidirectional override or isolate characters (U+202A..U+202E, U+2066..U+2069)",
        ));
    }
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

fn check_access(problems: &mut Vec<Problem>, field: &str, access: &Access, settings: &Settings) {
    check_subjects(
        problems,
        &format!("{field}.admins"),
        &access.admins,
        settings,
    );
    check_subjects(
        problems,
        &format!("{field}.editors"),
        &access.editors,
        settings,
    );
    check_subjects(
        problems,
        &format!("{field}.viewers"),
        &access.viewers,
        settings,
    );
}

/// The name the apiserver authenticates a subject as: the user or group name, or
/// `system:serviceaccount:<namespace>:<name>` for a ServiceAccount.
pub fn authenticated_name(subject: &Subject) -> String {
    match subject.kind {
        SubjectKind::ServiceAccount => format!(
            "system:serviceaccount:{}:{}",
            subject.namespace.as_deref().unwrap_or(""),
            subject.name
        ),
        SubjectKind::User | SubjectKind::Group => subject.name.clone(),
    }
}

/// Whether a subject is a system one: a `system:` user or group (`system:anonymous`,
/// `system:unauthenticated`, `system:authenticated`, `system:masters`, nodes,
/// controllers, every ServiceAccount of a namespace or of the cluster), or a
/// ServiceAccount of a system namespace ([`Settings::is_system_namespace`]).
pub fn is_system_subject(subject: &Subject, settings: &Settings) -> bool {
    match subject.kind {
        SubjectKind::User | SubjectKind::Group => subject.name.starts_with("system:"),
        SubjectKind::ServiceAccount => subject
            .namespace
            .as_deref()
            .is_some_and(|ns| settings.is_system_namespace(ns)),
    }
}

fn check_subjects(
    problems: &mut Vec<Problem>,
    field: &str,
    subjects: &[Subject],
    settings: &Settings,
) {
    for (i, subject) in subjects.iter().enumerate() {
        let namespace = subject.namespace.as_deref().unwrap_or("");
        let name = authenticated_name(subject);
        if is_system_subject(subject, settings) && !settings.allowed_system_subjects.contains(&name)
        {
            problems.push(Problem::new(
                Reason::SystemSubject,
                format!("{field}[{i}]"),
                format!(
                    "{:?} {name:?} is a system subject (it stands for the cluster's own components or for everyone); name people, groups or ServiceAccounts of the customer's own, or ask the platform team to allow it (--allow-system-subjects)",
                    subject.kind
                ),
            ));
        }
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
    check_quota_limits(problems, &format!("{field}.hard"), &quota.hard);
    check_quota_limits(problems, &format!("{field}.total"), &quota.total);
}

fn check_quota_limits(
    problems: &mut Vec<Problem>,
    field: &str,
    limits: &BTreeMap<String, Quantity>,
) {
    check_quantities(problems, field, limits);
    for (key, quantity) in limits {
        // The apiserver takes a name without a prefix only when it is a standard one.
        if is_qualified_name(key) && !key.contains('/') && !is_standard_quota_resource(key) {
            problems.push(Problem::new(
                Reason::InvalidField,
                format!("{field}[{key}]"),
                "not a resource a quota can limit (for example pods, requests.cpu, limits.memory, count/deployments.apps)",
            ));
        }
        if is_integer_resource(key) && nanos(&quantity.0).is_some_and(|n| n % NANOS_PER_UNIT != 0) {
            problems.push(Problem::new(
                Reason::InvalidQuantity,
                format!("{field}[{key}]"),
                format!(
                    "{:?}: {key} is counted in whole objects; give a whole number",
                    quantity.0
                ),
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
        "ephemeral-storage",
        "requests.cpu",
        "requests.memory",
        "requests.storage",
        "requests.ephemeral-storage",
        "limits.cpu",
        "limits.memory",
        "limits.ephemeral-storage",
    ];
    NAMES.contains(&name) || is_quota_hugepages(name)
}

fn is_quota_hugepages(name: &str) -> bool {
    name.starts_with("hugepages-") || name.starts_with("requests.hugepages-")
}

/// Resource names without a prefix that the apiserver knows in LimitRanges: the quota's
/// standard names and `storage`.
fn is_standard_resource(name: &str) -> bool {
    name == "storage" || is_standard_quota_resource(name)
}

/// A resource of `kubernetes.io/` or without a prefix.
fn is_native_resource(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// An extended resource (`example.com/gpu`): prefixed, not native, and usable as a
/// `requests.` quota name.
fn is_extended_resource(name: &str) -> bool {
    !is_native_resource(name)
        && !name.starts_with("requests.")
        && is_qualified_name(&format!("requests.{name}"))
}

/// Resources counted in whole units: object counts and extended resources.
fn is_integer_resource(name: &str) -> bool {
    const NAMES: &[&str] = &[
        "pods",
        "resourcequotas",
        "services",
        "replicationcontrollers",
        "secrets",
        "configmaps",
        "persistentvolumeclaims",
        "services.nodeports",
        "services.loadbalancers",
    ];
    NAMES.contains(&name) || is_extended_resource(name)
}

/// Why the apiserver refuses a resource name in a LimitRange item of this type, if it
/// does: a name without a prefix must be a standard one, and for containers and pods
/// one they request (cpu, memory, ephemeral-storage, hugepages-*), a prefixed one
/// native or extended.
fn limit_resource_problem(limit_type: LimitType, name: &str) -> Option<&'static str> {
    if !is_qualified_name(name) {
        return None; // check_quantities reports it
    }
    let unprefixed = !name.contains('/');
    if unprefixed && !is_standard_resource(name) {
        return Some("must be a standard resource type or fully qualified");
    }
    if limit_type == LimitType::PersistentVolumeClaim {
        return None;
    }
    if unprefixed {
        let container = ["cpu", "memory", "ephemeral-storage"].contains(&name)
            || name.starts_with("hugepages-");
        (!container).then_some("must be a standard resource for containers")
    } else if !is_native_resource(name) && !is_extended_resource(name) {
        Some("doesn't follow extended resource name standard")
    } else {
        None
    }
}

/// The apiserver's LimitRange rules: each type once; names valid for the type; no
/// defaults for `Pod`; a `PersistentVolumeClaim` item bounds `storage`; for each
/// resource min <= defaultRequest <= default <= max, min <= max, a ratio of at least 1
/// and at most max/min; resources that cannot be overcommitted (hugepages, extended)
/// need default equal to defaultRequest.
fn check_limits(problems: &mut Vec<Problem>, field: &str, limits: &[LimitItem]) {
    let mut types = BTreeSet::new();
    for (i, item) in limits.iter().enumerate() {
        let f = format!("{field}[{i}]");
        let maps: [(&str, &BTreeMap<String, Quantity>); 5] = [
            ("default", &item.default),
            ("defaultRequest", &item.default_request),
            ("max", &item.max),
            ("min", &item.min),
            ("maxLimitRequestRatio", &item.max_limit_request_ratio),
        ];
        for (name, map) in maps {
            check_quantities(problems, &format!("{f}.{name}"), map);
        }
        let mut invalid = |field: String, message: String| {
            problems.push(Problem::new(Reason::InvalidQuantity, field, message))
        };
        if !types.insert(item.limit_type.as_str()) {
            invalid(
                format!("{f}.type"),
                format!(
                    "a second {} item; each type may appear once",
                    item.limit_type.as_str()
                ),
            );
        }
        for (name, map) in maps {
            if item.limit_type == LimitType::Pod
                && matches!(name, "default" | "defaultRequest")
                && !map.is_empty()
            {
                invalid(
                    format!("{f}.{name}"),
                    "may not be set for type Pod (pods take no defaults)".into(),
                );
                continue;
            }
            for key in map.keys() {
                if let Some(message) = limit_resource_problem(item.limit_type, key) {
                    invalid(format!("{f}.{name}[{key}]"), format!("{key:?} {message}"));
                }
            }
        }
        if item.limit_type == LimitType::PersistentVolumeClaim
            && !item.min.contains_key("storage")
            && !item.max.contains_key("storage")
        {
            invalid(
                f.clone(),
                "a PersistentVolumeClaim item needs min or max storage".into(),
            );
        }
        let pod = item.limit_type == LimitType::Pod;
        let keys: BTreeSet<&String> = maps
            .iter()
            .filter(|(name, _)| !(pod && matches!(*name, "default" | "defaultRequest")))
            .flat_map(|(_, map)| map.keys())
            .collect();
        for key in keys {
            let min = value(&item.min, key);
            let max = value(&item.max, key);
            let (default, request) = if pod {
                (None, None)
            } else {
                (value(&item.default, key), value(&item.default_request, key))
            };
            let ratio = value(&item.max_limit_request_ratio, key);
            let pairs = [
                (min, max, "min", "max", "min"),
                (min, request, "min", "defaultRequest", "defaultRequest"),
                (request, max, "defaultRequest", "max", "defaultRequest"),
                (
                    request,
                    default,
                    "defaultRequest",
                    "default",
                    "defaultRequest",
                ),
                (min, default, "min", "default", "default"),
                (default, max, "default", "max", "default"),
            ];
            for (low, high, low_name, high_name, at) in pairs {
                if let Some((l, h)) = above(low, high) {
                    invalid(
                        format!("{f}.{at}[{key}]"),
                        format!("{low_name} {l} is greater than {high_name} {h}"),
                    );
                }
            }
            if let Some((r, text)) = ratio {
                if r < NANOS_PER_UNIT {
                    invalid(
                        format!("{f}.maxLimitRequestRatio[{key}]"),
                        format!("ratio {text} is less than 1"),
                    );
                } else if let (Some((lo, _)), Some((hi, _))) = (min, max) {
                    // ratio > max / min, without division: ratio * min > max * 1.
                    if lo > 0 && r.saturating_mul(lo) > hi.saturating_mul(NANOS_PER_UNIT) {
                        invalid(
                            format!("{f}.maxLimitRequestRatio[{key}]"),
                            format!("ratio {text} is greater than max/min"),
                        );
                    }
                }
            }
            let overcommit = is_native_resource(key) && !key.starts_with("hugepages-");
            if let (false, Some((d, dt)), Some((r, rt))) = (overcommit, default, request)
                && d != r
            {
                invalid(
                    format!("{f}.defaultRequest[{key}]"),
                    format!(
                        "{key} cannot be overcommitted: default {dt} must equal defaultRequest {rt}"
                    ),
                );
            }
        }
    }
}

/// A quantity of the map, in nano-units and as written.
fn value<'a>(map: &'a BTreeMap<String, Quantity>, key: &str) -> Option<(i128, &'a str)> {
    map.get(key)
        .and_then(|q| nanos(&q.0).map(|n| (n, q.0.as_str())))
}

/// Both quantities, when the first is greater than the second.
fn above<'a>(
    low: Option<(i128, &'a str)>,
    high: Option<(i128, &'a str)>,
) -> Option<(&'a str, &'a str)> {
    match (low, high) {
        (Some(l), Some(h)) if l.0 > h.0 => Some((l.1, h.1)),
        _ => None,
    }
}

/// Nano-units in one unit.
const NANOS_PER_UNIT: i128 = 1_000_000_000;

/// A quantity in nano-units (rounded up below that, as the apiserver rounds), saturating
/// at the bounds of `i128`; `None` when it is not a quantity.
pub fn nanos(s: &str) -> Option<i128> {
    if !is_quantity(s) {
        return None;
    }
    let (negative, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(digits_end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let (exponent, binary): (i32, u32) = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        exp => (exp[1..].parse().ok()?, 0),
    };
    let mut value: i128 = 0;
    for c in whole.chars().chain(fraction.chars()) {
        value = value
            .saturating_mul(10)
            .saturating_add(i128::from(c as u8 - b'0'));
    }
    value = value.saturating_mul(1i128 << binary);
    let shift = exponent + 9 - fraction.len() as i32;
    if shift >= 0 {
        for _ in 0..shift.min(60) {
            value = value.saturating_mul(10);
        }
    } else {
        let divisor = 10i128
            .checked_pow(shift.unsigned_abs())
            .unwrap_or(i128::MAX);
        value = value / divisor + i128::from(value % divisor != 0);
    }
    Some(if negative { -value } else { value })
}

/// The apiserver's rules for a label selector: operators `In`, `NotIn` (with values),
/// `Exists`, `DoesNotExist` (without); keys qualified names; values label values.
fn check_selector(problems: &mut Vec<Problem>, field: &str, selector: &LabelSelector) {
    let mut invalid = |field: String, message: String| {
        problems.push(Problem::new(Reason::InvalidAllowFrom, field, message))
    };
    for (key, value) in selector.match_labels.iter().flatten() {
        if !is_qualified_name(key) {
            invalid(
                format!("{field}.matchLabels[{key}]"),
                format!("{key:?} is not a valid label key"),
            );
        }
        if !is_label_value(value) {
            invalid(
                format!("{field}.matchLabels[{key}]"),
                format!("{value:?} is not a valid label value"),
            );
        }
    }
    for (i, expression) in selector.match_expressions.iter().flatten().enumerate() {
        let f = format!("{field}.matchExpressions[{i}]");
        let values = expression.values.as_deref().unwrap_or_default();
        match expression.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => invalid(
                format!("{f}.values"),
                "must be set when the operator is In or NotIn".into(),
            ),
            "Exists" | "DoesNotExist" if !values.is_empty() => invalid(
                format!("{f}.values"),
                "must not be set when the operator is Exists or DoesNotExist".into(),
            ),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => invalid(
                format!("{f}.operator"),
                format!("{other:?} is not an operator (In, NotIn, Exists, DoesNotExist)"),
            ),
        }
        if !is_qualified_name(&expression.key) {
            invalid(
                format!("{f}.key"),
                format!("{:?} is not a valid label key", expression.key),
            );
        }
        for (j, value) in values.iter().enumerate() {
            if !is_label_value(value) {
                invalid(
                    format!("{f}.values[{j}]"),
                    format!("{value:?} is not a valid label value"),
                );
            }
        }
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

    fn spec(spec: &str) -> String {
        format!(
            "{HEAD}metadata: {{name: acme}}\nspec: {{displayName: A, contactEmail: a@b.c, {spec}}}"
        )
    }

    #[test]
    fn system_subjects_are_refused_unless_allowed() {
        for (subject, field) in [
            (
                "access: {admins: [{kind: User, name: 'system:anonymous'}]}",
                "spec.access.admins[0]",
            ),
            (
                "access: {editors: [{kind: Group, name: 'system:unauthenticated'}]}",
                "spec.access.editors[0]",
            ),
            (
                "access: {viewers: [{kind: Group, name: 'system:authenticated'}]}",
                "spec.access.viewers[0]",
            ),
            (
                "access: {admins: [{kind: Group, name: 'system:serviceaccounts:kube-system'}]}",
                "spec.access.admins[0]",
            ),
            (
                "access: {admins: [{kind: User, name: 'system:kube-controller-manager'}]}",
                "spec.access.admins[0]",
            ),
            (
                "access: {admins: [{kind: ServiceAccount, name: default, namespace: kube-system}]}",
                "spec.access.admins[0]",
            ),
            (
                "access: {admins: [{kind: ServiceAccount, name: default, namespace: default}]}",
                "spec.access.admins[0]",
            ),
            (
                "access: {admins: [{kind: ServiceAccount, name: x, namespace: customer-operator}]}",
                "spec.access.admins[0]",
            ),
            (
                "partner: {name: p, securityConsultants: [{kind: User, name: 'system:anonymous'}]}",
                "spec.partner.securityConsultants[0]",
            ),
        ] {
            assert_eq!(
                reasons(&spec(subject), ""),
                [(Reason::SystemSubject, field.into())],
                "{subject}"
            );
        }
        // People whose names merely look alike, and ServiceAccounts of other namespaces.
        for fine in [
            "access: {admins: [{kind: User, name: 'system-admin@acme.example'}]}",
            "access: {admins: [{kind: User, name: 'System:anonymous'}]}",
            "access: {admins: [{kind: ServiceAccount, name: ci, namespace: acme-tools}]}",
        ] {
            assert!(reasons(&spec(fine), "").is_empty(), "{fine}");
        }
        // A group's managers reach every member: a system subject there refuses them.
        let group: crate::api::CustomerGroup = serde_yaml::from_str(&format!(
            "{}kind: CustomerGroup\nmetadata: {{name: g}}\nspec: {{displayName: G, access: {{viewers: [{{kind: Group, name: 'system:authenticated'}}]}}}}",
            "apiVersion: customers.dev/v1alpha1\n"
        ))
        .unwrap();
        let member: Customer = serde_yaml::from_str(&spec("group: g")).unwrap();
        let dir = crate::desired::MapDirectory::new([member.clone()], [group]);
        let found: Vec<_> = validate_customer(&member, &dir, &Settings::default())
            .into_iter()
            .map(|p| (p.reason, p.field))
            .collect();
        assert_eq!(
            found,
            [(
                Reason::SystemSubject,
                "CustomerGroup g: spec.access.viewers[0]".to_string()
            )]
        );
        // The platform may allow named ones, by the name the apiserver gives them.
        let settings = Settings {
            allowed_system_subjects: vec![
                "system:authenticated".into(),
                "system:serviceaccount:kube-system:backup".into(),
            ],
            ..Settings::default()
        };
        for allowed in [
            "access: {viewers: [{kind: Group, name: 'system:authenticated'}]}",
            "access: {viewers: [{kind: ServiceAccount, name: backup, namespace: kube-system}]}",
        ] {
            let c: Customer = serde_yaml::from_str(&spec(allowed)).unwrap();
            let dir = crate::desired::MapDirectory::new([c.clone()], []);
            assert!(
                validate_customer(&c, &dir, &settings).is_empty(),
                "{allowed}"
            );
        }
        let c: Customer = serde_yaml::from_str(&spec(
            "access: {viewers: [{kind: Group, name: 'system:unauthenticated'}]}",
        ))
        .unwrap();
        let dir = crate::desired::MapDirectory::new([c.clone()], []);
        assert_eq!(validate_customer(&c, &dir, &settings).len(), 1);
    }

    #[test]
    fn quota_values_the_apiserver_refuses() {
        let hard = |h: &str| reasons(&spec(&format!("quota: {{hard: {{{h}}}}}")), "");
        for bad in [
            "pods: '1.5'",
            "pods: 100m",
            "services: '0.5'",
            "count/deployments.apps: '2.5'",
            "example.com/gpu: 500m",
        ] {
            let key = bad.split(": ").next().unwrap();
            assert_eq!(
                hard(bad),
                [(Reason::InvalidQuantity, format!("spec.quota.hard[{key}]"))],
                "{bad}"
            );
        }
        assert_eq!(
            hard("storage: 1Gi"),
            [(Reason::InvalidField, "spec.quota.hard[storage]".into())]
        );
        for fine in [
            "pods: '10'",
            "pods: 1k",
            "pods: '1e3'",
            "requests.cpu: 500m",
            "limits.memory: 1.5Gi",
            "count/deployments.apps: '2'",
            "requests.storage: 1Gi",
        ] {
            assert!(hard(fine).is_empty(), "{fine}");
        }
    }

    #[test]
    fn limit_ranges_the_apiserver_refuses() {
        let limits = |l: &str| reasons(&spec(&format!("limits: [{l}]")), "");
        let one = |l: &str, field: &str| {
            assert_eq!(
                limits(l),
                [(Reason::InvalidQuantity, field.to_string())],
                "{l}"
            );
        };
        one(
            "{type: Container, min: {cpu: '2'}, max: {cpu: '1'}}",
            "spec.limits[0].min[cpu]",
        );
        one(
            "{type: Container, default: {memory: 2Gi}, max: {memory: 1Gi}}",
            "spec.limits[0].default[memory]",
        );
        one(
            "{type: Container, defaultRequest: {cpu: '1'}, default: {cpu: 500m}}",
            "spec.limits[0].defaultRequest[cpu]",
        );
        one(
            "{type: Container, min: {cpu: '1'}, defaultRequest: {cpu: 500m}}",
            "spec.limits[0].defaultRequest[cpu]",
        );
        one(
            "{type: PersistentVolumeClaim, max: {cpu: '1'}}",
            "spec.limits[0]",
        );
        one(
            "{type: Container, max: {storage: 1Gi}}",
            "spec.limits[0].max[storage]",
        );
        one(
            "{type: Container, max: {pods: '1'}}",
            "spec.limits[0].max[pods]",
        );
        one("{type: Pod, default: {cpu: '1'}}", "spec.limits[0].default");
        one(
            "{type: Container, maxLimitRequestRatio: {cpu: 500m}}",
            "spec.limits[0].maxLimitRequestRatio[cpu]",
        );
        one(
            "{type: Container, min: {cpu: '1'}, max: {cpu: '2'}, maxLimitRequestRatio: {cpu: '3'}}",
            "spec.limits[0].maxLimitRequestRatio[cpu]",
        );
        one(
            "{type: Container, default: {hugepages-2Mi: 4Mi}, defaultRequest: {hugepages-2Mi: 2Mi}}",
            "spec.limits[0].defaultRequest[hugepages-2Mi]",
        );
        assert_eq!(
            limits("{type: Container, max: {cpu: '1'}}, {type: Container, max: {memory: 1Gi}}"),
            [(Reason::InvalidQuantity, "spec.limits[1].type".into())]
        );
        for fine in [
            "{type: Container, min: {cpu: 100m}, defaultRequest: {cpu: 200m}, default: {cpu: 500m}, max: {cpu: '1'}, maxLimitRequestRatio: {cpu: '4'}}",
            "{type: Container, min: {memory: 1Gi}, max: {memory: 1024Mi}}",
            "{type: Pod, max: {cpu: '4', memory: 8Gi}}",
            "{type: PersistentVolumeClaim, min: {storage: 1Gi}, max: {storage: 10Gi}}",
            "{type: Container, max: {example.com/gpu: '1'}}",
        ] {
            assert!(limits(fine).is_empty(), "{fine}: {:?}", limits(fine));
        }
    }

    #[test]
    fn group_defaults_are_checked_for_their_members() {
        let group: crate::api::CustomerGroup = serde_yaml::from_str(
            "apiVersion: customers.dev/v1alpha1\nkind: CustomerGroup\nmetadata: {name: g}\nspec: {displayName: G, defaults: {quota: {hard: {pods: 100m}}, limits: [{type: Container, min: {cpu: '2'}, max: {cpu: '1'}}]}}",
        )
        .unwrap();
        let member: Customer = serde_yaml::from_str(&spec("group: g")).unwrap();
        let dir = crate::desired::MapDirectory::new([member.clone()], [group]);
        let fields: Vec<_> = validate_customer(&member, &dir, &Settings::default())
            .into_iter()
            .map(|p| p.field)
            .collect();
        assert_eq!(
            fields,
            [
                "CustomerGroup g: spec.defaults.quota.hard[pods]",
                "CustomerGroup g: spec.defaults.limits[0].min[cpu]"
            ]
        );
    }

    #[test]
    fn namespace_selectors_the_apiserver_refuses() {
        let selector = |s: &str| {
            reasons(
                &spec(&format!(
                    "network: {{allowFrom: [{{namespaceSelector: {s}}}]}}"
                )),
                "",
            )
        };
        let base = "spec.network.allowFrom[0].namespaceSelector";
        for (bad, at) in [
            (
                "{matchExpressions: [{key: team, operator: Equals, values: [a]}]}",
                ".matchExpressions[0].operator",
            ),
            (
                "{matchExpressions: [{key: 'bad key', operator: Exists}]}",
                ".matchExpressions[0].key",
            ),
            (
                "{matchExpressions: [{key: team, operator: In}]}",
                ".matchExpressions[0].values",
            ),
            (
                "{matchExpressions: [{key: team, operator: Exists, values: [a]}]}",
                ".matchExpressions[0].values",
            ),
            (
                "{matchExpressions: [{key: team, operator: In, values: ['not valid']}]}",
                ".matchExpressions[0].values[0]",
            ),
            ("{matchLabels: {'a/b/c': x}}", ".matchLabels[a/b/c]"),
        ] {
            assert_eq!(
                selector(bad),
                [(Reason::InvalidAllowFrom, format!("{base}{at}"))],
                "{bad}"
            );
        }
        assert!(selector("{matchLabels: {shared: 'yes'}, matchExpressions: [{key: example.com/tier, operator: NotIn, values: [a, b]}]}").is_empty());
    }

    #[test]
    fn display_names_that_hide_what_they_are() {
        for bad in [
            "'   '",
            "\"\\t\"",
            "\"Acme\\u202Eevil\"",
            "\"\\u2066Acme\\u2069\"",
        ] {
            assert_eq!(
                reasons(
                    &format!(
                        "{HEAD}metadata: {{name: acme}}\nspec: {{displayName: {bad}, contactEmail: a@b.c}}"
                    ),
                    ""
                ),
                [(Reason::InvalidField, "spec.displayName".into())],
                "{bad}"
            );
        }
        assert!(reasons(&spec("description: ' x '"), "").is_empty());
        assert!(reasons(&format!("{HEAD}metadata: {{name: acme}}\nspec: {{displayName: ' Ärger & Söhne ', contactEmail: a@b.c}}"), "").is_empty());
    }

    #[test]
    fn nano_units() {
        assert_eq!(nanos("1"), Some(1_000_000_000));
        assert_eq!(nanos("500m"), Some(500_000_000));
        assert_eq!(nanos("1.5Ki"), Some(1536 * 1_000_000_000));
        assert_eq!(nanos("1e3"), Some(1_000_000_000_000));
        assert_eq!(nanos("1E18"), Some(1_000_000_000_000_000_000_000_000_000));
        assert_eq!(nanos("-2"), Some(-2_000_000_000));
        assert_eq!(nanos("0.0000000001"), Some(1));
        assert_eq!(nanos("1Gi"), nanos("1024Mi"));
        assert_eq!(nanos("x"), None);
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
