//! The `customer-operator` command: parses the command line and calls the library.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use customer_operator::settings::{DEFAULT_PRIVATE_CIDRS, DnsTarget, Settings};
use customer_operator::{api, controller, render};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use std::time::Duration;
use tracing_subscriber::EnvFilter;

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
        #[arg(long, env = "KUBECONFIG")]
        kubeconfig: Option<PathBuf>,
        /// Customers reconciled at the same time.
        #[arg(long, env = "CUSTOMER_OPERATOR_CONCURRENCY", default_value_t = 8)]
        concurrency: u16,
        /// Seconds between checks of an unchanged Customer.
        #[arg(long, env = "CUSTOMER_OPERATOR_RESYNC_SECONDS", default_value_t = 300)]
        resync_seconds: u64,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Print the CustomResourceDefinitions as YAML.
    Crds {
        /// Leave out the CEL validation rules, for apiservers older than 1.25 (which
        /// refuse them in a server-side apply); the operator enforces them itself.
        #[arg(long)]
        without_cel: bool,
    },
    /// Print, offline, every object the operator would create for the Customers and
    /// CustomerGroups in these files or directories.
    Render {
        /// A YAML file or a directory of them; may be given more than once.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        settings: SettingsArgs,
    },
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
        })
    }
}

async fn run_controller(
    kubeconfig: Option<PathBuf>,
    options: controller::Options,
) -> Result<String, String> {
    let config = match kubeconfig {
        Some(path) => {
            let file =
                Kubeconfig::read_from(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => Config::infer().await.map_err(|e| e.to_string())?,
    };
    let client = Client::try_from(config).map_err(|e| e.to_string())?;
    controller::run(client, options)
        .await
        .map_err(|e| e.to_string())?;
    Ok(String::new())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            kubeconfig,
            concurrency,
            resync_seconds,
            settings,
        } => settings.into_settings().and_then(|settings| {
            tracing_subscriber::fmt()
                .with_env_filter(
                    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
                )
                .init();
            let options = controller::Options {
                settings,
                concurrency,
                resync: Duration::from_secs(resync_seconds),
                ..Default::default()
            };
            tokio::runtime::Runtime::new()
                .map_err(|e| e.to_string())?
                .block_on(run_controller(kubeconfig, options))
        }),
        Command::Crds { without_cel } => Ok(api::crds_yaml(!without_cel)),
        Command::Render { files, settings } => settings.into_settings().and_then(|settings| {
            render::read_inputs(&files)
                .and_then(|inputs| render::render(&inputs, &settings))
                .map_err(|e| e.to_string())
        }),
    };
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
