//! The API of customer-operator: group `customers.dev`, version `v1alpha1`.

pub mod app_project;
pub mod claim;
pub mod cluster_network_policy;
pub mod common;
pub mod customer;
pub mod group;
pub mod partner;

pub use app_project::{APP_PROJECT_CRD, AppProject, AppProjectSpec};
pub use claim::*;
pub use cluster_network_policy::{
    CLUSTER_NETWORK_POLICY_CRD, ClusterNetworkPolicy, ClusterNetworkPolicySpec,
};
pub use common::*;
pub use customer::*;
pub use group::*;
pub use partner::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The API group.
pub const API_GROUP: &str = "customers.dev";
/// `apiVersion` of both kinds.
pub const API_VERSION: &str = "customers.dev/v1alpha1";
/// Label naming the customer an object belongs to.
pub const LABEL_CUSTOMER: &str = "customers.dev/customer";
/// Label naming the customer's group.
pub const LABEL_GROUP: &str = "customers.dev/group";
/// Label naming the customer's partner.
pub const LABEL_PARTNER: &str = "customers.dev/partner";
/// Label on a customer's ResourceQuotas that hold a share of `spec.quota.total`: their
/// usage moves the shares, so every change of their status is watched.
pub const LABEL_QUOTA_TOTAL: &str = "customers.dev/quota-total";
/// Label every managed object carries.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`LABEL_MANAGED_BY`].
pub const MANAGED_BY: &str = "customer-operator";
/// The namespace label the apiserver sets to the namespace's name on every namespace
/// (nobody can change it); isolation selects peer namespaces by it, and the operator
/// never writes it.
pub const LABEL_NAMESPACE_NAME: &str = "kubernetes.io/metadata.name";
/// Annotation a cluster admin puts on an existing namespace to hand it to a customer.
pub const ANNOTATION_ADOPT: &str = "customers.dev/adopt";
/// Finalizer the operator puts on Customers, CustomerGroups, Partners and
/// CustomerClaims (their cleanup runs first).
pub const FINALIZER: &str = "customers.dev/cleanup";
/// Field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "customer-operator";
/// Field manager of the Customer fields a CustomerClaim sets: apart from the platform
/// team's, so that neither overwrites the other.
pub const CLAIM_FIELD_MANAGER: &str = "customer-operator-claims";
/// Label on a Customer made from a CustomerClaim: the claim's namespace.
pub const LABEL_CLAIM_NAMESPACE: &str = "customers.dev/claim-namespace";
/// Label on a Customer made from a CustomerClaim: the claim's name.
pub const LABEL_CLAIM_NAME: &str = "customers.dev/claim-name";
/// Label on a partner's namespace: the Partner's name.
pub const LABEL_PARTNER_NAMESPACE: &str = "customers.dev/partner-namespace";

/// The rule that keeps customer namespaces off the partners' namespaces, on every kind
/// whose name becomes a Customer's.
const RESERVED_NAME_RULE: &str =
    "self.metadata.name != 'partner' && !self.metadata.name.startsWith('partner-')";

/// The Customer CRD, with the name rules the derive cannot express.
pub fn customer_crd() -> CustomResourceDefinition {
    reserve_names(finish_crd(Customer::crd(), customer::MAX_CUSTOMER_NAME))
}

/// The CustomerGroup CRD, with the name rules the derive cannot express.
pub fn customer_group_crd() -> CustomResourceDefinition {
    finish_crd(CustomerGroup::crd(), 63)
}

/// The Partner CRD, with the name rules the derive cannot express.
pub fn partner_crd() -> CustomResourceDefinition {
    finish_crd(Partner::crd(), partner::MAX_PARTNER_NAME)
}

/// The CustomerClaim CRD: its name becomes the Customer's, with the Customer's rules.
pub fn customer_claim_crd() -> CustomResourceDefinition {
    reserve_names(finish_crd(
        CustomerClaim::crd(),
        customer::MAX_CUSTOMER_NAME,
    ))
}

/// The CustomerUsers CRD.
pub fn customer_users_crd() -> CustomResourceDefinition {
    finish_crd(CustomerUsers::crd(), 63)
}

/// Every CRD of the API, in the order they are installed.
pub fn crds() -> [CustomResourceDefinition; 5] {
    [
        customer_crd(),
        customer_group_crd(),
        partner_crd(),
        customer_claim_crd(),
        customer_users_crd(),
    ]
}

/// Every CRD as one multi-document YAML, as `customer-operator crds` prints and `crds/`
/// holds them.
pub fn crds_yaml() -> String {
    crds()
        .iter()
        .map(|crd| serde_yaml::to_string(crd).expect("a CRD always serializes"))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// Pattern of a Kubernetes quantity (`500m`, `2`, `8Gi`, `1e3`), as the apiserver itself
/// publishes it.
pub const QUANTITY_PATTERN: &str = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";

/// Finishes a derived CRD:
/// - restricts `metadata.name` to a DNS-1123 label of at most `max_len` characters (a
///   CRD schema may constrain `metadata.name`, and only that);
/// - makes quantities strings with the quantity pattern, so that a bad one is refused at
///   admission rather than by the operator;
/// - drops `nullable`: an unset field is absent, never null (the operator writes no
///   nulls, and the apiserver prunes the nulls a user writes).
fn finish_crd(crd: CustomResourceDefinition, max_len: usize) -> CustomResourceDefinition {
    let mut value = serde_json::to_value(&crd).expect("a CRD always serializes");
    for version in value["spec"]["versions"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        let schema = &mut version["schema"]["openAPIV3Schema"];
        schema["properties"]["metadata"] = serde_json::json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "maxLength": max_len, "pattern": DNS_LABEL_PATTERN}
            }
        });
        simplify(schema);
    }
    serde_json::from_value(value).expect("a finished CRD is still a CRD")
}

/// Adds the reserved-name rule ([`partner::is_reserved_customer_name`]) to the root of
/// the CRD's schema.
fn reserve_names(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    let mut value = serde_json::to_value(&crd).expect("a CRD always serializes");
    for version in value["spec"]["versions"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        let schema = &mut version["schema"]["openAPIV3Schema"];
        let rules = schema["x-kubernetes-validations"].take();
        let mut rules = rules.as_array().cloned().unwrap_or_default();
        rules.push(serde_json::json!({
            "rule": RESERVED_NAME_RULE,
            "message": "the names `partner` and `partner-*` are reserved for the partners' namespaces"
        }));
        schema["x-kubernetes-validations"] = rules.into();
    }
    serde_json::from_value(value).expect("a finished CRD is still a CRD")
}

fn simplify(schema: &mut serde_json::Value) {
    match schema {
        serde_json::Value::Object(map) => {
            map.remove("nullable");
            let is_quantity = map.get("x-kubernetes-int-or-string") == Some(&true.into())
                && map
                    .get("description")
                    .and_then(|d| d.as_str())
                    .is_some_and(|d| d.starts_with("Quantity is"));
            if is_quantity {
                *map = serde_json::json!({
                    "type": "string",
                    "pattern": QUANTITY_PATTERN,
                    "description": "A quantity: a number with an optional suffix, such as 500m, 2 or 8Gi."
                })
                .as_object()
                .cloned()
                .expect("an object");
            }
            map.values_mut().for_each(simplify);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(simplify),
        _ => {}
    }
}
