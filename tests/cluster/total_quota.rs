//! The whole-customer quota (`spec.quota.total`) against the real control plane, whose
//! kube-controller-manager runs the resourcequota controller: pods are created (there is
//! no kubelet, so they never run, but quota admission counts them) until the apiserver
//! refuses.
//!
//! - A customer with three namespaces and a total of `pods: 10`, filled one namespace
//!   after the other, never holds more than 10 pods over the three; one namespace grows
//!   into what the others leave free, and after pods go, another namespace grows into
//!   what they freed. The status shows used and hard for the whole customer.
//! - Pods created in all three namespaces at once stay within the documented bound
//!   (total + namespaces - 1); the worst overshoot over several rounds is printed
//!   (`support::figures`).
//! - Lowering the total below what is used deletes nothing, sets `QuotaExceeded`, and
//!   blocks new pods in every namespace.

mod support;

use std::time::{Duration, Instant};

use customer_operator::api::Customer;
use k8s_openapi::api::core::v1::{Pod, ResourceQuota, ServiceAccount};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

const TOTAL: usize = 10;

/// A pod that only needs to be admitted (nothing runs it).
fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "automountServiceAccountToken": false,
            "containers": [{"name": "c", "image": "registry.invalid/none:1"}]
        }
    }))
    .unwrap()
}

/// Creates a customer with namespaces a, b and c and `pods: 10` for all of them, and
/// waits until each namespace's quota is enforced and can admit pods.
async fn customer_with_total(client: &Client, prefix: &str) -> (String, Vec<String>) {
    let name = support::unique(prefix);
    support::create_customer(
        client,
        &name,
        json!({
            "displayName": "Total", "contactEmail": "ops@total.example",
            "namespaces": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
            "quota": {"total": {"pods": TOTAL.to_string()}}
        }),
    )
    .await;
    support::wait_condition(client, &name, "Ready", "True").await;
    let namespaces: Vec<String> = ["a", "b", "c"].map(|s| format!("{name}-{s}")).into();
    for ns in &namespaces {
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
        let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), ns);
        support::wait_for(&format!("quota and service account of {ns}"), || {
            let (accounts, quotas) = (accounts.clone(), quotas.clone());
            async move {
                accounts.get_opt("default").await.ok()??;
                let quota = quotas.get_opt("customer-quota").await.ok()??;
                quota.status?.hard?.get("pods").map(|_| ())
            }
        })
        .await;
    }
    (name, namespaces)
}

/// Tries to create one pod; whether the apiserver admitted it. A conflict of quota
/// admission with a concurrent update of the quota is tried again; anything but a quota
/// refusal fails the test.
async fn try_pod(client: &Client, ns: &str, name: &str) -> bool {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    loop {
        match pods.create(&PostParams::default(), &pod(name)).await {
            Ok(_) => return true,
            Err(kube::Error::Api(e)) if e.code == 403 && e.message.contains("exceeded quota") => {
                return false;
            }
            Err(kube::Error::Api(e)) if e.code == 409 && e.message.contains("resourcequotas") => {}
            Err(other) => panic!("creating pod {ns}/{name}: {other}"),
        }
    }
}

/// Waits until the namespaces' limits add up to at most the total (a namespace that
/// just took the last free unit leaves the others their one unit each until the
/// operator's next round: see the README on the overshoot bound).
async fn limits_settle(client: &Client, namespaces: &[String]) -> Vec<usize> {
    support::wait_for("limits within the total", || async {
        let hard = hard_pods(client, namespaces).await;
        (hard.iter().sum::<usize>() <= TOTAL).then_some(hard)
    })
    .await
}

/// Pods in each namespace, as the apiserver holds them.
async fn pod_counts(client: &Client, namespaces: &[String]) -> Vec<usize> {
    let mut counts = Vec::new();
    for ns in namespaces {
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        counts.push(pods.list(&ListParams::default()).await.unwrap().items.len());
    }
    counts
}

/// The `pods` hard limit of each namespace's quota as written.
async fn hard_pods(client: &Client, namespaces: &[String]) -> Vec<usize> {
    let mut out = Vec::new();
    for ns in namespaces {
        let hard = support::quota_pods(client, ns).await.expect("quota exists");
        out.push(hard.parse().expect("whole number of pods"));
    }
    out
}

/// Creates pods in `ns` (retrying while the operator moves the limits) until the
/// apiserver has refused for `patience` without a break; returns how many it admitted.
async fn fill(client: &Client, ns: &str, tag: &str, patience: Duration) -> usize {
    let mut admitted = 0;
    let mut refused_since: Option<Instant> = None;
    loop {
        if try_pod(client, ns, &format!("{tag}-{admitted}")).await {
            admitted += 1;
            refused_since = None;
        } else {
            let since = *refused_since.get_or_insert_with(Instant::now);
            if since.elapsed() > patience {
                return admitted;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn one_namespace_grows_into_what_the_others_leave_and_the_total_holds() {
    let client = support::client().await;
    support::operator();
    let (name, namespaces) = customer_with_total(&client, "total").await;
    let hard = hard_pods(&client, &namespaces).await;
    assert_eq!(hard.iter().sum::<usize>(), TOTAL, "first shares: {hard:?}");

    // Namespace a takes all ten, step by step as the others' shares move to it.
    let admitted = fill(&client, &namespaces[0], "a", Duration::from_secs(5)).await;
    assert_eq!(admitted, TOTAL, "a grows into what b and c leave free");
    assert_eq!(pod_counts(&client, &namespaces).await, [TOTAL, 0, 0]);
    assert_eq!(limits_settle(&client, &namespaces).await, [TOTAL, 0, 0]);
    assert!(!try_pod(&client, &namespaces[1], "b-over").await);
    assert!(!try_pod(&client, &namespaces[2], "c-over").await);
    let status = support::wait_for("status.quota used 10", || async {
        let c = Api::<Customer>::all(client.clone()).get(&name).await.ok()?;
        let quota = c.status?.quota?;
        (quota.used.get("pods")?.0 == "10").then_some(quota)
    })
    .await;
    assert_eq!(status.hard["pods"].0, "10");

    // Four pods of a go; b grows into what they freed, and the total still holds.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespaces[0]);
    for i in 0..4 {
        pods.delete(&format!("a-{i}"), &DeleteParams::default())
            .await
            .unwrap();
    }
    let admitted = fill(&client, &namespaces[1], "b", Duration::from_secs(5)).await;
    assert_eq!(admitted, 4, "b takes what a freed");
    assert_eq!(pod_counts(&client, &namespaces).await, [6, 4, 0]);
    assert_eq!(limits_settle(&client, &namespaces).await, [6, 4, 0]);
    support::delete_customers(&client, &[name]).await;
}

#[tokio::test]
async fn pods_created_in_every_namespace_at_once_stay_within_the_bound() {
    let client = support::client().await;
    support::operator();
    let rounds = 3;
    let mut worst = 0i64;
    let mut totals = Vec::new();
    for round in 0..rounds {
        let (name, namespaces) = customer_with_total(&client, "burst").await;
        let started = Instant::now();
        let fills = namespaces.iter().map(|ns| {
            let client = client.clone();
            let ns = ns.clone();
            async move { fill(&client, &ns, &format!("r{round}"), Duration::from_secs(4)).await }
        });
        let admitted: usize = futures::future::join_all(fills).await.into_iter().sum();
        let held: usize = pod_counts(&client, &namespaces).await.iter().sum();
        assert_eq!(admitted, held);
        worst = worst.max(held as i64 - TOTAL as i64);
        totals.push(format!(
            "{held} in {:.1} s",
            started.elapsed().as_secs_f64()
        ));
        let bound = TOTAL + namespaces.len() - 1;
        assert!(
            held <= bound,
            "round {round}: {held} pods, more than the bound {bound}"
        );
        support::delete_customers(&client, &[name]).await;
    }
    let version = client.apiserver_version().await.unwrap();
    support::figures(&format!(
        "total quota: pods created in 3 namespaces at once against a total of {TOTAL}, {rounds} rounds: worst overshoot {worst} (pods held per round: {}; Kubernetes {}.{})",
        totals.join(", "),
        version.major,
        version.minor
    ));
}

#[tokio::test]
async fn a_total_lowered_below_usage_deletes_nothing_and_blocks_new_pods() {
    let client = support::client().await;
    support::operator();
    let (name, namespaces) = customer_with_total(&client, "lowered").await;
    for (ns, tag) in namespaces.iter().zip(["a", "b", "c"]) {
        for i in 0..2 {
            assert!(try_pod(&client, ns, &format!("{tag}-{i}")).await);
        }
    }
    support::patch_customer_spec(&client, &name, json!({"quota": {"total": {"pods": "3"}}})).await;
    let customer = support::wait_condition(&client, &name, "QuotaExceeded", "True").await;
    let exceeded =
        customer_operator::controller::status::condition(customer.status.as_ref(), "QuotaExceeded")
            .unwrap()
            .clone();
    assert_eq!(exceeded.reason, "UsedAboveTotal");
    assert!(
        exceeded.message.contains("pods: 6 used of 3"),
        "{}",
        exceeded.message
    );
    support::event_seen(&client, &name, "Warning", "UsedAboveTotal").await;
    support::wait_for("each namespace held at its usage", || async {
        (hard_pods(&client, &namespaces).await == [2, 2, 2]).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (ns, tag) in namespaces.iter().zip(["a", "b", "c"]) {
        assert!(
            !try_pod(&client, ns, &format!("{tag}-new")).await,
            "{ns} admits no new pod"
        );
    }
    assert_eq!(
        pod_counts(&client, &namespaces).await,
        [2, 2, 2],
        "nothing deleted"
    );
    let ready = support::wait_condition(&client, &name, "Ready", "True").await;
    assert_eq!(ready.status.unwrap().quota.unwrap().used["pods"].0, "6");

    // Raised again: the condition goes and pods are admitted again.
    support::patch_customer_spec(&client, &name, json!({"quota": {"total": {"pods": "9"}}})).await;
    support::wait_for("QuotaExceeded gone", || async {
        let c = Api::<Customer>::all(client.clone()).get(&name).await.ok()?;
        customer_operator::controller::status::condition(c.status.as_ref(), "QuotaExceeded")
            .is_none()
            .then_some(())
    })
    .await;
    assert_eq!(
        fill(&client, &namespaces[2], "c-more", Duration::from_secs(5)).await,
        3
    );
    support::delete_customers(&client, &[name]).await;
}
