//! Giving memory back to the system after a request on a large image.
//!
//! The allocator keeps freed memory for the next pass (`alloc::tune_for_tensors`), so after one
//! 24-megapixel image the server would keep its peak, some hundreds of megabytes. For large
//! images only (smaller ones reuse what the last request left, without faulting pages in
//! again), free memory is released once the upload is decoded, once the pictures are encoded
//! and once the answer is sent; and the answer is serialised into one buffer of its exact size
//! rather than a doubling one.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::error::ApiError;

/// Images of at least this many pixels release memory after them; smaller ones leave it for
/// the next request.
pub(super) const LARGE_PIXELS: u64 = 4_000_000;

/// Whether an image of `width x height` counts as large.
pub(super) fn is_large(width: u32, height: u32) -> bool {
    width as u64 * height as u64 >= LARGE_PIXELS
}

/// Drops `value` and releases the allocator's free memory ([`crate::alloc::drop_and_release`]).
pub(super) fn drop_and_release<T>(value: T) {
    crate::alloc::drop_and_release(value);
}

/// `value` as a JSON response (as axum's `Json`), in one buffer of its exact length (a first
/// pass counts the bytes), whose body releases free memory once it has been sent.
pub(super) fn large_json(value: &impl Serialize) -> Result<Response, ApiError> {
    let internal = |e: serde_json::Error| {
        eprintln!("gradcam serve: cannot serialise the answer: {e}");
        ApiError::Internal
    };
    let mut count = Counter(0);
    serde_json::to_writer(&mut count, value).map_err(internal)?;
    let mut json = Vec::with_capacity(count.0);
    serde_json::to_writer(&mut json, value).map_err(internal)?;
    let json = Bytes::from(json);
    let body = Body::new(ReleaseWhenSent {
        body: Body::from(json.clone()),
        last: None,
        json: Some(json),
    });
    let content_type = HeaderValue::from_static("application/json");
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

/// A writer that only counts.
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A response body that releases free memory when it ends. hyper drops a body as soon as its
/// declared length has been queued, before writing it; so the last byte is held back as a
/// frame of its own, copied out, and hyper asks for it (then drops the body) only once the
/// rest, the JSON of tens of megabytes for a large image, has been written and freed.
struct ReleaseWhenSent {
    body: Body,
    last: Option<Bytes>,
    /// The JSON, held so that its memory is freed here, where trimming is on.
    json: Option<Bytes>,
}

impl HttpBody for ReleaseWhenSent {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        if let Some(last) = self.last.take() {
            return Poll::Ready(Some(Ok(http_body::Frame::data(last))));
        }
        let frame = std::task::ready!(Pin::new(&mut self.body).poll_frame(cx));
        Poll::Ready(match frame {
            Some(Ok(frame)) if frame.data_ref().is_some_and(|d| d.len() > 1) => {
                let data = frame.into_data().expect("a data frame");
                let n = data.len();
                self.last = Some(Bytes::copy_from_slice(&data[n - 1..]));
                Some(Ok(http_body::Frame::data(data.slice(..n - 1))))
            }
            other => other,
        })
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for ReleaseWhenSent {
    fn drop(&mut self) {
        drop_and_release(self.json.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_json_is_whole_and_its_last_byte_comes_apart() {
        let value = serde_json::json!({ "png": "a".repeat(1000), "n": [1, 2, 3] });
        let response = large_json(&value).unwrap();
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            HeaderValue::from_static("application/json")
        );
        let mut body = response.into_body();
        let want = serde_json::to_vec(&value).unwrap();
        assert_eq!(body.size_hint().exact(), Some(want.len() as u64));
        let mut frames = Vec::new();
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            frames.push(frame.unwrap().into_data().unwrap());
        }
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[1].len(), 1);
        assert_eq!(frames.concat(), want);
    }
}
