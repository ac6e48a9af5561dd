//! Pure status computation: from what a reconcile found and did to the Customer's status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use super::plan::NamespacePhase;
use crate::api::{CustomerStatus, Isolation, NamespaceStatus, Summary, TotalQuotaStatus};
use crate::desired::resolve::Freeze;
use crate::desired::validate::nanos;
use crate::error::Problem;
use crate::text::count;

/// Condition types.
pub mod types {
    /// Everything the spec asks for is in place.
    pub const READY: &str = "Ready";
    /// Every namespace exists, belongs to the customer and is active.
    pub const NAMESPACES_READY: &str = "NamespacesReady";
    /// Every NetworkPolicy in the customer's namespaces, the operator's and anyone
    /// else's, admits nothing from another customer beyond what it declared.
    pub const NETWORK_ISOLATED: &str = "NetworkIsolated";
    /// The RoleBindings are in place.
    pub const ACCESS_GRANTED: &str = "AccessGranted";
    /// A namespace the customer asks for belongs to someone else.
    pub const CONFLICT: &str = "Conflict";
    /// Deletion waits for `deletionProtection` to be switched off.
    pub const DELETION_BLOCKED: &str = "DeletionBlocked";
    /// Deletion is under way.
    pub const TERMINATING: &str = "Terminating";
    /// An `allowFrom` names a customer or group that does not exist yet.
    pub const CONNECTIONS_PENDING: &str = "ConnectionsPending";
    /// The customer's namespaces use more than its whole-customer quota.
    pub const QUOTA_EXCEEDED: &str = "QuotaExceeded";
    /// The customer's people hold read access only, and deletion is held (`spec.frozen`
    /// of the Customer or of its group); its lastTransitionTime says since when.
    pub const FROZEN: &str = "Frozen";
    /// The customer's Argo CD AppProject is the operator's and in place
    /// (`--argocd-projects`, on a cluster that serves AppProjects).
    pub const ARGOCD_PROJECT: &str = "ArgoCDProject";
}

/// What a reconcile of a valid spec found and did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// The customer's namespaces and their phases (Active, Terminating, Missing, Conflict).
    pub namespaces: Vec<NamespaceStatus>,
    /// Namespaces that exist and are not the customer's, with who holds them.
    pub conflicts: Vec<String>,
    /// Namespaces the spec no longer lists, kept because of `deletionProtection`.
    pub kept: Vec<String>,
    /// `allowFrom` peers that do not exist yet.
    pub waiting_peers: Vec<String>,
    /// Counts of what the operator keeps for the customer.
    pub summary: Summary,
    /// The effective isolation level.
    pub isolation: Option<Isolation>,
    /// Consultants refused because they held roles for the former partner.
    pub carried_over: Vec<String>,
    /// ClusterRoles the customer's RoleBindings refer to that do not exist.
    pub missing_roles: Vec<String>,
    /// Openings into the customer's namespaces from other customers that no
    /// declaration covers, one line each (policy and peer named).
    pub undeclared_inbound: Vec<String>,
    /// The whole-customer quota's limits and usage, when `spec.quota.total` is set.
    pub total_quota: Option<Box<TotalQuotaStatus>>,
    /// The customer's Argo CD AppProject; `None` when the operator writes none.
    pub argocd_project: Option<Box<ArgoCdProject>>,
}

/// What became of the customer's Argo CD AppProject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArgoCdProject {
    /// The operator's AppProject (`namespace/name`) is in place.
    Applied(String),
    /// An AppProject of the customer's name (`namespace/name`) exists that the operator
    /// did not write; it is left as it is.
    NotOwned(String),
}

/// Reason of `ArgoCDProject=False`: an AppProject of the customer's name is someone
/// else's.
pub const PROJECT_NOT_OWNED: &str = "ProjectNotOwned";

/// `ArgoCDProject` from what the reconcile found; gone when no AppProject is written.
/// Ready does not depend on it: the customer's namespaces, isolation and access are
/// whole without Argo CD, and a foreign project is a platform team's matter.
fn argocd_project(conditions: &mut Conditions, observed: &Observed) {
    match observed.argocd_project.as_deref() {
        None => conditions.remove(types::ARGOCD_PROJECT),
        Some(ArgoCdProject::Applied(project)) => conditions.set(
            types::ARGOCD_PROJECT,
            true,
            "ProjectApplied",
            format!("AppProject {project} allows the customer's namespaces only"),
        ),
        Some(ArgoCdProject::NotOwned(project)) => conditions.set(
            types::ARGOCD_PROJECT,
            false,
            PROJECT_NOT_OWNED,
            format!(
                "AppProject {project} exists and was not written by the operator: it is left as it is, and the customer has no Argo CD project of its own until it is renamed or deleted"
            ),
        ),
    }
}

/// Reason of `QuotaExceeded=True`: the namespaces use more than `spec.quota.total`.
pub const USED_ABOVE_TOTAL: &str = "UsedAboveTotal";

/// Reason of `Frozen=False` when the spec asks for a freeze that was not applied (the
/// spec was refused, or the apiserver refused an object before the bindings).
pub const FREEZE_NOT_APPLIED: &str = "FreezeNotApplied";

/// Reason of `Ready=False` when the apiserver refused one of the customer's objects.
pub const APPLY_REFUSED: &str = "ApplyRefused";

/// Reason of `NetworkIsolated=False` when another customer may connect undeclared.
pub const UNDECLARED_INBOUND: &str = "UndeclaredInbound";

/// Reason of `AccessGranted=False` while a ClusterRole the bindings refer to is missing.
pub const ROLES_MISSING: &str = "RolesMissing";

/// Reason of a partner change that kept the former partner's consultants.
pub const CONSULTANTS_CARRIED_OVER: &str = "ConsultantsCarriedOver";

/// How many undeclared openings a condition message names before it only counts.
const MAX_LISTED: usize = 3;

/// Why the Ready condition is what it is, but for a refused spec (whose reason is the
/// first problem's [`crate::error::Reason`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadyReason {
    /// Everything the spec asks for is in place.
    Reconciled,
    /// Ready, with namespaces kept by `deletionProtection`.
    NamespacesKept,
    /// Some namespaces are not the customer's.
    Conflict,
    /// An `allowFrom` peer does not exist yet.
    ConnectionsPending,
    /// A namespace is not active yet.
    NamespacesPending,
    /// A partner change kept the former partner's consultants.
    ConsultantsCarriedOver,
    /// Another customer may connect where nothing declares it.
    UndeclaredInbound,
    /// The apiserver refused one of the customer's objects.
    ApplyRefused,
    /// The customer is being deleted.
    Terminating,
    /// Deletion waits for `deletionProtection` to be switched off.
    DeletionBlocked,
}

impl ReadyReason {
    const ALL: [ReadyReason; 10] = [
        ReadyReason::Reconciled,
        ReadyReason::NamespacesKept,
        ReadyReason::Conflict,
        ReadyReason::ConnectionsPending,
        ReadyReason::NamespacesPending,
        ReadyReason::ConsultantsCarriedOver,
        ReadyReason::UndeclaredInbound,
        ReadyReason::ApplyRefused,
        ReadyReason::Terminating,
        ReadyReason::DeletionBlocked,
    ];

    /// The reason as the condition writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ReadyReason::Reconciled => "Reconciled",
            ReadyReason::NamespacesKept => "NamespacesKept",
            ReadyReason::Conflict => "Conflict",
            ReadyReason::ConnectionsPending => "ConnectionsPending",
            ReadyReason::NamespacesPending => "NamespacesPending",
            ReadyReason::ConsultantsCarriedOver => CONSULTANTS_CARRIED_OVER,
            ReadyReason::UndeclaredInbound => UNDECLARED_INBOUND,
            ReadyReason::ApplyRefused => APPLY_REFUSED,
            ReadyReason::Terminating => "Terminating",
            ReadyReason::DeletionBlocked => "DeletionBlocked",
        }
    }

    /// The reason of that name, if it is one of these.
    pub fn named(reason: &str) -> Option<ReadyReason> {
        ReadyReason::ALL.into_iter().find(|r| r.as_str() == reason)
    }

    /// Whether `Ready=False` for a reason of a condition says the operator refused
    /// something (a spec problem, an object the apiserver refused, carried-over
    /// consultants): a person must change the spec. The other reasons wait for
    /// something that comes by itself or is reported by a condition of its own.
    pub fn is_refusal(reason: &str) -> bool {
        !matches!(
            ReadyReason::named(reason),
            Some(
                ReadyReason::Conflict
                    | ReadyReason::NamespacesPending
                    | ReadyReason::Terminating
                    | ReadyReason::DeletionBlocked
                    | ReadyReason::ConnectionsPending
                    | ReadyReason::UndeclaredInbound
            )
        )
    }
}

/// The outcome of one reconcile.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The spec was applied.
    Applied(Observed),
    /// The spec was refused; nothing was changed.
    Invalid(Vec<Problem>),
    /// Deletion waits for these to disappear.
    Terminating(String),
    /// The apiserver refused an object of the customer (what it said, naming the
    /// object); the objects after it were not applied.
    Refused(String),
    /// Deletion is held by `deletionProtection` or a freeze; the customer's namespaces as
    /// they really are (Active, Terminating, or Gone when the hold came too late for them).
    DeletionBlocked(Vec<NamespaceStatus>, DeletionHold),
}

/// What holds a Customer's deletion.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeletionHold {
    /// `spec.deletionProtection` is true.
    pub protection: bool,
    /// The customer is frozen, by its own spec or its group's.
    pub freeze: Option<Freeze>,
}

impl DeletionHold {
    /// Whether anything holds the deletion.
    pub fn holds(&self) -> bool {
        self.protection || self.freeze.is_some()
    }

    /// The reason of `DeletionBlocked`: `DeletionProtection`, else the freeze's.
    fn reason(&self) -> &'static str {
        match &self.freeze {
            Some(freeze) if !self.protection => freeze.reason(),
            _ => "DeletionProtection",
        }
    }

    /// What holds it, and what lets the deletion go on.
    fn describe(&self) -> (String, String) {
        let mut holds = Vec::new();
        let mut release = Vec::new();
        if self.protection {
            holds.push("deletionProtection is true".to_string());
            release.push("set spec.deletionProtection to false".to_string());
        }
        if let Some(freeze) = &self.freeze {
            holds.push(format!("the customer is frozen by {}", freeze.source()));
            release.push(format!("set {} to false", freeze.source()));
        }
        (holds.join(" and "), release.join(" and "))
    }
}

fn carried_over_message(consultants: &[String]) -> String {
    format!(
        "spec.partner.name changed, and these consultants held roles for the former partner, so they get no role for the new one: {}. Remove them from spec.partner.securityConsultants and list the new partner's own consultants; for someone who really works for both partners, a cluster admin clears status.formerPartner",
        consultants.join(", ")
    )
}

/// The conditions being computed, with the generation and time every change gets.
struct Conditions {
    list: Vec<Condition>,
    generation: Option<i64>,
    now: Timestamp,
}

impl Conditions {
    fn set(&mut self, type_: &str, ok: bool, reason: &str, message: String) {
        set_condition(
            &mut self.list,
            type_,
            ok,
            reason,
            message,
            self.generation,
            self.now,
        )
    }

    fn ready(&mut self, ok: bool, reason: ReadyReason, message: String) {
        self.set(types::READY, ok, reason.as_str(), message)
    }

    fn remove(&mut self, type_: &str) {
        remove_condition(&mut self.list, type_)
    }
}

/// The new status, keeping the old transition times of conditions whose status stays.
pub fn compute(
    old: Option<&CustomerStatus>,
    generation: Option<i64>,
    group: &str,
    partner: Option<&str>,
    outcome: &Outcome,
    now: Timestamp,
) -> CustomerStatus {
    let mut status = old.cloned().unwrap_or_default();
    status.group = Some(group.to_string());
    let mut conditions = Conditions {
        list: std::mem::take(&mut status.conditions),
        generation,
        now,
    };
    match outcome {
        Outcome::Invalid(problems) => invalid(&mut conditions, problems),
        Outcome::Refused(refused) => conditions.ready(
            false,
            ReadyReason::ApplyRefused,
            format!(
                "{refused}; the objects after it (RoleBindings last) are not applied; retried with backoff"
            ),
        ),
        Outcome::Terminating(waiting) => {
            conditions.set(types::TERMINATING, true, "Deleting", waiting.clone());
            conditions.ready(
                false,
                ReadyReason::Terminating,
                "the customer is being deleted".into(),
            );
            conditions.remove(types::DELETION_BLOCKED);
        }
        Outcome::DeletionBlocked(namespaces, hold) => {
            deletion_blocked(&mut conditions, namespaces, hold);
            status.namespaces = namespaces.clone();
        }
        Outcome::Applied(observed) => {
            status.partner = partner.map(str::to_string);
            status.namespaces = observed.namespaces.clone();
            status.summary = Some(observed.summary.clone());
            status.quota = observed.total_quota.as_deref().cloned();
            applied(&mut conditions, observed);
        }
    }
    status.conditions = conditions.list;
    if !matches!(outcome, Outcome::Invalid(_)) {
        status.observed_generation = generation;
    }
    status
}

/// The `Frozen` condition after a reconcile with this outcome, for the freeze the spec
/// (or the group) asks for now. An applied spec decides it: True while frozen, gone when
/// not. A spec or object the apiserver refused changed no binding, so a freeze asked for
/// and not yet in effect shows `Frozen=False` (FreezeNotApplied), and an old state stays
/// as it was; so does it while the customer is being deleted.
pub fn record_freeze(
    status: &mut CustomerStatus,
    freeze: Option<&Freeze>,
    outcome: &Outcome,
    generation: Option<i64>,
    now: Timestamp,
) {
    let in_effect = condition(Some(status), types::FROZEN).is_some_and(|c| c.status == "True");
    let list = &mut status.conditions;
    match (outcome, freeze) {
        (Outcome::Applied(_), Some(freeze)) => set_condition(
            list,
            types::FROZEN,
            true,
            freeze.reason(),
            format!(
                "frozen by {}: the customer's people keep read access (customer-view) and lose every write, the operator still repairs drift, and deleting the customer is held; set it to false to unfreeze",
                freeze.source()
            ),
            generation,
            now,
        ),
        (Outcome::Applied(_), None) => remove_condition(list, types::FROZEN),
        (Outcome::Invalid(_) | Outcome::Refused(_), Some(freeze)) if !in_effect => set_condition(
            list,
            types::FROZEN,
            false,
            FREEZE_NOT_APPLIED,
            format!(
                "{} asks for a freeze, but nothing was applied (see Ready): the bindings are as they were",
                freeze.source()
            ),
            generation,
            now,
        ),
        _ => {}
    }
}

/// A refused spec: Ready False, for the first problem's reason, listing every problem.
fn invalid(conditions: &mut Conditions, problems: &[Problem]) {
    let reason = problems
        .first()
        .map(|p| p.reason.as_str())
        .unwrap_or("Invalid");
    let message = problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    conditions.set(
        types::READY,
        false,
        reason,
        format!("spec refused, existing resources left as they were: {message}"),
    );
}

/// A deletion that `deletionProtection` or a freeze holds: what is and what is no longer
/// there.
fn deletion_blocked(
    conditions: &mut Conditions,
    namespaces: &[NamespaceStatus],
    hold: &DeletionHold,
) {
    let in_phase = |phase: NamespacePhase| -> Vec<&str> {
        namespaces
            .iter()
            .filter(|n| NamespacePhase::of(n) == Some(phase))
            .map(|n| n.name.as_str())
            .collect()
    };
    let (terminating, gone) = (
        in_phase(NamespacePhase::Terminating),
        in_phase(NamespacePhase::Gone),
    );
    let (holds, release) = hold.describe();
    let mut message = if terminating.is_empty() && gone.is_empty() {
        format!("{holds}: nothing is deleted")
    } else {
        format!("{holds}: nothing more is deleted")
    };
    if !terminating.is_empty() {
        message.push_str(&format!(
            "; already being deleted when the hold came (the apiserver finishes it): {}",
            terminating.join(", ")
        ));
    }
    if !gone.is_empty() {
        message.push_str(&format!("; already gone: {}", gone.join(", ")));
    }
    message.push_str(&format!("; {release} to confirm the deletion"));
    conditions.set(types::DELETION_BLOCKED, true, hold.reason(), message);
    let lost: Vec<&str> = terminating.iter().chain(&gone).copied().collect();
    if lost.is_empty() {
        let active = count(namespaces.len() as u64, "namespace", "namespaces");
        conditions.set(
            types::NAMESPACES_READY,
            true,
            "NamespacesActive",
            format!("{active} active"),
        );
    } else {
        conditions.set(
            types::NAMESPACES_READY,
            false,
            "NamespacesDeleted",
            format!("deleted or being deleted: {}", lost.join(", ")),
        );
    }
    conditions.ready(
        false,
        ReadyReason::DeletionBlocked,
        "deletion waits for confirmation".into(),
    );
    conditions.remove(types::TERMINATING);
}

/// An applied spec: every condition from what the reconcile found and did.
fn applied(conditions: &mut Conditions, observed: &Observed) {
    let pending: Vec<&str> = observed
        .namespaces
        .iter()
        .filter(|n| {
            !matches!(
                NamespacePhase::of(n),
                Some(NamespacePhase::Active | NamespacePhase::Conflict)
            )
        })
        .map(|n| n.name.as_str())
        .collect();
    namespaces_ready(conditions, observed, &pending);
    network_isolated(conditions, observed);
    access_granted(conditions, observed);
    if observed.conflicts.is_empty() {
        conditions.remove(types::CONFLICT);
    } else {
        conditions.set(
            types::CONFLICT,
            true,
            "NamespaceNotOwned",
            format!(
                "these namespaces exist and are not the customer's; they are left untouched (a cluster admin may hand one over with the annotation customers.dev/adopt: <customer>): {}",
                observed.conflicts.join(", ")
            ),
        );
    }
    if observed.waiting_peers.is_empty() {
        conditions.remove(types::CONNECTIONS_PENDING);
    } else {
        conditions.set(
            types::CONNECTIONS_PENDING,
            true,
            "PeerNotFound",
            format!(
                "allowFrom names what does not exist yet, or a customer of another partner that has not named this one in its own allowFrom; each connection opens when its peer appears or consents: {}",
                observed.waiting_peers.join(", ")
            ),
        );
    }
    quota_exceeded(conditions, observed);
    argocd_project(conditions, observed);
    let (ready, reason, message) = ready(observed, &pending);
    conditions.ready(ready, reason, message);
    conditions.remove(types::TERMINATING);
    conditions.remove(types::DELETION_BLOCKED);
}

/// `QuotaExceeded=True` while the namespaces use more than the total (it was lowered
/// below their usage, or counted objects existed before their quota); gone otherwise.
fn quota_exceeded(conditions: &mut Conditions, observed: &Observed) {
    let over = observed
        .total_quota
        .as_ref()
        .map(|q| exceeded(q))
        .unwrap_or_default();
    if over.is_empty() {
        conditions.remove(types::QUOTA_EXCEEDED);
    } else {
        conditions.set(
            types::QUOTA_EXCEEDED,
            true,
            USED_ABOVE_TOTAL,
            format!(
                "the namespaces use more than spec.quota.total ({}); nothing is deleted, and each namespace is held at what it uses, so new use is refused until usage falls below the total",
                over.join(", ")
            ),
        );
    }
}

/// The resources whose usage exceeds the total, as `pods: 12 used of 10`.
fn exceeded(status: &TotalQuotaStatus) -> Vec<String> {
    status
        .hard
        .iter()
        .filter_map(|(resource, limit)| {
            let used = status.used.get(resource)?;
            let over = nanos(&used.0)? > nanos(&limit.0)?;
            over.then(|| format!("{resource}: {} used of {}", used.0, limit.0))
        })
        .collect()
}

fn namespaces_ready(conditions: &mut Conditions, observed: &Observed, pending: &[&str]) {
    let (ok, reason, message) = if !observed.conflicts.is_empty() {
        let message = format!("not the customer's: {}", observed.conflicts.join(", "));
        (false, "Conflict", message)
    } else if !pending.is_empty() {
        (
            false,
            "NamespacesPending",
            format!("waiting for: {}", pending.join(", ")),
        )
    } else {
        let active = count(observed.namespaces.len() as u64, "namespace", "namespaces");
        (true, "NamespacesActive", format!("{active} active"))
    };
    conditions.set(types::NAMESPACES_READY, ok, reason, message);
}

fn network_isolated(conditions: &mut Conditions, observed: &Observed) {
    let found = &observed.undeclared_inbound;
    match observed.isolation {
        Some(Isolation::None) | None => conditions.set(
            types::NETWORK_ISOLATED,
            false,
            "IsolationNone",
            "isolation is None: no NetworkPolicy is written".into(),
        ),
        Some(_) if !found.is_empty() => {
            let mut listed = found[..found.len().min(MAX_LISTED)].join("; ");
            if found.len() > MAX_LISTED {
                listed.push_str(&format!("; and {} more", found.len() - MAX_LISTED));
            }
            conditions.set(
                types::NETWORK_ISOLATED,
                false,
                UNDECLARED_INBOUND,
                format!(
                    "other customers may connect where no allowFrom or group zone declares it: {listed}"
                ),
            )
        }
        Some(level) => conditions.set(
            types::NETWORK_ISOLATED,
            true,
            "PoliciesApplied",
            format!(
                "{level:?} isolation: {} NetworkPolicies in place; no undeclared path from another customer",
                observed.summary.network_policies
            ),
        ),
    }
}

fn access_granted(conditions: &mut Conditions, observed: &Observed) {
    if !observed.carried_over.is_empty() {
        conditions.set(
            types::ACCESS_GRANTED,
            false,
            CONSULTANTS_CARRIED_OVER,
            carried_over_message(&observed.carried_over),
        );
    } else if !observed.missing_roles.is_empty() {
        conditions.set(
            types::ACCESS_GRANTED,
            false,
            ROLES_MISSING,
            format!(
                "the RoleBindings refer to ClusterRoles that do not exist, so they grant nothing: {}; install them (the chart's customer roles)",
                observed.missing_roles.join(", ")
            ),
        );
    } else {
        let bindings = count(
            observed.summary.role_bindings,
            "RoleBinding",
            "RoleBindings",
        );
        conditions.set(
            types::ACCESS_GRANTED,
            true,
            "BindingsApplied",
            format!("{bindings} in place"),
        );
    }
}

/// Ready, in order of what a person must look at first.
fn ready(observed: &Observed, pending: &[&str]) -> (bool, ReadyReason, String) {
    let breached = !matches!(observed.isolation, Some(Isolation::None) | None)
        && !observed.undeclared_inbound.is_empty();
    let waiting = |what: &[String]| format!("waiting for: {}", what.join(", "));
    if !observed.conflicts.is_empty() {
        let message = "some namespaces are not the customer's".to_string();
        (false, ReadyReason::Conflict, message)
    } else if !observed.waiting_peers.is_empty() {
        let message = waiting(&observed.waiting_peers);
        (false, ReadyReason::ConnectionsPending, message)
    } else if !pending.is_empty() {
        let message = format!("waiting for: {}", pending.join(", "));
        (false, ReadyReason::NamespacesPending, message)
    } else if !observed.carried_over.is_empty() {
        let message = carried_over_message(&observed.carried_over);
        (false, ReadyReason::ConsultantsCarriedOver, message)
    } else if breached {
        let message =
            "other customers may connect where nothing declares it (see NetworkIsolated)".into();
        (false, ReadyReason::UndeclaredInbound, message)
    } else if !observed.kept.is_empty() {
        let message = format!(
            "ready; no longer listed but kept because deletionProtection is true: {}",
            observed.kept.join(", ")
        );
        (true, ReadyReason::NamespacesKept, message)
    } else {
        let message = "everything the spec asks for is in place".to_string();
        (true, ReadyReason::Reconciled, message)
    }
}

/// Sets a condition; its transition time changes only when its status does.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) {
    let status = if ok { "True" } else { "False" }.to_string();
    let existing = conditions.iter_mut().find(|c| c.type_ == type_);
    let last_transition_time = match &existing {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => Time(now),
    };
    let condition = Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message,
        observed_generation: generation,
        last_transition_time,
    };
    match existing {
        Some(c) => *c = condition,
        None => conditions.push(condition),
    }
}

/// Removes a condition that no longer applies.
pub fn remove_condition(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

/// A JSON merge patch that turns `old` into `new`. A merge patch keeps every key it does
/// not name, and the status types leave out empty lists and unset fields: each key of
/// `old` that `new` lacks is named here with `null`, in nested objects too, so an
/// emptied list (a former partner's consultants) does not survive.
pub fn merge_patch(old: &serde_json::Value, new: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            let mut out = serde_json::Map::new();
            for (key, value) in new {
                let patched = match old.get(key) {
                    Some(before) => merge_patch(before, value),
                    None => value.clone(),
                };
                out.insert(key.clone(), patched);
            }
            for key in old.keys().filter(|k| !new.contains_key(*k)) {
                out.insert(key.clone(), Value::Null);
            }
            Value::Object(out)
        }
        _ => new.clone(),
    }
}

/// Whether a condition reports something a person must act on, which gets a Warning
/// Event when it appears or changes: Conflict, DeletionBlocked or ConnectionsPending
/// True, NetworkIsolated False because of an undeclared path, or AccessGranted False
/// because a ClusterRole is missing.
pub fn is_warning(condition: &Condition) -> bool {
    match condition.type_.as_str() {
        types::CONFLICT
        | types::DELETION_BLOCKED
        | types::CONNECTIONS_PENDING
        | types::QUOTA_EXCEEDED => condition.status == "True",
        types::NETWORK_ISOLATED => {
            condition.status == "False" && condition.reason == UNDECLARED_INBOUND
        }
        types::ACCESS_GRANTED => condition.status == "False" && condition.reason == ROLES_MISSING,
        types::ARGOCD_PROJECT => condition.status == "False",
        _ => false,
    }
}

/// The condition of that type, if present.
pub fn condition<'a>(status: Option<&'a CustomerStatus>, type_: &str) -> Option<&'a Condition> {
    status?.conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Reason;

    fn observed() -> Observed {
        Observed {
            namespaces: vec![NamespaceStatus {
                name: "a".into(),
                phase: "Active".into(),
            }],
            isolation: Some(Isolation::Standard),
            ..Default::default()
        }
    }

    /// The status after `old` once everything is in place again.
    fn applied_again(old: &CustomerStatus, t: Timestamp) -> CustomerStatus {
        compute(
            Some(old),
            Some(1),
            "all",
            None,
            &Outcome::Applied(observed()),
            t,
        )
    }

    #[test]
    fn one_namespace_and_one_binding_are_singular() {
        let t = Timestamp::from_second(1_000).unwrap();
        let mut one = observed();
        one.summary.role_bindings = 1;
        let s = compute(None, Some(1), "all", None, &Outcome::Applied(one), t);
        let message = |type_: &str| condition(Some(&s), type_).unwrap().message.clone();
        assert_eq!(message(types::NAMESPACES_READY), "1 namespace active");
        assert_eq!(message(types::ACCESS_GRANTED), "1 RoleBinding in place");
    }

    #[test]
    fn carried_over_consultants_are_told_what_to_do() {
        let t = Timestamp::from_second(1_000).unwrap();
        let mut kept = observed();
        kept.carried_over = vec!["User carol@acme.example".into()];
        let s = compute(
            None,
            Some(1),
            "all",
            Some("globex"),
            &Outcome::Applied(kept),
            t,
        );
        let c = condition(Some(&s), types::ACCESS_GRANTED).unwrap();
        assert_eq!(c.reason, CONSULTANTS_CARRIED_OVER);
        for part in [
            "User carol@acme.example",
            "Remove them from spec.partner.securityConsultants",
            "list the new partner's own consultants",
            "a cluster admin clears status.formerPartner",
        ] {
            assert!(c.message.contains(part), "{part:?} not in {:?}", c.message);
        }
    }

    #[test]
    fn unchanged_outcome_gives_identical_status() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let t1 = Timestamp::from_second(2_000).unwrap();
        let first = compute(
            None,
            Some(1),
            "all",
            None,
            &Outcome::Applied(observed()),
            t0,
        );
        let second = compute(
            Some(&first),
            Some(1),
            "all",
            None,
            &Outcome::Applied(observed()),
            t1,
        );
        assert_eq!(first, second);
        assert_eq!(
            condition(Some(&second), types::READY).unwrap().status,
            "True"
        );
    }

    #[test]
    fn conflict_sets_condition_and_clears_when_gone() {
        let t = Timestamp::from_second(1_000).unwrap();
        let mut with_conflict = observed();
        with_conflict.conflicts = vec!["shop".into()];
        let s = compute(
            None,
            Some(1),
            "all",
            None,
            &Outcome::Applied(with_conflict),
            t,
        );
        let c = condition(Some(&s), types::CONFLICT).unwrap();
        assert!(c.message.contains("shop"));
        assert_eq!(condition(Some(&s), types::READY).unwrap().status, "False");
        let s = compute(
            Some(&s),
            Some(1),
            "all",
            None,
            &Outcome::Applied(observed()),
            t,
        );
        assert!(condition(Some(&s), types::CONFLICT).is_none());
        assert_eq!(condition(Some(&s), types::READY).unwrap().status, "True");
    }

    #[test]
    fn undeclared_inbound_breaks_network_isolated_and_warns() {
        let t = Timestamp::from_second(1_000).unwrap();
        let mut open = observed();
        open.undeclared_inbound = (1..=5).map(|i| format!("path {i}")).collect();
        let s = compute(None, Some(1), "all", None, &Outcome::Applied(open), t);
        let c = condition(Some(&s), types::NETWORK_ISOLATED).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", UNDECLARED_INBOUND)
        );
        assert!(
            c.message.ends_with("path 1; path 2; path 3; and 2 more"),
            "{}",
            c.message
        );
        assert!(is_warning(c));
        let ready = condition(Some(&s), types::READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", UNDECLARED_INBOUND),
            "a breached customer is not Ready"
        );
        let s = applied_again(&s, t);
        let c = condition(Some(&s), types::NETWORK_ISOLATED).unwrap();
        assert_eq!(c.status, "True");
        assert!(!is_warning(c));
    }

    #[test]
    fn a_missing_role_keeps_access_from_being_granted() {
        let t = Timestamp::from_second(1_000).unwrap();
        let mut without = observed();
        without.missing_roles = vec!["customer-view".into()];
        let s = compute(None, Some(1), "all", None, &Outcome::Applied(without), t);
        let c = condition(Some(&s), types::ACCESS_GRANTED).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", ROLES_MISSING)
        );
        assert!(c.message.contains("customer-view"), "{}", c.message);
        assert!(is_warning(c));
        let s = applied_again(&s, t);
        let c = condition(Some(&s), types::ACCESS_GRANTED).unwrap();
        assert_eq!(c.status, "True");
    }

    #[test]
    fn a_merge_patch_removes_what_the_new_status_left_out() {
        use serde_json::json;
        let old = json!({"partner": "p2", "formerPartner": {"name": "p1",
            "securityConsultants": [{"kind": "User", "name": "carol"}]}, "group": "all"});
        let new = json!({"partner": "p1", "formerPartner": {"name": "p2"}, "group": "all"});
        let patch = merge_patch(&old, &new);
        assert_eq!(
            patch,
            json!({"partner": "p1", "formerPartner": {"name": "p2", "securityConsultants": null},
                   "group": "all"})
        );
        assert_eq!(
            merge_patch(&json!({"a": 1}), &json!({})),
            json!({"a": null})
        );
    }

    #[test]
    fn invalid_keeps_observed_generation_and_names_reason() {
        let t = Timestamp::from_second(1_000).unwrap();
        let s = compute(None, Some(1), "all", None, &Outcome::Applied(observed()), t);
        let problems = vec![Problem::new(
            Reason::UnknownGroup,
            "spec.group",
            "no such group",
        )];
        let s = compute(
            Some(&s),
            Some(2),
            "all",
            None,
            &Outcome::Invalid(problems),
            t,
        );
        assert_eq!(s.observed_generation, Some(1));
        let ready = condition(Some(&s), types::READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "UnknownGroup")
        );
        assert_eq!(s.namespaces.len(), 1);
    }

    /// The Frozen condition follows what was applied: True with the source while frozen,
    /// False (not applied) for a refused spec that asks for a freeze, kept as it was while
    /// a refused spec cannot lift it, gone once an unfrozen spec is applied.
    #[test]
    fn the_frozen_condition_says_what_is_in_effect() {
        let t = Timestamp::from_second(1_000).unwrap();
        let group = Freeze::Group("paused".into());
        let applied = Outcome::Applied(observed());
        let invalid = Outcome::Invalid(vec![Problem::new(
            Reason::UnknownGroup,
            "spec.group",
            "no such group",
        )]);
        let frozen_after = |old: &CustomerStatus, freeze: Option<&Freeze>, outcome: &Outcome| {
            let mut s = compute(Some(old), Some(2), "all", None, outcome, t);
            record_freeze(&mut s, freeze, outcome, Some(2), t);
            s
        };
        let ready = compute(None, Some(1), "all", None, &applied, t);
        let frozen = frozen_after(&ready, Some(&group), &applied);
        let c = condition(Some(&frozen), types::FROZEN).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", "GroupFrozen")
        );
        assert!(c.message.contains("CustomerGroup paused"), "{}", c.message);
        // Ready is not affected by a freeze.
        let r = condition(Some(&frozen), types::READY).unwrap();
        assert_eq!(r.status, "True");

        let pending = frozen_after(&ready, Some(&Freeze::Own), &invalid);
        let c = condition(Some(&pending), types::FROZEN).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", FREEZE_NOT_APPLIED)
        );

        let still = frozen_after(&frozen, None, &invalid);
        assert_eq!(
            condition(Some(&still), types::FROZEN),
            condition(Some(&frozen), types::FROZEN)
        );
        let thawed = frozen_after(&frozen, None, &applied);
        assert!(condition(Some(&thawed), types::FROZEN).is_none());
    }

    /// A deletion held by a freeze alone names the freeze, and how to go on.
    #[test]
    fn a_deletion_held_by_a_freeze_says_so() {
        let t = Timestamp::from_second(1_000).unwrap();
        let hold = DeletionHold {
            protection: false,
            freeze: Some(Freeze::Own),
        };
        let namespaces = observed().namespaces;
        let s = compute(
            None,
            Some(1),
            "all",
            None,
            &Outcome::DeletionBlocked(namespaces.clone(), hold),
            t,
        );
        let c = condition(Some(&s), types::DELETION_BLOCKED).unwrap();
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", "Frozen"));
        assert!(
            c.message.contains("frozen by spec.frozen of the Customer")
                && c.message
                    .contains("set spec.frozen of the Customer to false"),
            "{}",
            c.message
        );
        let both = DeletionHold {
            protection: true,
            freeze: Some(Freeze::Group("paused".into())),
        };
        let s = compute(
            None,
            Some(1),
            "all",
            None,
            &Outcome::DeletionBlocked(namespaces, both),
            t,
        );
        let c = condition(Some(&s), types::DELETION_BLOCKED).unwrap();
        assert_eq!(c.reason, "DeletionProtection");
        assert!(c.message.contains("CustomerGroup paused"), "{}", c.message);
    }
}
