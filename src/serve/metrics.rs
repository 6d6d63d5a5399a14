//! Request metrics in Prometheus' text exposition format (version 0.0.4), written by hand:
//! requests by route, method and status, a latency histogram by route, errors by route and
//! kind, and the queue.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ErrorKind;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Default)]
struct Histogram {
    /// Cumulative counts are computed at exposition; these are per bucket, plus one for +Inf.
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        let i = BUCKETS
            .iter()
            .position(|&b| seconds <= b)
            .unwrap_or(BUCKETS.len());
        self.counts[i] += 1;
        self.sum += seconds;
        self.count += 1;
    }
}

#[derive(Default)]
struct Data {
    /// (route, method, status) -> count
    requests: BTreeMap<(String, &'static str, u16), u64>,
    /// route -> latency
    latency: BTreeMap<String, Histogram>,
    /// (route, kind) -> count
    errors: BTreeMap<(String, &'static str), u64>,
}

/// The server's counters. Routes are the matched patterns (unmatched paths count as
/// `unmatched`), so the label sets stay bounded whatever clients send.
pub struct Metrics {
    model: String,
    data: Mutex<Data>,
    /// Explanations stopped because their request timed out.
    cancelled: AtomicU64,
}

impl Metrics {
    pub fn new(model: &str) -> Self {
        Metrics {
            model: model.to_string(),
            data: Mutex::new(Data::default()),
            cancelled: AtomicU64::new(0),
        }
    }

    /// Records an explanation stopped by its request's timeout.
    pub fn record_cancelled(&self) {
        self.cancelled.fetch_add(1, Ordering::Relaxed);
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
        let mut data = self.data.lock().unwrap_or_else(|e| e.into_inner());
        *data
            .requests
            .entry((route.to_string(), method, status))
            .or_default() += 1;
        data.latency
            .entry(route.to_string())
            .or_default()
            .observe(seconds);
        if let Some(kind) = error {
            *data.errors.entry((route.to_string(), kind)).or_default() += 1;
        }
    }

    /// The number of requests recorded for `route` with `status`.
    #[cfg(test)]
    fn requests(&self, route: &str, status: u16) -> u64 {
        let data = self.data.lock().unwrap_or_else(|e| e.into_inner());
        data.requests
            .iter()
            .filter(|((r, _, s), _)| r == route && *s == status)
            .map(|(_, n)| n)
            .sum()
    }

    /// The exposition text, with the queue gauges of `state`.
    pub fn render(&self, admitted: usize, running: usize, workers: usize) -> String {
        let data = self.data.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        let w = &mut out;
        let _ = writeln!(w, "# HELP gradcam_info The served model.");
        let _ = writeln!(w, "# TYPE gradcam_info gauge");
        let _ = writeln!(
            w,
            "gradcam_info{{model=\"{}\",version=\"{}\"}} 1",
            escape(&self.model),
            env!("CARGO_PKG_VERSION")
        );

        let _ = writeln!(
            w,
            "# HELP gradcam_http_requests_total HTTP requests by route, method and status."
        );
        let _ = writeln!(w, "# TYPE gradcam_http_requests_total counter");
        for ((route, method, status), n) in &data.requests {
            let _ = writeln!(
                w,
                "gradcam_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }

        let _ = writeln!(
            w,
            "# HELP gradcam_http_request_duration_seconds Time to answer a request, by route."
        );
        let _ = writeln!(w, "# TYPE gradcam_http_request_duration_seconds histogram");
        for (route, h) in &data.latency {
            let route = escape(route);
            let mut cumulative = 0;
            for (i, bound) in BUCKETS.iter().enumerate() {
                cumulative += h.counts[i];
                let _ = writeln!(
                    w,
                    "gradcam_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                w,
                "gradcam_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                w,
                "gradcam_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                w,
                "gradcam_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count
            );
        }

        let _ = writeln!(
            w,
            "# HELP gradcam_http_errors_total Error responses by route and kind."
        );
        let _ = writeln!(w, "# TYPE gradcam_http_errors_total counter");
        for ((route, kind), n) in &data.errors {
            let _ = writeln!(
                w,
                "gradcam_http_errors_total{{route=\"{}\",kind=\"{kind}\"}} {n}",
                escape(route)
            );
        }

        let _ = writeln!(
            w,
            "# HELP gradcam_requests_admitted Explain requests waiting for a worker or running."
        );
        let _ = writeln!(w, "# TYPE gradcam_requests_admitted gauge");
        let _ = writeln!(w, "gradcam_requests_admitted {admitted}");
        let _ = writeln!(
            w,
            "# HELP gradcam_explanations_running Explanations running now."
        );
        let _ = writeln!(w, "# TYPE gradcam_explanations_running gauge");
        let _ = writeln!(w, "gradcam_explanations_running {running}");
        let _ = writeln!(
            w,
            "# HELP gradcam_workers Explanations allowed to run at once."
        );
        let _ = writeln!(w, "# TYPE gradcam_workers gauge");
        let _ = writeln!(w, "gradcam_workers {workers}");
        let _ = writeln!(
            w,
            "# HELP gradcam_explanations_cancelled_total Explanations stopped because their request timed out."
        );
        let _ = writeln!(w, "# TYPE gradcam_explanations_cancelled_total counter");
        let _ = writeln!(
            w,
            "gradcam_explanations_cancelled_total {}",
            self.cancelled.load(Ordering::Relaxed)
        );
        out
    }
}

/// Escapes a label value (backslash, double quote, newline).
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
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
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
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
        assert_eq!(m.requests("/a", 200), 2);
    }
}
