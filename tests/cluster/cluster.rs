//! Integration tests against the real test control plane (kube-apiserver, etcd,
//! kube-controller-manager): the CRDs are accepted, valid objects are stored, invalid
//! ones are refused naming the field, and the objects `desired/` builds are accepted,
//! owned and garbage-collected as intended.

mod support;

use std::time::Duration;

use customer_operator::api::{Customer, CustomerGroup, FIELD_MANAGER};
use customer_operator::desired::{self, MapDirectory};
use customer_operator::render;
use customer_operator::settings::Settings;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

fn dynamic(client: &Client, gvk: GroupVersionKind, namespace: Option<&str>) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk(&gvk);
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

fn customers(client: &Client) -> Api<DynamicObject> {
    dynamic(
        client,
        GroupVersionKind::gvk("customers.dev", "v1alpha1", "Customer"),
        None,
    )
}

fn customer_json(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "customers.dev/v1alpha1", "kind": "Customer",
           "metadata": {"name": name}, "spec": spec})
}

fn valid_spec() -> Value {
    json!({"displayName": "Integration", "contactEmail": "ops@integration.example"})
}

#[tokio::test]
async fn examples_are_accepted_and_stored() {
    let client = support::client().await;
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let inputs = render::read_inputs(&[examples.into()]).unwrap();
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    let groups: Api<CustomerGroup> = Api::all(client.clone());
    for (_, group) in &inputs.groups {
        groups
            .patch(&group.name_any(), &pp, &Patch::Apply(group))
            .await
            .unwrap();
        let stored = groups.get(&group.name_any()).await.unwrap();
        assert_eq!(stored.spec, group.spec);
    }
    let typed: Api<Customer> = Api::all(client.clone());
    for (_, customer) in &inputs.customers {
        typed
            .patch(&customer.name_any(), &pp, &Patch::Apply(customer))
            .await
            .unwrap();
        let stored = typed.get(&customer.name_any()).await.unwrap();
        assert_eq!(stored.spec, customer.spec, "{}", customer.name_any());
    }
}

#[tokio::test]
async fn valid_customer_is_stored_with_defaults() {
    let client = support::client().await;
    let api = customers(&client);
    let name = support::unique("valid");
    let obj: DynamicObject = serde_json::from_value(customer_json(&name, valid_spec())).unwrap();
    api.create(&PostParams::default(), &obj)
        .await
        .expect("valid Customer accepted");
    let stored: Customer = Api::all(client.clone()).get(&name).await.unwrap();
    assert_eq!(stored.spec.display_name, "Integration");
    // The schema's default is filled in by the apiserver.
    assert!(!stored.spec.deletion_protection);
    api.delete(&name, &DeleteParams::default()).await.unwrap();
}

#[tokio::test]
async fn invalid_customers_are_refused_naming_the_field() {
    let client = support::client().await;
    let api = customers(&client);
    let long_name = "a".repeat(41);
    let mut too_many_namespaces = valid_spec();
    too_many_namespaces["namespaces"] = (0..21)
        .map(|i| json!({"name": format!("n{i}")}))
        .collect::<Value>();
    let mut bad_enum = valid_spec();
    bad_enum["network"] = json!({"isolation": "Strickt"});
    let mut long_suffix = valid_spec();
    long_suffix["namespaces"] = json!([{"name": "x".repeat(23)}]);
    let mut bad_subject = valid_spec();
    bad_subject["access"] = json!({"admins": [{"kind": "Robot", "name": "r2"}]});
    let mut empty_display = valid_spec();
    empty_display["displayName"] = json!("");
    let cases: Vec<(&str, String, Value, &str)> = vec![
        (
            "capitals in the name",
            "Astral-Voyage".into(),
            valid_spec(),
            "metadata.name",
        ),
        (
            "spaces in the name",
            "astral voyage".into(),
            valid_spec(),
            "metadata.name",
        ),
        (
            "a symbol in the name",
            "astral_voyage".into(),
            valid_spec(),
            "metadata.name",
        ),
        (
            "a dot in the name",
            "astral.voyage".into(),
            valid_spec(),
            "metadata.name",
        ),
        (
            "a 41-character name",
            long_name,
            valid_spec(),
            "metadata.name",
        ),
        (
            "a bad email",
            support::unique("email"),
            json!({"displayName": "X", "contactEmail": "not an address"}),
            "spec.contactEmail",
        ),
        (
            "a missing email",
            support::unique("noemail"),
            json!({"displayName": "X"}),
            "spec.contactEmail",
        ),
        (
            "a wrong enum",
            support::unique("enum"),
            bad_enum,
            "spec.network.isolation",
        ),
        (
            "an empty display name",
            support::unique("display"),
            empty_display,
            "spec.displayName",
        ),
        (
            "21 namespaces",
            support::unique("many"),
            too_many_namespaces,
            "spec.namespaces",
        ),
        (
            "a 23-character suffix",
            support::unique("suffix"),
            long_suffix,
            "spec.namespaces.name",
        ),
        (
            "an unknown subject kind",
            support::unique("subject"),
            bad_subject,
            "spec.access.admins.kind",
        ),
    ];
    for (what, name, spec, field) in cases {
        // A raw POST, as kubectl sends it: the client library would refuse some of these
        // names before the apiserver sees them.
        let body = serde_json::to_vec(&customer_json(&name, spec)).unwrap();
        let request = http::Request::post("/apis/customers.dev/v1alpha1/customers")
            .header("content-type", "application/json")
            .body(body)
            .unwrap();
        match client.request::<Value>(request).await {
            Ok(_) => {
                let _ = api.delete(&name, &DeleteParams::default()).await;
                panic!("{what}: accepted");
            }
            Err(kube::Error::Api(status)) => {
                assert_eq!(status.code, 422, "{what}: {status:?}");
                assert!(
                    support::without_indexes(&status.message).contains(field),
                    "{what}: {field:?} not named in {:?}",
                    status.message
                );
            }
            Err(other) => panic!("{what}: unexpected error {other}"),
        }
        if !name.contains(' ') {
            assert!(
                api.get_opt(&name).await.unwrap().is_none(),
                "{what}: stored"
            );
        }
    }
}

/// The objects `desired/` builds for a stored Customer are accepted by the apiserver, a
/// second apply changes nothing, and they record the Customer's uid in an annotation,
/// not an ownerReference: deleting the Customer with no operator running (no finalizer)
/// leaves the namespaces to the operator, never to the garbage collector.
#[tokio::test]
async fn desired_objects_are_accepted_owned_and_collected() {
    let client = support::client().await;
    let name = support::unique("owned");
    let spec = json!({
        "displayName": "Owned", "contactEmail": "ops@owned.example",
        "partner": {"name": "acme", "securityConsultants": [{"kind": "User", "name": "carol"}]},
        "namespaces": [{"name": "prod", "labels": {"tier": "gold"}}, {"name": "dev"}],
        "access": {"admins": [{"kind": "User", "name": "alice"}],
                   "viewers": [{"kind": "ServiceAccount", "name": "dash", "namespace": "monitoring"}]},
        "network": {"isolation": "Standard",
                    "allowFrom": [{"namespaceSelector": {"matchLabels": {"team": "obs"}}, "ports": [{"port": 9090}]}]},
        "quota": {"hard": {"pods": "10", "requests.cpu": "2"}},
        "limits": [{"type": "Container", "default": {"cpu": "500m"}}]
    });
    let obj: DynamicObject = serde_json::from_value(customer_json(&name, spec)).unwrap();
    customers(&client)
        .create(&PostParams::default(), &obj)
        .await
        .unwrap();
    let customer: Customer = Api::all(client.clone()).get(&name).await.unwrap();
    let settings = Settings {
        platform_namespaces: vec!["ingress-nginx".into()],
        ..Settings::default()
    };
    let dir = MapDirectory::new([customer.clone()], []);
    let objects = desired::desired(&customer, &dir, &settings)
        .unwrap()
        .to_values()
        .unwrap();
    assert_eq!(
        objects.iter().filter(|o| o["kind"] == "Namespace").count(),
        2
    );

    let pp = PatchParams::apply(FIELD_MANAGER).force();
    let mut versions = Vec::new();
    for pass in 0..2 {
        if pass == 1 {
            tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        }
        for object in &objects {
            let (group, version) = match object["apiVersion"].as_str().unwrap().split_once('/') {
                Some((g, v)) => (g.to_string(), v.to_string()),
                None => (
                    String::new(),
                    object["apiVersion"].as_str().unwrap().to_string(),
                ),
            };
            let gvk = GroupVersionKind::gvk(&group, &version, object["kind"].as_str().unwrap());
            let api = dynamic(&client, gvk, object["metadata"]["namespace"].as_str());
            let applied = api
                .patch(
                    object["metadata"]["name"].as_str().unwrap(),
                    &pp,
                    &Patch::Apply(object),
                )
                .await
                .unwrap_or_else(|e| panic!("{} refused: {e}", object["kind"]));
            // A ResourceQuota's resourceVersion also moves when the resourcequota
            // controller writes its status: for it, the time of the apply's
            // managed-fields entry tells (it moves only when an apply changes something;
            // the passes are more than a second apart, its granularity).
            let applied_at = if object["kind"] == "ResourceQuota" {
                applied
                    .metadata
                    .managed_fields
                    .iter()
                    .flatten()
                    .find(|m| m.manager.as_deref() == Some(FIELD_MANAGER))
                    .and_then(|m| m.time.as_ref())
                    .map(|t| t.0.to_string())
            } else {
                applied.resource_version()
            };
            if pass == 0 {
                versions.push(applied_at);
            } else {
                assert_eq!(
                    versions.remove(0),
                    applied_at,
                    "a repeated apply changed {}",
                    object["metadata"]["name"]
                );
            }
        }
    }

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let prod = namespaces.get(&format!("{name}-prod")).await.unwrap();
    assert_eq!(prod.labels()["customers.dev/customer"], name);
    assert_eq!(prod.labels()["tier"], "gold");
    assert_eq!(
        prod.annotations().get("customers.dev/owner-uid"),
        customer.uid().as_ref()
    );
    assert!(prod.owner_references().is_empty());

    // Deleting the Customer (no operator runs here, so no finalizer): the garbage
    // collector has nothing to follow, and the namespaces stay (the collector's discovery
    // pass of a new CRD takes about 30 s; wait past it).
    customers(&client)
        .delete(&name, &DeleteParams::foreground())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(35)).await;
    for ns in [format!("{name}-prod"), format!("{name}-dev")] {
        let kept = namespaces.get(&ns).await.unwrap();
        assert!(kept.metadata.deletion_timestamp.is_none(), "{ns} deleted");
        namespaces
            .delete(&ns, &DeleteParams::default())
            .await
            .unwrap();
    }
}

/// The apiserver publishes every field of both kinds with its type and description, so
/// `kubectl explain customer.spec.network` works (old apiservers drop fields they cannot
/// publish).
#[tokio::test]
async fn published_openapi_explains_nested_fields() {
    let client = support::client().await;
    let doc =
        support::wait_for("Customer in /openapi/v2", || {
            let client = client.clone();
            async move {
                let request = http::Request::get("/openapi/v2").body(Vec::new()).unwrap();
                let doc: Value = client.request(request).await.ok()?;
                let network = &doc["definitions"]["dev.customers.v1alpha1.Customer"]["properties"]
                    ["spec"]["properties"]["network"];
                // Publishing lags a CRD update by a moment, for each CRD on its own;
                // wait for the current schema of both.
                let group = &doc["definitions"]["dev.customers.v1alpha1.CustomerGroup"]
                    ["properties"]["spec"]["properties"]["network"];
                (network["properties"]["isolation"]["type"] == "string"
                    && group["properties"]["allowWithinGroup"].is_object())
                .then_some(doc)
            }
        })
        .await;
    let spec =
        &doc["definitions"]["dev.customers.v1alpha1.Customer"]["properties"]["spec"]["properties"];
    let isolation = &spec["network"]["properties"]["isolation"];
    assert_eq!(isolation["type"], "string");
    assert!(
        isolation["description"]
            .as_str()
            .unwrap()
            .contains("Strict")
    );
    assert_eq!(
        spec["quota"]["properties"]["hard"]["additionalProperties"]["type"],
        "string"
    );
    let group = &doc["definitions"]["dev.customers.v1alpha1.CustomerGroup"]["properties"]["spec"]["properties"];
    assert_eq!(
        group["network"]["properties"]["allowWithinGroup"]["type"],
        "boolean"
    );
}

/// The operator asks once at start whether the apiserver streams a watch's initial list
/// (WatchList: on by default from Kubernetes 1.34, off in 1.33) and its watches use it
/// only then: the answer matches the version under test.
#[tokio::test]
async fn streaming_lists_are_found_where_the_apiserver_serves_them() {
    let client = support::client().await;
    let version = client.apiserver_version().await.unwrap();
    let minor: u32 = version
        .minor
        .trim_end_matches('+')
        .parse()
        .expect("a minor version");
    let served = customer_operator::controller::caches::serves_streaming_lists(&client).await;
    assert_eq!(served, minor >= 34, "Kubernetes {}", version.git_version);
}
