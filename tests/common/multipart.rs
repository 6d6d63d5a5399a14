//! Multipart form bodies for the server's tests.

use axum::body::Body;
use axum::http::{Method, Request, header};

pub const BOUNDARY: &str = "gradcam-test-boundary-7MA4YWxkTrZu0gW";

/// A multipart body: `(name, content, filename)` per field.
pub fn form(fields: &[(&str, &[u8], Option<&str>)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, content, filename) in fields {
        body.extend(format!("--{BOUNDARY}\r\n").bytes());
        match filename {
            Some(f) => body.extend(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n")
                    .bytes(),
            ),
            None => body.extend(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").bytes()),
        }
        body.extend_from_slice(content);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{BOUNDARY}--\r\n").bytes());
    body
}

/// A `POST uri` with `fields` as its multipart body.
pub fn multipart_request(uri: &str, fields: &[(&str, &[u8], Option<&str>)]) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(Body::from(form(fields)))
        .unwrap()
}
