//! The README's health checks, read from README.md itself, against Customers in every
//! state whose status the operator's own status code computes
//! (`controller::status::compute`): the Argo CD checks in Lua with a real Lua 5.1
//! interpreter (Argo CD runs them with gopher-lua, a Lua 5.1; `scripts/test.sh`
//! installs Debian's `lua5.1`), and the Flux `healthCheckExprs` with the CEL engine the
//! CRD tests use (the `cel` crate of kube-cel), optional syntax on as in cel-go.

use std::io::Write;
use std::process::{Command, Stdio};

use customer_operator::api::{CustomerStatus, NamespaceStatus};
use customer_operator::controller::status::{
    DeletionHold, Observed, Outcome, ReadyReason, compute,
};
use customer_operator::error::{Problem, Reason};
use k8s_openapi::jiff::Timestamp;
use kube_cel::cel;
use serde_json::{Value, json};

const README: &str = include_str!("../../README.md");

/// The fenced yaml blocks of the README's "Argo CD and Flux health" section.
fn health_blocks() -> Vec<String> {
    let section = README
        .split("\n## Argo CD and Flux health\n")
        .nth(1)
        .expect("the README has the section")
        .split("\n## ")
        .next()
        .unwrap();
    section
        .split("```yaml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap().to_string())
        .collect()
}

/// The Lua of one `resource.customizations.health.<key>: |` entry, dedented.
fn lua_of(key: &str) -> String {
    let block = &health_blocks()[0];
    let head = format!("resource.customizations.health.{key}: |\n");
    let body = block.split(&head).nth(1).expect("the key is in the block");
    let lines: Vec<&str> = body
        .lines()
        .take_while(|l| l.starts_with("    ") || l.trim().is_empty())
        .collect();
    lines
        .iter()
        .map(|l| l.get(4..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `current` and `failed` expressions of the Flux example.
fn flux_expressions() -> (String, String) {
    let block = &health_blocks()[1];
    let field = |name: &str| {
        block
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("the Flux example has {name}"))
            .to_string()
    };
    (field("current"), field("failed"))
}

/// A JSON value as a Lua literal, as Argo CD hands objects to health checks: objects as
/// tables, arrays as sequences from 1, null as nil.
fn lua_literal(value: &Value) -> String {
    match value {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => lua_string(s),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(lua_literal).collect();
            format!("{{{}}}", items.join(", "))
        }
        Value::Object(map) => {
            let fields: Vec<String> = map
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("[{}] = {}", lua_string(k), lua_literal(v)))
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
    }
}

fn lua_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\{:03}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Runs a health check on `object` with lua5.1: (status, message).
fn argo_health(check: &str, object: &Value) -> (String, String) {
    let program = format!(
        "local function check(obj)\n{check}\nend\nlocal hs = check({})\nio.write(hs.status, \"\\n\", hs.message or \"\")\n",
        lua_literal(object)
    );
    let mut lua = Command::new("lua5.1")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("lua5.1 runs (Debian package lua5.1: scripts/control-plane.sh test-deps)");
    lua.stdin
        .take()
        .unwrap()
        .write_all(program.as_bytes())
        .unwrap();
    let out = lua.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "lua: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (status, message) = text.split_once('\n').unwrap_or((&text, ""));
    (status.to_string(), message.to_string())
}

/// Evaluates a Flux expression on `object`, its top-level fields as variables (an
/// absent one as an empty map).
fn flux(expression: &str, object: &Value) -> bool {
    let expr = cel::parser::Parser::default()
        .enable_optional_syntax(true)
        .parse(expression)
        .unwrap_or_else(|e| panic!("{expression}: {e:?}"));
    let mut context = cel::Context::default();
    for name in ["apiVersion", "kind", "metadata", "spec", "status"] {
        let value = object.get(name).cloned().unwrap_or_else(|| json!({}));
        context.add_variable(name, value).unwrap();
    }
    match cel::Value::resolve(&expr, &context) {
        Ok(cel::Value::Bool(b)) => b,
        other => panic!("{expression} on {object}: {other:?}"),
    }
}

/// Flux's verdict: current, failed or in progress.
fn flux_health(object: &Value) -> &'static str {
    let (current, failed) = flux_expressions();
    match (flux(&current, object), flux(&failed, object)) {
        (true, false) => "current",
        (false, true) => "failed",
        (false, false) => "in progress",
        (true, true) => panic!("both current and failed: {object}"),
    }
}

fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap()
}

fn active() -> Vec<NamespaceStatus> {
    vec![NamespaceStatus {
        name: "nova".into(),
        phase: "Active".into(),
    }]
}

/// The status the operator writes for `outcome` at `generation`, on top of `old`.
fn status(old: Option<&CustomerStatus>, generation: i64, outcome: Outcome) -> CustomerStatus {
    compute(old, Some(generation), "all", None, &outcome, now())
}

fn applied(change: impl FnOnce(&mut Observed)) -> Outcome {
    let mut observed = Observed {
        namespaces: active(),
        ..Default::default()
    };
    change(&mut observed);
    Outcome::Applied(observed)
}

fn customer(generation: i64, status: Option<CustomerStatus>) -> Value {
    let mut object = json!({
        "apiVersion": "customers.dev/v1alpha1", "kind": "Customer",
        "metadata": {"name": "nova", "generation": generation},
        "spec": {"displayName": "Nova", "contactEmail": "ops@nova.example"}
    });
    if let Some(status) = status {
        object["status"] = serde_json::to_value(status).unwrap();
    }
    object
}

/// The README's bullet list, state by state: (state, object, Argo CD, Flux).
fn states() -> Vec<(&'static str, Value, &'static str, &'static str)> {
    let ready = status(None, 1, applied(|_| {}));
    let refused = status(
        Some(&ready),
        2,
        Outcome::Invalid(vec![Problem::new(
            Reason::UnknownGroup,
            "spec.group",
            "no CustomerGroup \"nope\"",
        )]),
    );
    vec![
        (
            "Ready for the current generation",
            customer(1, Some(ready.clone())),
            "Healthy",
            "current",
        ),
        (
            "no status yet",
            customer(1, None),
            "Progressing",
            "in progress",
        ),
        (
            "Ready for an older generation",
            customer(2, Some(ready.clone())),
            "Progressing",
            "in progress",
        ),
        (
            "namespaces pending",
            customer(
                1,
                Some(status(
                    None,
                    1,
                    applied(|o| o.namespaces[0].phase = "Missing".into()),
                )),
            ),
            "Progressing",
            "in progress",
        ),
        (
            "connections pending",
            customer(
                1,
                Some(status(
                    None,
                    1,
                    applied(|o| o.waiting_peers = vec!["Customer vega".into()]),
                )),
            ),
            "Progressing",
            "in progress",
        ),
        (
            "terminating",
            customer(
                1,
                Some(status(
                    Some(&ready),
                    1,
                    Outcome::Terminating("waiting for nova".into()),
                )),
            ),
            "Progressing",
            "in progress",
        ),
        (
            "refused spec (UnknownGroup)",
            customer(2, Some(refused)),
            "Degraded",
            "failed",
        ),
        (
            "conflict",
            customer(
                1,
                Some(status(
                    None,
                    1,
                    applied(|o| {
                        o.namespaces[0].phase = "Conflict".into();
                        o.conflicts = vec!["nova (Customer vega)".into()];
                    }),
                )),
            ),
            "Degraded",
            "failed",
        ),
        (
            "deletion blocked",
            customer(
                1,
                Some(status(
                    Some(&ready),
                    1,
                    Outcome::DeletionBlocked(
                        active(),
                        DeletionHold {
                            protection: true,
                            freeze: None,
                        },
                    ),
                )),
            ),
            "Degraded",
            "failed",
        ),
        (
            "an object the apiserver refused",
            customer(
                1,
                Some(status(
                    Some(&ready),
                    1,
                    Outcome::Refused("RoleBinding nova/customer-admins: no".into()),
                )),
            ),
            "Degraded",
            "failed",
        ),
    ]
}

#[test]
fn the_readme_health_checks_judge_every_customer_state_as_the_readme_says() {
    let check = lua_of("customers.dev_Customer");
    for (state, object, argo, flux) in states() {
        let (status, message) = argo_health(&check, &object);
        assert_eq!(status, argo, "Argo CD, {state}: {message}");
        let ready = object["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"));
        if let Some(ready) =
            ready.filter(|r| r["observedGeneration"] == object["metadata"]["generation"])
        {
            assert_eq!(
                message,
                ready["message"].as_str().unwrap(),
                "Argo CD message, {state}"
            );
        }
        assert_eq!(flux_health(&object), flux, "Flux, {state}");
    }
}

#[test]
fn the_states_cover_every_ready_reason_the_operator_writes_for_progress_or_failure() {
    let reasons: Vec<String> = states()
        .iter()
        .filter_map(|(_, o, _, _)| {
            let c = o["status"]["conditions"].as_array()?;
            let ready = c.iter().find(|c| c["type"] == "Ready")?;
            Some(ready["reason"].as_str()?.to_string())
        })
        .collect();
    for reason in [
        ReadyReason::Reconciled,
        ReadyReason::NamespacesPending,
        ReadyReason::ConnectionsPending,
        ReadyReason::Terminating,
        ReadyReason::Conflict,
        ReadyReason::DeletionBlocked,
        ReadyReason::ApplyRefused,
    ] {
        assert!(
            reasons.contains(&reason.as_str().to_string()),
            "{reason:?} not among {reasons:?}"
        );
    }
    assert!(reasons.contains(&Reason::UnknownGroup.as_str().to_string()));
}

#[test]
fn the_readme_group_health_check_is_healthy_only_when_ready() {
    let check = lua_of("customers.dev_CustomerGroup");
    let group = |status: Value| {
        json!({"apiVersion": "customers.dev/v1alpha1", "kind": "CustomerGroup",
               "metadata": {"name": "g", "generation": 1}, "status": status})
    };
    let condition = |status: &str| {
        json!({"conditions": [{"type": "Ready", "status": status, "reason": "Reconciled",
                               "message": "3 members", "observedGeneration": 1,
                               "lastTransitionTime": "2027-01-15T08:00:00Z"}]})
    };
    assert_eq!(
        argo_health(&check, &group(condition("True"))),
        ("Healthy".into(), "3 members".into())
    );
    assert_eq!(
        argo_health(&check, &group(condition("False"))).0,
        "Progressing"
    );
    assert_eq!(argo_health(&check, &group(json!({}))).0, "Progressing");
    // A message with quotes, backslashes and a newline reaches Lua unchanged.
    let mut tricky = condition("True");
    tricky["conditions"][0]["message"] = json!("say \"hi\" \\ then\nmore");
    assert_eq!(
        argo_health(&check, &group(tricky)).1,
        "say \"hi\" \\ then\nmore"
    );
}
