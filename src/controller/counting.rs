//! A client layer that counts the write requests (POST, PUT, PATCH, DELETE) the operator
//! sends, so that tests, benchmarks and metrics can show that an unchanged Customer
//! costs no write.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http::{Method, Request};
use tower_layer::Layer;
use tower_service::Service;

/// Counts write requests, in all and by method and resource; clone it to read the
/// counts while the client uses it.
#[derive(Clone, Debug, Default)]
pub struct WriteCounter {
    total: Arc<AtomicU64>,
    by_kind: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl WriteCounter {
    /// Write requests sent so far.
    pub fn writes(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Write requests so far by method and resource (`PATCH networkpolicies`,
    /// `PATCH customers/status`).
    pub fn by_kind(&self) -> BTreeMap<String, u64> {
        self.by_kind.lock().expect("write counter lock").clone()
    }
}

/// `METHOD resource[/subresource]` of a request path such as
/// `/apis/networking.k8s.io/v1/namespaces/a/networkpolicies/b`.
pub fn request_kind(method: &Method, path: &str) -> String {
    let parts: Vec<&str> = path
        .split('?')
        .next()
        .unwrap_or_default()
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    // Skip `api/v1` or `apis/<group>/<version>`, then `namespaces/<ns>` if the next
    // part is not the last but one.
    let mut rest = match parts.first() {
        Some(&"api") => &parts[parts.len().min(2)..],
        _ => &parts[parts.len().min(3)..],
    };
    if rest.first() == Some(&"namespaces") && rest.len() > 2 {
        rest = &rest[2..];
    }
    let resource = match rest {
        [kind, _, sub, ..] => format!("{kind}/{sub}"),
        [kind, ..] => (*kind).to_string(),
        [] => String::new(),
    };
    format!("{method} {resource}")
}

impl<S> Layer<S> for WriteCounter {
    type Service = CountWrites<S>;
    fn layer(&self, inner: S) -> Self::Service {
        CountWrites {
            inner,
            counter: self.clone(),
        }
    }
}

/// The service [`WriteCounter`] wraps around the client's stack.
#[derive(Clone, Debug)]
pub struct CountWrites<S> {
    inner: S,
    counter: WriteCounter,
}

impl<S, B> Service<Request<B>> for CountWrites<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if !matches!(
            *request.method(),
            Method::GET | Method::HEAD | Method::OPTIONS
        ) {
            self.counter.total.fetch_add(1, Ordering::Relaxed);
            let kind = request_kind(request.method(), request.uri().path());
            *self
                .counter
                .by_kind
                .lock()
                .expect("write counter lock")
                .entry(kind)
                .or_insert(0) += 1;
        }
        self.inner.call(request)
    }
}

/// Counts reconciles per Customer; clone it to read the counts while the controller runs.
/// Shows which customers a change fans out to (tests, benchmarks).
#[derive(Clone, Debug, Default)]
pub struct ReconcileCounter(Arc<std::sync::Mutex<std::collections::HashMap<String, u64>>>);

impl ReconcileCounter {
    /// Notes one reconcile of `customer`.
    pub fn record(&self, customer: &str) {
        *self
            .0
            .lock()
            .expect("reconcile counter lock")
            .entry(customer.to_string())
            .or_insert(0) += 1;
    }

    /// Reconciles per Customer since the start or the last [`ReconcileCounter::take`],
    /// and starts counting afresh.
    pub fn take(&self) -> std::collections::HashMap<String, u64> {
        std::mem::take(&mut *self.0.lock().expect("reconcile counter lock"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_kinds_name_method_resource_and_subresource() {
        let kind = |m: &Method, p: &str| request_kind(m, p);
        assert_eq!(
            kind(
                &Method::PATCH,
                "/apis/networking.k8s.io/v1/namespaces/a/networkpolicies/b?fieldManager=x"
            ),
            "PATCH networkpolicies"
        );
        assert_eq!(
            kind(
                &Method::PATCH,
                "/apis/customers.dev/v1alpha1/customers/a/status"
            ),
            "PATCH customers/status"
        );
        assert_eq!(
            kind(&Method::PATCH, "/api/v1/namespaces/a"),
            "PATCH namespaces"
        );
        assert_eq!(kind(&Method::POST, "/api/v1/namespaces"), "POST namespaces");
        assert_eq!(
            kind(&Method::POST, "/api/v1/namespaces/default/events"),
            "POST events"
        );
        assert_eq!(
            kind(&Method::DELETE, "/api/v1/namespaces/a/resourcequotas/q"),
            "DELETE resourcequotas"
        );
    }
}
