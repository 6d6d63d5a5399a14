//! `gradcam serve`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use gradcam::serve::{AppState, Config};

use super::ModelArgs;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (loopback by default; use 0.0.0.0:PORT to serve a network).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Largest request body, in MB (larger: 413).
    #[arg(long, default_value_t = 20)]
    pub max_body_mb: usize,
    /// Refuse images with more pixels than this (decompression bombs).
    #[arg(long, default_value_t = Config::default().max_pixels)]
    pub max_pixels: u64,
    /// Seconds allowed for one API request, queueing included (504 after).
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// Seconds a request's headers may take (the connection is closed after), and its body may
    /// stall (408).
    #[arg(long, default_value_t = Config::default().read_timeout.as_secs())]
    pub read_timeout: u64,
    /// Explanations running at once. Default: the number of CPUs.
    #[arg(long)]
    pub workers: Option<usize>,
    /// Requests allowed to wait for a worker (503 beyond).
    #[arg(long, default_value_t = Config::default().queue)]
    pub queue: usize,
    /// Connections open at once (new ones wait to be accepted beyond).
    #[arg(long, default_value_t = Config::default().max_connections)]
    pub max_connections: usize,
    /// Connections open at once from one client address (503 beyond).
    #[arg(long, default_value_t = Config::default().max_connections_per_client)]
    pub max_connections_per_client: usize,
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    if args.workers == Some(0) {
        anyhow::bail!("--workers must be at least 1");
    }
    if args.read_timeout == 0 {
        anyhow::bail!("--read-timeout must be at least 1 second");
    }
    if args.max_connections == 0 || args.max_connections_per_client == 0 {
        anyhow::bail!("--max-connections and --max-connections-per-client must be at least 1");
    }
    if args.timeout == 0 {
        anyhow::bail!("--timeout must be at least 1 second");
    }
    let defaults = Config::default();
    let config = Config {
        max_body_bytes: args.max_body_mb.saturating_mul(1024 * 1024),
        max_pixels: args.max_pixels,
        timeout: Duration::from_secs(args.timeout),
        workers: args.workers.unwrap_or(defaults.workers),
        queue: args.queue,
        read_timeout: Duration::from_secs(args.read_timeout),
        max_connections: args.max_connections,
        max_connections_per_client: args.max_connections_per_client,
        ..defaults
    };
    let model = args
        .model
        .load()
        .with_context(|| format!("loading {}", args.model.model))?;
    let name = model.name().to_string();
    let workers = config.workers;
    let state = AppState::new(model, config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(workers + 2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .with_context(|| format!("listening on {}", args.addr))?;
        let addr = listener.local_addr()?;
        eprintln!("gradcam serve: {name} on http://{addr}/ ({workers} workers; Ctrl-C to stop)");
        gradcam::serve::serve(listener, state, gradcam::serve::shutdown_signal()).await?;
        eprintln!("gradcam serve: stopped");
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
