//! The small HTTP server behind `--metrics-addr`: `/metrics`, `/healthz` and `/readyz`
//! (hyper's HTTP/1 server, which kube's client already brings in).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use super::Error;
use super::health::Health;
use super::metrics::{CONTENT_TYPE, Metrics};

/// Listens on `address` (port 0 picks a free port; read it from the listener).
pub async fn bind(address: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(address)
        .await
        .map_err(|source| Error::Bind {
            address: address.to_string(),
            source,
        })
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, health: Health) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "accepting a metrics connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (metrics, health) = (metrics.clone(), health.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let response = answer(&request, &metrics, &health);
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            if let Err(error) = connection.await {
                tracing::debug!(%error, "metrics connection ended with an error");
            }
        });
    }
}

/// The response to one request.
fn answer<B>(request: &Request<B>, metrics: &Metrics, health: &Health) -> Response<Full<Bytes>> {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".into());
    }
    match request.uri().path() {
        "/metrics" => {
            let mut response = text(StatusCode::OK, metrics.encode());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(CONTENT_TYPE),
            );
            response
        }
        "/healthz" | "/livez" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => {
            let phase = health.phase();
            let status = if phase.is_ready() {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            text(status, format!("{}\n", phase.as_str()))
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /metrics, /healthz or /readyz\n".into(),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operate::health::Phase;

    fn get(path: &str) -> Request<()> {
        Request::get(path).body(()).unwrap()
    }

    #[test]
    fn readiness_follows_the_phase() {
        let (metrics, health) = (Metrics::new(), Health::default());
        assert_eq!(answer(&get("/healthz"), &metrics, &health).status(), 200);
        assert_eq!(answer(&get("/readyz"), &metrics, &health).status(), 503);
        health.set(Phase::Syncing);
        assert_eq!(answer(&get("/readyz"), &metrics, &health).status(), 503);
        health.advance(Phase::Syncing, Phase::Ready);
        assert_eq!(answer(&get("/readyz"), &metrics, &health).status(), 200);
        health.set(Phase::Stopping);
        health.advance(Phase::Syncing, Phase::Ready);
        assert_eq!(answer(&get("/readyz"), &metrics, &health).status(), 503);
        health.set(Phase::Standby);
        assert_eq!(answer(&get("/readyz"), &metrics, &health).status(), 200);
        assert_eq!(answer(&get("/nope"), &metrics, &health).status(), 404);
        let post = Request::post("/metrics").body(()).unwrap();
        assert_eq!(answer(&post, &metrics, &health).status(), 405);
        let scrape = answer(&get("/metrics"), &metrics, &health);
        assert_eq!(scrape.status(), 200);
        assert_eq!(scrape.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
    }
}
