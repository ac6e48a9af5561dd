//! Unit tests of `desired/` from the YAML fixtures in `tests/fixtures/`: exact
//! NetworkPolicy rules per isolation level, both sides of an `allowFrom` connection,
//! access, defaults, and name validity at the longest names. No cluster needed.

use std::path::PathBuf;

use customer_operator::api::{Customer, LABEL_NAMESPACE_NAME};
use customer_operator::desired::validate::{is_dns_label, is_label_value, is_qualified_name};
use customer_operator::desired::{self, Desired, MapDirectory};
use customer_operator::error::{Error, Reason};
use customer_operator::render;
use customer_operator::settings::Settings;
use k8s_openapi::api::networking::v1::NetworkPolicySpec;
use kube::ResourceExt;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn settings() -> Settings {
    Settings {
        platform_namespaces: vec!["ingress-nginx".into(), "monitoring".into()],
        ..Settings::default()
    }
}

fn directory(file: &str) -> MapDirectory {
    let inputs = render::read_inputs(&[fixture(file)]).expect("fixture parses");
    MapDirectory::new(
        inputs.customers.into_iter().map(|(_, c)| c),
        inputs.groups.into_iter().map(|(_, g)| g),
    )
}

fn build(dir: &MapDirectory, customer: &str) -> Desired {
    let c: &Customer = dir.customers.get(customer).expect("customer in fixture");
    desired::desired(c, dir, &settings()).expect("valid customer")
}

fn policy(d: &Desired, namespace: &str, name: &str) -> Option<NetworkPolicySpec> {
    d.network_policies
        .iter()
        .find(|p| p.namespace().as_deref() == Some(namespace) && p.name_any() == name)
        .and_then(|p| p.spec.clone())
}

fn policy_names(d: &Desired, namespace: &str) -> Vec<String> {
    d.network_policies
        .iter()
        .filter(|p| p.namespace().as_deref() == Some(namespace))
        .map(|p| p.name_any())
        .collect()
}

fn spec(yaml: &str) -> NetworkPolicySpec {
    serde_yaml::from_str(yaml).expect("expected spec parses")
}

#[test]
fn standard_isolation_exact_rules() {
    let d = build(&directory("isolation.yaml"), "std-co");
    assert_eq!(
        policy_names(&d, "std-co"),
        [
            "customer-default-deny",
            "customer-allow-same-customer",
            "customer-allow-dns",
            "customer-allow-platform",
            "customer-allow-internet-egress",
        ]
    );
    assert_eq!(
        policy(&d, "std-co", "customer-default-deny").unwrap(),
        spec("{podSelector: {}, policyTypes: [Ingress, Egress]}")
    );
    assert_eq!(
        policy(&d, "std-co", "customer-allow-same-customer").unwrap(),
        spec(
            r#"
podSelector: {}
policyTypes: [Ingress, Egress]
ingress:
  - from: [{namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [std-co]}]}}]
egress:
  - to: [{namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [std-co]}]}}]
"#
        )
    );
    assert_eq!(
        policy(&d, "std-co", "customer-allow-dns").unwrap(),
        spec(
            r#"
podSelector: {}
policyTypes: [Egress]
egress:
  - to:
      - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}
        podSelector: {matchLabels: {k8s-app: kube-dns}}
    ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]
"#
        )
    );
    assert_eq!(
        policy(&d, "std-co", "customer-allow-platform").unwrap(),
        spec(
            r#"
podSelector: {}
policyTypes: [Ingress]
ingress:
  - from: [{namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [ingress-nginx, monitoring]}]}}]
"#
        )
    );
    assert_eq!(
        policy(&d, "std-co", "customer-allow-internet-egress").unwrap(),
        spec(
            r#"
podSelector: {}
policyTypes: [Egress]
egress:
  - to:
      - ipBlock:
          cidr: 0.0.0.0/0
          except: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10, 169.254.0.0/16, 127.0.0.0/8]
      - ipBlock:
          cidr: "::/0"
          except: ["fc00::/7", "fe80::/10", "::1/128"]
"#
        )
    );
}

#[test]
fn strict_isolation_drops_platform_and_internet() {
    let dir = directory("isolation.yaml");
    let d = build(&dir, "strict-co");
    for ns in ["strict-co-a", "strict-co-b"] {
        assert_eq!(
            policy_names(&d, ns),
            [
                "customer-default-deny",
                "customer-allow-same-customer",
                "customer-allow-dns"
            ]
        );
        let same = policy(&d, ns, "customer-allow-same-customer").unwrap();
        let values = same.ingress.unwrap()[0].from.as_ref().unwrap()[0]
            .namespace_selector
            .as_ref()
            .unwrap()
            .match_expressions
            .as_ref()
            .unwrap()[0]
            .values
            .clone();
        assert_eq!(
            values,
            Some(vec!["strict-co-a".into(), "strict-co-b".into()])
        );
    }
    let online = build(&dir, "strict-online");
    assert_eq!(
        policy_names(&online, "strict-online"),
        [
            "customer-default-deny",
            "customer-allow-same-customer",
            "customer-allow-dns",
            "customer-allow-internet-egress"
        ]
    );
}

#[test]
fn off_isolation_writes_no_policy_but_keeps_access() {
    let d = build(&directory("isolation.yaml"), "off-co");
    assert!(d.network_policies.is_empty());
    assert_eq!(d.namespaces.len(), 1);
    assert_eq!(d.role_bindings.len(), 1);
}

#[test]
fn allow_from_opens_both_sides_and_nothing_else() {
    let dir = directory("connection.yaml");
    let shop = build(&dir, "shop");
    for ns in ["shop-web", "shop-db"] {
        assert_eq!(
            policy(&shop, ns, "customer-allow-from").unwrap(),
            spec(
                r#"
podSelector: {}
policyTypes: [Ingress]
ingress:
  - from: [{namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [payments]}]}}]
    ports: [{port: 443, protocol: TCP}]
  - from: [{namespaceSelector: {matchLabels: {team: observability}}}]
    ports: [{port: 9090, protocol: TCP}]
"#
            )
        );
        assert!(policy(&shop, ns, "customer-allow-to-peers").is_none());
    }
    let payments = build(&dir, "payments");
    assert_eq!(
        policy(&payments, "payments", "customer-allow-to-peers").unwrap(),
        spec(
            r#"
podSelector: {}
policyTypes: [Egress]
egress:
  - to: [{namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [shop-db, shop-web]}]}}]
    ports: [{port: 443, protocol: TCP}]
"#
        )
    );
    assert!(policy(&payments, "payments", "customer-allow-from").is_none());
    let bystander = build(&dir, "bystander");
    assert_eq!(
        policy_names(&bystander, "bystander"),
        [
            "customer-default-deny",
            "customer-allow-same-customer",
            "customer-allow-dns",
            "customer-allow-platform",
            "customer-allow-internet-egress"
        ]
    );
    // No policy of any customer names another customer's namespace unless a declared
    // allowFrom put it there.
    for (name, d) in [("payments", &payments), ("bystander", &bystander)] {
        let text = serde_json::to_string(&d.network_policies).unwrap();
        let foreign = if name == "payments" {
            "bystander"
        } else {
            "shop-"
        };
        assert!(!text.contains(foreign), "{name} mentions {foreign}");
    }
}

#[test]
fn group_zone_defaults_and_managers() {
    let dir = directory("group-zone.yaml");
    let a = build(&dir, "member-a");
    let b = build(&dir, "member-b");
    let outsider = build(&dir, "outsider");
    // Group default Strict applies to a; b's own Standard wins.
    assert!(policy(&a, "member-a-x", "customer-allow-internet-egress").is_none());
    assert!(policy(&b, "member-b", "customer-allow-internet-egress").is_some());
    assert_eq!(
        policy(&a, "member-a-x", "customer-allow-group").unwrap(),
        spec(
            r#"
podSelector: {}
policyTypes: [Ingress, Egress]
ingress:
  - from: [{namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [member-b]}]}}]
egress:
  - to: [{namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [member-b]}]}}]
"#
        )
    );
    assert!(policy(&b, "member-b", "customer-allow-group").is_some());
    assert!(policy(&outsider, "outsider", "customer-allow-group").is_none());
    assert!(
        !serde_json::to_string(&outsider.network_policies)
            .unwrap()
            .contains("member-")
    );
    // Quota: group default for a, own for b. Limits: group default for both.
    let pods = |d: &Desired| {
        d.resource_quotas[0]
            .spec
            .as_ref()
            .unwrap()
            .hard
            .as_ref()
            .unwrap()["pods"]
            .0
            .clone()
    };
    assert_eq!(pods(&a), "10");
    assert_eq!(pods(&b), "50");
    assert_eq!(a.limit_ranges.len(), 1);
    assert_eq!(b.limit_ranges.len(), 1);
    assert!(outsider.resource_quotas.is_empty() && outsider.limit_ranges.is_empty());
    // Namespace labels: the namespace's own win over the group's; operator labels win over both.
    let labels = a.namespaces[0].labels();
    assert_eq!(labels["tier"], "gold");
    assert_eq!(labels["zone"], "yes");
    assert_eq!(labels["customers.dev/group"], "zone");
    assert!(
        !labels.contains_key(LABEL_NAMESPACE_NAME),
        "the apiserver sets it, not the operator"
    );
    // Group admins in every member namespace.
    for d in [&a, &b] {
        let rb = d
            .role_bindings
            .iter()
            .find(|r| r.name_any() == "customer-group-admins")
            .unwrap();
        assert_eq!(rb.role_ref.name, "customer-admin");
        assert_eq!(rb.subjects.as_ref().unwrap()[0].name, "zone-managers");
        assert_eq!(rb.subjects.as_ref().unwrap()[0].kind, "Group");
    }
}

#[test]
fn parent_admins_flow_down_recursively() {
    let dir = directory("hierarchy.yaml");
    let team = build(&dir, "team");
    let rb = team
        .role_bindings
        .iter()
        .find(|r| r.name_any() == "customer-parent-admins")
        .expect("parent admins bound");
    assert_eq!(rb.role_ref.name, "customer-admin");
    let names: Vec<_> = rb
        .subjects
        .as_ref()
        .unwrap()
        .iter()
        .map(|s| s.name.clone())
        .collect();
    assert_eq!(names, ["dirk", "hanna"]);
    // A parent's viewers are not admins below it.
    assert!(!names.contains(&"vera".to_string()));
    let holding = build(&dir, "holding");
    assert!(
        holding
            .role_bindings
            .iter()
            .all(|r| r.name_any() != "customer-parent-admins")
    );
}

#[test]
fn longest_names_give_valid_names_and_labels() {
    let dir = directory("longest.yaml");
    let d = build(&dir, "cccccccccccccccccccccccccccccccccccccccc");
    let names: Vec<_> = d.namespaces.iter().map(|n| n.name_any()).collect();
    assert_eq!(names[0].len(), 63);
    assert_eq!(names[1].len(), 40);
    for object in d.to_values().unwrap() {
        let meta = &object["metadata"];
        let name = meta["name"].as_str().unwrap();
        assert!(
            is_dns_label(name) || object["kind"] == "RoleBinding",
            "{name}"
        );
        assert!(name.len() <= 63);
        if let Some(ns) = meta["namespace"].as_str() {
            assert!(is_dns_label(ns), "{ns}");
        }
        for (key, value) in meta["labels"].as_object().unwrap() {
            assert!(is_qualified_name(key), "{key}");
            assert!(is_label_value(value.as_str().unwrap()), "{key}={value}");
        }
        assert!(meta.get("ownerReferences").is_none(), "{meta}");
    }
    assert!(
        d.role_bindings
            .iter()
            .any(|r| r.name_any() == "customer-security-consultants"
                && r.role_ref.name == "customer-security-consultant")
    );
}

#[test]
fn every_object_is_labelled_and_owned() {
    let mut dir = directory("connection.yaml");
    let mut shop = (*dir.customers["shop"]).clone();
    shop.metadata.uid = Some("uid-shop".into());
    dir.customers
        .insert("shop".into(), std::sync::Arc::new(shop));
    let d = build(&dir, "shop");
    for object in d.to_values().unwrap() {
        let labels = &object["metadata"]["labels"];
        assert_eq!(labels["customers.dev/customer"], "shop");
        assert_eq!(labels["customers.dev/group"], "all");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "customer-operator");
        // Ownership is recorded in an annotation with the Customer's uid, never an
        // ownerReference the garbage collector would follow.
        let meta = &object["metadata"];
        assert!(meta.get("ownerReferences").is_none(), "{meta}");
        assert_eq!(meta["annotations"]["customers.dev/owner-uid"], "uid-shop");
    }
}

#[test]
fn colliding_namespace_goes_to_the_senior_customer() {
    let text = r#"
apiVersion: customers.dev/v1alpha1
kind: Customer
metadata: {name: a-b}
spec: {displayName: AB, contactEmail: x@ab.example, namespaces: [{name: c}]}
---
apiVersion: customers.dev/v1alpha1
kind: Customer
metadata: {name: a}
spec: {displayName: A, contactEmail: x@a.example, namespaces: [{name: b-c}, {name: d}]}
"#;
    let tmp = std::env::temp_dir().join(format!("co-collide-{}.yaml", std::process::id()));
    std::fs::write(&tmp, text).unwrap();
    let inputs = render::read_inputs(std::slice::from_ref(&tmp)).unwrap();
    std::fs::remove_file(&tmp).unwrap();
    let dir = MapDirectory::new(inputs.customers.into_iter().map(|(_, c)| c), []);
    let a = desired::desired(&dir.customers["a"], &dir, &settings()).unwrap();
    let ab = desired::desired(&dir.customers["a-b"], &dir, &settings()).unwrap();
    // Offline, with no creation times, the name decides: "a" < "a-b".
    assert_eq!(
        a.namespaces
            .iter()
            .map(|n| n.name_any())
            .collect::<Vec<_>>(),
        ["a-b-c", "a-d"]
    );
    assert!(ab.namespaces.is_empty());
    assert_eq!(ab.conflicts[0].namespace, "a-b-c");
    assert_eq!(ab.conflicts[0].holder, "a");

    // Once the namespace exists and a-b holds it, it stays a-b's: seniority only decides
    // names nobody holds yet, so a spec edit or a same-second creation never takes an
    // existing namespace from its customer.
    let mut dir = dir;
    dir.namespace_holders.insert("a-b-c".into(), "a-b".into());
    let a = desired::desired(&dir.customers["a"], &dir, &settings()).unwrap();
    let ab = desired::desired(&dir.customers["a-b"], &dir, &settings()).unwrap();
    assert_eq!(
        ab.namespaces
            .iter()
            .map(|n| n.name_any())
            .collect::<Vec<_>>(),
        ["a-b-c"]
    );
    assert_eq!(a.conflicts[0].namespace, "a-b-c");
    assert_eq!(a.conflicts[0].holder, "a-b");
}

fn reasons(file: &str, customer: &str) -> Vec<Reason> {
    let dir = directory(file);
    match desired::desired(&dir.customers[customer], &dir, &settings()) {
        Err(Error::Invalid(problems)) => problems.iter().map(|p| p.reason).collect(),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn semantic_errors_are_refused_with_a_reason() {
    assert_eq!(
        reasons("broken/unknown-group.yaml", "lost"),
        [Reason::UnknownGroup]
    );
    assert_eq!(
        reasons("broken/reserved-label.yaml", "sneaky"),
        [Reason::ReservedLabel]
    );
    assert_eq!(
        reasons("broken/parent-cycle.yaml", "chicken"),
        [Reason::ParentCycle]
    );
    assert_eq!(
        reasons("broken/reserved-namespace.yaml", "kube"),
        [Reason::ReservedNamespace]
    );
    assert_eq!(
        reasons("broken/bad-email.yaml", "bad-email"),
        [Reason::InvalidField]
    );
    assert_eq!(
        reasons("broken/bad-name.yaml", "Astral Voyage"),
        [Reason::InvalidName]
    );
}

#[test]
fn parent_chain_depth_is_bounded() {
    let mut docs = String::new();
    for i in 0..8 {
        let parent = if i == 0 {
            String::new()
        } else {
            format!(", parent: c{}", i - 1)
        };
        docs.push_str(&format!(
            "---\napiVersion: customers.dev/v1alpha1\nkind: Customer\nmetadata: {{name: c{i}}}\nspec: {{displayName: C, contactEmail: c@c.example{parent}}}\n"
        ));
    }
    let tmp = std::env::temp_dir().join(format!("co-depth-{}.yaml", std::process::id()));
    std::fs::write(&tmp, docs).unwrap();
    let inputs = render::read_inputs(std::slice::from_ref(&tmp)).unwrap();
    std::fs::remove_file(&tmp).unwrap();
    let dir = MapDirectory::new(inputs.customers.into_iter().map(|(_, c)| c), []);
    assert!(desired::desired(&dir.customers["c5"], &dir, &settings()).is_ok());
    match desired::desired(&dir.customers["c6"], &dir, &settings()) {
        Err(Error::Invalid(p)) => assert_eq!(p[0].reason, Reason::ParentTooDeep),
        other => panic!("{other:?}"),
    }
}

#[test]
fn limit_range_is_written_in_its_defaulted_form() {
    let dir = directory("group-zone.yaml");
    let a = build(&dir, "member-a");
    let item = &a.limit_ranges[0].spec.as_ref().unwrap().limits[0];
    assert_eq!(item.default.as_ref().unwrap()["cpu"].0, "200m");
    assert_eq!(item.default_request.as_ref().unwrap()["cpu"].0, "200m");
}

#[test]
fn allow_from_an_unknown_peer_waits() {
    let dir = directory("connection.yaml");
    let mut shop = (*dir.customers["shop"]).clone();
    shop.spec.network.as_mut().unwrap().allow_from[0].customer = Some("not-yet".into());
    let d = desired::desired(&shop, &dir, &settings()).unwrap();
    assert_eq!(d.waiting_peers, ["Customer not-yet"]);
    let rules = policy(&d, "shop-web", "customer-allow-from")
        .unwrap()
        .ingress
        .unwrap();
    assert_eq!(rules.len(), 1, "only the namespaceSelector rule remains");
}

/// Pruning looks children up by the names the builder can give them; a name outside
/// those lists would never be pruned.
#[test]
fn every_child_name_is_one_pruning_knows() {
    use customer_operator::desired::access::BINDING_NAMES;
    use customer_operator::desired::network::POLICY_NAMES;
    use customer_operator::desired::{LIMITS_NAME, QUOTA_NAME};
    let mut seen = std::collections::BTreeSet::new();
    for file in [
        "connection.yaml",
        "frozen.yaml",
        "group-zone.yaml",
        "hierarchy.yaml",
        "isolation.yaml",
        "longest.yaml",
    ] {
        let dir = directory(file);
        for name in dir.customers.keys() {
            let wanted = build(&dir, name);
            for p in &wanted.network_policies {
                assert!(
                    POLICY_NAMES.contains(&p.name_any().as_str()),
                    "{}",
                    p.name_any()
                );
                seen.insert(p.name_any());
            }
            for b in &wanted.role_bindings {
                assert!(
                    BINDING_NAMES.contains(&b.name_any().as_str()),
                    "{}",
                    b.name_any()
                );
                seen.insert(b.name_any());
            }
            for q in &wanted.resource_quotas {
                assert_eq!(q.name_any(), QUOTA_NAME);
            }
            for l in &wanted.limit_ranges {
                assert_eq!(l.name_any(), LIMITS_NAME);
            }
        }
    }
    // The fixtures reach most names, so the lists are not checked against nothing.
    assert!(seen.len() >= 10, "{seen:?}");
}

#[test]
fn a_refused_newcomer_opens_nothing_for_its_peers() {
    let mut dir = directory("connection.yaml");
    let original = (*dir.customers["shop"]).clone();
    let with_status = |generation: Option<i64>| {
        let mut shop = original.clone();
        // Refused: a reserved label, on top of the allowFrom that names payments.
        shop.spec.namespaces[0].labels =
            [("customers.dev/customer".to_string(), "payments".to_string())].into();
        shop.status = generation.map(|g| customer_operator::api::CustomerStatus {
            observed_generation: Some(g),
            ..Default::default()
        });
        std::sync::Arc::new(shop)
    };
    // Never accepted: payments gets no egress to the namespaces shop only asks for.
    dir.customers.insert("shop".into(), with_status(None));
    let payments = build(&dir, "payments");
    assert!(policy(&payments, "payments", "customer-allow-to-peers").is_none());
    // Accepted before, refused now: its namespaces exist, and payments keeps its side.
    dir.customers.insert("shop".into(), with_status(Some(1)));
    let payments = build(&dir, "payments");
    assert!(policy(&payments, "payments", "customer-allow-to-peers").is_some());
}

/// The whole-customer quota as `render` prints it (nothing used yet): the total shared
/// out evenly over the namespaces, each share held to `hard`; a group's default total
/// reaches its members; a total that is not a quantity is refused with a reason.
#[test]
fn total_quota_is_shared_out_and_bounded_by_hard() {
    let yaml = r#"
apiVersion: customers.dev/v1alpha1
kind: CustomerGroup
metadata: {name: shared}
spec:
  displayName: Shared
  defaults: {quota: {total: {pods: "10", requests.cpu: "1"}}}
---
apiVersion: customers.dev/v1alpha1
kind: Customer
metadata: {name: three, uid: u-three}
spec:
  displayName: Three
  contactEmail: ops@three.example
  group: shared
  namespaces: [{name: a}, {name: b}, {name: c}]
---
apiVersion: customers.dev/v1alpha1
kind: Customer
metadata: {name: capped, uid: u-capped}
spec:
  displayName: Capped
  contactEmail: ops@capped.example
  namespaces: [{name: a}, {name: b}]
  quota: {hard: {pods: "3"}, total: {pods: "10"}}
"#;
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(yaml)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let dir = MapDirectory::new(
        docs[1..]
            .iter()
            .map(|d| serde_yaml::from_value::<Customer>(d.clone()).unwrap()),
        [serde_yaml::from_value(docs[0].clone()).unwrap()],
    );
    let hard = |d: &Desired, ns: &str, resource: &str| {
        let quota = d
            .resource_quotas
            .iter()
            .find(|q| q.namespace().as_deref() == Some(ns))
            .expect("a quota in the namespace");
        quota.spec.as_ref().unwrap().hard.as_ref().unwrap()[resource]
            .0
            .clone()
    };
    let three = build(&dir, "three");
    let pods: Vec<String> = ["three-a", "three-b", "three-c"]
        .iter()
        .map(|ns| hard(&three, ns, "pods"))
        .collect();
    assert_eq!(pods, ["4", "3", "3"]);
    assert_eq!(hard(&three, "three-a", "requests.cpu"), "334m");
    let capped = build(&dir, "capped");
    assert_eq!(hard(&capped, "capped-a", "pods"), "3");
    assert_eq!(hard(&capped, "capped-b", "pods"), "3");

    let mut bad: Customer = (*dir.customers["capped"]).clone();
    bad.spec.quota.as_mut().unwrap().total.insert(
        "pods".into(),
        k8s_openapi::apimachinery::pkg::api::resource::Quantity("ten".into()),
    );
    match desired::desired(&bad, &dir, &settings()) {
        Err(Error::Invalid(problems)) => {
            assert_eq!(problems[0].reason, Reason::InvalidQuantity);
            assert_eq!(problems[0].field, "spec.quota.total[pods]");
        }
        other => panic!("a total that is not a quantity is refused: {other:?}"),
    }
}

/// The bindings of a customer's first namespace: name, ClusterRole, subjects.
fn binding_table(d: &Desired) -> Vec<(String, String, Vec<String>)> {
    let mut table: Vec<_> = d
        .role_bindings
        .iter()
        .map(|b| {
            let subjects = b.subjects.iter().flatten();
            (
                b.name_any(),
                b.role_ref.name.clone(),
                subjects.map(|s| format!("{}/{}", s.kind, s.name)).collect(),
            )
        })
        .collect();
    table.sort();
    table
}

/// A frozen customer (by its group here) keeps every binding's subjects, each writing
/// binding under its frozen name with `customer-view`; viewers and consultants keep
/// theirs. Unfrozen, the same customer has exactly the usual bindings back.
#[test]
fn a_freeze_turns_every_writing_binding_into_view_under_its_frozen_name() {
    let dir = directory("frozen.yaml");
    let frozen = binding_table(&build(&dir, "inner"));
    let view = |name: &str, subjects: &[&str]| {
        (
            name.to_string(),
            "customer-view".to_string(),
            subjects.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
    };
    let mut expected = vec![
        view("customer-admins-frozen", &["User/carol"]),
        view("customer-editors-frozen", &["User/dan"]),
        view("customer-viewers", &["User/vera"]),
        view("customer-group-admins-frozen", &["Group/group-admins"]),
        view("customer-group-editors-frozen", &["User/gus"]),
        view("customer-group-viewers", &["User/gwen"]),
        view("customer-parent-admins-frozen", &["User/bea"]),
        (
            "customer-security-consultants".into(),
            "customer-security-consultant".into(),
            vec!["User/sam".into()],
        ),
    ];
    expected.sort();
    assert_eq!(frozen, expected);

    // The same customer in a group that is not frozen.
    let mut customer = (*dir.customers["inner"]).clone();
    customer.spec.group = Some("running".into());
    let thawed = desired::desired(&customer, &dir, &settings()).unwrap();
    let roles: Vec<(String, String)> = binding_table(&thawed)
        .into_iter()
        .map(|(name, role, _)| (name, role))
        .collect();
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        let mut v: Vec<_> = list
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        roles,
        pairs(&[
            ("customer-admins", "customer-admin"),
            ("customer-editors", "customer-edit"),
            ("customer-viewers", "customer-view"),
            ("customer-group-admins", "customer-admin"),
            ("customer-group-editors", "customer-edit"),
            ("customer-group-viewers", "customer-view"),
            ("customer-parent-admins", "customer-admin"),
            (
                "customer-security-consultants",
                "customer-security-consultant"
            ),
        ])
    );
    // Its own spec.frozen freezes a customer in a running group; a frozen parent does not
    // freeze its inner customer.
    let boss = binding_table(&build(&dir, "boss"));
    assert!(
        boss.iter()
            .any(|(n, r, _)| n == "customer-admins-frozen" && r == "customer-view")
    );
    let kid = binding_table(&build(&dir, "kid"));
    assert!(
        kid.iter()
            .any(|(n, r, _)| n == "customer-parent-admins" && r == "customer-admin")
    );
    assert!(
        kid.iter().all(|(n, _, _)| !n.ends_with("-frozen")),
        "{kid:?}"
    );
}
