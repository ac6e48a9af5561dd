//! The namespace race (issue 22, part 1) forced against the real apiserver: the
//! operator decides to create a customer's namespace it does not see, and someone else
//! creates a namespace of that name just before the operator's create arrives. A layer
//! of the operator's client holds the operator's `POST /api/v1/namespaces` for that
//! name until the other party's create has been answered, so the interleaving happens
//! every run, not by luck. The foreign namespace must stay exactly as its creator made
//! it (no label, annotation or ownerReference of the operator's, no policy inside), the
//! Customer reports the conflict, and deleting the Customer leaves the namespace alone.
//! Its own operator in this test process (with the chart's RBAC when
//! `CUSTOMER_OPERATOR_TEST_RBAC=chart`).

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use customer_operator::api::Customer;
use customer_operator::controller::status::{condition, types};
use customer_operator::controller::{self, counting::ReconcileCounter};
use futures::future::BoxFuture;
use http::{Method, Request};
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::client::Body;
use kube::{Api, Client, ResourceExt};
use serde_json::json;

/// What the layer does once: create `name` as someone else before the operator's create
/// of it goes on, and keep what that create returned.
#[derive(Clone)]
struct ForeignFirst {
    admin: Client,
    name: String,
    created: Arc<Mutex<Option<Namespace>>>,
    fired: Arc<AtomicBool>,
}

impl ForeignFirst {
    async fn create_foreign(&self) {
        let namespace: Namespace = serde_json::from_value(json!({
            "metadata": {"name": self.name, "labels": {"team": "someone-else"}}
        }))
        .unwrap();
        let created = Api::<Namespace>::all(self.admin.clone())
            .create(&Default::default(), &namespace)
            .await
            .expect("the foreign namespace is created first");
        *self.created.lock().unwrap() = Some(created);
    }
}

impl ForeignFirst {
    /// What to wait for before `request` goes on: the foreign create, the first time
    /// the operator's create of the contested name comes.
    fn before(&self, request: &Request<Body>) -> BoxFuture<'static, ()> {
        let hook = self.clone();
        let peek = (request.method() == Method::POST
            && request.uri().path() == "/api/v1/namespaces")
            .then(|| request.body().try_clone())
            .flatten();
        Box::pin(async move {
            let Some(body) = peek else { return };
            let bytes = body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let object: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            if object["metadata"]["name"] == hook.name.as_str()
                && !hook.fired.swap(true, Ordering::SeqCst)
            {
                hook.create_foreign().await;
            }
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_created_by_someone_else_just_before_the_operators_create_is_left_alone() {
    let admin = support::client().await;
    let name = support::unique("race");
    let contested = format!("{name}-prod");
    let hook = ForeignFirst {
        admin: admin.clone(),
        name: contested.clone(),
        created: Arc::default(),
        fired: Arc::default(),
    };
    let config = support::operator_config(&support::kubeconfig(), &admin).await;
    let client = kube::client::ClientBuilder::try_from(config)
        .expect("client builder")
        .with_layer(&support::layer::Before({
            let hook = hook.clone();
            move |request: &Request<Body>| hook.before(request)
        }))
        .build();
    let options = support::operator_options(Duration::from_secs(3), ReconcileCounter::default());
    let operator = tokio::spawn(controller::run(client, options));

    support::create_customer(
        &admin,
        &name,
        json!({"displayName": "Race", "contactEmail": "ops@race.example",
               "namespaces": [{"name": "prod"}, {"name": "dev"}]}),
    )
    .await;
    let customer = support::wait_condition(&admin, &name, types::CONFLICT, "True").await;
    assert!(
        hook.fired.load(Ordering::SeqCst),
        "the operator's create of {contested} was held for the foreign create"
    );
    let conflict = condition(customer.status.as_ref(), types::CONFLICT).unwrap();
    assert!(
        conflict.message.contains(&contested),
        "{}",
        conflict.message
    );
    // The customer's other namespace converges; the contested one stays foreign.
    support::wait_for("the dev namespace's default deny", || {
        let admin = admin.clone();
        let ns = format!("{name}-dev");
        async move {
            Api::<NetworkPolicy>::namespaced(admin, &ns)
                .get_opt("customer-default-deny")
                .await
                .ok()?
                .map(|_| ())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    let created = hook.created.lock().unwrap().clone().unwrap();
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    let untouched = |n: &Namespace| {
        assert_eq!(n.uid(), created.uid(), "the same namespace");
        assert_eq!(
            n.resource_version(),
            created.resource_version(),
            "nobody changed it"
        );
        assert_eq!(n.labels(), created.labels());
        assert!(n.annotations().is_empty(), "{:?}", n.annotations());
        assert!(n.owner_references().is_empty());
    };
    untouched(&namespaces.get(&contested).await.unwrap());
    let inside = Api::<NetworkPolicy>::namespaced(admin.clone(), &contested)
        .list(&Default::default())
        .await
        .unwrap();
    assert!(
        inside.items.is_empty(),
        "no policy in the foreign namespace"
    );

    // Deleting the Customer deletes its own namespace and not the foreign one.
    let customers: Api<Customer> = Api::all(admin.clone());
    customers.delete(&name, &Default::default()).await.unwrap();
    support::gone(&customers, &name).await;
    untouched(&namespaces.get(&contested).await.unwrap());
    let dev = namespaces.get_opt(&format!("{name}-dev")).await.unwrap();
    assert!(
        dev.is_none_or(|d| d.metadata.deletion_timestamp.is_some()),
        "the customer's own namespace goes"
    );
    namespaces
        .delete(&contested, &Default::default())
        .await
        .unwrap();
    operator.abort();
}
