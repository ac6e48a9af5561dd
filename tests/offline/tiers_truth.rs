//! A truth table for the ClusterNetworkPolicy tiers in the evaluator, one row per rule
//! of the `policy.networking.k8s.io/v1alpha2` semantics (the API's types and docs):
//! tier order, priority order, rule order, Accept, Deny and Pass in each tier, Pass into
//! a NetworkPolicy that selects the pod or not, subjects, peers, ports and protocols,
//! both sides of a connection, host-network pods, a pod's traffic to itself, failing
//! closed, and whole customers as the operator writes their policies.

use std::collections::{BTreeMap, BTreeSet};

use customer_operator::api::{ClusterNetworkPolicy, Protocol};
use customer_operator::cidr::Cidr;
use customer_operator::isolation::{Decision, Direction, Labels, Network, Pod, PortSet, Probe};
use customer_operator::settings::Settings;
use customer_operator::verify::{self, World};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::ResourceExt;
use serde::Deserialize;

/// The namespaces every case lives in: two customers (shop with two namespaces, bank
/// with one), a platform namespace, kube-system and one more.
const NAMESPACES: &[(&str, &[(&str, &str)])] = &[
    (
        "shop-web",
        &[("customers.dev/customer", "shop"), ("env", "prod")],
    ),
    (
        "shop-db",
        &[("customers.dev/customer", "shop"), ("env", "prod")],
    ),
    (
        "bank-app",
        &[("customers.dev/customer", "bank"), ("env", "prod")],
    ),
    ("lab", &[("team", "c")]),
    ("ingress", &[("platform", "true")]),
    ("kube-system", &[]),
];

/// Pods get addresses from this range unless a case gives one.
const POD_RANGE: &str = "10.244.0.0/16";

struct Case {
    /// The rule this row checks.
    rule: &'static str,
    /// Policies, as YAML documents: ClusterNetworkPolicies, or NetworkPolicies when
    /// they say `kind: NetworkPolicy`.
    policies: &'static [&'static str],
    /// `namespace[/k=v,k=v][@address][!host]` (`!host`: on the node's network).
    from: &'static str,
    /// The same notation.
    to: &'static str,
    /// `TCP/443`.
    port: &'static str,
    allowed: bool,
}

const fn case(
    rule: &'static str,
    policies: &'static [&'static str],
    from: &'static str,
    to: &'static str,
    port: &'static str,
    allowed: bool,
) -> Case {
    Case {
        rule,
        policies,
        from,
        to,
        port,
        allowed,
    }
}

fn pod(text: &str) -> Pod {
    let (text, host_network) = match text.strip_suffix("!host") {
        Some(rest) => (rest, true),
        None => (text, false),
    };
    let (rest, ip) = match text.split_once('@') {
        Some((rest, ip)) => (rest, Some(ip.parse().unwrap())),
        None => (text, None),
    };
    let (namespace, labels) = rest.split_once('/').unwrap_or((rest, ""));
    assert!(
        NAMESPACES.iter().any(|(n, _)| *n == namespace),
        "no namespace {namespace:?}"
    );
    let labels: Labels = labels
        .split(',')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    Pod {
        namespace: namespace.to_string(),
        labels,
        ip,
        host_network,
    }
}

/// The policies of a case, by kind; `apiVersion` and `kind` are filled in.
fn policies(docs: &[&str]) -> (Vec<NetworkPolicy>, Vec<ClusterNetworkPolicy>) {
    let mut namespaced = Vec::new();
    let mut cluster = Vec::new();
    for doc in docs {
        let mut v = serde_yaml::Value::deserialize(serde_yaml::Deserializer::from_str(doc))
            .unwrap_or_else(|e| panic!("{e}: {doc}"));
        if v["kind"].as_str() == Some("NetworkPolicy") {
            v["apiVersion"] = "networking.k8s.io/v1".into();
            namespaced.push(serde_yaml::from_value(v).unwrap());
        } else {
            v["apiVersion"] = "policy.networking.k8s.io/v1alpha2".into();
            v["kind"] = "ClusterNetworkPolicy".into();
            cluster.push(serde_yaml::from_value(v).unwrap_or_else(|e| panic!("{e}: {doc}")));
        }
    }
    (namespaced, cluster)
}

fn namespaces() -> impl Iterator<Item = (String, Labels)> {
    NAMESPACES.iter().map(|(name, labels)| {
        let labels: Labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        (name.to_string(), labels)
    })
}

fn network(docs: &[&str]) -> Network {
    let (namespaced, cluster) = policies(docs);
    let ranges: Vec<Cidr> = vec![POD_RANGE.parse().unwrap()];
    Network::new(namespaces(), &namespaced, &ranges).with_cluster_policies(&cluster)
}

fn probe(from: &str, to: &str, port: &str) -> Probe {
    let (protocol, port) = port.split_once('/').unwrap();
    Probe {
        from: pod(from),
        to: pod(to),
        port: port.parse().unwrap(),
        protocol: match protocol {
            "TCP" => Protocol::Tcp,
            "UDP" => Protocol::Udp,
            _ => Protocol::Sctp,
        },
    }
}

const NONE: &[&str] = &[];

// Tier order.

const ADMIN_DENY_INTO_BANK: &str = "
metadata: {name: deny-into-bank}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {customers.dev/customer: bank}}}
  ingress: [{name: deny-all, action: Deny, from: [{namespaces: {}}]}]";

const ADMIN_ACCEPT_LAB_INTO_BANK: &str = "
metadata: {name: accept-lab}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {customers.dev/customer: bank}}}
  ingress: [{action: Accept, from: [{namespaces: {matchLabels: {team: c}}}]}]";

const ADMIN_PASS_INTO_BANK: &str = "
metadata: {name: pass-into-bank}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {customers.dev/customer: bank}}}
  ingress: [{action: Pass, from: [{namespaces: {}}]}]";

const NP_ALLOW_ALL_BANK: &str = "
kind: NetworkPolicy
metadata: {name: allow-all, namespace: bank-app}
spec: {podSelector: {}, policyTypes: [Ingress], ingress: [{}]}";

const NP_DENY_ALL_BANK: &str = "
kind: NetworkPolicy
metadata: {name: deny-all, namespace: bank-app}
spec: {podSelector: {}, policyTypes: [Ingress]}";

const NP_DENY_DB_BANK: &str = "
kind: NetworkPolicy
metadata: {name: deny-db, namespace: bank-app}
spec: {podSelector: {matchLabels: {app: db}}, policyTypes: [Ingress]}";

const NP_EGRESS_ONLY_BANK: &str = "
kind: NetworkPolicy
metadata: {name: egress-only, namespace: bank-app}
spec: {podSelector: {}, policyTypes: [Egress], egress: [{}]}";

const NP_FROM_LAB_BANK: &str = "
kind: NetworkPolicy
metadata: {name: from-lab, namespace: bank-app}
spec:
  podSelector: {}
  ingress: [{from: [{namespaceSelector: {matchLabels: {team: c}}}]}]";

const BASELINE_DENY_INTO_BANK: &str = "
metadata: {name: baseline-deny-bank}
spec:
  tier: Baseline
  priority: 10
  subject: {namespaces: {matchLabels: {customers.dev/customer: bank}}}
  ingress: [{action: Deny, from: [{namespaces: {}}]}]";

const BASELINE_ACCEPT_INTO_BANK: &str = "
metadata: {name: baseline-accept-bank}
spec:
  tier: Baseline
  priority: 10
  subject: {namespaces: {matchLabels: {customers.dev/customer: bank}}}
  ingress: [{action: Accept, from: [{namespaces: {}}]}]";

const BASELINE_PASS_THEN_DENY_BANK: &str = "
metadata: {name: baseline-pass-bank}
spec:
  tier: Baseline
  priority: 10
  subject: {namespaces: {matchLabels: {customers.dev/customer: bank}}}
  ingress:
    - {action: Pass, from: [{namespaces: {matchLabels: {team: c}}}]}
    - {action: Deny, from: [{namespaces: {}}]}";

// Priority order.

const DENY_AT_10: &str = "
metadata: {name: b-deny}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {customers.dev/customer: bank}}}
  ingress: [{action: Deny, from: [{namespaces: {}}]}]";

const ACCEPT_AT_20: &str = "
metadata: {name: a-accept}
spec:
  tier: Admin
  priority: 20
  subject: {namespaces: {matchLabels: {customers.dev/customer: bank}}}
  ingress: [{action: Accept, from: [{namespaces: {}}]}]";

const ACCEPT_AT_10: &str = "
metadata: {name: b-accept}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {customers.dev/customer: bank}}}
  ingress: [{action: Accept, from: [{namespaces: {}}]}]";

const DENY_AT_20: &str = "
metadata: {name: a-deny}
spec:
  tier: Admin
  priority: 20
  subject: {namespaces: {matchLabels: {customers.dev/customer: bank}}}
  ingress: [{action: Deny, from: [{namespaces: {}}]}]";

const A_ACCEPT_AT_50: &str = "
metadata: {name: a-accept-50}
spec:
  tier: Admin
  priority: 50
  subject: {namespaces: {matchLabels: {customers.dev/customer: bank}}}
  ingress: [{action: Accept, from: [{namespaces: {}}]}]";

const B_DENY_AT_50: &str = "
metadata: {name: b-deny-50}
spec:
  tier: Admin
  priority: 50
  subject: {namespaces: {matchLabels: {customers.dev/customer: bank}}}
  ingress: [{action: Deny, from: [{namespaces: {}}]}]";

const Z_DENY_AT_9: &str = "
metadata: {name: z-deny-9}
spec:
  tier: Admin
  priority: 9
  subject: {namespaces: {matchLabels: {customers.dev/customer: bank}}}
  ingress: [{action: Deny, from: [{namespaces: {}}]}]";

const PASS_AT_10_DENY_AT_20: &str = "
metadata: {name: pass-10}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {customers.dev/customer: bank}}}
  ingress: [{action: Pass, from: [{namespaces: {}}]}]";

const BASELINE_PASS_AT_10: &str = "
metadata: {name: baseline-pass-10}
spec:
  tier: Baseline
  priority: 10
  subject: {namespaces: {matchLabels: {customers.dev/customer: bank}}}
  ingress: [{action: Pass, from: [{namespaces: {}}]}]";

const BASELINE_DENY_AT_20: &str = "
metadata: {name: baseline-deny-20}
spec:
  tier: Baseline
  priority: 20
  subject: {namespaces: {matchLabels: {customers.dev/customer: bank}}}
  ingress: [{action: Deny, from: [{namespaces: {}}]}]";

// Rule order.

const ACCEPT_THEN_DENY: &str = "
metadata: {name: accept-then-deny}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {customers.dev/customer: bank}}}
  ingress:
    - {action: Accept, from: [{namespaces: {}}]}
    - {action: Deny, from: [{namespaces: {}}]}";

const DENY_THEN_ACCEPT: &str = "
metadata: {name: deny-then-accept}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {customers.dev/customer: bank}}}
  ingress:
    - {action: Deny, from: [{namespaces: {}}]}
    - {action: Accept, from: [{namespaces: {}}]}";

const DENY_TEAM_A_THEN_ACCEPT: &str = "
metadata: {name: deny-team-a}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {customers.dev/customer: bank}}}
  ingress:
    - {action: Deny, from: [{namespaces: {matchLabels: {team: a}}}]}
    - {action: Accept, from: [{namespaces: {}}]}
    - {action: Deny, from: [{namespaces: {}}]}";

const DENY_443_THEN_ACCEPT: &str = "
metadata: {name: deny-443}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {customers.dev/customer: bank}}}
  ingress:
    - {action: Deny, from: [{namespaces: {}}], protocols: [{tcp: {destinationPort: {number: 443}}}]}
    - {action: Accept, from: [{namespaces: {}}]}";

const PASS_THEN_DENY: &str = "
metadata: {name: pass-then-deny}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {customers.dev/customer: bank}}}
  ingress:
    - {action: Pass, from: [{namespaces: {matchLabels: {team: c}}}]}
    - {action: Deny, from: [{namespaces: {}}]}";

const ACCEPT_443_THEN_DENY: &str = "
metadata: {name: accept-443}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {customers.dev/customer: bank}}}
  ingress:
    - {action: Accept, from: [{namespaces: {}}], protocols: [{tcp: {destinationPort: {number: 443}}}]}
    - {action: Deny, from: [{namespaces: {}}]}";

// Subjects.

const DENY_INTO_DB_PODS: &str = "
metadata: {name: deny-into-db}
spec:
  tier: Admin
  priority: 10
  subject:
    pods:
      namespaceSelector: {matchLabels: {env: prod}}
      podSelector: {matchLabels: {app: db}}
  ingress: [{action: Deny, from: [{namespaces: {}}]}]";

const EGRESS_ONLY_DENY_BANK: &str = "
metadata: {name: egress-only}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {customers.dev/customer: bank}}}
  egress: [{action: Deny, to: [{namespaces: {}}]}]";

// Peers.

const DENY_FROM_TEAM_C: &str = "
metadata: {name: deny-team-c}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {customers.dev/customer: bank}}}
  ingress: [{action: Deny, from: [{namespaces: {matchLabels: {team: c}}}]}]";

const DENY_FROM_TEAM_C_CLIENTS: &str = "
metadata: {name: deny-team-c-clients}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {customers.dev/customer: bank}}}
  ingress:
    - action: Deny
      from:
        - pods:
            namespaceSelector: {matchLabels: {team: c}}
            podSelector: {matchLabels: {role: client}}";

const DENY_FROM_ALL_PODS: &str = "
metadata: {name: deny-all-pods}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {customers.dev/customer: bank}}}
  ingress: [{action: Deny, from: [{pods: {namespaceSelector: {}, podSelector: {}}}]}]";

const LAB_DENY_TO_SUBNET: &str = "
metadata: {name: lab-deny-subnet}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {team: c}}}
  egress: [{action: Deny, to: [{networks: [10.244.1.0/24]}]}]";

const LAB_DENY_TO_10_8: &str = "
metadata: {name: lab-deny-10-8}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {team: c}}}
  egress: [{action: Deny, to: [{networks: [10.0.0.0/8]}]}]";

const LAB_ACCEPT_SUBNET_THEN_DENY: &str = "
metadata: {name: lab-accept-subnet}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {team: c}}}
  egress:
    - {action: Accept, to: [{networks: [10.244.1.0/24]}]}
    - {action: Deny, to: [{namespaces: {}}]}";

const LAB_DENY_TO_NODE_NET: &str = "
metadata: {name: lab-deny-node-net}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {team: c}}}
  egress: [{action: Deny, to: [{networks: [192.168.5.0/24]}]}]";

const INGRESS_NETWORKS_DENY: &str = "
metadata: {name: ingress-networks}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {customers.dev/customer: bank}}}
  ingress: [{action: Deny, from: [{networks: [192.0.2.0/24]}]}]";

const LAB_DENY_TO_NODES: &str = "
metadata: {name: lab-deny-nodes}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {team: c}}}
  egress: [{action: Deny, to: [{nodes: {}}]}]";

const LAB_ACCEPT_DOMAINS_THEN_DENY: &str = "
metadata: {name: lab-domains}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {team: c}}}
  egress:
    - {action: Accept, to: [{domainNames: ['*.bank.example']}]}
    - {action: Deny, to: [{namespaces: {}}]}";

// Ports.

const DENY_RANGE: &str = "
metadata: {name: deny-range}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {customers.dev/customer: bank}}}
  ingress:
    - {action: Deny, from: [{namespaces: {}}], protocols: [{tcp: {destinationPort: {range: {start: 8000, end: 8080}}}}]}";

const DENY_ALL_UDP: &str = "
metadata: {name: deny-udp}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {customers.dev/customer: bank}}}
  ingress: [{action: Deny, from: [{namespaces: {}}], protocols: [{udp: {}}]}]";

const DENY_TCP_53: &str = "
metadata: {name: deny-tcp-53}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {customers.dev/customer: bank}}}
  ingress: [{action: Deny, from: [{namespaces: {}}], protocols: [{tcp: {destinationPort: {number: 53}}}]}]";

const DENY_SCTP_3868: &str = "
metadata: {name: deny-sctp}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {customers.dev/customer: bank}}}
  ingress: [{action: Deny, from: [{namespaces: {}}], protocols: [{sctp: {destinationPort: {number: 3868}}}]}]";

const ACCEPT_NAMED_THEN_DENY: &str = "
metadata: {name: accept-named}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {customers.dev/customer: bank}}}
  ingress:
    - {action: Accept, from: [{namespaces: {}}], protocols: [{destinationNamedPort: http}]}
    - {action: Deny, from: [{namespaces: {}}]}";

const DENY_NAMED: &str = "
metadata: {name: deny-named}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {customers.dev/customer: bank}}}
  ingress: [{action: Deny, from: [{namespaces: {}}], protocols: [{destinationNamedPort: http}]}]";

// Both sides.

const LAB_EGRESS_ACCEPT_ALL: &str = "
metadata: {name: lab-egress-accept}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {team: c}}}
  egress: [{action: Accept, to: [{namespaces: {}}]}]";

const LAB_EGRESS_DENY_BANK: &str = "
metadata: {name: lab-egress-deny-bank}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {team: c}}}
  egress: [{action: Deny, to: [{namespaces: {matchLabels: {customers.dev/customer: bank}}}]}]";

// Failing closed.

const ACCEPT_EMPTY_PEER_THEN_DENY: &str = "
metadata: {name: accept-empty-peer}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {customers.dev/customer: bank}}}
  ingress:
    - {action: Accept, from: [{}]}
    - {action: Deny, from: [{namespaces: {}}]}";

const DENY_EMPTY_PEER: &str = "
metadata: {name: deny-empty-peer}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {customers.dev/customer: bank}}}
  ingress: [{action: Deny, from: [{}]}]";

const PASS_EMPTY_PEER: &str = "
metadata: {name: pass-empty-peer}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {customers.dev/customer: bank}}}
  ingress:
    - {action: Pass, from: [{}]}
    - {action: Accept, from: [{namespaces: {}}]}";

const DENY_UNREADABLE_PROTOCOL: &str = "
metadata: {name: deny-unreadable-protocol}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {customers.dev/customer: bank}}}
  ingress: [{action: Deny, from: [{namespaces: {}}], protocols: [{}]}]";

// Whole customers, as the operator writes their policies (Standard isolation, the
// platform namespace `ingress`, internet egress on for shop; bank names its only
// namespace).

const SHOP_ADMIN: &str = "
metadata: {name: customer-admin.shop}
spec:
  tier: Admin
  priority: 100
  subject: {namespaces: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [shop-web, shop-db]}]}}
  ingress:
    - name: pass-own-namespaces
      action: Pass
      from: [{namespaces: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [shop-web, shop-db]}]}}]
    - name: accept-platform
      action: Accept
      from: [{namespaces: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [ingress]}]}}]
    - name: deny-other-namespaces
      action: Deny
      from: [{namespaces: {}}]
  egress:
    - name: pass-own-namespaces
      action: Pass
      to: [{namespaces: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [shop-web, shop-db]}]}}]
    - name: accept-dns
      action: Accept
      to: [{pods: {namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}, podSelector: {matchLabels: {k8s-app: kube-dns}}}}]
      protocols: [{udp: {destinationPort: {number: 53}}}, {tcp: {destinationPort: {number: 53}}}]
    - name: deny-other-namespaces
      action: Deny
      to: [{namespaces: {}}]
    - name: deny-private-networks
      action: Deny
      to: [{networks: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 169.254.0.0/16, 'fc00::/7']}]";

const SHOP_BASELINE: &str = "
metadata: {name: customer-baseline.shop}
spec:
  tier: Baseline
  priority: 100
  subject: {namespaces: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [shop-web, shop-db]}]}}
  ingress:
    - action: Accept
      from: [{namespaces: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [shop-web, shop-db]}]}}]
    - action: Deny
      from: [{namespaces: {}}]
  egress:
    - action: Accept
      to: [{namespaces: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [shop-web, shop-db]}]}}]
    - action: Accept
      to: [{networks: [0.0.0.0/0, '::/0']}]
    - action: Deny
      to: [{namespaces: {}}]
    - action: Deny
      to: [{networks: [0.0.0.0/0, '::/0']}]";

const BANK_ADMIN: &str = "
metadata: {name: customer-admin.bank}
spec:
  tier: Admin
  priority: 100
  subject: {namespaces: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [bank-app]}]}}
  ingress:
    - name: pass-own-namespaces
      action: Pass
      from: [{namespaces: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [bank-app]}]}}]
    - name: accept-platform
      action: Accept
      from: [{namespaces: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [ingress]}]}}]
    - name: accept-shop-web
      action: Accept
      from: [{namespaces: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [shop-web]}]}}]
      protocols: [{tcp: {destinationPort: {number: 443}}}]
    - name: deny-other-namespaces
      action: Deny
      from: [{namespaces: {}}]
  egress:
    - name: pass-own-namespaces
      action: Pass
      to: [{namespaces: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [bank-app]}]}}]
    - name: deny-other-namespaces
      action: Deny
      to: [{namespaces: {}}]";

const BANK_BASELINE: &str = "
metadata: {name: customer-baseline.bank}
spec:
  tier: Baseline
  priority: 100
  subject: {namespaces: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [bank-app]}]}}
  ingress:
    - action: Accept
      from: [{namespaces: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [bank-app]}]}}]
    - action: Deny
      from: [{namespaces: {}}]
  egress:
    - action: Accept
      to: [{namespaces: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [bank-app]}]}}]
    - action: Deny
      to: [{namespaces: {}}]
    - action: Deny
      to: [{networks: [0.0.0.0/0, '::/0']}]";

const CUSTOMERS: &[&str] = &[SHOP_ADMIN, SHOP_BASELINE, BANK_ADMIN, BANK_BASELINE];

const SHOP_ALLOW_ALL_NP: &str = "
kind: NetworkPolicy
metadata: {name: allow-everything, namespace: shop-web}
spec: {podSelector: {}, policyTypes: [Ingress, Egress], ingress: [{}], egress: [{}]}";

const SHOP_DENY_ALL_NP: &str = "
kind: NetworkPolicy
metadata: {name: deny-everything, namespace: shop-db}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}";

const WITH_ALLOW_ALL: &[&str] = &[
    SHOP_ADMIN,
    SHOP_BASELINE,
    BANK_ADMIN,
    BANK_BASELINE,
    SHOP_ALLOW_ALL_NP,
];

const WITH_DENY_ALL: &[&str] = &[
    SHOP_ADMIN,
    SHOP_BASELINE,
    BANK_ADMIN,
    BANK_BASELINE,
    SHOP_DENY_ALL_NP,
];

fn cases() -> Vec<Case> {
    vec![
        // Tier order: Admin, then NetworkPolicy, then Baseline, then the default.
        case(
            "no policy of any tier: the Kubernetes default allows",
            NONE,
            "lab",
            "bank-app",
            "TCP/80",
            true,
        ),
        case(
            "tier order: an Admin Deny wins over a NetworkPolicy that allows",
            &[ADMIN_DENY_INTO_BANK, NP_ALLOW_ALL_BANK],
            "lab",
            "bank-app",
            "TCP/80",
            false,
        ),
        case(
            "tier order: an Admin Accept wins over a NetworkPolicy that denies",
            &[ADMIN_ACCEPT_LAB_INTO_BANK, NP_DENY_ALL_BANK],
            "lab",
            "bank-app",
            "TCP/80",
            true,
        ),
        case(
            "tier order: a NetworkPolicy that allows wins over a Baseline Deny",
            &[NP_FROM_LAB_BANK, BASELINE_DENY_INTO_BANK],
            "lab",
            "bank-app",
            "TCP/80",
            true,
        ),
        case(
            "tier order: a NetworkPolicy that selects the pod and does not allow wins over a Baseline Accept",
            &[NP_DENY_ALL_BANK, BASELINE_ACCEPT_INTO_BANK],
            "lab",
            "bank-app",
            "TCP/80",
            false,
        ),
        case(
            "tier order: an Admin Deny wins over a Baseline Accept",
            &[ADMIN_DENY_INTO_BANK, BASELINE_ACCEPT_INTO_BANK],
            "lab",
            "bank-app",
            "TCP/80",
            false,
        ),
        case(
            "tier order: a Baseline Deny wins over the Kubernetes default",
            &[BASELINE_DENY_INTO_BANK],
            "lab",
            "bank-app",
            "TCP/80",
            false,
        ),
        case(
            "Baseline Accept allows",
            &[BASELINE_ACCEPT_INTO_BANK],
            "lab",
            "bank-app",
            "TCP/80",
            true,
        ),
        case(
            "a NetworkPolicy for egress only does not select the pod for ingress: Baseline decides",
            &[NP_EGRESS_ONLY_BANK, BASELINE_DENY_INTO_BANK],
            "lab",
            "bank-app",
            "TCP/80",
            false,
        ),
        // Priority order within a tier.
        case(
            "priority: a Deny at 10 goes before an Accept at 20",
            &[ACCEPT_AT_20, DENY_AT_10],
            "lab",
            "bank-app",
            "TCP/80",
            false,
        ),
        case(
            "priority: an Accept at 10 goes before a Deny at 20",
            &[DENY_AT_20, ACCEPT_AT_10],
            "lab",
            "bank-app",
            "TCP/80",
            true,
        ),
        case(
            "priority: 9 goes before 10 and 20 (numbers, not names)",
            &[ACCEPT_AT_10, Z_DENY_AT_9],
            "lab",
            "bank-app",
            "TCP/80",
            false,
        ),
        case(
            "equal priority (order undefined by the API): evaluated by name, a-accept before b-deny",
            &[B_DENY_AT_50, A_ACCEPT_AT_50],
            "lab",
            "bank-app",
            "TCP/80",
            true,
        ),
        // Rule order within a policy.
        case(
            "rule order: Accept then Deny, the first match decides",
            &[ACCEPT_THEN_DENY],
            "lab",
            "bank-app",
            "TCP/80",
            true,
        ),
        case(
            "rule order: Deny then Accept, the first match decides",
            &[DENY_THEN_ACCEPT],
            "lab",
            "bank-app",
            "TCP/80",
            false,
        ),
        case(
            "rule order: a rule whose peer does not match is skipped",
            &[DENY_TEAM_A_THEN_ACCEPT],
            "lab",
            "bank-app",
            "TCP/80",
            true,
        ),
        case(
            "rule order: a rule whose port does not match is skipped",
            &[DENY_443_THEN_ACCEPT],
            "lab",
            "bank-app",
            "TCP/80",
            true,
        ),
        case(
            "rule order: the same rule on its port decides first",
            &[DENY_443_THEN_ACCEPT],
            "lab",
            "bank-app",
            "TCP/443",
            false,
        ),
        case(
            "port by port: Accept TCP 443 then Deny everything denies TCP 80",
            &[ACCEPT_443_THEN_DENY],
            "lab",
            "bank-app",
            "TCP/80",
            false,
        ),
        // Pass.
        case(
            "Admin Pass skips the policy's later rules: no NetworkPolicy, no Baseline, the default allows",
            &[PASS_THEN_DENY],
            "lab",
            "bank-app",
            "TCP/80",
            true,
        ),
        case(
            "Admin Pass skips the rest of the Admin tier: a later Admin Deny does not apply",
            &[PASS_AT_10_DENY_AT_20, DENY_AT_20],
            "lab",
            "bank-app",
            "TCP/80",
            true,
        ),
        case(
            "Admin Pass to a NetworkPolicy that selects the pod and allows",
            &[
                ADMIN_PASS_INTO_BANK,
                NP_FROM_LAB_BANK,
                BASELINE_DENY_INTO_BANK,
            ],
            "lab",
            "bank-app",
            "TCP/80",
            true,
        ),
        case(
            "Admin Pass to a NetworkPolicy that selects the pod and does not allow this source",
            &[
                ADMIN_PASS_INTO_BANK,
                NP_FROM_LAB_BANK,
                BASELINE_ACCEPT_INTO_BANK,
            ],
            "shop-web",
            "bank-app",
            "TCP/80",
            false,
        ),
        case(
            "Admin Pass when no NetworkPolicy selects the pod: Baseline decides (Deny)",
            &[
                ADMIN_PASS_INTO_BANK,
                NP_DENY_DB_BANK,
                BASELINE_DENY_INTO_BANK,
            ],
            "lab",
            "bank-app/app=web",
            "TCP/80",
            false,
        ),
        case(
            "Admin Pass when no NetworkPolicy selects the pod: Baseline decides (Accept)",
            &[
                ADMIN_PASS_INTO_BANK,
                NP_DENY_DB_BANK,
                BASELINE_ACCEPT_INTO_BANK,
            ],
            "lab",
            "bank-app/app=web",
            "TCP/80",
            true,
        ),
        case(
            "Baseline Pass goes to the default: allowed despite the policy's later Deny",
            &[BASELINE_PASS_THEN_DENY_BANK],
            "lab",
            "bank-app",
            "TCP/80",
            true,
        ),
        case(
            "Baseline Pass skips the rest of the Baseline tier",
            &[BASELINE_PASS_AT_10, BASELINE_DENY_AT_20],
            "lab",
            "bank-app",
            "TCP/80",
            true,
        ),
        case(
            "Baseline: what its Pass rule does not match meets the later Deny",
            &[BASELINE_PASS_THEN_DENY_BANK],
            "shop-web",
            "bank-app",
            "TCP/80",
            false,
        ),
        // Subjects.
        case(
            "subject by namespaces: a pod of another namespace is no subject",
            &[ADMIN_DENY_INTO_BANK],
            "bank-app",
            "lab",
            "TCP/80",
            true,
        ),
        case(
            "subject by pods: namespace selector and pod selector both match",
            &[DENY_INTO_DB_PODS],
            "lab",
            "bank-app/app=db",
            "TCP/80",
            false,
        ),
        case(
            "subject by pods: another pod of the namespace is no subject",
            &[DENY_INTO_DB_PODS],
            "lab",
            "bank-app/app=web",
            "TCP/80",
            true,
        ),
        case(
            "subject by pods: the pod labels in a namespace the selector does not match",
            &[DENY_INTO_DB_PODS],
            "shop-web",
            "lab/app=db",
            "TCP/80",
            true,
        ),
        case(
            "a policy with egress rules only does not touch ingress",
            &[EGRESS_ONLY_DENY_BANK],
            "lab",
            "bank-app",
            "TCP/80",
            true,
        ),
        // Peers.
        case(
            "peer namespaces: a namespace the selector matches",
            &[DENY_FROM_TEAM_C],
            "lab",
            "bank-app",
            "TCP/80",
            false,
        ),
        case(
            "peer namespaces: a namespace the selector does not match",
            &[DENY_FROM_TEAM_C],
            "shop-web",
            "bank-app",
            "TCP/80",
            true,
        ),
        case(
            "peer pods: namespace selector AND pod selector match",
            &[DENY_FROM_TEAM_C_CLIENTS],
            "lab/role=client",
            "bank-app",
            "TCP/80",
            false,
        ),
        case(
            "peer pods: the pod selector alone is not enough",
            &[DENY_FROM_TEAM_C_CLIENTS],
            "shop-web/role=client",
            "bank-app",
            "TCP/80",
            true,
        ),
        case(
            "peer pods: the namespace selector alone is not enough",
            &[DENY_FROM_TEAM_C_CLIENTS],
            "lab/role=server",
            "bank-app",
            "TCP/80",
            true,
        ),
        case(
            "peer networks: a pod address in the block matches",
            &[LAB_DENY_TO_SUBNET],
            "lab",
            "bank-app@10.244.1.7",
            "TCP/80",
            false,
        ),
        case(
            "peer networks: a pod address outside the block does not",
            &[LAB_DENY_TO_SUBNET],
            "lab",
            "bank-app@10.244.2.7",
            "TCP/80",
            true,
        ),
        case(
            "peer networks without an address: a Deny of a block holding every pod range matches",
            &[LAB_DENY_TO_10_8],
            "lab",
            "bank-app",
            "TCP/80",
            false,
        ),
        case(
            "peer networks without an address: a Deny of part of the pod range may miss the pod (read: no match)",
            &[LAB_DENY_TO_SUBNET],
            "lab",
            "bank-app",
            "TCP/80",
            true,
        ),
        case(
            "peer networks without an address: an Accept of part of the pod range may hold the pod (read: match)",
            &[LAB_ACCEPT_SUBNET_THEN_DENY],
            "lab",
            "bank-app",
            "TCP/80",
            true,
        ),
        case(
            "ingress peers have no networks: a peer with only networks fails closed (Deny: everything)",
            &[INGRESS_NETWORKS_DENY],
            "lab",
            "bank-app",
            "TCP/80",
            false,
        ),
        case(
            "peer nodes matches no pod",
            &[LAB_DENY_TO_NODES],
            "lab",
            "bank-app",
            "TCP/80",
            true,
        ),
        case(
            "peer domainNames matches no pod: the later Deny decides",
            &[LAB_ACCEPT_DOMAINS_THEN_DENY],
            "lab",
            "bank-app",
            "TCP/80",
            false,
        ),
        // Ports and protocols.
        case(
            "port range: the start is in it",
            &[DENY_RANGE],
            "lab",
            "bank-app",
            "TCP/8000",
            false,
        ),
        case(
            "port range: the end is in it",
            &[DENY_RANGE],
            "lab",
            "bank-app",
            "TCP/8080",
            false,
        ),
        case(
            "port range: one past the end is not",
            &[DENY_RANGE],
            "lab",
            "bank-app",
            "TCP/8081",
            true,
        ),
        case(
            "port range: one before the start is not",
            &[DENY_RANGE],
            "lab",
            "bank-app",
            "TCP/7999",
            true,
        ),
        case(
            "a protocol without destinationPort: every port of it",
            &[DENY_ALL_UDP],
            "lab",
            "bank-app",
            "UDP/9999",
            false,
        ),
        case(
            "a protocol without destinationPort: not another protocol",
            &[DENY_ALL_UDP],
            "lab",
            "bank-app",
            "TCP/9999",
            true,
        ),
        case(
            "no protocols: every port of every protocol (SCTP too)",
            &[ADMIN_DENY_INTO_BANK],
            "lab",
            "bank-app",
            "SCTP/3868",
            false,
        ),
        case(
            "TCP 53 is not UDP 53",
            &[DENY_TCP_53],
            "lab",
            "bank-app",
            "UDP/53",
            true,
        ),
        case(
            "TCP 53 matches TCP 53",
            &[DENY_TCP_53],
            "lab",
            "bank-app",
            "TCP/53",
            false,
        ),
        case(
            "SCTP port matches SCTP",
            &[DENY_SCTP_3868],
            "lab",
            "bank-app",
            "SCTP/3868",
            false,
        ),
        case(
            "SCTP port is not TCP",
            &[DENY_SCTP_3868],
            "lab",
            "bank-app",
            "TCP/3868",
            true,
        ),
        case(
            "destinationNamedPort in an Accept: any port (finds more paths)",
            &[ACCEPT_NAMED_THEN_DENY],
            "lab",
            "bank-app",
            "TCP/5",
            true,
        ),
        case(
            "destinationNamedPort in a Deny: no port (finds more paths)",
            &[DENY_NAMED],
            "lab",
            "bank-app",
            "TCP/80",
            true,
        ),
        // Both sides of a connection.
        case(
            "egress Accept is the source's side: the destination's ingress Deny still denies",
            &[LAB_EGRESS_ACCEPT_ALL, ADMIN_DENY_INTO_BANK],
            "lab",
            "bank-app",
            "TCP/80",
            false,
        ),
        case(
            "egress Accept and a destination whose ingress nothing restricts: allowed",
            &[LAB_EGRESS_ACCEPT_ALL, NP_EGRESS_ONLY_BANK],
            "lab",
            "bank-app",
            "TCP/80",
            true,
        ),
        case(
            "egress Deny denies even when the destination's ingress accepts",
            &[LAB_EGRESS_DENY_BANK, ADMIN_ACCEPT_LAB_INTO_BANK],
            "lab",
            "bank-app",
            "TCP/80",
            false,
        ),
        // Host-network pods.
        case(
            "a host-network pod is never a subject",
            &[ADMIN_DENY_INTO_BANK],
            "lab",
            "bank-app!host",
            "TCP/80",
            true,
        ),
        case(
            "a host-network pod is not matched by a namespaces peer",
            &[ADMIN_DENY_INTO_BANK],
            "lab!host",
            "bank-app",
            "TCP/80",
            true,
        ),
        case(
            "a host-network pod is not matched by a pods peer",
            &[DENY_FROM_ALL_PODS],
            "lab!host",
            "bank-app",
            "TCP/80",
            true,
        ),
        case(
            "a host-network pod is matched by networks, by its (node's) address",
            &[LAB_DENY_TO_NODE_NET],
            "lab",
            "kube-system@192.168.5.10!host",
            "TCP/10250",
            false,
        ),
        case(
            "a host-network pod without address is not in the pod ranges: a Deny of them misses it",
            &[LAB_DENY_TO_10_8],
            "lab",
            "kube-system!host",
            "TCP/10250",
            true,
        ),
        // A pod's traffic to itself.
        case(
            "a pod's traffic to itself is allowed whatever the tiers say",
            &[ADMIN_DENY_INTO_BANK, EGRESS_ONLY_DENY_BANK],
            "bank-app/app=db@10.244.3.4",
            "bank-app/app=db@10.244.3.4",
            "TCP/80",
            true,
        ),
        case(
            "two pods with the same labels (no address: not one pod) are two pods",
            &[ADMIN_DENY_INTO_BANK],
            "bank-app/app=db",
            "bank-app/app=db",
            "TCP/80",
            false,
        ),
        // Failing closed.
        case(
            "fail closed: an empty peer in an Accept rule matches nothing",
            &[ACCEPT_EMPTY_PEER_THEN_DENY],
            "lab",
            "bank-app",
            "TCP/80",
            false,
        ),
        case(
            "fail closed: an empty peer in a Deny rule matches everything",
            &[DENY_EMPTY_PEER],
            "lab",
            "bank-app",
            "TCP/80",
            false,
        ),
        case(
            "fail closed: an empty peer in a Deny rule matches host-network pods too",
            &[DENY_EMPTY_PEER],
            "lab!host",
            "bank-app",
            "TCP/80",
            false,
        ),
        case(
            "fail closed: an empty peer in a Pass rule matches everything (the NetworkPolicy denies)",
            &[PASS_EMPTY_PEER, NP_DENY_ALL_BANK],
            "lab",
            "bank-app",
            "TCP/80",
            false,
        ),
        case(
            "fail closed: a protocol entry with no field in a Deny rule matches every port",
            &[DENY_UNREADABLE_PROTOCOL],
            "lab",
            "bank-app",
            "UDP/7",
            false,
        ),
        // Whole customers.
        case(
            "customers: own other namespace, Admin Pass then Baseline Accept",
            CUSTOMERS,
            "shop-web",
            "shop-db",
            "TCP/5432",
            true,
        ),
        case(
            "customers: another customer is denied by both Admin tiers",
            CUSTOMERS,
            "bank-app",
            "shop-web",
            "TCP/80",
            false,
        ),
        case(
            "customers: the platform namespace is accepted in",
            CUSTOMERS,
            "ingress",
            "shop-web",
            "TCP/8080",
            true,
        ),
        case(
            "customers: DNS in kube-system, UDP 53",
            CUSTOMERS,
            "shop-web",
            "kube-system/k8s-app=kube-dns",
            "UDP/53",
            true,
        ),
        case(
            "customers: kube-system on another port is denied",
            CUSTOMERS,
            "shop-web",
            "kube-system/k8s-app=kube-dns",
            "TCP/80",
            false,
        ),
        case(
            "customers: a declared connection (shop-web to bank TCP 443) is accepted by bank; shop's egress denies it today",
            CUSTOMERS,
            "shop-web",
            "bank-app",
            "TCP/443",
            false,
        ),
        case(
            "customers: an internet address (a host-network endpoint, no pod peer matches it) is allowed out by the Baseline",
            CUSTOMERS,
            "shop-web",
            "lab@203.0.113.9!host",
            "TCP/443",
            true,
        ),
        case(
            "customers: a private address outside the pods is denied by the Admin tier's networks rule",
            CUSTOMERS,
            "shop-web",
            "lab@172.16.0.9!host",
            "TCP/443",
            false,
        ),
        case(
            "customer writes an allow-all NetworkPolicy: another customer's pod is still denied in",
            WITH_ALLOW_ALL,
            "bank-app",
            "shop-web",
            "TCP/80",
            false,
        ),
        case(
            "customer writes an allow-all NetworkPolicy: it still cannot send to another customer",
            WITH_ALLOW_ALL,
            "shop-web",
            "bank-app",
            "TCP/80",
            false,
        ),
        case(
            "customer writes an allow-all NetworkPolicy: a non-customer namespace is still denied in",
            WITH_ALLOW_ALL,
            "lab",
            "shop-web",
            "TCP/80",
            false,
        ),
        case(
            "customer writes an allow-all NetworkPolicy: its own other namespace is allowed",
            WITH_ALLOW_ALL,
            "shop-db",
            "shop-web",
            "TCP/80",
            true,
        ),
        case(
            "customer writes a deny-all NetworkPolicy: its own other namespace is denied (the NetworkPolicy tier decides after the Admin Pass)",
            WITH_DENY_ALL,
            "shop-web",
            "shop-db",
            "TCP/5432",
            false,
        ),
        case(
            "customer writes a deny-all NetworkPolicy: the platform is still accepted (Admin Accept first)",
            WITH_DENY_ALL,
            "ingress",
            "shop-db",
            "TCP/5432",
            true,
        ),
    ]
}

#[test]
fn truth_table() {
    let cases = cases();
    assert!(cases.len() >= 45, "{} cases", cases.len());
    let mut failures = Vec::new();
    let mut rules = BTreeSet::new();
    for c in &cases {
        assert!(rules.insert(c.rule), "rule named twice: {}", c.rule);
        let verdict = network(c.policies).check(&probe(c.from, c.to, c.port));
        if verdict.allowed() != c.allowed {
            failures.push(format!(
                "{}: {} -> {} {}: expected {}, got {verdict}",
                c.rule,
                c.from,
                c.to,
                c.port,
                if c.allowed { "allowed" } else { "denied" }
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    println!("{} cases", cases.len());
}

#[test]
fn verdict_names_the_policy_tier_rule_and_peer() {
    let net = network(CUSTOMERS);
    let verdict = net.check(&probe("bank-app", "shop-web", "TCP/80"));
    assert_eq!(
        verdict.ingress.to_string(),
        "denied by ClusterNetworkPolicy customer-admin.shop (Admin, priority 100) ingress rule 3 \"deny-other-namespaces\" (peer namespaces {}; all ports)"
    );
    let Decision::DeniedBy(grant) = &verdict.egress else {
        panic!("{verdict}");
    };
    assert_eq!(
        grant.policy.to_string(),
        "ClusterNetworkPolicy customer-admin.bank (Admin, priority 100)"
    );
    assert_eq!(
        (grant.rule, grant.name.as_deref()),
        (1, Some("deny-other-namespaces"))
    );

    // Passed on by the Admin tier, accepted by the Baseline.
    let verdict = net.check(&probe("shop-web", "shop-db", "TCP/5432"));
    assert!(verdict.allowed(), "{verdict}");
    let Decision::Allowed(grant) = &verdict.ingress else {
        panic!("{verdict}");
    };
    assert_eq!(
        grant.to_string(),
        "ClusterNetworkPolicy customer-baseline.shop (Baseline, priority 100) ingress rule 1 (peer namespaces {kubernetes.io/metadata.name In (shop-web, shop-db)}; all ports)"
    );

    // The NetworkPolicy tier after an Admin Pass names the NetworkPolicy.
    let net = network(WITH_DENY_ALL);
    let verdict = net.check(&probe("shop-web", "shop-db", "TCP/5432"));
    assert_eq!(
        verdict.ingress.to_string(),
        "denied: no rule of shop-db/deny-everything allows it"
    );

    // Passed on to the default.
    let net = network(&[BASELINE_PASS_THEN_DENY_BANK]);
    let verdict = net.check(&probe("lab", "bank-app", "TCP/80"));
    assert_eq!(
        verdict.to_string(),
        "allowed (egress: no policy selects the pod; ingress: passed on by ClusterNetworkPolicy baseline-pass-bank (Baseline, priority 10) ingress rule 1 (peer namespaces {team=c}; all ports), and no later tier decides it: the Kubernetes default allows it)"
    );

    let verdict = net.check(&probe(
        "bank-app/app=db@10.244.3.4",
        "bank-app/app=db@10.244.3.4",
        "TCP/80",
    ));
    assert_eq!(verdict.ingress, Decision::Itself);
}

#[test]
fn sides_split_ports_by_what_decides_them() {
    let net = network(&[ACCEPT_443_THEN_DENY]);
    let side = net.side(Direction::Ingress, &pod("bank-app"), &pod("lab"));
    assert_eq!(side.ports(), PortSet::single(Protocol::Tcp, 443));
    assert_eq!(side.steps.len(), 2);
    assert_eq!(
        side.steps[1].ports.to_string(),
        "TCP 1-442, TCP 444-65535, all UDP, all SCTP"
    );
    let grants: Vec<String> = side
        .grants_within(&PortSet::all())
        .map(|g| g.to_string())
        .collect();
    assert_eq!(
        grants,
        [
            "ClusterNetworkPolicy accept-443 (Admin, priority 10) ingress rule 1 (peer namespaces {}; TCP 443)"
        ]
    );
    // The range ends are in it, one outside on each side is not.
    let net = network(&[DENY_RANGE]);
    let side = net.side(Direction::Ingress, &pod("bank-app"), &pod("lab"));
    assert_eq!(
        PortSet::all().minus(&side.ports()).to_string(),
        "TCP 8000-8080"
    );
}

/// The namespaces of [`NAMESPACES`], for a world.
fn namespace_objects() -> Vec<Namespace> {
    namespaces()
        .map(|(name, labels)| {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": name, "labels": labels}
            }))
            .unwrap()
        })
        .collect()
}

fn world(docs: &[&str]) -> World {
    let (namespaced, cluster) = policies(docs);
    World {
        namespaces: namespace_objects(),
        policies: namespaced,
        cluster_policies: cluster,
        ..Default::default()
    }
}

/// An Admin policy of another owner that opens shop to everyone, above the customer's.
const OPEN_SHOP: &str = "
metadata: {name: open-shop}
spec:
  tier: Admin
  priority: 5
  subject: {namespaces: {matchLabels: {customers.dev/customer: shop}}}
  ingress: [{name: everyone, action: Accept, from: [{namespaces: {}}]}]";

#[test]
fn the_matrix_sees_the_tiers() {
    let settings = Settings::default();
    // The operator's policies: nothing crosses between the customers but what bank
    // accepts from shop-web (its egress denies it today).
    let report = verify::verify(&world(CUSTOMERS), &settings).unwrap();
    let undeclared: Vec<String> = report
        .undeclared
        .iter()
        .map(|f| format!("{} -> {} on {}", f.from, f.to, f.ports))
        .collect();
    assert_eq!(undeclared, ["shop -> bank on TCP 443"], "{report:#?}");
    let finding = &report.undeclared[0];
    assert!(finding.reachable.is_empty(), "{finding:?}");
    assert_eq!(
        finding.admitted_by,
        [
            "ClusterNetworkPolicy customer-admin.bank (Admin, priority 100) ingress rule 3 \"accept-shop-web\" (peer namespaces {kubernetes.io/metadata.name In (shop-web)}; TCP 443)"
        ]
    );
    assert!(
        finding.egress.starts_with(
            "denied today: denied by ClusterNetworkPolicy customer-admin.shop (Admin, priority 100) egress rule 3"
        ),
        "{}",
        finding.egress
    );

    // A customer's allow-all NetworkPolicy opens nothing to the other customer.
    let report = verify::verify(&world(WITH_ALLOW_ALL), &settings).unwrap();
    assert!(
        report.undeclared.iter().all(|f| f.to == "bank"),
        "{report:#?}"
    );

    // An Admin Accept of someone else's above the customer's opens shop to bank, and
    // the report names it; bank's own egress still holds.
    let mut docs = CUSTOMERS.to_vec();
    docs.push(OPEN_SHOP);
    let report = verify::verify(&world(&docs), &settings).unwrap();
    let into_shop: Vec<_> = report
        .undeclared
        .iter()
        .filter(|f| f.to == "shop")
        .collect();
    assert!(!into_shop.is_empty(), "{report:#?}");
    for f in &into_shop {
        assert_eq!(f.from, "bank");
        assert_eq!(f.ports.to_string(), "all ports");
        assert_eq!(
            f.admitted_by,
            [
                "ClusterNetworkPolicy open-shop (Admin, priority 5) ingress rule 1 \"everyone\" (peer namespaces {}; all ports)"
            ]
        );
        assert!(f.reachable.is_empty(), "{f:?}");
    }

    // Without any policy the default allows, and the report says so in those words.
    let report = verify::verify(&world(NONE), &settings).unwrap();
    assert!(
        report.undeclared.iter().all(|f| f.admitted_by
            == ["no policy of any tier selects the pod for ingress: the Kubernetes default allows it"]
            && f.egress == "not restricted: no policy of any tier selects the source pod for egress"),
        "{report:#?}"
    );
}

/// The matrix's shortcut (which namespaces a pod's ingress may admit) against every
/// pair of pod classes, with policies of every tier.
#[test]
fn the_matrix_equals_brute_force_with_tiers() {
    let settings = Settings::default();
    let more = "
metadata: {name: lab-and-clients}
spec:
  tier: Baseline
  priority: 1
  subject: {pods: {namespaceSelector: {matchLabels: {customers.dev/customer: bank}}, podSelector: {matchLabels: {app: db}}}}
  ingress:
    - {action: Accept, from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {role: client}}}}], protocols: [{tcp: {destinationPort: {range: {start: 8000, end: 8100}}}}]}";
    let partial_pass = "
metadata: {name: pass-clients}
spec:
  tier: Admin
  priority: 1
  subject: {namespaces: {matchLabels: {customers.dev/customer: bank}}}
  ingress:
    - {action: Pass, from: [{pods: {namespaceSelector: {matchLabels: {customers.dev/customer: shop}}, podSelector: {matchLabels: {role: client}}}}]}";
    let shop_np = "
kind: NetworkPolicy
metadata: {name: from-bank, namespace: shop-db}
spec:
  podSelector: {matchLabels: {app: api}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {customers.dev/customer: bank}}}]}]";
    let docs: Vec<&str> = [CUSTOMERS, &[OPEN_SHOP, more, partial_pass, shop_np]].concat();
    let w = world(&docs);
    let model = verify::model(&w, &settings).unwrap();
    let analysis = customer_operator::isolation::analyse(
        &model.network,
        &model.tenancy,
        &model.declared,
        None,
    );
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
    let mut brute: BTreeMap<(String, String), (PortSet, PortSet)> = BTreeMap::new();
    let names: Vec<String> = w.namespaces.iter().map(|n| n.name_any()).collect();
    for dest_ns in &names {
        for source_ns in &names {
            let (Some(to), Some(from)) = (
                model.tenancy.customer_of(dest_ns),
                model.tenancy.customer_of(source_ns),
            ) else {
                continue;
            };
            if to == from {
                continue;
            }
            for dest_labels in model.network.pod_classes(dest_ns) {
                for source_labels in model.network.pod_classes(source_ns) {
                    let dest = Pod {
                        namespace: dest_ns.clone(),
                        labels: dest_labels.clone(),
                        ..Default::default()
                    };
                    let source = Pod {
                        namespace: source_ns.clone(),
                        labels: source_labels.clone(),
                        ..Default::default()
                    };
                    let admitted = model
                        .network
                        .side(Direction::Ingress, &dest, &source)
                        .ports();
                    if admitted.is_empty() {
                        continue;
                    }
                    let reachable = admitted.intersect(
                        &model
                            .network
                            .side(Direction::Egress, &source, &dest)
                            .ports(),
                    );
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
    assert_eq!(from_matrix.len(), 2, "{from_matrix:#?}");
    // The pod classes hold the witnesses of the ClusterNetworkPolicies' pod selectors.
    let classes: Vec<String> = model
        .network
        .pod_classes("bank-app")
        .iter()
        .map(|l| format!("{l:?}"))
        .collect();
    assert!(
        classes.iter().any(|c| c.contains("\"app\": \"db\"")),
        "{classes:?}"
    );
    assert!(
        model
            .network
            .pod_classes("shop-web")
            .iter()
            .any(|l| l.get("role").map(String::as_str) == Some("client")),
        "{classes:?}"
    );
}

/// `verify -f` on files that hold ClusterNetworkPolicies, offline.
#[test]
fn verify_reads_cluster_policies_from_files() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_customer-operator"))
        .args([
            "verify",
            "-f",
            "examples/",
            "-f",
            "tests/fixtures/verify/cluster-policies.yaml",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("KUBECONFIG")
        .output()
        .expect("binary runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}{err}");
    assert!(
        text.contains("admitted by ClusterNetworkPolicy open-nova-bakery (Admin, priority 5) ingress rule 1 \"everyone\" (peer namespaces {}; all ports)"),
        "{text}"
    );
    // The Baseline policy in the same file denies nothing the NetworkPolicies decide.
    assert!(!text.contains("baseline-quiet"), "{text}");
}
