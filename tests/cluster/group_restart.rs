//! A group reconciled before the Customer cache has filled (found by
//! `tests/cluster/chart_upgrade.rs` at 1,000 customers: a group's status was written on
//! the restart and written back). A restarted operator whose Customer list is slow
//! must not judge a group by an empty cache: a `Block` group being deleted keeps its
//! finalizer while it has members, and nothing of the group is written meanwhile.
//!
//! A layer of the second operator's client holds its Customer lists and watches for the
//! first seconds, so the group's reconcile runs first every time, not by luck. Its own
//! operators in this test process (with the chart's RBAC when
//! `CUSTOMER_OPERATOR_TEST_RBAC=chart`).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use customer_operator::api::CustomerGroup;
use customer_operator::controller::{self, counting::ReconcileCounter};
use futures::future::BoxFuture;
use http::{Method, Request};
use kube::api::PostParams;
use kube::client::Body;
use kube::{Api, Client, Config, Resource};
use serde_json::json;

/// Holds every Customer list and watch of the client until `until`.
#[derive(Clone)]
struct SlowCustomers {
    until: Instant,
    held: Arc<AtomicBool>,
}

impl SlowCustomers {
    fn before(&self, request: &Request<Body>) -> BoxFuture<'static, ()> {
        let hold = request.method() == Method::GET
            && request
                .uri()
                .path()
                .ends_with("/apis/customers.dev/v1alpha1/customers")
            && Instant::now() < self.until;
        let slow = self.clone();
        Box::pin(async move {
            if hold {
                slow.held.store(true, Ordering::SeqCst);
                tokio::time::sleep_until(slow.until.into()).await;
            }
        })
    }
}

/// An operator in this process, on `config`, with `layer` in front of its client.
fn start(config: Config, layer: Option<&SlowCustomers>) -> tokio::task::JoinHandle<()> {
    let builder = kube::client::ClientBuilder::try_from(config).expect("client builder");
    let client = match layer {
        Some(slow) => builder
            .with_layer(&support::layer::Before({
                let slow = slow.clone();
                move |request: &Request<Body>| slow.before(request)
            }))
            .build(),
        None => builder.build(),
    };
    let options = support::operator_options(Duration::from_secs(3), ReconcileCounter::default());
    tokio::spawn(async move {
        let _ = controller::run(client, options).await;
    })
}

async fn group(admin: &Client, name: &str) -> Option<CustomerGroup> {
    Api::<CustomerGroup>::all(admin.clone())
        .get_opt(name)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_operator_does_not_release_a_blocked_group_before_its_customers_are_listed() {
    let admin = support::client().await;
    let config = support::operator_config(&support::kubeconfig(), &admin).await;
    let name = support::unique("gblock");
    let member = support::unique("gmember");
    let groups: Api<CustomerGroup> = Api::all(admin.clone());
    groups
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "customers.dev/v1alpha1", "kind": "CustomerGroup",
                "metadata": {"name": name},
                "spec": {"displayName": "Blocked", "deletionPolicy": "Block"}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    support::create_customer(
        &admin,
        &member,
        json!({"displayName": "Member", "contactEmail": "ops@member.example", "group": name}),
    )
    .await;

    // The first operator: the group gets its finalizer and counts its member.
    let first = start(config.clone(), None);
    support::wait_for("the group counts its member", || {
        let admin = admin.clone();
        let name = name.clone();
        async move {
            let g = group(&admin, &name).await?;
            (g.meta().finalizers.as_ref().is_some_and(|f| !f.is_empty())
                && g.status.as_ref().is_some_and(|s| s.members == 1))
            .then_some(())
        }
    })
    .await;
    first.abort();
    let _ = first.await;

    // Deleted while no operator runs; then one starts whose Customer lists are slow.
    groups.delete(&name, &Default::default()).await.unwrap();
    let before = group(&admin, &name).await.expect("held by its finalizer");
    let slow = SlowCustomers {
        until: Instant::now() + Duration::from_secs(6),
        held: Arc::default(),
    };
    let second = start(config, Some(&slow));
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(9) {
        let now = group(&admin, &name).await;
        assert!(
            now.is_some(),
            "the Block group was released while its member exists (the restarted operator \
             judged it before listing its Customers)"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        slow.held.load(Ordering::SeqCst),
        "the second operator's Customer list was held"
    );
    // Once the Customers are listed: the deletion is blocked, with the member named.
    support::wait_for("the group reports its member blocking the deletion", || {
        let admin = admin.clone();
        let (name, member) = (name.clone(), member.clone());
        async move {
            let g = group(&admin, &name).await?;
            let blocked = g.status?.conditions.into_iter().find(|c| {
                c.type_ == customer_operator::controller::status::types::DELETION_BLOCKED
            })?;
            (blocked.status == "True" && blocked.message.contains(&member)).then_some(())
        }
    })
    .await;
    assert_eq!(
        group(&admin, &name).await.unwrap().metadata.uid,
        before.metadata.uid
    );
    // The member goes; then the group does.
    support::delete_customers(&admin, std::slice::from_ref(&member)).await;
    support::gone(&groups, &name).await;
    second.abort();
}
