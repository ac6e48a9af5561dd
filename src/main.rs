//! The `customer-operator` command: parses the command line and calls the library.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use customer_operator::operate::{self, LogFormat, leader::LeaseConfig};
use customer_operator::settings::{
    DEFAULT_CLUSTER_POLICY_PRIORITY, DEFAULT_POD_CIDRS, DEFAULT_PRIVATE_CIDRS, DnsTarget,
    IsolationBackend, Settings,
};
use customer_operator::{api, console, controller, render, service, verify};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use std::net::SocketAddr;
use std::time::Duration;

/// Gives every customer of a shared cluster its own namespaces, network isolation,
/// access and quotas from one Customer object.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller against the cluster the kubeconfig names, until SIGTERM.
    Run {
        /// Kubeconfig file; default: in-cluster config, else $KUBECONFIG, else ~/.kube/config.
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// Customers reconciled at the same time.
        #[arg(long, env = "CUSTOMER_OPERATOR_CONCURRENCY", default_value_t = 8)]
        concurrency: u16,
        /// Seconds between checks of an unchanged Customer.
        #[arg(long, env = "CUSTOMER_OPERATOR_RESYNC_SECONDS", default_value_t = 300)]
        resync_seconds: u64,
        #[command(flatten)]
        settings: SettingsArgs,
        #[command(flatten)]
        operate: OperateArgs,
    },
    /// Print the CustomResourceDefinitions as YAML.
    Crds,
    /// Print, offline, every object the operator would create for the Customers and
    /// CustomerGroups in these files or directories.
    Render {
        /// A YAML file or a directory of them; may be given more than once.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Check, from every NetworkPolicy in the customers' namespaces, which customer can
    /// reach which: prints the matrix and every opening no allowFrom or group zone
    /// declares, and exits 1 when there is one. Reads the cluster of the kubeconfig, or
    /// with -f files (Customers and groups, which are rendered, and/or render output).
    Verify {
        /// A YAML file or a directory of them; may be given more than once. Without it,
        /// the cluster is read.
        #[arg(short = 'f', long = "filename")]
        files: Vec<PathBuf>,
        /// Kubeconfig file, when reading the cluster; default: in-cluster config, else
        /// $KUBECONFIG, else ~/.kube/config.
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
        output: Output,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// List the customers you may see, with your own credentials: every Customer when
    /// you may list them, else the CustomerClaims of the namespace (-n). Also
    /// `kubectl customer list`.
    List {
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Show one customer as its console does: display name, contact, partner, group,
    /// readiness, namespaces, policies, bindings, quota used against hard, connections
    /// open and pending. Also `kubectl customer overview NAME`.
    Overview {
        /// The customer's name (a CustomerClaim's name is its customer's).
        name: String,
        #[command(flatten)]
        target: TargetArgs,
    },
}

/// Shows the customers you may see and their assets, with your own credentials.
// The binary installed as `kubectl-customer` on PATH: kubectl passes it every argument
// after `customer`, kubectl's own flags included, so it takes them itself.
#[derive(Parser)]
#[command(name = "kubectl customer", bin_name = "kubectl customer", version)]
struct Plugin {
    #[command(flatten)]
    target: TargetArgs,
    #[command(subcommand)]
    command: PluginCommand,
}

/// The commands of `kubectl customer`.
#[derive(Subcommand)]
enum PluginCommand {
    /// List the customers you may see: every Customer when you may list them, else the
    /// CustomerClaims of the namespace (-n, else the context's).
    List,
    /// Show one customer with its assets and connections.
    Overview {
        /// The customer's name (a CustomerClaim's name is its customer's).
        name: String,
    },
}

impl Plugin {
    /// The same command as `customer-operator list|overview` would be.
    fn into_command(self) -> Command {
        let target = self.target;
        match self.command {
            PluginCommand::List => Command::List { target },
            PluginCommand::Overview { name } => Command::Overview { name, target },
        }
    }
}

/// Whether the binary runs as the kubectl plugin: its argv[0] is `kubectl-customer`.
fn invoked_as_plugin() -> bool {
    std::env::args_os()
        .next()
        .and_then(|arg0| {
            std::path::Path::new(&arg0)
                .file_stem()
                .map(|stem| stem == "kubectl-customer")
        })
        .unwrap_or(false)
}

/// Whose credentials and which namespace `list` and `overview` use, as kubectl takes
/// them.
#[derive(Args)]
struct TargetArgs {
    /// Kubeconfig file; default: $KUBECONFIG (a list of files), else ~/.kube/config.
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use; default: its current context.
    #[arg(long, global = true)]
    context: Option<String>,
    /// Namespace of the CustomerClaims to read when you may not list Customers (a
    /// partner's or a customer's namespace); default: the context's namespace.
    #[arg(short = 'n', long, global = true)]
    namespace: Option<String>,
}

impl TargetArgs {
    fn into_target(self) -> console::Target {
        console::Target {
            kubeconfig: self.kubeconfig,
            context: self.context,
            namespace: self.namespace,
        }
    }
}

/// `list` and `overview`: the text to print.
fn console(target: TargetArgs, request: console::Request) -> Result<(String, bool), String> {
    tokio::runtime::Runtime::new()
        .map_err(|e| e.to_string())?
        .block_on(console::run(&target.into_target(), &request))
        .map(|text| (text, true))
        .map_err(|e| e.to_string())
}

/// How `verify` prints its report.
#[derive(Clone, Copy, ValueEnum)]
enum Output {
    /// Text tables.
    Table,
    /// JSON.
    Json,
}

/// The operator's cluster-wide settings.
#[derive(Args)]
struct SettingsArgs {
    /// Group of customers that set no `spec.group`.
    #[arg(long, env = "CUSTOMER_OPERATOR_DEFAULT_GROUP", default_value = "all")]
    default_group: String,
    /// Namespaces that may reach customers with Standard isolation (comma-separated).
    #[arg(
        long,
        env = "CUSTOMER_OPERATOR_PLATFORM_NAMESPACES",
        value_delimiter = ','
    )]
    platform_namespaces: Vec<String>,
    /// Namespace of the cluster DNS.
    #[arg(
        long,
        env = "CUSTOMER_OPERATOR_DNS_NAMESPACE",
        default_value = "kube-system"
    )]
    dns_namespace: String,
    /// Labels of the cluster DNS pods, as key=value (comma-separated).
    #[arg(
        long,
        env = "CUSTOMER_OPERATOR_DNS_POD_LABELS",
        value_delimiter = ',',
        default_value = "k8s-app=kube-dns"
    )]
    dns_pod_labels: Vec<String>,
    /// Address ranges excluded from internet egress (comma-separated); add the cluster's
    /// pod and service ranges when they are not private.
    #[arg(long, env = "CUSTOMER_OPERATOR_PRIVATE_CIDRS", value_delimiter = ',', default_values_t = DEFAULT_PRIVATE_CIDRS.iter().map(|s| s.to_string()))]
    private_cidrs: Vec<String>,
    /// The operator's own namespace, which no customer may take.
    #[arg(
        long,
        env = "CUSTOMER_OPERATOR_NAMESPACE",
        default_value = "customer-operator"
    )]
    operator_namespace: String,
    /// The cluster's pod address ranges (comma-separated), for judging which ipBlocks
    /// may match pods in the isolation check.
    #[arg(long, env = "CUSTOMER_OPERATOR_POD_CIDRS", value_delimiter = ',', default_values_t = DEFAULT_POD_CIDRS.iter().map(|s| s.to_string()))]
    pod_cidrs: Vec<String>,
    /// System subjects that Customers and groups may name all the same (comma-separated),
    /// as the apiserver names them: `system:authenticated`,
    /// `system:serviceaccount:<namespace>:<name>`. By default every `system:` user and
    /// group and every ServiceAccount of `kube-*`, `default` and the operator's
    /// namespace is refused.
    #[arg(
        long,
        env = "CUSTOMER_OPERATOR_ALLOW_SYSTEM_SUBJECTS",
        value_delimiter = ','
    )]
    allow_system_subjects: Vec<String>,
    /// What isolates the customers: NetworkPolicies in their namespaces, or
    /// ClusterNetworkPolicies (Admin and Baseline tier), under which customers may write
    /// NetworkPolicies of their own.
    #[arg(
        long,
        env = "CUSTOMER_OPERATOR_ISOLATION_BACKEND",
        value_enum,
        default_value = "NetworkPolicy"
    )]
    isolation_backend: IsolationBackend,
    /// Priority of the operator's ClusterNetworkPolicies in both tiers (0 to 1000, lower
    /// first).
    #[arg(long, env = "CUSTOMER_OPERATOR_CLUSTER_POLICY_PRIORITY", default_value_t = DEFAULT_CLUSTER_POLICY_PRIORITY, value_parser = clap::value_parser!(i32).range(0..=1000))]
    cluster_policy_priority: i32,
    /// Write an Argo CD AppProject per customer (its namespaces as the only
    /// destinations), when the cluster serves AppProjects.
    #[arg(long, env = "CUSTOMER_OPERATOR_ARGOCD_PROJECTS")]
    argocd_projects: bool,
    /// The namespace Argo CD runs in, where the AppProjects go.
    #[arg(
        long,
        env = "CUSTOMER_OPERATOR_ARGOCD_NAMESPACE",
        default_value = "argocd"
    )]
    argocd_namespace: String,
}

/// How the operator runs as a service: logs, metrics and health, leader election.
#[derive(Args)]
struct OperateArgs {
    /// Log lines as plain text or as one JSON object per line.
    #[arg(
        long,
        env = "CUSTOMER_OPERATOR_LOG_FORMAT",
        value_enum,
        default_value = "plain"
    )]
    log_format: LogFormat,
    /// Address of /metrics, /healthz and /readyz (`host:port`; port 0 picks a free one);
    /// `off` serves none of them.
    #[arg(
        long,
        env = "CUSTOMER_OPERATOR_METRICS_ADDR",
        default_value = "127.0.0.1:8080"
    )]
    metrics_addr: String,
    /// Run the controllers only while holding a Lease, so that several replicas are safe.
    #[arg(long, env = "CUSTOMER_OPERATOR_LEADER_ELECTION")]
    leader_election: bool,
    /// Namespace of the Lease; default: the operator's namespace (--operator-namespace).
    #[arg(long, env = "CUSTOMER_OPERATOR_LEASE_NAMESPACE")]
    lease_namespace: Option<String>,
    /// Name of the Lease.
    #[arg(
        long,
        env = "CUSTOMER_OPERATOR_LEASE_NAME",
        default_value = "customer-operator"
    )]
    lease_name: String,
    /// This replica's identity in the Lease, unique per replica; default: the host name
    /// and process id.
    #[arg(long, env = "POD_NAME")]
    leader_identity: Option<String>,
    /// Seconds the Lease holds without renewal: how long a standby waits after the
    /// leader's last renewal before it takes over.
    #[arg(
        long,
        env = "CUSTOMER_OPERATOR_LEASE_DURATION_SECONDS",
        default_value_t = 15
    )]
    lease_duration_seconds: u64,
    /// Seconds between renewals of the Lease by its holder (less than half the duration).
    #[arg(
        long,
        env = "CUSTOMER_OPERATOR_LEASE_RENEW_SECONDS",
        default_value_t = 5
    )]
    lease_renew_seconds: u64,
}

impl OperateArgs {
    fn into_options(self, operator_namespace: &str) -> Result<operate::Options, String> {
        let metrics_addr = match self.metrics_addr.as_str() {
            "off" | "" => None,
            text => Some(
                text.parse::<SocketAddr>()
                    .map_err(|e| format!("--metrics-addr: {text:?}: {e}"))?,
            ),
        };
        let lease = self.leader_election.then(|| LeaseConfig {
            namespace: self
                .lease_namespace
                .unwrap_or_else(|| operator_namespace.to_string()),
            name: self.lease_name,
            identity: self.leader_identity.unwrap_or_else(default_identity),
            duration: Duration::from_secs(self.lease_duration_seconds),
            renew: Duration::from_secs(self.lease_renew_seconds),
        });
        if let Some(lease) = &lease {
            lease.validate().map_err(|e| e.to_string())?;
        }
        Ok(operate::Options {
            metrics_addr,
            lease,
        })
    }
}

/// The host name and process id, for a replica started without POD_NAME.
fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "customer-operator".into());
    format!("{host}-{}", std::process::id())
}

impl SettingsArgs {
    fn into_settings(self) -> Result<Settings, String> {
        let pod_labels = self
            .dns_pod_labels
            .iter()
            .map(|pair| {
                pair.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .ok_or_else(|| format!("--dns-pod-labels: {pair:?} is not key=value"))
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        Ok(Settings {
            default_group: self.default_group,
            platform_namespaces: self.platform_namespaces,
            dns: DnsTarget {
                namespace: self.dns_namespace,
                pod_labels,
            },
            private_cidrs: self.private_cidrs,
            operator_namespace: self.operator_namespace,
            pod_cidrs: self.pod_cidrs,
            allowed_system_subjects: self.allow_system_subjects,
            isolation_backend: self.isolation_backend,
            cluster_policy_priority: self.cluster_policy_priority,
            argocd_namespace: self.argocd_projects.then_some(self.argocd_namespace),
        })
    }
}

/// A client for the cluster of `kubeconfig`, else of the usual places.
async fn client(kubeconfig: Option<PathBuf>) -> Result<Client, String> {
    let config = match kubeconfig {
        Some(path) => {
            let file =
                Kubeconfig::read_from(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?
        }
        // Config::infer reads $KUBECONFIG (a list of files) itself; set but empty, it
        // would name no file, which is almost always a mistake of the shell.
        None if std::env::var_os("KUBECONFIG").is_some_and(|v| v.is_empty()) => {
            return Err("KUBECONFIG is set but empty: unset it (the in-cluster config, else ~/.kube/config, is used then), set it to a kubeconfig file, or pass --kubeconfig".into());
        }
        None => Config::infer().await.map_err(|e| {
            format!("no cluster to talk to ({e}): set KUBECONFIG or pass --kubeconfig")
        })?,
    };
    Client::try_from(config).map_err(|e| e.to_string())
}

async fn run_controller(
    kubeconfig: Option<PathBuf>,
    options: controller::Options,
    operate: operate::Options,
) -> Result<String, String> {
    service::run(client(kubeconfig).await?, options, operate)
        .await
        .map_err(|e| e.to_string())?;
    Ok(String::new())
}

/// `verify`: the report, and whether every customer is isolated as declared.
fn verify(
    files: Vec<PathBuf>,
    kubeconfig: Option<PathBuf>,
    output: Output,
    settings: Settings,
) -> Result<(String, bool), String> {
    let world = if files.is_empty() {
        tokio::runtime::Runtime::new()
            .map_err(|e| e.to_string())?
            .block_on(async {
                let client = client(kubeconfig).await?;
                verify::world_from_cluster(&client)
                    .await
                    .map_err(|e| e.to_string())
            })?
    } else {
        render::read_inputs(&files)
            .and_then(|inputs| verify::world_from_inputs(&inputs, &settings))
            .map_err(|e| e.to_string())?
    };
    let report = verify::verify(&world, &settings).map_err(|e| e.to_string())?;
    let text = match output {
        Output::Table => verify::table(&report),
        Output::Json => verify::json(&report).map_err(|e| e.to_string())?,
    };
    Ok((text, report.isolated()))
}

fn main() -> ExitCode {
    let command = if invoked_as_plugin() {
        Plugin::parse().into_command()
    } else {
        Cli::parse().command
    };
    // `render` and `verify` keep 1 for "not isolated" and say 2 for input they cannot
    // use or any other error; `run`, `crds`, `list` and `overview` fail with 1.
    let error_code: u8 = match command {
        Command::Render { .. } | Command::Verify { .. } => 2,
        Command::Run { .. } | Command::Crds | Command::List { .. } | Command::Overview { .. } => 1,
    };
    let done = |text: String| (text, true);
    let result = match command {
        Command::Run {
            kubeconfig,
            concurrency,
            resync_seconds,
            settings,
            operate,
        } => settings.into_settings().and_then(|settings| {
            operate::init_logging(operate.log_format);
            let operate = operate.into_options(&settings.operator_namespace)?;
            let options = controller::Options {
                settings,
                concurrency,
                resync: Duration::from_secs(resync_seconds),
                ..Default::default()
            };
            tokio::runtime::Runtime::new()
                .map_err(|e| e.to_string())?
                .block_on(run_controller(kubeconfig, options, operate))
                .map(done)
        }),
        Command::Crds => Ok(done(api::crds_yaml())),
        Command::Render { files, settings } => settings.into_settings().and_then(|settings| {
            render::read_inputs(&files)
                .and_then(|inputs| render::render(&inputs, &settings))
                .map(done)
                .map_err(|e| e.to_string())
        }),
        Command::Verify {
            files,
            kubeconfig,
            output,
            settings,
        } => settings
            .into_settings()
            .and_then(|settings| verify(files, kubeconfig, output, settings)),
        Command::List { target } => console(target, console::Request::List),
        Command::Overview { name, target } => console(target, console::Request::Overview(name)),
    };
    match result {
        Ok((text, ok)) => {
            print!("{text}");
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(message) => {
            for line in message.lines() {
                eprintln!("error: {line}");
            }
            ExitCode::from(error_code)
        }
    }
}
