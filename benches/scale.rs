//! Scale benchmark against a real control plane (the one `KUBECONFIG` names; `bench/run.sh`
//! starts a fresh one). Prints one table and, with `--output`, writes it into
//! BENCHMARKS.md between markers.
//!
//! The operator runs as a child process (this same binary with `--operator-child`), so
//! its memory is its own; the child reports its write requests and reconciles on stdout.
//!
//! Phases, in order, each figure a ratio or a median of this one run: a plain bulk
//! server-side apply of `render`'s objects for N customers (for continuity); the floor
//! (the writes the design requires, sent by the benchmark with no operator, customer by
//! customer, at the concurrency a search finds best); the operator started on the
//! floor's customers; convergence of N new Customers against that floor; idle resyncs;
//! drift repair; single-customer latency; restart; deletion next to the namespace
//! controller's own time.

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
use customer_operator::desired::network::DEFAULT_DENY;
use customer_operator::desired::{self, MapDirectory};
use customer_operator::settings::Settings;
use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::ClusterRole;
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
    /// Customers deleted at once (and as many namespaces deleted directly); a tenth of
    /// the customers when not given.
    #[arg(long)]
    deletions: Option<usize>,
    /// The operator's concurrent reconciles; by default the concurrency at which the
    /// floor's search found the apiserver's best throughput.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Measure only the floor (on the control plane `KUBECONFIG` names, which
    /// `bench/run.sh` starts apart for it) and write its figures to this file.
    #[arg(long)]
    floor_only: Option<PathBuf>,
    /// The floor's figures, written by a `--floor-only` run of the same `bench/run.sh`.
    #[arg(long)]
    floor: Option<PathBuf>,
    /// The operator's resync period in the benchmark: N/100 seconds, at least 20 (every
    /// customer checked again once per period; at 10,000 customers a shorter period
    /// would keep the operator busy with resyncs alone).
    #[arg(long)]
    resync_seconds: Option<u64>,
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
    } else if let Some(path) = args.floor_only.clone() {
        runtime.block_on(measure_floor(args, &path));
    } else {
        runtime.block_on(benchmark(args));
    }
}

/// The resync period in seconds: `--resync-seconds`, else N/100, at least 20.
fn resync_of(args: &Args) -> u64 {
    args.resync_seconds
        .unwrap_or((args.customers as u64 / 100).max(20))
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
        concurrency: args.concurrency.unwrap_or(16) as u16,
        resync: Duration::from_secs(resync_of(&args)),
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
        // A profiler to run the operator under (`CUSTOMER_OPERATOR_BENCH_WRAP`, say
        // `heaptrack -o /tmp/operator`): the CPU and memory figures are then the
        // wrapper's process, for a profile, not for the table.
        let wrap = std::env::var("CUSTOMER_OPERATOR_BENCH_WRAP").unwrap_or_default();
        let mut command: Vec<String> = wrap.split_whitespace().map(String::from).collect();
        command.push(exe.display().to_string());
        let mut child = tokio::process::Command::new(&command[0])
            .args(&command[1..])
            .args([
                "--operator-child",
                "--concurrency",
                &args.concurrency.unwrap_or(16).to_string(),
                "--resync-seconds",
                &resync_of(args).to_string(),
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

/// The CPU seconds the control plane used between two readings, in all.
fn cpu_total(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> f64 {
    grown(before, after).iter().map(|(_, t)| t).sum()
}

/// The CPU seconds each program of the control plane used between two readings, and in
/// all: `total (etcd a, kube-apiserver b, ...)`.
fn cpu_between(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> String {
    let used = grown(before, after);
    let total = cpu_total(before, after);
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
    install_customer_roles(&client).await;
    let kubernetes = client
        .apiserver_version()
        .await
        .map(|v| v.git_version)
        .expect("the apiserver tells its version");
    let watched = Watched::start(&client).await;
    let started = Instant::now();
    let mut rows = Vec::new();
    let n = args.customers;
    // The bulk apply sends 16 requests at a time, as in earlier runs.
    let bulk_c = 16;
    // Waits grow with N: at 10,000 customers every phase takes ten times as long.
    let long = Duration::from_secs(600.max(n as u64 / 5));

    // 1. A plain bulk apply of render's objects for N customers (continuity with earlier
    //    runs), on the empty cluster.
    let baseline = baseline_objects("base", n);
    let per_customer = per_customer_objects(&baseline, n);
    let object_count = baseline.0.len() + baseline.1.len();
    quiet().await;
    let plane_before = control_plane_cpu();
    let served_before = apiserver_requests(&client).await;
    let limit = bulk_apply(&client, &baseline, bulk_c).await;
    let plane_bulk = cpu_between(&plane_before, &control_plane_cpu());
    eprintln!(
        "bulk apply, apiserver requests: {}",
        requests_between(&served_before, &apiserver_requests(&client).await)
    );
    eprintln!(
        "baseline: {object_count} objects in {:.1} s",
        limit.as_secs_f64()
    );

    // 2. The floor, measured before this run on a control plane of its own.
    let floor: Floor = {
        let path = args
            .floor
            .as_ref()
            .expect("--floor: the floor's figures (bench/run.sh)");
        let text = std::fs::read_to_string(path).expect("the floor's figures");
        serde_json::from_str(&text).expect("the floor's figures")
    };
    let best = floor.concurrency;
    let args = Args {
        concurrency: Some(args.concurrency.unwrap_or(best)),
        ..args
    };
    let c = args.concurrency.unwrap_or(best);

    // 3. The operator starts; its caches fill (the floor's and the bulk apply's
    //    namespaces among them).
    let operator = Operator::start(&args);
    wait_until(
        "operator child reports",
        Duration::from_secs(60),
        || async { operator.alive.load(Ordering::Relaxed).then_some(()) },
    )
    .await;
    settle(&operator).await;
    let (_, rss_before) = operator.memory();

    // 4. Convergence of N Customers created at once.
    quiet().await;
    let names: Vec<String> = (0..n).map(|i| format!("scale-{i}")).collect();
    let plane_before = control_plane_cpu();
    let served_before = apiserver_requests(&client).await;
    let (w0, r0, cpu0) = (
        operator.writes(),
        operator.reconciles(),
        operator.cpu_seconds(),
    );
    let kinds_before = operator.write_counts();
    let all: BTreeSet<String> = names.iter().cloned().collect();
    let timeline = watched.timeline(all.clone());
    let t0 = Instant::now();
    create_customers(&client, &names, c).await;
    eprintln!(
        "timeline: all created after {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    watched.ready(&all, long).await;
    let converge = t0.elapsed();
    timeline.abort();
    let plane_after = control_plane_cpu();
    let plane_converge = cpu_between(&plane_before, &plane_after);
    let plane_converge_s = cpu_total(&plane_before, &plane_after);
    eprintln!(
        "convergence, apiserver requests: {}",
        requests_between(&served_before, &apiserver_requests(&client).await)
    );
    let writes_converge = operator.writes() - w0;
    let converge_kinds: Vec<String> = grown(&kinds_before, &operator.write_counts())
        .into_iter()
        .map(|(kind, new)| format!("{new} {kind}"))
        .collect();
    eprintln!("convergence writes: {}", converge_kinds.join(", "));
    let cpu_converge = operator.cpu_seconds() - cpu0;
    let reconciles_converge = operator.reconciles() - r0;
    eprintln!("convergence: {n} in {:.1} s", converge.as_secs_f64());
    rows.push(Row {
        measure: format!("Convergence of {n} new Customers / the floor"),
        figure: format!("{:.2}x", converge.as_secs_f64() / floor.seconds),
        note: format!(
            "goal at most 1.10x. Convergence {:.1} s, the operator at concurrency {c}: {writes_converge} operator writes (about {:.1} per customer) in {reconciles_converge} reconciles, control plane CPU {plane_converge}. Floor {:.1} s, on a fresh control plane of the same version on this machine, with no operator: the benchmark alone sent per customer the create of a look-alike of the Customer (the same CRD under another group), its finalizer, render's {} objects in the operator's order (namespace, default deny, the other policies, quota and limits, bindings) and a Ready status, {best} customers at a time (the best of the concurrency search, customers per second: {}); control plane CPU {}",
            converge.as_secs_f64(),
            writes_converge as f64 / n as f64,
            floor.seconds,
            object_count / n,
            floor.searched,
            floor.plane_cpu,
        ),
    });
    rows.push(Row {
        measure: "Operator CPU during convergence / control plane CPU".into(),
        figure: format!("{:.3}", cpu_converge / plane_converge_s),
        note: format!(
            "goal at most 0.15. Operator {cpu_converge:.1} s, {:.2} ms per reconcile (compare across N: flat, not linear)",
            cpu_converge * 1000.0 / reconciles_converge.max(1) as f64
        ),
    });
    rows.push(Row {
        measure: "Convergence / plain bulk apply".into(),
        figure: format!("{:.2}x", converge.as_secs_f64() / limit.as_secs_f64()),
        note: format!(
            "for continuity with earlier runs: render's {object_count} objects server-side applied in bulk, {bulk_c} at a time, on the empty cluster, took {:.1} s (control plane CPU {plane_bulk})",
            limit.as_secs_f64()
        ),
    });

    // 5. Idle: several full resyncs of every customer.
    settle(&operator).await;
    let (w0, r0, cpu0) = (
        operator.writes(),
        operator.reconciles(),
        operator.cpu_seconds(),
    );
    let kinds_before = operator.write_counts();
    let idle_for = Duration::from_secs(resync_of(&args) * u64::from(args.idle_resyncs) + 2);
    tokio::time::sleep(idle_for).await;
    let idle_writes = operator.writes() - w0;
    let idle_kinds: Vec<String> = grown(&kinds_before, &operator.write_counts())
        .into_iter()
        .map(|(kind, new)| format!("{new} {kind}"))
        .collect();
    let idle_cpu = operator.cpu_seconds() - cpu0;
    let idle_reconciles = operator.reconciles() - r0;
    let (peak, steady) = operator.memory();
    let customers_after = n;
    eprintln!("memory after the idle resyncs: {}", operator.memory_parts());
    rows.push(Row {
        measure: format!("Idle writes over {} full resyncs", args.idle_resyncs),
        figure: idle_writes.to_string(),
        note: format!(
            "goal 0. {idle_reconciles} reconciles in {} s{}",
            idle_for.as_secs(),
            if idle_kinds.is_empty() {
                String::new()
            } else {
                format!(" (writes: {})", idle_kinds.join(", "))
            }
        ),
    });
    rows.push(Row {
        measure: "Operator CPU per idle resync".into(),
        figure: format!("{:.2} s", idle_cpu / f64::from(args.idle_resyncs)),
        note: format!(
            "goal at most {} s. {customers_after} customers, resync every {} s",
            if n >= 10_000 { 10 } else { 1 },
            resync_of(&args)
        ),
    });
    rows.push(Row {
        measure: format!("Peak resident memory, {customers_after} customers"),
        figure: format!("{peak:.1} MiB"),
        note: format!(
            "goal at most {} MiB. Steady {steady:.1} MiB; {:.1} KiB per customer over the {rss_before:.1} MiB before the first Customer (caches of the floor's and the bulk apply's namespaces)",
            if n >= 10_000 { 200 } else { 64 },
            (steady - rss_before) * 1024.0 / n as f64
        ),
    });

    // 6. Drift repair: a deleted NetworkPolicy comes back.
    let mut repairs = Vec::new();
    for name in names.iter().take(args.drift_samples) {
        repairs.push(drift_repair(&client, name).await);
    }
    rows.push(Row {
        measure: "Drift repair (deleted NetworkPolicy back), median".into(),
        figure: format!("{:.0} ms", median(&repairs) * 1000.0),
        note: format!(
            "goal at most 100 ms. {} samples, p95 {:.0} ms",
            repairs.len(),
            percentile(&repairs, 0.95) * 1000.0
        ),
    });

    // 7. Single-customer latency with all the others in place.
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
        measure: format!(
            "One Customer created with {customers_after} existing, to Ready: median / p95"
        ),
        figure: format!(
            "{:.0} / {:.0} ms",
            median(&latencies) * 1000.0,
            percentile(&latencies, 0.95) * 1000.0
        ),
        note: format!(
            "goal at most 100 / 250 ms. {} created one at a time",
            latencies.len()
        ),
    });

    // 8. Restart: a fresh operator re-verifies everything without writing.
    settle(&operator).await;
    operator.kill().await;
    let total = customers_after + extra.len();
    let t = Instant::now();
    let operator = Operator::start(&args);
    wait_until("first reconcile after restart", long, || async {
        operator.first_reconcile.lock().unwrap().map(|at| at - t)
    })
    .await;
    let first = operator.first_reconcile.lock().unwrap().unwrap() - t;
    wait_until("every customer re-verified", long, || async {
        (operator.distinct.load(Ordering::Relaxed) >= total as u64).then_some(())
    })
    .await;
    let all_verified = t.elapsed();
    let (restart_peak, _) = operator.memory();
    rows.push(Row {
        measure: format!("Restart: all {total} re-verified"),
        figure: format!("{:.1} s", all_verified.as_secs_f64()),
        note: format!(
            "goal at most {} s and 0 writes: {} writes ({}). First reconcile after {:.2} s; peak memory of the new process {restart_peak:.1} MiB",
            if n >= 10_000 { 20 } else { 3 },
            operator.writes(),
            match operator.write_kinds() {
                kinds if kinds.is_empty() => "none".to_string(),
                kinds => kinds,
            },
            first.as_secs_f64()
        ),
    });

    // 9. Deletion next to the namespace controller's own time.
    let deletions = args.deletions.unwrap_or(n / 10).min(n);
    let doomed: Vec<String> = names.iter().rev().take(deletions).cloned().collect();
    let by_operator =
        delete_until_namespaces_gone::<Customer>(&client, &watched, &doomed, c, long).await;
    let direct: Vec<String> = (0..deletions).map(|i| format!("base-{i}")).collect();
    let by_namespace_controller =
        delete_until_namespaces_gone::<Namespace>(&client, &watched, &direct, c, long).await;
    rows.push(Row {
        measure: format!("Deleting {deletions} Customers / the namespace controller alone"),
        figure: format!(
            "{:.2}x",
            by_operator.as_secs_f64() / by_namespace_controller.as_secs_f64()
        ),
        note: format!(
            "goal at most 1.2x. {:.1} s until their namespaces were gone; the same number of namespaces deleted directly: {:.1} s",
            by_operator.as_secs_f64(),
            by_namespace_controller.as_secs_f64()
        ),
    });
    operator.kill().await;

    let table = table(&rows, &args, &kubernetes, &per_customer, started.elapsed());
    println!("{table}");
    if let Some(path) = &args.output {
        write_section(path, &table, n);
        eprintln!("wrote {}", path.display());
    }
}

/// The floor's figures, passed from the `--floor-only` run to the main one.
#[derive(serde::Serialize, serde::Deserialize)]
struct Floor {
    /// Seconds for N customers.
    seconds: f64,
    /// The concurrency it ran at (the search's best).
    concurrency: usize,
    /// The search: customers per second at each concurrency tried.
    searched: String,
    /// The control plane's CPU during the floor.
    plane_cpu: String,
}

/// The floor alone, on the control plane `KUBECONFIG` names (nothing else runs there):
/// the concurrency search, then the required writes for N customers at the best
/// concurrency; its figures go to `path`.
async fn measure_floor(args: Args, path: &std::path::Path) {
    let client = Client::try_default()
        .await
        .expect("KUBECONFIG names the floor's cluster");
    customer_operator::operate::install_crds(&client)
        .await
        .expect("CRDs installed");
    install_floor_kind(&client).await;
    let n = args.customers;
    let (best, searched) = best_concurrency(&client, n).await;
    eprintln!("floor concurrency search (customers per second): {searched}");
    let names: Vec<String> = (0..n).map(|i| format!("floor-{i}")).collect();
    quiet().await;
    let plane_before = control_plane_cpu();
    let served_before = apiserver_requests(&client).await;
    let took = required_writes(&client, &names, best).await;
    let plane_cpu = cpu_between(&plane_before, &control_plane_cpu());
    eprintln!(
        "floor, apiserver requests: {}",
        requests_between(&served_before, &apiserver_requests(&client).await)
    );
    eprintln!("floor: {n} customers in {:.1} s", took.as_secs_f64());
    let floor = Floor {
        seconds: took.as_secs_f64(),
        concurrency: best,
        searched,
        plane_cpu,
    };
    std::fs::write(path, serde_json::to_string(&floor).expect("JSON"))
        .expect("floor figures written");
}

/// The customer ClusterRoles the operator binds, as the chart installs them (their
/// rules do not matter here: the operator only checks that they exist), so that no
/// Customer reports `RolesMissing`.
async fn install_customer_roles(client: &Client) {
    use customer_operator::desired::access::{
        ROLE_ADMIN, ROLE_EDIT, ROLE_SECURITY_CONSULTANT, ROLE_VIEW,
    };
    let api: Api<ClusterRole> = Api::all(client.clone());
    for role in [ROLE_ADMIN, ROLE_EDIT, ROLE_VIEW, ROLE_SECURITY_CONSULTANT] {
        let object = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": role},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]});
        api.patch(
            role,
            &PatchParams::apply("bench").force(),
            &Patch::Apply(&object),
        )
        .await
        .expect("customer role");
    }
}

/// What render makes per customer, by kind: `1 Namespace, 5 NetworkPolicy, ...`.
fn per_customer_objects(objects: &(Vec<Value>, Vec<Value>), n: usize) -> String {
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for object in objects.0.iter().chain(&objects.1) {
        *kinds
            .entry(object["kind"].as_str().unwrap_or_default().to_string())
            .or_default() += 1;
    }
    let parts: Vec<String> = kinds
        .iter()
        .map(|(kind, count)| format!("{} {kind}", count / n.max(1)))
        .collect();
    parts.join(", ")
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
                    let api = dynamic_api(&client, &object);
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

/// The concurrencies the floor is tried at.
const FLOOR_PROBES: [usize; 6] = [4, 8, 16, 32, 64, 128];

/// The customers of the floor's sample at `concurrency`: N/20, and at least four waves.
fn probe_sample(n: usize, concurrency: usize) -> usize {
    (n / 20).max(4 * concurrency)
}

/// Sends the floor's writes for a sample of customers ([`probe_sample`]) at each of
/// [`FLOOR_PROBES`] and returns the concurrency with the most customers per second, with
/// every figure.
async fn best_concurrency(client: &Client, n: usize) -> (usize, String) {
    let mut rates: Vec<(usize, f64)> = Vec::new();
    for concurrency in FLOOR_PROBES {
        let sample = probe_sample(n, concurrency);
        let names: Vec<String> = (0..sample)
            .map(|i| format!("floor-probe-{concurrency}-{i}"))
            .collect();
        quiet().await;
        let took = required_writes(client, &names, concurrency).await;
        rates.push((concurrency, sample as f64 / took.as_secs_f64()));
    }
    let best = rates
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map_or(16, |(c, _)| *c);
    let figures: Vec<String> = rates
        .iter()
        .map(|(c, rate)| format!("{rate:.0} at {c}"))
        .collect();
    (best, figures.join(", "))
}

/// The group of the floor's look-alike of the Customer kind.
const FLOOR_GROUP: &str = "bench.customers.dev";

/// The floor's kind: the Customer CRD under another group and kind (the same schema,
/// CEL rules, status subresource and printer columns, so each write costs the apiserver
/// what a Customer's does), which the operator does not watch. So the floor runs before
/// the operator starts, on the cluster the convergence finds, and its customers do not
/// count among the operator's N.
fn floor_resource() -> ApiResource {
    ApiResource {
        group: FLOOR_GROUP.into(),
        version: "v1alpha1".into(),
        api_version: format!("{FLOOR_GROUP}/v1alpha1"),
        kind: "FloorCustomer".into(),
        plural: "floorcustomers".into(),
    }
}

/// Installs the floor's kind and waits until it is served.
async fn install_floor_kind(client: &Client) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let mut crd = serde_json::to_value(customer_operator::api::customer_crd()).expect("CRD");
    let name = format!("floorcustomers.{FLOOR_GROUP}");
    crd["metadata"] = json!({ "name": name });
    crd["spec"]["group"] = FLOOR_GROUP.into();
    crd["spec"]["names"] = json!({"kind": "FloorCustomer", "listKind": "FloorCustomerList",
                                  "plural": "floorcustomers", "singular": "floorcustomer"});
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    api.patch(
        &name,
        &PatchParams::apply("bench").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("floor CRD");
    wait_until("floor CRD established", Duration::from_secs(60), || async {
        let crd = api.get(&name).await.ok()?;
        customer_operator::operate::is_established(&crd).then_some(())
    })
    .await;
    // Established can come a moment before the kind is served.
    let floor: Api<DynamicObject> = Api::all_with(client.clone(), &floor_resource());
    wait_until("floor kind served", Duration::from_secs(60), || async {
        floor.list(&Default::default()).await.ok().map(|_| ())
    })
    .await;
}

/// The writes DESIGN.md asks for each new customer, sent by the benchmark itself with no
/// operator running, customer by customer in the operator's order: the customer's create,
/// its finalizer, its namespace (a plain create, as the operator's), the default-deny
/// policy, the other policies, the quota and the limits side by side, the RoleBindings,
/// and a Ready status as the operator words it; `concurrency` customers at a time. No
/// operator that keeps the finalizer and the status can send less; what it adds beyond
/// this (watches, its own CPU, its waits) is the rest of convergence.
async fn required_writes(client: &Client, names: &[String], concurrency: usize) -> Duration {
    let t = Instant::now();
    stream::iter(names.iter().enumerate())
        .for_each_concurrent(concurrency, |(i, name)| floor_customer(client, name, i))
        .await;
    t.elapsed()
}

/// One customer of the floor, its writes one stage after the other.
async fn floor_customer(client: &Client, name: &str, i: usize) {
    let resource = floor_resource();
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let mut object = serde_json::to_value(customer(name, i)).expect("customer");
    object["apiVersion"] = resource.api_version.clone().into();
    object["kind"] = resource.kind.clone().into();
    let object: DynamicObject = serde_json::from_value(object).expect("floor customer");
    let created = api
        .create(&Default::default(), &object)
        .await
        .expect("floor customer created");
    let finalizer = json!({"metadata": {"finalizers": [customer_operator::api::FINALIZER]}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&finalizer))
        .await
        .expect("finalizer");
    // render's objects for a Customer of this uid; another managed-by, so that the
    // operator's caches do not hold them (the size of the label is the same).
    let mut owner = customer(name, i);
    owner.metadata.uid = created.metadata.uid.clone();
    let (mut namespaces, mut inside) = rendered(std::slice::from_ref(&owner));
    for value in namespaces.iter_mut().chain(inside.iter_mut()) {
        value["metadata"]["labels"][LABEL_MANAGED_BY] = BASELINE_MANAGER.into();
    }
    for namespace in &namespaces {
        let object: DynamicObject = serde_json::from_value(namespace.clone()).expect("namespace");
        let resource = ApiResource::erase::<Namespace>(&());
        Api::<DynamicObject>::all_with(client.clone(), &resource)
            .create(&Default::default(), &object)
            .await
            .expect("floor namespace created");
    }
    let is = |o: &Value, kind: &str| o["kind"] == kind;
    let deny = |o: &Value| is(o, "NetworkPolicy") && o["metadata"]["name"] == DEFAULT_DENY;
    let (first, rest): (Vec<&Value>, Vec<&Value>) = inside.iter().partition(|o| deny(o));
    let (access, rest): (Vec<&Value>, Vec<&Value>) =
        rest.into_iter().partition(|o| is(o, "RoleBinding"));
    for stage in [first, rest, access] {
        futures::future::join_all(stage.into_iter().map(|o| apply_one(client, o))).await;
    }
    let status = floor_status(name, &inside);
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(&json!({ "status": status })),
    )
    .await
    .expect("floor status");
}

/// The Ready status the operator writes for a converged bench customer.
fn floor_status(name: &str, inside: &[Value]) -> Value {
    use customer_operator::api::{NamespaceStatus, Summary};
    use customer_operator::controller::status::{Observed, Outcome, compute};
    let count = |kinds: &[&str]| {
        inside
            .iter()
            .filter(|o| kinds.iter().any(|k| o["kind"] == *k))
            .count() as u32
    };
    let observed = Observed {
        namespaces: vec![NamespaceStatus {
            name: name.into(),
            phase: "Active".into(),
        }],
        summary: Summary {
            namespaces: 1,
            network_policies: count(&["NetworkPolicy"]),
            role_bindings: count(&["RoleBinding"]),
            quotas: count(&["ResourceQuota", "LimitRange"]),
            cluster_network_policies: 0,
        },
        isolation: Some(customer_operator::api::Isolation::Standard),
        ..Default::default()
    };
    let now = k8s_openapi::jiff::Timestamp::now();
    let status = compute(None, Some(1), "all", None, &Outcome::Applied(observed), now);
    serde_json::to_value(status).expect("status")
}

/// Server-side applies one object as the operator does.
async fn apply_one(client: &Client, value: &Value) {
    let object: DynamicObject = serde_json::from_value(value.clone()).expect("dynamic object");
    let api = dynamic_api(client, &object);
    api.patch(
        &object.name_any(),
        &PatchParams::apply("bench-floor").force(),
        &Patch::Apply(&object),
    )
    .await
    .expect("floor apply");
}

/// The API of a dynamic object's kind, in its namespace.
fn dynamic_api(client: &Client, object: &DynamicObject) -> Api<DynamicObject> {
    let types = object.types.clone().expect("apiVersion and kind");
    let (group, version) = match types.api_version.split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), types.api_version.clone()),
    };
    let gvk = kube::api::GroupVersionKind::gvk(&group, &version, &types.kind);
    let resource = ApiResource::from_gvk(&gvk);
    match object.namespace() {
        Some(ns) => Api::namespaced_with(client.clone(), &ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
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
    async fn namespaces_gone(&self, names: &[String], limit: Duration) {
        wait_until("namespaces gone", limit, || async {
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

/// Waits until the operator has sent no write for 2 s. Its periodic checks of unchanged
/// customers go on (at a low concurrency they leave no pause) and write nothing.
async fn settle(operator: &Operator) {
    let mut last = operator.writes();
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = operator.writes();
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
/// namespaces of the same names are gone (within `limit`).
async fn delete_until_namespaces_gone<K>(
    client: &Client,
    watched: &Watched,
    names: &[String],
    concurrency: usize,
    limit: Duration,
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
    watched.namespaces_gone(names, limit).await;
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

fn table(
    rows: &[Row],
    args: &Args,
    kubernetes: &str,
    per_customer: &str,
    took: Duration,
) -> String {
    let date = std::process::Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let mut out = format!(
        "Run {date} on {}, against the local Kubernetes {kubernetes} control plane (etcd, kube-apiserver, kube-controller-manager on the same machine); N = {}, operator concurrency {}, resync {} s; per customer {per_customer} (the default NetworkPolicy backend; no total quota, freeze or Argo CD project); the whole run took {:.1} min.\n\n| Measure | Figure | Note |\n|---|---|---|\n",
        machine(),
        args.customers,
        args.concurrency.unwrap_or(16),
        resync_of(args),
        whole_run(took).as_secs_f64() / 60.0
    );
    for row in rows {
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            row.measure, row.figure, row.note
        ));
    }
    out
}

/// The whole run's time: since `bench/run.sh` started (its floor run and both release
/// builds' checks included, `CUSTOMER_OPERATOR_BENCH_STARTED`, seconds since the epoch),
/// else this process's `took`.
fn whole_run(took: Duration) -> Duration {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    std::env::var("CUSTOMER_OPERATOR_BENCH_STARTED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(took, |started| {
            now.saturating_sub(Duration::from_secs(started))
        })
}

/// Replaces the text between the scale markers of `path` (appending a section when the
/// markers are missing), leaving the rest of the file as it is.
fn write_section(path: &PathBuf, table: &str, n: usize) {
    // One table per size: N = 1000 keeps the markers of earlier runs.
    let tag = if n == 1000 {
        "scale".to_string()
    } else {
        format!("scale-{n}")
    };
    let (begin, end) = (
        format!("<!-- {tag}:begin -->"),
        format!("<!-- {tag}:end -->"),
    );
    let old = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let section = format!("{begin}\n{table}{end}");
    let new = match (old.find(&begin), old.find(&end)) {
        (Some(b), Some(e)) if b < e => format!("{}{section}{}", &old[..b], &old[e + end.len()..]),
        _ => format!(
            "{}\n\n## Scale (`bench/run.sh --customers {n}`)\n\n{section}\n",
            old.trim_end()
        ),
    };
    std::fs::write(path, new).expect("BENCHMARKS.md written");
}
