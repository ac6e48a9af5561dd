//! The binary's `verify` on files: the examples pass, a broad foreign policy fails naming
//! itself, JSON output, render output as input, bad settings.

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_customer-operator"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("KUBECONFIG")
        .output()
        .expect("binary runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn examples_verify_and_print_the_matrix() {
    let out = run(&["verify", "-f", "examples/"]);
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for part in [
        "Reachability (row connects to column)",
        "Group zones (allowWithinGroup):\n  space-industry: astral-voyage, orbital-freight",
        "galactic-holdings -> astral-voyage: TCP 443 declared (allowFrom customer galactic-holdings); open: TCP 443",
        "Undeclared paths: none",
    ] {
        assert!(text.contains(part), "{part:?} not in\n{text}");
    }
    // The grid: galactic-holdings (row 3) reaches astral-voyage (column 1) as declared,
    // comet-coffee (row 2) meteor-mail (column 6), customers of the same partner;
    // quiet-vault (row 9) reaches no one.
    assert_eq!(row(&text, "galactic-holdings"), "+ . = . . . . . .");
    assert_eq!(row(&text, "comet-coffee"), ". = . . . + . . .");
    assert_eq!(row(&text, "quiet-vault"), ". . . . . . . . =");
}

/// The cells of a customer's row of the grid.
fn row(text: &str, name: &str) -> String {
    text.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(name) && !l.contains(','))
        .unwrap_or_else(|| panic!("no row {name} in\n{text}"))
        .split_whitespace()
        .skip(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The examples with a foreign policy that admits everyone into nova-bakery.
const BROAD: &[&str] = &[
    "verify",
    "-f",
    "examples/",
    "-f",
    "tests/fixtures/verify/broad-allow.yaml",
];

#[test]
fn a_broad_allow_policy_fails_naming_it() {
    let out = run(BROAD);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Undeclared paths: 11"), "{text}");
    assert!(
        text.contains(
            "admitted by nova-bakery/allow-everything ingress rule 1 (peer every source; all ports)"
        ),
        "{text}"
    );
    // nova-bakery (column 7) admits everyone; their own egress still holds today.
    assert_eq!(row(&text, "quiet-vault"), ". . . . . . ? . =");
    assert_eq!(row(&text, "nova-bakery"), ". . . . . . = . .");
}

#[test]
fn json_output() {
    let out = run(&[BROAD, &["--output", "json"]].concat());
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["customers"].as_array().unwrap().len(), 9);
    let undeclared = report["undeclared"].as_array().unwrap();
    assert_eq!(undeclared.len(), 11);
    assert_eq!(undeclared[0]["to"], "nova-bakery");
    assert_eq!(undeclared[0]["ports"], "all ports");
    assert_eq!(undeclared[0]["reachable"], "none");
    assert!(
        undeclared[0]["admittedBy"][0]
            .as_str()
            .unwrap()
            .starts_with("nova-bakery/allow-everything")
    );
    let link = report["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["from"] == "galactic-holdings" && l["to"] == "astral-voyage")
        .unwrap();
    assert_eq!(link["reachable"], "TCP 443");
}

#[test]
fn render_output_with_its_customers_verifies_alike() {
    let rendered = run(&["render", "-f", "examples/"]);
    assert!(rendered.status.success());
    let dir = std::env::temp_dir().join(format!("verify-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rendered.yaml");
    std::fs::write(&file, &rendered.stdout).unwrap();
    let path = file.to_str().unwrap();

    let with_customers = run(&["verify", "-f", "examples/", "-f", path]);
    assert!(
        with_customers.status.success(),
        "{}",
        stdout(&with_customers)
    );
    assert_eq!(
        stdout(&with_customers),
        stdout(&run(&["verify", "-f", "examples/"]))
    );

    // Render output alone: the same matrix, but nothing is declared, so the declared
    // connections are reported.
    let alone = run(&["verify", "-f", path]);
    let text = stdout(&alone);
    assert_eq!(alone.status.code(), Some(1), "{text}");
    assert!(
        text.contains("note: no Customer in the input: nothing is declared"),
        "{text}"
    );
    assert!(
        text.contains("galactic-holdings -> astral-voyage on TCP 443"),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_bad_pod_cidr_is_an_error() {
    let out = run(&["verify", "-f", "examples/", "--pod-cidrs", "10.0.0/8"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim(), "error: pod CIDRs: \"10.0.0/8\" is not a CIDR");
}

#[test]
fn an_allow_all_policy_inside_a_list_counts_as_the_plain_document() {
    let plain = run(BROAD);
    assert_eq!(plain.status.code(), Some(1));
    let plain_text = stdout(&plain);
    assert!(plain_text.contains("Undeclared paths: 11"), "{plain_text}");
    // As `kubectl get -o yaml` writes it (kind: List), and as the API's
    // NetworkPolicyList in JSON (`kubectl get -o json`, items without kind).
    for list in [
        "tests/fixtures/verify/broad-allow-list.yaml",
        "tests/fixtures/verify/broad-allow-list.json",
    ] {
        let out = run(&["verify", "-f", "examples/", "-f", list]);
        assert_eq!(out.status.code(), Some(1), "{list}");
        assert_eq!(stdout(&out), plain_text, "{list}");
    }
}

#[test]
fn every_unusable_document_is_reported_with_exit_2() {
    let out = run(&[
        "verify",
        "-f",
        "examples/",
        "-f",
        "tests/fixtures/unusable/documents.yaml",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    let file = "error: tests/fixtures/unusable/documents.yaml:";
    for part in [
        "Customer/old-version: apiVersion \"customers.dev/v1beta1\"",
        "Customers/plural: customers.dev has no kind \"Customers\"",
        "NetworkPolicy/ancient: apiVersion \"extensions/v1beta1\"",
        "NetworkPolicy/typo: unknown field spec.ingres",
        "document 5: no apiVersion or no kind",
        "NetworkPolicy/nova-bakery/twice: given twice",
    ] {
        assert!(
            err.contains(&format!("{file} {part}")),
            "{part:?} not in\n{err}"
        );
    }
    assert_eq!(
        err.lines().count(),
        6,
        "one line each, the Deployment skipped:\n{err}"
    );
}

#[test]
fn a_policy_kind_the_evaluator_does_not_know_is_refused() {
    let out = run(&[
        "verify",
        "-f",
        "examples/",
        "-f",
        "tests/fixtures/unusable/admin-policy.yaml",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("AdminNetworkPolicy/pass-everything (policy.networking.k8s.io/v1alpha1): verify evaluates networking.k8s.io/v1 NetworkPolicies only"),
        "{err}"
    );
}

#[test]
fn a_namespace_collision_is_refused() {
    let out = run(&["verify", "-f", "tests/fixtures/unusable/collision.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("Customer/a-b: namespace a-b-c is asked for by Customer a too"),
        "{err}"
    );
}

/// The NAMESPACES column of a customer in the table.
fn namespaces_of(text: &str, name: &str) -> String {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .split_whitespace()
        .skip(3)
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn a_lookalike_namespace_is_not_the_customers() {
    let out = run(&[
        "verify",
        "-f",
        "examples/",
        "-f",
        "tests/fixtures/verify/lookalike.yaml",
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(namespaces_of(&text, "nova-bakery"), "nova-bakery");
    assert!(text.contains("Undeclared paths: none"), "{text}");
    assert!(
        text.contains(
            "note: namespace squat is labelled customers.dev/customer=nova-bakery but that Customer does not hold it"
        ),
        "{text}"
    );
}

#[test]
fn with_uids_ownership_is_by_uid() {
    // As `kubectl get -o yaml` of a cluster gives it: the Customer with its uid, its
    // namespace owned by that uid, and a look-alike whose ownerReference names the
    // Customer with another uid.
    let owner = |uid: &str| {
        serde_json::json!([{"apiVersion": "customers.dev/v1alpha1", "kind": "Customer",
            "name": "nova-bakery", "uid": uid, "controller": true}])
    };
    let namespace = |name: &str, uid: &str| {
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": name, "ownerReferences": owner(uid),
            "labels": {"customers.dev/customer": "nova-bakery", "customers.dev/group": "all",
                       "kubernetes.io/metadata.name": name}}})
    };
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "customers.dev/v1alpha1", "kind": "Customer",
         "metadata": {"name": "nova-bakery", "uid": "0b5e-real"},
         "spec": {"displayName": "Nova Bakery", "contactEmail": "it@nova-bakery.example"}},
        namespace("nova-bakery", "0b5e-real"),
        namespace("nova-bakery-copy", "0b5e-forged"),
    ]});
    let dir = std::env::temp_dir().join(format!("verify-uid-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("cluster.json");
    std::fs::write(&file, serde_json::to_string(&list).unwrap()).unwrap();
    let out = run(&["verify", "-f", file.to_str().unwrap(), "--output", "json"]);
    std::fs::remove_dir_all(&dir).unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(
        report["customers"][0]["namespaces"],
        serde_json::json!(["nova-bakery"])
    );
    assert!(
        report["notes"][0]
            .as_str()
            .unwrap()
            .starts_with("namespace nova-bakery-copy is labelled"),
        "{report}"
    );
}
