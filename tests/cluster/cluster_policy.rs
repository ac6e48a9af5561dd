//! The ClusterNetworkPolicy isolation backend against the real control plane, with the
//! ClusterNetworkPolicy CRD installed from its Go module (sigs.k8s.io/network-policy-api,
//! scripts/cluster-network-policy-crd.sh). The operator runs as a child process so that
//! a test can restart it with the other backend.
//!
//! - The policies the apiserver then holds are exactly those `render` prints.
//! - A customer admin (token user carol) gets 403 on NetworkPolicies under the
//!   NetworkPolicy backend; under the ClusterNetworkPolicy backend she writes an
//!   allow-all policy, and `verify` and `NetworkIsolated` still show no path to or from
//!   another customer, while her own deny-all policy does take effect among her own
//!   namespaces.
//! - Switching 50 customers from one backend to the other and back: every change the
//!   apiserver records to any NetworkPolicy or ClusterNetworkPolicy, replayed in
//!   resourceVersion order, leaves every customer isolated as declared.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use customer_operator::api::{ClusterNetworkPolicy, Customer, LABEL_MANAGED_BY, MANAGED_BY};
use customer_operator::isolation::{Pod, Probe};
use customer_operator::settings::{IsolationBackend, Settings};
use customer_operator::verify::{self, World};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{ListParams, PostParams, WatchEvent, WatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;
use support::process::OperatorProcess;
use tokio::sync::Mutex;

/// One operator at a time: the tests restart it with either backend.
static SERIAL: Mutex<()> = Mutex::const_new(());

const CNP_BACKEND: &[&str] = &["--isolation-backend", "ClusterNetworkPolicy"];
const NP_BACKEND: &[&str] = &["--isolation-backend", "NetworkPolicy"];

/// The settings the operator process runs with ([`OperatorProcess`]), for a backend.
fn settings(backend: IsolationBackend) -> Settings {
    Settings {
        platform_namespaces: vec!["ingress-nginx".into()],
        isolation_backend: backend,
        ..Default::default()
    }
}

/// Installs the ClusterNetworkPolicy CRD from the pinned Go module and waits until it
/// serves.
async fn install_cluster_policy_crd(client: &Client) {
    let path = support::script("cluster-network-policy-crd.sh", &[]);
    kubectl_apply(&["--server-side", "-f", path.trim()]);
    let crds = Api::all(client.clone());
    support::wait_established(&crds, customer_operator::api::CLUSTER_NETWORK_POLICY_CRD).await;
}

/// Applies the customer roles as `kubectl` would, with Helm's field manager.
fn apply_roles(roles: &[serde_json::Value]) {
    let file = std::env::temp_dir().join(format!("{}.yaml", support::unique("customer-roles")));
    let text: Vec<String> = roles
        .iter()
        .map(|r| serde_yaml::to_string(r).unwrap())
        .collect();
    std::fs::write(&file, text.join("---\n")).unwrap();
    let path = file.to_string_lossy().to_string();
    let flags = [
        "--server-side",
        "--force-conflicts",
        "--field-manager",
        "helm",
    ];
    kubectl_apply(&[&flags[..], &["-f", &path]].concat());
    let _ = std::fs::remove_file(&file);
}

/// `kubectl apply` with these arguments; panics with its message when it fails.
fn kubectl_apply(args: &[&str]) {
    let out = support::kubectl()
        .arg("apply")
        .args(args)
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl apply {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Puts the chart's default customer roles back when dropped (the other test binaries
/// rely on customers writing no NetworkPolicy), even when the test fails.
struct DefaultRolesAfter;

impl Drop for DefaultRolesAfter {
    fn drop(&mut self) {
        apply_roles(&support::customer_roles(&[]));
    }
}

fn operator_log(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    dir.join(format!("{name}-operator.log"))
}

/// The HTTP status of a failed request, 0 for success.
fn code<T>(result: kube::Result<T>) -> u16 {
    match result {
        Ok(_) => 0,
        Err(kube::Error::Api(s)) => s.code,
        Err(other) => panic!("not an API answer: {other}"),
    }
}

/// A NetworkPolicy over every pod of `namespace` that allows everything both ways, or
/// (with `allow` false) denies everything both ways.
fn own_policy(namespace: &str, name: &str, allow: bool) -> NetworkPolicy {
    let rules = if allow { json!([{}]) } else { json!([]) };
    serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                 "ingress": rules, "egress": rules}
    }))
    .unwrap()
}

/// Waits until every listed customer's objects in the cluster are exactly what
/// `desired/` builds under `backend`, and no NetworkPolicy or ClusterNetworkPolicy of the
/// operator is left over from the other one.
async fn wait_converged(client: &Client, names: &[String], backend: IsolationBackend) {
    let settings = settings(backend);
    support::wait_within(
        Duration::from_secs(180),
        &format!("{} customers converged under {backend:?}", names.len()),
        || {
            let settings = settings.clone();
            async move {
                let dir = support::converged::directory(client).await;
                for name in names {
                    let customer = dir.customers.get(name)?;
                    let found =
                        support::converged::differences(client, customer, &dir, &settings).await;
                    if !found.is_empty() {
                        return None;
                    }
                }
                Some(())
            }
        },
    )
    .await;
}

fn customer_spec(namespaces: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    let mut spec = json!({"displayName": "Tier test", "contactEmail": "ops@tier.example", "namespaces": namespaces});
    for (key, value) in extra.as_object().unwrap() {
        spec[key] = value.clone();
    }
    spec
}

#[tokio::test(flavor = "multi_thread")]
async fn customers_write_their_own_network_policies_under_the_admin_tier() {
    let _serial = SERIAL.lock().await;
    let client = support::client().await;
    install_cluster_policy_crd(&client).await;
    let _restore = DefaultRolesAfter;
    let carol = support::as_user("carol").await;
    let (a, b) = (support::unique("tier-a"), support::unique("tier-b"));
    let a2 = format!("{a}-two");
    let admin = json!({"access": {"admins": [{"kind": "User", "name": "carol"}]}});
    support::create_customer(
        &client,
        &a,
        customer_spec(json!([{}, {"name": "two"}]), admin),
    )
    .await;
    support::create_customer(&client, &b, customer_spec(json!([{}]), json!({}))).await;
    let names = vec![a.clone(), b.clone()];

    // The NetworkPolicy backend, with the chart's default roles: carol may not write a
    // NetworkPolicy in her own namespace.
    apply_roles(&support::customer_roles(&[]));
    let mut operator =
        OperatorProcess::start_with(&support::kubeconfig(), &operator_log("np"), NP_BACKEND);
    wait_converged(&client, &names, IsolationBackend::NetworkPolicy).await;
    support::wait_condition(&client, &a, "AccessGranted", "True").await;
    let hers: Api<NetworkPolicy> = Api::namespaced(carol.clone(), &a);
    let allow_all = own_policy(&a, "carol-allow-all", true);
    support::wait_for("carol is admin in her namespace", || {
        let hers = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(carol.clone(), &a);
        async move { hers.list(&Default::default()).await.ok() }
    })
    .await;
    assert_eq!(
        code(hers.create(&PostParams::default(), &allow_all).await),
        403,
        "under the NetworkPolicy backend a customer admin writes no NetworkPolicy"
    );
    operator.kill();

    // The ClusterNetworkPolicy backend, with the roles that let customers write them.
    apply_roles(&support::customer_roles(&[
        "--set",
        "operator.isolationBackend=ClusterNetworkPolicy",
        "--set",
        "customerRoles.allowNetworkPolicies=true",
    ]));
    let mut operator =
        OperatorProcess::start_with(&support::kubeconfig(), &operator_log("cnp"), CNP_BACKEND);
    wait_converged(&client, &names, IsolationBackend::ClusterNetworkPolicy).await;
    assert_render_prints_what_the_apiserver_holds(&client, &names).await;
    support::wait_for("carol may write NetworkPolicies", || {
        let hers = hers.clone();
        let allow_all = allow_all.clone();
        async move {
            let dry = PostParams {
                dry_run: true,
                ..Default::default()
            };
            (code(hers.create(&dry, &allow_all).await) == 0).then_some(())
        }
    })
    .await;
    hers.create(&PostParams::default(), &allow_all)
        .await
        .expect("carol writes an allow-all NetworkPolicy in her namespace");
    let in_two: Api<NetworkPolicy> = Api::namespaced(carol.clone(), &a2);
    in_two
        .create(
            &PostParams::default(),
            &own_policy(&a2, "carol-deny-all", false),
        )
        .await
        .expect("carol writes a deny-all NetworkPolicy in her other namespace");

    // verify, on what the apiserver holds: nothing between the two customers.
    let world = verify::world_from_cluster(&client).await.unwrap();
    let cnp_settings = settings(IsolationBackend::ClusterNetworkPolicy);
    let report = verify::verify(&world, &cnp_settings).unwrap();
    let ours: Vec<_> = report
        .undeclared
        .iter()
        .filter(|f| names.contains(&f.to))
        .collect();
    assert!(ours.is_empty(), "undeclared openings: {ours:#?}");
    assert!(
        !report.links.iter().any(|l| {
            (l.from == a && l.to == b || l.from == b && l.to == a) && !l.admitted.is_empty()
        }),
        "no port of either customer admits the other: {:#?}",
        report.links
    );
    // Her policies decide among her own namespaces: the allow-all one lets the second
    // namespace in, the deny-all one keeps everything out of the second.
    let model = verify::model(&world, &cnp_settings).unwrap();
    let probe = |from: &str, to: &str| Probe {
        from: Pod::new(from, &[("app", "web")]),
        to: Pod::new(to, &[("app", "web")]),
        port: 8080,
        protocol: customer_operator::api::Protocol::Tcp,
    };
    let verdict = |from: &str, to: &str| model.network.check(&probe(from, to));
    assert!(
        !verdict(&a, &a2).allowed(),
        "her deny-all policy keeps {a} out of {a2}: {}",
        verdict(&a, &a2)
    );
    assert!(
        verdict(&a, &a).allowed(),
        "{a} inside itself: {}",
        verdict(&a, &a)
    );
    assert!(
        !verdict(&b, &a).allowed(),
        "her allow-all policy does not let {b} in: {}",
        verdict(&b, &a)
    );
    assert!(
        !verdict(&a, &b).allowed(),
        "nor {a} out to {b}: {}",
        verdict(&a, &b)
    );
    // The operator's own check agrees.
    support::wait_for("a re-checked after carol's policies", || {
        let customers: Api<Customer> = Api::all(client.clone());
        let a = a.clone();
        async move {
            let c = customers.get(&a).await.ok()?;
            let isolated = c
                .status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "NetworkIsolated")?;
            (isolated.status == "True").then_some(())
        }
    })
    .await;
    // Her policies are hers: the operator neither changed nor pruned them.
    for (api, name) in [(&hers, "carol-allow-all"), (&in_two, "carol-deny-all")] {
        let live = api.get(name).await.expect("her policy stays");
        assert!(!live.labels().contains_key(LABEL_MANAGED_BY));
    }
    support::delete_customers(&client, &names).await;
    operator.kill();
    let policies: Api<ClusterNetworkPolicy> = Api::all(client.clone());
    for name in &names {
        for policy in customer_operator::desired::cluster_policy::names(name) {
            assert!(
                policies.get_opt(&policy).await.unwrap().is_none(),
                "{policy} is gone with its customer"
            );
        }
    }
}

/// `customer-operator render` on the Customers as the apiserver holds them prints
/// exactly the ClusterNetworkPolicies the apiserver holds (spec and labels; the
/// ownership record is the Customer's uid, which render prints empty).
async fn assert_render_prints_what_the_apiserver_holds(client: &Client, names: &[String]) {
    let customers: Api<Customer> = Api::all(client.clone());
    let mut docs = Vec::new();
    for name in names {
        let mut value = serde_json::to_value(customers.get(name).await.unwrap()).unwrap();
        value["metadata"] = json!({"name": name});
        value.as_object_mut().unwrap().remove("status");
        docs.push(serde_yaml::to_string(&value).unwrap());
    }
    let file = std::env::temp_dir().join(format!("{}.yaml", support::unique("tier-render")));
    std::fs::write(&file, docs.join("---\n")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_customer-operator"))
        .arg("render")
        .arg("-f")
        .arg(&file)
        .args(CNP_BACKEND)
        .args(["--platform-namespaces", "ingress-nginx"])
        .output()
        .expect("render runs");
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Vec<ClusterNetworkPolicy> = objects_of_kind(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(printed.len(), 2 * names.len(), "two per customer");
    let live: Api<ClusterNetworkPolicy> = Api::all(client.clone());
    for policy in printed {
        let held = live.get(&policy.name_any()).await.unwrap();
        assert_eq!(held.spec, policy.spec, "{}", policy.name_any());
        assert_eq!(held.labels(), policy.labels(), "{}", policy.name_any());
    }
}

/// The objects of kind `K` in a multi-document YAML text.
fn objects_of_kind<K: Resource<DynamicType = ()> + DeserializeOwned>(text: &str) -> Vec<K> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(text)
        .filter_map(|doc| serde_yaml::Value::deserialize(doc).ok())
        .filter(|v| v.get("kind").and_then(|k| k.as_str()) == Some(K::kind(&()).as_ref()))
        .map(|v| serde_yaml::from_value(v).unwrap())
        .collect()
}

/// A recorded change of a NetworkPolicy or ClusterNetworkPolicy.
enum Change {
    Policy(WatchEvent<NetworkPolicy>),
    ClusterPolicy(WatchEvent<ClusterNetworkPolicy>),
}

/// The resourceVersion of a watch event's object (etcd's revision: one order across
/// kinds).
fn revision<K: Resource>(event: &WatchEvent<K>) -> Option<u64> {
    match event {
        WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => {
            o.resource_version()?.parse().ok()
        }
        _ => None,
    }
}

/// Watches every change of kind `K` from `version` on, until `stop` is set.
fn record<K>(
    api: Api<K>,
    version: String,
    into: fn(WatchEvent<K>) -> Change,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<Vec<(u64, Change)>>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    tokio::spawn(async move {
        let mut out = Vec::new();
        let mut version = version;
        let mut stop = stop;
        while !*stop.borrow() {
            let params = WatchParams::default().timeout(10);
            let mut events = api.watch(&params, &version).await.unwrap().boxed();
            loop {
                tokio::select! {
                    next = events.try_next() => match next.unwrap() {
                        Some(event) => {
                            if let Some(at) = revision(&event) {
                                version = at.to_string();
                                out.push((at, into(event)));
                            }
                        }
                        None => break,
                    },
                    _ = stop.changed() => break,
                }
            }
        }
        out
    })
}

/// Keyed by (namespace, name).
type Objects<K> = BTreeMap<(String, String), K>;

fn keyed<K: Resource>(items: Vec<K>) -> Objects<K> {
    items
        .into_iter()
        .map(|o| ((o.namespace().unwrap_or_default(), o.name_any()), o))
        .collect()
}

fn replay<K: Resource>(objects: &mut Objects<K>, event: WatchEvent<K>) {
    match event {
        WatchEvent::Added(o) | WatchEvent::Modified(o) => {
            objects.insert((o.namespace().unwrap_or_default(), o.name_any()), o);
        }
        WatchEvent::Deleted(o) => {
            objects.remove(&(o.namespace().unwrap_or_default(), o.name_any()));
        }
        _ => {}
    }
}

/// Restarts the operator with `backend` while recording every policy change; then
/// replays the changes one by one, checking after each that no customer of `names` is
/// reachable where it declares nothing. Returns the number of changes checked.
async fn switch_and_check(
    client: &Client,
    names: &[String],
    operator: &mut OperatorProcess,
    backend: IsolationBackend,
) -> usize {
    let policies: Api<NetworkPolicy> = Api::all(client.clone());
    let cluster_policies: Api<ClusterNetworkPolicy> = Api::all(client.clone());
    let listed = policies.list(&ListParams::default()).await.unwrap();
    let listed_cluster = cluster_policies.list(&ListParams::default()).await.unwrap();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let recorders = (
        record(
            policies.clone(),
            listed.metadata.resource_version.clone().unwrap(),
            Change::Policy,
            stop.clone(),
        ),
        record(
            cluster_policies.clone(),
            listed_cluster.metadata.resource_version.clone().unwrap(),
            Change::ClusterPolicy,
            stop,
        ),
    );
    let mut world = verify::world_from_cluster(client).await.unwrap();
    let mut np = keyed(listed.items);
    let mut cnp = keyed(listed_cluster.items);
    let settings = settings(backend);
    assert_isolated(&mut world, &np, &cnp, &settings, names, "before the switch");

    operator.kill();
    let flags = match backend {
        IsolationBackend::NetworkPolicy => NP_BACKEND,
        IsolationBackend::ClusterNetworkPolicy => CNP_BACKEND,
    };
    *operator = OperatorProcess::start_with(
        &support::kubeconfig(),
        &operator_log(&format!("switch-{backend:?}")),
        flags,
    );
    wait_converged(client, names, backend).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_tx.send(true).unwrap();
    let mut changes = recorders.0.await.unwrap();
    changes.extend(recorders.1.await.unwrap());
    changes.sort_by_key(|(at, _)| *at);
    let count = changes.len();
    let started = Instant::now();
    for (at, change) in changes {
        match change {
            Change::Policy(event) => replay(&mut np, event),
            Change::ClusterPolicy(event) => replay(&mut cnp, event),
        }
        assert_isolated(
            &mut world,
            &np,
            &cnp,
            &settings,
            names,
            &format!("at resourceVersion {at}"),
        );
    }
    let operator_policies = |labels: Option<&BTreeMap<String, String>>| {
        labels
            .and_then(|l| l.get(LABEL_MANAGED_BY))
            .map(String::as_str)
            == Some(MANAGED_BY)
    };
    let (left_np, left_cnp) = (
        np.values()
            .filter(|p| operator_policies(p.metadata.labels.as_ref()))
            .count(),
        cnp.values()
            .filter(|p| operator_policies(p.metadata.labels.as_ref()))
            .count(),
    );
    support::figures(&format!(
        "switch to {backend:?}: {count} policy changes replayed, isolation checked after each ({:.1} s), 0 openings; after it the operator holds {left_np} NetworkPolicies and {left_cnp} ClusterNetworkPolicies",
        started.elapsed().as_secs_f64()
    ));
    count
}

fn assert_isolated(
    world: &mut World,
    np: &Objects<NetworkPolicy>,
    cnp: &Objects<ClusterNetworkPolicy>,
    settings: &Settings,
    names: &[String],
    when: &str,
) {
    world.policies = np.values().cloned().collect();
    world.cluster_policies = cnp.values().cloned().collect();
    let report = verify::verify(world, settings).unwrap();
    let ours: Vec<String> = report
        .undeclared
        .iter()
        .filter(|f| names.contains(&f.to))
        .map(|f| f.summary())
        .collect();
    // Into these customers: what another test left behind may be open itself, and
    // that is its own ingress, not theirs.
    assert!(ours.is_empty(), "{when}: openings {ours:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn switching_backends_never_leaves_a_customer_open() {
    let _serial = SERIAL.lock().await;
    let client = support::client().await;
    install_cluster_policy_crd(&client).await;
    let count = support::process::setting("CUSTOMER_OPERATOR_SWITCH_CUSTOMERS", 50) as usize;
    let prefix = support::unique("sw");
    let names: Vec<String> = (0..count).map(|i| format!("{prefix}-{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        // Every fifth has a second namespace; every seventh lets its neighbour in on
        // one port, so declared connections are part of what is checked.
        let namespaces = if i % 5 == 0 {
            json!([{}, {"name": "b"}])
        } else {
            json!([{}])
        };
        let extra = if i % 7 == 1 {
            json!({"network": {"allowFrom": [{"customer": names[i - 1], "ports": [{"port": 8443}]}]}})
        } else {
            json!({})
        };
        support::create_customer(&client, name, customer_spec(namespaces, extra)).await;
    }
    let mut operator = OperatorProcess::start_with(
        &support::kubeconfig(),
        &operator_log("switch-start"),
        NP_BACKEND,
    );
    wait_converged(&client, &names, IsolationBackend::NetworkPolicy).await;
    let there = switch_and_check(
        &client,
        &names,
        &mut operator,
        IsolationBackend::ClusterNetworkPolicy,
    )
    .await;
    let back = switch_and_check(
        &client,
        &names,
        &mut operator,
        IsolationBackend::NetworkPolicy,
    )
    .await;
    assert!(
        there >= 2 * count && back >= 2 * count,
        "each switch writes and removes policies of every customer ({there}, {back} changes)"
    );
    let namespaces: Api<Namespace> = Api::all(client.clone());
    assert!(namespaces.get_opt(&names[0]).await.unwrap().is_some());
    support::delete_customers(&client, &names).await;
    operator.kill();
}
