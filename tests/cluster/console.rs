//! Issue 18, part 7: `kubectl customer list` and `kubectl customer overview NAME`, the
//! built binary run as a kubectl plugin (a `kubectl-customer` symlink first on PATH)
//! through the control plane's real kubectl, as the platform admin and as the token
//! user alice. The self-service controllers are not part of this test: what they would
//! create is created by hand, as the admin: the partner namespaces `partner-acme` and
//! `partner-other` with a CustomerClaim each (status set through the status
//! subresource), a Role and RoleBinding that let alice read the claims of
//! `partner-acme` only, and a Customer with its status and its namespace, whose
//! ResourceQuota counts three pods (created; there is no kubelet to run them).

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use customer_operator::api::{Customer, CustomerClaim};
use k8s_openapi::api::core::v1::{Namespace, ResourceQuota};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

const ACME: &str = "partner-acme";
const OTHER: &str = "partner-other";

/// What the test made, once per test process.
struct World {
    /// The Customer, which is also its namespace's name.
    customer: String,
    /// A peer its allowFrom opens to, and one still pending.
    open_peer: String,
    pending_peer: String,
    /// alice's claim in partner-acme, and one in partner-other she may not read.
    acme_claim: String,
    other_claim: String,
    /// A temp dir with `kubectl-customer` in it, for PATH.
    plugin_dir: PathBuf,
}

async fn world() -> &'static World {
    static WORLD: OnceCell<World> = OnceCell::const_new();
    WORLD.get_or_init(make_world).await
}

fn condition(type_: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": message,
           "lastTransitionTime": "2026-01-01T00:00:00Z"})
}

async fn apply<K>(api: &Api<K>, name: &str, object: Value) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::apply("console-test").force(),
        &Patch::Apply(&object),
    )
    .await
    .unwrap_or_else(|e| panic!("apply {name}: {e}"))
}

async fn set_status<K>(api: &Api<K>, name: &str, status: Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(&json!({ "status": status })),
    )
    .await
    .unwrap_or_else(|e| panic!("status of {name}: {e}"));
}

async fn namespace(client: &Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    apply(
        &namespaces,
        name,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
    )
    .await;
}

async fn claim(client: &Client, ns: &str, name: &str, display: &str, partner: &str) {
    let claims: Api<CustomerClaim> = Api::namespaced(client.clone(), ns);
    apply(
        &claims,
        name,
        json!({
            "apiVersion": "customers.dev/v1alpha1", "kind": "CustomerClaim",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"displayName": display, "contactEmail": format!("ops@{name}.example")}
        }),
    )
    .await;
    set_status(
        &claims,
        name,
        json!({
            "customer": name, "partner": partner, "group": "all",
            "namespaces": [{"name": name, "phase": "Active"}],
            "summary": {"namespaces": 1, "networkPolicies": 4, "roleBindings": 2, "quotas": 1},
            "conditions": [condition("Ready", "True", "Reconciled", "everything the spec asks for is in place")]
        }),
    )
    .await;
}

async fn make_world() -> World {
    let client = support::client().await;
    let customer = support::unique("console");
    let open_peer = format!("{customer}-peer");
    let pending_peer = format!("{customer}-later");
    let acme_claim = support::unique("shop");
    let other_claim = support::unique("rival");

    for ns in [ACME, OTHER, customer.as_str()] {
        namespace(&client, ns).await;
    }
    claim(&client, ACME, &acme_claim, "Acme Shop", "acme").await;
    claim(&client, OTHER, &other_claim, "Rival Shop", "other").await;

    // alice may read the claims of partner-acme, and nothing else.
    let roles: Api<Role> = Api::namespaced(client.clone(), ACME);
    apply(
        &roles,
        "console-claim-reader",
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "console-claim-reader", "namespace": ACME},
            "rules": [{"apiGroups": ["customers.dev"], "resources": ["customerclaims"],
                       "verbs": ["get", "list", "watch"]}]
        }),
    )
    .await;
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), ACME);
    apply(
        &bindings,
        "console-alice",
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "console-alice", "namespace": ACME},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "console-claim-reader"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]
        }),
    )
    .await;

    // The Customer, its status as the operator would write it, and its quota.
    let customers: Api<Customer> = Api::all(client.clone());
    apply(
        &customers,
        &customer,
        json!({
            "apiVersion": "customers.dev/v1alpha1", "kind": "Customer",
            "metadata": {"name": customer},
            "spec": {
                "displayName": "Console Voyage",
                "contactEmail": "ops@console-voyage.example",
                "partner": {"name": "acme"},
                "group": "space",
                "network": {"allowFrom": [
                    {"customer": open_peer, "ports": [{"port": 443}]},
                    {"customer": pending_peer}
                ]}
            }
        }),
    )
    .await;
    set_status(
        &customers,
        &customer,
        json!({
            "group": "space", "partner": "acme",
            "namespaces": [{"name": customer, "phase": "Active"}],
            "summary": {"namespaces": 1, "networkPolicies": 5, "roleBindings": 3, "quotas": 2},
            "conditions": [
                condition("Ready", "False", "ConnectionsPending", &format!("waiting for: Customer {pending_peer}")),
                condition("ConnectionsPending", "True", "PeerNotFound", &format!(
                    "allowFrom names what does not exist yet; the connection opens when it appears: Customer {pending_peer} (waiting for its consent)"
                ))
            ]
        }),
    )
    .await;
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), &customer);
    apply(
        &quotas,
        "customer-quota",
        json!({
            "apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": {"name": "customer-quota", "namespace": customer},
            "spec": {"hard": {"pods": "10", "requests.cpu": "8"}}
        }),
    )
    .await;
    // Three pods, 500m of CPU requested together: quota admission counts them (they
    // never run: there is no kubelet).
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(client.clone(), &customer);
    support::wait_for("the default service account", || async {
        accounts.get_opt("default").await.ok().flatten()
    })
    .await;
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), &customer);
    for (i, cpu) in ["200m", "200m", "100m"].into_iter().enumerate() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("p{i}")},
            "spec": {"automountServiceAccountToken": false, "containers": [{
                "name": "c", "image": "registry.invalid/none:1",
                "resources": {"requests": {"cpu": cpu}}}]}
        });
        support::wait_for("a pod admitted once the quota is counted", || async {
            let pod = serde_json::from_value(pod.clone()).unwrap();
            pods.create(&Default::default(), &pod).await.ok()
        })
        .await;
    }

    let plugin_dir = std::env::temp_dir().join(support::unique("console-plugin"));
    std::fs::create_dir_all(&plugin_dir).unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_customer-operator"),
        plugin_dir.join("kubectl-customer"),
    )
    .unwrap();

    World {
        customer,
        open_peer,
        pending_peer,
        acme_claim,
        other_claim,
        plugin_dir,
    }
}

/// The kubeconfig `scripts/control-plane.sh` writes for a token user, beside the
/// admin's.
fn kubeconfig_of(user: &str) -> PathBuf {
    let admin = support::kubeconfig();
    let path = admin
        .parent()
        .expect("the kubeconfig is in the state dir")
        .join(format!("kubeconfig-{user}"));
    assert!(
        path.exists(),
        "{} missing: scripts/control-plane.sh writes one per token user",
        path.display()
    );
    path
}

/// A copy of `kubeconfig` whose contexts set `namespace`.
fn with_namespace(kubeconfig: &Path, namespace: &str) -> PathBuf {
    let text = std::fs::read_to_string(kubeconfig).unwrap();
    let mut config: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    for context in config["contexts"].as_sequence_mut().unwrap() {
        context["context"]["namespace"] = serde_yaml::Value::from(namespace);
    }
    let path = std::env::temp_dir().join(format!("{}.kubeconfig", support::unique("console")));
    std::fs::write(&path, serde_yaml::to_string(&config).unwrap()).unwrap();
    path
}

/// `kubectl customer ARGS` with the plugin first on PATH and `KUBECONFIG` set to
/// `kubeconfig`.
async fn kubectl_customer(kubeconfig: &Path, args: &[&str]) -> Output {
    let world = world().await;
    let path = format!(
        "{}:{}",
        world.plugin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    support::kubectl()
        .arg("customer")
        .args(args)
        .env("PATH", path)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("kubectl runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Succeeded, printed nothing on stderr; its standard output.
fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: exit {:?}\n{}{}",
        out.status.code(),
        stdout(out),
        stderr(out)
    );
    assert_eq!(stderr(out), "", "{what}: stderr");
    stdout(out)
}

/// Failed with exit code 1 and exactly one line on stderr, which it returns.
fn refused(out: &Output, what: &str) -> String {
    let err = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: exit code\n{}{err}",
        stdout(out)
    );
    assert_eq!(stdout(out), "", "{what}: nothing on stdout");
    assert_eq!(err.lines().count(), 1, "{what}: one line on stderr:\n{err}");
    assert!(err.starts_with("error: "), "{what}: {err}");
    err.trim_end().to_string()
}

/// The cells of the table row that starts with `name`.
fn row<'a>(table: &'a str, name: &str) -> Option<Vec<&'a str>> {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
}

#[tokio::test]
async fn the_platform_admin_lists_every_customer() {
    let world = world().await;
    let client = support::client().await;
    let all: Vec<String> = Api::<Customer>::all(client)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|c| c.name_any())
        .collect();
    assert!(all.contains(&world.customer));
    let table = ok(
        &kubectl_customer(&support::kubeconfig(), &["list"]).await,
        "admin list",
    );
    assert!(table.starts_with("NAME "), "{table}");
    for name in &all {
        assert!(row(&table, name).is_some(), "{name} not listed:\n{table}");
    }
    assert_eq!(
        row(&table, &world.customer).unwrap(),
        [
            world.customer.as_str(),
            "Console Voyage",
            "ops@console-voyage.example",
            "acme",
            "space",
            "False",
            "ConnectionsPending",
            "1"
        ]
    );
    // Claims are not Customers: the admin's list shows Customers only.
    assert!(row(&table, &world.acme_claim).is_none());
}

#[tokio::test]
async fn the_overview_shows_each_field_and_the_quota_used_against_hard() {
    let world = world().await;
    // --kubeconfig as the plugin's own flag, after the command.
    let admin = support::kubeconfig();
    let text = ok(
        &kubectl_customer(
            Path::new("/nonexistent"),
            &[
                "overview",
                &world.customer,
                "--kubeconfig",
                admin.to_str().unwrap(),
            ],
        )
        .await,
        "admin overview",
    );
    for expected in [
        format!("Customer:         {}", world.customer),
        "Display name:     Console Voyage".into(),
        "Contact:          ops@console-voyage.example".into(),
        "Partner:          acme".into(),
        "Group:            space".into(),
        format!(
            "Ready:            False (ConnectionsPending): waiting for: Customer {}",
            world.pending_peer
        ),
        format!("  {}  Active", world.customer),
        "NetworkPolicies:  5".into(),
        "RoleBindings:     3".into(),
        "Quota objects:    2".into(),
        format!(
            "  {}  customer-quota  pods 3/10, requests.cpu 500m/8",
            world.customer
        ),
        format!("  open:     Customer {} on 443/TCP", world.open_peer),
        format!(
            "  pending:  Customer {} on every port (waiting for its consent)",
            world.pending_peer
        ),
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(expected.as_str())),
            "{expected:?} missing:\n{text}"
        );
    }
    // The same command without kubectl, as `customer-operator overview`.
    let direct = std::process::Command::new(env!("CARGO_BIN_EXE_customer-operator"))
        .args(["overview", &world.customer])
        .env("KUBECONFIG", &admin)
        .output()
        .unwrap();
    assert_eq!(ok(&direct, "customer-operator overview"), text);
}

#[tokio::test]
async fn alice_lists_her_partners_claims() {
    let world = world().await;
    let alice = kubeconfig_of("alice");
    let table = ok(
        &kubectl_customer(&alice, &["list", "-n", ACME]).await,
        "alice list -n partner-acme",
    );
    assert_eq!(
        row(&table, &world.acme_claim).unwrap(),
        [
            world.acme_claim.as_str(),
            "Acme Shop",
            format!("ops@{}.example", world.acme_claim).as_str(),
            "acme",
            "all",
            "True",
            "Reconciled",
            "1"
        ]
    );
    assert!(row(&table, &world.other_claim).is_none(), "{table}");
    assert!(row(&table, &world.customer).is_none(), "{table}");

    // The context's namespace, when -n is not given; -n before the command works too.
    let in_acme = with_namespace(&alice, ACME);
    let from_context = ok(&kubectl_customer(&in_acme, &["list"]).await, "context ns");
    assert_eq!(from_context, table);
    let flag_first = ok(
        &kubectl_customer(&alice, &["-n", ACME, "list"]).await,
        "-n first",
    );
    assert_eq!(flag_first, table);
}

#[tokio::test]
async fn alice_sees_her_claims_overview_without_its_quota() {
    let world = world().await;
    let alice = kubeconfig_of("alice");
    let text = ok(
        &kubectl_customer(&alice, &["overview", &world.acme_claim, "-n", ACME]).await,
        "alice overview",
    );
    for expected in [
        format!("Customer:         {}", world.acme_claim),
        "Display name:     Acme Shop".into(),
        "Partner:          acme".into(),
        "Ready:            True (Reconciled)".into(),
        format!("Claim:            {ACME}/{}", world.acme_claim),
        "NetworkPolicies:  4".into(),
        // alice may not read the ResourceQuotas of the customer's namespace.
        format!("  {}  not readable", world.acme_claim),
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(expected.as_str())),
            "{expected:?} missing:\n{text}"
        );
    }
}

#[tokio::test]
async fn alice_is_refused_in_one_line() {
    let world = world().await;
    let alice = kubeconfig_of("alice");

    let other = refused(
        &kubectl_customer(&alice, &["overview", &world.other_claim, "-n", OTHER]).await,
        "alice overview in partner-other",
    );
    assert_eq!(
        other,
        format!("error: you may not read customerclaims in namespace {OTHER} (forbidden)")
    );
    let list = refused(
        &kubectl_customer(&alice, &["list", "-n", OTHER]).await,
        "alice list in partner-other",
    );
    assert_eq!(
        list,
        format!("error: you may not list customerclaims in namespace {OTHER} (forbidden)")
    );
    let missing = refused(
        &kubectl_customer(&alice, &["overview", "no-such-claim", "-n", ACME]).await,
        "alice overview of a missing claim",
    );
    assert_eq!(
        missing,
        format!("error: customerclaim \"no-such-claim\" not found in namespace {ACME}")
    );
    // No -n and no namespace in the context: she is told to pass one.
    let nowhere = refused(
        &kubectl_customer(&alice, &["list"]).await,
        "alice list without a namespace",
    );
    assert!(nowhere.contains("forbidden"), "{nowhere}");
    assert!(
        nowhere.contains("pass -n with the partner's or the customer's namespace"),
        "{nowhere}"
    );
    // A context the kubeconfig does not have.
    let context = refused(
        &kubectl_customer(&alice, &["list", "--context", "nowhere"]).await,
        "unknown context",
    );
    assert_eq!(
        context,
        "error: context \"nowhere\" is not in the kubeconfig"
    );
    // bob has no rights at all, not even on partner-acme's claims.
    let bob = refused(
        &kubectl_customer(
            &kubeconfig_of("bob"),
            &["overview", &world.acme_claim, "-n", ACME],
        )
        .await,
        "bob overview",
    );
    assert_eq!(
        bob,
        format!("error: you may not read customerclaims in namespace {ACME} (forbidden)")
    );
}

#[tokio::test]
async fn the_platform_admin_is_told_of_a_missing_customer() {
    world().await;
    let missing = refused(
        &kubectl_customer(&support::kubeconfig(), &["overview", "no-such-customer"]).await,
        "admin overview of a missing customer",
    );
    assert_eq!(missing, "error: customer \"no-such-customer\" not found");
}
