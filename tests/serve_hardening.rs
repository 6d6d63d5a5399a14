//! `gradcam serve` against slow, stalled and oversized uploads, over real TCP connections on
//! 127.0.0.1 (issue 15, defects 1 and 2), with a small random ResNet of tests/fixtures.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gradcam::serve::{AppState, Config};

const CAT_DOG: &[u8] = include_bytes!("../assets/cat_dog.jpg");

/// Starts a server with `config` on a free port; it stops when the returned sender is dropped.
async fn start(config: Config) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let model = Arc::from(common::small_model("resnet_small"));
    let state = AppState::from_shared(model, config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(gradcam::serve::serve(listener, state, async {
        let _ = stopped.await;
    }));
    (addr, stop)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
}

fn head(addr: SocketAddr, length: &str, extra: &str) -> String {
    format!(
        "POST /v1/explain?overlay=false&heatmap=false HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: image/jpeg\r\n{length}{extra}\r\n"
    )
}

/// The status of the first response on `stream` (reads until the head is complete).
fn status(stream: &mut TcpStream) -> u16 {
    let mut response = Vec::new();
    let mut byte = [0u8; 1];
    while !response.ends_with(b"\r\n\r\n") && response.len() < 64 * 1024 {
        match stream.read(&mut byte) {
            Ok(1) => response.push(byte[0]),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&response);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"))
}

/// A complete request for the cat-and-dog image; returns the status.
fn explain(addr: SocketAddr) -> u16 {
    let mut stream = connect(addr);
    let length = format!("Content-Length: {}\r\n", CAT_DOG.len());
    stream
        .write_all(head(addr, &length, "Connection: close\r\n").as_bytes())
        .unwrap();
    stream.write_all(CAT_DOG).unwrap();
    status(&mut stream)
}

/// Headers declaring 100,000 bytes and 500 of them, then nothing.
fn stalled_upload(addr: SocketAddr) -> TcpStream {
    let mut stream = connect(addr);
    stream
        .write_all(head(addr, "Content-Length: 100000\r\n", "").as_bytes())
        .unwrap();
    stream.write_all(&[0u8; 500]).unwrap();
    stream
}

/// Half a header line, then nothing (a "slowloris" client).
fn stalled_headers(addr: SocketAddr) -> TcpStream {
    let mut stream = connect(addr);
    stream
        .write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nX-Slow: ").as_bytes())
        .unwrap();
    stream
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_uploads_hold_no_place_and_a_normal_request_still_gets_200() {
    let (addr, _stop) = start(Config {
        workers: 1,
        queue: 1,
        read_timeout: Duration::from_secs(60),
        ..Config::default()
    })
    .await;
    // Three times the places there are, all stalled well within their read timeout.
    let stalled: Vec<TcpStream> = (0..6).map(|_| stalled_upload(addr)).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..2 {
        assert_eq!(blocking(move || explain(addr)).await, 200);
    }
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_gets_408_after_the_read_timeout_and_a_trickle_below_the_rate() {
    let (addr, _stop) = start(Config {
        read_timeout: Duration::from_millis(500),
        min_body_rate: 1000,
        ..Config::default()
    })
    .await;
    let (code, waited) = blocking(move || {
        let mut stream = stalled_upload(addr);
        let start = Instant::now();
        (status(&mut stream), start.elapsed())
    })
    .await;
    assert_eq!(code, 408);
    assert!(waited < Duration::from_secs(5), "{waited:?}");

    // 10 bytes every 100 ms (100 B/s) never stalls for 500 ms, but falls below 1,000 B/s:
    // refused once the grace and the 10 bytes' credit (10 ms) are spent, about 0.5 s in.
    let (code, waited) = blocking(move || {
        let mut stream = connect(addr);
        stream
            .write_all(head(addr, "Content-Length: 100000\r\n", "").as_bytes())
            .unwrap();
        let start = Instant::now();
        let mut writer = stream.try_clone().unwrap();
        std::thread::spawn(move || {
            for _ in 0..100 {
                if writer.write_all(&[0u8; 10]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        (status(&mut stream), start.elapsed())
    })
    .await;
    assert_eq!(code, 408);
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    assert_eq!(blocking(move || explain(addr)).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_length_over_the_limit_gets_413_from_the_headers() {
    let (addr, _stop) = start(Config {
        max_body_bytes: 1024 * 1024,
        read_timeout: Duration::from_secs(60),
        ..Config::default()
    })
    .await;
    // 10^12 bytes declared and none sent: answered at once, not after a timeout.
    let (code, waited) = blocking(move || {
        let mut stream = connect(addr);
        let start = Instant::now();
        stream
            .write_all(head(addr, "Content-Length: 1000000000000\r\n", "").as_bytes())
            .unwrap();
        (status(&mut stream), start.elapsed())
    })
    .await;
    assert_eq!(code, 413);
    assert!(waited < Duration::from_secs(2), "{waited:?}");

    // With `Expect: 100-continue`, the first answer is the 413, not `100 Continue`.
    let code = blocking(move || {
        let mut stream = connect(addr);
        let h = head(
            addr,
            "Content-Length: 50000000\r\n",
            "Expect: 100-continue\r\n",
        );
        stream.write_all(h.as_bytes()).unwrap();
        status(&mut stream)
    })
    .await;
    assert_eq!(code, 413);
}

/// Sends headers and `body` in full before reading anything, as simple clients do; returns the
/// status read afterwards, or `None` when the connection was reset first.
fn write_all_then_read(addr: SocketAddr, length: &str, body: &[u8]) -> Option<u16> {
    let mut stream = connect(addr);
    stream.write_all(head(addr, length, "").as_bytes()).ok()?;
    stream.write_all(body).ok()?;
    let mut first = [0u8; 12];
    stream.read_exact(&mut first).ok()?;
    String::from_utf8_lossy(&first[9..12]).parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_413_for_a_body_over_the_limit_reaches_a_client_still_writing() {
    let (addr, _stop) = start(Config {
        max_body_bytes: 1024 * 1024,
        ..Config::default()
    })
    .await;
    // 8 MiB: more than loopback socket buffers hold, so a server that closes without draining
    // resets most of these.
    let body = vec![0u8; 8 * 1024 * 1024];
    let codes = blocking(move || {
        let mut codes = Vec::new();
        for i in 0..25 {
            // Declared, and (every other one) chunked, so that only reading finds the excess.
            let code = if i % 2 == 0 {
                let length = format!("Content-Length: {}\r\n", body.len());
                write_all_then_read(addr, &length, &body)
            } else {
                let mut chunked = format!("{:x}\r\n", body.len()).into_bytes();
                chunked.extend_from_slice(&body);
                chunked.extend_from_slice(b"\r\n0\r\n\r\n");
                write_all_then_read(addr, "Transfer-Encoding: chunked\r\n", &chunked)
            };
            codes.push(code);
        }
        codes
    })
    .await;
    assert!(codes.iter().all(|c| *c == Some(413)), "{codes:?}");
}

/// Sends `request` to the router without a socket; returns the status and the body.
async fn oneshot(
    app: &axum::Router,
    request: axum::http::Request<axum::body::Body>,
) -> (u16, String) {
    use tower::ServiceExt;
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn post_image(uri: &str) -> axum::http::Request<axum::body::Body> {
    axum::http::Request::post(uri)
        .header("content-type", "image/jpeg")
        .body(axum::body::Body::from(CAT_DOG))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_request_gives_its_worker_back_within_one_pass() {
    // The real EfficientNet-Lite0: Score-CAM on its 1,280-channel head takes 80 passes of 16
    // masked images, far longer than the timeout.
    let model = gradcam::model::load(
        "efficientnet_lite0",
        None,
        1000,
        &burn::tensor::Device::flex(),
    )
    .expect("EfficientNet-Lite0 weights (cached under ~/.cache/gradcam)");
    let state = AppState::new(
        model,
        Config {
            workers: 1,
            queue: 1,
            timeout: Duration::from_secs(3),
            ..Config::default()
        },
    );
    let app = gradcam::serve::app(state.clone());
    let (code, body) = oneshot(
        &app,
        post_image("/v1/explain?method=scorecam&overlay=false&heatmap=false"),
    )
    .await;
    assert_eq!(code, 504, "{body}");
    let timed_out = Instant::now();
    while state.running() > 0 && timed_out.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let freed = timed_out.elapsed();
    // One pass (16 masked images through the whole network) takes well under 2 s here.
    assert!(
        freed < Duration::from_secs(2),
        "worker freed after {freed:?}"
    );
    assert_eq!(state.admitted(), 0);
    let (code, body) = oneshot(&app, post_image("/v1/explain?overlay=false&heatmap=false")).await;
    assert_eq!(code, 200, "{body}");
    let (_, metrics) = oneshot(
        &app,
        axum::http::Request::get("/metrics")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    assert!(
        metrics.contains("gradcam_explanations_cancelled_total 1"),
        "{metrics}"
    );
    eprintln!("worker freed {freed:?} after the 504");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_headers_are_closed_after_the_read_timeout_and_a_client_over_its_limit_gets_503() {
    let (addr, _stop) = start(Config {
        read_timeout: Duration::from_millis(500),
        max_connections_per_client: 3,
        ..Config::default()
    })
    .await;
    let stalled: Vec<TcpStream> = (0..3).map(|_| stalled_headers(addr)).collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A fourth connection from the same address is answered at once.
    assert_eq!(blocking(move || explain(addr)).await, 503);
    // The server closes the stalled ones after the read timeout...
    let waited = blocking(move || {
        let start = Instant::now();
        for mut stream in stalled {
            assert_eq!(
                stream.read(&mut [0u8; 64]).unwrap(),
                0,
                "closed without a reply"
            );
        }
        start.elapsed()
    })
    .await;
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    // ...which gives their places back.
    assert_eq!(blocking(move || explain(addr)).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_connections_a_client_waits_to_be_accepted_instead_of_being_dropped() {
    let (addr, _stop) = start(Config {
        read_timeout: Duration::from_millis(500),
        max_connections: 2,
        ..Config::default()
    })
    .await;
    let _stalled: Vec<TcpStream> = (0..2).map(|_| stalled_headers(addr)).collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (code, waited) = blocking(move || {
        let start = Instant::now();
        (explain(addr), start.elapsed())
    })
    .await;
    assert_eq!(code, 200);
    // Served once the stalled connections' header timeout freed a place, not before.
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
}
