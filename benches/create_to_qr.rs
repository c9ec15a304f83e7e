//! Create → QR-available latency through the HTTP API, against an in-process
//! fake WhatsApp server (nothing leaves the machine).
//!
//! One sample = `POST /v1/sessions/{company}` sent → the first QR code seen
//! on the company's event stream (`GET …/events`, which opens with the
//! current QR if there already is one, so nothing is missed). This is the
//! latency a pairing page sees: the whatsapp-rust client is built, connects,
//! does the Noise handshake and receives `pair-device`.
//!
//! Two scenarios: `single` (one company at a time, sequential) and `burst`
//! (200 companies created at once). Reports p50/p99/max and, for the burst,
//! the wall time until the last QR.
//!
//! Run: `cargo bench --bench create_to_qr --features test-server`
//! (optional: `WAGATE_BENCH_SINGLE=N`, `WAGATE_BENCH_BURST=N`).

use std::time::{Duration, Instant};

use futures_util::future::join_all;

use test_support::api::Api;
use test_support::gateway::spawn_app;

/// Time from the create request to the first QR code on the event stream.
async fn create_to_qr(api: &Api, company: &str) -> Duration {
    let started = Instant::now();
    api.ensure(company).await;
    let mut events = api.events(company).await;
    events.next_qr().await;
    started.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<8} n={:<4} p50={:>8.1} ms  p99={:>8.1} ms  max={:>8.1} ms",
        samples.len(),
        ms(percentile(&samples, 50.0)),
        ms(percentile(&samples, 99.0)),
        ms(samples[samples.len() - 1]),
    );
}

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // special: run a tiny smoke version there so the target stays exercised.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let (single_n, burst_n) = if smoke {
        (2, 5)
    } else {
        (
            env_count("WAGATE_BENCH_SINGLE", 50),
            env_count("WAGATE_BENCH_BURST", 200),
        )
    };

    // Warnings only (`RUST_LOG` overrides): per-session info lines would
    // drown the figures. Installed before the harness's own subscriber.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        // Each scenario gets a fresh fake and gateway.
        let app = spawn_app().await;
        create_to_qr(&app.api, "warmup").await;
        let mut single = Vec::with_capacity(single_n);
        for i in 0..single_n {
            single.push(create_to_qr(&app.api, &format!("single-{i}")).await);
        }
        app.stop().await;

        let app = spawn_app().await;
        create_to_qr(&app.api, "warmup").await;
        let started = Instant::now();
        let companies: Vec<String> = (0..burst_n).map(|i| format!("burst-{i}")).collect();
        let burst = join_all(companies.iter().map(|c| create_to_qr(&app.api, c))).await;
        let wall = started.elapsed();
        app.stop().await;

        println!("create → QR available (HTTP API, in-process fake WhatsApp server)");
        report("single", single);
        report("burst", burst);
        println!(
            "burst    {burst_n} companies: last QR after {:.1} ms",
            wall.as_secs_f64() * 1000.0
        );
    });
}
