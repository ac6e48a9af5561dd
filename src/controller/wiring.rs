//! The controllers assembled (Customers, groups, claims, partners): which stream of changes feeds which rule of
//! [`super::triggers`], the periodic passes, and what each finished reconcile logs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::watcher::{self, Config as WatcherConfig};
use kube::{Api, Resource};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::core::PartialObjectMeta;

use super::caches::{Caches, Changed, Changes, ClaimChanges, PartnerChanges, Stream};
use super::compact::Compact;
use super::retry::{BriefPause, WatchBackoff, error_policy};
use super::{Context, claim, group, partner, reconcile, resync, roles, triggers};
use crate::api::{AppProject, ClusterNetworkPolicy, Customer, CustomerGroup};
use crate::desired::children::Children;
use crate::operate::Hooks;
use crate::operate::health::{Health, Phase};

/// The Customer controller: a Customer is reconciled when it changes, when one of its
/// children changes, when something its objects depend on changes (a namespace, a
/// policy, a group, a related customer; see [`triggers`]), every resync period (its own
/// schedule, and [`resync::due`] for a schedule lost), and
/// when the set of missing customer ClusterRoles changes. The echoes of its own writes
/// do not reconcile it again ([`triggers::Echoes`]).
pub async fn customer_controller(context: Arc<Context>, changes: Changes, hooks: &Hooks) {
    let Changes {
        customers,
        related,
        groups,
        namespaces,
        foreign_policies,
        children,
        cluster_policies,
        app_projects,
        users,
        partners,
    } = changes;
    let caches = &context.caches;
    let default_group = context.options.settings.default_group.clone();
    let (on_foreign, on_group, on_customer, on_users, on_partner) = (
        caches.clone(),
        caches.clone(),
        caches.clone(),
        caches.clone(),
        caches.clone(),
    );
    let default_for_groups = default_group.clone();
    let echoes = triggers::Echoes(context.in_flight.clone());
    let customer_echoes = echoes.clone();
    let customers = customers.filter(move |c| {
        let echo = c.as_ref().is_ok_and(|c| customer_echoes.of_customer(c));
        futures::future::ready(!echo)
    });
    let presence = ApiPresence::new(&hooks.health);
    let controller = Controller::for_stream(customers, caches.customers.clone())
        .with_config(ControllerConfig::default().concurrency(context.options.concurrency))
        .trigger_backoff(BriefPause);
    let written = (namespaces, children, cluster_policies, app_projects);
    on_writes(controller, written, caches, &echoes)
        .watches_stream(foreign_policies, move |p| {
            triggers::on_policy(&p.metadata, &on_foreign)
        })
        .watches_stream(groups, move |g| {
            triggers::on_group(&g, &on_group, &default_for_groups)
        })
        .watches_stream(related, move |c| {
            triggers::on_customer(&c, &on_customer, &default_group)
        })
        .watches_stream(users, move |u| triggers::on_users(&u, &on_users))
        .watches_stream(partners, move |p| triggers::on_partner(&p, &on_partner))
        .reconcile_on(resync::due(
            caches.customers.clone(),
            context.last_reconciled.clone(),
            context.options.resync,
        ))
        .reconcile_all_on(roles::missing_roles(
            context.client.clone(),
            context.missing_roles.clone(),
        ))
        .graceful_shutdown_on(hooks.shutdown.clone())
        .run(
            hooks.metrics.measured(reconcile::reconcile),
            error_policy,
            context,
        )
        .for_each(move |result| {
            presence.log("customer", result);
            futures::future::ready(())
        })
        .await;
}

/// The changes of the kinds the operator writes: namespaces, the children,
/// ClusterNetworkPolicies, AppProjects.
type Written = (
    Stream<PartialObjectMeta<Namespace>>,
    Children<Changed>,
    Stream<ClusterNetworkPolicy>,
    Stream<AppProject>,
);

/// The kinds the operator writes, each with its rule, leaving out the echoes of its own
/// writes ([`triggers::Echoes::around`]).
fn on_writes(
    controller: Controller<Customer>,
    written: Written,
    caches: &Caches,
    echoes: &triggers::Echoes,
) -> Controller<Customer> {
    let (namespaces, children, cluster_policies, app_projects) = written;
    let Children {
        network_policies,
        role_bindings,
        resource_quotas,
        limit_ranges,
    } = children;
    let (on_ns, on_policy, on_quota) = (caches.clone(), caches.clone(), caches.clone());
    let quota_changes = triggers::QuotaChanges::default();
    controller
        .watches_stream(
            namespaces,
            echoes.around(move |ns| triggers::on_namespace(ns, &on_ns)),
        )
        .watches_stream(
            network_policies,
            echoes.around(move |p: &Compact<NetworkPolicy>| {
                triggers::on_policy(p.meta(), &on_policy)
            }),
        )
        .watches_stream(role_bindings, echoes.around(triggers::on_child))
        .watches_stream(
            resource_quotas,
            echoes.around(move |q| quota_changes.on_quota(q, &on_quota)),
        )
        .watches_stream(limit_ranges, echoes.around(triggers::on_child))
        .watches_stream(cluster_policies, echoes.around(triggers::on_child))
        .watches_stream(
            app_projects,
            echoes.around(|p: &AppProject| triggers::on_app_project(p.meta())),
        )
}

/// The CustomerGroup controller: reconciles a group when it changes, when one of its
/// members changes ([`triggers::groups_of_member`]), and every resync period.
pub async fn group_controller(
    context: Arc<Context>,
    members: super::caches::Stream<crate::api::Customer>,
    hooks: &Hooks,
) {
    let default_group = context.options.settings.default_group.clone();
    let resync = context.options.resync;
    let client = context.client.clone();
    let group_context = Arc::new(group::GroupContext {
        client: client.clone(),
        customers: context.caches.customers.clone(),
        default_group: default_group.clone(),
        resync,
        directory: context,
    });
    let presence = ApiPresence::new(&hooks.health);
    Controller::new(Api::<CustomerGroup>::all(client), WatcherConfig::default())
        // Its own watch of groups backs off like every other watch: a shorter pause sent
        // a request (and a warning) five times a second while the CRD was gone.
        .trigger_backoff(WatchBackoff::default())
        .watches_stream(members, move |c| {
            triggers::groups_of_member(&c, &default_group)
        })
        .reconcile_all_on(ticks(resync))
        .graceful_shutdown_on(hooks.shutdown.clone())
        .run(
            hooks.metrics.measured(group::reconcile),
            group::error_policy,
            group_context,
        )
        .for_each(move |result| {
            presence.log("group", result);
            futures::future::ready(())
        })
        .await;
}

/// The CustomerClaim controller: reconciles a claim when it changes, when its Customer
/// or another customer of its partner changes, when its partner changes, and every
/// resync period. One claim at a time, so that the partner's count limit counts every
/// Customer made before.
pub async fn claim_controller(context: Arc<Context>, changes: ClaimChanges, hooks: &Hooks) {
    let ClaimChanges {
        claims,
        partners,
        customers,
    } = changes;
    let (on_customer, on_partner) = (context.caches.clone(), context.caches.clone());
    let presence = ApiPresence::new(&hooks.health);
    Controller::for_stream(claims, context.caches.claims.clone())
        .with_config(ControllerConfig::default().concurrency(1))
        .trigger_backoff(BriefPause)
        .watches_stream(customers, move |c| {
            triggers::claims_of_customer(&c, &on_customer)
        })
        .watches_stream(partners, move |p| {
            triggers::claims_of_partner(&p, &on_partner)
        })
        .reconcile_all_on(ticks(context.options.resync))
        .graceful_shutdown_on(hooks.shutdown.clone())
        .run(
            hooks.metrics.measured(claim::reconcile),
            claim::error_policy,
            context,
        )
        .for_each(move |result| {
            presence.log("claim", result);
            futures::future::ready(())
        })
        .await;
}

/// The Partner controller: reconciles a partner when it changes, when one of its
/// customers changes, and every resync period.
pub async fn partner_controller(context: Arc<Context>, changes: PartnerChanges, hooks: &Hooks) {
    let PartnerChanges {
        partners,
        customers,
    } = changes;
    let presence = ApiPresence::new(&hooks.health);
    Controller::for_stream(partners, context.caches.partners.clone())
        .trigger_backoff(BriefPause)
        .watches_stream(customers, |c| triggers::partners_of_customer(&c))
        .reconcile_all_on(ticks(context.options.resync))
        .graceful_shutdown_on(hooks.shutdown.clone())
        .run(
            hooks.metrics.measured(partner::reconcile),
            partner::error_policy,
            context,
        )
        .for_each(move |result| {
            presence.log("partner", result);
            futures::future::ready(())
        })
        .await;
}

/// A stream that yields once every `period`.
fn ticks(period: Duration) -> impl futures::Stream<Item = ()> + Send + 'static {
    futures::stream::unfold((), move |()| async move {
        tokio::time::sleep(period).await;
        Some(((), ()))
    })
}

/// Whether the apiserver serves the operator's API, as the controllers' watches find it:
/// while it does not (the CRDs were deleted, an uninstall), `/readyz` reports not ready
/// and the watches' 404s are logged once, not at every retry.
#[derive(Clone)]
struct ApiPresence {
    health: Health,
    missing: Arc<AtomicBool>,
}

/// What a controller's run yields for each reconcile.
type Finished<K, E> = Result<
    (
        kube::runtime::reflector::ObjectRef<K>,
        kube::runtime::controller::Action,
    ),
    kube::runtime::controller::Error<E, watcher::Error>,
>;

impl ApiPresence {
    fn new(health: &Health) -> Self {
        ApiPresence {
            health: health.clone(),
            missing: Default::default(),
        }
    }

    /// Logs one finished reconcile of a `what` (the error policy has logged a failed
    /// one, with the object, the reason and the retry).
    fn log<K: Resource, E: std::fmt::Display>(&self, what: &str, result: Finished<K, E>) {
        use kube::runtime::controller::Error;
        match result {
            Ok((object, _)) => {
                self.served();
                tracing::debug!(object = %object.name, what, "reconciled")
            }
            Err(Error::ObjectNotFound(object)) => {
                tracing::debug!(object = %object.name, what, "gone before its reconcile")
            }
            Err(Error::ReconcilerFailed(_, object)) => {
                tracing::debug!(object = %object.name, what, "reconcile failed, retry scheduled")
            }
            Err(Error::QueueError(error)) if self.missing(&error) => {}
            Err(Error::QueueError(watcher::Error::WatchError(status))) if status.code == 410 => {
                tracing::info!(what, message = %status.message, "watch expired (410 Gone): listing again")
            }
            Err(Error::QueueError(error)) => tracing::warn!(%error, what, "watch failed"),
            Err(error) => tracing::warn!(%error, what, "reconcile failed"),
        }
    }

    /// Whether a watch error says the API is not served (404); the first one of an
    /// absence is logged and makes the replica not ready.
    fn missing(&self, error: &watcher::Error) -> bool {
        let not_found = match error {
            watcher::Error::InitialListFailed(kube::Error::Api(s))
            | watcher::Error::WatchStartFailed(kube::Error::Api(s))
            | watcher::Error::WatchFailed(kube::Error::Api(s)) => s.code == 404,
            watcher::Error::WatchError(s) => s.code == 404,
            _ => false,
        };
        if not_found {
            if !self.missing.swap(true, Ordering::SeqCst) {
                tracing::warn!(
                    "the apiserver does not serve the customers.dev API (its CRDs were deleted?): waiting for it, not ready meanwhile"
                );
            }
            self.health.advance(Phase::Ready, Phase::ApiMissing);
        }
        not_found
    }

    /// A reconcile succeeded: the API is served.
    fn served(&self) {
        if self.missing.swap(false, Ordering::SeqCst) {
            tracing::info!("the customers.dev API is served again");
            self.health.advance(Phase::ApiMissing, Phase::Ready);
        }
    }
}
