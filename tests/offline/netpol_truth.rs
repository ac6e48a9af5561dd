//! A truth table for the NetworkPolicy evaluator, one row per rule of the
//! `networking.k8s.io/v1` semantics as the Kubernetes documentation states them:
//! isolation by selection, policyTypes and its default, empty versus absent lists and
//! selectors, AND within a peer and OR across peers, label expressions, ports and
//! protocols, the union of policies, both sides of a connection, and ipBlocks.

use customer_operator::api::Protocol;
use customer_operator::cidr::Cidr;
use customer_operator::isolation::{Decision, Labels, Network, Pod, Probe};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde::Deserialize;

/// The namespaces every case lives in.
const NAMESPACES: &[(&str, &[(&str, &str)])] = &[
    ("shop", &[("team", "a"), ("env", "prod")]),
    ("bank", &[("team", "b"), ("env", "prod")]),
    ("lab", &[("team", "c")]),
    ("bare", &[]),
];

/// Pods get addresses from this range unless a case says otherwise.
const POD_RANGE: &str = "10.244.0.0/16";

struct Case {
    /// The rule this row checks.
    rule: &'static str,
    /// NetworkPolicies, as YAML documents.
    policies: &'static str,
    /// `namespace[/k=v,k=v][@address]`.
    from: &'static str,
    /// `namespace[/k=v,k=v][@address]`.
    to: &'static str,
    /// `TCP/443`.
    port: &'static str,
    /// Where pods may have addresses; `None` is [`POD_RANGE`].
    pod_ranges: Option<&'static [&'static str]>,
    allowed: bool,
}

const fn case(
    rule: &'static str,
    policies: &'static str,
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
        pod_ranges: None,
        allowed,
    }
}

const fn with_ranges(mut c: Case, ranges: &'static [&'static str]) -> Case {
    c.pod_ranges = Some(ranges);
    c
}

fn pod(text: &str) -> Pod {
    let (rest, ip) = match text.split_once('@') {
        Some((rest, ip)) => (rest, Some(ip.parse().unwrap())),
        None => (text, None),
    };
    let (namespace, labels) = rest.split_once('/').unwrap_or((rest, ""));
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
        host_network: false,
    }
}

/// The policies of a case; `apiVersion` and `kind` are filled in.
fn policies(yaml: &str) -> Vec<NetworkPolicy> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| serde_yaml::Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .map(|mut v| {
            v["apiVersion"] = "networking.k8s.io/v1".into();
            v["kind"] = "NetworkPolicy".into();
            serde_yaml::from_value(v).unwrap()
        })
        .collect()
}

fn network(yaml: &str, ranges: &[&str]) -> Network {
    let namespaces = NAMESPACES.iter().map(|(name, labels)| {
        let labels: Labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        (name.to_string(), labels)
    });
    let ranges: Vec<Cidr> = ranges.iter().map(|r| r.parse().unwrap()).collect();
    Network::new(namespaces, &policies(yaml), &ranges)
}

fn probe(c: &Case) -> Probe {
    let (protocol, port) = c.port.split_once('/').unwrap();
    Probe {
        from: pod(c.from),
        to: pod(c.to),
        port: port.parse().unwrap(),
        protocol: match protocol {
            "TCP" => Protocol::Tcp,
            "UDP" => Protocol::Udp,
            _ => Protocol::Sctp,
        },
    }
}

const NONE: &str = "";

const DENY_INGRESS: &str = "
metadata: {name: deny-ingress, namespace: bank}
spec: {podSelector: {}, policyTypes: [Ingress]}";

const EMPTY_INGRESS_LIST: &str = "
metadata: {name: empty-ingress, namespace: bank}
spec: {podSelector: {}, ingress: []}";

const DENY_DB_ONLY: &str = "
metadata: {name: deny-db, namespace: bank}
spec: {podSelector: {matchLabels: {app: db}}, policyTypes: [Ingress]}";

const DENY_EGRESS: &str = "
metadata: {name: deny-egress, namespace: shop}
spec: {podSelector: {}, policyTypes: [Egress]}";

const EGRESS_RULES_NO_TYPES: &str = "
metadata: {name: egress-to-lab, namespace: shop}
spec:
  podSelector: {}
  egress: [{to: [{namespaceSelector: {matchLabels: {team: c}}}]}]";

const EMPTY_EGRESS_NO_TYPES: &str = "
metadata: {name: empty-egress, namespace: shop}
spec: {podSelector: {}, egress: []}";

const INGRESS_TYPE_WITH_EGRESS_RULES: &str = "
metadata: {name: ingress-only, namespace: shop}
spec:
  podSelector: {}
  policyTypes: [Ingress]
  ingress: [{}]
  egress: [{to: [{namespaceSelector: {matchLabels: {team: c}}}]}]";

const DENY_BOTH: &str = "
metadata: {name: deny-both, namespace: bank}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}";

const EMPTY_TYPES_LIST: &str = "
metadata: {name: empty-types, namespace: bank}
spec: {podSelector: {}, policyTypes: []}";

const ALLOW_ALL_RULE: &str = "
metadata: {name: allow-all, namespace: bank}
spec: {podSelector: {}, policyTypes: [Ingress], ingress: [{}]}";

const EMPTY_FROM: &str = "
metadata: {name: empty-from, namespace: bank}
spec: {podSelector: {}, ingress: [{from: []}]}";

const SAME_NS_FRONTEND: &str = "
metadata: {name: from-frontend, namespace: bank}
spec:
  podSelector: {}
  ingress: [{from: [{podSelector: {matchLabels: {app: frontend}}}]}]";

const SAME_NS_ANY_POD: &str = "
metadata: {name: same-namespace, namespace: bank}
spec:
  podSelector: {}
  ingress: [{from: [{podSelector: {}}]}]";

const ANY_NAMESPACE: &str = "
metadata: {name: any-namespace, namespace: bank}
spec:
  podSelector: {}
  ingress: [{from: [{namespaceSelector: {}}]}]";

const TEAM_A: &str = "
metadata: {name: from-team-a, namespace: bank}
spec:
  podSelector: {}
  ingress: [{from: [{namespaceSelector: {matchLabels: {team: a}}}]}]";

const AND_PEER: &str = "
metadata: {name: team-a-clients, namespace: bank}
spec:
  podSelector: {}
  ingress:
    - from:
        - namespaceSelector: {matchLabels: {team: a}}
          podSelector: {matchLabels: {role: client}}";

const OR_PEERS: &str = "
metadata: {name: team-a-or-local-clients, namespace: bank}
spec:
  podSelector: {}
  ingress:
    - from:
        - namespaceSelector: {matchLabels: {team: a}}
        - podSelector: {matchLabels: {role: client}}";

const EXPR_IN: &str = "
metadata: {name: expr-in, namespace: bank}
spec:
  podSelector: {}
  ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: team, operator: In, values: [a, c]}]}}]}]";

const EXPR_NOT_IN: &str = "
metadata: {name: expr-not-in, namespace: bank}
spec:
  podSelector: {}
  ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: team, operator: NotIn, values: [a]}]}}]}]";

const EXPR_EXISTS: &str = "
metadata: {name: expr-exists, namespace: bank}
spec:
  podSelector: {}
  ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: env, operator: Exists}]}}]}]";

const EXPR_DOES_NOT_EXIST: &str = "
metadata: {name: expr-does-not-exist, namespace: bank}
spec:
  podSelector: {}
  ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: env, operator: DoesNotExist}]}}]}]";

const LABELS_AND_EXPR: &str = "
metadata: {name: labels-and-expr, namespace: bank}
spec:
  podSelector: {}
  ingress:
    - from:
        - namespaceSelector:
            matchLabels: {env: prod}
            matchExpressions: [{key: team, operator: NotIn, values: [b]}]";

const SELECT_BY_EXPR: &str = "
metadata: {name: deny-not-public, namespace: bank}
spec:
  podSelector: {matchExpressions: [{key: public, operator: DoesNotExist}]}
  policyTypes: [Ingress]";

const PORT_443: &str = "
metadata: {name: https, namespace: bank}
spec:
  podSelector: {}
  ingress: [{ports: [{port: 443}]}]";

const UDP_53: &str = "
metadata: {name: dns, namespace: bank}
spec:
  podSelector: {}
  ingress: [{ports: [{port: 53, protocol: UDP}]}]";

const END_PORT: &str = "
metadata: {name: node-ports, namespace: bank}
spec:
  podSelector: {}
  ingress: [{ports: [{port: 32000, endPort: 32768, protocol: TCP}]}]";

const NAMED_PORT: &str = "
metadata: {name: named, namespace: bank}
spec:
  podSelector: {}
  ingress: [{ports: [{port: http}]}]";

const PROTOCOL_ONLY: &str = "
metadata: {name: any-sctp, namespace: bank}
spec:
  podSelector: {}
  ingress: [{ports: [{protocol: SCTP}]}]";

const PEER_AND_PORT: &str = "
metadata: {name: team-a-https, namespace: bank}
spec:
  podSelector: {}
  ingress: [{from: [{namespaceSelector: {matchLabels: {team: a}}}], ports: [{port: 443}]}]";

const UNION: &str = "
metadata: {name: from-team-a, namespace: bank}
spec:
  podSelector: {}
  ingress: [{from: [{namespaceSelector: {matchLabels: {team: a}}}]}]
---
metadata: {name: from-team-c, namespace: bank}
spec:
  podSelector: {}
  ingress: [{from: [{namespaceSelector: {matchLabels: {team: c}}}]}]";

const DENY_PLUS_ALLOW: &str = "
metadata: {name: deny-all, namespace: bank}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
---
metadata: {name: allow-web, namespace: bank}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{}]";

const BOTH_SIDES: &str = "
metadata: {name: shop-egress, namespace: shop}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{to: [{namespaceSelector: {matchLabels: {team: b}}}]}]
---
metadata: {name: bank-ingress, namespace: bank}
spec:
  podSelector: {}
  ingress: [{from: [{namespaceSelector: {matchLabels: {team: a}}, podSelector: {matchLabels: {app: web}}}]}]";

const BLOCK_10_8: &str = "
metadata: {name: block, namespace: bank}
spec:
  podSelector: {}
  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}}]}]";

const BLOCK_EXCEPT_PODS: &str = "
metadata: {name: block-except-pods, namespace: bank}
spec:
  podSelector: {}
  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.244.0.0/16]}}]}]";

const BLOCK_EXCEPT_PART: &str = "
metadata: {name: block-except-part, namespace: bank}
spec:
  podSelector: {}
  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.244.0.0/17]}}]}]";

const INTERNET_EGRESS: &str = "
metadata: {name: internet, namespace: shop}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
    - to:
        - ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16]}
        - ipBlock: {cidr: '::/0', except: ['fc00::/7']}";

const PUBLIC_BLOCK: &str = "
metadata: {name: public, namespace: bank}
spec:
  podSelector: {}
  ingress: [{from: [{ipBlock: {cidr: 203.0.113.0/24}}]}]";

const ONE_SUBNET: &str = "
metadata: {name: one-subnet, namespace: bank}
spec:
  podSelector: {}
  ingress: [{from: [{ipBlock: {cidr: 10.244.1.0/24, except: [10.244.1.128/25]}}]}]";

const OTHER_NAMESPACE: &str = "
metadata: {name: deny-lab, namespace: lab}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}";

fn cases() -> Vec<Case> {
    vec![
        // Isolation comes from selection.
        case(
            "no policy at all: open",
            NONE,
            "shop",
            "bank",
            "TCP/80",
            true,
        ),
        case(
            "a policy elsewhere selects nothing here",
            OTHER_NAMESPACE,
            "shop",
            "bank",
            "TCP/80",
            true,
        ),
        case(
            "podSelector {} with policyTypes [Ingress] and no rules denies ingress",
            DENY_INGRESS,
            "shop",
            "bank",
            "TCP/80",
            false,
        ),
        case(
            "the same denial from inside the namespace",
            DENY_INGRESS,
            "bank/app=x",
            "bank",
            "TCP/80",
            false,
        ),
        case(
            "ingress: [] without policyTypes isolates ingress",
            EMPTY_INGRESS_LIST,
            "shop",
            "bank",
            "TCP/80",
            false,
        ),
        case(
            "a pod the podSelector does not match stays open",
            DENY_DB_ONLY,
            "shop",
            "bank/app=web",
            "TCP/80",
            true,
        ),
        case(
            "the pod the podSelector matches is isolated",
            DENY_DB_ONLY,
            "shop",
            "bank/app=db",
            "TCP/80",
            false,
        ),
        case(
            "podSelector {} selects labelled pods too",
            DENY_INGRESS,
            "shop",
            "bank/app=db,tier=x",
            "TCP/80",
            false,
        ),
        // policyTypes and its default.
        case(
            "policyTypes [Egress] with no rules denies egress",
            DENY_EGRESS,
            "shop",
            "bank",
            "TCP/80",
            false,
        ),
        case(
            "policyTypes [Egress] leaves ingress open",
            DENY_EGRESS,
            "bank",
            "shop",
            "TCP/80",
            true,
        ),
        case(
            "egress rules without policyTypes restrict egress: allowed peer",
            EGRESS_RULES_NO_TYPES,
            "shop",
            "lab",
            "TCP/80",
            true,
        ),
        case(
            "egress rules without policyTypes restrict egress: other peer",
            EGRESS_RULES_NO_TYPES,
            "shop",
            "bank",
            "TCP/80",
            false,
        ),
        case(
            "egress: [] without policyTypes does not restrict egress",
            EMPTY_EGRESS_NO_TYPES,
            "shop",
            "bank",
            "TCP/80",
            true,
        ),
        case(
            "egress: [] without policyTypes still isolates ingress",
            EMPTY_EGRESS_NO_TYPES,
            "bank",
            "shop",
            "TCP/80",
            false,
        ),
        case(
            "policyTypes [Ingress] ignores egress rules",
            INGRESS_TYPE_WITH_EGRESS_RULES,
            "shop",
            "bank",
            "TCP/80",
            true,
        ),
        case(
            "policyTypes [Ingress, Egress] without rules denies ingress",
            DENY_BOTH,
            "shop",
            "bank",
            "TCP/80",
            false,
        ),
        case(
            "policyTypes [Ingress, Egress] without rules denies egress",
            DENY_BOTH,
            "bank",
            "shop",
            "TCP/80",
            false,
        ),
        case(
            "policyTypes: [] defaults to Ingress",
            EMPTY_TYPES_LIST,
            "shop",
            "bank",
            "TCP/80",
            false,
        ),
        case(
            "policyTypes: [] with no egress rules leaves egress open",
            EMPTY_TYPES_LIST,
            "bank",
            "shop",
            "TCP/80",
            true,
        ),
        // Absent and empty lists and selectors.
        case(
            "a rule without from and ports allows everything",
            ALLOW_ALL_RULE,
            "lab",
            "bank",
            "UDP/9999",
            true,
        ),
        case(
            "from: [] matches every source",
            EMPTY_FROM,
            "bare",
            "bank",
            "TCP/80",
            true,
        ),
        case(
            "podSelector peer: matching pod of the policy's namespace",
            SAME_NS_FRONTEND,
            "bank/app=frontend",
            "bank",
            "TCP/80",
            true,
        ),
        case(
            "podSelector peer: other pod of the policy's namespace",
            SAME_NS_FRONTEND,
            "bank/app=backend",
            "bank",
            "TCP/80",
            false,
        ),
        case(
            "podSelector peer: matching pod of another namespace",
            SAME_NS_FRONTEND,
            "shop/app=frontend",
            "bank",
            "TCP/80",
            false,
        ),
        case(
            "podSelector {} peer: any pod of the policy's namespace",
            SAME_NS_ANY_POD,
            "bank/app=x",
            "bank",
            "TCP/80",
            true,
        ),
        case(
            "podSelector {} peer: not pods of other namespaces",
            SAME_NS_ANY_POD,
            "shop",
            "bank",
            "TCP/80",
            false,
        ),
        case(
            "namespaceSelector {}: every namespace",
            ANY_NAMESPACE,
            "bare/app=x",
            "bank",
            "TCP/80",
            true,
        ),
        case(
            "namespaceSelector by label: matching namespace",
            TEAM_A,
            "shop",
            "bank",
            "TCP/80",
            true,
        ),
        case(
            "namespaceSelector by label: other namespace",
            TEAM_A,
            "lab",
            "bank",
            "TCP/80",
            false,
        ),
        case(
            "namespaceSelector by label: the policy's own namespace is not implied",
            TEAM_A,
            "bank",
            "bank",
            "TCP/80",
            false,
        ),
        // AND within a peer, OR across peers.
        case(
            "namespaceSelector and podSelector in one peer: both match",
            AND_PEER,
            "shop/role=client",
            "bank",
            "TCP/80",
            true,
        ),
        case(
            "namespaceSelector and podSelector in one peer: pod differs",
            AND_PEER,
            "shop/role=server",
            "bank",
            "TCP/80",
            false,
        ),
        case(
            "namespaceSelector and podSelector in one peer: namespace differs",
            AND_PEER,
            "lab/role=client",
            "bank",
            "TCP/80",
            false,
        ),
        case(
            "two peers: the namespace peer alone",
            OR_PEERS,
            "shop/role=server",
            "bank",
            "TCP/80",
            true,
        ),
        case(
            "two peers: the pod peer alone (policy's namespace)",
            OR_PEERS,
            "bank/role=client",
            "bank",
            "TCP/80",
            true,
        ),
        case(
            "two peers: neither",
            OR_PEERS,
            "lab/role=client",
            "bank",
            "TCP/80",
            false,
        ),
        // matchExpressions.
        case("In: value listed", EXPR_IN, "lab", "bank", "TCP/80", true),
        case("In: label absent", EXPR_IN, "bare", "bank", "TCP/80", false),
        case(
            "NotIn: label absent matches",
            EXPR_NOT_IN,
            "bare",
            "bank",
            "TCP/80",
            true,
        ),
        case(
            "NotIn: value listed does not match",
            EXPR_NOT_IN,
            "shop",
            "bank",
            "TCP/80",
            false,
        ),
        case(
            "Exists: label present",
            EXPR_EXISTS,
            "shop",
            "bank",
            "TCP/80",
            true,
        ),
        case(
            "Exists: label absent",
            EXPR_EXISTS,
            "lab",
            "bank",
            "TCP/80",
            false,
        ),
        case(
            "DoesNotExist: label absent",
            EXPR_DOES_NOT_EXIST,
            "lab",
            "bank",
            "TCP/80",
            true,
        ),
        case(
            "DoesNotExist: label present",
            EXPR_DOES_NOT_EXIST,
            "shop",
            "bank",
            "TCP/80",
            false,
        ),
        case(
            "matchLabels and matchExpressions together: both hold",
            LABELS_AND_EXPR,
            "shop",
            "bank",
            "TCP/80",
            true,
        ),
        case(
            "matchLabels and matchExpressions together: one fails",
            LABELS_AND_EXPR,
            "bank",
            "bank",
            "TCP/80",
            false,
        ),
        case(
            "a policy's podSelector by expression: selected pod",
            SELECT_BY_EXPR,
            "shop",
            "bank/app=db",
            "TCP/80",
            false,
        ),
        case(
            "a policy's podSelector by expression: pod left out",
            SELECT_BY_EXPR,
            "shop",
            "bank/public=yes",
            "TCP/80",
            true,
        ),
        // Ports and protocols.
        case(
            "port without protocol is TCP: the port",
            PORT_443,
            "shop",
            "bank",
            "TCP/443",
            true,
        ),
        case(
            "port without protocol is TCP: another port",
            PORT_443,
            "shop",
            "bank",
            "TCP/80",
            false,
        ),
        case(
            "port without protocol is TCP: not UDP",
            PORT_443,
            "shop",
            "bank",
            "UDP/443",
            false,
        ),
        case("UDP port: UDP", UDP_53, "shop", "bank", "UDP/53", true),
        case("UDP port: not TCP", UDP_53, "shop", "bank", "TCP/53", false),
        case(
            "endPort: inside the range",
            END_PORT,
            "shop",
            "bank",
            "TCP/32500",
            true,
        ),
        case(
            "endPort: the last port",
            END_PORT,
            "shop",
            "bank",
            "TCP/32768",
            true,
        ),
        case(
            "endPort: past the range",
            END_PORT,
            "shop",
            "bank",
            "TCP/32769",
            false,
        ),
        case(
            "named port: any TCP port (conservative)",
            NAMED_PORT,
            "shop",
            "bank",
            "TCP/8080",
            true,
        ),
        case(
            "named port: still only its protocol",
            NAMED_PORT,
            "shop",
            "bank",
            "UDP/8080",
            false,
        ),
        case(
            "protocol without port: every port of it",
            PROTOCOL_ONLY,
            "shop",
            "bank",
            "SCTP/7777",
            true,
        ),
        case(
            "protocol without port: not other protocols",
            PROTOCOL_ONLY,
            "shop",
            "bank",
            "TCP/7777",
            false,
        ),
        case(
            "peer and ports in one rule: both hold",
            PEER_AND_PORT,
            "shop",
            "bank",
            "TCP/443",
            true,
        ),
        case(
            "peer and ports in one rule: peer without the port",
            PEER_AND_PORT,
            "shop",
            "bank",
            "TCP/22",
            false,
        ),
        case(
            "peer and ports in one rule: port without the peer",
            PEER_AND_PORT,
            "lab",
            "bank",
            "TCP/443",
            false,
        ),
        // The union of the policies selecting a pod.
        case(
            "union: first policy allows",
            UNION,
            "shop",
            "bank",
            "TCP/80",
            true,
        ),
        case(
            "union: second policy allows",
            UNION,
            "lab",
            "bank",
            "TCP/80",
            true,
        ),
        case(
            "union: neither allows",
            UNION,
            "bare",
            "bank",
            "TCP/80",
            false,
        ),
        case(
            "an allow policy adds to a deny-all one",
            DENY_PLUS_ALLOW,
            "shop",
            "bank/app=web",
            "TCP/80",
            true,
        ),
        case(
            "the deny-all one still holds for other pods",
            DENY_PLUS_ALLOW,
            "shop",
            "bank/app=db",
            "TCP/80",
            false,
        ),
        // Both sides of a connection.
        case(
            "egress and ingress both allow",
            BOTH_SIDES,
            "shop/app=web",
            "bank",
            "TCP/80",
            true,
        ),
        case(
            "egress allows, ingress does not",
            BOTH_SIDES,
            "shop/app=api",
            "bank",
            "TCP/80",
            false,
        ),
        case(
            "ingress would allow, egress does not",
            BOTH_SIDES,
            "shop/app=web",
            "lab",
            "TCP/80",
            false,
        ),
        // ipBlock and pods.
        case(
            "ipBlock covering the pod range may match pods",
            BLOCK_10_8,
            "shop",
            "bank",
            "TCP/80",
            true,
        ),
        case(
            "ipBlock whose except covers the pod range does not",
            BLOCK_EXCEPT_PODS,
            "shop",
            "bank",
            "TCP/80",
            false,
        ),
        case(
            "ipBlock whose except covers part of the pod range may",
            BLOCK_EXCEPT_PART,
            "shop",
            "bank",
            "TCP/80",
            true,
        ),
        case(
            "internet egress (0.0.0.0/0 except private) does not reach pods",
            INTERNET_EGRESS,
            "shop",
            "bank",
            "TCP/443",
            false,
        ),
        case(
            "a public ipBlock does not match pods",
            PUBLIC_BLOCK,
            "shop",
            "bank",
            "TCP/80",
            false,
        ),
        with_ranges(
            case(
                "with pod ranges unknown, any ipBlock may match pods",
                PUBLIC_BLOCK,
                "shop",
                "bank",
                "TCP/80",
                true,
            ),
            &[],
        ),
        case(
            "a pod with a known address in the block",
            ONE_SUBNET,
            "shop@10.244.1.5",
            "bank",
            "TCP/80",
            true,
        ),
        case(
            "a pod with a known address in the except",
            ONE_SUBNET,
            "shop@10.244.1.200",
            "bank",
            "TCP/80",
            false,
        ),
        case(
            "a pod with a known address outside the block",
            ONE_SUBNET,
            "shop@10.244.2.5",
            "bank",
            "TCP/80",
            false,
        ),
        with_ranges(
            case(
                "with non-private pod ranges, internet egress reaches pods",
                INTERNET_EGRESS,
                "shop",
                "bank",
                "TCP/443",
                true,
            ),
            &["100.96.0.0/11"],
        ),
    ]
}

#[test]
fn truth_table() {
    let cases = cases();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        let ranges = c.pod_ranges.unwrap_or(&[POD_RANGE]);
        let verdict = network(c.policies, ranges).check(&probe(c));
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
fn verdict_names_the_policy_rule_and_peer() {
    let net = network(UNION, &[POD_RANGE]);
    let c = case("", UNION, "lab/app=x", "bank/app=y", "TCP/80", true);
    let verdict = net.check(&probe(&c));
    assert_eq!(verdict.egress, Decision::Unrestricted);
    let Decision::Allowed(grant) = &verdict.ingress else {
        panic!("{verdict}");
    };
    assert_eq!(grant.policy.to_string(), "bank/from-team-c");
    assert_eq!(grant.rule, 0);
    assert_eq!(grant.peer.as_deref(), Some("namespaceSelector {team=c}"));
    assert_eq!(
        verdict.to_string(),
        "allowed (egress: no policy selects the pod; ingress: allowed by bank/from-team-c ingress rule 1 (peer namespaceSelector {team=c}; all ports))"
    );

    let c = case("", UNION, "bare", "bank", "TCP/80", false);
    let verdict = net.check(&probe(&c));
    let Decision::Denied(policies) = &verdict.ingress else {
        panic!("{verdict}");
    };
    let names: Vec<String> = policies.iter().map(|p| p.to_string()).collect();
    assert_eq!(names, ["bank/from-team-a", "bank/from-team-c"]);

    let net = network(BOTH_SIDES, &[POD_RANGE]);
    let c = case("", BOTH_SIDES, "shop/app=web", "lab", "TCP/80", false);
    let verdict = net.check(&probe(&c));
    assert!(matches!(verdict.egress, Decision::Denied(_)), "{verdict}");
    assert_eq!(verdict.ingress, Decision::Unrestricted);
}
