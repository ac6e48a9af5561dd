//! `customer-operator render`: reads Customers and CustomerGroups from files and prints,
//! offline, every object the operator would create for them.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::ResourceExt;
use serde::Deserialize;

use crate::api::{API_VERSION, Customer, CustomerGroup};
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
}

impl Inputs {
    /// A directory of the Customers and groups read.
    pub fn directory(&self) -> MapDirectory {
        MapDirectory::new(
            self.customers.iter().map(|(_, c)| c.clone()),
            self.groups.iter().map(|(_, g)| g.clone()),
        )
    }

    /// Every object for every Customer read, in file order. The first invalid Customer
    /// is an error naming its file and fields.
    pub fn desired(&self, settings: &Settings) -> Result<Vec<(&Customer, Desired)>> {
        let dir = self.directory();
        self.customers
            .iter()
            .map(|(file, customer)| {
                let desired =
                    desired::desired(customer, &dir, settings).map_err(|e| Error::Parse {
                        path: file.display().to_string(),
                        object: format!("Customer/{}", customer.name_any()),
                        message: e.to_string(),
                    })?;
                Ok((customer, desired))
            })
            .collect()
    }
}

/// The YAML files under `path`: the file itself, or every `.yaml`/`.yml` below a directory,
/// in name order.
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
            Some("yaml" | "yml")
        ) {
            files.push(entry);
        }
    }
    files.sort();
    Ok(files)
}

/// Reads every Customer, CustomerGroup, Namespace and NetworkPolicy in these files or
/// directories. Documents of other kinds are skipped; a malformed one is an error naming
/// the file, the object and the field.
pub fn read_inputs(paths: &[PathBuf]) -> Result<Inputs> {
    let mut inputs = Inputs::default();
    for path in paths {
        for file in yaml_files(path)? {
            let text = std::fs::read_to_string(&file).map_err(|source| Error::Read {
                path: file.display().to_string(),
                source,
            })?;
            read_documents(&file, &text, &mut inputs)?;
        }
    }
    Ok(inputs)
}

/// Just enough of a document to know what it is.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    api_version: Option<String>,
    kind: Option<String>,
    metadata: Option<HeaderMeta>,
}

#[derive(Deserialize)]
struct HeaderMeta {
    name: Option<String>,
}

fn read_documents(file: &Path, text: &str, inputs: &mut Inputs) -> Result<()> {
    let path = file.display().to_string();
    for (index, document) in split_documents(text).into_iter().enumerate() {
        let parse_err = |object: String, message: String| Error::Parse {
            path: path.clone(),
            object,
            message,
        };
        let header: Option<Header> = serde_yaml::from_str(document)
            .map_err(|e| parse_err(format!("document {}", index + 1), e.to_string()))?;
        let Some(header) = header else { continue };
        let name = header.metadata.and_then(|m| m.name).unwrap_or_default();
        let kind = header.kind.unwrap_or_default();
        let object = format!("{kind}/{name}");
        let file = file.to_path_buf();
        let parse = |e: serde_yaml::Error| parse_err(object.clone(), e.to_string());
        match (
            header.api_version.as_deref().unwrap_or_default(),
            kind.as_str(),
        ) {
            (API_VERSION, "Customer") => inputs
                .customers
                .push((file, serde_yaml::from_str(document).map_err(parse)?)),
            (API_VERSION, "CustomerGroup") => inputs
                .groups
                .push((file, serde_yaml::from_str(document).map_err(parse)?)),
            ("v1", "Namespace") => inputs
                .namespaces
                .push((file, serde_yaml::from_str(document).map_err(parse)?)),
            ("networking.k8s.io/v1", "NetworkPolicy") => inputs
                .network_policies
                .push((file, serde_yaml::from_str(document).map_err(parse)?)),
            _ => {}
        }
    }
    Ok(())
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
/// each customer's objects under a comment naming it. The first invalid Customer stops
/// the render with an error naming its file and fields.
pub fn render(inputs: &Inputs, settings: &Settings) -> Result<String> {
    let mut out = String::new();
    for (customer, desired) in inputs.desired(settings)? {
        out.push_str(&format!("# Customer {}\n", customer.name_any()));
        for conflict in &desired.conflicts {
            out.push_str(&format!(
                "# Conflict: namespace {} is held by Customer {} and is left out\n",
                conflict.namespace, conflict.holder
            ));
        }
        for value in desired.to_values()? {
            out.push_str("---\n");
            out.push_str(
                &serde_yaml::to_string(&value).map_err(|e| Error::Serialize(e.to_string()))?,
            );
        }
    }
    Ok(out)
}
