//! Whether the cluster holds exactly what `desired/` asks for a customer.

use std::collections::BTreeSet;

use customer_operator::api::{ClusterNetworkPolicy, Customer, CustomerGroup, LABEL_CUSTOMER};
use customer_operator::controller::apply::{applied_form, is_current};
use customer_operator::controller::decode;
use customer_operator::desired::{self, MapDirectory};
use customer_operator::settings::Settings;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::ListParams;
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Every Customer and CustomerGroup in the cluster, as `desired/` reads them. Untyped
/// and decoded one by one: an unreadable Customer left by another test must not break
/// this one.
pub async fn directory(client: &Client) -> MapDirectory {
    let customers: Vec<Customer> = decode::untyped(client)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter_map(|o| decode::decode(o).ok())
        .collect();
    let groups = Api::<CustomerGroup>::all(client.clone())
        .list(&Default::default())
        .await
        .unwrap();
    MapDirectory::new(customers, groups.items)
}

/// How the customer's objects in the cluster differ from what `desired/` builds for it
/// from `dir`: missing, unexpected, or different objects, one line each.
pub async fn differences(
    client: &Client,
    customer: &Customer,
    dir: &MapDirectory,
    settings: &Settings,
) -> Vec<String> {
    let wanted = match desired::desired(customer, dir, settings) {
        Ok(wanted) => wanted,
        Err(e) => return vec![format!("{}: refused: {e}", customer.name_any())],
    };
    let name = customer.name_any();
    let mut out = Vec::new();
    compare(
        &labelled::<Namespace>(client, &name).await,
        &wanted.namespaces,
        &mut out,
    );
    compare(
        &labelled::<NetworkPolicy>(client, &name).await,
        &wanted.network_policies,
        &mut out,
    );
    compare(
        &labelled::<RoleBinding>(client, &name).await,
        &wanted.role_bindings,
        &mut out,
    );
    compare(
        &labelled::<ResourceQuota>(client, &name).await,
        &wanted.resource_quotas,
        &mut out,
    );
    compare(
        &labelled::<LimitRange>(client, &name).await,
        &wanted.limit_ranges,
        &mut out,
    );
    compare(
        &labelled_if_served::<ClusterNetworkPolicy>(client, &name).await,
        &wanted.cluster_network_policies,
        &mut out,
    );
    out
}

/// Like [`labelled`], for a kind the cluster may not serve (none then).
pub async fn labelled_if_served<K>(client: &Client, customer: &str) -> Vec<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let params = ListParams::default().labels(&format!("{LABEL_CUSTOMER}={customer}"));
    match Api::<K>::all(client.clone()).list(&params).await {
        Ok(list) => list.items,
        Err(kube::Error::Api(status)) if status.code == 404 => Vec::new(),
        Err(other) => panic!("listing {}: {other}", K::kind(&())),
    }
}

/// Every object of a kind that carries the customer's label.
pub async fn labelled<K>(client: &Client, customer: &str) -> Vec<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    Api::<K>::all(client.clone())
        .list(&ListParams::default().labels(&format!("{LABEL_CUSTOMER}={customer}")))
        .await
        .unwrap()
        .items
}

/// (kind, namespace, name) of each object.
pub fn keys<K: Resource<DynamicType = ()>>(objects: &[K]) -> BTreeSet<(String, String, String)> {
    objects
        .iter()
        .map(|o| {
            (
                K::kind(&()).to_string(),
                o.namespace().unwrap_or_default(),
                o.name_any(),
            )
        })
        .collect()
}

fn compare<K>(live: &[K], wanted: &[K], out: &mut Vec<String>)
where
    K: Resource<DynamicType = ()> + Serialize,
{
    let (have, want) = (keys(live), keys(wanted));
    for missing in want.difference(&have) {
        out.push(format!("missing {missing:?}"));
    }
    for extra in have.difference(&want) {
        out.push(format!("unexpected {extra:?}"));
    }
    for w in wanted {
        let Some(l) = live
            .iter()
            .find(|l| l.name_any() == w.name_any() && l.namespace() == w.namespace())
        else {
            continue;
        };
        let l = serde_json::to_value(l).unwrap();
        if !is_current(&applied_form(w).unwrap(), &l) {
            out.push(format!(
                "different {} {:?}/{}",
                K::kind(&()),
                w.namespace(),
                w.name_any()
            ));
        }
    }
}

/// Compares every named customer with what `desired/` builds for it from the cluster's
/// Customers and groups, with the test operators' settings (platform namespace
/// `ingress-nginx`). Returns how many objects were checked and the differences.
#[allow(dead_code)]
pub async fn check_all(client: &Client, names: &[String]) -> (usize, Vec<String>) {
    let settings = Settings {
        platform_namespaces: vec!["ingress-nginx".into()],
        ..Settings::default()
    };
    let dir = directory(client).await;
    let mut problems = Vec::new();
    let mut objects = 0;
    for name in names {
        let customer = &dir.customers[name];
        objects += desired::desired(customer, &dir, &settings)
            .unwrap()
            .to_values()
            .unwrap()
            .len();
        problems.extend(differences(client, customer, &dir, &settings).await);
    }
    (objects, problems)
}
