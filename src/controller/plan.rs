//! Plan the namespaces: the customer's wanted namespaces against what exists, to
//! create, update, leave waiting or report as a conflict. Pure; the one place that
//! decides what a reconcile does with each namespace (who owns one is decided by
//! [`crate::desired::ownership::holder`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::core::{ObjectMeta, PartialObjectMeta};

use crate::api::NamespaceStatus;
use crate::desired::{Desired, Existing};

/// A phase of a customer's namespace, as its status lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NamespacePhase {
    /// It exists, is the customer's and is not being deleted.
    Active,
    /// It is the customer's and is being deleted.
    Terminating,
    /// It exists and is not the customer's.
    Conflict,
    /// It was the customer's and is gone (a blocked deletion came too late for it).
    Gone,
}

impl NamespacePhase {
    /// The phase as the status writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            NamespacePhase::Active => "Active",
            NamespacePhase::Terminating => "Terminating",
            NamespacePhase::Conflict => "Conflict",
            NamespacePhase::Gone => "Gone",
        }
    }

    /// The phase a status lists, if it is one of these.
    pub fn of(status: &NamespaceStatus) -> Option<NamespacePhase> {
        [
            NamespacePhase::Active,
            NamespacePhase::Terminating,
            NamespacePhase::Conflict,
            NamespacePhase::Gone,
        ]
        .into_iter()
        .find(|p| p.as_str() == status.phase)
    }

    /// A status entry for the namespace in this phase.
    pub fn of_namespace(self, name: &str) -> NamespaceStatus {
        NamespaceStatus {
            name: name.to_string(),
            phase: self.as_str().into(),
        }
    }
}

/// What is known about a namespace the customer wants.
#[derive(Clone, Debug)]
pub enum Live {
    /// It does not exist.
    Absent,
    /// The operator created or updated it a moment ago and the cache does not show it
    /// yet: nothing to do.
    WrittenJustNow,
    /// It exists, with this metadata (as cached, or as just read).
    Present(Arc<PartialObjectMeta<Namespace>>),
}

/// A write the plan asks for.
#[derive(Clone, Debug)]
pub enum NamespaceWrite<'a> {
    /// Create the namespace.
    Create(&'a Namespace),
    /// Bring the existing namespace (its live metadata) up to date.
    Update(&'a Namespace, Arc<PartialObjectMeta<Namespace>>),
}

/// What the reconcile does with the customer's namespaces.
#[derive(Clone, Debug, Default)]
pub struct NamespacePlan<'a> {
    /// The writes, in the order of the wanted namespaces.
    pub writes: Vec<NamespaceWrite<'a>>,
    /// Every namespace and its phase, for the status: conflicts first.
    pub namespaces: Vec<NamespaceStatus>,
    /// The namespaces that are not the customer's, with who holds them.
    pub conflicts: Vec<String>,
    /// The namespaces that exist (or are about to), are the customer's and are not
    /// terminating: its children go there. Kept namespaces included.
    pub usable: BTreeSet<String>,
}

impl NamespacePlan<'_> {
    /// Whether every namespace is active and none is in conflict.
    pub fn settled(&self) -> bool {
        self.conflicts.is_empty()
            && self
                .namespaces
                .iter()
                .all(|n| NamespacePhase::of(n) == Some(NamespacePhase::Active))
    }
}

/// Plans the namespaces of the customer `me`: `live` holds what is known of each wanted
/// and kept namespace (a kept one not known counts as gone), `holder` says who holds an
/// existing one.
pub fn namespaces<'a>(
    me: &str,
    wanted: &'a Desired,
    live: &BTreeMap<String, Live>,
    holder: impl Fn(&ObjectMeta) -> Existing,
) -> NamespacePlan<'a> {
    let mut plan = NamespacePlan::default();
    for conflict in &wanted.conflicts {
        plan.conflict(
            &conflict.namespace,
            format!("{} (Customer {})", conflict.namespace, conflict.holder),
        );
    }
    for foreign in &wanted.foreign {
        plan.conflict(foreign, format!("{foreign} (exists, not the customer's)"));
    }
    for ns in &wanted.namespaces {
        let name = ns.name_any();
        let phase = match live.get(&name).unwrap_or(&Live::Absent) {
            Live::WrittenJustNow => NamespacePhase::Active,
            Live::Absent => {
                plan.writes.push(NamespaceWrite::Create(ns));
                NamespacePhase::Active
            }
            Live::Present(live) => match holder(&live.metadata) {
                Existing::HeldBy(h) | Existing::HandedTo(h) if h == me => {
                    if live.metadata.deletion_timestamp.is_some() {
                        NamespacePhase::Terminating
                    } else {
                        plan.writes.push(NamespaceWrite::Update(ns, live.clone()));
                        NamespacePhase::Active
                    }
                }
                _ => {
                    plan.conflicts
                        .push(format!("{name} (exists, not the customer's)"));
                    NamespacePhase::Conflict
                }
            },
        };
        if phase == NamespacePhase::Active {
            plan.usable.insert(name.clone());
        }
        plan.namespaces.push(phase.of_namespace(&name));
    }
    // Kept namespaces (no longer listed, deletionProtection) are managed like listed ones.
    for kept in &wanted.kept {
        if let Some(Live::Present(live)) = live.get(kept)
            && live.metadata.deletion_timestamp.is_none()
        {
            plan.usable.insert(kept.clone());
        }
    }
    plan
}

impl NamespacePlan<'_> {
    fn conflict(&mut self, namespace: &str, message: String) {
        self.conflicts.push(message);
        self.namespaces
            .push(NamespacePhase::Conflict.of_namespace(namespace));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::NamespaceConflict;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ns(name: &str) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn present(name: &str, holder: &str, terminating: bool) -> (String, Live) {
        let meta = ObjectMeta {
            name: Some(name.into()),
            labels: Some([("holder".to_string(), holder.to_string())].into()),
            deletion_timestamp: terminating.then(|| Time(Default::default())),
            ..Default::default()
        };
        let live = PartialObjectMeta::<Namespace> {
            metadata: meta,
            ..Default::default()
        };
        (name.into(), Live::Present(Arc::new(live)))
    }

    fn holder(meta: &ObjectMeta) -> Existing {
        match meta.labels.as_ref().and_then(|l| l.get("holder")) {
            Some(h) if h == "-" => Existing::Foreign,
            Some(h) if h.starts_with('>') => Existing::HandedTo(h[1..].to_string()),
            Some(h) => Existing::HeldBy(h.clone()),
            None => Existing::Foreign,
        }
    }

    fn phases(plan: &NamespacePlan) -> Vec<(String, String)> {
        plan.namespaces
            .iter()
            .map(|n| (n.name.clone(), n.phase.clone()))
            .collect()
    }

    #[test]
    fn absent_namespaces_are_created_and_owned_ones_updated() {
        let wanted = Desired {
            namespaces: vec![ns("a-new"), ns("a-own"), ns("a-adopted"), ns("a-just")],
            ..Default::default()
        };
        let live = BTreeMap::from([
            present("a-own", "a", false),
            present("a-adopted", ">a", false),
            ("a-just".to_string(), Live::WrittenJustNow),
        ]);
        let plan = namespaces("a", &wanted, &live, holder);
        let writes: Vec<String> = plan
            .writes
            .iter()
            .map(|w| match w {
                NamespaceWrite::Create(n) => format!("create {}", n.name_any()),
                NamespaceWrite::Update(n, _) => format!("update {}", n.name_any()),
            })
            .collect();
        assert_eq!(writes, ["create a-new", "update a-own", "update a-adopted"]);
        assert_eq!(plan.usable.len(), 4);
        assert!(plan.settled());
    }

    #[test]
    fn what_is_not_the_customers_is_a_conflict_and_never_written() {
        let wanted = Desired {
            namespaces: vec![
                ns("a-taken"),
                ns("a-foreign"),
                ns("a-handed"),
                ns("a-going"),
            ],
            conflicts: vec![NamespaceConflict {
                namespace: "a-b".into(),
                holder: "a-b".into(),
            }],
            foreign: vec!["a-x".into()],
            ..Default::default()
        };
        let live = BTreeMap::from([
            present("a-taken", "b", false),
            present("a-foreign", "-", false),
            present("a-handed", ">b", false),
            present("a-going", "a", true),
        ]);
        let plan = namespaces("a", &wanted, &live, holder);
        assert!(plan.writes.is_empty());
        assert!(plan.usable.is_empty());
        assert!(!plan.settled());
        assert_eq!(
            phases(&plan),
            [
                ("a-b".into(), "Conflict".into()),
                ("a-x".into(), "Conflict".into()),
                ("a-taken".into(), "Conflict".into()),
                ("a-foreign".into(), "Conflict".into()),
                ("a-handed".into(), "Conflict".into()),
                ("a-going".into(), "Terminating".into()),
            ]
        );
        assert_eq!(plan.conflicts.len(), 5);
        assert_eq!(plan.conflicts[0], "a-b (Customer a-b)");
    }

    #[test]
    fn a_kept_namespace_is_usable_while_it_exists_and_is_not_terminating() {
        let wanted = Desired {
            kept: vec!["a-kept".into(), "a-kept-going".into(), "a-kept-gone".into()],
            ..Default::default()
        };
        let live = BTreeMap::from([
            present("a-kept", "a", false),
            present("a-kept-going", "a", true),
        ]);
        let plan = namespaces("a", &wanted, &live, holder);
        assert_eq!(plan.usable, BTreeSet::from(["a-kept".to_string()]));
        assert!(plan.namespaces.is_empty());
    }
}
