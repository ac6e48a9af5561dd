//! The isolation check offline: every setup in `examples/` is isolated exactly as its
//! Customers declare, foreign policies are found and named, and the matrix's pruned
//! search finds what probing every pair would.

use std::collections::BTreeSet;
use std::path::PathBuf;

use customer_operator::isolation::{Direction, Pod, PortSet, analyse};
use customer_operator::render;
use customer_operator::settings::Settings;
use customer_operator::verify::{self, World};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::ResourceExt;

fn world(paths: &[&str]) -> World {
    let paths: Vec<PathBuf> = paths
        .iter()
        .map(|p| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(p))
        .collect();
    let inputs = render::read_inputs(&paths).unwrap();
    verify::world_from_inputs(&inputs, &Settings::default()).unwrap()
}

fn policy(yaml: &str) -> NetworkPolicy {
    serde_yaml::from_str(yaml).unwrap()
}

#[test]
fn every_example_is_isolated_exactly_as_declared() {
    let mut setups: Vec<String> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/examples"))
            .unwrap()
            .map(|e| format!("examples/{}", e.unwrap().file_name().to_string_lossy()))
            .collect();
    setups.sort();
    setups.push("examples/".into());
    for setup in &setups {
        let report = verify::verify(&world(&[setup]), &Settings::default()).unwrap();
        assert!(report.isolated(), "{setup}: {:#?}", report.undeclared);
        for connection in &report.declared {
            // Declared peers missing from a single file open nothing, which is right.
            let present = |name: &str| report.customers.iter().any(|c| c.name == name);
            if present(&connection.from) && present(&connection.to) {
                assert_eq!(
                    connection.open, connection.declared,
                    "{setup}: {} -> {} declared but not open as declared",
                    connection.from, connection.to
                );
            }
        }
        for link in &report.links {
            assert!(
                link.reachable.minus(&link.declared).is_empty(),
                "{setup}: {link:?}"
            );
        }
    }
    let all = verify::verify(&world(&["examples/"]), &Settings::default()).unwrap();
    let declared: BTreeSet<(String, String, String)> = all
        .declared
        .iter()
        .map(|c| (c.from.clone(), c.to.clone(), c.open.to_string()))
        .collect();
    let expected: BTreeSet<(String, String, String)> = [
        ("astral-voyage", "orbital-freight", "all ports"),
        ("comet-coffee", "meteor-mail", "TCP 443"),
        ("galactic-holdings", "astral-voyage", "TCP 443"),
        ("orbital-freight", "astral-voyage", "all ports"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(declared, expected);
    // Nothing else is reachable between customers: every link is one of those.
    let linked: BTreeSet<(String, String)> = all
        .links
        .iter()
        .filter(|l| !l.reachable.is_empty())
        .map(|l| (l.from.clone(), l.to.clone()))
        .collect();
    let expected: BTreeSet<(String, String)> =
        expected.into_iter().map(|(a, b, _)| (a, b)).collect();
    assert_eq!(linked, expected);
    assert_eq!(all.zones.len(), 1);
    assert_eq!(all.zones[0].members, ["astral-voyage", "orbital-freight"]);
}

#[test]
fn a_foreign_broad_policy_is_an_undeclared_path_naming_it() {
    let report = verify::verify(
        &world(&["examples/", "tests/fixtures/verify/broad-allow.yaml"]),
        &Settings::default(),
    )
    .unwrap();
    assert!(!report.isolated());
    let into: BTreeSet<&str> = report.undeclared.iter().map(|f| f.to.as_str()).collect();
    assert_eq!(into, BTreeSet::from(["nova-bakery"]));
    let from: BTreeSet<&str> = report.undeclared.iter().map(|f| f.from.as_str()).collect();
    assert_eq!(from.len(), 8, "{from:?}");
    for finding in &report.undeclared {
        assert_eq!(finding.ports.to_string(), "all ports");
        assert!(
            finding.admitted_by[0].starts_with("nova-bakery/allow-everything ingress rule 1"),
            "{finding:?}"
        );
        // Every other customer's own egress still holds today.
        assert!(finding.reachable.is_empty(), "{finding:?}");
        assert!(finding.egress.starts_with("denied today"), "{finding:?}");
    }
}

#[test]
fn an_opened_egress_makes_the_path_reachable_now() {
    let mut w = world(&["examples/", "tests/fixtures/verify/broad-allow.yaml"]);
    w.policies.push(policy(
        "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress-anywhere, namespace: quiet-vault-batch}
spec:
  podSelector: {matchLabels: {app: exporter}}
  policyTypes: [Egress]
  egress: [{}]",
    ));
    let report = verify::verify(&w, &Settings::default()).unwrap();
    let reachable: Vec<_> = report
        .undeclared
        .iter()
        .filter(|f| !f.reachable.is_empty())
        .collect();
    assert_eq!(reachable.len(), 1, "{reachable:#?}");
    let f = reachable[0];
    assert_eq!(
        (f.source.namespace.as_str(), f.source.pod.as_str()),
        ("quiet-vault-batch", "app=exporter")
    );
    assert!(
        f.egress.contains("quiet-vault-batch/egress-anywhere"),
        "{}",
        f.egress
    );
    let table = verify::table(&report);
    assert!(table.contains("reachable now on all ports"), "{table}");
}

#[test]
fn allow_from_by_namespace_labels_does_not_declare_customers() {
    // A label-based allowFrom is for shared services; a customer namespace that carries
    // the label gets in, and that is reported.
    let mut w = world(&["examples/", "tests/fixtures/connection.yaml"]);
    for ns in w
        .namespaces
        .iter_mut()
        .filter(|n| n.name_any() == "bystander")
    {
        ns.labels_mut()
            .insert("team".into(), "observability".into());
    }
    let report = verify::verify(&w, &Settings::default()).unwrap();
    assert_eq!(report.undeclared.len(), 2, "{:#?}", report.undeclared);
    for f in &report.undeclared {
        assert_eq!((f.from.as_str(), f.to.as_str()), ("bystander", "shop"));
        assert_eq!(f.ports.to_string(), "TCP 9090");
        assert!(f.admitted_by[0].contains("customer-allow-from"), "{f:?}");
    }
}

#[test]
fn declared_ports_bound_what_is_declared() {
    // astral-voyage declares TCP 443 from galactic-holdings; a foreign policy opening
    // every port to it leaves the rest undeclared.
    let mut w = world(&["examples/"]);
    w.policies.push(policy(
        "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: holdings-all-ports, namespace: astral-voyage-prod}
spec:
  podSelector: {}
  ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: galactic-holdings}}}]}]",
    ));
    let report = verify::verify(&w, &Settings::default()).unwrap();
    assert_eq!(report.undeclared.len(), 1, "{:#?}", report.undeclared);
    let f = &report.undeclared[0];
    assert_eq!(
        f.ports.to_string(),
        "TCP 1-442, TCP 444-65535, all UDP, all SCTP"
    );
    assert!(
        f.reachable.is_empty(),
        "galactic-holdings' egress opens 443 only"
    );
}

#[test]
fn off_customers_are_open_as_declared() {
    let w = world(&["tests/fixtures/isolation.yaml"]);
    let report = verify::verify(&w, &Settings::default()).unwrap();
    assert!(report.isolated(), "{:#?}", report.undeclared);
    let into_off: Vec<_> = report.links.iter().filter(|l| l.to == "off-co").collect();
    assert_eq!(into_off.len(), 3);
    assert!(
        into_off
            .iter()
            .all(|l| l.reachable.is_empty() && l.admitted.is_all())
    );
}

/// The matrix only probes the sources a destination's policies may admit; probing every
/// pair of pods must find the same links.
#[test]
fn pruned_search_finds_what_probing_every_pair_finds() {
    let mut w = world(&[
        "examples/",
        "tests/fixtures/connection.yaml",
        "tests/fixtures/isolation.yaml",
    ]);
    for yaml in [
        "{metadata: {name: p1, namespace: nova-bakery}, spec: {podSelector: {matchLabels: {app: api}}, ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: customers.dev/group, operator: In, values: [space-industry]}]}, podSelector: {matchLabels: {role: client}}}]}]}}",
        "{metadata: {name: p2, namespace: quiet-vault}, spec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}}], ports: [{port: 8080}]}]}}",
        "{metadata: {name: p3, namespace: shop-web}, spec: {podSelector: {}, ingress: [{from: [{podSelector: {}, namespaceSelector: {matchExpressions: [{key: customers.dev/customer, operator: NotIn, values: [payments]}]}}]}]}}",
        "{metadata: {name: p4, namespace: payments}, spec: {podSelector: {matchLabels: {role: client}}, egress: [{}]}}",
        "{metadata: {name: p5, namespace: galactic-labs-research}, spec: {podSelector: {}, ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: cost-center, operator: Exists}]}}]}]}}",
    ] {
        let mut value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
        value["apiVersion"] = "networking.k8s.io/v1".into();
        value["kind"] = "NetworkPolicy".into();
        w.policies.push(serde_yaml::from_value(value).unwrap());
    }
    let settings = Settings::default();
    let verify::Model {
        network,
        tenancy,
        declared,
        ..
    } = verify::model(&w, &settings).unwrap();
    let analysis = analyse(&network, &tenancy, &declared, None);
    let from_matrix: BTreeSet<(String, String, String, String)> = analysis
        .links
        .iter()
        .map(|l| {
            (
                l.from.clone(),
                l.to.clone(),
                l.admitted.to_string(),
                l.reachable.to_string(),
            )
        })
        .collect();

    let mut brute = std::collections::BTreeMap::new();
    let names: Vec<String> = w.namespaces.iter().map(|n| n.name_any()).collect();
    for dest_ns in &names {
        for source_ns in &names {
            let (Some(to), Some(from)) =
                (tenancy.customer_of(dest_ns), tenancy.customer_of(source_ns))
            else {
                continue;
            };
            if to == from {
                continue;
            }
            for dest_labels in network.pod_classes(dest_ns) {
                for source_labels in network.pod_classes(source_ns) {
                    let dest = Pod {
                        namespace: dest_ns.clone(),
                        labels: dest_labels.clone(),
                        ip: None,
                        host_network: false,
                    };
                    let source = Pod {
                        namespace: source_ns.clone(),
                        labels: source_labels.clone(),
                        ip: None,
                        host_network: false,
                    };
                    let admitted = network.side(Direction::Ingress, &dest, &source).ports();
                    if admitted.is_empty() {
                        continue;
                    }
                    let reachable = admitted
                        .intersect(&network.side(Direction::Egress, &source, &dest).ports());
                    let entry = brute
                        .entry((from.to_string(), to.to_string()))
                        .or_insert((PortSet::none(), PortSet::none()));
                    entry.0.union_with(&admitted);
                    entry.1.union_with(&reachable);
                }
            }
        }
    }
    let from_brute: BTreeSet<(String, String, String, String)> = brute
        .into_iter()
        .map(|((from, to), (admitted, reachable))| {
            (from, to, admitted.to_string(), reachable.to_string())
        })
        .collect();
    assert_eq!(from_matrix, from_brute);
    assert!(from_matrix.len() > 10, "{from_matrix:#?}");
}

fn cluster_policy_settings() -> Settings {
    Settings {
        isolation_backend: customer_operator::settings::IsolationBackend::ClusterNetworkPolicy,
        ..Settings::default()
    }
}

/// What a report says about every ordered pair of customers: admitted and reachable
/// ports, and the declared connections as open.
fn matrix(report: &verify::Report) -> Vec<String> {
    let mut out: Vec<String> = report
        .links
        .iter()
        .map(|l| {
            format!(
                "{} -> {}: admitted {}, reachable {}",
                l.from, l.to, l.admitted, l.reachable
            )
        })
        .collect();
    out.extend(
        report
            .declared
            .iter()
            .map(|c| format!("declared {} -> {}: open {}", c.from, c.to, c.open)),
    );
    out
}

#[test]
fn both_backends_give_the_same_customer_matrix_on_the_examples() {
    let settings = cluster_policy_settings();
    let paths: Vec<PathBuf> = ["examples/"]
        .iter()
        .map(|p| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(p))
        .collect();
    let inputs = render::read_inputs(&paths).unwrap();
    let tiers = verify::world_from_inputs(&inputs, &settings).unwrap();
    assert!(
        tiers.policies.is_empty(),
        "no NetworkPolicy under the ClusterNetworkPolicy backend"
    );
    assert!(!tiers.cluster_policies.is_empty());
    let by_tiers = verify::verify(&tiers, &settings).unwrap();
    assert!(by_tiers.isolated(), "{:#?}", by_tiers.undeclared);
    let by_policies = verify::verify(&world(&["examples/"]), &Settings::default()).unwrap();
    assert_eq!(matrix(&by_tiers), matrix(&by_policies));
}

#[test]
fn a_customers_own_allow_all_policy_opens_nothing_under_the_admin_tier_only() {
    let allow_all = policy(
        "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: open-everything, namespace: nova-bakery}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
  ingress: [{}]
  egress: [{}]
",
    );
    let settings = cluster_policy_settings();
    let paths = [PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/")];
    let inputs = render::read_inputs(&paths).unwrap();
    let mut tiers = verify::world_from_inputs(&inputs, &settings).unwrap();
    tiers.policies.push(allow_all.clone());
    let report = verify::verify(&tiers, &settings).unwrap();
    assert!(report.isolated(), "{:#?}", report.undeclared);
    // The same policy under the NetworkPolicy backend opens the customer to everyone.
    let mut plain = world(&["examples/"]);
    plain.policies.push(allow_all);
    let report = verify::verify(&plain, &Settings::default()).unwrap();
    assert!(
        report.undeclared.iter().any(|f| f.to == "nova-bakery"),
        "{:#?}",
        report.undeclared
    );
}
