//! The Argo CD AppProject per customer (`--argocd-projects`) against the real control
//! plane, with Argo CD's AppProject CRD installed from its Go module
//! (github.com/argoproj/argo-cd/v3, scripts/argocd-crd.sh). The operator runs in this
//! process with a write counter, and is restarted once: it looks for the CRD at start.
//!
//! - Flag on, CRD absent: a customer becomes Ready and the operator sends no request
//!   about AppProjects at all.
//! - CRD installed, operator restarted: each customer's AppProject has exactly its
//!   namespaces as destinations, follows a namespace added to the spec, is repaired
//!   after an edit, and is gone with the customer; a foreign AppProject of a customer's
//!   name is never changed or deleted, and the customer reports it.

mod support;

use std::time::Duration;

use customer_operator::api::{APP_PROJECT_CRD, AppProject};
use customer_operator::controller::{self, counting::WriteCounter, status::condition};
use futures::FutureExt;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, ResourceExt};
use serde_json::json;
use tokio::sync::Mutex;

/// One operator at a time, and one state of the CRD: absent, then installed.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// The Argo CD namespace of the test.
const ARGOCD: &str = "argocd";

/// The operator in this process, with `--argocd-projects`, until [`Operator::stop`].
struct Operator {
    writes: WriteCounter,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Operator {
    /// Starts it on its own thread and runtime, with the admin's rights or (with
    /// `CUSTOMER_OPERATOR_TEST_RBAC=chart`) the chart's, rendered with
    /// `argocd.projects=true`.
    async fn start(admin: &Client) -> Operator {
        let kubeconfig = Kubeconfig::read_from(support::kubeconfig()).expect("kubeconfig");
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("kubeconfig valid");
        let config = support::as_configured_operator(config, admin).await;
        if std::env::var("CUSTOMER_OPERATOR_TEST_RBAC").as_deref() == Ok("chart") {
            apply_argocd_rbac(admin).await;
        }
        let writes = WriteCounter::default();
        let client = kube::client::ClientBuilder::try_from(config)
            .expect("client builder")
            .with_layer(&writes)
            .build();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("runtime");
            runtime.block_on(async move {
                let options = controller::Options {
                    settings: customer_operator::settings::Settings {
                        platform_namespaces: vec!["ingress-nginx".into()],
                        argocd_namespace: Some(ARGOCD.into()),
                        ..Default::default()
                    },
                    resync: Duration::from_secs(3),
                    ..Default::default()
                };
                let hooks = customer_operator::operate::Hooks {
                    metrics: Default::default(),
                    health: Default::default(),
                    shutdown: stopped.map(|_| ()).boxed().shared(),
                };
                controller::run_with(client, options, hooks)
                    .await
                    .expect("operator runs");
            });
        });
        Operator {
            writes,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Stops it and waits until it has returned.
    fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("operator thread ends");
        }
    }

    /// The requests it sent about AppProjects.
    fn app_project_writes(&self) -> Vec<String> {
        self.writes
            .by_kind()
            .into_keys()
            .filter(|k| k.contains("appprojects"))
            .collect()
    }
}

/// The chart's Role and RoleBinding for AppProjects in the Argo CD namespace.
async fn apply_argocd_rbac(admin: &Client) {
    let docs: Vec<serde_json::Value> = support::render_chart_for(
        admin,
        &[
            "--set",
            "argocd.projects=true",
            "--set",
            &format!("argocd.namespace={ARGOCD}"),
        ],
    )
    .await
    .into_iter()
    .filter(|d| {
        d["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.ends_with("-argocd-projects"))
    })
    .collect();
    assert_eq!(docs.len(), 2, "the chart's Role and RoleBinding");
    let skipped = support::apply_manifests(admin, &docs, &PatchParams::apply("helm").force()).await;
    assert!(skipped.is_empty(), "{skipped:?}");
}

async fn ensure_namespace(client: &Client, name: &str) {
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    Api::<Namespace>::all(client.clone())
        .patch(name, &PatchParams::apply("argocd-test"), &Patch::Apply(&ns))
        .await
        .expect("namespace");
}

/// Deletes the AppProject CRD if an earlier run left it, and waits until it is gone.
async fn remove_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let _ = crds.delete(APP_PROJECT_CRD, &DeleteParams::default()).await;
    support::wait_within(Duration::from_secs(60), "AppProject CRD gone", || {
        let crds = crds.clone();
        async move {
            crds.get_opt(APP_PROJECT_CRD)
                .await
                .ok()?
                .is_none()
                .then_some(())
        }
    })
    .await;
}

/// Installs the AppProject CRD from the pinned Go module and waits until it serves.
async fn install_crd(client: &Client) {
    let path = support::script("argocd-crd.sh", &[]);
    let out = support::kubectl()
        .args(["apply", "--server-side", "-f", path.trim()])
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    support::wait_established(&Api::all(client.clone()), APP_PROJECT_CRD).await;
}

/// The namespaces of the project's destinations, and their servers.
fn destinations(project: &AppProject) -> Vec<(String, String)> {
    project
        .spec
        .destinations
        .iter()
        .map(|d| {
            (
                d.server.clone().unwrap_or_default(),
                d.namespace.clone().unwrap_or_default(),
            )
        })
        .collect()
}

fn in_cluster(namespaces: &[String]) -> Vec<(String, String)> {
    let mut list: Vec<(String, String)> = namespaces
        .iter()
        .map(|ns| ("https://kubernetes.default.svc".to_string(), ns.clone()))
        .collect();
    list.sort();
    list
}

/// Waits until the project `name` has exactly these destinations.
async fn wait_destinations(projects: &Api<AppProject>, name: &str, namespaces: &[String]) {
    let want = in_cluster(namespaces);
    support::wait_within(
        Duration::from_secs(60),
        &format!("AppProject {name} with destinations {namespaces:?}"),
        || {
            let (projects, want) = (projects.clone(), want.clone());
            async move {
                let p = projects.get_opt(name).await.ok()??;
                (destinations(&p) == want).then_some(())
            }
        },
    )
    .await;
}

#[tokio::test]
async fn an_app_project_per_customer_once_argo_cd_is_installed() {
    let _serial = SERIAL.lock().await;
    let client = support::client().await;
    ensure_namespace(&client, ARGOCD).await;
    remove_crd(&client).await;

    // Flag on, no CRD: Ready, and not one request about AppProjects.
    let operator = Operator::start(&client).await;
    let first = support::unique("argo-a");
    support::create_customer(
        &client,
        &first,
        json!({"displayName": "A", "contactEmail": "a@a.example",
               "namespaces": [{"name": "web"}, {"name": "db"}],
               "access": {"admins": [{"kind": "Group", "name": "a-admins"}]},
               "argoCD": {"sourceRepos": ["https://git.example/a/*"]}}),
    )
    .await;
    let ready = support::wait_condition(&client, &first, "Ready", "True").await;
    assert!(condition(ready.status.as_ref(), "ArgoCDProject").is_none());
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(operator.app_project_writes(), Vec::<String>::new());
    assert!(
        operator
            .writes
            .by_kind()
            .keys()
            .any(|k| k.contains("namespaces")),
        "the counter does count this operator's writes: {:?}",
        operator.writes.by_kind()
    );

    // The CRD installed; the operator sees it at its next start.
    install_crd(&client).await;
    operator.stop();
    let operator = Operator::start(&client).await;
    let projects: Api<AppProject> = Api::namespaced(client.clone(), ARGOCD);
    let mut own = vec![format!("{first}-web"), format!("{first}-db")];
    wait_destinations(&projects, &first, &own).await;
    let project = projects.get(&first).await.unwrap();
    assert_eq!(project.spec.source_repos, ["https://git.example/a/*"]);
    assert!(project.spec.cluster_resource_whitelist.is_empty());
    assert_eq!(project.spec.roles[0].groups, ["a-admins"]);
    assert!(
        operator
            .app_project_writes()
            .iter()
            .any(|k| k.starts_with("POST"))
    );
    support::wait_condition(&client, &first, "ArgoCDProject", "True").await;

    // A namespace added to the spec becomes a destination.
    support::patch_customer_spec(
        &client,
        &first,
        json!({"namespaces": [{"name": "web"}, {"name": "db"}, {"name": "jobs"}]}),
    )
    .await;
    own.push(format!("{first}-jobs"));
    wait_destinations(&projects, &first, &own).await;

    // Frozen: the admins' role keeps its holders and may only get; unfrozen, it is back.
    let admin_policies = |project: &AppProject| project.spec.roles[0].policies.clone();
    let unfrozen = admin_policies(&projects.get(&first).await.unwrap());
    assert_eq!(
        unfrozen,
        [format!(
            "p, proj:{first}:customer-admin, applications, *, {first}/*, allow"
        )]
    );
    let view_only = vec![format!(
        "p, proj:{first}:customer-admin, applications, get, {first}/*, allow"
    )];
    for (frozen, want) in [(true, &view_only), (false, &unfrozen)] {
        support::patch_customer_spec(&client, &first, json!({"frozen": frozen})).await;
        support::wait_within(
            Duration::from_secs(60),
            &format!("AppProject {first} roles with frozen={frozen}"),
            || {
                let projects = projects.clone();
                let (first, want) = (first.clone(), want.clone());
                async move {
                    let p = projects.get_opt(&first).await.ok()??;
                    (admin_policies(&p) == want && p.spec.roles[0].groups == ["a-admins"])
                        .then_some(())
                }
            },
        )
        .await;
    }

    // Someone widens the destinations: put back.
    let widen = json!({"spec": {"destinations": [{"server": "*", "namespace": "*"}]}});
    projects
        .patch(&first, &PatchParams::default(), &Patch::Merge(&widen))
        .await
        .unwrap();
    wait_destinations(&projects, &first, &own).await;

    // A project of another customer's name that the operator did not write.
    let second = support::unique("argo-b");
    let foreign: AppProject = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
        "metadata": {"name": second, "namespace": ARGOCD},
        "spec": {"destinations": [{"server": "*", "namespace": "*"}], "sourceRepos": ["*"]}
    }))
    .unwrap();
    let foreign = projects
        .create(&PostParams::default(), &foreign)
        .await
        .unwrap();
    support::create_customer(
        &client,
        &second,
        json!({"displayName": "B", "contactEmail": "b@b.example"}),
    )
    .await;
    let reported = support::wait_condition(&client, &second, "ArgoCDProject", "False").await;
    let reason = &condition(reported.status.as_ref(), "ArgoCDProject")
        .unwrap()
        .reason;
    assert_eq!(reason, "ProjectNotOwned");
    support::event_seen(&client, &second, "Warning", "ProjectNotOwned").await;
    support::wait_condition(&client, &second, "Ready", "True").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = projects.get(&second).await.unwrap();
    assert_eq!(
        after.resource_version(),
        foreign.resource_version(),
        "untouched"
    );

    // Deleting the customers: the operator's project goes, the foreign one stays.
    support::delete_customers(&client, &[first.clone(), second.clone()]).await;
    assert!(
        projects.get_opt(&first).await.unwrap().is_none(),
        "gone with its customer"
    );
    let kept = projects.get(&second).await.unwrap();
    assert_eq!(
        kept.resource_version(),
        foreign.resource_version(),
        "never deleted"
    );
    let _ = projects.delete(&second, &DeleteParams::default()).await;
    operator.stop();
}
