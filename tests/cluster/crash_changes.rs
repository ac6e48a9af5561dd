//! SIGKILL during the operator's two longest multi-object changes (issue 22, part 4): a
//! CustomerGroup with `deletionPolicy: Cascade` being deleted (every member deleted
//! through its own finalizer), and customers moving from one partner to another (the
//! former partner's consultants recorded, then their bindings taken away). The
//! operator binary is killed at seeded moments during each and started again. After
//! each: the cascade finished (group, members and their namespaces gone, no finalizer
//! stuck), every living customer holds exactly what `desired/` builds (the former
//! partner's consultants hold nothing), and the bystanders' objects were never
//! written. Sizes: `CUSTOMER_OPERATOR_CRASH_CHANGE_MEMBERS` [12] group members and
//! partnered customers, `CUSTOMER_OPERATOR_CRASH_KILLS` [3] kills per change,
//! `CUSTOMER_OPERATOR_CRASH_SEED` [7].

mod support;

use std::time::{Duration, Instant};

use customer_operator::api::{Customer, CustomerGroup};
use customer_operator::controller::status::types;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use support::process::{OperatorProcess, Seeded, setting};

fn customer_spec(i: usize) -> Value {
    json!({
        "displayName": format!("Change {i}"),
        "contactEmail": "ops@change.example",
        "namespaces": [{"name": "a"}, {"name": "b"}],
        "access": {"admins": [{"kind": "User", "name": format!("admin{i}")}]},
    })
}

/// Kills the operator `kills` times at seeded moments while `work` runs (and once it is
/// done, the rest of the kills go on for a moment), starting it again after a pause.
async fn kill_during<F: std::future::Future<Output = ()>>(
    operator: &mut OperatorProcess,
    random: &mut Seeded,
    kills: u64,
    work: F,
) {
    let pauses: Vec<(u64, u64)> = (0..kills)
        .map(|_| (random.range(100, 1500), random.range(100, 800)))
        .collect();
    let killer = async {
        for (before, down) in pauses {
            tokio::time::sleep(Duration::from_millis(before)).await;
            operator.kill();
            tokio::time::sleep(Duration::from_millis(down)).await;
            operator.restart();
        }
    };
    futures::join!(work, killer);
}

/// Waits until every named Customer is Ready for its generation.
async fn all_ready(client: &Client, names: &[String]) {
    for name in names {
        support::wait_condition(client, name, types::READY, "True").await;
    }
}

async fn namespaces_of(client: &Client, names: &[String]) -> Vec<String> {
    Api::<Namespace>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|n| n.name_any())
        .filter(|n| names.iter().any(|c| n.starts_with(&format!("{c}-"))))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_cascade_and_a_partner_change_loses_nothing() {
    let client = support::client().await;
    let members = setting("CUSTOMER_OPERATOR_CRASH_CHANGE_MEMBERS", 12) as usize;
    let kills = setting("CUSTOMER_OPERATOR_CRASH_KILLS", 3);
    let mut random = Seeded::new(setting("CUSTOMER_OPERATOR_CRASH_SEED", 7));
    let prefix = support::unique("kc");
    let log =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/crash-changes-operator.log");
    let _ = std::fs::remove_file(&log);
    let mut operator = OperatorProcess::start(&support::kubeconfig(), &log);

    let group = format!("{prefix}-cascade");
    Api::<CustomerGroup>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "customers.dev/v1alpha1", "kind": "CustomerGroup",
                "metadata": {"name": group},
                "spec": {"displayName": "Cascade", "deletionPolicy": "Cascade"}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let in_group: Vec<String> = (0..members).map(|i| format!("{prefix}-m{i}")).collect();
    let partnered: Vec<String> = (0..members).map(|i| format!("{prefix}-p{i}")).collect();
    let bystanders: Vec<String> = (0..4).map(|i| format!("{prefix}-b{i}")).collect();
    for (i, name) in in_group.iter().enumerate() {
        let mut spec = customer_spec(i);
        spec["group"] = json!(group);
        support::create_customer(&client, name, spec).await;
    }
    for (i, name) in partnered.iter().enumerate() {
        let mut spec = customer_spec(i);
        spec["partner"] = json!({"name": "acme",
            "securityConsultants": [{"kind": "User", "name": "acme-consultant"}]});
        support::create_customer(&client, name, spec).await;
    }
    for (i, name) in bystanders.iter().enumerate() {
        support::create_customer(&client, name, customer_spec(i)).await;
    }
    let everyone: Vec<String> = in_group
        .iter()
        .chain(&partnered)
        .chain(&bystanders)
        .cloned()
        .collect();
    all_ready(&client, &everyone).await;
    let bystanders_before = support::snapshot(&client, &bystanders).await;

    // The cascade, killed at seeded moments.
    let groups: Api<CustomerGroup> = Api::all(client.clone());
    let customers: Api<Customer> = Api::all(client.clone());
    let start = Instant::now();
    kill_during(&mut operator, &mut random, kills, async {
        groups.delete(&group, &Default::default()).await.unwrap();
    })
    .await;
    support::wait_within(
        Duration::from_secs(180),
        "the group, its members and their namespaces gone",
        || {
            let (client, groups, customers) = (client.clone(), groups.clone(), customers.clone());
            let (group, in_group) = (group.clone(), in_group.clone());
            async move {
                if groups.get_opt(&group).await.ok()?.is_some() {
                    return None;
                }
                for name in &in_group {
                    if customers.get_opt(name).await.ok()?.is_some() {
                        return None;
                    }
                }
                namespaces_of(&client, &in_group)
                    .await
                    .is_empty()
                    .then_some(())
            }
        },
    )
    .await;
    let cascade = start.elapsed();

    // The partner change, killed at seeded moments.
    let start = Instant::now();
    kill_during(&mut operator, &mut random, kills, async {
        for name in &partnered {
            support::patch_customer_spec(
                &client,
                name,
                json!({"partner": {"name": "globex",
                    "securityConsultants": [{"kind": "User", "name": "globex-consultant"}]}}),
            )
            .await;
        }
    })
    .await;
    all_ready(&client, &partnered).await;
    let change = start.elapsed();

    // Nothing lost, nothing left of the former partner, bystanders never written.
    let checked: Vec<String> = partnered.iter().chain(&bystanders).cloned().collect();
    let (objects, problems) = support::converged::check_all(&client, &checked).await;
    assert!(
        problems.is_empty(),
        "objects differ from the specs: {problems:#?}"
    );
    let bindings = Api::<k8s_openapi::api::rbac::v1::RoleBinding>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    let former = bindings
        .items
        .iter()
        .filter(|b| {
            b.subjects
                .iter()
                .flatten()
                .any(|s| s.name == "acme-consultant")
        })
        .count();
    assert_eq!(
        former, 0,
        "the former partner's consultants hold no binding"
    );
    assert_eq!(
        support::snapshot_diff(
            &bystanders_before,
            &support::snapshot(&client, &bystanders).await
        ),
        Vec::<String>::new(),
        "the bystanders' objects were not written"
    );
    let stuck = customers
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|c| c.name_any().starts_with(&prefix) && c.metadata.deletion_timestamp.is_some())
        .count();
    assert_eq!(stuck, 0, "no Customer left being deleted");
    assert!(operator.exited().is_none(), "the operator is running");
    support::figures(&format!(
        "SIGKILL during changes: a Cascade group of {members} members deleted with {kills} \
         kills, all gone with their namespaces in {:.1} s; {members} customers moved to \
         another partner with {kills} kills, all Ready in {:.1} s; {} objects of {} living \
         customers checked: different 0; former partner's bindings 0; bystanders' objects \
         written 0; finalizers stuck 0",
        cascade.as_secs_f64(),
        change.as_secs_f64(),
        objects,
        partnered.len() + bystanders.len(),
    ));
    support::delete_customers(&client, &everyone).await;
}
