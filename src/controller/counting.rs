//! A client layer that counts the write requests (POST, PUT, PATCH, DELETE) the operator
//! sends, so that tests, benchmarks and metrics can show that an unchanged Customer
//! costs no write.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use http::{Method, Request};
use tower_layer::Layer;
use tower_service::Service;

/// Counts write requests; clone it to read the count while the client uses it.
#[derive(Clone, Debug, Default)]
pub struct WriteCounter(Arc<AtomicU64>);

impl WriteCounter {
    /// Write requests sent so far.
    pub fn writes(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
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
            self.counter.0.fetch_add(1, Ordering::Relaxed);
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
