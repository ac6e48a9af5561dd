//! A chart upgrade under live customers (issue 22, part 4): the previous chart (the one
//! before the newest commit that changed `charts/customer-operator`, or this commit's
//! own when the working tree changes it) is installed with Helm, with that commit's
//! `examples/` and `CUSTOMER_OPERATOR_UPGRADE_CUSTOMERS` [40] more Customers, and the
//! operator binary runs as the chart's ServiceAccount until all are Ready. Then the
//! operator stops (as its old pod would), `helm upgrade` brings this commit's chart,
//! and the operator starts again. After it has reconciled every Customer twice (its
//! start and one full resync), no child and no stored object of the API may have been
//! written, and every stored object must validate against the upgraded CRDs (their
//! schemas and CEL rules, checked without the apiserver's ratcheting).
//!
//! `CUSTOMER_OPERATOR_UPGRADE_FROM` names another commit to upgrade from. Helm takes over
//! no object it did not create, so the test needs a cluster no other test has touched:
//! it is ignored by a plain `cargo test`, and `scripts/reliability.sh` runs it on a
//! control plane of its own (so does `scripts/test.sh`, at 40 customers).
//!
//! The operator binary is this commit's on both sides: the test is about what the
//! chart's objects (CRDs, RBAC, admission policies, API priority) do to a running
//! installation, not about an older operator's writes.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use customer_operator::api::{self, Customer};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use support::metrics::{http_get, series};
use support::process::{OperatorProcess, setting};

const RELEASE: &str = support::CHART_NAMESPACE;

/// The kinds of the API (from the CRDs the types generate), as (kind, CRD name, the
/// resource to list them with).
fn kinds() -> Vec<(String, String, ApiResource)> {
    api::crds()
        .into_iter()
        .map(|crd| {
            let names = &crd.spec.names;
            let gvk =
                GroupVersionKind::gvk(&crd.spec.group, &crd.spec.versions[0].name, &names.kind);
            let resource = ApiResource::from_gvk_with_plural(&gvk, &names.plural);
            (names.kind.clone(), crd.name_any(), resource)
        })
        .collect()
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Unpacks the chart and examples of the commit to upgrade from into `into`; returns
/// that commit, described.
fn previous_release(into: &Path) -> String {
    let chart = "charts/customer-operator";
    let from = match std::env::var("CUSTOMER_OPERATOR_UPGRADE_FROM") {
        Ok(from) => from,
        Err(_) if git(&["diff", "--quiet", "HEAD", "--", chart]).is_none() => "HEAD".into(),
        Err(_) => {
            let last = git(&["log", "-1", "--format=%H", "--", chart]).expect("git log");
            format!("{last}^")
        }
    };
    std::fs::create_dir_all(into).unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    // A shallow clone without that commit, or no git at all: upgrade from the working
    // tree's own chart, and say so in the figures.
    let resolved = git(&["rev-parse", "--verify", &format!("{from}^{{commit}}")])
        .or_else(|| git(&["rev-parse", "--verify", "HEAD^{commit}"]));
    let (command, described) = match resolved {
        Some(commit) => (
            format!(
                "git -C '{root}' archive '{commit}' {chart} examples | tar -x -C '{}'",
                into.display()
            ),
            git(&["log", "-1", "--format=%h of %cs", &commit]).unwrap_or(commit),
        ),
        None => (
            format!(
                "mkdir -p '{0}/charts' && cp -r '{root}/{chart}' '{0}/charts/' && cp -r '{root}/examples' '{0}/'",
                into.display()
            ),
            "the working tree (no git history)".to_string(),
        ),
    };
    let unpacked = Command::new("sh").arg("-c").arg(&command).status().unwrap();
    assert!(unpacked.success(), "{command}");
    described
}

/// Every stored object of the API, as (kind, namespace, name) with its resourceVersion
/// and the object itself.
async fn stored(client: &Client) -> BTreeMap<(String, String, String), (String, Value)> {
    let mut out = BTreeMap::new();
    for (kind, _, resource) in kinds() {
        for object in Api::<DynamicObject>::all_with(client.clone(), &resource)
            .list(&Default::default())
            .await
            .unwrap()
        {
            let key = (
                kind.clone(),
                object.namespace().unwrap_or_default(),
                object.name_any(),
            );
            let version = object.resource_version().unwrap_or_default();
            out.insert(key, (version, serde_json::to_value(&object).unwrap()));
        }
    }
    out
}

/// The stored objects written between two readings, each with the parts that changed
/// (spec, status, labels, annotations, finalizers: before and after).
fn written_since(
    before: &BTreeMap<(String, String, String), (String, Value)>,
    after: &BTreeMap<(String, String, String), (String, Value)>,
) -> Vec<String> {
    let part = |object: &Value, path: &str| object.pointer(path).cloned().unwrap_or(Value::Null);
    after
        .iter()
        .filter_map(|(key, (version, now))| {
            let (old_version, then) = before.get(key)?;
            (old_version != version).then(|| {
                let changed: Vec<String> = [
                    "/spec",
                    "/status",
                    "/metadata/labels",
                    "/metadata/annotations",
                    "/metadata/finalizers",
                ]
                .into_iter()
                .filter(|path| part(then, path) != part(now, path))
                .map(|path| format!("{path}: {} -> {}", part(then, path), part(now, path)))
                .collect();
                format!("{key:?}: {changed:?}")
            })
        })
        .chain(
            after
                .keys()
                .filter(|key| !before.contains_key(*key))
                .map(|key| format!("{key:?}: created")),
        )
        .collect()
}

/// `kubectl apply -f` of a directory, tried until it succeeds (examples make namespaces
/// through the operator that later documents of theirs live in).
async fn apply_until_accepted(dir: &Path) {
    support::wait_within(Duration::from_secs(180), "examples applied", || {
        let out = support::kubectl()
            .args(["apply", "-f", dir.to_str().unwrap()])
            .output()
            .unwrap();
        async move {
            if !out.status.success() {
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            out.status.success().then_some(())
        }
    })
    .await;
}

fn spec(i: usize) -> Value {
    let mut spec = json!({
        "displayName": format!("Upgrade {i}"),
        "contactEmail": "ops@upgrade.example",
        "access": {"admins": [{"kind": "User", "name": format!("admin{i}")}]},
    });
    if i.is_multiple_of(3) {
        spec["namespaces"] = json!([{"name": "a"}, {"name": "b"}]);
    }
    if i.is_multiple_of(5) {
        spec["quota"] = json!({"hard": {"pods": "20", "requests.cpu": "2"}});
    }
    if i.is_multiple_of(7) {
        spec["network"] = json!({"isolation": "Strict"});
    }
    spec
}

/// How many Customer reconciles the operator at `address` has finished.
fn customer_reconciles(address: std::net::SocketAddr) -> Option<f64> {
    let (status, text) = http_get(address, "/metrics")?;
    (status == 200).then(|| {
        series(
            &text,
            "customer_operator_reconciles_total",
            &[("kind", "Customer")],
        )
        .unwrap_or(0.0)
    })
}

async fn wait_crds_established(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (_, name, _) in kinds() {
        support::wait_established(&crds, &name).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "installs the chart with Helm: run by scripts/reliability.sh on a control plane of its own"]
async fn a_chart_upgrade_under_live_customers_writes_nothing_and_keeps_them_valid() {
    let count = setting("CUSTOMER_OPERATOR_UPGRADE_CUSTOMERS", 40) as usize;
    let admin = support::admin_client().await;
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    assert!(
        crds.get_opt(&api::customer_crd().name_any())
            .await
            .unwrap()
            .is_none(),
        "needs a cluster without the CRDs (scripts/reliability.sh starts one)"
    );
    let old = std::env::temp_dir().join(support::unique("previous-release"));
    let from = previous_release(&old);
    let old_chart: PathBuf = old.join("charts/customer-operator");
    let out = support::helm(&[
        "install",
        RELEASE,
        old_chart.to_str().unwrap(),
        "-n",
        support::CHART_NAMESPACE,
        "--create-namespace",
    ]);
    assert!(out.contains("STATUS: deployed"), "{out}");
    wait_crds_established(&admin).await;

    let port = support::free_port();
    let address: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let log = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/chart-upgrade-operator.log");
    let _ = std::fs::remove_file(&log);
    let metrics = format!("127.0.0.1:{port}");
    let mut operator = OperatorProcess::start_with(
        &support::kubeconfig_as(&support::operator_user(), "chart-upgrade"),
        &log,
        &["--metrics-addr", &metrics],
    );

    // The previous release's examples and `count` more Customers, all Ready.
    apply_until_accepted(&old.join("examples")).await;
    let prefix = support::unique("up");
    let ours: Vec<String> = (0..count).map(|i| format!("{prefix}-{i}")).collect();
    support::create_customers(&admin, &ours, spec).await;
    let all: Vec<String> = Api::<Customer>::all(admin.clone())
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|c| c.name_any())
        .collect();
    assert!(
        all.len() > count,
        "the examples made Customers of their own"
    );
    support::converged_within(&admin, &all, &[], Duration::from_secs(900)).await;
    // Settled under the previous chart: one full resync (20 s) writes nothing, so any
    // write seen later is the upgrade's.
    let children_before = support::snapshot(&admin, &all).await;
    let stored_before = stored(&admin).await;
    tokio::time::sleep(Duration::from_secs(25)).await;
    assert!(
        support::snapshot_diff(&children_before, &support::snapshot(&admin, &all).await).is_empty(),
        "the previous release was not idle before the upgrade"
    );
    let idle = written_since(&stored_before, &stored(&admin).await);
    assert!(
        idle.is_empty(),
        "the previous release wrote stored objects while idle: {idle:#?}"
    );

    // The upgrade: the operator's pod goes, the chart changes, the new pod starts.
    operator.kill();
    let upgrade = Instant::now();
    let out = support::helm(&[
        "upgrade",
        RELEASE,
        support::CHART,
        "-n",
        support::CHART_NAMESPACE,
    ]);
    assert!(out.contains("REVISION: 2"), "{out}");
    wait_crds_established(&admin).await;
    let helm_seconds = upgrade.elapsed().as_secs_f64();
    let restart = Instant::now();
    operator.restart();
    let customers = all.len() as f64;
    let verified = support::wait_within(
        Duration::from_secs(600),
        "every Customer reconciled after the upgrade",
        || async move {
            let done = customer_reconciles(address)?;
            (done >= customers).then(|| restart.elapsed().as_secs_f64())
        },
    )
    .await;
    support::wait_within(
        Duration::from_secs(600),
        "a full resync after the upgrade",
        || async move { (customer_reconciles(address)? >= 2.0 * customers).then_some(()) },
    )
    .await;
    assert!(
        operator.exited().is_none(),
        "the operator exited; log: {}",
        log.display()
    );

    let children_diff =
        support::snapshot_diff(&children_before, &support::snapshot(&admin, &all).await);
    assert!(
        children_diff.is_empty(),
        "the upgrade wrote children: {children_diff:#?}"
    );
    let stored_after = stored(&admin).await;
    let written = written_since(&stored_before, &stored_after);
    assert!(
        written.is_empty(),
        "the upgrade wrote stored objects: {written:#?}"
    );

    // Every stored object is valid under the upgraded CRDs, as if created now.
    let mut invalid = Vec::new();
    for (kind, name, _) in kinds() {
        let crd = crds.get(&name).await.unwrap();
        assert_eq!(
            crd.status.as_ref().and_then(|s| s.stored_versions.clone()),
            Some(vec!["v1alpha1".to_string()]),
            "{kind}: stored versions"
        );
        let schema = serde_json::to_value(
            &crd.spec.versions[0]
                .schema
                .as_ref()
                .unwrap()
                .open_api_v3_schema,
        )
        .unwrap();
        for ((_, namespace, name), (_, object)) in stored_after.iter().filter(|(k, _)| k.0 == *kind)
        {
            if let Err(errors) = kube_cel::Validator::new().validate(&schema, object, None) {
                let errors: Vec<String> = errors
                    .into_vec()
                    .into_iter()
                    .map(|e| format!("{}: {}", e.field_path, e.message))
                    .collect();
                invalid.push(format!("{kind} {namespace}/{name}: {errors:?}"));
            }
        }
    }
    assert!(
        invalid.is_empty(),
        "stored objects the upgraded CRDs refuse: {invalid:#?}"
    );
    // And the current types read them all.
    Api::<Customer>::all(admin.clone())
        .list(&Default::default())
        .await
        .unwrap();

    std::fs::remove_dir_all(&old).unwrap();
    support::figures(&format!(
        "chart upgrade: from {from} to this commit's chart, with {} customers ({count} \
         created, the rest by the examples) and {} children; helm upgrade and CRDs \
         established in {helm_seconds:.1} s; the restarted operator reconciled every \
         customer in {verified:.1} s, then resynced; children written 0, stored objects \
         written 0 of {}; {} stored objects valid under the upgraded CRDs (schema and CEL)",
        all.len(),
        children_before.len(),
        stored_after.len(),
        stored_after.len(),
    ));
}
