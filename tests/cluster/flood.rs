//! API Priority and Fairness (issue 22, part 3): the chart's FlowSchema and priority level
//! keep the operator working while another client floods the apiserver, and the operator
//! rides out the 429s (with the server's Retry-After) of its own level.
//!
//! The test apiserver runs with few seats (`--max-requests-inflight 6
//! --max-mutating-requests-inflight 4`, set by `scripts/reliability.sh`), so that a flood
//! from one test process fills the suggested `workload-low` level that every
//! ServiceAccount shares. The operator binary runs as the chart's ServiceAccount
//! (impersonated, with the chart's RBAC), as it would in a cluster; the flooder is
//! another ServiceAccount. What the apiserver counted (its `/metrics`) shows where each
//! one's requests went.
//!
//! Ignored by a plain `cargo test`: it needs a control plane of its own.
//! `scripts/reliability.sh` (and so `scripts/test.sh`) runs it. Settings:
//! `CUSTOMER_OPERATOR_FLOOD_CUSTOMERS` [30] customers created during the flood,
//! `CUSTOMER_OPERATOR_FLOOD_CLIENTS` [320] concurrent requests of the flooder.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use customer_operator::api::Customer;
use customer_operator::controller::status::{condition, types};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use support::process::{OperatorProcess, setting};

/// The flooding identity: a ServiceAccount, so that by default it lands in the same
/// priority level (workload-low) as the operator's ServiceAccount would.
const FLOODER: &str = "system:serviceaccount:flood:flooder";

/// The sum of every sample of `metric` whose labels include `label="value"`, from the
/// apiserver's `/metrics`.
async fn counted(admin: &Client, metric: &str, label: &str, value: &str) -> u64 {
    let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = admin
        .request_text(request)
        .await
        .expect("apiserver metrics");
    let wanted = format!("{label}=\"{value}\"");
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")) && l.contains(&wanted))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// The flooder's client: no retries of its own, so that every 429 is seen.
async fn flooder_client() -> Client {
    let mut config = support::config_as(FLOODER).await;
    config.default_retry = false;
    Client::try_from(config).expect("flooder client")
}

/// Lets the flooder list namespaces, as any controller may.
async fn grant_flooder(admin: &Client) {
    let docs = [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "flood"}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": "flooder"},
               "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": "flooder"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                           "name": "flooder"},
               "subjects": [{"kind": "ServiceAccount", "name": "flooder", "namespace": "flood"}]}),
    ];
    let skipped = support::apply_manifests(admin, &docs, &PatchParams::apply("test").force()).await;
    assert!(skipped.is_empty());
}

/// What the flood did: requests answered, refused with 429.
#[derive(Default)]
struct Flood {
    answered: AtomicU64,
    refused: AtomicU64,
}

/// `clients` concurrent loops listing namespaces until `stop`; a refused request is
/// sent again after 100 ms (the flood is there to fill the seats, not to spin the CPU).
fn flood(client: Client, clients: usize, stop: Arc<AtomicBool>, counts: Arc<Flood>) {
    for _ in 0..clients {
        let (client, stop, counts) = (client.clone(), stop.clone(), counts.clone());
        tokio::spawn(async move {
            let namespaces: Api<Namespace> = Api::all(client);
            while !stop.load(Ordering::Relaxed) {
                match namespaces.list(&ListParams::default()).await {
                    Ok(_) => {
                        counts.answered.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(kube::Error::Api(s)) if s.code == 429 => {
                        counts.refused.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
    }
}

/// Creates these customers and waits until all are Ready for their generation.
async fn create_and_converge(admin: &Client, names: &[String], limit: Duration) -> Duration {
    let start = Instant::now();
    for (i, name) in names.iter().enumerate() {
        support::create_customer(
            admin,
            name,
            json!({"displayName": format!("Flood {i}"), "contactEmail": "ops@flood.example",
                   "access": {"viewers": [{"kind": "User", "name": format!("viewer{i}")}]}}),
        )
        .await;
    }
    let customers: Api<Customer> = Api::all(admin.clone());
    support::wait_within(limit, "the customers Ready", || {
        let customers = customers.clone();
        async move {
            let list = customers.list(&ListParams::default()).await.ok()?;
            let by_name: BTreeMap<String, &Customer> =
                list.items.iter().map(|c| (c.name_any(), c)).collect();
            names
                .iter()
                .all(|n| {
                    by_name.get(n).is_some_and(|c| {
                        condition(c.status.as_ref(), types::READY).is_some_and(|r| {
                            r.status == "True" && r.observed_generation == c.meta().generation
                        })
                    })
                })
                .then_some(())
        }
    })
    .await;
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an apiserver with few seats: run by scripts/reliability.sh on a control plane of its own"]
async fn the_operator_converges_through_a_flood_and_through_its_own_429s() {
    let count = setting("CUSTOMER_OPERATOR_FLOOD_CUSTOMERS", 30) as usize;
    let clients = setting("CUSTOMER_OPERATOR_FLOOD_CLIENTS", 320) as usize;
    let admin = support::client().await;
    let operator_user = support::apply_chart_rbac(&admin).await;

    // The chart's FlowSchema and priority level, as rendered for this cluster.
    let flowcontrol: Vec<serde_json::Value> = support::render_chart_for(&admin, &[])
        .await
        .into_iter()
        .filter(|d| {
            d["apiVersion"] == "flowcontrol.apiserver.k8s.io/v1"
                && ["FlowSchema", "PriorityLevelConfiguration"]
                    .contains(&d["kind"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        flowcontrol.len(),
        2,
        "the chart renders a FlowSchema and its level"
    );
    let schema = flowcontrol
        .iter()
        .find(|d| d["kind"] == "FlowSchema")
        .unwrap();
    let schema_name = schema["metadata"]["name"].as_str().unwrap().to_string();
    let level = schema["spec"]["priorityLevelConfiguration"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let skipped =
        support::apply_manifests(&admin, &flowcontrol, &PatchParams::apply("helm").force()).await;
    assert!(skipped.is_empty(), "flowcontrol.apiserver.k8s.io/v1 served");

    let log = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/flood-operator.log");
    let _ = std::fs::remove_file(&log);
    let mut operator =
        OperatorProcess::start(&support::kubeconfig_as(&operator_user, "flood"), &log);

    // The flood: the flooder's requests pile up in workload-low, and some are refused.
    grant_flooder(&admin).await;
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Flood::default());
    flood(
        flooder_client().await,
        clients,
        stop.clone(),
        counts.clone(),
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let prefix = support::unique("fl");
    let names: Vec<String> = (0..count).map(|i| format!("{prefix}-{i}")).collect();
    let flooded = create_and_converge(&admin, &names, Duration::from_secs(180)).await;
    stop.store(true, Ordering::Relaxed);
    let (answered, refused) = (
        counts.answered.load(Ordering::Relaxed),
        counts.refused.load(Ordering::Relaxed),
    );
    let flood_refused = counted(
        &admin,
        "apiserver_flowcontrol_rejected_requests_total",
        "flow_schema",
        "service-accounts",
    )
    .await;
    let operator_dispatched = counted(
        &admin,
        "apiserver_flowcontrol_dispatched_requests_total",
        "flow_schema",
        &schema_name,
    )
    .await;
    let refused_in_level = || {
        counted(
            &admin,
            "apiserver_flowcontrol_rejected_requests_total",
            "priority_level",
            &level,
        )
    };
    let operator_refused = refused_in_level().await;
    assert!(
        refused > 0 && flood_refused > 0,
        "the flood filled workload-low: {refused} of its requests refused ({flood_refused} \
         counted by the apiserver), {answered} answered"
    );
    assert!(
        operator_dispatched > 0,
        "the operator's requests went through FlowSchema {schema_name}"
    );
    assert_eq!(
        operator_refused, 0,
        "none of the operator's requests was refused during the flood"
    );
    assert!(
        operator.exited().is_none(),
        "the operator exited; log: {}",
        log.display()
    );

    // Its own level squeezed to one seat that refuses instead of queueing: the operator
    // meets 429s with a Retry-After, waits them out, and still converges.
    let gvk = kube::api::GroupVersionKind::gvk(
        "flowcontrol.apiserver.k8s.io",
        "v1",
        "PriorityLevelConfiguration",
    );
    let levels: Api<kube::api::DynamicObject> =
        Api::all_with(admin.clone(), &kube::api::ApiResource::from_gvk(&gvk));
    levels
        .patch(
            &level,
            // The chart's own field manager, so that its queuing settings go.
            &PatchParams::apply("helm").force(),
            &Patch::Apply(json!({
                "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
                "kind": "PriorityLevelConfiguration",
                "metadata": {"name": level},
                "spec": {"type": "Limited", "limited": {
                    "nominalConcurrencyShares": 1, "lendablePercent": 0,
                    "borrowingLimitPercent": 0, "limitResponse": {"type": "Reject"}}},
            })),
        )
        .await
        .expect("level squeezed");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let refused_before = operator_refused;
    let squeezed_names: Vec<String> = (0..count / 3).map(|i| format!("{prefix}-s{i}")).collect();
    let squeezed = create_and_converge(&admin, &squeezed_names, Duration::from_secs(240)).await;
    let refused_after = refused_in_level().await;
    assert!(
        refused_after > refused_before,
        "the squeezed level refused some of the operator's requests"
    );
    assert!(
        operator.exited().is_none(),
        "the operator exited; log: {}",
        log.display()
    );
    operator.kill();

    support::figures(&format!(
        "API priority: a flood of {clients} concurrent requests from another ServiceAccount \
         ({answered} answered, {refused} refused with 429) while {count} customers were \
         created: all Ready in {:.1} s, the operator's {operator_dispatched} requests all \
         through FlowSchema {schema_name}, 0 refused; its level squeezed to one seat that \
         refuses: {} of its requests refused with 429, waited out, {} more customers Ready in \
         {:.1} s; operator exits 0",
        flooded.as_secs_f64(),
        refused_after - refused_before,
        squeezed_names.len(),
        squeezed.as_secs_f64(),
    ));
}
