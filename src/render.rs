//! `customer-operator render`: reads Customers and CustomerGroups from files and prints,
//! offline, every object the operator would create for them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::ResourceExt;

use crate::api::{
    API_VERSION, ClusterNetworkPolicy, Customer, CustomerClaim, CustomerGroup, CustomerUsers,
    Partner,
};
use crate::desired::{self, Desired, MapDirectory};
use crate::error::{Error, Result};
use crate::settings::Settings;

/// The Customers and CustomerGroups read from files, with the file each came from, and
/// the Namespaces and NetworkPolicies there (as `render` prints them), for `verify`.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// Customers and their files.
    pub customers: Vec<(PathBuf, Customer)>,
    /// Groups and their files.
    pub groups: Vec<(PathBuf, CustomerGroup)>,
    /// Namespaces (`v1`) and their files.
    pub namespaces: Vec<(PathBuf, Namespace)>,
    /// NetworkPolicies (`networking.k8s.io/v1`) and their files.
    pub network_policies: Vec<(PathBuf, NetworkPolicy)>,
    /// ClusterNetworkPolicies (`policy.networking.k8s.io/v1alpha2`) and their files.
    pub cluster_policies: Vec<(PathBuf, ClusterNetworkPolicy)>,
    /// Policies of other kinds (AdminNetworkPolicy, Calico, Cilium), which `verify`
    /// cannot evaluate, and their files.
    pub unevaluated: Vec<(PathBuf, String)>,
    /// Partners and their files.
    pub partners: Vec<(PathBuf, Partner)>,
    /// CustomerClaims and their files; the Customer each asks for is among `customers`.
    pub claims: Vec<(PathBuf, CustomerClaim)>,
    /// CustomerUsers (with their namespaces) and their files.
    pub users: Vec<(PathBuf, CustomerUsers)>,
}

impl Inputs {
    /// A directory of the Customers and groups read.
    pub fn directory(&self) -> MapDirectory {
        let mut dir = MapDirectory::new(
            self.customers.iter().map(|(_, c)| c.clone()),
            self.groups.iter().map(|(_, g)| g.clone()),
        );
        dir.partners = self
            .partners
            .iter()
            .map(|(_, p)| (p.name_any(), std::sync::Arc::new(p.clone())))
            .collect();
        dir.users = self
            .users
            .iter()
            .map(|(_, u)| std::sync::Arc::new(u.clone()))
            .collect();
        dir
    }

    /// Adds the Customer each claim asks for, as the operator would make it. A claim
    /// whose namespace is neither a partner's (a Partner in the files) nor a customer's
    /// is an error naming it.
    fn add_claimed_customers(&mut self, problems: &mut Vec<Error>) {
        let dir = self.directory();
        for (file, claim) in &self.claims {
            let namespace = claim.namespace().unwrap_or_default();
            match desired::selfservice::requester(&namespace, &dir) {
                Some(requester) => self.customers.push((
                    file.clone(),
                    desired::selfservice::customer_for(claim, &requester),
                )),
                None => problems.push(Error::Parse {
                    path: file.display().to_string(),
                    object: format!("CustomerClaim/{namespace}/{}", claim.name_any()),
                    message: format!(
                        "namespace {namespace:?} is neither the namespace of a Partner in the files nor one of a Customer's: the claim asks for nothing"
                    ),
                }),
            }
        }
    }

    /// Every claim asking for more than its partner or parent allows, as errors.
    fn claims_outside_bounds(&self, dir: &MapDirectory, settings: &Settings) -> Vec<Error> {
        self.claims
            .iter()
            .filter_map(|(file, claim)| {
                let namespace = claim.namespace().unwrap_or_default();
                let requester = desired::selfservice::requester(&namespace, dir)?;
                let problems = desired::selfservice::check_claim(claim, &requester, dir, settings);
                (!problems.is_empty()).then(|| Error::Parse {
                    path: file.display().to_string(),
                    object: format!("CustomerClaim/{namespace}/{}", claim.name_any()),
                    message: problems
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join("; "),
                })
            })
            .collect()
    }

    /// Every object for every Customer read, in file order. Every invalid Customer is an
    /// error naming its file and fields, and so is every namespace two Customers ask
    /// for (offline nothing says which of them holds it).
    pub fn desired(&self, settings: &Settings) -> Result<Vec<(&Customer, Desired)>> {
        let dir = self.directory();
        let mut problems = self.claims_outside_bounds(&dir, settings);
        let mut out = Vec::new();
        for (file, customer) in &self.customers {
            let problem = |message: String| Error::Parse {
                path: file.display().to_string(),
                object: format!("Customer/{}", customer.name_any()),
                message,
            };
            match desired::desired(customer, &dir, settings) {
                Ok(desired) => {
                    problems.extend(desired.conflicts.iter().map(|c| {
                        problem(format!(
                            "namespace {} is asked for by Customer {} too (a namespace-name collision); rename a namespace of one of them",
                            c.namespace, c.holder
                        ))
                    }));
                    out.push((customer, desired));
                }
                Err(e) => problems.push(problem(e.to_string())),
            }
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(Error::Unusable(problems))
        }
    }
}

/// The input files under `path`: the file itself, or every `.yaml`, `.yml` and `.json`
/// below a directory, in name order.
pub fn yaml_files(path: &Path) -> Result<Vec<PathBuf>> {
    let read_err = |source| Error::Read {
        path: path.display().to_string(),
        source,
    };
    if !path.is_dir() {
        std::fs::metadata(path).map_err(read_err)?;
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(read_err)? {
        let entry = entry.map_err(read_err)?.path();
        if entry.is_dir() {
            files.extend(yaml_files(&entry)?);
        } else if matches!(
            entry.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            files.push(entry);
        }
    }
    files.sort();
    Ok(files)
}

/// Reads every Customer, CustomerGroup, Namespace, NetworkPolicy and ClusterNetworkPolicy
/// (as well as Partners, CustomerClaims and CustomerUsers) in these files or
/// directories, also inside `kind: List` documents (what `kubectl get -o yaml` and `-o
/// json` write). Documents of kinds neither tool uses are skipped. Every document that
/// cannot be used is an error naming its file and object, all of them at once: a
/// malformed one, one without apiVersion or kind, a kind these tools read under
/// another apiVersion, a field kubectl would refuse, the same object twice.
pub fn read_inputs(paths: &[PathBuf]) -> Result<Inputs> {
    let mut inputs = Inputs::default();
    let mut problems = Vec::new();
    for path in paths {
        for file in yaml_files(path)? {
            let text = std::fs::read_to_string(&file).map_err(|source| Error::Read {
                path: file.display().to_string(),
                source,
            })?;
            read_documents(&file, &text, &mut inputs, &mut problems);
        }
    }
    inputs.add_claimed_customers(&mut problems);
    problems.extend(duplicates(&inputs));
    if problems.is_empty() {
        Ok(inputs)
    } else {
        Err(Error::Unusable(problems))
    }
}

/// The kinds `render` and `verify` read, under the one apiVersion each.
const KNOWN: &[(&str, &str)] = &[
    (API_VERSION, "Customer"),
    (API_VERSION, "CustomerGroup"),
    (API_VERSION, "Partner"),
    (API_VERSION, "CustomerClaim"),
    (API_VERSION, "CustomerUsers"),
    ("v1", "Namespace"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("policy.networking.k8s.io/v1alpha2", "ClusterNetworkPolicy"),
];

/// API groups of network policy kinds other than `networking.k8s.io/v1` NetworkPolicy and
/// `policy.networking.k8s.io/v1alpha2` ClusterNetworkPolicy (AdminNetworkPolicy,
/// BaselineAdminNetworkPolicy, Calico, Cilium): they open or close paths the evaluator
/// does not know of.
const OTHER_POLICY_GROUPS: &[&str] = &[
    "policy.networking.k8s.io",
    "crd.projectcalico.org",
    "projectcalico.org",
    "cilium.io",
];

fn api_group(api_version: &str) -> &str {
    api_version
        .rsplit_once('/')
        .map(|(group, _)| group)
        .unwrap_or("")
}

fn read_documents(file: &Path, text: &str, inputs: &mut Inputs, problems: &mut Vec<Error>) {
    let path = file.display().to_string();
    let problem = |object: String, message: String| Error::Parse {
        path: path.clone(),
        object,
        message,
    };
    let documents: Vec<(String, std::result::Result<serde_json::Value, String>)> =
        if file.extension().and_then(|e| e.to_str()) == Some("json") {
            vec![(
                "the document".to_string(),
                serde_json::from_str(text).map_err(|e| e.to_string()),
            )]
        } else {
            split_documents(text)
                .into_iter()
                .enumerate()
                .map(|(i, d)| {
                    (
                        format!("document {}", i + 1),
                        serde_yaml::from_str(d).map_err(|e| e.to_string()),
                    )
                })
                .collect()
        };
    for (position, parsed) in documents {
        match parsed {
            Ok(serde_json::Value::Null) => {}
            Ok(value) => read_object(file, &position, value, inputs, problems),
            Err(message) => problems.push(problem(position, message)),
        }
    }
}

/// One document: a List is read item by item, a known kind is decoded, others skipped.
fn read_object(
    file: &Path,
    position: &str,
    value: serde_json::Value,
    inputs: &mut Inputs,
    problems: &mut Vec<Error>,
) {
    let path = file.display().to_string();
    let text =
        |v: &serde_json::Value, key: &str| v.get(key).and_then(|k| k.as_str()).map(str::to_string);
    let api_version = text(&value, "apiVersion").unwrap_or_default();
    let kind = text(&value, "kind").unwrap_or_default();
    let name = value
        .pointer("/metadata/name")
        .and_then(|n| n.as_str())
        .unwrap_or_default()
        .to_string();
    let object = if kind.is_empty() {
        position.to_string()
    } else {
        format!("{kind}/{name}")
    };
    let mut refuse = |message: String| {
        problems.push(Error::Parse {
            path: path.clone(),
            object: object.clone(),
            message,
        })
    };
    if !value.is_object() {
        return refuse("not a Kubernetes object (a mapping with apiVersion and kind)".into());
    }
    if api_version.is_empty() || kind.is_empty() {
        return refuse("no apiVersion or no kind: not a Kubernetes object".into());
    }
    // `kind: List` (kubectl), or `<Kind>List` (the API), whose items may then lack
    // their apiVersion and kind.
    let item_kind = kind.strip_suffix("List").filter(|k| !k.is_empty());
    if kind == "List" || item_kind.is_some_and(|k| KNOWN.iter().any(|(_, known)| *known == k)) {
        let Some(items) = value.get("items").and_then(|i| i.as_array()) else {
            return refuse("a List needs items (a list of objects)".into());
        };
        for (i, item) in items.iter().enumerate() {
            let mut item = item.clone();
            if let (Some(item_kind), Some(map)) = (item_kind, item.as_object_mut()) {
                map.entry("apiVersion")
                    .or_insert(api_version.clone().into());
                map.entry("kind").or_insert(item_kind.into());
            }
            read_object(
                file,
                &format!("{object} item {}", i + 1),
                item,
                inputs,
                problems,
            );
        }
        return;
    }
    let known = KNOWN
        .iter()
        .find(|(_, k)| *k == kind)
        .map(|(version, _)| *version);
    let group = api_group(&api_version);
    match known {
        Some(version) if version != api_version => {
            return refuse(format!(
                "apiVersion {api_version:?} is not the one render and verify read for {kind}: {version}"
            ));
        }
        Some(_) => {}
        None if group == "customers.dev" => {
            return refuse(format!(
                "customers.dev has no kind {kind:?} (Customer, CustomerGroup, Partner, CustomerClaim, CustomerUsers)"
            ));
        }
        None if OTHER_POLICY_GROUPS.contains(&group) && kind.contains("Policy") => {
            inputs
                .unevaluated
                .push((file.to_path_buf(), format!("{kind}/{name} ({api_version})")));
            return;
        }
        None => return,
    }
    let file = file.to_path_buf();
    let result = match kind.as_str() {
        "Customer" => decode(&value).map(|c| inputs.customers.push((file, c))),
        "CustomerGroup" => decode(&value).map(|g| inputs.groups.push((file, g))),
        "Partner" => decode(&value).map(|p| inputs.partners.push((file, p))),
        "CustomerClaim" => decode(&value).map(|c| inputs.claims.push((file, c))),
        "CustomerUsers" => decode(&value).map(|u| inputs.users.push((file, u))),
        "Namespace" => decode(&value).map(|n| inputs.namespaces.push((file, n))),
        "ClusterNetworkPolicy" => {
            // What a plugin reports (`kubectl get -o yaml` writes it) decides no traffic.
            let mut value = value.clone();
            if let Some(map) = value.as_object_mut() {
                map.remove("status");
            }
            decode(&value).map(|p| inputs.cluster_policies.push((file, p)))
        }
        _ => decode(&value).map(|p| inputs.network_policies.push((file, p))),
    };
    if let Err(message) = result {
        refuse(message);
    }
}

/// Decodes a document into its type: a field of the wrong type is an error naming it,
/// and so is a field the type does not have (kubectl's strict field validation refuses
/// those too), unless it is empty.
fn decode<T: serde::de::DeserializeOwned + serde::Serialize>(
    value: &serde_json::Value,
) -> std::result::Result<T, String> {
    // Through YAML text, so that an error names the path of the field.
    let text = serde_yaml::to_string(value).map_err(|e| e.to_string())?;
    let typed: T = serde_yaml::from_str(&text).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    let mut unknown = Vec::new();
    unknown_fields(value, &back, "", &mut unknown);
    if unknown.is_empty() {
        Ok(typed)
    } else {
        Err(format!(
            "unknown field{} {} (kubectl refuses unknown fields)",
            if unknown.len() == 1 { "" } else { "s" },
            unknown.join(", ")
        ))
    }
}

/// The paths of `input` that `decoded` (the same document read into its type and
/// written back) does not have. Empty values (null, "", false, [], {}) do not count:
/// the type may leave them out when it writes.
fn unknown_fields(
    input: &serde_json::Value,
    decoded: &serde_json::Value,
    path: &str,
    out: &mut Vec<String>,
) {
    use serde_json::Value;
    let empty = |v: &Value| match v {
        Value::Null | Value::Bool(false) => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Number(_) | Value::Bool(true) => false,
    };
    match (input, decoded) {
        (Value::Object(fields), Value::Object(known)) => {
            for (key, value) in fields {
                let at = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match known.get(key) {
                    Some(back) => unknown_fields(value, back, &at, out),
                    None if !empty(value) => out.push(at),
                    None => {}
                }
            }
        }
        (Value::Array(items), Value::Array(known)) if items.len() == known.len() => {
            for (i, (item, back)) in items.iter().zip(known).enumerate() {
                unknown_fields(item, back, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// The objects the files give more than once: the same kind, namespace and name.
fn duplicates(inputs: &Inputs) -> Vec<Error> {
    let mut seen: BTreeMap<String, &Path> = BTreeMap::new();
    let mut problems = Vec::new();
    let keys = inputs
        .customers
        .iter()
        .map(|(f, c)| (f, format!("Customer/{}", c.name_any())))
        .chain(
            inputs
                .groups
                .iter()
                .map(|(f, g)| (f, format!("CustomerGroup/{}", g.name_any()))),
        )
        .chain(
            inputs
                .namespaces
                .iter()
                .map(|(f, n)| (f, format!("Namespace/{}", n.name_any()))),
        )
        .chain(
            inputs
                .cluster_policies
                .iter()
                .map(|(f, p)| (f, format!("ClusterNetworkPolicy/{}", p.name_any()))),
        )
        .chain(inputs.network_policies.iter().map(|(f, p)| {
            (
                f,
                format!(
                    "NetworkPolicy/{}/{}",
                    p.namespace().unwrap_or_default(),
                    p.name_any()
                ),
            )
        }));
    for (file, key) in keys {
        if let Some(first) = seen.insert(key.clone(), file) {
            problems.push(Error::Parse {
                path: file.display().to_string(),
                object: key,
                message: format!(
                    "given twice (also in {}); which one counts is unclear, keep one",
                    first.display()
                ),
            });
        }
    }
    problems
}

/// Splits a multi-document YAML stream at its `---` lines.
fn split_documents(text: &str) -> Vec<&str> {
    let mut documents = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_end() == "---" || line.starts_with("--- ") {
            documents.push(&text[start..offset]);
            start = offset + line.len();
        }
        offset += line.len();
    }
    documents.push(&text[start..]);
    documents
        .into_iter()
        .filter(|d| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .collect()
}

/// Renders every object for every Customer in `inputs` as one multi-document YAML stream,
/// each customer's objects under a comment naming it. Invalid Customers and namespace
/// collisions stop the render with an error naming each file and field.
pub fn render(inputs: &Inputs, settings: &Settings) -> Result<String> {
    let mut out = String::new();
    for (_, partner) in &inputs.partners {
        out.push_str(&format!("# Partner {}\n", partner.name_any()));
        let namespace =
            serde_json::to_value(desired::selfservice::partner_namespace_object(partner))?;
        let binding = serde_json::to_value(desired::selfservice::partner_admins_binding(partner))?;
        for (kind, api_version, mut value) in [
            ("Namespace", "v1", namespace),
            ("RoleBinding", "rbac.authorization.k8s.io/v1", binding),
        ] {
            value["apiVersion"] = api_version.into();
            value["kind"] = kind.into();
            out.push_str("---\n");
            out.push_str(
                &serde_yaml::to_string(&value).map_err(|e| Error::Serialize(e.to_string()))?,
            );
        }
    }
    for (customer, desired) in inputs.desired(settings)? {
        out.push_str(&format!("# Customer {}\n", customer.name_any()));
        for value in desired.to_values()? {
            out.push_str("---\n");
            out.push_str(
                &serde_yaml::to_string(&value).map_err(|e| Error::Serialize(e.to_string()))?,
            );
        }
    }
    Ok(out)
}
