//! What the apiserver itself enforces on every supported Kubernetes (1.33 to 1.37),
//! shown by the apiserver refusing or rewriting, not by an offline check:
//! - every CEL rule (`x-kubernetes-validations`) of both CRDs, installed exactly as
//!   `crds/` holds them with `kubectl apply --server-side`, refuses its bad input with a
//!   message naming the field (a rule without a case here fails the test);
//! - the chart's ValidatingAdmissionPolicy refuses `kubectl delete` of a protected
//!   Customer and lets the operator's own deletes through;
//! - the chart's fence refuses the operator's identity what does not carry its label
//!   and roles other than the customer roles, and everyone else but cluster admins and
//!   kube-controller-manager what carries it;
//! - the apiserver sets `kubernetes.io/metadata.name` on every namespace, and a forged
//!   value does not survive;
//! - the operator's Events are `events.k8s.io/v1`, about the Customer, and
//!   `kubectl events --for customer/NAME` shows them;
//! - an `allowFrom` port range (`endPort`) reaches the child NetworkPolicy intact.

mod support;

use std::collections::BTreeSet;

use customer_operator::api::{self, Customer, LABEL_NAMESPACE_NAME};
use customer_operator::controller::status::{condition, types};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

const CRDS_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/crds/customers.dev.yaml");

/// Every rule of the CRDs as `crds/` holds them: (kind, field path, message), the path
/// written as the apiserver names it with `[*]` for any list index.
fn rules_in_crds_dir() -> BTreeSet<(String, String, String)> {
    use serde::Deserialize;
    fn walk(node: &Value, path: &str, kind: &str, out: &mut BTreeSet<(String, String, String)>) {
        for rule in node["x-kubernetes-validations"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let message = rule["message"].as_str().unwrap_or_default().to_string();
            out.insert((kind.to_string(), path.to_string(), message));
        }
        for (name, child) in node["properties"].as_object().into_iter().flatten() {
            let child_path = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            walk(child, &child_path, kind, out);
        }
        if node["items"].is_object() {
            walk(&node["items"], &format!("{path}[*]"), kind, out);
        }
    }
    let text = std::fs::read_to_string(CRDS_FILE).unwrap();
    let mut out = BTreeSet::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let crd = Value::deserialize(doc).unwrap();
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap().to_string();
        for version in crd["spec"]["versions"].as_array().unwrap() {
            walk(&version["schema"]["openAPIV3Schema"], "", &kind, &mut out);
        }
    }
    out
}

/// The field path in an apiserver message with every list index as `[*]`.
fn any_index(message: &str) -> String {
    let mut out = String::new();
    let mut chars = message.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '[' && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            while chars.peek().is_some_and(|d| d.is_ascii_digit()) {
                chars.next();
            }
            out.push('*');
        }
    }
    out
}

fn base_spec() -> Value {
    json!({"displayName": "Rules", "contactEmail": "ops@rules.example"})
}

/// A subject list with one ServiceAccount that names no namespace.
fn service_account_without_namespace() -> Value {
    json!([{"kind": "ServiceAccount", "name": "dashboard"}])
}

/// Sets `value` at the dotted `path` under `spec`.
fn spec_with(path: &str, value: Value) -> Value {
    let mut spec = base_spec();
    let mut at = &mut spec;
    let parts: Vec<&str> = path.split('.').collect();
    for part in &parts[..parts.len() - 1] {
        at = at
            .as_object_mut()
            .unwrap()
            .entry(part.to_string())
            .or_insert_with(|| json!({}));
    }
    at[parts[parts.len() - 1]] = value;
    spec
}

/// One bad input for one rule.
struct Case {
    kind: &'static str,
    path: &'static str,
    write: Write,
}

/// How a case reaches the apiserver.
enum Write {
    /// A create (dry run) of an object with this spec.
    Create(Value),
    /// A merge patch (dry run) of the spec of an object created with the first spec.
    Update(Value, Value),
    /// A status merge patch (dry run) of an object created with the base spec.
    Status(Value),
}

fn cases() -> Vec<Case> {
    let subject_lists = |kind: &'static str, paths: &[&'static str]| {
        paths
            .iter()
            .map(|path| Case {
                kind,
                path,
                write: Write::Create(spec_with(
                    path.trim_start_matches("spec.").trim_end_matches("[*]"),
                    service_account_without_namespace(),
                )),
            })
            .collect::<Vec<_>>()
    };
    let mut cases = subject_lists(
        "Customer",
        &[
            "spec.access.admins[*]",
            "spec.access.editors[*]",
            "spec.access.viewers[*]",
        ],
    );
    for kind in ["CustomerGroup", "CustomerClaim"] {
        cases.extend(subject_lists(
            kind,
            &[
                "spec.access.admins[*]",
                "spec.access.editors[*]",
                "spec.access.viewers[*]",
            ],
        ));
    }
    cases.extend(subject_lists(
        "CustomerUsers",
        &["spec.admins[*]", "spec.editors[*]", "spec.viewers[*]"],
    ));
    cases.extend(subject_lists(
        "Partner",
        &["spec.admins[*]", "spec.securityConsultants[*]"],
    ));
    // The reserved names (the case's object is named `partner-...`).
    for kind in ["Customer", "CustomerClaim"] {
        cases.push(Case {
            kind,
            path: "",
            write: Write::Create(base_spec()),
        });
    }
    {
        let kind = "CustomerClaim";
        cases.extend([
            Case {
                kind,
                path: "spec.namespaces",
                write: Write::Create(spec_with(
                    "namespaces",
                    json!([{"name": "app"}, {"name": "app"}]),
                )),
            },
            Case {
                kind,
                path: "spec.network.allowFrom[*]",
                write: Write::Create(spec_with(
                    "network.allowFrom",
                    json!([{"customer": "a", "group": "b"}]),
                )),
            },
            Case {
                kind,
                path: "spec.network.allowFrom[*].ports[*]",
                write: Write::Create(spec_with(
                    "network.allowFrom",
                    json!([{"customer": "a", "ports": [{"port": 8100, "endPort": 8000}]}]),
                )),
            },
        ]);
    }
    for kind in ["Customer", "CustomerGroup", "CustomerClaim", "Partner"] {
        for name in ["   ", "Acme \u{202E}evil"] {
            cases.push(Case {
                kind,
                path: "spec.displayName",
                write: Write::Create(spec_with("displayName", json!(name))),
            });
        }
    }
    let partner =
        |name: &str, consultants: Value| json!({"name": name, "securityConsultants": consultants});
    cases.extend([
        Case {
            kind: "Customer",
            path: "spec.partner.securityConsultants[*]",
            write: Write::Create(spec_with(
                "partner",
                partner("acme", service_account_without_namespace()),
            )),
        },
        Case {
            kind: "Customer",
            path: "status.formerPartner.securityConsultants[*]",
            write: Write::Status(json!({"formerPartner":
                partner("acme", service_account_without_namespace())})),
        },
        Case {
            kind: "Customer",
            path: "spec.namespaces",
            write: Write::Create(spec_with(
                "namespaces",
                json!([{"name": "app"}, {"name": "app"}]),
            )),
        },
        Case {
            kind: "Customer",
            path: "spec.network.allowFrom[*]",
            write: Write::Create(spec_with(
                "network.allowFrom",
                json!([{"customer": "a", "group": "b"}]),
            )),
        },
        Case {
            kind: "Customer",
            path: "spec.network.allowFrom[*].ports[*]",
            write: Write::Create(spec_with(
                "network.allowFrom",
                json!([{"customer": "a", "ports": [{"port": 8100, "endPort": 8000}]}]),
            )),
        },
        Case {
            kind: "Customer",
            path: "spec",
            write: Write::Update(
                spec_with(
                    "partner",
                    partner("alpha", json!([{"kind": "User", "name": "carol"}])),
                ),
                json!({"partner": partner("beta", json!([{"kind": "User", "name": "carol"}]))}),
            ),
        },
    ]);
    cases
}

/// The API of a kind of the CRDs; the namespaced ones in `default`.
fn api_of(client: &Client, kind: &str) -> Api<kube::api::DynamicObject> {
    let crd = api::crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .expect("a kind of the CRDs");
    let gvk = kube::api::GroupVersionKind::gvk(api::API_GROUP, "v1alpha1", kind);
    let resource = kube::api::ApiResource::from_gvk_with_plural(&gvk, &crd.spec.names.plural);
    if crd.spec.scope == "Namespaced" {
        Api::namespaced_with(client.clone(), "default", &resource)
    } else {
        Api::all_with(client.clone(), &resource)
    }
}

fn object(kind: &str, name: &str, spec: &Value) -> kube::api::DynamicObject {
    serde_json::from_value(json!({"apiVersion": api::API_VERSION, "kind": kind,
                                  "metadata": {"name": name}, "spec": spec}))
    .unwrap()
}

/// Creates the object with spec `first`, sends `patch` (a dry run, to the status when
/// `status`), deletes the object, and returns what the patch got.
async fn edit(
    api: &Api<kube::api::DynamicObject>,
    kind: &str,
    name: &str,
    first: &Value,
    patch: Value,
    status: bool,
) -> kube::Result<()> {
    api.create(&PostParams::default(), &object(kind, name, first))
        .await
        .expect("the first version is valid");
    let params = PatchParams::default().dry_run();
    let result = if status {
        api.patch_status(name, &params, &Patch::Merge(patch)).await
    } else {
        api.patch(name, &params, &Patch::Merge(patch)).await
    };
    api.delete(name, &DeleteParams::default()).await.ok();
    result.map(drop)
}

/// Sends the case's write; returns the apiserver's refusal (code, message).
async fn refusal(client: &Client, case: &Case) -> Option<(u16, String)> {
    let api = api_of(client, case.kind);
    let name = if case.path.is_empty() {
        support::unique("partner-r")
    } else {
        support::unique("rules")
    };
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let result = match &case.write {
        Write::Create(spec) => api
            .create(&dry, &object(case.kind, &name, spec))
            .await
            .map(drop),
        Write::Update(first, change) => {
            edit(
                &api,
                case.kind,
                &name,
                first,
                json!({"spec": change}),
                false,
            )
            .await
        }
        Write::Status(status) => {
            edit(
                &api,
                case.kind,
                &name,
                &base_spec(),
                json!({"status": status}),
                true,
            )
            .await
        }
    };
    match result {
        Err(kube::Error::Api(status)) => Some((status.code, status.message)),
        Err(other) => panic!("{}: {other}", case.path),
        Ok(()) => None,
    }
}

/// `kubectl` with these arguments; panics with its output when it fails.
fn kubectl(args: &[&str]) -> String {
    let out = support::kubectl()
        .args(args)
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn every_crd_rule_is_enforced_by_the_apiserver_naming_the_field() {
    let client = support::admin_client().await;
    // Installed the way a user installs (or upgrades) them.
    kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        CRDS_FILE,
    ]);
    kubectl(&[
        "wait",
        "--for",
        "condition=established",
        "--timeout=60s",
        "crd/customers.customers.dev",
        "crd/customergroups.customers.dev",
    ]);
    let rules = rules_in_crds_dir();
    assert!(rules.len() >= 12, "the CRDs' rules: {rules:?}");
    let mut covered = BTreeSet::new();
    for case in cases() {
        let (code, message) =
            support::wait_for(&format!("{} {} refused", case.kind, case.path), || {
                let client = client.clone();
                let case = &case;
                async move { refusal(&client, case).await }
            })
            .await;
        assert_eq!(code, 422, "{} {}: {message}", case.kind, case.path);
        let named = any_index(&message);
        let rule = rules
            .iter()
            .find(|(kind, path, rule_message)| {
                kind == case.kind
                    && path == case.path
                    && named.contains(&format!("{path}: Invalid value"))
                    && message.contains(rule_message.as_str())
            })
            .unwrap_or_else(|| {
                panic!(
                    "{} {}: the refusal names no rule of crds/ at that field: {message}",
                    case.kind, case.path
                )
            });
        covered.insert(rule.clone());
    }
    let uncovered: Vec<_> = rules.difference(&covered).collect();
    assert!(
        uncovered.is_empty(),
        "rules of crds/ that no case here shows the apiserver enforcing: {uncovered:?}"
    );
}

#[tokio::test]
async fn the_apiserver_sets_the_namespace_name_label_and_a_forged_one_does_not_survive() {
    let client = support::admin_client().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let name = support::unique("forged");
    let forged: Namespace = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": {LABEL_NAMESPACE_NAME: "victim-prod"}}}))
    .unwrap();
    let created = namespaces
        .create(&PostParams::default(), &forged)
        .await
        .unwrap();
    assert_eq!(created.labels()[LABEL_NAMESPACE_NAME], name);
    let relabel = json!({"metadata": {"labels": {LABEL_NAMESPACE_NAME: "victim-prod"}}});
    let patched = namespaces
        .patch(&name, &PatchParams::default(), &Patch::Merge(&relabel))
        .await
        .unwrap();
    assert_eq!(patched.labels()[LABEL_NAMESPACE_NAME], name);
    let removed = json!({"metadata": {"labels": {LABEL_NAMESPACE_NAME: null}}});
    let patched = namespaces
        .patch(&name, &PatchParams::default(), &Patch::Merge(&removed))
        .await
        .unwrap();
    assert_eq!(patched.labels()[LABEL_NAMESPACE_NAME], name);
    namespaces
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
}

/// Whether the Customer has been marked for deletion.
async fn being_deleted(customers: &Api<Customer>, name: &str) -> bool {
    let customer = customers.get(name).await.unwrap();
    customer.metadata.deletion_timestamp.is_some()
}

/// Creates a Customer of the admission test (labelled with its marker) whose spec has
/// `field` (deletionProtection or frozen) true.
async fn create_held(customers: &Api<Customer>, name: &str, marker: &str, field: &str) {
    let mut spec = base_spec();
    spec[field] = true.into();
    let customer: Customer = serde_json::from_value(json!({"apiVersion": api::API_VERSION,
        "kind": "Customer", "metadata": {"name": name, "labels": {"customers.dev/test": marker}},
        "spec": spec}))
    .unwrap();
    customers
        .create(&PostParams::default(), &customer)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_chart_admission_policy_refuses_deleting_a_protected_customer_but_not_the_operator() {
    let client = support::client().await;
    let operator_user = support::apply_chart_rbac(&client).await;
    // The chart's policy as rendered; its binding as rendered too, narrowed to this
    // test's Customers so that it cannot touch other tests running on the cluster.
    let marker = support::unique("vap");
    let mut docs =
        support::render_chart_for(&client, &["--show-only", "templates/admission-policy.yaml"])
            .await;
    assert_eq!(docs.len(), 2, "the policy and its binding: {docs:?}");
    for doc in &mut docs {
        if doc["kind"] == "ValidatingAdmissionPolicyBinding" {
            doc["spec"]["matchResources"]["objectSelector"] =
                json!({"matchLabels": {"customers.dev/test": marker}});
        }
    }
    let skipped =
        support::apply_manifests(&client, &docs, &PatchParams::apply("helm").force()).await;
    assert!(skipped.is_empty(), "{skipped:?}");

    let customers: Api<Customer> = Api::all(client.clone());
    let name = support::unique("protected");
    create_held(&customers, &name, &marker, "deletionProtection").await;
    support::operator();
    support::wait_for("the operator's finalizer", || {
        let customers = customers.clone();
        let name = name.clone();
        async move {
            let customer = customers.get(&name).await.ok()?;
            (!customer.finalizers().is_empty()).then_some(())
        }
    })
    .await;
    // The policy takes a moment to be in force; a dry-run delete shows when it is.
    let dry = DeleteParams {
        dry_run: true,
        ..Default::default()
    };
    let refused = support::wait_for("the policy in force", || {
        let customers = customers.clone();
        let (name, dry) = (name.clone(), dry.clone());
        async move {
            match customers.delete(&name, &dry).await {
                Err(kube::Error::Api(status)) => Some(status),
                _ => None,
            }
        }
    })
    .await;
    assert_eq!(refused.code, 403, "{refused:?}");
    assert!(
        refused.message.contains("deletionProtection"),
        "{refused:?}"
    );
    // As a user does it.
    let out = support::kubectl()
        .args(["delete", "customer", &name, "--wait=false"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "kubectl delete must fail");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("deletionProtection"), "{said}");
    assert!(customers.get_opt(&name).await.unwrap().is_some());
    // Also with foreground propagation (the garbage collector's way to the namespaces).
    let foreground = DeleteParams::foreground();
    assert!(customers.delete(&name, &foreground).await.is_err());
    assert!(!being_deleted(&customers, &name).await);

    // A frozen Customer is refused the same way, and let go once unfrozen.
    let frozen = support::unique("frozen");
    create_held(&customers, &frozen, &marker, "frozen").await;
    match customers.delete(&frozen, &dry).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403, "{status:?}");
            assert!(status.message.contains("spec.frozen"), "{status:?}");
        }
        other => panic!("deleting a frozen Customer must be refused: {other:?}"),
    }
    assert!(!being_deleted(&customers, &frozen).await);
    support::patch_customer_spec(&client, &frozen, json!({"frozen": false})).await;
    customers
        .delete(&frozen, &DeleteParams::default())
        .await
        .expect("an unfrozen Customer may be deleted");
    support::gone(&customers, &frozen).await;

    // The operator's own deletes (cascades) go through, to its finalizer, where the
    // protection holds the Customer (DeletionBlocked) until it is lifted.
    let operator = Client::try_from(support::config_as(&operator_user).await).unwrap();
    let as_operator: Api<Customer> = Api::all(operator);
    as_operator
        .delete(&name, &DeleteParams::default())
        .await
        .expect("the operator's delete is let through");
    assert!(being_deleted(&customers, &name).await);
    support::patch_customer_spec(&client, &name, json!({"deletionProtection": false})).await;
    support::gone(&customers, &name).await;
    for doc in &docs {
        let kind = doc["kind"].as_str().unwrap();
        let api: Api<kube::api::DynamicObject> = Api::all_with(
            client.clone(),
            &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
                "admissionregistration.k8s.io",
                "v1",
                kind,
            )),
        );
        api.delete(
            doc["metadata"]["name"].as_str().unwrap(),
            &DeleteParams::default(),
        )
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn events_are_events_k8s_io_about_the_customer_and_kubectl_events_shows_them() {
    let client = support::client().await;
    support::operator();
    let name = support::unique("evented");
    // A parent that does not exist: refused by the operator with a Warning Event.
    let mut spec = base_spec();
    spec["parent"] = json!(support::unique("missing"));
    support::create_customer(&client, &name, spec).await;
    let customers: Api<Customer> = Api::all(client.clone());
    let (refused, reason) = support::wait_for("Ready=False", || {
        let customers = customers.clone();
        let name = name.clone();
        async move {
            let customer = customers.get(&name).await.ok()?;
            let ready = condition(customer.status.as_ref(), types::READY)?;
            let reason = (ready.status == "False").then(|| ready.reason.clone())?;
            Some((customer, reason))
        }
    })
    .await;
    assert_eq!(reason, "UnknownParent");
    support::event_seen(&client, &name, "Warning", &reason).await;
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), "default");
    let list = events
        .list(&kube::api::ListParams::default().fields(&format!("regarding.name={name}")))
        .await
        .unwrap();
    let event = list
        .items
        .iter()
        .find(|e| e.reason.as_deref() == Some(reason.as_str()))
        .unwrap();
    let regarding = event.regarding.as_ref().unwrap();
    assert_eq!(regarding.kind.as_deref(), Some("Customer"));
    assert_eq!(regarding.api_version.as_deref(), Some(api::API_VERSION));
    assert_eq!(regarding.uid, refused.uid());
    assert_eq!(
        event.reporting_controller.as_deref(),
        Some(api::FIELD_MANAGER)
    );
    assert!(event.action.as_deref().is_some_and(|a| !a.is_empty()));
    let shown = kubectl(&[
        "events",
        "-n",
        "default",
        "--for",
        &format!("customer/{name}"),
    ]);
    assert!(shown.contains(&reason), "kubectl events: {shown}");
    support::delete_customers(&client, &[name]).await;
}

#[tokio::test]
async fn a_port_range_reaches_the_child_network_policy() {
    let client = support::client().await;
    support::operator();
    let (target, peer) = (support::unique("ranged"), support::unique("ranger"));
    support::create_customer(&client, &peer, base_spec()).await;
    let mut spec = base_spec();
    spec["network"] = json!({"allowFrom": [{"customer": peer,
        "ports": [{"port": 8000, "endPort": 8100}]}]});
    support::create_customer(&client, &target, spec).await;
    support::wait_condition(&client, &target, types::READY, "True").await;
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &target);
    let policy = policies.get("customer-allow-from").await.unwrap();
    let port = &policy.spec.unwrap().ingress.unwrap()[0]
        .ports
        .clone()
        .unwrap()[0];
    assert_eq!(port.end_port, Some(8100));
    assert_eq!(
        port.port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(8000))
    );
    support::delete_customers(&client, &[target, peer]).await;
}

/// The result of a write as a status code: 0 when the apiserver took it, else its code;
/// with a refusal's message.
fn outcome<T>(result: Result<T, kube::Error>) -> (u16, String) {
    match result {
        Ok(_) => (0, String::new()),
        Err(kube::Error::Api(status)) => (status.code, status.message),
        Err(other) => panic!("unexpected error: {other}"),
    }
}

/// A NetworkPolicy selecting nothing, with `labels`.
fn quiet_policy(name: &str, namespace: &str, labels: Value) -> NetworkPolicy {
    serde_json::from_value(
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"podSelector": {"matchLabels": {"none": "none"}}, "policyTypes": ["Ingress"]}}),
    )
    .unwrap()
}

/// The chart's fence (`templates/admission-policy-fence.yaml`), as rendered, bound to the
/// objects of this test only: the operator's identity may delete, change and create only
/// what carries its label and bind only the customer roles; nobody else (here a user who
/// is admin of the namespace) may change what carries it; cluster admins may, and the
/// namespace controller still empties a namespace being deleted. Then bound to one
/// Customer's namespaces, through which that Customer is made and deleted: under
/// `CUSTOMER_OPERATOR_TEST_RBAC=chart` (scripts/test.sh runs it so) the operator is the
/// chart's ServiceAccount and every write of it passes the fence.
#[tokio::test]
async fn the_chart_fences_the_operator_in_and_everyone_else_out() {
    use k8s_openapi::api::admissionregistration::v1::{
        ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
    };
    use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
    let admin = support::client().await;
    let operator_user = support::apply_chart_rbac(&admin).await;
    let marker = support::unique("fence");
    let customer_name = support::unique("fenced");
    let mut docs = support::render_chart_for(
        &admin,
        &["--show-only", "templates/admission-policy-fence.yaml"],
    )
    .await;
    assert_eq!(docs.len(), 4, "two policies and their bindings: {docs:?}");
    let mut extra = Vec::new();
    for doc in &mut docs {
        if doc["kind"] == "ValidatingAdmissionPolicyBinding" {
            let mut by_customer = doc.clone();
            by_customer["metadata"]["name"] = format!(
                "{}-{customer_name}",
                doc["metadata"]["name"].as_str().unwrap()
            )
            .into();
            by_customer["spec"]["matchResources"]["namespaceSelector"] =
                json!({"matchLabels": {"customers.dev/customer": customer_name}});
            extra.push(by_customer);
            doc["spec"]["matchResources"]["objectSelector"] =
                json!({"matchLabels": {"customers.dev/test": marker}});
        }
    }
    docs.extend(extra);
    let skipped =
        support::apply_manifests(&admin, &docs, &PatchParams::apply("helm").force()).await;
    assert!(skipped.is_empty(), "{skipped:?}");

    // The test's objects, made by the admin: a namespace of someone else's, one carrying
    // the operator's label with a policy of the operator's and one of someone else's.
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    let foreign = format!("{marker}-foreign");
    let ours = format!("{marker}-ours");
    let label = |operator: bool| {
        let mut labels = json!({"customers.dev/test": marker});
        if operator {
            labels["app.kubernetes.io/managed-by"] = "customer-operator".into();
        }
        labels
    };
    for (name, operator) in [(&foreign, false), (&ours, true)] {
        let ns: Namespace = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": label(operator)}}))
        .unwrap();
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
    }
    let policies: Api<NetworkPolicy> = Api::namespaced(admin.clone(), &ours);
    for (name, operator) in [("operators", true), ("theirs", false)] {
        policies
            .create(
                &PostParams::default(),
                &quiet_policy(name, &ours, label(operator)),
            )
            .await
            .unwrap();
    }
    let alice = "alice";
    let bindings: Api<RoleBinding> = Api::namespaced(admin.clone(), &ours);
    let alice_admin: RoleBinding = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "alice-admin", "namespace": ours, "labels": label(false)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": alice}]}))
    .unwrap();
    bindings
        .create(&PostParams::default(), &alice_admin)
        .await
        .unwrap();
    let empty_role = format!("{marker}-nothing");
    let roles: Api<ClusterRole> = Api::all(admin.clone());
    let role: ClusterRole = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": empty_role}, "rules": []}))
    .unwrap();
    roles.create(&PostParams::default(), &role).await.unwrap();

    // The operator's identity, as a bug would send it.
    let operator = Client::try_from(support::config_as(&operator_user).await).unwrap();
    let as_operator: Api<Namespace> = Api::all(operator.clone());
    let dry = DeleteParams {
        dry_run: true,
        ..Default::default()
    };
    let (code, message) = support::wait_for("the fence in force", || {
        let (as_operator, foreign, dry) = (as_operator.clone(), foreign.clone(), dry.clone());
        async move {
            let (code, message) = outcome(as_operator.delete(&foreign, &dry).await);
            (code != 0).then_some((code, message))
        }
    })
    .await;
    assert_eq!(code, 403, "{message}");
    let (code, message) = outcome(as_operator.delete(&foreign, &DeleteParams::default()).await);
    assert_eq!(code, 403, "deleting a foreign namespace: {message}");
    assert!(
        message.contains("changes and deletes only what carries its label"),
        "{message}"
    );
    let kept = namespaces.get(&foreign).await.unwrap();
    assert!(kept.metadata.deletion_timestamp.is_none(), "untouched");
    let relabel = json!({"metadata": {"labels": {"customers.dev/customer": "mine"}}});
    let (code, message) = outcome(
        as_operator
            .patch(&foreign, &PatchParams::default(), &Patch::Merge(&relabel))
            .await,
    );
    assert_eq!(code, 403, "labelling a foreign namespace: {message}");
    assert!(
        namespaces
            .get(&foreign)
            .await
            .unwrap()
            .labels()
            .get("customers.dev/customer")
            .is_none()
    );
    let operator_policies: Api<NetworkPolicy> = Api::namespaced(operator.clone(), &ours);
    let (code, message) = outcome(
        operator_policies
            .create(
                &PostParams::default(),
                &quiet_policy("unlabelled", &ours, label(false)),
            )
            .await,
    );
    assert_eq!(code, 403, "creating an unlabelled object: {message}");
    assert!(
        message.contains("creates only objects labelled"),
        "{message}"
    );
    let (code, message) = outcome(operator_policies.delete("theirs", &dry).await);
    assert_eq!(code, 403, "deleting someone else's policy: {message}");
    let operator_bindings: Api<RoleBinding> = Api::namespaced(operator.clone(), &ours);
    let wide: RoleBinding = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "wide", "namespace": ours, "labels": label(true)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": empty_role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "dave"}]}))
    .unwrap();
    let (code, message) = outcome(
        operator_bindings
            .create(
                &PostParams {
                    dry_run: true,
                    ..Default::default()
                },
                &wide,
            )
            .await,
    );
    assert_eq!(code, 403, "binding another role: {message}");
    assert!(
        message.contains("binds only the customer ClusterRoles"),
        "{message}"
    );
    assert_eq!(
        outcome(operator_policies.delete("operators", &dry).await).0,
        0,
        "the operator may delete its own"
    );
    assert_eq!(outcome(as_operator.delete(&ours, &dry).await).0, 0);

    // Everyone else: refused what carries the operator's label, let through the rest.
    let alice_policies: Api<NetworkPolicy> = Api::namespaced(support::as_user(alice).await, &ours);
    let (code, message) = support::wait_for("alice's admin rights", || {
        let (alice_policies, dry) = (alice_policies.clone(), dry.clone());
        async move {
            let (code, message) = outcome(alice_policies.delete("operators", &dry).await);
            (code != 0 && message.contains("only the customer operator")).then_some((code, message))
        }
    })
    .await;
    assert_eq!(code, 403, "{message}");
    let (code, message) = outcome(
        alice_policies
            .delete("operators", &DeleteParams::default())
            .await,
    );
    assert_eq!(code, 403, "{message}");
    assert!(message.contains(alice), "names who was refused: {message}");
    let strip = json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": null}}});
    let (code, message) = outcome(
        alice_policies
            .patch("operators", &PatchParams::default(), &Patch::Merge(&strip))
            .await,
    );
    assert_eq!(code, 403, "taking the label off: {message}");
    assert!(
        policies
            .get("operators")
            .await
            .unwrap()
            .labels()
            .contains_key("app.kubernetes.io/managed-by")
    );
    let (code, message) = outcome(
        alice_policies
            .create(
                &PostParams::default(),
                &quiet_policy("forged", &ours, label(true)),
            )
            .await,
    );
    assert_eq!(code, 403, "forging the label: {message}");
    assert_eq!(
        outcome(alice_policies.delete("theirs", &dry).await).0,
        0,
        "her own"
    );
    assert_eq!(
        outcome(policies.delete("operators", &dry).await).0,
        0,
        "the admin"
    );

    // The namespace controller empties a namespace being deleted, fence or not.
    namespaces
        .delete(&ours, &DeleteParams::default())
        .await
        .unwrap();
    support::gone(&namespaces, &ours).await;

    // A Customer made and deleted through the fence bound to its namespaces.
    support::operator();
    let customers: Api<Customer> = Api::all(admin.clone());
    support::create_customer(&admin, &customer_name, base_spec()).await;
    support::wait_condition(&admin, &customer_name, types::READY, "True").await;
    let held = namespaces.get(&customer_name).await.unwrap();
    assert_eq!(
        held.labels().get("customers.dev/customer"),
        Some(&customer_name)
    );
    customers
        .delete(&customer_name, &DeleteParams::default())
        .await
        .unwrap();
    support::gone(&customers, &customer_name).await;
    support::gone(&namespaces, &customer_name).await;

    namespaces
        .delete(&foreign, &DeleteParams::default())
        .await
        .unwrap();
    roles
        .delete(&empty_role, &DeleteParams::default())
        .await
        .unwrap();
    let vap_bindings: Api<ValidatingAdmissionPolicyBinding> = Api::all(admin.clone());
    let vaps: Api<ValidatingAdmissionPolicy> = Api::all(admin.clone());
    for doc in &docs {
        let name = doc["metadata"]["name"].as_str().unwrap();
        let _ = match doc["kind"].as_str() {
            Some("ValidatingAdmissionPolicy") => vaps
                .delete(name, &DeleteParams::default())
                .await
                .map(|_| ()),
            _ => vap_bindings
                .delete(name, &DeleteParams::default())
                .await
                .map(|_| ()),
        };
    }
}
