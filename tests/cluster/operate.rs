//! The operator binary as a service, against the real test control plane: `/healthz`,
//! `/readyz` (ready only once the caches have filled), `/metrics` with plausible values,
//! JSON logs, graceful shutdown on SIGTERM, and leader election between replicas that
//! are separate processes (so that one can be SIGKILLed).
//!
//! The tests of this file run one after another (each starts operators of its own, and
//! two operators without a shared Lease would both reconcile every Customer).

mod support;

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use customer_operator::api::{Customer, LABEL_CUSTOMER};
use customer_operator::controller::status::{condition, types};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::Kubeconfig;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::{Value, json};
use support::metrics::{http_get, series};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Label pairs that select a series.
type Labels<'a> = &'a [(&'a str, &'a str)];

/// One `customer-operator run` process; killed when dropped.
struct Operator {
    name: String,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Operator {
    /// Starts the binary with JSON logs, metrics on a free loopback port, a 3 s resync,
    /// and `extra` arguments.
    fn start(name: &str, kubeconfig: &Path, extra: &[&str]) -> Operator {
        let mut child = Command::new(env!("CARGO_BIN_EXE_customer-operator"))
            .arg("run")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--log-format", "json", "--metrics-addr", "127.0.0.1:0"])
            .args([
                "--resync-seconds",
                "3",
                "--platform-namespaces",
                "ingress-nginx",
            ])
            .args(extra)
            .env("RUST_LOG", "info")
            .env("POD_NAME", name)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the operator binary starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout: Box<dyn Read + Send> = Box::new(child.stdout.take().unwrap());
        let stderr: Box<dyn Read + Send> = Box::new(child.stderr.take().unwrap());
        for (stream, prefix) in [(stdout, ""), (stderr, "stderr: ")] {
            let (lines, name) = (lines.clone(), name.to_string());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    eprintln!("[{name}] {prefix}{line}");
                    lines.lock().unwrap().push(format!("{prefix}{line}"));
                }
            });
        }
        Operator {
            name: name.to_string(),
            child,
            lines,
        }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The address of `/metrics`, from the log line that announces it.
    async fn address(&self) -> SocketAddr {
        support::wait_for(&format!("{} to serve metrics", self.name), || {
            let found = self.lines().iter().find_map(|line| {
                let entry: Value = serde_json::from_str(line).ok()?;
                entry["address"].as_str()?.parse().ok()
            });
            async move { found }
        })
        .await
    }

    async fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.address().await, path)
    }

    /// The value of one series of `/metrics` (0 when absent: a counter never touched).
    async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let (status, text) = self.get("/metrics").await.expect("/metrics answers");
        assert_eq!(status, 200);
        series(&text, name, labels).unwrap_or(0.0)
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits (up to `limit`) for the process to exit; its exit code.
    async fn exited(&mut self, limit: Duration) -> i32 {
        let child = &mut self.child;
        let name = self.name.clone();
        support::wait_within(limit, &format!("{name} to exit"), || {
            let status = child.try_wait().unwrap();
            async move { status.map(|s| s.code().unwrap_or(-1)) }
        })
        .await
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP proxy on the loopback to `upstream` that holds every connection until opened:
/// the operator behind it cannot reach the apiserver until then.
fn gated_proxy(upstream: SocketAddr) -> (SocketAddr, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let open = Arc::new(AtomicBool::new(false));
    let gate = open.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().map_while(Result::ok) {
            let gate = gate.clone();
            std::thread::spawn(move || {
                while !gate.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let Ok(server) = TcpStream::connect(upstream) else {
                    return;
                };
                let (mut c_read, mut s_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c_read, &mut s_write);
                    let _ = s_write.shutdown(std::net::Shutdown::Write);
                });
                let (mut s_read, mut c_write) = (server, client);
                let _ = std::io::copy(&mut s_read, &mut c_write);
                let _ = c_write.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (address, open)
}

/// The `host:port` of the test cluster's apiserver.
fn apiserver() -> SocketAddr {
    let config = Kubeconfig::read_from(support::kubeconfig()).unwrap();
    let server = config.clusters[0].cluster.as_ref().unwrap().server.clone();
    let server = server.expect("the kubeconfig names a server");
    server
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .parse()
        .expect("the server is https://host:port")
}

/// The test cluster's kubeconfig with its server replaced by `server`, in a file.
fn kubeconfig_with_server(server: SocketAddr) -> PathBuf {
    let mut config = Kubeconfig::read_from(support::kubeconfig()).unwrap();
    for cluster in config
        .clusters
        .iter_mut()
        .filter_map(|c| c.cluster.as_mut())
    {
        cluster.server = Some(format!("https://{server}"));
    }
    let path = std::env::temp_dir().join(format!("{}.kubeconfig", support::unique("operate")));
    std::fs::write(&path, serde_yaml::to_string(&config).unwrap()).unwrap();
    path
}

async fn create_customer(client: &Client, name: &str) {
    let customer: Customer = serde_json::from_value(json!({
        "apiVersion": "customers.dev/v1alpha1", "kind": "Customer",
        "metadata": {"name": name},
        "spec": {"displayName": "Operate", "contactEmail": "ops@operate.example",
                 "namespaces": [{"name": "a"}, {"name": "b"}],
                 "access": {"admins": [{"kind": "User", "name": "alice"}]}}
    }))
    .unwrap();
    Api::<Customer>::all(client.clone())
        .create(&PostParams::default(), &customer)
        .await
        .unwrap();
}

/// Waits until the Customer is Ready for its current generation.
async fn ready(client: &Client, name: &str) {
    let api: Api<Customer> = Api::all(client.clone());
    support::wait_within(Duration::from_secs(60), &format!("{name} Ready"), || {
        let api = api.clone();
        async move {
            let c = api.get(name).await.ok()?;
            let status = c.status.as_ref()?;
            let ok = condition(Some(status), types::READY)?.status == "True";
            (ok && status.observed_generation == c.meta().generation).then_some(())
        }
    })
    .await;
}

/// Deletes the Customer and waits until the operator has let it go.
async fn delete_customer(client: &Client, name: &str) {
    let api: Api<Customer> = Api::all(client.clone());
    let _ = api.delete(name, &DeleteParams::default()).await;
    support::wait_within(Duration::from_secs(60), &format!("{name} gone"), || {
        let api = api.clone();
        async move { api.get_opt(name).await.ok()?.is_none().then_some(()) }
    })
    .await;
}

async fn holder(leases: &Api<Lease>, name: &str) -> Option<String> {
    leases
        .get_opt(name)
        .await
        .ok()??
        .spec?
        .holder_identity
        .filter(|h| !h.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_metrics_and_json_logs() {
    let _serial = SERIAL.lock().await;
    let client = support::client().await;
    let (proxy, open) = gated_proxy(apiserver());
    let kubeconfig = kubeconfig_with_server(proxy);
    let mut operator = Operator::start(&support::unique("metrics"), &kubeconfig, &[]);

    // Alive at once; not ready while the apiserver is out of reach.
    let (status, body) = operator.get("/healthz").await.unwrap();
    assert_eq!((status, body.trim()), (200, "ok"));
    for _ in 0..10 {
        let (status, _) = operator.get("/readyz").await.unwrap();
        assert_eq!(status, 503, "ready before any cache could fill");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    open.store(true, Ordering::SeqCst);
    let opened = Instant::now();
    support::wait_for("/readyz 200 once the caches fill", || {
        let answer = probe(&operator);
        async move { (answer?.0 == 200).then_some(()) }
    })
    .await;
    println!(
        "ready {:?} after the apiserver became reachable",
        opened.elapsed()
    );

    // A Customer becomes Ready: reconciles, creates and gauges show it.
    let name = support::unique("metrics");
    create_customer(&client, &name).await;
    ready(&client, &name).await;
    let created = |kind| [("kind", kind), ("cause", "create")];
    let at_least: [(&str, Labels, f64); 7] = [
        (
            "customer_operator_reconciles_total",
            &[("kind", "Customer")],
            1.0,
        ),
        (
            "customer_operator_reconcile_duration_seconds_count",
            &[("kind", "Customer")],
            1.0,
        ),
        (
            "customer_operator_reconcile_duration_seconds_bucket",
            &[("kind", "Customer"), ("le", "+Inf")],
            1.0,
        ),
        (
            "customer_operator_customers",
            &[("condition", "Ready"), ("status", "True")],
            1.0,
        ),
        (
            "customer_operator_applies_total",
            &created("Namespace"),
            2.0,
        ),
        (
            "customer_operator_managed_objects",
            &[("kind", "Namespace")],
            2.0,
        ),
        (
            "customer_operator_managed_objects",
            &[("kind", "NetworkPolicy")],
            2.0,
        ),
    ];
    for (name, labels, least) in at_least {
        let value = operator.metric(name, labels).await;
        assert!(
            value >= least,
            "{name}{labels:?} is {value}, expected {least} or more"
        );
    }
    assert_eq!(operator.metric("customer_operator_leader", &[]).await, 1.0);

    // Someone edits a RoleBinding: put back, counted as a drift repair. A deleted
    // NetworkPolicy comes back as a create.
    let drift = [("kind", "RoleBinding"), ("cause", "drift")];
    let repairs = operator
        .metric("customer_operator_applies_total", &drift)
        .await;
    let namespace = format!("{name}-a");
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), &namespace);
    bindings
        .patch(
            "customer-admins",
            &PatchParams::default(),
            &Patch::Merge(&json!({"subjects": [{"kind": "User", "name": "mallory",
                "apiGroup": "rbac.authorization.k8s.io"}]})),
        )
        .await
        .unwrap();
    support::wait_for("the drift repair to be counted", || {
        let answer = probe(&operator);
        async move {
            let count = series(&answer?.1, "customer_operator_applies_total", &drift)?;
            (count > repairs).then_some(())
        }
    })
    .await;
    let policy_creates = operator
        .metric("customer_operator_applies_total", &created("NetworkPolicy"))
        .await;
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &namespace);
    policies
        .delete("customer-default-deny", &DeleteParams::default())
        .await
        .unwrap();
    support::wait_for("the deleted NetworkPolicy to be created again", || {
        let answer = probe(&operator);
        let created = created("NetworkPolicy");
        async move {
            let count = series(&answer?.1, "customer_operator_applies_total", &created)?;
            (count > policy_creates).then_some(())
        }
    })
    .await;
    let admins = bindings.get("customer-admins").await.unwrap();
    assert_eq!(admins.subjects.unwrap()[0].name, "alice");
    let labelled = policies
        .list(&ListParams::default().labels(&format!("{LABEL_CUSTOMER}={name}")))
        .await
        .unwrap();
    assert!(
        labelled
            .items
            .iter()
            .any(|p| p.name_any() == "customer-default-deny")
    );

    delete_customer(&client, &name).await;

    // Every log line is one JSON object with a timestamp, a level and a message.
    let lines: Vec<String> = operator
        .lines()
        .into_iter()
        .filter(|l| !l.starts_with("stderr: "))
        .collect();
    assert!(lines.len() >= 2, "too few log lines: {lines:?}");
    for line in &lines {
        let entry: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(
            entry["timestamp"].is_string() && entry["level"].is_string(),
            "{line}"
        );
        assert!(entry["message"].is_string(), "{line}");
    }

    // SIGTERM: stops cleanly and says so.
    operator.signal("-TERM");
    assert_eq!(operator.exited(Duration::from_secs(30)).await, 0);
    assert!(
        operator
            .lines()
            .iter()
            .any(|l| l.contains("shutting down") && l.contains("SIGTERM"))
    );
    let _ = std::fs::remove_file(kubeconfig);
}

/// The status of `/readyz` and the text of `/metrics`, or `None` while the operator
/// does not serve yet.
fn probe(operator: &Operator) -> Option<(u16, String)> {
    let address = operator.lines().iter().find_map(|line| {
        let entry: Value = serde_json::from_str(line).ok()?;
        entry["address"].as_str()?.parse().ok()
    })?;
    http_get(address, "/metrics").and_then(|(status, text)| {
        if status == 200 {
            http_get(address, "/readyz").map(|(ready, _)| (ready, text))
        } else {
            None
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_hands_over_when_killed_and_when_stopped() {
    let _serial = SERIAL.lock().await;
    let client = support::client().await;
    let kubeconfig = support::kubeconfig();
    let lease_name = support::unique("lease");
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    let election = [
        "--leader-election",
        "--lease-namespace",
        "default",
        "--lease-name",
        &lease_name,
        "--lease-duration-seconds",
        "4",
        "--lease-renew-seconds",
        "1",
    ];
    let suffix = lease_name.trim_start_matches("lease-");
    let names = [format!("first-{suffix}"), format!("second-{suffix}")];
    let mut replicas = vec![
        Operator::start(&names[0], &kubeconfig, &election),
        Operator::start(&names[1], &kubeconfig, &election),
    ];
    // Both race for a fresh Lease; exactly one wins.
    let leader_name = support::wait_for("a lease holder", || {
        let leases = leases.clone();
        let lease_name = lease_name.clone();
        async move { holder(&leases, &lease_name).await }
    })
    .await;
    let leader_index = names.iter().position(|n| *n == leader_name).unwrap();
    let mut leader = replicas.remove(leader_index);
    let standby = replicas.remove(0);
    support::wait_for("the leader to be ready", || {
        let answer = probe(&leader);
        async move { (answer?.0 == 200).then_some(()) }
    })
    .await;
    let (status, body) = standby.get("/readyz").await.unwrap();
    assert_eq!((status, body.trim()), (200, "standby"));
    assert_eq!(standby.metric("customer_operator_leader", &[]).await, 0.0);
    assert_eq!(leader.metric("customer_operator_leader", &[]).await, 1.0);

    // Only the leader reconciles: the standby's count stays 0 through several resyncs.
    let before = support::unique("before");
    create_customer(&client, &before).await;
    ready(&client, &before).await;
    let customer = [("kind", "Customer")];
    for _ in 0..8 {
        assert_eq!(
            standby
                .metric("customer_operator_reconciles_total", &customer)
                .await,
            0.0,
            "the standby reconciled while the leader lived"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let led = leader
        .metric("customer_operator_reconciles_total", &customer)
        .await;
    assert!(led > 0.0);

    // SIGKILL the leader: the standby takes over once the Lease expires.
    let _ = leader.child.kill();
    let killed = Instant::now();
    let took_over =
        support::wait_within(Duration::from_secs(15), "the standby to take over", || {
            let (leases, lease_name, name) =
                (leases.clone(), lease_name.clone(), standby.name.clone());
            async move { (holder(&leases, &lease_name).await? == name).then(|| killed.elapsed()) }
        })
        .await;
    println!("takeover {took_over:?} after SIGKILL of the leader (lease 4 s, renew 1 s)");
    assert!(
        took_over < Duration::from_secs(4 + 2 + 2),
        "takeover took {took_over:?}"
    );
    let after = support::unique("after");
    create_customer(&client, &after).await;
    ready(&client, &after).await;
    assert_eq!(standby.metric("customer_operator_leader", &[]).await, 1.0);
    assert!(
        standby
            .metric("customer_operator_reconciles_total", &customer)
            .await
            > 0.0
    );
    let new_leader = standby;

    // SIGTERM: the leader finishes, hands the Lease back, and a third replica takes
    // over at its next look instead of waiting for the Lease to expire.
    let third_name = format!("third-{suffix}");
    let third = Operator::start(&third_name, &kubeconfig, &election);
    support::wait_for("the third replica to stand by", || {
        let answer = probe(&third);
        async move { (answer?.0 == 200).then_some(()) }
    })
    .await;
    let mut stopping = new_leader;
    stopping.signal("-TERM");
    let signalled = Instant::now();
    assert_eq!(stopping.exited(Duration::from_secs(30)).await, 0);
    assert!(
        stopping
            .lines()
            .iter()
            .any(|l| l.contains("released the lease"))
    );
    let handed = support::wait_within(Duration::from_secs(15), "the third replica to lead", || {
        let (leases, lease_name, name) = (leases.clone(), lease_name.clone(), third_name.clone());
        async move { (holder(&leases, &lease_name).await? == name).then(|| signalled.elapsed()) }
    })
    .await;
    println!("handover {handed:?} after SIGTERM of the leader");
    assert!(handed < Duration::from_secs(4), "handover took {handed:?}");

    delete_customer(&client, &before).await;
    delete_customer(&client, &after).await;

    // A leader whose Lease is taken from it stops at once and exits with an error.
    let mut third = third;
    let mut lease = leases.get(&lease_name).await.unwrap();
    let spec = lease.spec.as_mut().unwrap();
    spec.holder_identity = Some("someone-else".into());
    spec.renew_time = Some(MicroTime(Timestamp::now()));
    spec.lease_duration_seconds = Some(60);
    leases
        .replace(&lease_name, &PostParams::default(), &lease)
        .await
        .unwrap();
    let code = third.exited(Duration::from_secs(10)).await;
    assert_eq!(code, 1);
    assert!(
        third
            .lines()
            .iter()
            .any(|l| l.contains("lost the leader lease"))
    );
    drop(leader);
    let _ = leases.delete(&lease_name, &DeleteParams::default()).await;
}

/// Issue 23, item 18: two operators on one machine meet on the metrics port; the second
/// says which flag to change instead of only "Address already in use".
#[test]
fn a_taken_metrics_port_names_the_flag_to_change() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_customer-operator"))
        .args(["run", "--kubeconfig"])
        .arg(support::kubeconfig())
        .args(["--metrics-addr", &address])
        .stdin(Stdio::null())
        .output()
        .expect("the operator binary runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("listening on {address}"))
            && err.contains("Address already in use")
            && err.contains("another address with --metrics-addr"),
        "{err}"
    );
}

/// Issue 23, item 18: `KUBECONFIG=` (set, empty) is said to be that, for `run` and for
/// `verify`, rather than a complaint about a flag nobody passed.
#[test]
fn an_empty_kubeconfig_is_named() {
    for args in [&["run", "--metrics-addr", "off"][..], &["verify"]] {
        let command = args[0];
        let out = Command::new(env!("CARGO_BIN_EXE_customer-operator"))
            .args(args)
            .env("KUBECONFIG", "")
            .stdin(Stdio::null())
            .output()
            .expect("the binary runs");
        assert!(!out.status.success(), "{command}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            err.trim(),
            "error: KUBECONFIG is set but empty: unset it (the in-cluster config, else ~/.kube/config, is used then), set it to a kubeconfig file, or pass --kubeconfig",
            "{command}"
        );
    }
}
