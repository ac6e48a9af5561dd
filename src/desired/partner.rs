//! The partner-change rule, enforced by the operator itself: when `spec.partner.name`
//! changes, the previous partner's consultants lose every role and are not granted one
//! again by being listed under the new partner. The CRD states the same rule for
//! apiservers that run validation rules; older ones accept such a change, so the
//! operator remembers the previous partner's consultants in `status.formerPartner`.

use k8s_openapi::api::rbac::v1::Subject as RbacSubject;

use crate::api::{Customer, FormerPartner, Subject, SubjectKind};

/// The record of the previous partner after this reconcile.
///
/// `holding` is the partner recorded in `status.partner` (whose consultants hold roles
/// now) and `holders` the consultants that the live bindings grant. When the spec names
/// another partner (or none), those become the former partner; otherwise the earlier
/// record stays.
pub fn former_partner(customer: &Customer, holders: &[Subject]) -> Option<FormerPartner> {
    let status = customer.status.as_ref();
    let earlier = status.and_then(|s| s.former_partner.clone());
    let holding = status.and_then(|s| s.partner.as_deref());
    let named = customer.spec.partner.as_ref().map(|p| p.name.as_str());
    match holding {
        Some(previous) if named != Some(previous) => Some(FormerPartner {
            name: previous.to_string(),
            security_consultants: holders.to_vec(),
        }),
        _ => earlier,
    }
}

/// The consultants that the spec lists and that must get no role, because they held
/// roles for the former partner and the spec names another one.
pub fn carried_over(customer: &Customer) -> Vec<Subject> {
    let Some(partner) = &customer.spec.partner else {
        return Vec::new();
    };
    let Some(former) = customer
        .status
        .as_ref()
        .and_then(|s| s.former_partner.as_ref())
    else {
        return Vec::new();
    };
    if former.name == partner.name {
        return Vec::new();
    }
    partner
        .security_consultants
        .iter()
        .filter(|c| former.security_consultants.contains(c))
        .cloned()
        .collect()
}

/// The consultants that get the consultant role: those the spec lists, less the ones
/// carried over from the former partner.
pub fn granted_consultants(customer: &Customer) -> Vec<Subject> {
    let refused = carried_over(customer);
    customer
        .spec
        .partner
        .iter()
        .flat_map(|p| p.security_consultants.iter())
        .filter(|c| !refused.contains(c))
        .cloned()
        .collect()
}

/// An RBAC subject as the API's subject; `None` for kinds the API does not know.
pub fn subject_from_rbac(subject: &RbacSubject) -> Option<Subject> {
    let kind = match subject.kind.as_str() {
        "User" => SubjectKind::User,
        "Group" => SubjectKind::Group,
        "ServiceAccount" => SubjectKind::ServiceAccount,
        _ => return None,
    };
    Some(Subject {
        kind,
        name: subject.name.clone(),
        namespace: subject.namespace.clone(),
    })
}

/// How a subject reads in a message: `User carol@acme.example`.
pub fn describe(subject: &Subject) -> String {
    match &subject.namespace {
        Some(ns) => format!("{:?} {ns}/{}", subject.kind, subject.name),
        None => format!("{:?} {}", subject.kind, subject.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CustomerSpec, CustomerStatus, PartnerRef};

    fn user(name: &str) -> Subject {
        Subject {
            kind: SubjectKind::User,
            name: name.into(),
            namespace: None,
        }
    }

    fn customer(partner: Option<(&str, &[&str])>, status: Option<CustomerStatus>) -> Customer {
        let mut c = Customer::new(
            "acme",
            CustomerSpec {
                display_name: "Acme".into(),
                contact_email: "ops@acme.example".into(),
                ..Default::default()
            },
        );
        c.spec.partner = partner.map(|(name, people)| PartnerRef {
            name: name.into(),
            security_consultants: people.iter().map(|p| user(p)).collect(),
        });
        c.status = status;
        c
    }

    fn holding(partner: &str, former: Option<FormerPartner>) -> Option<CustomerStatus> {
        Some(CustomerStatus {
            partner: Some(partner.into()),
            former_partner: former,
            ..Default::default()
        })
    }

    #[test]
    fn a_partner_change_records_the_consultants_that_held_roles() {
        let c = customer(Some(("beta", &["carol"])), holding("alpha", None));
        let former = former_partner(&c, &[user("carol"), user("dave")]).unwrap();
        assert_eq!(former.name, "alpha");
        assert_eq!(
            former.security_consultants,
            vec![user("carol"), user("dave")]
        );
    }

    #[test]
    fn no_change_keeps_the_earlier_record() {
        let earlier = FormerPartner {
            name: "alpha".into(),
            security_consultants: vec![user("carol")],
        };
        let c = customer(
            Some(("beta", &["erin"])),
            holding("beta", Some(earlier.clone())),
        );
        assert_eq!(former_partner(&c, &[user("erin")]), Some(earlier));
        assert_eq!(former_partner(&customer(None, None), &[]), None);
    }

    #[test]
    fn removing_the_partner_records_it_too() {
        let c = customer(None, holding("alpha", None));
        assert_eq!(former_partner(&c, &[user("carol")]).unwrap().name, "alpha");
    }

    #[test]
    fn consultants_carried_over_get_nothing_and_new_ones_get_their_role() {
        let former = FormerPartner {
            name: "alpha".into(),
            security_consultants: vec![user("carol")],
        };
        let c = customer(
            Some(("beta", &["carol", "erin"])),
            holding("beta", Some(former)),
        );
        assert_eq!(carried_over(&c), vec![user("carol")]);
        assert_eq!(granted_consultants(&c), vec![user("erin")]);
    }

    #[test]
    fn going_back_to_the_former_partner_grants_its_consultants() {
        let former = FormerPartner {
            name: "alpha".into(),
            security_consultants: vec![user("carol")],
        };
        let c = customer(Some(("alpha", &["carol"])), holding("beta", Some(former)));
        assert!(carried_over(&c).is_empty());
        assert_eq!(granted_consultants(&c), vec![user("carol")]);
    }
}
