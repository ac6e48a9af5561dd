//! Shared harness of the integration tests: finds or starts the test control plane and
//! installs the CRDs once per test binary.

#[allow(dead_code)]
pub mod converged;
#[allow(dead_code)]
pub mod layer;
#[allow(dead_code)]
pub mod metrics;
#[allow(dead_code)]
pub mod process;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use customer_operator::api::{self, FIELD_MANAGER};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, ResourceExt};

/// The kubeconfig of the test cluster: `KUBECONFIG` when the caller (scripts/test.sh, or
/// a person with an existing cluster) set it, else the one `scripts/control-plane.sh up`
/// writes after starting the local control plane.
pub fn kubeconfig() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Some(path) = std::env::var_os("KUBECONFIG") {
            return PathBuf::from(path);
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/control-plane.sh");
        let status = Command::new("bash")
            .arg(script)
            .arg("up")
            .status()
            .expect("bash runs");
        assert!(status.success(), "scripts/control-plane.sh up failed");
        let out = Command::new("bash")
            .arg(script)
            .arg("env")
            .output()
            .expect("bash runs");
        let text = String::from_utf8(out.stdout).unwrap();
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("export KUBECONFIG="))
            .expect("control-plane.sh env prints KUBECONFIG");
        PathBuf::from(line.trim_matches(|c| c == '"' || c == '\''))
    })
    .clone()
}

/// A client for the test cluster as its admin, with CRDs installed and established and
/// the chart's four customer ClusterRoles in place (once per test process).
pub async fn client() -> Client {
    let client = admin_client().await;
    install_crds(&client).await;
    install_customer_roles(&client).await;
    client
}

/// Applies the four customer ClusterRoles and the partner admins' one exactly as the
/// chart renders them, once per test process: without them a Customer's
/// `AccessGranted` is False.
pub async fn install_customer_roles(client: &Client) {
    static DONE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    DONE.get_or_init(|| async {
        let roles = customer_roles(&[]);
        assert_eq!(
            roles.len(),
            5,
            "the chart renders the four customer roles and the partner admins' role"
        );
        let skipped = apply_manifests(client, &roles, &PatchParams::apply("helm").force()).await;
        assert!(skipped.is_empty(), "{skipped:?}");
    })
    .await;
}

/// The four customer ClusterRoles and the partner admins' one as the chart renders them
/// with these extra arguments.
pub fn customer_roles(args: &[&str]) -> Vec<serde_json::Value> {
    render_chart(args)
        .into_iter()
        .filter(|doc| {
            doc["kind"] == "ClusterRole"
                && doc["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("customer-") && n != "customer-operator")
        })
        .collect()
}

/// A client for the test cluster as its admin, and nothing installed.
pub async fn admin_client() -> Client {
    let kubeconfig = Kubeconfig::read_from(kubeconfig()).expect("kubeconfig readable");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig valid");
    Client::try_from(config).expect("client")
}

/// Applies both CRDs (server-side apply, idempotent; without CEL rules where the
/// apiserver predates them) and waits until they serve.
pub async fn install_crds(client: &Client) {
    customer_operator::operate::install_crds(client)
        .await
        .expect("CRDs installed and established");
}

/// Polls `check` every 100 ms until it returns `Some`, for at most 30 s.
pub async fn wait_for<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    wait_within(Duration::from_secs(30), what, check).await
}

/// Polls `check` every 100 ms until it returns `Some`, for at most `limit`.
pub async fn wait_within<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (up to 90 s) until the named object is gone.
#[allow(dead_code)]
pub async fn gone<K>(api: &Api<K>, name: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    wait_within(Duration::from_secs(90), &format!("{name} gone"), || {
        let api = api.clone();
        async move {
            api.get_opt(name)
                .await
                .ok()
                .and_then(|o| o.is_none().then_some(()))
        }
    })
    .await;
}

/// A name prefix unique to this test process, so reruns against a kept cluster never
/// meet objects of an earlier run.
#[allow(dead_code)]
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{:x}{:x}",
        std::process::id() % 4096,
        nanos % 65536
    )
}

/// Starts the operator in this test process (once per test binary), on its own thread
/// and runtime, with a client that counts its write requests. Resyncs every 3 s so
/// that tests see periodic checks quickly. With `CUSTOMER_OPERATOR_TEST_RBAC=chart` it
/// runs with the rights of the Helm chart's ServiceAccount alone (see
/// [`as_configured_operator`]).
#[allow(dead_code)]
pub fn operator() -> customer_operator::controller::counting::WriteCounter {
    operator_with(Duration::from_secs(3)).0
}

/// Starts the operator in this test process (once per test binary; the first call's
/// `resync` wins) and returns its write and reconcile counters.
#[allow(dead_code)]
pub fn operator_with(
    resync: Duration,
) -> (
    customer_operator::controller::counting::WriteCounter,
    customer_operator::controller::counting::ReconcileCounter,
) {
    use customer_operator::controller::{
        self,
        counting::{ReconcileCounter, WriteCounter},
    };
    static COUNTERS: OnceLock<(WriteCounter, ReconcileCounter)> = OnceLock::new();
    COUNTERS
        .get_or_init(|| {
            let counters = (WriteCounter::default(), ReconcileCounter::default());
            let (writes, reconciles) = counters.clone();
            let path = kubeconfig();
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            let _ = tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "warn".into()),
                )
                .with_writer(std::io::stderr)
                .try_init();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Runtime::new().expect("runtime");
                runtime.block_on(async move {
                    let plain = admin_client().await;
                    install_crds(&plain).await;
                    let client =
                        kube::client::ClientBuilder::try_from(operator_config(&path, &plain).await)
                            .expect("client builder")
                            .with_layer(&writes)
                            .build();
                    let options = operator_options(resync, reconciles);
                    ready_tx.send(()).expect("test waits");
                    controller::run(client, options)
                        .await
                        .expect("operator runs");
                });
            });
            ready_rx.recv().expect("operator thread starts");
            counters
        })
        .clone()
}

/// The configuration of a test's in-process operator: the admin's of `kubeconfig`, or
/// the chart's ServiceAccount's with `CUSTOMER_OPERATOR_TEST_RBAC=chart`
/// ([`as_configured_operator`]).
#[allow(dead_code)]
pub async fn operator_config(kubeconfig: &std::path::Path, admin: &Client) -> Config {
    let file = Kubeconfig::read_from(kubeconfig).expect("kubeconfig readable");
    let config = Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig valid");
    as_configured_operator(config, admin).await
}

/// The options of a test's in-process operator: platform namespace `ingress-nginx`,
/// concurrency 8.
#[allow(dead_code)]
pub fn operator_options(
    resync: Duration,
    reconciles: customer_operator::controller::counting::ReconcileCounter,
) -> customer_operator::controller::Options {
    customer_operator::controller::Options {
        settings: customer_operator::settings::Settings {
            platform_namespaces: vec!["ingress-nginx".into()],
            ..Default::default()
        },
        concurrency: 8,
        resync,
        reconciles,
    }
}

/// Waits until an Event of this type and reason exists about the named object
/// (`events.k8s.io/v1` Events in `default`, where the operator writes them about
/// cluster-scoped Customers).
#[allow(dead_code)]
pub async fn event_seen(client: &Client, object: &str, type_: &str, reason: &str) {
    use k8s_openapi::api::events::v1::Event;
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let selector = format!("regarding.name={object}");
    wait_for(&format!("{type_} {reason} event for {object}"), || {
        let (events, selector) = (events.clone(), selector.clone());
        async move {
            let list = events
                .list(&kube::api::ListParams::default().fields(&selector))
                .await
                .ok()?;
            list.items
                .iter()
                .any(|e| e.reason.as_deref() == Some(reason) && e.type_.as_deref() == Some(type_))
                .then_some(())
        }
    })
    .await;
}

/// Creates a Customer with this spec.
#[allow(dead_code)]
pub async fn create_customer(
    client: &Client,
    name: &str,
    spec: serde_json::Value,
) -> api::Customer {
    let customer: api::Customer = serde_json::from_value(serde_json::json!({
        "apiVersion": "customers.dev/v1alpha1", "kind": "Customer",
        "metadata": {"name": name}, "spec": spec
    }))
    .unwrap();
    Api::<api::Customer>::all(client.clone())
        .create(&Default::default(), &customer)
        .await
        .unwrap()
}

/// Creates these Customers, 8 at a time, the i-th with `spec(i)`.
#[allow(dead_code)]
pub async fn create_customers(
    client: &Client,
    names: &[String],
    spec: fn(usize) -> serde_json::Value,
) {
    use futures::StreamExt;
    futures::stream::iter(names.iter().enumerate())
        .for_each_concurrent(8, |(i, name)| async move {
            create_customer(client, name, spec(i)).await;
        })
        .await;
}

/// Merges `spec` into the Customer's spec.
#[allow(dead_code)]
pub async fn patch_customer_spec(client: &Client, name: &str, spec: serde_json::Value) {
    Api::<api::Customer>::all(client.clone())
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({ "spec": spec })),
        )
        .await
        .unwrap();
}

/// Waits (up to 60 s) until the Customer's condition has `status` for its current
/// generation.
#[allow(dead_code)]
pub async fn wait_condition(
    client: &Client,
    name: &str,
    type_: &str,
    status: &str,
) -> api::Customer {
    use customer_operator::controller::status::condition;
    use kube::Resource;
    let api: Api<api::Customer> = Api::all(client.clone());
    wait_within(
        Duration::from_secs(60),
        &format!("{name} {type_}={status}"),
        || {
            let api = api.clone();
            async move {
                let c = api.get(name).await.ok()?;
                let current = c.status.as_ref()?.observed_generation == c.meta().generation;
                let cond = condition(c.status.as_ref(), type_)?;
                (current && cond.status == status).then_some(c)
            }
        },
    )
    .await
}

/// Waits until the Customer is Ready and then unchanged (its resourceVersion) for 2 s,
/// and returns it: a baseline for a test that shows something else leaves it alone.
#[allow(dead_code)]
pub async fn settled_customer(client: &Client, name: &str) -> api::Customer {
    use kube::ResourceExt;
    let api: Api<api::Customer> = Api::all(client.clone());
    let mut last = wait_condition(client, name, "Ready", "True").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = api.get(name).await.unwrap();
        if now.resource_version() == last.resource_version() {
            return now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} still changing after 30 s"
        );
        last = now;
    }
}

/// The `pods` of the customer quota in a namespace, if there is one.
#[allow(dead_code)]
pub async fn quota_pods(client: &Client, ns: &str) -> Option<String> {
    use k8s_openapi::api::core::v1::ResourceQuota;
    let quota = Api::<ResourceQuota>::namespaced(client.clone(), ns)
        .get_opt("customer-quota")
        .await
        .ok()??;
    Some(quota.spec?.hard?.get("pods")?.0.clone())
}

/// The namespaces the group-zone policy of `ns` admits (ingress), or `None` without one.
#[allow(dead_code)]
pub async fn zone_peers(client: &Client, ns: &str) -> Option<Vec<String>> {
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    let policy = Api::<NetworkPolicy>::namespaced(client.clone(), ns)
        .get_opt("customer-allow-group")
        .await
        .ok()??;
    let ingress = policy.spec?.ingress?;
    let selector = ingress[0].from.as_ref()?[0].namespace_selector.clone()?;
    selector.match_expressions?[0].values.clone()
}

/// Every object the operator keeps for these customers (namespaces, NetworkPolicies,
/// RoleBindings, ResourceQuotas, LimitRanges, found by the `customers.dev/customer`
/// label), as (kind, namespace, name) with its uid and resourceVersion. Two equal
/// snapshots mean nothing was created, changed or deleted in between.
#[allow(dead_code)]
pub async fn snapshot(
    client: &Client,
    customers: &[String],
) -> std::collections::BTreeMap<(String, String, String), (String, String)> {
    use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota};
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    use k8s_openapi::api::rbac::v1::RoleBinding;
    let mut out = std::collections::BTreeMap::new();
    // Label selectors take a bounded set; ask in slices.
    for chunk in customers.chunks(50) {
        let selector = format!("{} in ({})", api::LABEL_CUSTOMER, chunk.join(","));
        let params = kube::api::ListParams::default().labels(&selector);
        snapshot_kind::<Namespace>(client, &params, &mut out).await;
        snapshot_kind::<NetworkPolicy>(client, &params, &mut out).await;
        snapshot_kind::<RoleBinding>(client, &params, &mut out).await;
        snapshot_kind::<ResourceQuota>(client, &params, &mut out).await;
        snapshot_kind::<LimitRange>(client, &params, &mut out).await;
    }
    out
}

async fn snapshot_kind<K>(
    client: &Client,
    params: &kube::api::ListParams,
    out: &mut std::collections::BTreeMap<(String, String, String), (String, String)>,
) where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let list = Api::<K>::all(client.clone())
        .list(params)
        .await
        .expect("list for the snapshot");
    for o in list.items {
        out.insert(
            (
                K::kind(&()).to_string(),
                o.namespace().unwrap_or_default(),
                o.name_any(),
            ),
            (
                o.uid().unwrap_or_default(),
                o.resource_version().unwrap_or_default(),
            ),
        );
    }
}

/// What differs between two snapshots, one line per object.
#[allow(dead_code)]
pub fn snapshot_diff(
    before: &std::collections::BTreeMap<(String, String, String), (String, String)>,
    after: &std::collections::BTreeMap<(String, String, String), (String, String)>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (key, value) in before {
        match after.get(key) {
            None => out.push(format!("gone: {key:?}")),
            Some(v) if v != value => out.push(format!("changed: {key:?} {value:?} -> {v:?}")),
            _ => {}
        }
    }
    for key in after.keys().filter(|k| !before.contains_key(*k)) {
        out.push(format!("new: {key:?}"));
    }
    out
}

/// Prints a line of reliability figures and appends it to
/// `target/reliability-figures.txt`, which `scripts/test.sh` shows at the end.
#[allow(dead_code)]
pub fn figures(line: &str) {
    use std::io::Write;
    println!("{line}");
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/reliability-figures.txt"
    );
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(file, "{line}");
    }
}

/// The Customer and CustomerGroup APIs, untyped, so that input the types would not
/// even decode reaches the apiserver as written.
#[allow(dead_code)]
pub fn untyped(client: &Client, kind: &str) -> Api<kube::api::DynamicObject> {
    let gvk = kube::api::GroupVersionKind::gvk(api::API_GROUP, "v1alpha1", kind);
    Api::all_with(client.clone(), &kube::api::ApiResource::from_gvk(&gvk))
}

/// Where the chart is.
pub const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/customer-operator");

/// The namespace and release name the tests install the chart's RBAC as.
pub const CHART_NAMESPACE: &str = "customer-operator";

/// Runs the helm CLI through `scripts/helm.sh` (built from its Go module on first use)
/// and returns its standard output; panics with its message when it fails.
#[allow(dead_code)]
pub fn helm(args: &[&str]) -> String {
    script("helm.sh", args)
}

/// Runs `scripts/<name>` with these arguments and returns its standard output; panics
/// with its message when it fails.
#[allow(dead_code)]
pub fn script(name: &str, args: &[&str]) -> String {
    let path = format!("{}/scripts/{name}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(&path)
        .args(args)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "scripts/{name} {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("the script prints UTF-8")
}

/// The chart rendered by Helm (`helm template` with these extra arguments), one JSON
/// value per manifest.
#[allow(dead_code)]
pub fn render_chart(args: &[&str]) -> Vec<serde_json::Value> {
    use serde::Deserialize;
    let mut all = vec![
        "template",
        CHART_NAMESPACE,
        CHART,
        "--namespace",
        CHART_NAMESPACE,
    ];
    all.extend_from_slice(args);
    let text = helm(&all);
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| serde_json::Value::deserialize(doc).expect("Helm renders YAML"))
        .filter(|doc| !doc.is_null())
        .collect()
}

/// The chart rendered for the cluster `client` talks to, the way `helm install` sees
/// it: that apiserver's version and every group/version and group/version/kind it
/// serves.
#[allow(dead_code)]
pub async fn render_chart_for(client: &Client, args: &[&str]) -> Vec<serde_json::Value> {
    let version = client.apiserver_version().await.expect("apiserver answers");
    let discovery = kube::Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    let mut api_versions = Vec::new();
    for group in discovery.groups() {
        for version in group.versions() {
            let gv = if group.name().is_empty() {
                version.to_string()
            } else {
                format!("{}/{version}", group.name())
            };
            for (resource, _) in group.versioned_resources(version) {
                api_versions.push(format!("{gv}/{}", resource.kind));
            }
            api_versions.push(gv);
        }
    }
    let kube_version = version.git_version.clone();
    let api_versions = api_versions.join(",");
    let mut all = vec![
        "--kube-version",
        kube_version.as_str(),
        "--api-versions",
        api_versions.as_str(),
    ];
    all.extend_from_slice(args);
    render_chart(&all)
}

/// Server-side applies rendered manifests with `params` (a dry run, or not), each to the
/// resource discovery finds for its kind; panics when the apiserver refuses one.
/// Returns the `apiVersion/kind` of those the cluster does not serve, not sent.
#[allow(dead_code)]
pub async fn apply_manifests(
    client: &Client,
    docs: &[serde_json::Value],
    params: &PatchParams,
) -> Vec<String> {
    use kube::api::{DynamicObject, GroupVersionKind};
    use kube::discovery::Scope;
    let discovery = kube::Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    let mut skipped = Vec::new();
    for doc in docs {
        let object: DynamicObject = serde_json::from_value(doc.clone()).expect("an object");
        let types = object.types.clone().expect("apiVersion and kind");
        let gvk = GroupVersionKind::try_from(&types).expect("a group/version/kind");
        let Some((resource, caps)) = discovery.resolve_gvk(&gvk) else {
            skipped.push(format!("{}/{}", types.api_version, types.kind));
            continue;
        };
        let api: Api<DynamicObject> = match (caps.scope, object.metadata.namespace.as_deref()) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &resource),
            (Scope::Namespaced, None) => {
                panic!("{} {} names no namespace", types.kind, object.name_any())
            }
            (Scope::Cluster, _) => Api::all_with(client.clone(), &resource),
        };
        api.patch(&object.name_any(), params, &Patch::Apply(doc))
            .await
            .unwrap_or_else(|e| panic!("{} {} refused: {e}", types.kind, object.name_any()));
    }
    skipped
}

/// The user the operator's ServiceAccount authenticates as.
#[allow(dead_code)]
pub fn operator_user() -> String {
    format!("system:serviceaccount:{CHART_NAMESPACE}:{CHART_NAMESPACE}")
}

/// Applies the chart's RBAC, exactly as rendered for the test cluster (the operator's
/// ServiceAccount, ClusterRoles, Roles and their bindings), as the admin, and returns
/// the ServiceAccount's user name.
#[allow(dead_code)]
pub async fn apply_chart_rbac(admin: &Client) -> String {
    use k8s_openapi::api::core::v1::Namespace;
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    let ns = serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
                                "metadata": {"name": CHART_NAMESPACE}});
    namespaces
        .patch(
            CHART_NAMESPACE,
            &PatchParams::apply(FIELD_MANAGER),
            &Patch::Apply(&ns),
        )
        .await
        .expect("operator namespace");
    let rbac_kinds = [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
    ];
    let rbac: Vec<serde_json::Value> = render_chart_for(admin, &[])
        .await
        .into_iter()
        .filter(|doc| rbac_kinds.contains(&doc["kind"].as_str().unwrap_or_default()))
        .collect();
    let applied = rbac.len();
    let skipped = apply_manifests(admin, &rbac, &PatchParams::apply("helm").force()).await;
    assert!(skipped.is_empty(), "RBAC kinds not served: {skipped:?}");
    assert!(
        applied >= 8,
        "the chart renders its RBAC ({applied} objects)"
    );
    operator_user()
}

/// The operator's client configuration: the admin's, unless
/// `CUSTOMER_OPERATOR_TEST_RBAC=chart`, which applies the chart's RBAC and impersonates
/// the chart's ServiceAccount, so the operator holds exactly the chart's rights.
#[allow(dead_code)]
pub async fn as_configured_operator(mut config: Config, admin: &Client) -> Config {
    match std::env::var("CUSTOMER_OPERATOR_TEST_RBAC").as_deref() {
        Ok("chart") => {
            let user = apply_chart_rbac(admin).await;
            eprintln!("operator runs as {user}, with the chart's RBAC only");
            config.auth_info.impersonate = Some(user);
            config
        }
        Ok("") | Err(_) => config,
        Ok(other) => panic!("CUSTOMER_OPERATOR_TEST_RBAC={other}: only \"chart\" is known"),
    }
}

/// A configuration that impersonates the chart's ServiceAccount, after applying the
/// chart's RBAC.
#[allow(dead_code)]
pub async fn chart_operator_config() -> Config {
    let admin = client().await;
    config_as(&apply_chart_rbac(&admin).await).await
}

/// The test cluster's admin configuration, impersonating `user` (the admin may).
#[allow(dead_code)]
pub async fn config_as(user: &str) -> Config {
    let kubeconfig = Kubeconfig::read_from(kubeconfig()).expect("kubeconfig readable");
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig valid");
    config.auth_info.impersonate = Some(user.to_string());
    config
}

/// A client as the token user `user`, from `kubeconfig-<user>` beside the admin's
/// kubeconfig (the control plane's token file).
#[allow(dead_code)]
pub async fn as_user(user: &str) -> Client {
    let path = kubeconfig().with_file_name(format!("kubeconfig-{user}"));
    let file = Kubeconfig::read_from(&path).expect("the token user's kubeconfig");
    let config = Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
        .await
        .expect("a valid kubeconfig");
    Client::try_from(config).expect("client")
}

/// Deletes these Customers and waits (up to 2 minutes) until they are gone, their
/// namespaces with them: a test that leaves refused or conflicting Customers behind
/// keeps the operators of later tests busy.
#[allow(dead_code)]
pub async fn delete_customers(client: &Client, names: &[String]) {
    let customers: Api<api::Customer> = Api::all(client.clone());
    for name in names {
        let _ = customers.delete(name, &Default::default()).await;
    }
    wait_within(
        Duration::from_secs(120),
        "the test's customers gone",
        || {
            let customers = customers.clone();
            async move {
                let list = customers.list(&Default::default()).await.ok()?;
                (!list.items.iter().any(|c| names.contains(&c.name_any()))).then_some(())
            }
        },
    )
    .await;
}

/// Waits until the named CRD is established (serves its kind).
#[allow(dead_code)]
pub async fn wait_established(crds: &Api<CustomResourceDefinition>, name: &str) {
    wait_for(&format!("CRD {name} established"), || async move {
        let crd = crds.get(name).await.ok()?;
        customer_operator::operate::is_established(&crd).then_some(())
    })
    .await;
}

/// A `kubectl` command for the test cluster: the control plane's own kubectl (built with
/// it, scripts/control-plane.sh), or the one on `PATH` for an existing cluster.
#[allow(dead_code)]
pub fn kubectl() -> Command {
    let existing = std::env::var("CUSTOMER_OPERATOR_TEST_CLUSTER").as_deref() == Ok("existing");
    let program = if existing {
        PathBuf::from("kubectl")
    } else {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/control-plane.sh");
        let out = Command::new("bash")
            .args([script, "bin"])
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "scripts/control-plane.sh bin: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("kubectl")
    };
    let mut command = Command::new(program);
    command.env("KUBECONFIG", kubeconfig());
    command
}

/// A refusal's message with field paths written with dots only: newer apiservers name
/// `spec.access.admins[0].kind` and `spec.quota.hard[pods]`, where the corpus says
/// `spec.access.admins.kind` and `spec.quota.hard.pods`.
#[allow(dead_code)]
pub fn without_indexes(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let index = after
            .find(']')
            .map(|close| &after[..close])
            .filter(|inside| !inside.is_empty() && !inside.contains([' ', '[', '"']));
        match index {
            // An index or a key of a path: `[0]` goes, `[pods]` becomes `.pods`.
            Some(inside) => {
                if !inside.chars().all(|c| c.is_ascii_digit()) {
                    out.push('.');
                    out.push_str(inside);
                }
                rest = &after[inside.len() + 1..];
            }
            None => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Creates a Partner with this spec and waits until its namespace exists and it is
/// Ready (its admins' RoleBinding in place).
#[allow(dead_code)]
pub async fn create_partner(client: &Client, name: &str, spec: serde_json::Value) {
    use k8s_openapi::api::core::v1::Namespace;
    let partner: api::Partner = serde_json::from_value(serde_json::json!({
        "apiVersion": "customers.dev/v1alpha1", "kind": "Partner",
        "metadata": {"name": name}, "spec": spec
    }))
    .unwrap();
    let partners: Api<api::Partner> = Api::all(client.clone());
    partners
        .create(&Default::default(), &partner)
        .await
        .unwrap();
    let namespace = api::partner_namespace(name);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    wait_for(&format!("namespace {namespace}"), || {
        let namespaces = namespaces.clone();
        let namespace = namespace.clone();
        async move { namespaces.get_opt(&namespace).await.ok()? }
    })
    .await;
    wait_for(&format!("Partner {name} Ready"), || {
        let partners = partners.clone();
        async move {
            let p = partners.get(name).await.ok()?;
            let ready = p
                .status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == customer_operator::controller::status::types::READY)?;
            (ready.status == "True").then_some(())
        }
    })
    .await;
}

/// Applies a CustomerClaim as `client` with strict field validation (as `kubectl apply`
/// does).
#[allow(dead_code)]
pub async fn apply_claim(
    client: &Client,
    namespace: &str,
    name: &str,
    spec: serde_json::Value,
) -> kube::Result<api::CustomerClaim> {
    Api::<api::CustomerClaim>::namespaced(client.clone(), namespace)
        .patch(
            name,
            &PatchParams::apply("selfservice-test").validation_strict(),
            &kube::api::Patch::Apply(serde_json::json!({
                "apiVersion": "customers.dev/v1alpha1", "kind": "CustomerClaim",
                "metadata": {"name": name}, "spec": spec
            })),
        )
        .await
}

/// The HTTP status of a failed request, 0 for success.
#[allow(dead_code)]
pub fn code<T>(result: kube::Result<T>) -> u16 {
    match result {
        Ok(_) => 0,
        Err(kube::Error::Api(s)) => s.code,
        Err(other) => panic!("not an API answer: {other}"),
    }
}

/// The least spec of a Customer or claim: a display name and a contact.
#[allow(dead_code)]
pub fn basic(display: &str) -> serde_json::Value {
    serde_json::json!({"displayName": display, "contactEmail": "ops@example.com"})
}

/// A loopback port nothing listens on just now, for an operator's HTTP endpoints.
#[allow(dead_code)]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// The admin's kubeconfig impersonating `user`, written to `target/<label>-kubeconfig`,
/// for an operator binary that should run as that user.
#[allow(dead_code)]
pub fn kubeconfig_as(user: &str, label: &str) -> PathBuf {
    let text = std::fs::read_to_string(kubeconfig()).expect("admin kubeconfig");
    let mut config: serde_yaml::Value = serde_yaml::from_str(&text).expect("kubeconfig yaml");
    for entry in config["users"]
        .as_sequence_mut()
        .expect("kubeconfig users")
        .iter_mut()
    {
        entry["user"]["as"] = user.into();
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("target/{label}-kubeconfig"));
    std::fs::write(&path, serde_yaml::to_string(&config).unwrap()).unwrap();
    path
}

/// Runs `scripts/control-plane.sh <verb> <component>` (stop or start the apiserver or
/// etcd of the test control plane); panics when it fails.
#[allow(dead_code)]
pub fn control_plane(verb: &str, component: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/control-plane.sh");
    let status = Command::new("bash")
        .args([script, verb, component])
        .status()
        .expect("bash runs");
    assert!(
        status.success(),
        "control-plane.sh {verb} {component} failed"
    );
}

/// Waits, up to `limit`, until the `living` Customers are Ready for their generation
/// and the `dead` ones are gone.
#[allow(dead_code)]
pub async fn converged_within(
    client: &Client,
    living: &[String],
    dead: &[String],
    limit: Duration,
) {
    use customer_operator::controller::status::{condition, types};
    use kube::Resource;
    let customers: Api<api::Customer> = Api::all(client.clone());
    wait_within(limit, "convergence", || {
        let customers = customers.clone();
        async move {
            let list = customers.list(&Default::default()).await.ok()?;
            let by_name: std::collections::BTreeMap<String, &api::Customer> =
                list.items.iter().map(|c| (c.name_any(), c)).collect();
            let ready = living.iter().all(|n| {
                by_name.get(n).is_some_and(|c| {
                    condition(c.status.as_ref(), types::READY).is_some_and(|r| {
                        r.status == "True" && r.observed_generation == c.meta().generation
                    })
                })
            });
            let gone = dead.iter().all(|d| !by_name.contains_key(d));
            (ready && gone).then_some(())
        }
    })
    .await;
}

/// Waits until the claim's Ready condition, for its generation, has this status and
/// reason; returns the claim.
#[allow(dead_code)]
pub async fn wait_claim(
    client: &Client,
    namespace: &str,
    name: &str,
    status: &str,
    reason: &str,
) -> api::CustomerClaim {
    wait_claim_saying(client, namespace, name, status, reason, "").await
}

/// Waits until the claim's Ready condition, for its generation, has this status and
/// reason and a message containing `says`; returns the claim. A reason alone can be
/// reported early with another message (a peer not yet seen, say) and change later.
#[allow(dead_code)]
pub async fn wait_claim_saying(
    client: &Client,
    namespace: &str,
    name: &str,
    status: &str,
    reason: &str,
    says: &str,
) -> api::CustomerClaim {
    use customer_operator::controller::status::types;
    let claims: Api<api::CustomerClaim> = Api::namespaced(client.clone(), namespace);
    wait_for(
        &format!("claim {namespace}/{name} Ready={status} {reason} saying {says:?}"),
        || {
            let claims = claims.clone();
            async move {
                let c = claims.get(name).await.ok()?;
                let ready = c
                    .status
                    .as_ref()?
                    .conditions
                    .iter()
                    .find(|c| c.type_ == types::READY)?;
                let current = c.status.as_ref()?.observed_generation == c.metadata.generation;
                (current
                    && ready.status == status
                    && ready.reason == reason
                    && ready.message.contains(says))
                .then_some(c.clone())
            }
        },
    )
    .await
}

/// The message of the claim's Ready condition.
#[allow(dead_code)]
pub fn ready_message(claim: &api::CustomerClaim) -> String {
    use customer_operator::controller::status::types;
    claim
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == types::READY))
        .map(|c| c.message.clone())
        .unwrap_or_default()
}
