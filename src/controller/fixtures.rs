//! A mocked apiserver for reconcile tests without a cluster: it keeps the objects it is
//! sent in a map by path, answers reads from it, and records every request in order.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};

use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use kube::runtime::reflector;
use serde_json::{Value, json};

use super::caches::Caches;
use super::index::Index;
use super::synced::CacheSync;
use super::{Context, Options, inflight};
use crate::desired::children::Children;

/// What the mocked apiserver holds and was asked.
#[derive(Clone, Default)]
pub struct Apiserver {
    objects: Arc<Mutex<BTreeMap<String, Value>>>,
    requests: Arc<Mutex<Vec<String>>>,
    /// Answers for writes to paths that end with a key: the status code and message.
    refusals: Arc<Mutex<BTreeMap<String, (u16, String)>>>,
    version: Arc<Mutex<u64>>,
}

impl Apiserver {
    /// Stores an object under its API path, as if it had been created.
    pub fn insert(&self, path: &str, object: Value) {
        self.objects
            .lock()
            .expect("objects")
            .insert(path.into(), object);
    }

    /// Makes every write to a path ending in `suffix` fail with `code`.
    pub fn refuse(&self, suffix: &str, code: u16, message: &str) {
        self.refusals
            .lock()
            .expect("refusals")
            .insert(suffix.into(), (code, message.into()));
    }

    /// Every request so far, as `METHOD path`, in order.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("requests").clone()
    }

    /// The writes so far (everything but GET), as `METHOD path`, in order.
    pub fn writes(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|r| !r.starts_with("GET "))
            .collect()
    }

    /// The object stored under a path.
    pub fn object(&self, path: &str) -> Option<Value> {
        self.objects.lock().expect("objects").get(path).cloned()
    }

    /// A Context whose client talks to this apiserver, with empty caches that count as
    /// filled.
    pub fn context(&self) -> Arc<Context> {
        self.context_with(Options::default())
    }

    /// The same, with these options.
    pub fn context_with(&self, options: Options) -> Arc<Context> {
        let client = kube::Client::new(self.clone(), "default");
        let caches = Caches {
            customers: reflector::store().0,
            customers_by_reference: crate::controller::related::index(),
            groups: reflector::store().0,
            namespaces: reflector::store().0,
            namespaces_by_customer: Index::new(|_| None),
            foreign_policies: Index::new(|_| None),
            foreign_policies_by_customer: Index::new(|_| None),
            children: Children {
                network_policies: reflector::store().0,
                role_bindings: reflector::store().0,
                resource_quotas: reflector::store().0,
                limit_ranges: reflector::store().0,
            },
            cluster_policies: reflector::store().0,
            foreign_cluster_policies: Index::new(|_| None),
            app_projects: None,
            partners: reflector::store().0,
            claims: reflector::store().0,
            users: reflector::store().0,
            users_by_namespace: Index::new(|_| None),
            sync: CacheSync::new(&[]),
            progress: Arc::new(inflight::Progresses::new()),
        };
        Arc::new(Context {
            client,
            options,
            caches,
            pod_ranges: Vec::new(),
            failures: Default::default(),
            metrics: Arc::new(crate::operate::metrics::Metrics::new()),
            in_flight: Default::default(),
            last_reconciled: Default::default(),
            missing_roles: Default::default(),
        })
    }

    /// Gives a stored object a new resourceVersion, and a uid if it has none.
    fn stamp(&self, object: &mut Value) {
        let mut version = self.version.lock().expect("version");
        *version += 1;
        object["metadata"]["resourceVersion"] = version.to_string().into();
        if object["metadata"]["uid"].is_null() {
            object["metadata"]["uid"] = format!("uid-{version}").into();
        }
    }

    fn answer(&self, method: &Method, path: &str, body: &[u8]) -> (StatusCode, Value) {
        let is_write = *method != Method::GET;
        if is_write {
            let refusals = self.refusals.lock().expect("refusals");
            if let Some((code, message)) = refusals
                .iter()
                .find(|(s, _)| path.ends_with(*s))
                .map(|(_, r)| r)
            {
                let status = StatusCode::from_u16(*code).expect("status code");
                return (status, status_object(*code, message));
            }
        }
        let (object_path, subresource) = match path.strip_suffix("/status") {
            Some(object) => (object.to_string(), true),
            None => (path.to_string(), false),
        };
        let mut objects = self.objects.lock().expect("objects");
        match *method {
            Method::GET => match objects.get(&object_path) {
                Some(object) => (StatusCode::OK, object.clone()),
                None => (StatusCode::NOT_FOUND, status_object(404, "not found")),
            },
            Method::DELETE => {
                objects.remove(&object_path);
                (StatusCode::OK, status_object(200, "deleted"))
            }
            Method::POST => {
                let mut object: Value = serde_json::from_slice(body).unwrap_or_default();
                let Some(name) = object["metadata"]["name"].as_str() else {
                    // Events and reviews carry no name (generateName): answered, not kept.
                    return (StatusCode::CREATED, object);
                };
                let object_path = format!("{object_path}/{name}");
                if objects.contains_key(&object_path) {
                    return (StatusCode::CONFLICT, status_object(409, "already exists"));
                }
                self.stamp(&mut object);
                objects.insert(object_path, object.clone());
                (StatusCode::CREATED, object)
            }
            _ => {
                let patch: Value = serde_json::from_slice(body).unwrap_or_default();
                let mut object = objects.get(&object_path).cloned().unwrap_or(json!({}));
                if subresource {
                    merge(&mut object, &json!({"status": patch["status"].clone()}));
                } else {
                    merge(&mut object, &patch);
                }
                self.stamp(&mut object);
                objects.insert(object_path, object.clone());
                (StatusCode::OK, object)
            }
        }
    }
}

/// A `metav1.Status` as the apiserver answers a failed request.
fn status_object(code: u16, message: &str) -> Value {
    let (status, reason) = match code {
        200..300 => ("Success", ""),
        404 => ("Failure", "NotFound"),
        409 => ("Failure", "AlreadyExists"),
        422 => ("Failure", "Invalid"),
        _ => ("Failure", "InternalError"),
    };
    json!({"kind": "Status", "apiVersion": "v1", "status": status, "message": message, "reason": reason, "code": code})
}

/// A JSON merge patch (RFC 7386) of `patch` into `target`.
fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(target), Some(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else {
                    merge(target.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

impl tower_service::Service<Request<kube::client::Body>> for Apiserver {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<kube::client::Body>) -> Self::Future {
        let apiserver = self.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let path = parts.uri.path().to_string();
            apiserver
                .requests
                .lock()
                .expect("requests")
                .push(format!("{} {path}", parts.method));
            let (status, answer) = apiserver.answer(&parts.method, &path, &body);
            let mut response = Response::new(Full::new(Bytes::from(answer.to_string())));
            *response.status_mut() = status;
            Ok(response)
        })
    }
}
