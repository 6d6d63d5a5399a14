//! The accept loop: HTTP/1 connections served by hyper with a bound on how many are open, in
//! all and per client address, and on how long a client may take to send its headers.
//!
//! `axum::serve` has neither bound: a client that opens connections and sends half a header
//! line holds each one forever. Here a connection whose headers do not arrive within
//! [`Config::read_timeout`] is closed, a client over [`Config::max_connections_per_client`]
//! gets `503` at once, and past [`Config::max_connections`] the server stops accepting (new
//! clients wait in the kernel's backlog) until one closes.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::response::IntoResponse;
use axum::serve::Listener;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;

use super::{ApiError, AppState, Config};

/// Open connections per client address.
#[derive(Clone, Default)]
struct ClientCounts(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One of a client's connections; its count goes down when the connection closes.
struct ClientConnection {
    counts: ClientCounts,
    client: IpAddr,
}

impl ClientCounts {
    /// Counts a new connection from `client`, or `None` when it already has `limit` open.
    fn open(&self, client: IpAddr, limit: usize) -> Option<ClientConnection> {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(client).or_default();
        (*count < limit).then(|| {
            *count += 1;
            ClientConnection {
                counts: self.clone(),
                client,
            }
        })
    }
}

impl Drop for ClientConnection {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.client);
            }
        }
    }
}

/// Serves `router` on `listener` within `config`'s connection limits until `shutdown`
/// completes, then waits for the open connections to finish their requests.
pub(super) async fn serve(
    mut listener: tokio::net::TcpListener,
    router: Router,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let config: Config = state.config().clone();
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let clients = ClientCounts::default();
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        // `Listener::accept` retries on a client's reset and backs off when out of files.
        let (stream, peer) = tokio::select! {
            accepted = Listener::accept(&mut listener) => accepted,
            () = &mut shutdown => break,
        };
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(config.read_timeout);
        let io = TokioIo::new(stream);
        let connection = clients.open(peer.ip(), config.max_connections_per_client);
        let served: std::pin::Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>> =
            match connection {
                Some(_) => {
                    Box::pin(graceful.watch(
                        builder.serve_connection(io, TowerToHyperService::new(router.clone())),
                    ))
                }
                None => {
                    state.metrics().record_refused_connection();
                    let limit = config.max_connections_per_client;
                    let refuse = hyper::service::service_fn(move |_| async move {
                        Ok::<_, Infallible>(ApiError::TooManyConnections(limit).into_response())
                    });
                    Box::pin(graceful.watch(builder.keep_alive(false).serve_connection(io, refuse)))
                }
            };
        tokio::spawn(async move {
            // Errors here are the client's (a reset, a malformed request hyper answered).
            let _ = served.await;
            drop((slot, connection));
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
