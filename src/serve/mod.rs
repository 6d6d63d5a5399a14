//! `gradcam serve`: an HTTP API and a web page over one loaded model.
//!
//! | Route | What |
//! |---|---|
//! | `POST /v1/explain` | an image (multipart field `image`, or the raw body) and parameters → JSON with the top-5, maps as PNG (base64), boxes and timings |
//! | `GET /v1/models` | the model, its layers with their shapes, the default layer, the methods |
//! | `GET /v1/classes` | the class names (for a class picker) |
//! | `GET /healthz` | liveness |
//! | `GET /metrics` | Prometheus text: requests by route and status, latency histogram, errors, queue |
//! | `GET /` | the single-page explorer (HTML, CSS and JS compiled in) |
//!
//! The model is loaded once and shared ([`AppState`]); each explanation runs on tokio's blocking
//! pool behind a semaphore of [`Config::workers`] permits, with at most [`Config::queue`] more
//! requests waiting (beyond that: `503`). A body is read whole before its request asks for a
//! place (src/serve/body.rs), capped by [`Config::max_body_bytes`] (`413`, from the declared
//! length alone when there is one) and dropped with `408` when it stalls for
//! [`Config::read_timeout`] or comes slower than [`Config::min_body_rate`]: slow clients never
//! hold a worker or a queue place. Decoded images are capped by [`Config::max_pixels`], and the
//! wait and the work of every API request by [`Config::timeout`] (`504`). Errors are JSON `{"error": "..."}` with a 4xx status for bad
//! input; internal details are never sent.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use gradcam::serve::{AppState, Config, app};
//! let model = gradcam::model::load("efficientnet_lite0", None, 1000, &burn::tensor::Device::flex()).unwrap();
//! let state = AppState::new(model, Config::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app(state)).await
//! # }
//! ```

mod body;
mod concepts;
mod connections;
mod error;
mod handlers;
mod metrics;
mod page;
mod release;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::Semaphore;

pub use error::ApiError;
pub use handlers::{MAX_CLASSES, MapFormat, Params};
pub use metrics::Metrics;

use crate::model::CamModel;

/// Limits and sizes of the server.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Largest request body, in bytes (larger: `413`).
    pub max_body_bytes: usize,
    /// Largest decoded image, in pixels, checked from the header before decoding (a request
    /// takes about 6.5 MB per megapixel at its peak, 0.2 GB for 24 MP: docs/reliability.md).
    pub max_pixels: u64,
    /// Time allowed for one API request once its body is in: waiting and explaining (`504`
    /// after).
    pub timeout: Duration,
    /// Longest wait for a request's headers (the connection is closed after) and for the next
    /// piece of its body (`408` after).
    pub read_timeout: Duration,
    /// Slowest upload accepted, in bytes per second on average, after a grace of one
    /// `read_timeout` (`408` below it; 0: no minimum).
    pub min_body_rate: usize,
    /// Explanations running at once (each on one core: the CPU backend is single-threaded).
    pub workers: usize,
    /// Requests allowed to wait for a worker; one more gets `503` as soon as its body is read
    /// (so at most `workers + queue` bodies wait in memory, besides those being read).
    pub queue: usize,
    /// Connections open at once; past it the server stops accepting until one closes.
    pub max_connections: usize,
    /// Connections open at once from one client address; one more gets `503` at once.
    pub max_connections_per_client: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_body_bytes: 20 * 1024 * 1024,
            max_pixels: 24_000_000,
            timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(10),
            min_body_rate: 16 * 1024,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            queue: 32,
            max_connections: 512,
            max_connections_per_client: 32,
        }
    }
}

/// What every handler shares: the model (loaded once), the limits, the admission counters and
/// the metrics. Cloning is cheap.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    model: Arc<dyn CamModel>,
    config: Config,
    workers: Arc<Semaphore>,
    /// Requests admitted and not finished (waiting or running).
    admitted: AtomicUsize,
    metrics: Metrics,
}

impl AppState {
    /// The state for a loaded model.
    pub fn new(model: Box<dyn CamModel>, config: Config) -> Self {
        Self::from_shared(Arc::from(model), config)
    }

    /// The state for a model already shared (several servers, or tests, on one model).
    pub fn from_shared(model: Arc<dyn CamModel>, config: Config) -> Self {
        let metrics = Metrics::new(model.name());
        AppState {
            inner: Arc::new(Inner {
                workers: Arc::new(Semaphore::new(config.workers)),
                model,
                config,
                admitted: AtomicUsize::new(0),
                metrics,
            }),
        }
    }

    pub fn model(&self) -> &Arc<dyn CamModel> {
        &self.inner.model
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Requests admitted and not yet finished (waiting for a worker or running).
    pub fn admitted(&self) -> usize {
        self.inner.admitted.load(Ordering::Relaxed)
    }

    /// Explanations running now.
    pub fn running(&self) -> usize {
        self.inner.config.workers
            - self
                .inner
                .workers
                .available_permits()
                .min(self.inner.config.workers)
    }

    /// A place among the running and waiting requests, or `None` when the queue is full.
    fn admit(&self) -> Option<Ticket> {
        let capacity = self.inner.config.workers + self.inner.config.queue;
        let inner = &self.inner;
        inner
            .admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < capacity).then_some(n + 1)
            })
            .ok()
            .map(|_| Ticket(self.inner.clone()))
    }
}

/// A request's place in the queue; given back when dropped (the request is done, or its
/// future was dropped while waiting).
struct Ticket(Arc<Inner>);

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The router: API, page, metrics, with the body reader, the API timeout and the metrics layer.
pub fn app(state: AppState) -> Router {
    // The body is read outside the timeout: reading has its own limits (408), and the timeout
    // counts from a complete request.
    let api = Router::new()
        .route("/v1/explain", post(handlers::explain))
        .route("/v1/models", get(handlers::models))
        .route("/v1/classes", get(handlers::classes))
        .layer(middleware::from_fn_with_state(state.clone(), timeout))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            body::read_body,
        ));
    Router::new()
        .merge(api)
        .route("/", get(page::index))
        .route("/app.js", get(page::script))
        .route("/style.css", get(page::style))
        .route("/healthz", get(health))
        .route("/metrics", get(metrics::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config().max_body_bytes))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
}

/// Serves `app(state)` on `listener` until `shutdown` completes, then finishes the requests
/// in flight. Unlike `axum::serve`, it bounds the open connections ([`Config::max_connections`],
/// [`Config::max_connections_per_client`]) and the time to send headers
/// ([`Config::read_timeout`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    connections::serve(listener, app(state.clone()), state, shutdown).await
}

/// Resolves on Ctrl-C or (on Unix) SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

async fn timeout(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit = state.config().timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout(limit).into_response(),
    }
}

async fn health() -> Response {
    axum::Json(serde_json::json!({ "status": "ok" })).into_response()
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
