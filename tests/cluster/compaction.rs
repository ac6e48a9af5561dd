//! etcd compaction and 410 Gone (issue 22, part 4): the apiserver runs without its watch
//! cache (watches are served by etcd) and writes an audit log of every list and watch
//! (set up by `scripts/reliability.sh`). The operator binary runs as the chart's
//! ServiceAccount. After more writes, the test compacts etcd up to its current revision
//! through etcd's JSON gateway and restarts the apiserver: the operator's watches come
//! back with revisions etcd no longer holds, and are answered 410 Gone. What the audit
//! log then shows of the operator: watches resuming from revisions below the compacted
//! one (which etcd can only answer 410 Gone), each of those resources listed again, and
//! at most a few fresh lists per resource (no re-list storm). What the cluster then
//! holds: every living customer exactly as `desired/` builds it, with the creations and
//! deletions made after the restart (no event lost).
//!
//! It restarts the apiserver, so it is ignored by a plain `cargo test`;
//! `scripts/reliability.sh` runs it on a control plane of its own. Settings:
//! `CUSTOMER_OPERATOR_AUDIT_LOG` (set by the script), `CUSTOMER_OPERATOR_COMPACTION_CUSTOMERS`
//! [30].

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use customer_operator::api::Customer;
use kube::Api;
use serde_json::{Value, json};
use support::process::{OperatorProcess, setting};

/// More fresh lists of one resource than this in the minute after the restart count as
/// a storm. Each watch answered 410 lists once again; the Customers are also listed 3 s
/// and 15 s after each failure of their watch (it fails several times while the
/// restarted apiserver's authorizer and priority levels warm up: 403, 429), to compare
/// the cache with the cluster; 7 were seen in one run.
const LISTS_PER_RESOURCE: usize = 12;

/// Customer `i`: a quota and limits (so that every watched child kind has objects),
/// every third with three namespaces, every fifth an admin.
fn spec(i: usize) -> Value {
    let namespaces = if i.is_multiple_of(3) {
        json!([{"name": "web"}, {"name": "db"}, {"name": "ops"}])
    } else {
        json!([{"name": ""}])
    };
    let people = if i.is_multiple_of(5) {
        "admins"
    } else {
        "editors"
    };
    json!({
        "displayName": format!("Compaction {i}"),
        "contactEmail": "ops@compaction.example",
        "namespaces": namespaces,
        "access": {people: [{"kind": "User", "name": format!("person{i}")}]},
        "quota": {"hard": {"pods": "20"}},
        "limits": [{"type": "Container", "max": {"cpu": "2"}}],
    })
}

/// A request to etcd's JSON gateway on the control plane's client port.
fn etcd(path: &str, body: &str) -> Value {
    let port = std::env::var("CUSTOMER_OPERATOR_ETCD_PORT").expect("the control plane's etcd port");
    let out = Command::new("curl")
        .args(["-sS", "-X", "POST", "--data", body])
        .arg(format!("http://127.0.0.1:{port}/v3/{path}"))
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "etcd {path}: {out:?}");
    serde_json::from_slice(&out.stdout).expect("etcd answers JSON")
}

/// Compacts etcd up to its current revision, as the apiserver's compactor would some
/// minutes later: every older revision, those the operator's watches last saw among
/// them, is gone. Returns that revision.
fn compact_etcd() -> u64 {
    // The range of key "\0" returns nothing but the header with the current revision.
    let revision: u64 = etcd("kv/range", r#"{"key": "AA=="}"#)["header"]["revision"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .expect("etcd's revision");
    etcd(
        "kv/compaction",
        &format!(r#"{{"revision": "{revision}", "physical": true}}"#),
    );
    revision
}

/// One list or watch of the operator's, from the audit log.
struct Request {
    resource: String,
    /// A list, or a watch that sends its initial list (`sendInitialEvents`).
    fresh_list: bool,
    /// The revision a watch resumes from, if it resumes.
    resumes_from: Option<u64>,
    code: u16,
}

/// The operator's lists and watches in the audit log after byte `offset`, one per
/// audit ID (its last stage).
fn operator_requests(log: &std::path::Path, offset: usize, user: &str) -> Vec<Request> {
    let text = std::fs::read_to_string(log).expect("the audit log");
    let mut by_id: BTreeMap<String, Request> = BTreeMap::new();
    for line in text[offset.min(text.len())..].lines() {
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if event["impersonatedUser"]["username"] != user {
            continue;
        }
        let uri = event["requestURI"].as_str().unwrap_or_default();
        let verb = event["verb"].as_str().unwrap_or_default();
        by_id.insert(
            event["auditID"].as_str().unwrap_or_default().to_string(),
            Request {
                resource: event["objectRef"]["resource"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                fresh_list: verb == "list" || uri.contains("sendInitialEvents=true"),
                resumes_from: (verb == "watch" && !uri.contains("sendInitialEvents=true"))
                    .then(|| {
                        uri.split(['?', '&'])
                            .find_map(|p| p.strip_prefix("resourceVersion="))?
                            .parse()
                            .ok()
                    })
                    .flatten()
                    .filter(|rv| *rv > 0),
                code: event["responseStatus"]["code"].as_u64().unwrap_or(0) as u16,
            },
        );
    }
    by_id.into_values().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "restarts the apiserver: run by scripts/reliability.sh on a control plane of its own"]
async fn watches_answered_410_list_once_again_and_lose_nothing() {
    let audit = std::path::PathBuf::from(
        std::env::var("CUSTOMER_OPERATOR_AUDIT_LOG")
            .expect("CUSTOMER_OPERATOR_AUDIT_LOG: run by scripts/reliability.sh"),
    );
    let count = setting("CUSTOMER_OPERATOR_COMPACTION_CUSTOMERS", 30) as usize;
    let admin = support::client().await;
    let user = support::apply_chart_rbac(&admin).await;
    let prefix = support::unique("cp");
    let log =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/compaction-operator.log");
    let _ = std::fs::remove_file(&log);
    let mut operator = OperatorProcess::start(&support::kubeconfig_as(&user, "compaction"), &log);

    let first: Vec<String> = (0..count).map(|i| format!("{prefix}-a{i}")).collect();
    for (i, name) in first.iter().enumerate() {
        support::create_customer(&admin, name, spec(i)).await;
    }
    support::converged_within(&admin, &first, &[], Duration::from_secs(240)).await;
    // More writes while etcd is compacted every 10 s: the revisions the operator's
    // watches last saw fall behind the compacted one.
    for name in first.iter().step_by(3) {
        support::patch_customer_spec(&admin, name, json!({"description": "moved on"})).await;
    }
    support::converged_within(&admin, &first, &[], Duration::from_secs(240)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let compacted = compact_etcd();

    let offset = std::fs::metadata(&audit).map(|m| m.len()).unwrap_or(0) as usize;
    support::control_plane("stop", "apiserver");
    tokio::time::sleep(Duration::from_secs(3)).await;
    support::control_plane("start", "apiserver");
    let back = Instant::now();

    // Work after the restart, which the resumed watches must all deliver.
    let second: Vec<String> = (0..count / 3).map(|i| format!("{prefix}-b{i}")).collect();
    for (i, name) in second.iter().enumerate() {
        support::create_customer(&admin, name, spec(i)).await;
    }
    let customers: Api<Customer> = Api::all(admin.clone());
    let dead: Vec<String> = first.iter().skip(1).step_by(4).cloned().collect();
    for name in &dead {
        customers.delete(name, &Default::default()).await.unwrap();
    }
    let living: Vec<String> = first
        .iter()
        .chain(&second)
        .filter(|n| !dead.contains(n))
        .cloned()
        .collect();
    support::converged_within(&admin, &living, &dead, Duration::from_secs(240)).await;
    let recovery = back.elapsed();
    // Let the watches settle, then read what the apiserver recorded.
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(
        operator.exited().is_none(),
        "the operator exited; log: {}",
        log.display()
    );
    let requests = operator_requests(&audit, offset, &user);
    // A watch resuming from a compacted revision is one etcd can only answer 410 Gone.
    let gone: std::collections::BTreeSet<&str> = requests
        .iter()
        .filter(|r| r.resumes_from.is_some_and(|rv| rv < compacted))
        .map(|r| r.resource.as_str())
        .collect();
    let mut lists: BTreeMap<&str, usize> = BTreeMap::new();
    for r in requests.iter().filter(|r| r.fresh_list && r.code == 200) {
        *lists.entry(r.resource.as_str()).or_default() += 1;
    }
    assert!(
        !gone.is_empty(),
        "after the restart some of the operator's watches resumed from a compacted \
         revision ({} lists and watches of the operator's in the audit log)",
        requests.len()
    );
    let not_listed: Vec<&&str> = gone.iter().filter(|r| !lists.contains_key(**r)).collect();
    assert!(
        not_listed.is_empty(),
        "watches answered 410 and never listed again: {not_listed:?}"
    );
    let storms: Vec<_> = lists
        .iter()
        .filter(|(_, n)| **n > LISTS_PER_RESOURCE)
        .collect();
    assert!(
        storms.is_empty(),
        "fresh lists per resource after the restart: {lists:?}"
    );

    // No event lost: every living customer holds exactly what desired/ builds.
    let (objects, problems) = support::converged::check_all(&admin, &living).await;
    assert!(
        problems.is_empty(),
        "objects differ from the specs: {problems:#?}"
    );
    operator.kill();
    support::figures(&format!(
        "compaction: etcd compacted to revision {compacted}, the apiserver (watch cache \
         off) restarted; the operator's watches of {} resumed from compacted revisions and \
         were answered 410 Gone; fresh lists after \
         it per resource {lists:?} \
         (at most {LISTS_PER_RESOURCE} allowed); {} created and {} deleted after the restart, \
         all converged in {:.1} s; {objects} objects of {} customers checked, objects lost 0",
        gone.iter().copied().collect::<Vec<_>>().join(", "),
        second.len(),
        dead.len(),
        recovery.as_secs_f64(),
        living.len(),
    ));
}
