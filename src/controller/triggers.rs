//! Who is reconciled when something changes: every rule, for every kind the
//! controllers watch, pure over the caches. The wiring ([`super::wiring`]) hands each
//! change to the rule of its kind.

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, ResourceQuota};
use kube::core::{ObjectMeta, PartialObjectMeta};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};

use super::caches::Caches;
use super::compact::Compact;
use super::index::Index;
use super::inflight::InFlight;
use crate::api::{
    Customer, CustomerClaim, CustomerGroup, CustomerUsers, LABEL_CUSTOMER, LABEL_QUOTA_TOTAL,
    Partner, partner_namespace,
};
use crate::desired::ownership::name_prefixes;
use crate::desired::resolve;

/// The Customers to reconcile.
pub type Targets = Vec<ObjectRef<Customer>>;

/// A namespace appeared, changed or went: the customer its label names, the customers
/// whose names could begin its name (one whose label was removed or changed, or a
/// foreign one that appears or goes, concerns them), and the customers that a new or
/// relabelled namespace of another customer may open a path into
/// ([`exposed_to_new_namespaces`]).
pub fn on_namespace(ns: &PartialObjectMeta<Namespace>, caches: &Caches) -> Targets {
    let exposed = exposed_to_new_namespaces(
        &caches.foreign_policies_by_customer,
        &caches.customers_by_reference,
    );
    owner_of(&ns.metadata)
        .into_iter()
        .chain(claimants(&ns.name_any(), &caches.customers))
        .chain(exposed)
        .collect()
}

/// A NetworkPolicy, the operator's or anyone else's, changed: the customers whose
/// isolation it may change, the one its label names and the one whose namespace holds
/// it.
pub fn on_policy(policy: &ObjectMeta, caches: &Caches) -> Targets {
    customers_of_policy(policy, &caches.namespaces)
}

/// A RoleBinding, LimitRange or ClusterNetworkPolicy the operator
/// labelled changed: the customer it belongs to (someone else's ClusterNetworkPolicy:
/// nobody; the next resync checks it).
pub fn on_child<K: Resource>(child: &K) -> Targets {
    owner_of(child.meta()).into_iter().collect()
}

/// An AppProject of the Argo CD namespace changed: the customer its label names, and the
/// customer of its name (the project might be someone else's under that name, or gone
/// to make way for the customer's own).
pub fn on_app_project(project: &ObjectMeta) -> Targets {
    let mut targets: Targets = owner_of(project).into_iter().collect();
    if let Some(name) = project.name.as_deref() {
        let by_name = ObjectRef::new(name);
        if !targets.contains(&by_name) {
            targets.push(by_name);
        }
    }
    targets
}

/// Which ResourceQuota changes concern the operator. A quota's status moves with every
/// pod created or gone; only a quota holding a share of a total
/// ([`LABEL_QUOTA_TOTAL`]) needs its customer reconciled for that. Any other quota's
/// customer is reconciled when the quota's content (what the operator applied: spec,
/// labels) changes or the quota is gone, not on status updates.
#[derive(Default)]
pub struct QuotaChanges {
    /// A hash of each cached quota's content as last seen, by `namespace/name`.
    seen: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

impl QuotaChanges {
    /// The customer to reconcile after this quota event, if any.
    pub fn on_quota(&self, quota: &Compact<ResourceQuota>, caches: &Caches) -> Targets {
        let meta = &quota.metadata;
        let key = format!(
            "{}/{}",
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default()
        );
        let gone = caches
            .children
            .resource_quotas
            .get(&ObjectRef::from_obj(quota))
            .is_none();
        let shared = meta
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(LABEL_QUOTA_TOTAL));
        let labels = format!("{:?}{:?}", meta.labels, meta.deletion_timestamp);
        let content = super::apply::fnv1a(format!("{}{labels}", quota.body()).as_bytes());
        let mut seen = self.seen.lock().expect("quota changes lock");
        let changed = if gone {
            seen.remove(&key);
            true
        } else {
            seen.insert(key, content) != Some(content)
        };
        if gone || shared || changed {
            owner_of(meta).into_iter().collect()
        } else {
            Targets::new()
        }
    }
}

/// A group changed: its members.
pub fn on_group(group: &CustomerGroup, caches: &Caches, default_group: &str) -> Targets {
    caches
        .related(default_group)
        .members(&group.name_any())
        .iter()
        .map(|name| ObjectRef::new(name))
        .collect()
}

/// A Customer changed: the customers that depend on it
/// ([`super::related::Related::dependents`]).
pub fn on_customer(changed: &Customer, caches: &Caches, default_group: &str) -> Targets {
    let zone_open = |group: &str| {
        caches
            .groups
            .get(&ObjectRef::new(group))
            .and_then(|g| g.spec.network.clone())
            .is_some_and(|n| n.allow_within_group)
    };
    caches
        .related(default_group)
        .dependents(changed, zone_open)
        .iter()
        .map(|name| ObjectRef::new(name))
        .collect()
}

/// A Partner changed: its customers (its people's roles, and the claims' bounds).
pub fn on_partner(partner: &Partner, caches: &Caches) -> Targets {
    customers_of_partner(&partner.name_any(), caches)
        .iter()
        .map(|c| ObjectRef::from_obj(c.as_ref()))
        .collect()
}

/// CustomerUsers changed: the customer holding its namespace and that customer's inner
/// customers (its admins are admins there too).
pub fn on_users(users: &CustomerUsers, caches: &Caches) -> Targets {
    let Some(namespace) = users.namespace() else {
        return Vec::new();
    };
    let Some(holder) = crate::desired::Directory::namespace_holder(caches, &namespace) else {
        return Vec::new();
    };
    let mut targets = vec![ObjectRef::new(&holder)];
    if let Some(customer) = caches.customer(&holder) {
        let all = caches.customers.state();
        targets.extend(
            crate::desired::relations::inner_customers(&customer, &all)
                .iter()
                .map(|c| ObjectRef::from_obj(c.as_ref())),
        );
    }
    targets
}

/// A Customer changed: for the claim controller, the claim that made it and, when it
/// has a partner, every claim in the partner's namespace (a customer gone may free a
/// place under the partner's count limit).
pub fn claims_of_customer(customer: &Customer, caches: &Caches) -> Vec<ObjectRef<CustomerClaim>> {
    let own = crate::desired::selfservice::claim_of(customer)
        .map(|(namespace, name)| ObjectRef::new(&name).within(&namespace));
    let partner = customer.spec.partner.as_ref().map(|p| p.name.clone());
    own.into_iter()
        .chain(
            partner
                .into_iter()
                .flat_map(|p| claims_in(&partner_namespace(&p), caches)),
        )
        .collect()
}

/// A Partner changed: for the claim controller, every claim in its namespace.
pub fn claims_of_partner(partner: &Partner, caches: &Caches) -> Vec<ObjectRef<CustomerClaim>> {
    claims_in(&partner_namespace(&partner.name_any()), caches)
}

fn claims_in(namespace: &str, caches: &Caches) -> Vec<ObjectRef<CustomerClaim>> {
    caches
        .claims
        .state()
        .iter()
        .filter(|c| c.namespace().as_deref() == Some(namespace))
        .map(|c| ObjectRef::from_obj(c.as_ref()))
        .collect()
}

/// A Customer changed: for the partner controller, the partner its spec names and the
/// one its status still names.
pub fn partners_of_customer(customer: &Customer) -> Vec<ObjectRef<Partner>> {
    let mut partners: Vec<String> = customer
        .spec
        .partner
        .iter()
        .map(|p| p.name.clone())
        .collect();
    partners.extend(customer.status.as_ref().and_then(|s| s.partner.clone()));
    partners.dedup();
    partners.iter().map(|p| ObjectRef::new(p)).collect()
}

/// The cached Customers whose `spec.partner.name` is `partner`.
pub fn customers_of_partner(partner: &str, caches: &Caches) -> Vec<Arc<Customer>> {
    super::related::of_partner(&caches.customers_by_reference, &caches.customers, partner)
}

/// A Customer changed: for the group controller, the group it is in and the one its
/// status still names (the one it leaves).
pub fn groups_of_member(customer: &Customer, default_group: &str) -> Vec<ObjectRef<CustomerGroup>> {
    let mut groups = vec![resolve::group_name_or(customer, default_group)];
    groups.extend(customer.status.as_ref().and_then(|s| s.group.clone()));
    groups.dedup();
    groups.iter().map(|g| ObjectRef::new(g)).collect()
}

/// The echoes of the operator's own writes ([`InFlight::echoes`]): the watch event of an
/// object exactly as a reconcile wrote it tells that reconcile's customer nothing new,
/// so it is not reconciled for it. Whoever else the change concerns still is.
#[derive(Clone)]
pub struct Echoes(pub Arc<InFlight>);

impl Echoes {
    /// `targets` of a change to `object`, without the customer its label names when the
    /// change is the echo of that customer's own write.
    pub fn drop_writer<K>(&self, object: &K, targets: Targets) -> Targets
    where
        K: Resource<DynamicType = ()>,
    {
        let writer = owner_of(object.meta());
        match writer {
            Some(writer) if self.0.echoes(&K::kind(&()), object) => {
                targets.into_iter().filter(|t| *t != writer).collect()
            }
            _ => targets,
        }
    }

    /// `rule` for the changes of one kind the operator writes, leaving out the writer of
    /// an echo ([`Self::drop_writer`]).
    pub fn around<K>(
        &self,
        rule: impl Fn(&K) -> Targets + Send + Sync + 'static,
    ) -> impl Fn(K) -> Targets + Send + Sync + 'static
    where
        K: Resource<DynamicType = ()>,
    {
        let echoes = self.clone();
        move |object| {
            let targets = rule(&object);
            echoes.drop_writer(&object, targets)
        }
    }

    /// Whether a Customer event is the echo of the operator's own write of its
    /// finalizer or its status (the reconcile that wrote it went on with what it stored).
    pub fn of_customer(&self, customer: &Customer) -> bool {
        self.0.echoes("Customer/finalizers", customer) || self.0.echoes("Customer/status", customer)
    }
}

/// The Customer a labelled object belongs to.
fn owner_of(meta: &ObjectMeta) -> Option<ObjectRef<Customer>> {
    meta.labels
        .as_ref()?
        .get(LABEL_CUSTOMER)
        .map(|name| ObjectRef::new(name))
}

/// The cached Customers whose names could begin a namespace's name: the ones that may
/// ask for it.
fn claimants(namespace: &str, customers: &Store<Customer>) -> Targets {
    name_prefixes(namespace)
        .map(ObjectRef::new)
        .filter(|candidate| customers.get(candidate).is_some())
        .collect()
}

/// The customers whose isolation a change of this NetworkPolicy may change.
fn customers_of_policy(
    policy: &ObjectMeta,
    namespaces: &Store<PartialObjectMeta<Namespace>>,
) -> Targets {
    let by_label = policy
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_CUSTOMER))
        .cloned();
    let by_namespace = namespaces
        .get(&ObjectRef::new(
            policy.namespace.as_deref().unwrap_or_default(),
        ))
        .and_then(|ns| ns.labels().get(LABEL_CUSTOMER).cloned());
    let names: BTreeSet<String> = by_label.into_iter().chain(by_namespace).collect();
    names.iter().map(|n| ObjectRef::new(n)).collect()
}

/// The customers a new or relabelled namespace of another customer may open a path
/// into: those whose namespaces hold one of the `foreign` (not the operator's)
/// NetworkPolicies, and those with an `allowFrom.namespaceSelector` (both may select
/// namespaces by labels).
fn exposed_to_new_namespaces(
    foreign_by_customer: &Index,
    customers_by_reference: &Index,
) -> Targets {
    let mut names: BTreeSet<String> = foreign_by_customer.keys().into_iter().collect();
    names.extend(super::related::opening_by_labels(customers_by_reference));
    names.iter().map(|n| ObjectRef::new(n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::inflight;
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;

    use crate::api::{AllowFrom, CustomerNetwork, CustomerSpec, CustomerStatus};

    fn store_of<K>(objects: Vec<K>) -> Store<K>
    where
        K: kube::runtime::reflector::Lookup + Clone + 'static,
        K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    {
        let (store, mut writer) = reflector::store();
        for object in objects {
            writer.apply_watcher_event(&Event::Apply(object));
        }
        store
    }

    fn namespace(name: &str, customer: Option<&str>) -> PartialObjectMeta<Namespace> {
        let mut ns = PartialObjectMeta::<Namespace>::default();
        ns.metadata.name = Some(name.into());
        ns.metadata.labels = customer.map(|c| [(LABEL_CUSTOMER.to_string(), c.to_string())].into());
        ns
    }

    fn names(targets: Targets) -> Vec<String> {
        let mut names: Vec<String> = targets.into_iter().map(|t| t.name).collect();
        names.sort();
        names
    }

    #[test]
    fn a_namespace_concerns_its_labelled_customer_and_those_whose_names_begin_it() {
        let customers = store_of(vec![
            customer("shop", None),
            customer("shop-eu", None),
            customer("other", None),
        ]);
        assert_eq!(
            names(claimants("shop-eu-prod", &customers)),
            ["shop", "shop-eu"]
        );
        assert!(claimants("unrelated", &customers).is_empty());
        let labelled = namespace("x-prod", Some("other"));
        assert_eq!(
            names(owner_of(&labelled.metadata).into_iter().collect()),
            ["other"]
        );
    }

    fn written(
        writes: &InFlight,
        mut object: PartialObjectMeta<Namespace>,
        version: &str,
    ) -> PartialObjectMeta<Namespace> {
        object.metadata.resource_version = Some(version.into());
        writes.record(inflight::target("Namespace", &object), 1, Some(version));
        object
    }

    #[test]
    fn the_echo_of_a_write_leaves_out_only_its_writer() {
        let echoes = Echoes(Arc::new(InFlight::default()));
        let ns = written(&echoes.0, namespace("shop-eu-prod", Some("shop-eu")), "7");
        let targets = vec![
            ObjectRef::new("shop-eu"),
            ObjectRef::new("shop"),
            ObjectRef::new("shop-eu"),
        ];
        assert_eq!(names(echoes.drop_writer(&ns, targets.clone())), ["shop"]);
        let mut later = ns.clone();
        later.metadata.resource_version = Some("8".into());
        assert_eq!(
            names(echoes.drop_writer(&later, targets.clone())),
            ["shop", "shop-eu", "shop-eu"],
            "someone changed it after the operator's write"
        );
        let unlabelled = written(&echoes.0, namespace("shop-eu-dev", None), "9");
        assert_eq!(names(echoes.drop_writer(&unlabelled, targets)).len(), 3);
    }

    #[test]
    fn a_customer_event_is_an_echo_of_its_finalizer_or_status_write() {
        let echoes = Echoes(Arc::new(InFlight::default()));
        let mut shop = customer("shop", None);
        shop.metadata.resource_version = Some("5".into());
        assert!(!echoes.of_customer(&shop));
        echoes
            .0
            .record(inflight::target("Customer/status", &shop), 1, Some("5"));
        assert!(echoes.of_customer(&shop));
        shop.metadata.resource_version = Some("6".into());
        assert!(!echoes.of_customer(&shop), "a change after it");
        echoes
            .0
            .record(inflight::target("Customer/finalizers", &shop), 1, Some("6"));
        assert!(echoes.of_customer(&shop));
    }

    #[test]
    fn a_policy_concerns_the_customer_it_names_and_the_one_whose_namespace_holds_it() {
        let namespaces = store_of(vec![namespace("shop-prod", Some("shop"))]);
        let mut policy = ObjectMeta {
            name: Some("p".into()),
            namespace: Some("shop-prod".into()),
            ..Default::default()
        };
        assert_eq!(names(customers_of_policy(&policy, &namespaces)), ["shop"]);
        policy.labels = Some([(LABEL_CUSTOMER.to_string(), "intruder".to_string())].into());
        assert_eq!(
            names(customers_of_policy(&policy, &namespaces)),
            ["intruder", "shop"]
        );
        policy.namespace = Some("elsewhere".into());
        policy.labels = None;
        assert!(customers_of_policy(&policy, &namespaces).is_empty());
    }

    #[test]
    fn a_member_concerns_the_group_it_joins_and_the_one_it_leaves() {
        let mut mover = customer("mover", Some("new"));
        assert_eq!(groups_of_member(&mover, "all").len(), 1);
        mover.status = Some(CustomerStatus {
            group: Some("old".into()),
            ..Default::default()
        });
        let groups: Vec<String> = groups_of_member(&mover, "all")
            .into_iter()
            .map(|g| g.name)
            .collect();
        assert_eq!(groups, ["new", "old"]);
        assert_eq!(
            groups_of_member(&customer("plain", None), "all")[0].name,
            "all"
        );
    }

    #[test]
    fn a_selector_in_allow_from_exposes_the_customer_to_every_new_namespace() {
        let selecting = allowing(
            customer("picky", None),
            AllowFrom {
                namespace_selector: Some(Default::default()),
                ..Default::default()
            },
        );
        let by_reference = indexed(&[selecting, customer("plain", None)]);
        let empty = || Index::new(|meta| meta.namespace.clone());
        assert_eq!(
            names(exposed_to_new_namespaces(&empty(), &by_reference)),
            ["picky"]
        );
    }

    /// The index and the store, both fed the same events, as the Customer watch feeds
    /// them.
    struct Fed {
        index: Index,
        customers: Store<Customer>,
        writer: reflector::store::Writer<Customer>,
    }

    impl Fed {
        fn new() -> Fed {
            let (customers, writer) = reflector::store();
            Fed {
                index: crate::controller::related::index(),
                customers,
                writer,
            }
        }

        fn send(&mut self, event: Event<Customer>) {
            self.index
                .observe_keys(&event, crate::controller::related::keys);
            self.writer.apply_watcher_event(&event);
        }

        fn related(&self) -> crate::controller::related::Related<'_> {
            crate::controller::related::Related {
                index: &self.index,
                customers: &self.customers,
                default_group: "all",
            }
        }
    }

    #[test]
    fn the_index_of_customers_follows_changes_deletions_and_relists() {
        let mut fed = Fed::new();
        let b = customer("b", None);
        let set =
            |names: &[&str]| -> BTreeSet<String> { names.iter().map(|n| n.to_string()).collect() };
        fed.send(Event::Apply(allowing(
            customer("a", None),
            from_customer("b"),
        )));
        fed.send(Event::Apply(b.clone()));
        fed.send(Event::Apply(customer("c", Some("zone"))));
        assert_eq!(fed.related().dependents(&b, |_| false), ["a"]);
        assert_eq!(fed.related().members("all"), set(&["a", "b"]));
        // a stops naming b.
        fed.send(Event::Apply(customer("a", None)));
        assert!(fed.related().dependents(&b, |_| false).is_empty());
        // c names the default group, then goes.
        fed.send(Event::Apply(customer("c", Some("all"))));
        assert_eq!(fed.related().members("all"), set(&["a", "b", "c"]));
        assert!(fed.related().members("zone").is_empty());
        fed.send(Event::Delete(customer("c", Some("all"))));
        assert_eq!(fed.related().members("all"), set(&["a", "b"]));
        // A relist replaces everything at its end.
        fed.send(Event::Init);
        fed.send(Event::InitApply(allowing(
            customer("d", None),
            from_customer("b"),
        )));
        fed.send(Event::InitDone);
        assert_eq!(fed.related().dependents(&b, |_| false), ["d"]);
        assert_eq!(fed.related().members("all"), set(&["d"]));
    }

    #[test]
    fn a_partners_customers_are_found_by_its_name() {
        let mut fed = Fed::new();
        let mut served = customer("served", None);
        served.spec.partner = Some(crate::api::PartnerRef {
            name: "acme".into(),
            security_consultants: Vec::new(),
        });
        fed.send(Event::Apply(served));
        fed.send(Event::Apply(customer("alone", None)));
        let of = |partner| -> Vec<String> {
            crate::controller::related::of_partner(&fed.index, &fed.customers, partner)
                .iter()
                .map(|c| c.name_any())
                .collect()
        };
        assert_eq!(of("acme"), ["served"]);
        assert!(of("other").is_empty());
    }

    fn customer(name: &str, group: Option<&str>) -> Customer {
        Customer::new(
            name,
            CustomerSpec {
                display_name: name.into(),
                contact_email: "ops@example.org".into(),
                group: group.map(str::to_string),
                ..Default::default()
            },
        )
    }

    fn allowing(mut c: Customer, peer: AllowFrom) -> Customer {
        c.spec.network = Some(CustomerNetwork {
            allow_from: vec![peer],
            ..Default::default()
        });
        c
    }

    fn from_customer(name: &str) -> AllowFrom {
        AllowFrom {
            customer: Some(name.into()),
            ..Default::default()
        }
    }

    fn from_group(name: &str) -> AllowFrom {
        AllowFrom {
            group: Some(name.into()),
            ..Default::default()
        }
    }

    /// The customers filed by what they name, as the Customer watch files them.
    fn indexed(all: &[Customer]) -> Index {
        let index = crate::controller::related::index();
        for c in all {
            index.observe_keys(&Event::Apply(c.clone()), crate::controller::related::keys);
        }
        index
    }

    fn of(changed: &Customer, all: Vec<Customer>, open: &[&str]) -> Vec<String> {
        let index = indexed(&all);
        let customers = store_of(all);
        let related = crate::controller::related::Related {
            index: &index,
            customers: &customers,
            default_group: "all",
        };
        related.dependents(changed, |g| open.contains(&g))
    }

    #[test]
    fn both_sides_of_an_allow_from_depend_on_each_other() {
        let a = allowing(customer("a", None), from_customer("b"));
        let b = customer("b", None);
        let c = customer("c", None);
        let all = vec![a.clone(), b.clone(), c.clone()];
        assert_eq!(of(&a, all.clone(), &[]), vec!["b"]);
        assert_eq!(of(&b, all.clone(), &[]), vec!["a"]);
        assert!(of(&c, all, &[]).is_empty());
    }

    #[test]
    fn an_open_zone_ties_its_members_and_a_group_peer_its_members() {
        let a = customer("a", Some("zone"));
        let b = customer("b", Some("zone"));
        let c = allowing(customer("c", None), from_group("zone"));
        let d = customer("d", None);
        let all = vec![a.clone(), b.clone(), c.clone(), d.clone()];
        assert_eq!(of(&a, all.clone(), &["zone"]), vec!["b", "c"]);
        assert_eq!(of(&a, all.clone(), &[]), vec!["c"]);
        assert_eq!(of(&d, all, &["zone"]), Vec::<String>::new());
    }

    #[test]
    fn inner_customers_depend_on_every_ancestor() {
        let top = customer("top", None);
        let mut mid = customer("mid", None);
        mid.spec.parent = Some("top".into());
        let mut leaf = customer("leaf", None);
        leaf.spec.parent = Some("mid".into());
        let all = vec![top.clone(), mid.clone(), leaf.clone()];
        assert_eq!(of(&top, all.clone(), &[]), vec!["leaf", "mid"]);
        assert_eq!(of(&leaf, all, &[]), Vec::<String>::new());
    }

    #[test]
    fn a_customer_leaving_a_group_touches_the_group_it_leaves() {
        let mut mover = customer("mover", Some("new"));
        mover.status = Some(CustomerStatus {
            group: Some("old".into()),
            ..Default::default()
        });
        let stayer = customer("stayer", Some("old"));
        let watcher = allowing(customer("watcher", None), from_group("old"));
        let newcomer = customer("newcomer", Some("new"));
        let all = vec![mover.clone(), stayer, watcher, newcomer];
        assert_eq!(
            of(&mover, all, &["old", "new"]),
            vec!["newcomer", "stayer", "watcher"]
        );
    }
}
