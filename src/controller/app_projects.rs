//! A customer's Argo CD AppProject against the apiserver (`--argocd-projects`): written
//! when the cluster serves AppProjects, kept as the spec asks (drift is put back: the
//! AppProjects of the Argo CD namespace are watched), never written over when someone
//! else's project has the customer's name, and deleted with the customer.
//!
//! The operator looks for the CRD once, at start: Argo CD installed later is seen after
//! a restart of the operator (its pod, or a rollout).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::PostParams;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, ResourceExt};

use super::Context;
use super::apply::{applied_form, delete_exactly};
use super::error::{At, Result, Step, describe, named};
use super::status::ArgoCdProject;
use crate::api::{APP_PROJECT_CRD, AppProject, Customer, FIELD_MANAGER, LABEL_CUSTOMER};
use crate::desired::Desired;
use crate::desired::ownership::is_owned_by;
use crate::settings::Settings;

/// The Argo CD namespace whose AppProjects the operator writes and watches: the one
/// `--argocd-namespace` names, when `--argocd-projects` is on and the cluster serves
/// AppProjects; else `None`, said once in the log.
pub async fn namespace_in_view(
    client: &Client,
    settings: &Settings,
) -> crate::Result<Option<String>> {
    let Some(namespace) = settings.argocd_namespace.clone() else {
        return Ok(None);
    };
    let served = served(client)
        .await
        .map_err(|e| crate::error::Error::Config(e.to_string()))?;
    if served {
        tracing::info!("--argocd-projects: an AppProject per customer in namespace {namespace}");
        Ok(Some(namespace))
    } else {
        tracing::info!(
            "--argocd-projects: the cluster does not serve AppProjects (no CRD {APP_PROJECT_CRD}): none are written; restart the operator once Argo CD is installed"
        );
        Ok(None)
    }
}

/// Whether the cluster serves AppProjects (their CRD exists and is not being deleted);
/// false as well when the operator may not read that CRD.
async fn served(client: &Client) -> Result<bool> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    match crds.get_opt(APP_PROJECT_CRD).await {
        Ok(crd) => Ok(crd.is_some_and(|crd| crd.metadata.deletion_timestamp.is_none())),
        Err(kube::Error::Api(status)) if status.code == 403 => {
            tracing::warn!("may not read the CRD {APP_PROJECT_CRD}: no AppProjects are written");
            Ok(false)
        }
        Err(error) => Err(error).at(
            Step::ReadCrd,
            describe("CustomResourceDefinition", None, APP_PROJECT_CRD),
        ),
    }
}

/// Whether `project` is the customer's: its label names the customer and it records the
/// customer's uid.
fn is_mine(project: &AppProject, customer: &str, uid: &str) -> bool {
    project.labels().get(LABEL_CUSTOMER).map(String::as_str) == Some(customer)
        && is_owned_by(&project.metadata, uid)
}

/// Writes the customer's AppProject, if AppProjects are written at all. One that exists
/// and is not the customer's is left as it is and reported.
pub async fn apply(
    ctx: &Context,
    customer: &Customer,
    uid: &str,
    wanted: &Desired,
) -> Result<Option<ArgoCdProject>> {
    let (Some(cache), Some(project)) = (&ctx.caches.app_projects, &wanted.app_project) else {
        return Ok(None);
    };
    let name = customer.name_any();
    let namespace = project.namespace().unwrap_or_default();
    let api: Api<AppProject> = Api::namespaced(ctx.client.clone(), &namespace);
    let at = format!("{namespace}/{name}");
    let cached = cache.get(&ObjectRef::new(&name).within(&namespace));
    let live = match cached {
        Some(live) => Some((*live).clone()),
        None => match create(&api, project).await? {
            Created::Yes => return Ok(Some(ArgoCdProject::Applied(at))),
            Created::Exists(live) => live.map(|l| *l),
        },
    };
    match live {
        Some(live) if !is_mine(&live, &name, uid) => Ok(Some(ArgoCdProject::NotOwned(at))),
        live => {
            let live = live.map(|l| serde_json::to_value(&l)).transpose()?;
            ctx.apply(&api, project, live.as_ref()).await?;
            Ok(Some(ArgoCdProject::Applied(at)))
        }
    }
}

/// What a create found.
enum Created {
    /// The project was created.
    Yes,
    /// A project of that name exists (the cache did not show it yet): as read now, or
    /// `None` when it went again meanwhile.
    Exists(Option<Box<AppProject>>),
}

/// Creates the project where the cache shows none: a create, unlike an apply, never
/// takes over a project someone else wrote a moment ago.
async fn create(api: &Api<AppProject>, project: &AppProject) -> Result<Created> {
    let body: AppProject = serde_json::from_value(applied_form(project)?)?;
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    match api.create(&params, &body).await {
        Ok(_) => Ok(Created::Yes),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let live = api
                .get_opt(&project.name_any())
                .await
                .at(Step::Apply, named(project))?;
            Ok(Created::Exists(live.map(Box::new)))
        }
        Err(error) => Err(error).at(Step::Apply, named(project)),
    }
}

/// Deletes the customer's AppProject (the customer is going): only one that carries its
/// label and records its uid, read fresh (a project created a moment ago counts too).
pub async fn delete_all(ctx: &Context, customer: &Customer, uid: &str) -> Result<()> {
    let (Some(_), Some(namespace)) = (
        &ctx.caches.app_projects,
        ctx.options.settings.argocd_namespace.as_deref(),
    ) else {
        return Ok(());
    };
    let name = customer.name_any();
    let api: Api<AppProject> = Api::namespaced(ctx.client.clone(), namespace);
    let live = api
        .get_opt(&name)
        .await
        .at(Step::Delete, describe("AppProject", Some(namespace), &name))?;
    match live {
        Some(live) if is_mine(&live, &name, uid) && live.metadata.deletion_timestamp.is_none() => {
            delete_exactly(&api, &name, live.uid()).await
        }
        _ => Ok(()),
    }
}
