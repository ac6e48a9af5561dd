//! The CRDs in `crds/` are exactly what the types generate, and the CEL rules in them
//! behave as documented (checked with kube-cel, since the test apiserver predates CEL).

use customer_operator::api;
use kube_cel::Validator;
use serde_json::{Value, json};

const CRDS_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/crds/customers.dev.yaml");

#[test]
fn crds_dir_matches_generated() {
    let generated = api::crds_yaml();
    if std::env::var_os("UPDATE_CRDS").is_some() {
        std::fs::write(CRDS_FILE, &generated).unwrap();
    }
    let on_disk = std::fs::read_to_string(CRDS_FILE).unwrap();
    assert!(
        on_disk == generated,
        "crds/customers.dev.yaml is stale: run `cargo run -- crds > crds/customers.dev.yaml` \
         (or UPDATE_CRDS=1 cargo test --test crds)"
    );
}

fn schema_of(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Value {
    serde_json::to_value(
        &crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema,
    )
    .unwrap()
}

fn customer(spec: Value) -> Value {
    json!({"apiVersion": "customers.dev/v1alpha1", "kind": "Customer",
           "metadata": {"name": "astral-voyage"}, "spec": spec})
}

fn base_spec() -> Value {
    json!({"displayName": "Astral Voyage", "contactEmail": "ops@astral-voyage.example"})
}

fn errors(new: &Value, old: Option<&Value>) -> Vec<String> {
    let schema = schema_of(&api::customer_crd());
    match Validator::new().validate(&schema, new, old) {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .into_vec()
            .into_iter()
            .map(|e| format!("{}: {} [{:?}]", e.field_path, e.message, e.kind))
            .collect(),
    }
}

fn with_partner(name: &str, consultants: &[&str]) -> Value {
    let mut spec = base_spec();
    spec["partner"] = json!({
        "name": name,
        "securityConsultants": consultants.iter().map(|c| json!({"kind": "User", "name": c})).collect::<Vec<_>>()
    });
    customer(spec)
}

#[test]
fn cel_partner_change_must_rename_consultants() {
    let old = with_partner("acme", &["carol@acme.example"]);
    let kept = with_partner("globex", &["carol@acme.example"]);
    let errs = errors(&kept, Some(&old));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains("securityConsultants"), "{errs:?}");

    let renamed = with_partner("globex", &["gus@globex.example"]);
    assert!(errors(&renamed, Some(&old)).is_empty());
    let emptied = with_partner("globex", &[]);
    assert!(errors(&emptied, Some(&old)).is_empty());
    let same_partner_more = with_partner("acme", &["carol@acme.example", "dan@acme.example"]);
    assert!(errors(&same_partner_more, Some(&old)).is_empty());
    // On create there is no old object, so the transition rule does not apply.
    assert!(errors(&kept, None).is_empty());
}

#[test]
fn cel_service_account_subject_needs_namespace() {
    let mut spec = base_spec();
    spec["access"] = json!({"viewers": [{"kind": "ServiceAccount", "name": "dashboard"}]});
    let errs = errors(&customer(spec.clone()), None);
    assert!(
        errs.iter()
            .any(|e| e.contains("ServiceAccount subject needs a namespace")),
        "{errs:?}"
    );
    spec["access"]["viewers"][0]["namespace"] = json!("monitoring");
    let errs = errors(&customer(spec), None);
    assert!(errs.is_empty(), "{errs:?}");
}

#[test]
fn cel_allow_from_names_exactly_one_peer() {
    let mut spec = base_spec();
    spec["network"] = json!({"allowFrom": [{"customer": "a", "group": "b"}]});
    let errs = errors(&customer(spec.clone()), None);
    assert!(errs.iter().any(|e| e.contains("exactly one")), "{errs:?}");
    spec["network"] = json!({"allowFrom": [{"ports": [{"port": 80}]}]});
    assert!(!errors(&customer(spec.clone()), None).is_empty());
    spec["network"] =
        json!({"allowFrom": [{"group": "b", "ports": [{"port": 8000, "endPort": 8080}]}]});
    assert!(errors(&customer(spec.clone()), None).is_empty());
    spec["network"] =
        json!({"allowFrom": [{"group": "b", "ports": [{"port": 8080, "endPort": 80}]}]});
    let errs = errors(&customer(spec), None);
    assert!(errs.iter().any(|e| e.contains("endPort")), "{errs:?}");
}

#[test]
fn cel_display_name_is_not_blank_and_has_no_bidi_controls() {
    for bad in [
        "   ",
        "\t",
        "\u{3000}",
        "Acme\u{202E}evil",
        "\u{2066}Acme\u{2069}",
    ] {
        let mut spec = base_spec();
        spec["displayName"] = json!(bad);
        let errs = errors(&customer(spec), None);
        assert_eq!(errs.len(), 1, "{bad:?}: {errs:?}");
        assert!(errs[0].contains("displayName"), "{errs:?}");
    }
    for fine in [" Astral Voyage ", "Ärger & Söhne", "東京"] {
        let mut spec = base_spec();
        spec["displayName"] = json!(fine);
        assert!(errors(&customer(spec), None).is_empty(), "{fine:?}");
    }
}

#[test]
fn isolation_values_are_plain_words_in_every_yaml() {
    let schema = schema_of(&api::customer_crd());
    let values =
        &schema["properties"]["spec"]["properties"]["network"]["properties"]["isolation"]["enum"];
    assert_eq!(values, &json!(["Strict", "Standard", "None"]));
    let mut spec = base_spec();
    spec["network"] = json!({"isolation": "None"});
    assert!(errors(&customer(spec.clone()), None).is_empty());
    // A Customer stored with the former value still reads, as None.
    spec["network"] = json!({"isolation": "Off"});
    let stored: customer_operator::api::Customer = serde_json::from_value(customer(spec)).unwrap();
    assert_eq!(
        stored.spec.network.unwrap().isolation,
        Some(customer_operator::api::Isolation::None)
    );
}

#[test]
fn crd_shape_for_kubectl() {
    let crd = api::customer_crd();
    assert_eq!(crd.spec.scope, "Cluster");
    assert_eq!(crd.spec.names.short_names, Some(vec!["cust".to_string()]));
    assert_eq!(
        crd.spec.names.categories,
        Some(vec!["customers".to_string()])
    );
    let version = &crd.spec.versions[0];
    assert!(version.subresources.as_ref().unwrap().status.is_some());
    let columns: Vec<_> = version
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.name.to_uppercase())
        .collect();
    assert_eq!(
        columns,
        [
            "DISPLAY NAME",
            "GROUP",
            "PARTNER",
            "NAMESPACES",
            "READY",
            "AGE"
        ]
    );
    let schema = schema_of(&crd);
    assert_eq!(
        schema["properties"]["metadata"]["properties"]["name"]["maxLength"],
        40
    );
    let group = api::customer_group_crd();
    assert_eq!(group.spec.names.short_names, Some(vec!["cg".to_string()]));
}

/// Every field of both schemas has a description, so `kubectl explain` reads well.
#[test]
fn every_field_is_documented() {
    fn walk(path: &str, schema: &Value, missing: &mut Vec<String>) {
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (name, sub) in props {
                let p = format!("{path}.{name}");
                if p != ".metadata"
                    && p != ".metadata.name"
                    && p != ".apiVersion"
                    && p != ".kind"
                    && sub.get("description").is_none()
                {
                    missing.push(p.clone());
                }
                walk(&p, sub, missing);
            }
        }
        if let Some(items) = schema.get("items") {
            walk(&format!("{path}[]"), items, missing);
        }
    }
    for crd in [api::customer_crd(), api::customer_group_crd()] {
        let mut missing = Vec::new();
        walk("", &schema_of(&crd), &mut missing);
        assert!(
            missing.is_empty(),
            "{}: undocumented fields {missing:?}",
            crd.spec.names.kind
        );
    }
}

#[test]
fn cel_namespace_names_are_unique() {
    let mut spec = base_spec();
    spec["namespaces"] = json!([{"name": "app"}, {"name": "app"}]);
    let errs = errors(&customer(spec.clone()), None);
    assert!(errs.iter().any(|e| e.contains("only once")), "{errs:?}");
    spec["namespaces"] = json!([{"name": "app"}, {"name": ""}]);
    assert!(errors(&customer(spec), None).is_empty());
}

/// An unset field is absent, never null; quantities are strings the schema checks.
#[test]
fn schema_has_no_nulls_and_checks_quantities() {
    let full = api::crds_yaml();
    let schema = schema_of(&api::customer_crd());
    assert!(!full.contains("nullable"));
    assert!(!full.contains("x-kubernetes-int-or-string"));
    let hard = &schema["properties"]["spec"]["properties"]["quota"]["properties"]["hard"];
    assert_eq!(
        hard["additionalProperties"]["pattern"],
        api::QUANTITY_PATTERN
    );
}
