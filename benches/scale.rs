//! Scale benchmark against a real control plane (the one `KUBECONFIG` names; `bench/run.sh`
//! starts a fresh one). Prints one table and, with `--output`, writes it into
//! BENCHMARKS.md between markers.
//!
//! The operator runs as a child process (this same binary with `--operator-child`), so
//! its memory is its own; the child reports its write requests and reconciles on stdout.
//!
//! Phases, in order: the apiserver's own limit (bulk server-side apply of `render`'s
//! objects for N customers, before the operator starts), convergence of N Customers
//! created at once, idle resyncs, drift repair, single-customer latency, restart, and
//! deletion next to the namespace controller's own time.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use customer_operator::api::{Customer, LABEL_MANAGED_BY};
use customer_operator::controller::counting::{ReconcileCounter, WriteCounter};
use customer_operator::controller::status::{condition, types};
use customer_operator::controller::{self, Options};
use customer_operator::desired::{self, MapDirectory};
use customer_operator::settings::Settings;
use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, watcher};
use kube::{Api, Client, Config, Resource, ResourceExt};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

/// Label on every Customer the benchmark creates.
const BENCH_LABEL: &str = "customers.dev/bench";
/// `managed-by` of the baseline's objects, so the operator's caches never hold them.
const BASELINE_MANAGER: &str = "customer-operator-bench-baseline";

#[derive(Parser, Debug, Clone)]
#[command(about = "customer-operator scale benchmark")]
struct Args {
    /// Customers created at once.
    #[arg(long, default_value_t = 1000)]
    customers: usize,
    /// Customers created one at a time for the latency figures.
    #[arg(long, default_value_t = 50)]
    latency_samples: usize,
    /// NetworkPolicies deleted one at a time for the drift-repair figure.
    #[arg(long, default_value_t = 20)]
    drift_samples: usize,
    /// Customers deleted at once (and as many namespaces deleted directly).
    #[arg(long, default_value_t = 100)]
    deletions: usize,
    /// The operator's concurrent reconciles, and the baseline's concurrent requests.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// The operator's resync period in the benchmark.
    #[arg(long, default_value_t = 20)]
    resync_seconds: u64,
    /// Full resyncs counted for the idle figure.
    #[arg(long, default_value_t = 3)]
    idle_resyncs: u32,
    /// Markdown file to write the table into (between scale markers).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Run as the operator child process.
    #[arg(long, hide = true)]
    operator_child: bool,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() {
    let args = Args::parse();
    if !args.bench && !args.operator_child {
        // `cargo test --all-targets` runs bench targets without `--bench`: only a
        // smoke check then, never the benchmark against whatever cluster is at hand.
        println!("scale benchmark: run it with bench/run.sh (or cargo bench --bench scale)");
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    if args.operator_child {
        runtime.block_on(operator_child(args));
    } else {
        runtime.block_on(benchmark(args));
    }
}

// ------------------------------------------------------------------ the operator child

/// Runs the controller with counting layers and prints `stats <writes> <reconciles>
/// <distinct customers reconciled>` and `kinds <writes by method and resource>` every
/// 50 ms.
async fn operator_child(args: Args) {
    // Logs go to stderr (a file): stdout carries the figures.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let writes = WriteCounter::default();
    let reconciles = ReconcileCounter::default();
    let config = Config::infer().await.expect("kubeconfig");
    let client = kube::client::ClientBuilder::try_from(config)
        .expect("client builder")
        .with_layer(&writes)
        .build();
    let options = Options {
        settings: Settings::default(),
        concurrency: args.concurrency as u16,
        resync: Duration::from_secs(args.resync_seconds),
        reconciles: reconciles.clone(),
    };
    let report = async move {
        let mut seen: HashMap<String, u64> = HashMap::new();
        let mut stdout = std::io::stdout();
        loop {
            for (name, count) in reconciles.take() {
                *seen.entry(name).or_insert(0) += count;
            }
            let total: u64 = seen.values().sum();
            let kinds: Vec<String> = writes
                .by_kind()
                .into_iter()
                .map(|(kind, count)| format!("{count} {kind}"))
                .collect();
            let line = format!(
                "stats {} {} {}\nkinds {}\n",
                writes.writes(),
                total,
                seen.len(),
                kinds.join(", ")
            );
            if stdout.write_all(line.as_bytes()).is_err() || stdout.flush().is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::select! {
        result = controller::run(client, options) => result.expect("operator runs"),
        () = report => {}
    }
}

/// The parent's view of a running operator child.
struct Operator {
    child: tokio::process::Child,
    writes: Arc<AtomicU64>,
    reconciles: Arc<AtomicU64>,
    distinct: Arc<AtomicU64>,
    first_reconcile: Arc<Mutex<Option<Instant>>>,
    alive: Arc<AtomicBool>,
    /// The last `kinds` line: writes by method and resource.
    kinds: Arc<Mutex<String>>,
}

impl Operator {
    fn start(args: &Args) -> Operator {
        let exe = std::env::current_exe().expect("own path");
        static STARTS: AtomicU64 = AtomicU64::new(0);
        let start = STARTS.fetch_add(1, Ordering::Relaxed) + 1;
        let log =
            std::fs::File::create(std::env::temp_dir().join(format!("bench-operator-{start}.log")))
                .expect("operator log");
        let mut child = tokio::process::Command::new(exe)
            .args([
                "--operator-child",
                "--concurrency",
                &args.concurrency.to_string(),
                "--resync-seconds",
                &args.resync_seconds.to_string(),
            ])
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or("warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("operator child starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let operator = Operator {
            child,
            writes: Arc::default(),
            reconciles: Arc::default(),
            distinct: Arc::default(),
            first_reconcile: Arc::default(),
            alive: Arc::default(),
            kinds: Arc::default(),
        };
        let kinds = operator.kinds.clone();
        let (writes, reconciles, distinct, first, alive) = (
            operator.writes.clone(),
            operator.reconciles.clone(),
            operator.distinct.clone(),
            operator.first_reconcile.clone(),
            operator.alive.clone(),
        );
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(by_kind) = line.strip_prefix("kinds ") {
                    *kinds.lock().unwrap() = by_kind.to_string();
                    continue;
                }
                let fields: Vec<u64> = line
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|f| f.parse().ok())
                    .collect();
                if let [w, r, d] = fields[..] {
                    alive.store(true, Ordering::Relaxed);
                    writes.store(w, Ordering::Relaxed);
                    reconciles.store(r, Ordering::Relaxed);
                    distinct.store(d, Ordering::Relaxed);
                    if r > 0 {
                        first.lock().unwrap().get_or_insert_with(Instant::now);
                    }
                }
            }
        });
        operator
    }

    fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Writes so far by method and resource.
    fn write_kinds(&self) -> String {
        self.kinds.lock().unwrap().clone()
    }

    /// Writes so far by method and resource, as counts.
    fn write_counts(&self) -> BTreeMap<String, u64> {
        self.write_kinds()
            .split(", ")
            .filter_map(|entry| {
                let (count, kind) = entry.split_once(' ')?;
                Some((kind.to_string(), count.parse().ok()?))
            })
            .collect()
    }

    fn reconciles(&self) -> u64 {
        self.reconciles.load(Ordering::Relaxed)
    }

    /// Peak and current resident memory of the child, in MiB.
    fn memory(&self) -> (f64, f64) {
        let pid = self.child.id().expect("child runs");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
                .map_or(0.0, |kb| kb / 1024.0)
        };
        (field("VmHWM:"), field("VmRSS:"))
    }

    /// The child's resident memory by kind (anonymous: heap and stacks; file: the
    /// binary's pages), from /proc.
    fn memory_parts(&self) -> String {
        let pid = self.child.id().expect("child runs");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .filter(|l| l.starts_with("RssAnon:") || l.starts_with("RssFile:"))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// CPU seconds the child has used (user + system).
    fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.child.id().expect("child runs"))
    }

    async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

/// CPU seconds a process has used (user + system), from /proc (clock ticks of 10 ms).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime is the 12th,
    // stime the 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<f64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    (fields.get(11).unwrap_or(&0.0) + fields.get(12).unwrap_or(&0.0)) / 100.0
}

/// CPU seconds the processes of the control plane under test have used so far (those
/// whose command line names one of its ports), by program: etcd, kube-apiserver,
/// kube-controller-manager.
fn control_plane_cpu() -> BTreeMap<String, f64> {
    let ports: Vec<String> = [
        "CUSTOMER_OPERATOR_ETCD_PORT",
        "CUSTOMER_OPERATOR_APISERVER_PORT",
        "CUSTOMER_OPERATOR_KCM_PORT",
    ]
    .iter()
    .filter_map(|v| std::env::var(v).ok())
    .collect();
    let mut by_program = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return by_program;
    };
    for pid in entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
    {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        let names_port = |port: &String| {
            [':', '=']
                .iter()
                .any(|sep| cmdline.contains(&format!("{sep}{port}")))
        };
        if !ports.iter().any(names_port) {
            continue;
        }
        let program = cmdline
            .split('\0')
            .next()
            .and_then(|path| path.rsplit('/').next())
            .unwrap_or_default()
            .to_string();
        *by_program.entry(program).or_insert(0.0) += cpu_seconds(pid);
    }
    by_program
}

/// The apiserver's count of requests by verb, resource and subresource (its
/// `apiserver_request_total`), to show where its work went.
async fn apiserver_requests(client: &Client) -> BTreeMap<String, f64> {
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .expect("request");
    let text = client.request_text(request).await.unwrap_or_default();
    let mut counts = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
    {
        let Some((labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(&format!("{name}=\""))
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_default()
                .to_string()
        };
        let key = format!(
            "{} {}{}",
            label("verb"),
            label("resource"),
            match label("subresource").as_str() {
                "" => String::new(),
                sub => format!("/{sub}"),
            }
        );
        *counts.entry(key).or_insert(0.0) += value.parse::<f64>().unwrap_or(0.0);
    }
    counts
}

/// How much each counter grew between two readings, for those that grew.
fn grown<V>(before: &BTreeMap<String, V>, after: &BTreeMap<String, V>) -> Vec<(String, V)>
where
    V: Copy + Default + PartialOrd + std::ops::Sub<Output = V>,
{
    after
        .iter()
        .map(|(key, v)| {
            (
                key.clone(),
                *v - before.get(key).copied().unwrap_or_default(),
            )
        })
        .filter(|(_, n)| *n > V::default())
        .collect()
}

/// The requests the apiserver served between two readings, most first.
fn requests_between(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> String {
    let mut served = grown(before, after);
    served.sort_by(|a, b| b.1.total_cmp(&a.1));
    let parts: Vec<String> = served.iter().map(|(k, n)| format!("{n:.0} {k}")).collect();
    parts.join(", ")
}

/// The CPU seconds each program of the control plane used between two readings, and in
/// all: `total (etcd a, kube-apiserver b, ...)`.
fn cpu_between(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> String {
    let used = grown(before, after);
    let total: f64 = used.iter().map(|(_, t)| t).sum();
    let parts: Vec<String> = used.iter().map(|(p, t)| format!("{p} {t:.1}")).collect();
    format!("{total:.1} s ({})", parts.join(", "))
}

// ------------------------------------------------------------------ the benchmark

/// One row of the table.
struct Row {
    measure: String,
    figure: String,
    note: String,
}

async fn benchmark(args: Args) {
    let client = Client::try_default()
        .await
        .expect("KUBECONFIG names a cluster");
    customer_operator::operate::install_crds(&client)
        .await
        .expect("CRDs installed");
    let kubernetes = client
        .apiserver_version()
        .await
        .map(|v| v.git_version)
        .expect("the apiserver tells its version");
    let watched = Watched::start(&client).await;
    let started = Instant::now();
    let mut rows = Vec::new();
    let n = args.customers;
    let c = args.concurrency;

    // 1. The apiserver's limit: render's objects for N customers, applied in bulk.
    let baseline = baseline_objects("base", n);
    let object_count = baseline.0.len() + baseline.1.len();
    quiet().await;
    let plane_before = control_plane_cpu();
    let served_before = apiserver_requests(&client).await;
    let limit = bulk_apply(&client, &baseline, c).await;
    let plane_bulk = cpu_between(&plane_before, &control_plane_cpu());
    eprintln!(
        "bulk apply, apiserver requests: {}",
        requests_between(&served_before, &apiserver_requests(&client).await)
    );
    eprintln!(
        "baseline: {object_count} objects in {:.1} s",
        limit.as_secs_f64()
    );

    // 2. Convergence of N Customers created at once.
    let operator = Operator::start(&args);
    wait_until(
        "operator child reports",
        Duration::from_secs(60),
        || async { operator.alive.load(Ordering::Relaxed).then_some(()) },
    )
    .await;
    // Its caches fill from an empty list in well under a second; the
    // kube-controller-manager still works off the bulk apply's namespaces.
    tokio::time::sleep(Duration::from_secs(1)).await;
    quiet().await;
    let names: Vec<String> = (0..n).map(|i| format!("scale-{i}")).collect();
    let plane_before = control_plane_cpu();
    let served_before = apiserver_requests(&client).await;
    let all: BTreeSet<String> = names.iter().cloned().collect();
    let timeline = watched.timeline(all.clone());
    let t0 = Instant::now();
    create_customers(&client, &names, c).await;
    eprintln!(
        "timeline: all created after {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    watched.ready(&all, Duration::from_secs(600)).await;
    let converge = t0.elapsed();
    timeline.abort();
    let plane_converge = cpu_between(&plane_before, &control_plane_cpu());
    eprintln!(
        "convergence, apiserver requests: {}",
        requests_between(&served_before, &apiserver_requests(&client).await)
    );
    let writes_converge = operator.writes();
    eprintln!("convergence writes: {}", operator.write_kinds());
    let cpu_converge = operator.cpu_seconds();
    let reconciles_converge = operator.reconciles();
    let (peak_converge, _) = operator.memory();
    eprintln!("convergence: {n} in {:.1} s", converge.as_secs_f64());
    rows.push(Row {
        measure: format!("Convergence, {n} Customers created at once"),
        figure: format!("{:.1} s", converge.as_secs_f64()),
        note: format!(
            "{writes_converge} operator writes (about {:.1} per customer) in {reconciles_converge} reconciles, operator CPU {cpu_converge:.1} s, control plane CPU {plane_converge}",
            writes_converge as f64 / n as f64
        ),
    });
    rows.push(Row {
        measure: format!(
            "Bulk server-side apply of render's {object_count} objects (apiserver limit)"
        ),
        figure: format!("{:.1} s", limit.as_secs_f64()),
        note: format!("{c} concurrent requests, control plane CPU {plane_bulk}"),
    });
    rows.push(Row {
        measure: "Convergence / bulk apply".into(),
        figure: format!("{:.2}x", converge.as_secs_f64() / limit.as_secs_f64()),
        note: "goal: at most 1.5x".into(),
    });
    // The floor row goes here; it is measured last, with no operator running.
    let floor_row = rows.len();

    // 3. Idle: several full resyncs of every customer.
    settle(&operator).await;
    let (w0, r0) = (operator.writes(), operator.reconciles());
    let kinds_before = operator.write_counts();
    let idle_for = Duration::from_secs(args.resync_seconds * u64::from(args.idle_resyncs) + 2);
    tokio::time::sleep(idle_for).await;
    let idle_writes = operator.writes() - w0;
    let idle_kinds: Vec<String> = grown(&kinds_before, &operator.write_counts())
        .into_iter()
        .map(|(kind, new)| format!("{new} {kind}"))
        .collect();
    let idle_cpu = operator.cpu_seconds() - cpu_converge;
    let idle_reconciles = operator.reconciles() - r0;
    let (peak, steady) = operator.memory();
    eprintln!("memory after the idle resyncs: {}", operator.memory_parts());
    rows.push(Row {
        measure: format!("Idle writes over {} resyncs", args.idle_resyncs),
        figure: idle_writes.to_string(),
        note: format!(
            "{idle_reconciles} reconciles in {} s, operator CPU {idle_cpu:.1} s; goal 0{}",
            idle_for.as_secs(),
            if idle_kinds.is_empty() {
                String::new()
            } else {
                format!(" (writes: {})", idle_kinds.join(", "))
            }
        ),
    });
    rows.push(Row {
        measure: format!("Operator memory with {n} customers, peak / steady"),
        figure: format!("{peak:.1} / {steady:.1} MiB"),
        note: format!(
            "peak {peak_converge:.1} MiB right after convergence; goal: peak at most 64 MiB"
        ),
    });

    // 4. Drift repair: a deleted NetworkPolicy comes back.
    let mut repairs = Vec::new();
    for name in names.iter().take(args.drift_samples) {
        repairs.push(drift_repair(&client, name).await);
    }
    rows.push(Row {
        measure: "Drift repair (deleted NetworkPolicy back), median".into(),
        figure: format!("{:.0} ms", median(&repairs) * 1000.0),
        note: format!(
            "{} samples, p95 {:.0} ms; goal under 1 s",
            repairs.len(),
            percentile(&repairs, 0.95) * 1000.0
        ),
    });

    // 5. Single-customer latency.
    let mut latencies = Vec::new();
    let mut extra = Vec::new();
    for i in 0..args.latency_samples {
        let name = format!("latency-{i}");
        let t = Instant::now();
        create_customers(&client, std::slice::from_ref(&name), 1).await;
        watched
            .ready(&BTreeSet::from([name.clone()]), Duration::from_secs(60))
            .await;
        latencies.push(t.elapsed().as_secs_f64());
        extra.push(name);
    }
    rows.push(Row {
        measure: "Single Customer, create to Ready, median".into(),
        figure: format!("{:.0} ms", median(&latencies) * 1000.0),
        note: format!(
            "{} created one at a time, p95 {:.0} ms",
            latencies.len(),
            percentile(&latencies, 0.95) * 1000.0
        ),
    });

    // 6. Restart: a fresh operator re-verifies everything without writing.
    settle(&operator).await;
    operator.kill().await;
    let total = n + extra.len();
    let t = Instant::now();
    let operator = Operator::start(&args);
    wait_until(
        "first reconcile after restart",
        Duration::from_secs(120),
        || async { operator.first_reconcile.lock().unwrap().map(|at| at - t) },
    )
    .await;
    let first = operator.first_reconcile.lock().unwrap().unwrap() - t;
    wait_until(
        "every customer re-verified",
        Duration::from_secs(300),
        || async { (operator.distinct.load(Ordering::Relaxed) >= total as u64).then_some(()) },
    )
    .await;
    let all_verified = t.elapsed();
    rows.push(Row {
        measure: format!("Restart: first reconcile / all {total} re-verified"),
        figure: format!(
            "{:.2} s / {:.1} s",
            first.as_secs_f64(),
            all_verified.as_secs_f64()
        ),
        note: format!("{} writes; goal 0", operator.writes()),
    });

    // 7. Deletion next to the namespace controller's own time.
    let doomed: Vec<String> = names.iter().rev().take(args.deletions).cloned().collect();
    let by_operator = delete_until_namespaces_gone::<Customer>(&client, &watched, &doomed, c).await;
    let direct: Vec<String> = (0..args.deletions.min(n))
        .map(|i| format!("base-{i}"))
        .collect();
    let by_namespace_controller =
        delete_until_namespaces_gone::<Namespace>(&client, &watched, &direct, c).await;
    rows.push(Row {
        measure: format!(
            "Delete {} Customers until their namespaces are gone",
            doomed.len()
        ),
        figure: format!("{:.1} s", by_operator.as_secs_f64()),
        note: format!(
            "the same number of namespaces deleted directly: {:.1} s ({:.2}x)",
            by_namespace_controller.as_secs_f64(),
            by_operator.as_secs_f64() / by_namespace_controller.as_secs_f64()
        ),
    });
    operator.kill().await;

    // 8. The floor: the writes the design requires, with no operator at all.
    let template = watched
        .customers
        .get(&ObjectRef::new(&names[0]))
        .and_then(|c| serde_json::to_value(&c.status).ok())
        .expect("a converged Customer's status");
    // A bulk apply again first, so that both run on the same, now larger, cluster.
    let again = baseline_objects("again", n);
    quiet().await;
    let limit_again = bulk_apply(&client, &again, c).await;
    eprintln!("bulk apply again: {:.1} s", limit_again.as_secs_f64());
    quiet().await;
    let plane_before = control_plane_cpu();
    let floor = required_writes(&client, n, &template, c).await;
    let plane_floor = cpu_between(&plane_before, &control_plane_cpu());
    eprintln!(
        "required writes: {n} customers in {:.1} s",
        floor.as_secs_f64()
    );
    rows.insert(
        floor_row,
        Row {
            measure: "Required writes alone, no operator / bulk apply".into(),
            figure: format!("{:.2}x", floor.as_secs_f64() / limit_again.as_secs_f64()),
            note: format!(
                "measured last, back to back on the same cluster: a bulk apply of render's objects for {n} more customers took {:.1} s; then {n} Customer creates, {n} finalizer patches, the {object_count} applies (owned by the Customers) and {n} status patches, sent by the benchmark {c} at a time, took {:.1} s (control plane CPU {plane_floor}). No operator that keeps the finalizer and the status sends less",
                limit_again.as_secs_f64(),
                floor.as_secs_f64()
            ),
        },
    );

    let table = table(&rows, &args, &kubernetes, started.elapsed());
    println!("{table}");
    if let Some(path) = &args.output {
        write_section(path, &table);
        eprintln!("wrote {}", path.display());
    }
}

fn bench_spec(i: usize) -> Value {
    json!({
        "displayName": format!("Bench customer {i}"),
        "contactEmail": "ops@bench.example",
        "access": {"admins": [{"kind": "User", "name": format!("admin-{i}@bench.example")}]},
        "quota": {"hard": {"pods": "20", "requests.cpu": "4", "limits.memory": "8Gi"}},
        "limits": [{"type": "Container",
                    "default": {"cpu": "500m", "memory": "256Mi"},
                    "defaultRequest": {"cpu": "100m", "memory": "64Mi"}}]
    })
}

fn customer(name: &str, i: usize) -> Customer {
    serde_json::from_value(json!({
        "apiVersion": "customers.dev/v1alpha1", "kind": "Customer",
        "metadata": {"name": name, "labels": {BENCH_LABEL: "scale"}},
        "spec": bench_spec(i)
    }))
    .expect("bench customer")
}

/// What `render` makes for N customers named `<prefix>-<i>`: namespaces, and everything
/// inside them, as JSON. No owner recorded (no Customer exists to own them) and another
/// `managed-by`, so the operator's caches never hold them.
fn baseline_objects(prefix: &str, n: usize) -> (Vec<Value>, Vec<Value>) {
    let customers: Vec<Customer> = (0..n)
        .map(|i| customer(&format!("{prefix}-{i}"), i))
        .collect();
    let (mut namespaces, mut inside) = rendered(&customers);
    for value in namespaces.iter_mut().chain(inside.iter_mut()) {
        let meta = value["metadata"].as_object_mut().expect("metadata");
        meta.remove("annotations");
        meta["labels"][LABEL_MANAGED_BY] = BASELINE_MANAGER.into();
    }
    (namespaces, inside)
}

/// What `render` makes for these customers, as JSON: the namespaces, and everything
/// inside them.
fn rendered(customers: &[Customer]) -> (Vec<Value>, Vec<Value>) {
    let dir = MapDirectory::new(customers.to_vec(), []);
    let settings = Settings::default();
    let (mut namespaces, mut inside) = (Vec::new(), Vec::new());
    for c in customers {
        let wanted = desired::desired(c, &dir, &settings).expect("valid bench customer");
        for value in wanted.to_values().expect("serializable") {
            if value["kind"] == "Namespace" {
                namespaces.push(value);
            } else {
                inside.push(value);
            }
        }
    }
    (namespaces, inside)
}

/// Server-side applies the namespaces, then everything inside them, `concurrency`
/// requests at a time.
async fn bulk_apply(
    client: &Client,
    objects: &(Vec<Value>, Vec<Value>),
    concurrency: usize,
) -> Duration {
    let t = Instant::now();
    for batch in [&objects.0, &objects.1] {
        stream::iter(batch.iter())
            .for_each_concurrent(concurrency, |value| {
                let client = client.clone();
                async move {
                    let object: DynamicObject =
                        serde_json::from_value(value.clone()).expect("dynamic object");
                    let types = object.types.clone().expect("apiVersion and kind");
                    let (group, version) = match types.api_version.split_once('/') {
                        Some((g, v)) => (g.to_string(), v.to_string()),
                        None => (String::new(), types.api_version.clone()),
                    };
                    let gvk = kube::api::GroupVersionKind::gvk(&group, &version, &types.kind);
                    let resource = ApiResource::from_gvk(&gvk);
                    let api: Api<DynamicObject> = match object.namespace() {
                        Some(ns) => Api::namespaced_with(client, &ns, &resource),
                        None => Api::all_with(client, &resource),
                    };
                    api.patch(
                        &object.name_any(),
                        &PatchParams::apply("bench-baseline").force(),
                        &Patch::Apply(&object),
                    )
                    .await
                    .expect("baseline apply");
                }
            })
            .await;
    }
    t.elapsed()
}

/// Creates the named Customers, `concurrency` at a time; returns them as created.
async fn create_customers(client: &Client, names: &[String], concurrency: usize) -> Vec<Customer> {
    let api: Api<Customer> = Api::all(client.clone());
    stream::iter(names.iter().enumerate())
        .map(|(i, name)| {
            let api = api.clone();
            async move {
                api.create(&Default::default(), &customer(name, i))
                    .await
                    .expect("customer created")
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await
}

/// The writes DESIGN.md asks for each new customer, sent by the benchmark itself with no
/// operator running: the Customer's create, its finalizer, render's objects (owned by
/// the Customer, as the operator's are) and a Ready status copied from `template`,
/// `concurrency` requests at a time, one kind after the other. No operator that keeps
/// the finalizer and the status can send less; what it adds beyond this (watches, reads,
/// its own CPU) is the rest of convergence. Building the objects is not timed.
async fn required_writes(
    client: &Client,
    n: usize,
    template: &Value,
    concurrency: usize,
) -> Duration {
    let names: Vec<String> = (0..n).map(|i| format!("floor-{i}")).collect();
    let t = Instant::now();
    let created = create_customers(client, &names, concurrency).await;
    let mut took = t.elapsed();

    let children = rendered(&created);
    let finalizer = json!({"metadata": {"finalizers": [customer_operator::api::FINALIZER]}});
    let finalizers: Vec<(&String, Value)> = names.iter().map(|n| (n, finalizer.clone())).collect();
    let statuses: Vec<(&String, Value)> = names
        .iter()
        .map(|name| {
            let mut status = template.clone();
            status["namespaces"] = json!([{"name": name, "phase": "Active"}]);
            (name, json!({ "status": status }))
        })
        .collect();

    let api: Api<Customer> = Api::all(client.clone());
    let t = Instant::now();
    merge_patch_each(&api, &finalizers, false, concurrency).await;
    bulk_apply(client, &children, concurrency).await;
    merge_patch_each(&api, &statuses, true, concurrency).await;
    took += t.elapsed();
    took
}

/// Merge-patches each named Customer (its status subresource if `status`),
/// `concurrency` requests at a time.
async fn merge_patch_each(
    api: &Api<Customer>,
    patches: &[(&String, Value)],
    status: bool,
    concurrency: usize,
) {
    stream::iter(patches)
        .for_each_concurrent(concurrency, |(name, patch)| async move {
            let (params, patch) = (PatchParams::default(), Patch::Merge(patch));
            if status {
                api.patch_status(name, &params, &patch).await
            } else {
                api.patch(name, &params, &patch).await
            }
            .expect("customer patched");
        })
        .await;
}

/// What the benchmark watches: its Customers and every namespace (metadata only), kept
/// by watches rather than polled, so that waiting for a result does not load the
/// apiserver it measures (a list of 1000 Customers every 20 ms would).
#[derive(Clone)]
struct Watched {
    customers: Store<Customer>,
    namespaces: Store<PartialObjectMeta<Namespace>>,
}

impl Watched {
    /// Starts both watches and waits until each has listed once.
    async fn start(client: &Client) -> Watched {
        let (customers, customer_writer) = reflector::store();
        let labelled = watcher::Config::default().labels(&format!("{BENCH_LABEL}=scale"));
        tokio::spawn(
            watcher(Api::<Customer>::all(client.clone()), labelled)
                .default_backoff()
                .reflect(customer_writer)
                .for_each(|_| async {}),
        );
        let (namespaces, namespace_writer) = reflector::store();
        tokio::spawn(
            watcher(
                Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
                watcher::Config::default(),
            )
            .default_backoff()
            .reflect(namespace_writer)
            .for_each(|_| async {}),
        );
        let watched = Watched {
            customers,
            namespaces,
        };
        watched
            .customers
            .wait_until_ready()
            .await
            .expect("Customer watch lists");
        watched
            .namespaces
            .wait_until_ready()
            .await
            .expect("namespace watch lists");
        watched
    }

    /// Whether the named Customer is Ready for its current generation.
    fn is_ready(&self, name: &str) -> bool {
        self.customers.get(&ObjectRef::new(name)).is_some_and(|c| {
            let status = c.status.as_ref();
            status.and_then(|s| s.observed_generation) == c.meta().generation
                && condition(status, types::READY).is_some_and(|r| r.status == "True")
        })
    }

    /// Waits until every named Customer is Ready for its current generation.
    async fn ready(&self, names: &BTreeSet<String>, limit: Duration) {
        wait_until("customers ready", limit, || async {
            names.iter().all(|name| self.is_ready(name)).then_some(())
        })
        .await;
    }

    /// Prints, every second until aborted, how many of the named Customers are Ready:
    /// where convergence spends its time (a slow start, a steady rate, a tail).
    fn timeline(&self, names: BTreeSet<String>) -> tokio::task::JoinHandle<()> {
        let watched = self.clone();
        let start = Instant::now();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                eprintln!(
                    "timeline: {:>4.0} s {:>5} ready",
                    start.elapsed().as_secs_f64(),
                    names.iter().filter(|name| watched.is_ready(name)).count()
                );
            }
        })
    }

    /// Waits until no namespace of the given names is left.
    async fn namespaces_gone(&self, names: &[String]) {
        wait_until("namespaces gone", Duration::from_secs(600), || async {
            (!names
                .iter()
                .any(|name| self.namespaces.get(&ObjectRef::new(name)).is_some()))
            .then_some(())
        })
        .await;
    }
}

/// Waits until the control plane has used under a fifth of a core for two seconds in a
/// row (a minute at most): a timed phase starts on a quiet control plane, not on the
/// kube-controller-manager's backlog (service accounts, tokens, CA config maps for each
/// new namespace) from the phase before.
async fn quiet() {
    let total = || control_plane_cpu().values().sum::<f64>();
    let start = Instant::now();
    let (mut last, mut calm) = (total(), 0);
    while calm < 2 && start.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = total();
        calm = if now - last < 0.2 { calm + 1 } else { 0 };
        last = now;
    }
    eprintln!("quiet after {:.0} s", start.elapsed().as_secs_f64());
}

/// Waits until the operator has neither written nor reconciled for 2 s.
async fn settle(operator: &Operator) {
    let mut last = (operator.writes(), operator.reconciles());
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = (operator.writes(), operator.reconciles());
        if now == last {
            return;
        }
        last = now;
    }
}

/// Deletes one managed NetworkPolicy and returns the seconds until it is back.
async fn drift_repair(client: &Client, customer: &str) -> f64 {
    let api: Api<NetworkPolicy> = Api::namespaced(client.clone(), customer);
    let name = "customer-allow-dns";
    let old = api.get(name).await.expect("policy exists").uid();
    let t = Instant::now();
    api.delete(name, &DeleteParams::default())
        .await
        .expect("policy deleted");
    wait_until("policy back", Duration::from_secs(30), || async {
        let now = api.get_opt(name).await.ok()??;
        (now.uid() != old).then_some(())
    })
    .await;
    t.elapsed().as_secs_f64()
}

/// Deletes the named objects, `concurrency` at a time, and returns the time until the
/// namespaces of the same names are gone.
async fn delete_until_namespaces_gone<K>(
    client: &Client,
    watched: &Watched,
    names: &[String],
    concurrency: usize,
) -> Duration
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::ClusterResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::all(client.clone());
    let t = Instant::now();
    stream::iter(names.iter())
        .for_each_concurrent(concurrency, |name| {
            let api = api.clone();
            async move {
                api.delete(name, &DeleteParams::default())
                    .await
                    .expect("deleted");
            }
        })
        .await;
    watched.namespaces_gone(names).await;
    t.elapsed()
}

/// Polls `check` every 20 ms until it returns `Some`; panics after `limit`.
async fn wait_until<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn sorted(samples: &[f64]) -> Vec<f64> {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    s
}

fn median(samples: &[f64]) -> f64 {
    percentile(samples, 0.5)
}

fn percentile(samples: &[f64], p: f64) -> f64 {
    let s = sorted(samples);
    if s.is_empty() {
        return f64::NAN;
    }
    let index = ((s.len() - 1) as f64 * p).round() as usize;
    s[index]
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cpus} cores ({model})")
}

fn table(rows: &[Row], args: &Args, kubernetes: &str, took: Duration) -> String {
    let date = std::process::Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let mut out = format!(
        "Run {date} on {}, against the local Kubernetes {kubernetes} control plane (etcd, kube-apiserver, kube-controller-manager on the same machine); N = {}, operator concurrency {}, resync {} s; the whole run took {:.1} min.\n\n| Measure | Figure | Note |\n|---|---|---|\n",
        machine(),
        args.customers,
        args.concurrency,
        args.resync_seconds,
        took.as_secs_f64() / 60.0
    );
    for row in rows {
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            row.measure, row.figure, row.note
        ));
    }
    out
}

/// Replaces the text between the scale markers of `path` (appending a section when the
/// markers are missing), leaving the rest of the file as it is.
fn write_section(path: &PathBuf, table: &str) {
    const BEGIN: &str = "<!-- scale:begin -->";
    const END: &str = "<!-- scale:end -->";
    let old = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let section = format!("{BEGIN}\n{table}{END}");
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if b < e => format!("{}{section}{}", &old[..b], &old[e + END.len()..]),
        _ => format!(
            "{}\n## Scale (`bench/run.sh`)\n\n{section}\n",
            old.trim_end()
        ),
    };
    std::fs::write(path, new).expect("BENCHMARKS.md written");
}
