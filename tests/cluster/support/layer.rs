//! A layer in front of a test operator's client that can hold a request: `before` sees
//! each request and returns what to wait for before it is sent on, so a test can force
//! an interleaving with the apiserver every run.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http::Request;
use kube::client::Body;
use tower_layer::Layer;
use tower_service::Service;

/// Runs `.0` on every request and waits for the future it returns before sending it.
#[derive(Clone)]
pub struct Before<F>(pub F);

impl<S, F: Clone> Layer<S> for Before<F> {
    type Service = Held<S, F>;
    fn layer(&self, inner: S) -> Held<S, F> {
        Held {
            inner: Arc::new(tokio::sync::Mutex::new(inner)),
            before: self.0.clone(),
        }
    }
}

/// The client stack with [`Before`] in front.
pub struct Held<S, F> {
    inner: Arc<tokio::sync::Mutex<S>>,
    before: F,
}

type Answer<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

impl<S, F> Service<Request<Body>> for Held<S, F>
where
    S: Service<Request<Body>> + Send + 'static,
    S::Future: Send,
    F: Fn(&Request<Body>) -> BoxFuture<'static, ()>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Answer<S::Response, S::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        let wait = (self.before)(&request);
        Box::pin(async move {
            wait.await;
            let answer = {
                let mut inner = inner.lock().await;
                futures::future::poll_fn(|cx| inner.poll_ready(cx)).await?;
                inner.call(request)
            };
            answer.await
        })
    }
}
