//! Benchmark: how much memory the fake server needs per idle linked device.
//!
//! `cargo run --release -p fakewa --example idle_conns -- [N] [CONCURRENCY]`
//!
//! The parent process starts the fake server as a child process (this same
//! binary with `--serve`), links N real whatsapp-rust clients to it (QR via
//! the admin API, each reaching `Connected`), leaves them idle, and reads the
//! child's resident set size (VmRSS) before and after. Only the server's
//! memory is measured; the clients live in the parent.

use std::time::{Duration, Instant};

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use test_support::WAIT;
use test_support::fake::{self, ClientOptions, TestClient, new_backend};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};

/// Counts live heap bytes, so the server can report its heap next to RSS
/// (RSS also holds allocator slack from start-up traffic).
struct CountingAlloc;

static LIVE_HEAP: AtomicUsize = AtomicUsize::new(0);

// SAFETY: delegates to the system allocator; only adds bookkeeping.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_HEAP.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_HEAP.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn serve() -> anyhow::Result<()> {
    let server = fakewa::FakeServer::start(fakewa::Config {
        record_stanzas: false,
        ..fakewa::Config::default()
    })
    .await?;
    println!("{}", server.addr());
    // Each line on stdin asks for the live heap size; EOF stops the server.
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while stdin.next_line().await?.is_some() {
        println!("{}", LIVE_HEAP.load(Ordering::Relaxed));
    }
    drop(server);
    Ok(())
}

async fn link_one(addr: String) -> anyhow::Result<TestClient> {
    let url = format!("ws://{addr}/ws/chat");
    // FAKEWA_BENCH_PREKEYS: one-time prekeys each client uploads (default 812).
    let options = ClientOptions {
        prekey_count: std::env::var("FAKEWA_BENCH_PREKEYS")
            .ok()
            .and_then(|v| v.parse().ok()),
        ..Default::default()
    };
    let mut client = TestClient::start(&url, new_backend(), options).await;
    let qr = client.qr().await;
    let (status, body) = fake::http(&addr, "POST", "/admin/mock-phone/scan-qr", &qr).await?;
    anyhow::ensure!(status == 200, "scan-qr returned {status}: {body}");
    client.connected(WAIT).await;
    client.clear_events();
    Ok(client)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--serve") {
        return serve().await;
    }
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let concurrency: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(8);

    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .arg("--serve")
        .stdout(std::process::Stdio::piped())
        .stdin(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child
        .id()
        .ok_or_else(|| anyhow::anyhow!("child has no pid"))?;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let addr = lines
        .next_line()
        .await?
        .ok_or_else(|| anyhow::anyhow!("server printed no address"))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let mut heap = async || -> anyhow::Result<u64> {
        stdin.write_all(b"heap\n").await?;
        let line = lines.next_line().await?.unwrap_or_default();
        Ok(line.trim().parse::<u64>()? / 1024)
    };
    // A measurement settle, kept on purpose: the server is up (it printed its
    // address), but nothing signals that its start-up allocations are done.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before = rss_kib(pid);
    let heap_before = heap().await?;

    let started = Instant::now();
    let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let permit = semaphore.clone().acquire_owned().await?;
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let client = link_one(addr).await;
            drop(permit);
            client
        }));
    }
    let mut clients = Vec::with_capacity(n);
    for task in tasks {
        clients.push(task.await??);
    }
    let link_time = started.elapsed();

    // Let start-up traffic finish, then measure the idle state (a
    // measurement settle, kept on purpose: "idle" has no event).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (_, body) = fake::http(&addr, "GET", "/admin/connections", "").await?;
    let conns: Vec<serde_json::Value> = serde_json::from_str(&body)?;
    let live: u64 = conns.iter().filter_map(|c| c["connections"].as_u64()).sum();
    let rss_after = rss_kib(pid);
    let heap_after = heap().await?;
    let per_conn = (rss_after.saturating_sub(rss_before)) as f64 / n as f64;
    let heap_per_conn = (heap_after.saturating_sub(heap_before)) as f64 / n as f64;
    println!("linked devices:          {n} ({live} live connections)");
    println!(
        "linking time:            {:.1} s ({concurrency} at a time)",
        link_time.as_secs_f64()
    );
    println!("server RSS before:       {rss_before} KiB");
    println!("server RSS with {n} idle: {rss_after} KiB");
    println!("server heap before/after: {heap_before} / {heap_after} KiB");
    println!("server RSS per idle linked connection:  {per_conn:.1} KiB");
    println!("server heap per idle linked connection: {heap_per_conn:.1} KiB");
    drop(clients);
    child.kill().await?;
    Ok(())
}
