//! Property tests of `desired/` and its validation (issue 7, item 5). No cluster needed.
//!
//! - For any directory of valid Customers and CustomerGroups (names up to the schema's
//!   limits, namespaces, subjects, `allowFrom`, groups with zones and defaults, parents),
//!   every object has a valid name and valid labels, lives in one of the customer's own
//!   namespaces, no two customers hold the same namespace, and no NetworkPolicy names a
//!   namespace of another customer unless an `allowFrom` or an open group zone declares it.
//! - Any one rule broken on top of a valid spec is refused with its reason.
//! - Any spec at all, strings of arbitrary characters included, is either refused or
//!   builds objects that are still valid; nothing panics.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use customer_operator::api::{
    Access, AllowFrom, Customer, CustomerGroup, CustomerGroupSpec, CustomerNamespace,
    CustomerNetwork, CustomerSpec, DefaultNetwork, GroupDefaults, GroupNetwork, Isolation,
    LABEL_CUSTOMER, LABEL_GROUP, LABEL_MANAGED_BY, LABEL_NAMESPACE_NAME, LimitItem, LimitType,
    MANAGED_BY, PartnerRef, PortSpec, Protocol, QuotaSpec, Subject, SubjectKind,
};
use customer_operator::desired::network::{
    self, ALLOW_DNS, ALLOW_FROM, ALLOW_GROUP, ALLOW_INTERNET, ALLOW_PLATFORM, ALLOW_SAME_CUSTOMER,
    ALLOW_TO_PEERS, DEFAULT_DENY,
};
use customer_operator::desired::validate::{
    is_dns_label, is_dns_subdomain, is_label_value, is_qualified_name,
};
use customer_operator::desired::{
    self, Desired, Directory, MapDirectory, held_namespaces, resolve,
};
use customer_operator::error::{Error, Reason};
use customer_operator::settings::Settings;
use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::{Resource, ResourceExt};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::select;

fn settings() -> Settings {
    Settings {
        platform_namespaces: vec!["ingress-nginx".into(), "monitoring".into()],
        ..Settings::default()
    }
}

// ------------------------------------------------------------------ generators

const LOWER: &[char] = &[
    'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', 'p', 'q', 'r', 's',
    't', 'u', 'v', 'w', 'x', 'y', 'z', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9',
];
/// First letters that keep a generated name away from every reserved namespace
/// (`kube-*`, `default`, the operator's, DNS and platform namespaces).
const SAFE_FIRST: &[char] = &['a', 'b', 'h', 'j', 'q', 'r', 't', 'w', 'x', 'y', 'z'];
/// A few short names, so that customers often meet (`a` + `b-c` and `a-b` + `c`).
const SHORT: &[&str] = &["a", "a-b", "b", "b-c", "c", "x", "x-y", "y"];

/// A DNS-1123 label of `min..=max` characters starting with a safe letter.
fn dns_label(min: usize, max: usize) -> impl Strategy<Value = String> {
    (
        select(SAFE_FIRST),
        vec(select(LOWER), min.saturating_sub(2)..=max.saturating_sub(2)),
        select(LOWER),
        vec(any::<bool>(), 0..=max),
    )
        .prop_map(move |(first, middle, last, dashes)| {
            let mut s = String::new();
            s.push(first);
            for (i, c) in middle.iter().enumerate() {
                s.push(if dashes.get(i) == Some(&true) && i % 3 == 1 {
                    '-'
                } else {
                    *c
                });
            }
            if max > 1 {
                s.push(last);
            }
            s.truncate(max);
            s
        })
}

fn customer_name() -> impl Strategy<Value = String> {
    prop_oneof![
        select(SHORT).prop_map(str::to_string),
        dns_label(1, 40),
        Just("r".repeat(40)),
    ]
}

fn suffix() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some(String::new())),
        select(SHORT).prop_map(|s| Some(s.to_string())),
        dns_label(1, 22).prop_map(Some),
    ]
}

fn label_map() -> impl Strategy<Value = BTreeMap<String, String>> {
    btree_map(
        prop_oneof![
            Just("team".to_string()),
            Just("example.com/tier".to_string()),
            Just("app.kubernetes.io/part-of".to_string()),
            dns_label(1, 63),
        ],
        prop_oneof![
            Just(String::new()),
            dns_label(1, 63),
            Just("Blue_1.x".into())
        ],
        0..3,
    )
}

fn subject(namespaces: Vec<String>) -> impl Strategy<Value = Subject> {
    (0..3u8, dns_label(1, 30), select(namespaces)).prop_map(|(kind, name, ns)| match kind {
        0 => Subject {
            kind: SubjectKind::User,
            name: format!("{name}@people.example"),
            namespace: None,
        },
        1 => Subject {
            kind: SubjectKind::Group,
            name,
            namespace: None,
        },
        _ => Subject {
            kind: SubjectKind::ServiceAccount,
            name,
            namespace: Some(ns),
        },
    })
}

fn subjects() -> impl Strategy<Value = Vec<Subject>> {
    vec(
        subject(vec!["a".into(), "tools".into(), "x-y".into()]),
        0..3,
    )
}

fn access() -> impl Strategy<Value = Option<Access>> {
    proptest::option::of((subjects(), subjects(), subjects()).prop_map(
        |(admins, editors, viewers)| Access {
            admins,
            editors,
            viewers,
        },
    ))
}

fn quantity() -> impl Strategy<Value = Quantity> {
    select(&["1", "500m", "8Gi", "0.5", "100", "2k", "1e3"][..]).prop_map(|q| Quantity(q.into()))
}

/// Whole numbers, for what a quota counts (pods, objects): the apiserver refuses a
/// fraction there.
fn whole_quantity() -> impl Strategy<Value = Quantity> {
    select(&["1", "100", "2k", "1e3"][..]).prop_map(|q| Quantity(q.into()))
}

fn quota() -> impl Strategy<Value = Option<QuotaSpec>> {
    let measured = select(&["requests.cpu", "limits.memory"][..]).prop_map(str::to_string);
    let counted = select(&["pods", "count/configmaps"][..]).prop_map(str::to_string);
    proptest::option::of(
        (
            btree_map(measured, quantity(), 0..2),
            btree_map(counted, whole_quantity(), 0..2),
        )
            .prop_filter("a quota limits something", |(m, c)| {
                !m.is_empty() || !c.is_empty()
            })
            .prop_map(|(mut hard, counted)| {
                hard.extend(counted);
                QuotaSpec {
                    hard,
                    ..Default::default()
                }
            }),
    )
}

fn limits() -> impl Strategy<Value = Option<Vec<LimitItem>>> {
    // Each type at most once, as the apiserver requires.
    let max = || {
        btree_map(
            select(&["cpu", "memory"][..]).prop_map(str::to_string),
            quantity(),
            0..2,
        )
    };
    proptest::option::of(
        (proptest::option::of(max()), proptest::option::of(max())).prop_map(|(container, pod)| {
            [(LimitType::Container, container), (LimitType::Pod, pod)]
                .into_iter()
                .filter_map(|(limit_type, max)| {
                    max.map(|max| LimitItem {
                        limit_type,
                        default: BTreeMap::new(),
                        default_request: BTreeMap::new(),
                        max,
                        min: BTreeMap::new(),
                        max_limit_request_ratio: BTreeMap::new(),
                    })
                })
                .collect()
        }),
    )
}

fn ports() -> impl Strategy<Value = Vec<PortSpec>> {
    vec(
        (1..=65535i32, 0..100i32, any::<bool>(), 0..3u8).prop_map(|(port, span, range, proto)| {
            PortSpec {
                port,
                end_port: (range && port + span <= 65535).then_some(port + span),
                protocol: [None, Some(Protocol::Udp), Some(Protocol::Tcp)][proto as usize],
            }
        }),
        0..3,
    )
}

/// One `allowFrom` entry: a customer or group of the pool (existing or not), or a selector.
fn allow_from() -> impl Strategy<Value = AllowFrom> {
    (
        0..3u8,
        customer_name(),
        select(&["g1", "g2", "zone", "nowhere"][..]),
        label_map(),
        ports(),
    )
        .prop_map(|(which, customer, group, labels, ports)| AllowFrom {
            customer: (which == 0).then_some(customer),
            group: (which == 1).then_some(group.to_string()),
            namespace_selector: (which == 2).then_some(LabelSelector {
                match_labels: Some(labels),
                match_expressions: None,
            }),
            ports,
        })
}

fn isolation() -> impl Strategy<Value = Option<Isolation>> {
    proptest::option::of(select(
        &[Isolation::Strict, Isolation::Standard, Isolation::None][..],
    ))
}

/// A customer's spec (without group and parent, which the directory sets).
fn customer_spec() -> impl Strategy<Value = CustomerSpec> {
    (
        (
            vec((suffix(), label_map(), label_map()), 0..4),
            access(),
            proptest::option::of((dns_label(1, 63), vec(subject(vec!["partner".into()]), 0..3))),
        ),
        (
            isolation(),
            vec(allow_from(), 0..4),
            proptest::option::of(any::<bool>()),
        ),
        (quota(), limits(), any::<bool>(), 1..100usize),
    )
        .prop_map(
            |(
                (namespaces, access, partner),
                (isolation, allow_from, internet_egress),
                (quota, limits, deletion_protection, display_len),
            )| {
                // Suffixes must be distinct within one customer (the schema says so).
                let mut seen = BTreeSet::new();
                let namespaces = namespaces
                    .into_iter()
                    .filter(|(s, _, _)| seen.insert(s.clone().unwrap_or_default()))
                    .map(|(name, labels, annotations)| CustomerNamespace {
                        name,
                        labels,
                        annotations,
                    })
                    .collect();
                CustomerSpec {
                    display_name: "D".repeat(display_len),
                    contact_email: "ops@customer.example".into(),
                    description: None,
                    group: None,
                    parent: None,
                    partner: partner.map(|(name, security_consultants)| PartnerRef {
                        name,
                        security_consultants,
                    }),
                    namespaces,
                    access,
                    network: Some(CustomerNetwork {
                        isolation,
                        allow_from,
                        internet_egress,
                    }),
                    quota,
                    limits,
                    deletion_protection,
                    // A freeze changes only the bindings' roles: drawn with protection,
                    // so both states reach every property.
                    frozen: deletion_protection,
                    argo_cd: None,
                }
            },
        )
}

fn group(name: &'static str) -> impl Strategy<Value = CustomerGroup> {
    (
        any::<bool>(),
        isolation(),
        proptest::option::of(any::<bool>()),
        quota(),
        label_map(),
        access(),
    )
        .prop_map(
            move |(zone, isolation, internet_egress, quota, namespace_labels, access)| {
                CustomerGroup::new(
                    name,
                    CustomerGroupSpec {
                        display_name: name.to_uppercase(),
                        description: None,
                        access,
                        network: Some(GroupNetwork {
                            allow_within_group: zone,
                        }),
                        defaults: Some(GroupDefaults {
                            network: Some(DefaultNetwork {
                                isolation,
                                internet_egress,
                            }),
                            quota,
                            limits: None,
                            namespace_labels,
                        }),
                        deletion_policy: Default::default(),
                        frozen: zone,
                        argo_cd: None,
                    },
                )
            },
        )
}

/// A directory of valid customers: unique names, groups that exist (or the default
/// group), parents that point to customers earlier in the list (so no cycle, depth at
/// most 5), and creation times that sometimes tie.
fn directory() -> impl Strategy<Value = MapDirectory> {
    (
        vec(
            (
                customer_name(),
                customer_spec(),
                0..4usize,
                0..8usize,
                0..3i64,
            ),
            1..7,
        ),
        group("g1"),
        group("zone"),
    )
        .prop_map(|(customers, g1, zone)| {
            let mut out: Vec<Customer> = Vec::new();
            for (name, mut spec, group, parent, created) in customers {
                if out.iter().any(|c| c.name_any() == name) {
                    continue;
                }
                spec.group = [None, Some("g1"), Some("zone"), Some("all")][group].map(Into::into);
                spec.parent = out
                    .get(parent)
                    .filter(|p| depth(p, &out) < 5)
                    .map(|p| p.name_any());
                if let Some(network) = spec.network.as_mut() {
                    network
                        .allow_from
                        .retain(|a| a.customer.as_deref() != Some(name.as_str()));
                }
                let mut c = Customer::new(&name, spec);
                c.metadata = ObjectMeta {
                    name: Some(name),
                    uid: Some(format!("uid-{}", out.len())),
                    creation_timestamp: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                        k8s_openapi::jiff::Timestamp::from_second(1_700_000_000 + created).unwrap(),
                    )),
                    ..Default::default()
                };
                out.push(c);
            }
            MapDirectory::new(out, [g1, zone])
        })
}

fn depth(customer: &Customer, all: &[Customer]) -> usize {
    match &customer.spec.parent {
        Some(p) => {
            1 + all
                .iter()
                .find(|c| &c.name_any() == p)
                .map_or(0, |c| depth(c, all))
        }
        None => 0,
    }
}

// ------------------------------------------------------------------ checks

/// Valid names and labels on every object; all in the customer's own namespaces.
fn check_objects(customer: &Customer, d: &Desired) -> Result<(), TestCaseError> {
    let me = customer.name_any();
    let own: BTreeSet<String> = d.namespaces.iter().map(|n| n.name_any()).collect();
    let claimed: BTreeSet<String> = resolve::namespace_names(customer).into_iter().collect();
    prop_assert!(own.is_subset(&claimed), "{own:?} not among {claimed:?}");
    for ns in &d.namespaces {
        let name = ns.name_any();
        prop_assert!(is_dns_label(&name), "namespace name {name:?}");
        check_meta(&me, ns.meta())?;
        // The apiserver sets it; the operator never writes it.
        prop_assert_eq!(ns.labels().get(LABEL_NAMESPACE_NAME), None);
        for key in ns.annotations().keys() {
            prop_assert!(is_qualified_name(key), "annotation key {key:?}");
        }
    }
    let mut keys = BTreeSet::new();
    let mut namespaced = |kind: &str, meta: &ObjectMeta| -> Result<(), TestCaseError> {
        let ns = meta.namespace.clone().unwrap_or_default();
        let name = meta.name.clone().unwrap_or_default();
        prop_assert!(
            own.contains(&ns),
            "{kind} {name} in {ns:?}, not the customer's"
        );
        prop_assert!(is_dns_subdomain(&name), "{kind} name {name:?}");
        prop_assert!(
            keys.insert((kind.to_string(), ns.clone(), name.clone())),
            "{kind} {ns}/{name} twice"
        );
        check_meta(&me, meta)
    };
    for o in &d.network_policies {
        namespaced("NetworkPolicy", &o.metadata)?;
    }
    for o in &d.role_bindings {
        namespaced("RoleBinding", &o.metadata)?;
        for s in o.subjects.iter().flatten() {
            prop_assert!(!s.name.is_empty(), "empty subject in {:?}", o);
            if s.kind == "ServiceAccount" {
                prop_assert!(is_dns_subdomain(&s.name), "ServiceAccount {:?}", s.name);
                prop_assert!(
                    s.namespace.as_deref().is_some_and(is_dns_label),
                    "ServiceAccount namespace {:?}",
                    s.namespace
                );
            }
        }
    }
    for o in &d.resource_quotas {
        namespaced("ResourceQuota", &o.metadata)?;
    }
    for o in &d.limit_ranges {
        namespaced("LimitRange", &o.metadata)?;
    }
    Ok(())
}

fn check_meta(customer: &str, meta: &ObjectMeta) -> Result<(), TestCaseError> {
    let labels = meta.labels.clone().unwrap_or_default();
    for (key, value) in &labels {
        prop_assert!(is_qualified_name(key), "label key {key:?}");
        prop_assert!(is_label_value(value), "label {key}={value:?}");
    }
    prop_assert_eq!(
        labels.get(LABEL_CUSTOMER).map(String::as_str),
        Some(customer)
    );
    prop_assert_eq!(
        labels.get(LABEL_MANAGED_BY).map(String::as_str),
        Some(MANAGED_BY)
    );
    prop_assert!(labels.contains_key(LABEL_GROUP));
    prop_assert!(meta.owner_references.is_none());
    let recorded = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get("customers.dev/owner-uid"));
    prop_assert!(recorded.is_some(), "{} records no owner", customer);
    Ok(())
}

/// The namespace names a peer selects by `kubernetes.io/metadata.name`, or the selector
/// itself when it selects by other labels.
fn selected(peer: &NetworkPolicyPeer) -> Result<BTreeSet<String>, LabelSelector> {
    let selector = peer.namespace_selector.clone().unwrap_or_default();
    let mut names = BTreeSet::new();
    let by_name = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, _)| k == LABEL_NAMESPACE_NAME)
        && selector
            .match_expressions
            .iter()
            .flatten()
            .all(|e| e.key == LABEL_NAMESPACE_NAME && e.operator == "In");
    let empty = selector.match_labels.iter().flatten().next().is_none()
        && selector.match_expressions.iter().flatten().next().is_none();
    if !by_name || empty {
        return Err(selector);
    }
    names.extend(
        selector
            .match_labels
            .iter()
            .flatten()
            .map(|(_, v)| v.clone()),
    );
    for e in selector.match_expressions.iter().flatten() {
        names.extend(e.values.iter().flatten().cloned());
    }
    Ok(names)
}

/// No NetworkPolicy peer names a namespace that neither the customer nor a declaration
/// (its `allowFrom`, another's `allowFrom` naming it, an open zone) lets in.
fn check_network(
    customer: &Customer,
    d: &Desired,
    dir: &MapDirectory,
    settings: &Settings,
) -> Result<(), TestCaseError> {
    let me = customer.name_any();
    let my_group = resolve::group_name(customer, settings);
    let own: BTreeSet<String> = d.namespaces.iter().map(|n| n.name_any()).collect();
    let held =
        |c: &Customer| -> BTreeSet<String> { held_namespaces(c, dir).0.into_iter().collect() };
    let others: Vec<Arc<Customer>> = dir
        .customers()
        .into_iter()
        .filter(|c| c.name_any() != me)
        .collect();
    let in_group = |g: &str| -> BTreeSet<String> {
        others
            .iter()
            .filter(|c| resolve::group_name(c, settings) == g)
            .flat_map(|c| held(c))
            .collect()
    };
    let allows = customer
        .spec
        .network
        .iter()
        .flat_map(|n| n.allow_from.clone())
        .collect::<Vec<_>>();
    let mut ingress_ok = BTreeSet::new();
    let mut selectors = Vec::new();
    for a in &allows {
        if let Some(c) = a.customer.as_deref().and_then(|c| dir.customer(c)) {
            ingress_ok.extend(held(&c));
        }
        if let Some(g) = &a.group {
            ingress_ok.extend(in_group(g));
        }
        if let Some(s) = &a.namespace_selector {
            selectors.push(s.clone());
        }
    }
    let egress_ok: BTreeSet<String> = others
        .iter()
        .filter(|o| {
            o.spec.network.iter().flat_map(|n| &n.allow_from).any(|a| {
                a.customer.as_deref() == Some(me.as_str())
                    || a.group.as_deref() == Some(my_group.as_str())
            })
        })
        .flat_map(|o| held(o))
        .collect();
    let zone_open = dir
        .group(&my_group)
        .and_then(|g| g.spec.network.clone())
        .is_some_and(|n| n.allow_within_group);
    let zone = if zone_open {
        in_group(&my_group)
    } else {
        BTreeSet::new()
    };
    let platform: BTreeSet<String> = settings.platform_namespaces.iter().cloned().collect();
    let dns: BTreeSet<String> = [settings.dns.namespace.clone()].into();
    for policy in &d.network_policies {
        let name = policy.name_any();
        let spec = policy.spec.clone().unwrap_or_default();
        let peers = network::peers(&spec);
        let allowed: &BTreeSet<String> = match name.as_str() {
            DEFAULT_DENY => {
                prop_assert!(peers.is_empty(), "the deny policy admits {peers:?}");
                continue;
            }
            ALLOW_SAME_CUSTOMER => &own,
            ALLOW_DNS => &dns,
            ALLOW_PLATFORM => &platform,
            ALLOW_INTERNET => {
                prop_assert!(peers.iter().all(|p| p.ip_block.is_some()));
                continue;
            }
            ALLOW_FROM => &ingress_ok,
            ALLOW_TO_PEERS => &egress_ok,
            ALLOW_GROUP => &zone,
            other => return Err(TestCaseError::fail(format!("unknown policy {other}"))),
        };
        prop_assert!(
            name != ALLOW_SAME_CUSTOMER || !peers.is_empty(),
            "same-customer policy without peers"
        );
        for peer in &peers {
            if peer.ip_block.is_some() {
                prop_assert!(name == ALLOW_INTERNET, "{name} has an ipBlock");
                continue;
            }
            match selected(peer) {
                Ok(names) => {
                    prop_assert!(!names.is_empty(), "{name}: empty peer list opens nothing");
                    prop_assert!(
                        names.is_subset(allowed),
                        "{me}: {name} admits {names:?}, declared only {allowed:?}"
                    );
                    if name != ALLOW_SAME_CUSTOMER {
                        prop_assert!(
                            names.is_disjoint(&own),
                            "{name} names the customer's own {names:?}"
                        );
                    }
                }
                Err(selector) => prop_assert!(
                    name == ALLOW_FROM && selectors.contains(&selector),
                    "{name}: undeclared selector {selector:?}"
                ),
            }
        }
    }
    Ok(())
}

// ------------------------------------------------------------------ properties

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Valid specs build, and what they build is valid, confined, and exclusive.
    #[test]
    fn valid_specs_build_valid_confined_objects(dir in directory()) {
        let settings = settings();
        let mut holders: BTreeMap<String, String> = BTreeMap::new();
        for customer in dir.customers.values() {
            let d = match desired::desired(customer, &dir, &settings) {
                Ok(d) => d,
                Err(e) => return Err(TestCaseError::fail(format!(
                    "{}: a valid spec was refused: {e}", customer.name_any()))),
            };
            check_objects(customer, &d)?;
            check_network(customer, &d, &dir, &settings)?;
            for ns in &d.namespaces {
                if let Some(other) = holders.insert(ns.name_any(), customer.name_any()) {
                    prop_assert!(false, "{} and {} both hold {}", other, customer.name_any(), ns.name_any());
                }
            }
            let claimed = resolve::namespace_names(customer).len();
            prop_assert_eq!(d.namespaces.len() + d.conflicts.len(), claimed);
        }
    }

    /// `claims`, which the conflict check asks of every customer without building names,
    /// agrees with the names `namespace_names` builds, for every customer and every
    /// namespace name of every customer.
    #[test]
    fn claims_agrees_with_namespace_names(dir in directory()) {
        let names: Vec<String> = dir
            .customers
            .values()
            .flat_map(|c| resolve::namespace_names(c))
            .chain(["", "-", "a-"].map(String::from))
            .collect();
        for customer in dir.customers.values() {
            let own = resolve::namespace_names(customer);
            for name in &names {
                prop_assert_eq!(resolve::claims(customer, name), own.contains(name), "{} claims {}?", customer.name_any(), name);
            }
        }
    }

    /// Each broken rule on top of a valid spec is refused with its reason.
    #[test]
    fn each_broken_rule_is_refused(dir in directory(), breakage in 0..BREAKAGES, pick in any::<prop::sample::Index>()) {
        let settings = settings();
        let names: Vec<String> = dir.customers.keys().cloned().collect();
        let name = pick.get(&names).clone();
        let mut dir = dir;
        let (customer, expected) = break_one(&mut dir, &name, breakage);
        match desired::desired(&customer, &dir, &settings) {
            Err(Error::Invalid(problems)) => prop_assert!(
                problems.iter().any(|p| p.reason == expected),
                "breakage {breakage}: expected {expected:?}, got {problems:?}"
            ),
            Err(other) => prop_assert!(false, "breakage {breakage}: {other}"),
            Ok(_) => prop_assert!(false, "breakage {breakage} ({expected:?}) was accepted: {:?}", customer.spec),
        }
    }

    /// Any spec at all, arbitrary strings included: refused, or valid output. Never a panic.
    #[test]
    fn any_spec_is_refused_or_builds_valid_objects(dir in directory(), garbage in garbage()) {
        let settings = settings();
        let mut dir = dir;
        let victim = dir.customers.keys().next().cloned().unwrap();
        let mut customer = (*dir.customers[&victim]).clone();
        garbage.apply(&mut customer);
        let name = customer.name_any();
        dir.customers.remove(&victim);
        dir.customers.insert(name.clone(), Arc::new(customer.clone()));
        let _ = customer_operator::desired::validate::validate_customer(&customer, &dir, &settings);
        if let Ok(d) = desired::desired(&customer, &dir, &settings) {
            check_objects(&customer, &d)?;
            check_network(&customer, &d, &dir, &settings)?;
            prop_assert!(d.to_values().is_ok());
        }
        // The others still build or are refused; none panics.
        for other in dir.customers.values() {
            if let Ok(d) = desired::desired(other, &dir, &settings) {
                check_objects(other, &d)?;
            }
        }
    }
}

/// How many kinds of breakage [`break_one`] knows.
const BREAKAGES: usize = 28;

/// Breaks one rule of the customer `name` in `dir`; returns it and the expected reason.
fn break_one(dir: &mut MapDirectory, name: &str, breakage: usize) -> (Customer, Reason) {
    let mut c = (*dir.customers[name]).clone();
    let spec = &mut c.spec;
    let user = |n: &str| Subject {
        kind: SubjectKind::User,
        name: n.into(),
        namespace: None,
    };
    let reason = match breakage {
        0 => {
            c.metadata.name = Some("Has Capitals".into());
            Reason::InvalidName
        }
        1 => {
            c.metadata.name = Some("n".repeat(41));
            Reason::InvalidName
        }
        2 => {
            spec.contact_email = "not an address".into();
            Reason::InvalidField
        }
        3 => {
            spec.display_name = String::new();
            Reason::InvalidField
        }
        4 => {
            spec.display_name = "x".repeat(101);
            Reason::InvalidField
        }
        5 => {
            spec.namespaces = vec![CustomerNamespace {
                name: Some("Bad_Suffix".into()),
                ..Default::default()
            }];
            Reason::InvalidField
        }
        6 => {
            spec.namespaces = vec![CustomerNamespace::default(), CustomerNamespace::default()];
            Reason::DuplicateNamespace
        }
        7 => {
            spec.namespaces = vec![CustomerNamespace {
                labels: [(LABEL_CUSTOMER.to_string(), "someone-else".to_string())].into(),
                ..Default::default()
            }];
            Reason::ReservedLabel
        }
        8 => {
            spec.namespaces = vec![CustomerNamespace {
                labels: [("team".to_string(), "not a value".to_string())].into(),
                ..Default::default()
            }];
            Reason::InvalidLabel
        }
        9 => {
            spec.access = Some(Access {
                admins: vec![Subject {
                    kind: SubjectKind::ServiceAccount,
                    name: "robot".into(),
                    namespace: None,
                }],
                ..Default::default()
            });
            Reason::InvalidSubject
        }
        10 => {
            spec.access = Some(Access {
                viewers: vec![user("")],
                ..Default::default()
            });
            Reason::InvalidSubject
        }
        11 => {
            spec.network.get_or_insert_with(Default::default).allow_from = vec![AllowFrom {
                customer: Some("a".into()),
                group: Some("g1".into()),
                ..Default::default()
            }];
            Reason::InvalidAllowFrom
        }
        12 => {
            spec.network.get_or_insert_with(Default::default).allow_from =
                vec![AllowFrom::default()];
            Reason::InvalidAllowFrom
        }
        13 => {
            spec.network.get_or_insert_with(Default::default).allow_from = vec![AllowFrom {
                customer: Some(name.to_string()),
                ..Default::default()
            }];
            Reason::InvalidAllowFrom
        }
        14 => {
            spec.network.get_or_insert_with(Default::default).allow_from = vec![AllowFrom {
                group: Some("g1".into()),
                ports: vec![PortSpec {
                    port: 443,
                    end_port: Some(80),
                    protocol: None,
                }],
                ..Default::default()
            }];
            Reason::InvalidAllowFrom
        }
        15 => {
            spec.quota = Some(QuotaSpec {
                hard: [("pods".to_string(), Quantity("lots".into()))].into(),
                ..Default::default()
            });
            Reason::InvalidQuantity
        }
        16 => {
            spec.group = Some("no-such-group".into());
            Reason::UnknownGroup
        }
        17 => {
            spec.parent = Some("no-such-parent".into());
            Reason::UnknownParent
        }
        18 => {
            // A cycle through another customer: it names this one as its parent.
            let other_name = format!("{}-loop", &name[..name.len().min(30)]);
            let mut other = (*dir.customers[name]).clone();
            other.metadata.name = Some(other_name.clone());
            other.spec.parent = Some(name.to_string());
            dir.customers.insert(other_name.clone(), Arc::new(other));
            spec.parent = Some(other_name);
            Reason::ParentCycle
        }
        19 => {
            c.metadata.name = Some("kube".into());
            spec.namespaces = vec![CustomerNamespace {
                name: Some("system".into()),
                ..Default::default()
            }];
            Reason::ReservedNamespace
        }
        20 => {
            c.metadata.name = Some("default".into());
            spec.namespaces = Vec::new();
            Reason::ReservedNamespace
        }
        21 => {
            spec.quota = Some(QuotaSpec {
                hard: [("pods".to_string(), Quantity("-5".into()))].into(),
                ..Default::default()
            });
            Reason::InvalidQuantity
        }
        22 => {
            spec.quota = Some(QuotaSpec {
                hard: [("gpus".to_string(), Quantity("2".into()))].into(),
                ..Default::default()
            });
            Reason::InvalidField
        }
        23 => {
            spec.partner = Some(PartnerRef {
                name: "Acme Integrations".into(),
                security_consultants: Vec::new(),
            });
            Reason::InvalidField
        }
        24 => {
            spec.access = Some(Access {
                editors: vec![Subject {
                    kind: SubjectKind::ServiceAccount,
                    name: "Deploy Bot".into(),
                    namespace: Some("tools".into()),
                }],
                ..Default::default()
            });
            Reason::InvalidSubject
        }
        25 => {
            // The group's managers become admins of every member.
            let mut g = (*dir.groups["g1"]).clone();
            g.spec.access = Some(Access {
                admins: vec![user("")],
                ..Default::default()
            });
            dir.groups.insert("g1".into(), Arc::new(g));
            spec.group = Some("g1".into());
            Reason::InvalidSubject
        }
        26 => {
            // A parent's admins become admins here.
            let parent_name = format!("{}-top", &name[..name.len().min(30)]);
            let mut parent = (*dir.customers[name]).clone();
            parent.metadata.name = Some(parent_name.clone());
            parent.spec.parent = None;
            parent.spec.access = Some(Access {
                admins: vec![Subject {
                    kind: SubjectKind::ServiceAccount,
                    name: "ci".into(),
                    namespace: None,
                }],
                ..Default::default()
            });
            dir.customers.insert(parent_name.clone(), Arc::new(parent));
            spec.parent = Some(parent_name);
            Reason::InvalidSubject
        }
        _ => {
            spec.limits = Some(vec![LimitItem {
                limit_type: LimitType::Container,
                default: BTreeMap::new(),
                default_request: BTreeMap::new(),
                max: [("cpu".to_string(), Quantity("1 core".into()))].into(),
                min: BTreeMap::new(),
                max_limit_request_ratio: BTreeMap::new(),
            }]);
            Reason::InvalidQuantity
        }
    };
    let key = c.name_any();
    dir.customers.insert(key, Arc::new(c.clone()));
    (c, reason)
}

/// Arbitrary text in every free field of a spec.
#[derive(Clone, Debug)]
struct Garbage {
    name: Option<String>,
    display: Option<String>,
    email: Option<String>,
    suffix: Option<String>,
    label: Option<(String, String)>,
    subject: Option<(u8, String, Option<String>)>,
    partner: Option<String>,
    group: Option<String>,
    parent: Option<String>,
    allow_customer: Option<String>,
    quota: Option<(String, String)>,
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        vec(any::<char>(), 0..80).prop_map(String::from_iter),
        vec(
            select(&['a', 'A', '-', '.', '_', '/', ' ', '@', '0', 'é'][..]),
            0..70
        )
        .prop_map(String::from_iter),
        (1..300usize).prop_map(|n| "a".repeat(n)),
    ]
}

fn garbage() -> impl Strategy<Value = Garbage> {
    let o = || proptest::option::of(text());
    (
        (o(), o(), o(), o()),
        proptest::option::of((text(), text())),
        proptest::option::of((0..3u8, text(), proptest::option::of(text()))),
        (o(), o(), o(), o()),
        proptest::option::of((text(), text())),
    )
        .prop_map(
            |(
                (name, display, email, suffix),
                label,
                subject,
                (partner, group, parent, allow_customer),
                quota,
            )| Garbage {
                name,
                display,
                email,
                suffix,
                label,
                subject,
                partner,
                group,
                parent,
                allow_customer,
                quota,
            },
        )
}

impl Garbage {
    fn apply(&self, c: &mut Customer) {
        if let Some(name) = &self.name {
            c.metadata.name = Some(name.clone());
        }
        let spec = &mut c.spec;
        if let Some(v) = &self.display {
            spec.display_name = v.clone();
        }
        if let Some(v) = &self.email {
            spec.contact_email = v.clone();
        }
        if let Some(v) = &self.suffix {
            spec.namespaces.push(CustomerNamespace {
                name: Some(v.clone()),
                ..Default::default()
            });
        }
        if let Some((k, v)) = &self.label {
            spec.namespaces.push(CustomerNamespace {
                name: Some("lbl".into()),
                labels: [(k.clone(), v.clone())].into(),
                annotations: [(k.clone(), v.clone())].into(),
            });
        }
        if let Some((kind, name, namespace)) = &self.subject {
            let kind = [
                SubjectKind::User,
                SubjectKind::Group,
                SubjectKind::ServiceAccount,
            ][*kind as usize];
            spec.access
                .get_or_insert_with(Default::default)
                .admins
                .push(Subject {
                    kind,
                    name: name.clone(),
                    namespace: namespace.clone(),
                });
        }
        if let Some(v) = &self.partner {
            spec.partner = Some(PartnerRef {
                name: v.clone(),
                security_consultants: Vec::new(),
            });
        }
        if let Some(v) = &self.group {
            spec.group = Some(v.clone());
        }
        if let Some(v) = &self.parent {
            spec.parent = Some(v.clone());
        }
        if let Some(v) = &self.allow_customer {
            spec.network
                .get_or_insert_with(Default::default)
                .allow_from
                .push(AllowFrom {
                    customer: Some(v.clone()),
                    ..Default::default()
                });
        }
        if let Some((k, v)) = &self.quota {
            spec.quota = Some(QuotaSpec {
                hard: [(k.clone(), Quantity(v.clone()))].into(),
                ..Default::default()
            });
        }
    }
}
