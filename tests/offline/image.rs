//! The operator's image, built by `scripts/image.sh` with umoci (no container engine)
//! and checked from the outside: unpacked, its root holds the static binary and the CA
//! roots and nothing else (so no shell), the binary runs from that root alone, the
//! config runs it as UID 65532 with its entrypoint and asks for nothing more, the
//! Dockerfile describes the same layout, and the bill of materials lists the crates the
//! binary links and the Debian package of the CA roots. It builds a release binary
//! (minutes), so it is ignored by default; `scripts/test.sh` runs it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const ROOTS: &str = "etc/ssl/certs/ca-certificates.crt";
const BINARY: &str = "customer-operator";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `program` in the repository and returns its standard output; fails the test,
/// with its standard error, when it fails.
fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// Every file (not directory) under `root`, relative to it.
fn files_under(root: &Path) -> BTreeSet<String> {
    let mut files = BTreeSet::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable rootfs") {
            let path = entry.expect("entry").path();
            if path.is_dir() && !path.is_symlink() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(root).expect("under root");
                files.insert(relative.to_string_lossy().into_owned());
            }
        }
    }
    files
}

/// Runs the image's binary with `args` with `rootfs` as its root directory: nothing of
/// this machine's files is there for it to use.
fn in_root(rootfs: &Path, args: &[&str]) -> String {
    let root = rootfs.to_str().expect("utf-8 path");
    let binary = format!("/{BINARY}");
    let mut argv: Vec<&str> = if run("id", &["-u"]).trim() == "0" {
        vec![root, &binary]
    } else {
        vec!["--map-root-user", "--root", root, &binary]
    };
    argv.extend(args);
    let program = if argv[0] == root { "chroot" } else { "unshare" };
    run(program, &argv)
}

/// The (name, version) of every package in Cargo.lock.
fn locked_crates() -> BTreeSet<(String, String)> {
    let lock = std::fs::read_to_string(repo().join("Cargo.lock")).expect("Cargo.lock");
    let mut crates = BTreeSet::new();
    let mut name = None;
    for line in lock.lines() {
        let value = |prefix: &str| {
            line.strip_prefix(prefix)
                .map(|v| v.trim_matches('"').to_string())
        };
        if let Some(n) = value("name = ") {
            name = Some(n);
        } else if let (Some(v), Some(n)) = (value("version = "), name.take()) {
            crates.insert((n, v));
        }
    }
    crates
}

/// The final stage of the Dockerfile: its instructions, one per line.
fn dockerfile_final_stage() -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile");
    let start = text.rfind("\nFROM ").expect("a FROM");
    text[start..]
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[test]
#[ignore = "builds a release binary for the musl target (minutes); scripts/test.sh runs it"]
fn the_image_holds_the_static_binary_and_nothing_else() {
    let version = env!("CARGO_PKG_VERSION");
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("image");
    let out_arg = out.to_str().expect("utf-8 path");
    run("bash", &["scripts/image.sh", "--out", out_arg]);
    let image = format!("{out_arg}/oci:{version}");

    // Unpacked: the binary and the CA roots, nothing else.
    let bundle = out.join("bundle");
    let _ = std::fs::remove_dir_all(&bundle);
    run(
        "umoci",
        &["unpack", "--image", &image, bundle.to_str().unwrap()],
    );
    let rootfs = bundle.join("rootfs");
    let files = files_under(&rootfs);
    let expected: BTreeSet<String> = [BINARY, ROOTS].map(String::from).into();
    assert_eq!(files, expected, "the image's files");

    // The binary runs from that root alone: static, needing no library or file of ours.
    let printed = in_root(&rootfs, &["--version"]);
    assert!(printed.contains(version), "--version printed {printed:?}");
    let crds = std::fs::read_to_string(repo().join("crds/customers.dev.yaml")).unwrap();
    assert_eq!(
        in_root(&rootfs, &["crds"]),
        crds,
        "`crds` from the image is crds/"
    );

    // The config: non-root, the entrypoint and command, nothing more asked.
    let inspected = run("skopeo", &["inspect", "--config", &format!("oci:{image}")]);
    let config: Value = serde_json::from_str(&inspected).expect("image config JSON");
    let process = &config["config"];
    assert_eq!(process["User"], "65532:65532", "{process}");
    assert_eq!(
        process["Entrypoint"],
        serde_json::json!(["/customer-operator"])
    );
    assert_eq!(process["Cmd"], serde_json::json!(["run"]));
    for asked in ["ExposedPorts", "Volumes", "StopSignal", "Healthcheck"] {
        assert!(process.get(asked).is_none(), "the image asks for {asked}");
    }
    let labels = process["Labels"].as_object().cloned().unwrap_or_default();
    assert_eq!(labels["org.opencontainers.image.version"], version);
    assert!(
        labels
            .keys()
            .all(|k| k.starts_with("org.opencontainers.image.")),
        "only descriptive labels: {labels:?}"
    );
    assert_eq!(config["os"], "linux");
    let values =
        std::fs::read_to_string(repo().join("charts/customer-operator/values.yaml")).unwrap();
    let values: serde_yaml::Value = serde_yaml::from_str(&values).unwrap();
    assert_eq!(
        values["podSecurityContext"]["runAsUser"].as_u64(),
        Some(65532),
        "the chart runs the pod as the image's user"
    );
    assert_eq!(
        values["securityContext"]["capabilities"]["drop"],
        serde_yaml::to_value(["ALL"]).unwrap(),
        "the chart drops every capability"
    );

    // The Dockerfile builds the same layout.
    let stage = dockerfile_final_stage();
    let has = |line: &str| stage.iter().any(|l| l == line);
    assert!(has("FROM scratch"), "{stage:?}");
    assert!(has("USER 65532:65532"), "{stage:?}");
    assert!(has("ENTRYPOINT [\"/customer-operator\"]"), "{stage:?}");
    assert!(has("CMD [\"run\"]"), "{stage:?}");
    let copied: BTreeSet<String> = stage
        .iter()
        .filter(|l| l.starts_with("COPY "))
        .filter_map(|l| l.split_whitespace().last())
        .map(|d| d.trim_start_matches('/').to_string())
        .collect();
    assert_eq!(copied, expected, "the Dockerfile's files");

    // The bill of materials.
    let sbom: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("sbom.spdx.json")).unwrap())
            .expect("SPDX JSON");
    assert_eq!(sbom["spdxVersion"], "SPDX-2.3");
    let packages = sbom["packages"].as_array().expect("packages");
    let purl = |p: &Value| {
        p["externalRefs"][0]["referenceLocator"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let crates: BTreeSet<(String, String)> = packages
        .iter()
        .filter(|p| purl(p).starts_with("pkg:cargo/"))
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["versionInfo"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let locked = locked_crates();
    let unlocked: Vec<_> = crates.difference(&locked).collect();
    assert!(
        unlocked.is_empty(),
        "crates not in Cargo.lock: {unlocked:?}"
    );
    let names: BTreeSet<&str> = crates.iter().map(|(n, _)| n.as_str()).collect();
    for linked in [
        "customer-operator",
        "kube-client",
        "kube-runtime",
        "k8s-openapi",
        "tokio",
        "rustls",
        "ring",
        "serde",
    ] {
        assert!(names.contains(linked), "{linked} missing from {names:?}");
    }
    for not_linked in ["proptest", "kube-cel", "cc"] {
        assert!(
            !names.contains(not_linked),
            "{not_linked} (a dev or build dependency) is not in the image"
        );
    }
    let roots_version = run("dpkg-query", &["-W", "-f=${Version}", "ca-certificates"]);
    assert!(
        packages
            .iter()
            .any(|p| purl(p) == format!("pkg:deb/debian/ca-certificates@{roots_version}?arch=all")),
        "the CA roots' Debian package"
    );
    assert!(
        packages
            .iter()
            .all(|p| p["licenseDeclared"].as_str().is_some_and(|l| !l.is_empty())),
        "every package has a licence entry"
    );
}
