//! Request metrics in Prometheus' text exposition format (version 0.0.4), kept and encoded by
//! `prometheus-client`: requests by route, method and status, a latency histogram by route,
//! errors by route and kind, and the queue.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::{EncodeLabelSet, prometheus_text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use super::AppState;
use super::error::ErrorKind;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    route: String,
    kind: &'static str,
}

fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// The server's counters. Routes are the matched patterns (unmatched paths count as
/// `unmatched`), so the label sets stay bounded whatever clients send.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    errors: Family<ErrorLabels, Counter>,
    admitted: Gauge,
    running: Gauge,
    workers: Gauge,
    /// Explanations stopped because their request timed out.
    cancelled: Counter,
    /// Connections answered `503` because their client had too many open.
    refused_connections: Counter,
}

impl Metrics {
    pub fn new(model: &str) -> Self {
        let mut registry = Registry::default();
        let info = Info::new(vec![
            ("model", model.to_string()),
            ("version", env!("CARGO_PKG_VERSION").to_string()),
        ]);
        // `prometheus-client` appends `_info` and `_total` to these names, and a full stop to
        // the help texts.
        registry.register("gradcam", "The served model", info);
        let requests = Family::default();
        registry.register(
            "gradcam_http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        let latency = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "gradcam_http_request_duration_seconds",
            "Time to answer a request, by route",
            latency.clone(),
        );
        let errors = Family::default();
        registry.register(
            "gradcam_http_errors",
            "Error responses by route and kind",
            errors.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let gauge = Gauge::default();
            registry.register(name, help, gauge.clone());
            gauge
        };
        let admitted = gauge(
            &mut registry,
            "gradcam_requests_admitted",
            "Explain requests waiting for a worker or running",
        );
        let running = gauge(
            &mut registry,
            "gradcam_explanations_running",
            "Explanations running now",
        );
        let workers = gauge(
            &mut registry,
            "gradcam_workers",
            "Explanations allowed to run at once",
        );
        let cancelled = Counter::default();
        registry.register(
            "gradcam_explanations_cancelled",
            "Explanations stopped because their request timed out",
            cancelled.clone(),
        );
        let refused_connections = Counter::default();
        registry.register(
            "gradcam_connections_refused",
            "Connections answered 503 because their client had too many open",
            refused_connections.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            errors,
            admitted,
            running,
            workers,
            cancelled,
            refused_connections,
        }
    }

    /// Records an explanation stopped by its request's timeout.
    pub fn record_cancelled(&self) {
        self.cancelled.inc();
    }

    /// Records a connection refused for its client's connection count.
    pub fn record_refused_connection(&self) {
        self.refused_connections.inc();
    }

    /// Records one finished request.
    pub fn record(
        &self,
        route: &str,
        method: &Method,
        status: u16,
        seconds: f64,
        error: Option<&'static str>,
    ) {
        let method = match *method {
            Method::GET => "GET",
            Method::POST => "POST",
            Method::HEAD => "HEAD",
            _ => "other",
        };
        let route = route.to_string();
        self.requests
            .get_or_create(&RequestLabels {
                route: route.clone(),
                method,
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.clone(),
            })
            .observe(seconds);
        if let Some(kind) = error {
            self.errors
                .get_or_create(&ErrorLabels { route, kind })
                .inc();
        }
    }

    /// The number of requests recorded for `route` with `status`.
    #[cfg(test)]
    fn requests(&self, route: &str, status: u16) -> u64 {
        ["GET", "POST", "HEAD", "other"]
            .into_iter()
            .filter_map(|method| {
                let labels = RequestLabels {
                    route: route.to_string(),
                    method,
                    status,
                };
                self.requests.get(&labels).map(|c| c.get())
            })
            .sum()
    }

    /// The exposition text, with the queue gauges of `state`.
    pub fn render(&self, admitted: usize, running: usize, workers: usize) -> String {
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.admitted.set(gauge(admitted));
        self.running.set(gauge(running));
        self.workers.set(gauge(workers));
        let mut out = String::new();
        prometheus_text::encode(&mut out, &self.registry).expect("writing to a String");
        out
    }
}

/// Middleware: times every request and records it.
pub(super) async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().clone();
    let response = next.run(request).await;
    let error = response.extensions().get::<ErrorKind>().map(|k| k.0);
    let status = response.status().as_u16();
    let error = error.or_else(|| (status >= 400).then_some("other"));
    state.metrics().record(
        &route,
        &method,
        status,
        start.elapsed().as_secs_f64(),
        error,
    );
    response
}

/// `GET /metrics`.
pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    let text = state
        .metrics()
        .render(state.admitted(), state.running(), state.config().workers);
    (
        [(header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE)],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_labels_are_escaped() {
        let m = Metrics::new("m\"1");
        m.record("/a", &Method::GET, 200, 0.003, None);
        m.record("/a", &Method::GET, 200, 0.2, None);
        m.record("/a", &Method::POST, 400, 100.0, Some("bad_request"));
        let text = m.render(1, 0, 2);
        assert!(text.contains("gradcam_info{model=\"m\\\"1\""), "{text}");
        assert!(
            text.contains(
                "gradcam_http_requests_total{route=\"/a\",method=\"GET\",status=\"200\"} 2"
            )
        );
        assert!(
            text.contains(
                "gradcam_http_request_duration_seconds_bucket{route=\"/a\",le=\"0.005\"} 1"
            )
        );
        assert!(
            text.contains(
                "gradcam_http_request_duration_seconds_bucket{route=\"/a\",le=\"0.25\"} 2"
            )
        );
        assert!(
            text.contains("gradcam_http_request_duration_seconds_bucket{route=\"/a\",le=\"60\"} 2")
        );
        assert!(
            text.contains(
                "gradcam_http_request_duration_seconds_bucket{route=\"/a\",le=\"+Inf\"} 3"
            )
        );
        assert!(text.contains("gradcam_http_request_duration_seconds_count{route=\"/a\"} 3"));
        assert!(text.contains("gradcam_http_errors_total{route=\"/a\",kind=\"bad_request\"} 1"));
        assert!(text.contains("gradcam_requests_admitted 1"));
        // The 0.0.4 text format as written by hand before: types, help texts, no OpenMetrics
        // `# EOF`.
        for line in [
            "# HELP gradcam_info The served model.",
            "# TYPE gradcam_info gauge",
            "# TYPE gradcam_http_requests_total counter",
            "# TYPE gradcam_http_errors_total counter",
            "# TYPE gradcam_http_request_duration_seconds histogram",
            "gradcam_http_request_duration_seconds_sum{route=\"/a\"} 100.203",
            "gradcam_explanations_running 0",
            "gradcam_workers 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
        assert!(!text.contains("EOF"), "{text}");
        assert_eq!(m.requests("/a", 200), 2);
    }
}
