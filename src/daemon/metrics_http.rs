//! `--metrics-listen ADDR`: `/metrics` over HTTP, for Prometheus.
//!
//! hyper's HTTP/1 server, kept small and bounded: `GET` (or `HEAD`)
//! `/metrics` only, one request per connection (no keep-alive, so no idle
//! connection holds a slot), at most [`MAX_CONNECTIONS`] at a time (more
//! are closed at once), headers within [`HEADER_TIMEOUT`], a whole
//! exchange within [`CONNECTION_TIMEOUT`]. A scrape asks the service actor
//! (and through it the monitor's) for their state; one that does not
//! answer within [`SCRAPE_TIMEOUT`] gets `503`, which Prometheus records
//! as the target being down. There is no authentication: listen on
//! loopback, or behind a proxy that adds it (docs/operations.md).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ACCEPT, ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use monitor_core::LiveCounters;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::service::ServiceHandle;
use crate::metrics::{self, Format, Scrape};

/// Scrapes served at the same time; Prometheus needs one per scraper.
const MAX_CONNECTIONS: usize = 8;
/// How long a client may take to send its request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection may last, from accept to the last byte.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a scrape waits for the service and the monitor.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// The pause after a failed accept (e.g. out of descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What a scrape reads.
#[derive(Debug, Clone)]
pub(crate) struct Exporter {
    /// The service actor, for the monitor's status and the counters.
    pub(crate) service: ServiceHandle,
    /// The monitor's counters, read without asking its actor.
    pub(crate) counters: LiveCounters,
    /// A series per unit (`--metrics-per-unit`).
    pub(crate) per_unit: bool,
}

/// Binds `addr`; the error names it.
pub(crate) async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    use anyhow::Context as _;
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for metrics on {addr} (--metrics-listen)"))
}

/// Serves `/metrics` on `listener` until `stop`.
pub(crate) async fn serve(listener: TcpListener, exporter: Exporter, stop: CancellationToken) {
    let exporter = Arc::new(exporter);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "metrics: accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = stop.cancelled() => return,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::debug!(%peer, "metrics: too many connections; closed");
            continue;
        };
        let exporter = Arc::clone(&exporter);
        let stop = stop.clone();
        tokio::spawn(async move {
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(false)
                .serve_connection(
                    TokioIo::new(stream),
                    service_fn(move |request| answer(Arc::clone(&exporter), request)),
                );
            tokio::select! {
                served = tokio::time::timeout(CONNECTION_TIMEOUT, connection) => match served {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => tracing::debug!(%peer, %error, "metrics: connection failed"),
                    Err(_) => tracing::debug!(%peer, "metrics: connection timed out"),
                },
                () = stop.cancelled() => {}
            }
            drop(slot);
        });
    }
}

/// One request's answer.
async fn answer(
    exporter: Arc<Exporter>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.uri().path() != "/metrics" {
        return Ok(plain(
            StatusCode::NOT_FOUND,
            "pidguard serves /metrics only\n",
        ));
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "/metrics takes GET or HEAD\n",
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Ok(response);
    }
    let format = Format::negotiate(
        request
            .headers()
            .get(ACCEPT)
            .and_then(|accept| accept.to_str().ok()),
    );
    let state = match tokio::time::timeout(SCRAPE_TIMEOUT, exporter.service.metrics()).await {
        Ok(Ok(state)) => state,
        Ok(Err(error)) => {
            tracing::warn!(%error, "metrics: the service could not answer");
            return Ok(plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "the daemon's service could not answer\n",
            ));
        }
        Err(_) => {
            tracing::error!(
                ?SCRAPE_TIMEOUT,
                "metrics: the service (or the monitor behind it) did not answer"
            );
            return Ok(plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "the daemon's service did not answer in time\n",
            ));
        }
    };
    // Read after the status: never older than it.
    let counters = exporter.counters.snapshot();
    let text = metrics::render(
        &Scrape {
            counters: Some(&counters),
            monitor: Some(&state.monitor),
            daemon: Some(&state.daemon),
            per_unit: exporter.per_unit,
        },
        format,
    );
    let body = if request.method() == Method::HEAD {
        Bytes::new()
    } else {
        Bytes::from(text)
    };
    let mut response = Response::new(Full::new(body));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    Ok(response)
}

/// A short text answer with `status`.
fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
