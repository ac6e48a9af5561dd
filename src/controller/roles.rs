//! Whether the customer ClusterRoles exist: every Customer's `AccessGranted` depends on
//! it.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use kube::{Api, Client};

/// The names of the customer ClusterRoles that do not exist, shared with the reconciles.
pub type MissingRoles = Arc<RwLock<BTreeSet<String>>>;

/// How often the customer ClusterRoles are looked up.
const ROLES_CHECK: Duration = Duration::from_secs(5);

/// Looks up the four customer ClusterRoles every [`ROLES_CHECK`], keeps the names of
/// those that do not exist in `missing`, and yields when that set changes (every
/// Customer's `AccessGranted` depends on it). A role that cannot be read (the
/// operator's RBAC does not allow it) counts as present.
pub fn missing_roles(
    client: Client,
    missing: MissingRoles,
) -> impl futures::Stream<Item = ()> + Send + 'static {
    use crate::desired::access::{ROLE_ADMIN, ROLE_EDIT, ROLE_SECURITY_CONSULTANT, ROLE_VIEW};
    use k8s_openapi::api::rbac::v1::ClusterRole;
    let api: Api<ClusterRole> = Api::all(client);
    futures::stream::unfold((api, missing), |(api, missing)| async move {
        loop {
            let mut now = BTreeSet::new();
            for role in [ROLE_ADMIN, ROLE_EDIT, ROLE_VIEW, ROLE_SECURITY_CONSULTANT] {
                match api.get_metadata_opt(role).await {
                    Ok(None) => {
                        now.insert(role.to_string());
                    }
                    Ok(Some(_)) => {}
                    Err(error) => {
                        tracing::debug!(%error, role, "looking up a customer ClusterRole")
                    }
                }
            }
            let changed = *missing.read().expect("roles lock") != now;
            if changed {
                if !now.is_empty() {
                    tracing::warn!(roles = ?now, "customer ClusterRoles missing: the RoleBindings to them grant nothing");
                }
                *missing.write().expect("roles lock") = now;
                return Some(((), (api, missing)));
            }
            tokio::time::sleep(ROLES_CHECK).await;
        }
    })
}
