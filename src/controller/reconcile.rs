//! One reconcile of one Customer, as a pipeline of steps: validate the spec, build what
//! it asks for, plan the namespaces, apply them and then the children (default deny
//! first), check the isolation, write the status. When the Customer is being deleted,
//! [`super::cleanup`] runs instead.

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::error::{Error, Result};
use super::plan::{self, NamespacePlan};
use super::status::{Observed, Outcome};
use super::status_write::{self, remember_former_partner};
use super::{
    Context, app_projects, check_isolation, children, cleanup, cluster_policies, finalizer,
    namespaces, total_quota, uid_of,
};
use crate::api::{Customer, Summary};
use crate::desired::children::{Children, Counts};
use crate::desired::{self, Built, Desired, ownership};
use crate::error::{Problem, Reason};

/// Longest a reconcile may take before it is abandoned and retried (a request that
/// hangs must not hold the Customer forever).
const RECONCILE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a reconcile that met a cache behind the operator's own write waits before
/// it looks again: the watch shows a write within milliseconds.
const CACHE_CATCH_UP: Duration = Duration::from_secs(1);

/// Reconciles one Customer.
pub async fn reconcile(customer: Arc<Customer>, ctx: Arc<Context>) -> Result<Action> {
    ctx.caches_ready().await?;
    ctx.options.reconciles.record(&customer.name_any());
    ctx.last_reconciled.note(&customer.name_any());
    tokio::time::timeout(RECONCILE_TIMEOUT, reconcile_now(&customer, &ctx))
        .await
        .map_err(|_| Error::Timeout)?
}

async fn reconcile_now(customer: &Arc<Customer>, ctx: &Arc<Context>) -> Result<Action> {
    let action = if customer.metadata.deletion_timestamp.is_some() {
        cleanup::cleanup(customer, ctx).await?
    } else if !finalizer::has_finalizer(&**customer) {
        // Go on with the Customer as stored with its finalizer: the cache may not have
        // it yet, and waiting for it only adds latency.
        match add_finalizer_once(customer, ctx).await? {
            Some(stored) => converge(&stored, ctx).await?,
            // Added a moment ago by a reconcile that went on with it; its echo brings
            // no reconcile ([`super::triggers::Echoes`]), so look again once the cache
            // has caught up (whatever queued this reconcile is then seen).
            None => Action::requeue(CACHE_CATCH_UP),
        }
    } else {
        converge(customer, ctx).await?
    };
    ctx.failures.reset(&customer.name_any());
    Ok(action)
}

/// Adds the finalizer to a Customer as cached. Returns the Customer as stored, or `None`
/// when there is nothing to do now: the Customer is gone, or the finalizer was added a
/// moment ago and the cache does not show it yet.
async fn add_finalizer_once(customer: &Customer, ctx: &Context) -> Result<Option<Customer>> {
    let api = Api::<Customer>::all(ctx.client.clone());
    match ctx
        .write_once_over(
            customer,
            "Customer/finalizers",
            1,
            finalizer::add(&api, customer),
        )
        .await
    {
        Err(error) if error.is_not_found() => Ok(None),
        other => other,
    }
}

/// Converges a Customer: the pipeline. A refused spec changes nothing but its status;
/// an object the apiserver refuses is named in the status before the error goes to the
/// retry with backoff.
async fn converge(customer: &Customer, ctx: &Context) -> Result<Action> {
    let customer = &remember_former_partner(customer, ctx).await?;
    let settings = &ctx.options.settings;
    let built = match desired::validate(customer, &ctx.caches, settings) {
        Ok(resolved) => Built {
            wanted: desired::build(customer, &resolved, &ctx.caches, settings),
            resolved,
        },
        Err(problems) => return refuse(customer, ctx, problems).await,
    };
    let uid = uid_of(customer)?;
    let live = namespaces::look_up(ctx, &built.wanted)?;
    let name = customer.name_any();
    let plan = plan::namespaces(&name, &built.wanted, &live, |meta| {
        ownership::holder(meta, |n| ctx.caches.customer(n))
    });
    let applied = apply(customer, ctx, &built, &plan, &uid).await;
    let observed = report_refused(customer, ctx, applied).await?;
    let settled = plan.settled() && observed.waiting_peers.is_empty();
    status_write::write(customer, ctx, &Outcome::Applied(observed)).await?;
    Ok(ctx.requeue(settled))
}

/// An object the apiserver refused goes into the status (Ready=False, ApplyRefused,
/// naming it; an Event) before the error goes on to the retry.
async fn report_refused(
    customer: &Customer,
    ctx: &Context,
    applied: Result<Observed>,
) -> Result<Observed> {
    let Err(Error::ApplyRefused {
        object,
        message,
        source,
    }) = applied
    else {
        return applied;
    };
    let refused = Outcome::Refused(format!("the apiserver refused {object}: {message}"));
    status_write::write(customer, ctx, &refused).await?;
    Err(Error::ApplyRefused {
        object,
        message,
        source,
    })
}

/// The refused spec in the status; a refused parent also withdraws what the parent
/// granted before. Checked again after the resync period.
async fn refuse(customer: &Customer, ctx: &Context, problems: Vec<Problem>) -> Result<Action> {
    let about_parent = |p: &Problem| {
        matches!(
            p.reason,
            Reason::ParentCycle | Reason::UnknownParent | Reason::ParentTooDeep
        )
    };
    if problems.iter().any(about_parent) {
        children::withdraw_parent_admins(customer, ctx, &uid_of(customer)?).await?;
    }
    status_write::write(customer, ctx, &Outcome::Invalid(problems)).await?;
    Ok(Action::requeue(ctx.options.resync))
}

/// Applies the plan and the children, checks the isolation, deletes the namespaces no
/// longer wanted; returns what it found for the status.
async fn apply(
    customer: &Customer,
    ctx: &Context,
    built: &Built,
    plan: &NamespacePlan<'_>,
    uid: &str,
) -> Result<Observed> {
    let cluster_policies = cluster_policies::apply(ctx, &built.wanted).await?;
    namespaces::apply(ctx, plan).await?;
    let quota = built.resolved.effective.quota.as_ref();
    let shared = total_quota::share_out(ctx, customer, uid, quota, &built.wanted).await?;
    let (wanted, total_quota) = match &shared {
        Some((wanted, usage)) => (wanted, Some(Box::new(usage.clone()))),
        None => (&built.wanted, None),
    };
    let counts = children::apply(ctx, customer, uid, wanted, &plan.usable).await?;
    let argocd_project = app_projects::apply(ctx, customer, uid, wanted).await?;
    cluster_policies::prune(ctx, customer, uid, wanted).await?;
    let undeclared_inbound =
        check_isolation::undeclared_inbound(ctx, customer, built, &plan.usable, uid).await?;
    namespaces::prune(customer, ctx, wanted, uid).await?;
    Ok(Observed {
        namespaces: plan.namespaces.clone(),
        conflicts: plan.conflicts.clone(),
        kept: wanted.kept.clone(),
        waiting_peers: wanted.waiting_peers.clone(),
        summary: summary(plan, counts, cluster_policies),
        isolation: Some(built.resolved.effective.isolation),
        carried_over: wanted.carried_over.clone(),
        missing_roles: missing_roles(ctx, wanted, plan),
        undeclared_inbound,
        total_quota,
        argocd_project: argocd_project.map(Box::new),
    })
}

/// The counts the status shows.
fn summary(plan: &NamespacePlan<'_>, counts: Children<Counts>, cluster_policies: u32) -> Summary {
    let Children {
        network_policies,
        role_bindings,
        resource_quotas,
        limit_ranges,
    } = counts;
    Summary {
        namespaces: plan.usable.len() as u32,
        network_policies,
        role_bindings,
        quotas: resource_quotas + limit_ranges,
        cluster_network_policies: cluster_policies,
    }
}

/// The missing ClusterRoles the customer's bindings in usable namespaces refer to.
fn missing_roles(ctx: &Context, wanted: &Desired, plan: &NamespacePlan<'_>) -> Vec<String> {
    let missing = ctx.missing_roles.read().expect("roles lock").clone();
    let mut referred: Vec<String> = wanted
        .role_bindings
        .iter()
        .filter(|b| plan.usable.contains(&b.namespace().unwrap_or_default()))
        .map(|b| b.role_ref.name.clone())
        .filter(|role| missing.contains(role))
        .collect();
    referred.sort();
    referred.dedup();
    referred
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::fixtures::Apiserver;
    use serde_json::json;

    const CUSTOMER: &str = "/apis/customers.dev/v1alpha1/customers/nova";

    /// A Customer as the apiserver stores it: one namespace, an admin, a quota and
    /// limits, so that every kind of child is written.
    fn customer(finalizer: bool, email: &str) -> Customer {
        let mut value = json!({
            "apiVersion": "customers.dev/v1alpha1",
            "kind": "Customer",
            "metadata": {"name": "nova", "uid": "u-nova", "resourceVersion": "1", "generation": 1},
            "spec": {
                "displayName": "Nova",
                "contactEmail": email,
                "access": {"admins": [{"kind": "User", "name": "ann@nova.example"}]},
                "quota": {"hard": {"pods": "10"}},
                "limits": [{"type": "Container", "max": {"cpu": "2"}}],
            },
        });
        if finalizer {
            value["metadata"]["finalizers"] = json!([crate::api::FINALIZER]);
        }
        serde_json::from_value(value).expect("a Customer")
    }

    async fn reconciled(apiserver: &Apiserver, customer: Customer) -> Result<Action> {
        apiserver.insert(CUSTOMER, serde_json::to_value(&customer).unwrap());
        reconcile(Arc::new(customer), apiserver.context()).await
    }

    /// The position of the first write whose path ends with `suffix`.
    fn position(writes: &[String], suffix: &str) -> usize {
        writes
            .iter()
            .position(|w| w.ends_with(suffix))
            .unwrap_or_else(|| panic!("no write to {suffix} in {writes:#?}"))
    }

    #[tokio::test]
    async fn writes_go_finalizer_namespace_default_deny_the_rest_access_status() {
        let apiserver = Apiserver::default();
        reconciled(&apiserver, customer(false, "ops@nova.example"))
            .await
            .expect("reconciled");
        let writes = apiserver.writes();
        assert_eq!(writes[0], format!("PATCH {CUSTOMER}"), "finalizer first");
        assert_eq!(writes.last().unwrap(), &format!("PATCH {CUSTOMER}/status"));
        let namespace = position(&writes, "POST /api/v1/namespaces");
        let deny = position(&writes, "/networkpolicies/customer-default-deny");
        let first_policy = position(&writes, "/networkpolicies/customer-allow-same-customer");
        let quota = position(&writes, "/resourcequotas/customer-quota");
        let limits = position(&writes, "/limitranges/customer-limits");
        let binding = position(&writes, "/rolebindings/customer-admins");
        assert!(0 < namespace && namespace < deny, "{writes:#?}");
        assert!(
            deny < first_policy && deny < quota && deny < limits,
            "{writes:#?}"
        );
        let last_of_the_rest = writes
            .iter()
            .rposition(|w| {
                w.contains("/networkpolicies/")
                    || w.contains("/resourcequotas/")
                    || w.contains("/limitranges/")
            })
            .unwrap();
        assert!(last_of_the_rest < binding, "access last: {writes:#?}");
        let status = apiserver.object(CUSTOMER).unwrap()["status"].clone();
        let ready = status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap()
            .clone();
        assert_eq!(ready["status"], "True", "{status:#}");
        assert_eq!(status["summary"]["roleBindings"], 1, "{status:#}");
    }

    #[tokio::test]
    async fn under_the_cluster_policy_backend_both_tiers_come_before_the_namespace() {
        let apiserver = Apiserver::default();
        let customer = customer(true, "ops@nova.example");
        apiserver.insert(CUSTOMER, serde_json::to_value(&customer).unwrap());
        let mut options = crate::controller::Options::default();
        options.settings.isolation_backend =
            crate::settings::IsolationBackend::ClusterNetworkPolicy;
        reconcile(Arc::new(customer), apiserver.context_with(options))
            .await
            .expect("reconciled");
        let writes = apiserver.writes();
        let policies = "/apis/policy.networking.k8s.io/v1alpha2/clusternetworkpolicies";
        let admin = position(&writes, &format!("{policies}/customer-admin.nova"));
        let baseline = position(&writes, &format!("{policies}/customer-baseline.nova"));
        let namespace = position(&writes, "POST /api/v1/namespaces");
        assert!(admin < namespace && baseline < namespace, "{writes:#?}");
        assert!(
            !writes.iter().any(|w| w.contains("/networkpolicies/")),
            "no NetworkPolicy: {writes:#?}"
        );
        let status = apiserver.object(CUSTOMER).unwrap()["status"].clone();
        assert_eq!(status["summary"]["clusterNetworkPolicies"], 2, "{status:#}");
        assert_eq!(status["summary"]["networkPolicies"], 0, "{status:#}");
    }

    #[tokio::test]
    async fn a_namespace_created_since_the_cache_looked_is_left_as_it_is() {
        // The cache shows no namespace `nova`; someone else has just created it.
        let apiserver = Apiserver::default();
        let foreign = json!({"apiVersion": "v1", "kind": "Namespace",
                             "metadata": {"name": "nova", "labels": {"team": "theirs"}}});
        apiserver.insert("/api/v1/namespaces/nova", foreign.clone());
        let error = reconciled(&apiserver, customer(true, "ops@nova.example"))
            .await
            .expect_err("the create is refused");
        let message = error.to_string();
        assert!(message.starts_with("create Namespace nova: "), "{message}");
        let writes = apiserver.writes();
        assert_eq!(
            writes
                .iter()
                .filter(|w| w.contains("/namespaces"))
                .collect::<Vec<_>>(),
            ["POST /api/v1/namespaces"],
            "nothing in or to the namespace but the refused create: {writes:#?}"
        );
        assert_eq!(apiserver.object("/api/v1/namespaces/nova"), Some(foreign));
        assert!(
            !apiserver
                .requests()
                .iter()
                .any(|r| r.starts_with("GET /api/v1/namespaces")),
            "no read before the create"
        );
    }

    #[tokio::test]
    async fn a_refused_spec_writes_its_status_and_nothing_else() {
        let apiserver = Apiserver::default();
        let action = reconciled(&apiserver, customer(true, "not-an-address")).await;
        assert!(action.is_ok(), "{action:?}");
        let children: Vec<String> = apiserver
            .requests()
            .into_iter()
            .filter(|r| r.contains("/namespaces/nova") || r.ends_with("/namespaces/nova"))
            .collect();
        assert!(children.is_empty(), "{children:#?}");
        let ready = apiserver.object(CUSTOMER).unwrap()["status"]["conditions"][0].clone();
        assert_eq!(ready["reason"], "InvalidField", "{ready:#}");
    }

    #[tokio::test]
    async fn a_refused_child_is_named_in_the_status_and_stops_the_access() {
        let apiserver = Apiserver::default();
        apiserver.refuse("/resourcequotas/customer-quota", 422, "quota refused");
        let error = reconciled(&apiserver, customer(true, "ops@nova.example"))
            .await
            .expect_err("refused");
        assert_eq!(
            error.to_string(),
            "the apiserver refused ResourceQuota nova/customer-quota: quota refused"
        );
        assert!(
            !apiserver
                .writes()
                .iter()
                .any(|w| w.contains("/rolebindings/")),
            "no access after a refusal: {:#?}",
            apiserver.writes()
        );
        let ready = apiserver.object(CUSTOMER).unwrap()["status"]["conditions"][0].clone();
        assert_eq!(ready["reason"], "ApplyRefused", "{ready:#}");
    }

    #[tokio::test]
    async fn a_failed_request_names_its_step_and_object() {
        let apiserver = Apiserver::default();
        apiserver.refuse(
            "/networkpolicies/customer-default-deny",
            500,
            "etcd is gone",
        );
        let error = reconciled(&apiserver, customer(true, "ops@nova.example"))
            .await
            .expect_err("failed");
        let message = error.to_string();
        assert!(
            message.starts_with("apply NetworkPolicy nova/customer-default-deny: "),
            "{message}"
        );
        assert!(message.contains("etcd is gone"), "{message}");
    }
}
