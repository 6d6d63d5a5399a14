//! Reading a request's body before the request takes a place in the queue.
//!
//! A body is refused from its headers alone when its declared `Content-Length` is over the
//! limit (`413`, and no `100 Continue` is sent, since the body is never polled). Otherwise it
//! is read into memory, bounded by the limit, and dropped with `408` when the next piece does
//! not come within [`Config::read_timeout`] or the upload falls below
//! [`Config::min_body_rate`]. Only a complete body goes on to the handler, which then asks for a
//! place among the workers and the queue: a slow or stalled client never holds one.

use std::pin::Pin;
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::multipart::{Field, MultipartError};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use super::error::ApiError;
use super::{AppState, Config};

/// After a `413` for a body that is on its way, the server reads and discards up to this many
/// times the limit, and at least [`DRAIN_MIN`] (for at most [`DRAIN_TIME`]), before closing, so
/// that a client still writing reads the answer instead of a reset connection.
const DRAIN_FACTOR: usize = 4;

/// The least a `413` drains (a small limit would otherwise leave the client little room).
const DRAIN_MIN: usize = 64 * 1024 * 1024;

/// The longest a `413` keeps reading what the client still sends.
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// Middleware: reads the whole body (see the module doc), then runs the rest with it in memory.
pub(super) async fn read_body(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let config = state.config();
    let (parts, body) = request.into_parts();
    let expects_continue = expects_continue(&parts.headers);
    if let Some(declared) = declared_length(&parts.headers)
        && declared > config.max_body_bytes as u64
    {
        // A client waiting for `100 Continue` has sent nothing: there is nothing to drain.
        let drain = (!expects_continue).then_some(body);
        return too_large(config.max_body_bytes, drain);
    }
    match read_bounded(body, config, declared_length(&parts.headers)).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(Failure::TooLarge(rest)) => too_large(config.max_body_bytes, Some(rest)),
        Err(Failure::Slow) => closing(ApiError::SlowBody(config.read_timeout).into_response()),
        Err(Failure::Broken) => {
            closing(ApiError::BadRequest("could not read the request body".into()).into_response())
        }
    }
}

/// Why a body was not read.
enum Failure {
    /// Over the limit; the rest of the body, to drain.
    TooLarge(Body),
    /// Stalled, or slower than the minimum rate.
    Slow,
    /// The connection failed or the framing was invalid.
    Broken,
}

/// The body in memory, at most `config.max_body_bytes` long; `declared` is its
/// `Content-Length`, already checked against the limit.
async fn read_bounded(
    mut body: Body,
    config: &Config,
    declared: Option<u64>,
) -> Result<Bytes, Failure> {
    let start = Instant::now();
    // One allocation of the declared size, not a doubling buffer (which holds a body and a half
    // while it grows). Pages not written to take no memory if the client sends less.
    let capacity = declared.map_or(0, |n| n.min(config.max_body_bytes as u64) as usize);
    let mut data = Vec::with_capacity(capacity);
    loop {
        let deadline = next_deadline(start, Instant::now(), data.len(), config);
        let frame = tokio::time::timeout_at(
            deadline,
            std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)),
        )
        .await;
        match frame {
            Err(_) => return Err(Failure::Slow),
            Ok(None) => return Ok(Bytes::from(data)),
            Ok(Some(Err(_))) => return Err(Failure::Broken),
            Ok(Some(Ok(frame))) => {
                if let Ok(chunk) = frame.into_data() {
                    if data.len() + chunk.len() > config.max_body_bytes {
                        return Err(Failure::TooLarge(body));
                    }
                    data.extend_from_slice(&chunk);
                }
            }
        }
    }
}

/// When the next piece of the body must have arrived: within the read timeout of now, and no
/// later than the minimum rate allows for what has come so far (after a grace of one read
/// timeout from the start).
fn next_deadline(start: Instant, now: Instant, received: usize, config: &Config) -> Instant {
    let idle = now + config.read_timeout;
    if config.min_body_rate == 0 {
        return idle;
    }
    let earned = Duration::from_secs_f64(received as f64 / config.min_body_rate as f64);
    idle.min(start + config.read_timeout + earned)
}

/// `413`, closing the connection once `drain` (what the client is still sending) has been read
/// to its end or to the drain bound.
fn too_large(limit: usize, drain: Option<Body>) -> Response {
    if let Some(body) = drain {
        tokio::spawn(discard(
            body,
            limit.saturating_mul(DRAIN_FACTOR).max(DRAIN_MIN),
        ));
    }
    closing(ApiError::TooLarge(limit).into_response())
}

/// Reads and drops up to `budget` bytes of `body`, for at most [`DRAIN_TIME`].
async fn discard(mut body: Body, budget: usize) {
    let until = Instant::now() + DRAIN_TIME;
    let mut seen = 0usize;
    while seen <= budget {
        let frame = tokio::time::timeout_at(
            until,
            std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)),
        )
        .await;
        match frame {
            Ok(Some(Ok(frame))) => {
                seen += frame.data_ref().map_or(0, |d| d.len());
            }
            _ => return,
        }
    }
}

/// A multipart field's bytes. The form parser already holds the body in its buffer and hands
/// the field over as views of it; unlike `Field::bytes`, which copies them into a growing
/// buffer, a field in one piece (the usual case, the body being in memory) is not copied.
pub(super) async fn field_bytes(mut field: Field<'_>) -> Result<Bytes, MultipartError> {
    let mut chunks = Vec::new();
    while let Some(chunk) = field.chunk().await? {
        chunks.push(chunk);
    }
    Ok(match chunks.len() {
        1 => chunks.pop().expect("one chunk"),
        _ => Bytes::from(chunks.concat()),
    })
}

/// The response with `Connection: close`: the rest of the request is not read, so the
/// connection cannot carry another one.
fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The declared `Content-Length`, if any and valid (hyper refuses invalid ones earlier).
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(read_timeout: u64, rate: usize) -> Config {
        Config {
            read_timeout: Duration::from_secs(read_timeout),
            min_body_rate: rate,
            ..Config::default()
        }
    }

    #[test]
    fn the_deadline_is_the_idle_timeout_or_the_rate_whichever_is_sooner() {
        let start = Instant::now();
        let s = Duration::from_secs;
        // Nothing received yet: one read timeout from the start.
        assert_eq!(
            next_deadline(start, start, 0, &config(10, 1000)),
            start + s(10)
        );
        // 3 s in, 5,000 bytes at 1,000 B/s allow until 10 + 5 = 15 s; the idle timeout (13 s)
        // is sooner.
        let d = next_deadline(start, start + s(3), 5000, &config(10, 1000));
        assert_eq!(d, start + s(13));
        // 30 s in, 2,000 bytes allow until 10 + 2 = 12 s: already past, so it fails at once.
        let d = next_deadline(start, start + s(30), 2000, &config(10, 1000));
        assert_eq!(d, start + s(12));
        // A rate of 0 turns the rate check off.
        let d = next_deadline(start, start + s(30), 0, &config(3, 0));
        assert_eq!(d, start + s(33));
    }

    #[test]
    fn reads_the_declared_length_and_the_expectation() {
        let mut h = HeaderMap::new();
        assert_eq!(declared_length(&h), None);
        h.insert(
            header::CONTENT_LENGTH,
            HeaderValue::from_static("1000000000000"),
        );
        h.insert(header::EXPECT, HeaderValue::from_static("100-Continue"));
        assert_eq!(declared_length(&h), Some(1_000_000_000_000));
        assert!(expects_continue(&h));
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_too_large_and_one_within_is_read() {
        let c = Config {
            max_body_bytes: 10,
            ..Config::default()
        };
        let ok = read_bounded(Body::from("0123456789"), &c, Some(10)).await;
        assert_eq!(ok.ok().unwrap(), Bytes::from_static(b"0123456789"));
        // A declared length that is wrong either way changes nothing but the first allocation.
        let ok = read_bounded(Body::from("0123456789"), &c, Some(3)).await;
        assert_eq!(ok.ok().unwrap(), Bytes::from_static(b"0123456789"));
        let big = read_bounded(Body::from("0123456789a"), &c, None).await;
        assert!(matches!(big, Err(Failure::TooLarge(_))));
    }
}
