//! A hostile customer admin (issue 7, item 4), through the test apiserver's token user
//! `alice` (or, on an existing cluster, the admin impersonating her), with the customer
//! ClusterRoles exactly as the Helm chart renders them. Alice is an admin of customer A.
//! She can work in A's namespaces, and cannot: read or write customer B's; change or
//! delete the operator's NetworkPolicies, quota or limits in her own; relabel or delete
//! her namespaces; grant anyone a role beyond her own; create a namespace or a
//! Customer. What RBAC lets her touch of the operator's (its RoleBindings, since admins
//! manage bindings) the operator puts back. And a namespace a cluster admin labels to
//! look like A's gains no network path to A: policies select peers by name only.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use customer_operator::api::{LABEL_CUSTOMER, LABEL_GROUP, LABEL_MANAGED_BY, LABEL_NAMESPACE_NAME};
use customer_operator::controller::status::types;
use customer_operator::desired::network;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, LimitRange, Namespace, ResourceQuota, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// A client as the token user `user` (`kubeconfig-<user>` beside the admin kubeconfig),
/// or the admin impersonating that user where there is no such file.
async fn client_as(user: &str) -> Client {
    let own = support::kubeconfig().with_file_name(format!("kubeconfig-{user}"));
    let config = if own.exists() {
        let file = Kubeconfig::read_from(&own).expect("user kubeconfig readable");
        Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
            .await
            .expect("user kubeconfig valid")
    } else {
        support::config_as(user).await
    };
    Client::try_from(config).expect("client")
}

fn object<K: DeserializeOwned>(value: Value) -> K {
    serde_json::from_value(value).expect("a valid object")
}

/// Tallies what the hostile admin tried.
#[derive(Default)]
struct Tally {
    allowed: usize,
    refused: usize,
    wrong: Vec<String>,
}

impl Tally {
    fn allowed<T>(&mut self, what: &str, result: Result<T, kube::Error>) {
        match result {
            Ok(_) => self.allowed += 1,
            Err(e) => self.wrong.push(format!("should be allowed: {what}: {e}")),
        }
    }
    fn refused<T>(&mut self, what: &str, result: Result<T, kube::Error>) {
        match result {
            Err(kube::Error::Api(s)) if s.code == 403 => self.refused += 1,
            Err(e) => self
                .wrong
                .push(format!("should be forbidden (403): {what}: {e}")),
            Ok(_) => self
                .wrong
                .push(format!("should be forbidden, succeeded: {what}")),
        }
    }
}

/// Every namespace name any NetworkPolicy of `ns` admits, and whether every namespace
/// selector there selects by name only.
async fn admitted(client: &Client, ns: &str) -> (BTreeSet<String>, bool) {
    let policies = Api::<NetworkPolicy>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    let mut names = BTreeSet::new();
    let mut by_name_only = true;
    for p in policies.items {
        for peer in network::peers(&p.spec.unwrap_or_default()) {
            let Some(selector) = peer.namespace_selector else {
                continue;
            };
            for (k, v) in selector.match_labels.unwrap_or_default() {
                by_name_only &= k == LABEL_NAMESPACE_NAME;
                names.insert(v);
            }
            for e in selector.match_expressions.unwrap_or_default() {
                by_name_only &= e.key == LABEL_NAMESPACE_NAME && e.operator == "In";
                names.extend(e.values.unwrap_or_default());
            }
        }
    }
    (names, by_name_only)
}

#[tokio::test]
async fn a_customer_admin_stays_inside_her_customer() {
    let admin = support::client().await;
    support::operator();
    // The customer roles, as the chart renders them.
    support::apply_chart_rbac(&admin).await;
    let p = support::unique("ho");
    let (a, b) = (format!("{p}-a"), format!("{p}-b"));
    support::create_customer(
        &admin,
        &a,
        json!({"displayName": "A", "contactEmail": "ops@a.example",
               "namespaces": [{"name": "app"}, {"name": "db"}],
               "access": {"admins": [{"kind": "User", "name": "alice"}]},
               "quota": {"hard": {"pods": "10"}},
               "limits": [{"type": "Container", "max": {"cpu": "2"}}]}),
    )
    .await;
    support::create_customer(
        &admin,
        &b,
        json!({"displayName": "B", "contactEmail": "ops@b.example",
               "access": {"admins": [{"kind": "User", "name": "bob"}]}}),
    )
    .await;
    support::wait_condition(&admin, &a, types::READY, "True").await;
    support::wait_condition(&admin, &b, types::READY, "True").await;
    let (own, other) = (format!("{a}-app"), b.clone());
    let alice = client_as("alice").await;
    let mut tally = Tally::default();
    let pp = PostParams::default();

    // Work in her own namespaces.
    let cm = |name: &str| -> ConfigMap {
        object(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}}),
        )
    };
    let own_cms: Api<ConfigMap> = Api::namespaced(alice.clone(), &own);
    tally.allowed(
        "create a ConfigMap in her namespace",
        own_cms.create(&pp, &cm("settings")).await,
    );
    let deployment: Deployment = object(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "nginx",
                                       "resources": {"limits": {"cpu": "1"}}}]}}}}));
    tally.allowed(
        "create a Deployment in her namespace",
        Api::<Deployment>::namespaced(alice.clone(), &own)
            .create(&pp, &deployment)
            .await,
    );
    tally.allowed(
        "read Secrets in her namespace",
        Api::<Secret>::namespaced(alice.clone(), &own)
            .list(&ListParams::default())
            .await,
    );
    let binding = |name: &str, role: &str, user: &str| -> RoleBinding {
        object(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}),
        )
    };
    let own_bindings: Api<RoleBinding> = Api::namespaced(alice.clone(), &own);
    tally.allowed(
        "grant a colleague customer-view (within her own rights)",
        own_bindings
            .create(&pp, &binding("team-view", "customer-view", "dave"))
            .await,
    );
    tally.allowed(
        "read the NetworkPolicies that isolate her",
        Api::<NetworkPolicy>::namespaced(alice.clone(), &own)
            .list(&ListParams::default())
            .await,
    );

    // Another customer's namespace: nothing.
    let other_cms: Api<ConfigMap> = Api::namespaced(alice.clone(), &other);
    tally.refused(
        "list ConfigMaps of customer B",
        other_cms.list(&ListParams::default()).await,
    );
    tally.refused(
        "create a ConfigMap in customer B",
        other_cms.create(&pp, &cm("intruder")).await,
    );
    tally.refused(
        "read Secrets of customer B",
        Api::<Secret>::namespaced(alice.clone(), &other)
            .list(&ListParams::default())
            .await,
    );
    tally.refused(
        "bind herself in customer B",
        Api::<RoleBinding>::namespaced(alice.clone(), &other)
            .create(&pp, &binding("me-too", "customer-admin", "alice"))
            .await,
    );

    // The operator's isolation, quota and limits in her own namespace.
    let policies: Api<NetworkPolicy> = Api::namespaced(alice.clone(), &own);
    let dp = DeleteParams::default();
    let merge = |v: Value| Patch::Merge(v);
    let patch = PatchParams::default();
    tally.refused(
        "delete the default-deny policy",
        policies.delete("customer-default-deny", &dp).await,
    );
    tally.refused(
        "widen the same-customer policy",
        policies
            .patch(
                "customer-allow-same-customer",
                &patch,
                &merge(json!({"spec": {"ingress": [{}]}})),
            )
            .await,
    );
    let allow_all: NetworkPolicy = object(
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "allow-all"},
        "spec": {"podSelector": {}, "ingress": [{}], "egress": [{}], "policyTypes": ["Ingress", "Egress"]}}),
    );
    tally.refused(
        "add an allow-all policy",
        policies.create(&pp, &allow_all).await,
    );
    let quotas: Api<ResourceQuota> = Api::namespaced(alice.clone(), &own);
    tally.refused(
        "delete the quota",
        quotas.delete("customer-quota", &dp).await,
    );
    tally.refused(
        "raise the quota",
        quotas
            .patch(
                "customer-quota",
                &patch,
                &merge(json!({"spec": {"hard": {"pods": "1000"}}})),
            )
            .await,
    );
    let limits: Api<LimitRange> = Api::namespaced(alice.clone(), &own);
    tally.refused(
        "delete the limits",
        limits.delete("customer-limits", &dp).await,
    );
    tally.refused(
        "change the limits",
        limits
            .patch(
                "customer-limits",
                &patch,
                &merge(json!({"spec": {"limits": []}})),
            )
            .await,
    );

    // Her namespaces themselves, and new ones.
    let namespaces: Api<Namespace> = Api::all(alice.clone());
    tally.refused(
        "relabel her namespace as customer B's",
        namespaces
            .patch(
                &own,
                &patch,
                &merge(json!({"metadata": {"labels": {LABEL_CUSTOMER: b}}})),
            )
            .await,
    );
    tally.refused("delete her namespace", namespaces.delete(&own, &dp).await);
    let joining: Namespace = object(json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": format!("{p}-joiner"),
                     "labels": {LABEL_CUSTOMER: b, LABEL_MANAGED_BY: "customer-operator"}}}));
    tally.refused(
        "create a namespace that joins customer B",
        namespaces.create(&pp, &joining).await,
    );
    let customer = json!({"apiVersion": "customers.dev/v1alpha1", "kind": "Customer",
        "metadata": {"name": format!("{p}-mine")},
        "spec": {"displayName": "Mine", "contactEmail": "a@a.example"}});
    tally.refused(
        "create a Customer",
        support::untyped(&alice, "Customer")
            .create(&pp, &object(customer))
            .await,
    );
    tally.refused(
        "edit her own Customer (a platform team's object)",
        support::untyped(&alice, "Customer")
            .patch(
                &a,
                &patch,
                &merge(json!({"spec": {"network": {"isolation": "None"}}})),
            )
            .await,
    );

    // Roles beyond her own.
    tally.refused(
        "bind cluster-admin in her namespace",
        own_bindings
            .create(&pp, &binding("root", "cluster-admin", "alice"))
            .await,
    );
    tally.refused(
        "bind the built-in admin role (it writes NetworkPolicies)",
        own_bindings
            .create(&pp, &binding("more", "admin", "dave"))
            .await,
    );
    let role: Role = object(
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "netpol-writer"},
        "rules": [{"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": ["*"]}]}),
    );
    tally.refused(
        "create a Role that writes NetworkPolicies",
        Api::<Role>::namespaced(alice.clone(), &own)
            .create(&pp, &role)
            .await,
    );

    // What RBAC lets an admin do to the operator's bindings, the operator undoes.
    let operator_bindings: Api<RoleBinding> = Api::namespaced(admin.clone(), &own);
    let before = operator_bindings.get("customer-admins").await.unwrap();
    tally.allowed(
        "delete the operator's customer-admins binding (admins manage bindings)",
        own_bindings.delete("customer-admins", &dp).await,
    );
    support::wait_for("the operator's binding back", || {
        let api = operator_bindings.clone();
        let old_uid = before.uid();
        let subjects = before.subjects.clone();
        async move {
            let now = api.get_opt("customer-admins").await.ok()??;
            (now.uid() != old_uid && now.subjects == subjects).then_some(())
        }
    })
    .await;

    // A namespace a cluster admin labels to look like A's.
    let lookalike_name = format!("{p}-lookalike");
    let lookalike: Namespace = object(json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": lookalike_name,
                     "labels": {LABEL_CUSTOMER: a, LABEL_GROUP: "all",
                                LABEL_MANAGED_BY: "customer-operator"}}}));
    let admin_namespaces: Api<Namespace> = Api::all(admin.clone());
    admin_namespaces.create(&pp, &lookalike).await.unwrap();
    // Give the operator a few resyncs (3 s here) to react to the label.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let mut admitting = 0;
    for ns in [format!("{a}-app"), format!("{a}-db")] {
        let (names, by_name_only) = admitted(&admin, &ns).await;
        assert!(
            by_name_only,
            "a policy of {ns} selects peers by a copyable label"
        );
        assert!(
            !names.contains(&lookalike_name),
            "{ns} admits the look-alike namespace"
        );
        assert!(names.contains(&format!("{a}-app")) && names.contains(&format!("{a}-db")));
        admitting += usize::from(names.contains(&lookalike_name));
    }
    let still = admin_namespaces.get(&lookalike_name).await.unwrap();
    assert!(
        still.metadata.deletion_timestamp.is_none(),
        "the operator deleted a look-alike"
    );
    assert!(
        still.owner_references().is_empty(),
        "the operator adopted a look-alike"
    );

    assert!(tally.wrong.is_empty(), "{}", tally.wrong.join("\n"));
    support::figures(&format!(
        "hostile customer admin: {} allowed actions succeeded, {} forbidden actions refused \
         by RBAC (403), 1 deleted operator binding put back; a look-alike namespace is \
         admitted by {admitting} policies",
        tally.allowed, tally.refused
    ));
    let _ = admin_namespaces.delete(&lookalike_name, &dp).await;
}

/// The order in which a new customer's objects appear (the etcd revision of each one's
/// first event): in every namespace the default-deny policy comes before every other
/// NetworkPolicy and every RoleBinding, so nobody the Customer names can start a
/// workload in a namespace that is not isolated yet, and no allow is ever alone.
#[tokio::test]
async fn isolation_is_in_place_before_anyone_gets_access() {
    use futures::TryStreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    let admin = support::client().await;
    support::operator();
    let name = support::unique("order");
    let selector = format!("{LABEL_CUSTOMER}={name}");
    let first_seen = std::sync::Arc::new(std::sync::Mutex::new(
        Vec::<(u64, String, String, String)>::new(),
    ));
    let record = |kind: &'static str| {
        let first_seen = first_seen.clone();
        move |o: kube::core::ObjectMeta| {
            let rv: u64 = o
                .resource_version
                .as_deref()
                .unwrap_or("0")
                .parse()
                .unwrap_or(0);
            let key = (
                kind.to_string(),
                o.namespace.unwrap_or_default(),
                o.name.unwrap_or_default(),
            );
            let mut seen = first_seen.lock().unwrap();
            if !seen
                .iter()
                .any(|(_, k, n, m)| (k, n, m) == (&key.0, &key.1, &key.2))
            {
                seen.push((rv, key.0, key.1, key.2));
            }
        }
    };
    let config = watcher::Config::default().labels(&selector);
    let policies =
        watcher(Api::<NetworkPolicy>::all(admin.clone()), config.clone()).applied_objects();
    let bindings = watcher(Api::<RoleBinding>::all(admin.clone()), config).applied_objects();
    let (on_policy, on_binding) = (record("NetworkPolicy"), record("RoleBinding"));
    let watch_policies = tokio::spawn(policies.try_for_each(move |p| {
        on_policy(p.metadata);
        futures::future::ready(Ok(()))
    }));
    let watch_bindings = tokio::spawn(bindings.try_for_each(move |b| {
        on_binding(b.metadata);
        futures::future::ready(Ok(()))
    }));
    tokio::time::sleep(Duration::from_millis(500)).await;
    support::create_customer(
        &admin,
        &name,
        json!({"displayName": "Order", "contactEmail": "ops@order.example",
               "namespaces": [{"name": "one"}, {"name": "two"}, {"name": "three"}],
               "access": {"admins": [{"kind": "User", "name": "alice"}],
                          "viewers": [{"kind": "User", "name": "dave"}]}}),
    )
    .await;
    support::wait_condition(&admin, &name, types::READY, "True").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    watch_policies.abort();
    watch_bindings.abort();
    let mut seen = first_seen.lock().unwrap().clone();
    seen.sort();
    let namespaces: BTreeSet<&String> = seen.iter().map(|(_, _, ns, _)| ns).collect();
    assert_eq!(namespaces.len(), 3, "{seen:?}");
    for ns in namespaces {
        let here: Vec<_> = seen.iter().filter(|(_, _, n, _)| n == ns).collect();
        assert_eq!(here[0].1, "NetworkPolicy", "{ns}: {here:?}");
        assert_eq!(here[0].3, "customer-default-deny", "{ns}: {here:?}");
    }
}

/// Item 10 of issue 23: RBAC lets a customer admin write Services whole, so the chart's
/// admission policy keeps externalIPs and ExternalName Services out of customer
/// namespaces, for her as for anyone, while ordinary Services work.
#[tokio::test]
async fn a_customer_admin_cannot_create_external_ip_or_external_name_services() {
    use k8s_openapi::api::core::v1::Service;
    let admin = support::client().await;
    support::operator();
    support::apply_chart_rbac(&admin).await;
    // The chart's Service policy, as `helm install` renders it for this apiserver.
    let name = "customer-operator-tenant-services";
    let policies: Vec<Value> = support::render_chart_for(&admin, &[])
        .await
        .into_iter()
        .filter(|d| d["metadata"]["name"] == name)
        .collect();
    assert_eq!(
        policies.len(),
        2,
        "the policy and its binding render on this apiserver"
    );
    let apply = PatchParams::apply("customer-operator-tests").force();
    support::apply_manifests(&admin, &policies, &apply).await;

    let p = support::unique("svc");
    support::create_customer(
        &admin,
        &p,
        json!({"displayName": "Services", "contactEmail": "ops@svc.example",
               "access": {"admins": [{"kind": "User", "name": "alice"}]}}),
    )
    .await;
    support::wait_condition(&admin, &p, types::READY, "True").await;
    let services: Api<Service> = Api::namespaced(client_as("alice").await, &p);
    let service = |name: &str, spec: Value| -> Service {
        object(
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}),
        )
    };
    let external_ips = service(
        "node-address",
        json!({"selector": {"app": "web"}, "ports": [{"port": 80}], "externalIPs": ["192.0.2.10"]}),
    );
    // The policy takes effect once the apiserver has loaded it.
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    support::wait_for("the Service policy in force", || {
        let services = services.clone();
        let external_ips = external_ips.clone();
        let dry = dry.clone();
        async move {
            services
                .create(&dry, &external_ips)
                .await
                .is_err()
                .then_some(())
        }
    })
    .await;
    let pp = PostParams::default();
    let refusal = |result: Result<Service, kube::Error>| match result {
        Err(kube::Error::Api(status)) => status.message,
        other => panic!("should be refused: {other:?}"),
    };
    let message = refusal(services.create(&pp, &external_ips).await);
    assert!(
        message.contains("spec.externalIPs is not allowed"),
        "{message}"
    );
    let external_name = service(
        "elsewhere",
        json!({"type": "ExternalName", "externalName": "web.other-customer.svc.cluster.local"}),
    );
    let message = refusal(services.create(&pp, &external_name).await);
    assert!(
        message.contains("type ExternalName is not allowed"),
        "{message}"
    );
    let plain = services
        .create(
            &pp,
            &service(
                "web",
                json!({"type": "ClusterIP", "selector": {"app": "web"}, "ports": [{"port": 80}]}),
            ),
        )
        .await
        .expect("a plain ClusterIP Service is hers to create");
    // Nor can she turn the plain one into either afterwards.
    let patch = |spec: Value| {
        let services = services.clone();
        async move {
            services
                .patch(
                    "web",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": spec})),
                )
                .await
        }
    };
    let message = refusal(patch(json!({"externalIPs": ["192.0.2.11"]})).await);
    assert!(message.contains("spec.externalIPs"), "{message}");
    let message = refusal(
        patch(
            json!({"type": "ExternalName", "externalName": "x.example", "selector": null,
                     "ports": null, "clusterIP": null, "clusterIPs": null}),
        )
        .await,
    );
    assert!(message.contains("ExternalName"), "{message}");
    let stored = Api::<Service>::namespaced(admin.clone(), &p)
        .get("web")
        .await
        .unwrap();
    assert_eq!(stored.spec.unwrap().type_.as_deref(), Some("ClusterIP"));
    assert_eq!(plain.metadata.uid, stored.metadata.uid);
    support::delete_customers(&admin, std::slice::from_ref(&p)).await;
}
