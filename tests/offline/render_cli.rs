//! The `customer-operator` binary: `render` on the examples and on broken input, `crds`.

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_customer-operator"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("binary runs")
}

#[test]
fn render_examples_prints_every_kind_for_every_customer() {
    let out = run(&["render", "-f", "examples/"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &serde_yaml::Value| !v.is_null())
        .collect();
    let count = |kind: &str| docs.iter().filter(|d| d["kind"] == kind).count();
    // nova-bakery, astral-voyage (2), orbital-freight, galactic-holdings, galactic-labs,
    // quiet-vault (2); the partner's namespace, and its claims' comet-coffee,
    // meteor-mail (2) and galactic-studio.
    assert_eq!(count("Namespace"), 13);
    assert!(count("NetworkPolicy") >= 8 * 3);
    assert!(count("RoleBinding") >= 8);
    assert_eq!(count("ResourceQuota"), 8, "the claims' quotas too");
    assert_eq!(count("LimitRange"), 5);
    for customer in [
        "nova-bakery",
        "astral-voyage",
        "orbital-freight",
        "galactic-holdings",
        "galactic-labs",
        "quiet-vault",
    ] {
        assert!(
            text.contains(&format!("# Customer {customer}\n")),
            "{customer}"
        );
    }
}

#[test]
fn render_with_argocd_projects_prints_one_app_project_per_customer() {
    let docs = |args: &[&str]| -> Vec<serde_yaml::Value> {
        let out = run(args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        serde_yaml::Deserializer::from_str(&text)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .filter(|v: &serde_yaml::Value| !v.is_null())
            .collect()
    };
    let projects = |docs: &[serde_yaml::Value]| -> Vec<serde_yaml::Value> {
        docs.iter()
            .filter(|d| d["kind"] == "AppProject")
            .cloned()
            .collect()
    };
    assert!(projects(&docs(&["render", "-f", "examples/"])).is_empty());
    let all = docs(&["render", "-f", "examples/", "--argocd-projects"]);
    let with = projects(&all);
    let customers: std::collections::BTreeSet<&str> = all
        .iter()
        .filter_map(|d| d["metadata"]["labels"]["customers.dev/customer"].as_str())
        .collect();
    assert_eq!(
        with.len(),
        customers.len(),
        "one per customer: {customers:?}"
    );
    let astral = with
        .iter()
        .find(|p| p["metadata"]["name"] == "astral-voyage")
        .expect("astral-voyage's project");
    assert_eq!(astral["metadata"]["namespace"], "argocd");
    let repos: Vec<&str> = astral["spec"]["sourceRepos"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    assert_eq!(
        repos,
        [
            "https://charts.space-industry.example",
            "https://git.astral-voyage.example/deploy/*"
        ],
        "the group's and its own"
    );
}

#[test]
fn broken_input_gives_a_line_per_customer_naming_file_object_and_field() {
    let cases = [
        ("bad-email.yaml", "Customer/bad-email", "spec.contactEmail"),
        (
            "bad-enum.yaml",
            "Customer/bad-enum",
            "spec.network.isolation",
        ),
        ("bad-name.yaml", "Customer/Astral Voyage", "metadata.name"),
        ("missing-field.yaml", "Customer/no-email", "contactEmail"),
        ("parent-cycle.yaml", "Customer/chicken", "spec.parent"),
        (
            "reserved-label.yaml",
            "Customer/sneaky",
            "spec.namespaces[0].labels",
        ),
        (
            "reserved-namespace.yaml",
            "Customer/kube",
            "spec.namespaces",
        ),
        ("unknown-group.yaml", "Customer/lost", "spec.group"),
    ];
    for (file, object, field) in cases {
        let path = format!("tests/fixtures/broken/{file}");
        let out = run(&["render", "-f", &path]);
        assert_eq!(out.status.code(), Some(2), "{file} rendered");
        assert!(out.stdout.is_empty(), "{file} printed objects");
        let err = String::from_utf8(out.stderr).unwrap();
        // One line per refused Customer: both of a cycle.
        let refused = if file == "parent-cycle.yaml" { 2 } else { 1 };
        assert_eq!(err.lines().count(), refused, "{err}");
        for part in [path.as_str(), object, field] {
            assert!(err.contains(part), "{file}: {part:?} not in {err:?}");
        }
    }
}

#[test]
fn missing_file_is_an_error() {
    let out = run(&["render", "-f", "no/such/file.yaml"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no/such/file.yaml"));
}

#[test]
fn crds_command_prints_the_crds_file() {
    let out = run(&["crds"]);
    assert!(out.status.success());
    let on_disk = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crds/customers.dev.yaml"
    ))
    .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), on_disk);
}

#[test]
fn render_reads_lists_and_json_and_reports_every_unusable_document() {
    // The examples' Customers inside a List, in JSON, render exactly as the files do.
    let plain = run(&["render", "-f", "examples/plain-customer.yaml"]);
    assert!(plain.status.success());
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/plain-customer.yaml"
    ))
    .unwrap();
    let items: Vec<serde_json::Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &serde_json::Value| !v.is_null())
        .collect();
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
    let dir = std::env::temp_dir().join(format!("render-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("customers.json");
    std::fs::write(&file, serde_json::to_string_pretty(&list).unwrap()).unwrap();
    let from_list = run(&["render", "-f", dir.to_str().unwrap()]);
    assert!(
        from_list.status.success(),
        "{}",
        String::from_utf8_lossy(&from_list.stderr)
    );
    assert_eq!(from_list.stdout, plain.stdout);
    std::fs::remove_dir_all(&dir).unwrap();

    // Documents it cannot use, every one of them; then, once the documents are usable,
    // every Customer it cannot build (here a namespace two Customers ask for).
    for (path, parts) in [
        (
            "tests/fixtures/unusable/",
            &[
                "documents.yaml: Customer/old-version:",
                "documents.yaml: NetworkPolicy/typo: unknown field spec.ingres",
                "documents.yaml: NetworkPolicy/nova-bakery/twice: given twice",
            ][..],
        ),
        (
            "tests/fixtures/unusable/collision.yaml",
            &["collision.yaml: Customer/a-b: namespace a-b-c is asked for by Customer a too"],
        ),
    ] {
        let out = run(&["render", "-f", path]);
        assert_eq!(out.status.code(), Some(2), "{path}");
        assert!(out.stdout.is_empty(), "{path}");
        let err = String::from_utf8(out.stderr).unwrap();
        for part in parts {
            assert!(err.contains(part), "{part:?} not in\n{err}");
        }
    }
}
