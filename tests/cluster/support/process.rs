//! The operator binary as a child process that a test can SIGKILL and start again, and
//! a seeded random source for the moments it does so.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// What the operator binary logs unless a test asks for more.
const DEFAULT_LOG_FILTER: &str = "warn,customer_operator::operate=info";

/// The operator binary running against the test cluster.
pub struct OperatorProcess {
    child: Option<Child>,
    kubeconfig: PathBuf,
    log: PathBuf,
    extra: Vec<String>,
    log_filter: String,
    /// How many times it was started.
    pub starts: u32,
    /// How many times it was killed with SIGKILL.
    pub kills: u32,
}

impl OperatorProcess {
    /// Starts `customer-operator run` (platform namespace `ingress-nginx`, like the
    /// in-process operator of the other tests), appending its log to `log`.
    pub fn start(kubeconfig: &Path, log: &Path) -> Self {
        Self::start_with(kubeconfig, log, &[])
    }

    /// Starts `customer-operator run` with these extra arguments.
    pub fn start_with(kubeconfig: &Path, log: &Path, extra: &[&str]) -> Self {
        Self::start_logging(kubeconfig, log, extra, DEFAULT_LOG_FILTER)
    }

    /// Starts `customer-operator run` with these extra arguments and this `RUST_LOG`.
    pub fn start_logging(kubeconfig: &Path, log: &Path, extra: &[&str], filter: &str) -> Self {
        let mut process = OperatorProcess {
            child: None,
            kubeconfig: kubeconfig.to_path_buf(),
            log: log.to_path_buf(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            log_filter: filter.to_string(),
            starts: 0,
            kills: 0,
        };
        process.restart();
        process
    }

    /// Starts the binary again (after a kill).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the operator is still running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("operator log writable");
        // No metrics server unless the test asks for one.
        let metrics = (!self.extra.iter().any(|a| a == "--metrics-addr"))
            .then_some(["--metrics-addr", "off"])
            .into_iter()
            .flatten();
        let child = Command::new(env!("CARGO_BIN_EXE_customer-operator"))
            .args(["run", "--resync-seconds", "20", "--concurrency", "8"])
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--platform-namespaces", "ingress-nginx"])
            .args(metrics)
            .args(&self.extra)
            .env("RUST_LOG", &self.log_filter)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("the operator binary starts");
        self.child = Some(child);
        self.starts += 1;
    }

    /// SIGKILL, no warning, no cleanup; waits until the process is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            self.kills += 1;
        }
    }

    /// `None` while it runs; its exit status once it has exited by itself.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// What the kubelet does for a pod whose container exited: start it again. Returns
    /// whether it had exited.
    pub fn restart_if_exited(&mut self) -> bool {
        if self.exited().is_none() {
            return false;
        }
        self.child = None;
        self.restart();
        true
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// SplitMix64: a small seeded generator, so that a run can be repeated by its seed.
pub struct Seeded(u64);

impl Seeded {
    /// A generator from this seed.
    pub fn new(seed: u64) -> Self {
        Seeded(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// A number in `low..high`.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next_u64() % (high - low).max(1)
    }
}

/// A setting from the environment, or its default.
pub fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
