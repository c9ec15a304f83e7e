//! Inbound messages end to end: fake contacts → fake WhatsApp server →
//! gateway (whatsapp-rust decrypts, the durability hook commits each message
//! to the sled outbox and waits for the group flush before the ack) →
//! dispatcher → signed webhook POST → a local receiver that answers 204.
//! Everything runs in this one process on this machine (fake server,
//! gateway, receiver), so the figures include the fake's own encryption work.
//!
//! Three scenarios, each on a fresh gateway:
//! - `throughput`: `CONTACTS` contacts send as fast as the fake takes them
//!   to one linked session, then spread over `SESSIONS` linked sessions
//!   (contact `c` writes to session `c % SESSIONS`); msg/s = messages /
//!   (first send → last receiver ack). One session's inbound rate is bounded
//!   by its chats in flight (whatsapp-rust handles one message per chat at a
//!   time, and each waits for the outbox flush before its ack); the gateway's
//!   rate, by how many commits share a flush.
//! - `with status`: as `throughput` over `SESSIONS` sessions, while the
//!   contacts acknowledge the gateway's earlier sends at the same rate (one
//!   `message.status` event per inbound message, through the same outbox).
//! - `latency`: paced at `RATE` msg/s for `SECONDS`; per message, the time
//!   from the contact's send call to the receiver's ack: p50/p99/max.
//!
//! The gateway runs on a runtime of its own (threads `wagate-gw`), the fake,
//! the contacts and the receiver on the bench's (`bench-rt`): each
//! throughput line also gives the **gateway's CPU time per inbound message**
//! — the process's user + system CPU time (`/proc/self/stat`, exited threads
//! included) less that of the bench's own threads (`/proc/self/task/*/stat`),
//! over the run, divided by the messages. What is left is the gateway's
//! runtime and the threads it starts (sled's). A run with `--bench` writes
//! the 8-session figure to `benches/results/latest.json` as
//! `gateway_cpu_us_per_inbound_msg` (the other keys are kept), and every
//! figure of the run under `inbound_bench`.
//!
//! Run: `cargo bench --bench inbound --features test-server`
//! (optional: `WAGATE_BENCH_MESSAGES`, `WAGATE_BENCH_CONTACTS`,
//! `WAGATE_BENCH_SESSIONS` (default 8), `WAGATE_BENCH_RATE`,
//! `WAGATE_BENCH_SECONDS`).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use reqwest::Method;

use serde_json::{Value, json};
use test_support::fake::start_fake;
use test_support::gateway::{TestApp, spawn_app_on};
use test_support::webhook::Receiver;

/// The runtime the gateway runs on (apart from the bench's own).
static GATEWAY_RUNTIME: OnceLock<tokio::runtime::Handle> = OnceLock::new();
/// Name of the bench runtime's threads (fake, contacts, receiver).
const BENCH_THREADS: &str = "bench-rt";
/// Name of the gateway runtime's threads.
const GATEWAY_THREADS: &str = "wagate-gw";

/// The linked phone of session `s`.
fn own_phone(s: usize) -> String {
    format!("155500{:05}", 1111 + s)
}

/// A fresh gateway with `sessions` linked companies, each with the webhook
/// receiver as its webhook (message events only).
async fn setup(sessions: usize) -> (TestApp, Receiver) {
    setup_with_events(sessions, &["message.received"]).await
}

/// [`setup`] with the webhook subscribed to `events`.
async fn setup_with_events(sessions: usize, events: &[&str]) -> (TestApp, Receiver) {
    let runtime = GATEWAY_RUNTIME.get().expect("the gateway runtime");
    let app = spawn_app_on(runtime, start_fake().await, |_| {}).await;
    let receiver = Receiver::start().await;
    for s in 0..sessions {
        let company = format!("bench{s}");
        app.api.link_by_qr(&app.fake, &company, &own_phone(s)).await;
        receiver.subscribe(&app.api, &company, Some(events)).await;
    }
    (app, receiver)
}

/// Accepted `message.status` events with status `status`, distinct by id.
fn status_events(log: &test_support::webhook::Log, status: &str) -> usize {
    log.accepted
        .iter()
        .filter(|h| h.body["type"] == "message.status" && h.body["data"]["status"] == status)
        .map(|h| h.id.as_str())
        .collect::<std::collections::HashSet<_>>()
        .len()
}

fn contact(c: usize) -> String {
    format!("1555000{:04}", 3000 + c)
}

/// Waits until the receiver got `count` distinct messages; panics after `limit`.
async fn wait_for(receiver: &Receiver, count: usize, limit: Duration) {
    receiver
        .wait_for_within(&format!("{count} messages"), limit, |log| {
            log.first_arrival.len() >= count
        })
        .await;
}

/// One throughput run's figures.
struct Throughput {
    msgs_per_s: f64,
    gateway_cpu_us_per_msg: f64,
}

async fn throughput(messages: usize, contacts: usize, sessions: usize) -> Throughput {
    let (app, receiver) = setup(sessions).await;
    let per_contact = messages / contacts;
    let total = per_contact * contacts;
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let mut sends = tokio::task::JoinSet::new();
    // Contact `c` writes to session `c % sessions`: one chat per contact.
    for c in 0..contacts {
        let fake = app.fake.clone();
        let to = own_phone(c % sessions);
        sends.spawn(async move {
            for i in 0..per_contact {
                fake.contact_send_text(&contact(c), &to, &format!("t{c}-{i}"))
                    .await
                    .expect("send");
            }
        });
    }
    let flushes_before = flush_stats(&app).await;
    sends.join_all().await;
    let sent_in = started.elapsed();
    wait_for(&receiver, total, Duration::from_secs(600)).await;
    let elapsed = started.elapsed();
    let cpu = cpu_seconds().since(&cpu_before);
    let (flushes, commits, flush_s) = flush_stats(&app).await;
    let flushes = flushes - flushes_before.0;
    println!(
        "throughput  n={total} sessions={sessions} contacts={contacts}  {:.0} msg/s end to end ({:.2} s; the fake accepted them at {:.0} msg/s); \
         {flushes:.0} outbox flushes, {:.1} commits and {:.2} ms each on average",
        total as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64(),
        total as f64 / sent_in.as_secs_f64(),
        (commits - flushes_before.1) / flushes.max(1.0),
        (flush_s - flushes_before.2) * 1000.0 / flushes.max(1.0),
    );
    let figures = Throughput {
        msgs_per_s: total as f64 / elapsed.as_secs_f64(),
        gateway_cpu_us_per_msg: cpu.gateway() * 1e6 / total as f64,
    };
    println!(
        "            gateway CPU {:.1} µs per inbound message ({:.2} s: {:.2} s on its named threads); \
         the whole process {:.1} µs per message",
        figures.gateway_cpu_us_per_msg,
        cpu.gateway(),
        cpu.gateway_named,
        cpu.total * 1e6 / total as f64,
    );
    app.stop().await;
    figures
}

/// CPU seconds used by this process so far, split by thread.
#[derive(Clone, Copy, Debug, Default)]
struct Cpu {
    /// All threads, exited ones included.
    total: f64,
    /// The bench's own threads: its runtime and the main thread.
    bench: f64,
    /// The gateway runtime's and sled's threads (a cross-check: threads
    /// that exited are missing here).
    gateway_named: f64,
}

impl Cpu {
    /// What was used between `earlier` and this sample.
    fn since(&self, earlier: &Cpu) -> Cpu {
        Cpu {
            total: self.total - earlier.total,
            bench: self.bench - earlier.bench,
            gateway_named: self.gateway_named - earlier.gateway_named,
        }
    }

    /// The gateway's part: everything but the bench's own threads.
    fn gateway(&self) -> f64 {
        self.total - self.bench
    }
}

/// This process's CPU time now, split by thread name.
fn cpu_seconds() -> Cpu {
    let mut cpu = Cpu {
        total: test_support::bench::stat_cpu_seconds("/proc/self/stat"),
        ..Cpu::default()
    };
    let main_tid = std::process::id().to_string();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return cpu;
    };
    for task in tasks.flatten() {
        let tid = task.file_name().to_string_lossy().into_owned();
        let dir = format!("/proc/self/task/{tid}");
        let comm = std::fs::read_to_string(format!("{dir}/comm")).unwrap_or_default();
        let comm = comm.trim();
        let seconds = test_support::bench::stat_cpu_seconds(&format!("{dir}/stat"));
        if tid == main_tid || comm.starts_with(BENCH_THREADS) {
            cpu.bench += seconds;
        } else if comm.starts_with(GATEWAY_THREADS) || comm.starts_with("sled") {
            cpu.gateway_named += seconds;
        }
    }
    cpu
}

/// Inbound messages with delivery status flowing the other way at the same
/// rate (issue 15): the gateway first sends `messages / 2` texts to the
/// contacts (through the API, contacts' automatic receipts off; their `sent`
/// events drain before the clock starts); then, as in [`throughput`], the
/// contacts send `messages` texts, and after each one also acknowledge one
/// of the gateway's texts — `delivered` and then `read` for each, so one
/// `message.status` event per inbound message. msg/s = inbound messages /
/// (first send → the last message and the last status event acked).
async fn throughput_with_status(messages: usize, contacts: usize, sessions: usize) {
    let (app, receiver) =
        setup_with_events(sessions, &["message.received", "message.status"]).await;
    app.fake
        .set_auto_receipts(None, false)
        .expect("auto receipts off");
    let per_contact = (messages / contacts) & !1;
    let total = per_contact * contacts;
    // Contact `c` chats with session `c % sessions`, as in `throughput`.
    let mut ids: Vec<Vec<String>> = Vec::new();
    for c in 0..contacts {
        let company = format!("bench{}", c % sessions);
        let mut mine = Vec::new();
        for i in 0..per_contact / 2 {
            let (status, body) = app
                .api
                .send_text(&company, &contact(c), &format!("out{c}-{i}"), None)
                .await;
            assert!(status.is_success(), "send: {status} {body}");
            mine.push(
                body["message_id"]
                    .as_str()
                    .expect("a message id")
                    .to_owned(),
            );
        }
        ids.push(mine);
    }
    let sent_events = total / 2;
    receiver
        .wait_for_within(
            "the sends' `sent` events",
            Duration::from_secs(600),
            |log| {
                // The length first: the scan is linear, the check runs on every event.
                log.accepted.len() >= sent_events && status_events(log, "sent") >= sent_events
            },
        )
        .await;
    receiver.clear();

    let started = Instant::now();
    let mut sends = tokio::task::JoinSet::new();
    for (c, mine) in ids.into_iter().enumerate() {
        let fake = app.fake.clone();
        let to = own_phone(c % sessions);
        sends.spawn(async move {
            for i in 0..per_contact {
                fake.contact_send_text(&contact(c), &to, &format!("s{c}-{i}"))
                    .await
                    .expect("send");
                let kind = if i % 2 == 0 {
                    fakewa::ReceiptKind::Delivered
                } else {
                    fakewa::ReceiptKind::Read
                };
                fake.contact_receipt(&contact(c), Some(&to), &[mine[i / 2].clone()], kind)
                    .expect("receipt");
            }
        });
    }
    sends.join_all().await;
    receiver
        .wait_for_within(
            &format!("{total} messages and every acknowledged send read"),
            Duration::from_secs(600),
            |log| {
                log.accepted.len() >= total + total / 2
                    && log.first_arrival.len() >= total
                    && status_events(log, "read") >= total / 2
            },
        )
        .await;
    let elapsed = started.elapsed();
    // A `delivered` handled after its message's `read` produces no event (a
    // status never goes backwards), so there may be fewer than `total`.
    let status =
        receiver.with_log(|log| status_events(log, "delivered") + status_events(log, "read"));
    println!(
        "with status n={total} sessions={sessions} contacts={contacts}  {:.0} inbound msg/s end to end \
         with {status} status events ({:.0} events/s in all, {:.2} s)",
        total as f64 / elapsed.as_secs_f64(),
        (total + status) as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64(),
    );
    app.stop().await;
}

/// The outbox's group flushes so far, from `/metrics`: (flushes, commits
/// they covered, seconds spent flushing).
async fn flush_stats(app: &TestApp) -> (f64, f64, f64) {
    let body = match app.api.request(Method::GET, "/metrics").send().await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    let value = |name: &str| {
        body.lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (
        value("wagate_outbox_flush_batch_size_count "),
        value("wagate_outbox_flush_batch_size_sum "),
        value("wagate_outbox_flush_seconds_sum "),
    )
}

async fn latency(rate: usize, seconds: usize, contacts: usize) {
    let (app, receiver) = setup(1).await;
    let total = rate * seconds;
    let sent_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut sends = tokio::task::JoinSet::new();
    // One task per contact keeps each chat's messages in order; the ticker
    // hands out the next message number.
    let (tx, _) = tokio::sync::broadcast::channel::<usize>(total + 1);
    for c in 0..contacts {
        let (fake, sent_at, mut rx) = (app.fake.clone(), sent_at.clone(), tx.subscribe());
        sends.spawn(async move {
            while let Ok(n) = rx.recv().await {
                if n % contacts != c {
                    continue;
                }
                let text = format!("l{n}");
                sent_at.lock().insert(text.clone(), Instant::now());
                fake.contact_send_text(&contact(c), &own_phone(0), &text)
                    .await
                    .expect("send");
            }
        });
    }
    for n in 0..total {
        ticker.tick().await;
        let _ = tx.send(n);
    }
    drop(tx);
    sends.join_all().await;
    let offered = total as f64 / started.elapsed().as_secs_f64();
    wait_for(&receiver, total, Duration::from_secs(600)).await;
    let mut samples: Vec<Duration> = {
        let sent_at = sent_at.lock();
        receiver.with_log(|log| {
            sent_at
                .iter()
                .filter_map(|(text, sent)| {
                    log.first_arrival
                        .get(text)
                        .map(|got| got.saturating_duration_since(*sent))
                })
                .collect()
        })
    };
    samples.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let pick = |p: f64| {
        samples[(((p / 100.0) * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1]
    };
    println!(
        "latency     n={} at {rate} msg/s (offered {offered:.0} msg/s)  p50={:.1} ms  p99={:.1} ms  max={:.1} ms",
        samples.len(),
        ms(pick(50.0)),
        ms(pick(99.0)),
        ms(samples[samples.len() - 1]),
    );
    app.stop().await;
}

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

fn main() {
    // `cargo test --benches` runs a tiny smoke version.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let (contacts, sessions) = if smoke {
        (4, 2)
    } else {
        (
            env_count("WAGATE_BENCH_CONTACTS", 64),
            env_count("WAGATE_BENCH_SESSIONS", 8),
        )
    };
    let (messages, rate, seconds) = if smoke {
        (40, 20, 1)
    } else {
        (
            env_count("WAGATE_BENCH_MESSAGES", 20_000),
            env_count("WAGATE_BENCH_RATE", 500),
            env_count("WAGATE_BENCH_SECONDS", 20),
        )
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    // Idle threads are kept (an hour): the CPU time of an exited bench
    // thread would be counted as the gateway's.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name(BENCH_THREADS)
        .thread_keep_alive(Duration::from_secs(3600))
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let gateway_runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name(GATEWAY_THREADS)
        .thread_keep_alive(Duration::from_secs(3600))
        .enable_all()
        .build()
        .expect("the gateway's tokio runtime");
    let _ = GATEWAY_RUNTIME.set(gateway_runtime.handle().clone());
    let load_before = load_average();
    let (one, eight) = runtime.block_on(async {
        let one = throughput(messages, contacts.min(8), 1).await;
        let eight = throughput(messages, contacts.max(sessions), sessions).await;
        throughput_with_status(messages, contacts.max(sessions), sessions).await;
        latency(rate, seconds, 8).await;
        (one, eight)
    });
    if !smoke {
        let figures = json!({
            "command": "cargo bench --bench inbound --features test-server",
            "date": test_support::bench::utc_now(),
            "load_average_before": load_before,
            "load_average_after": load_average(),
            "messages": messages,
            "msgs_per_s_1_session": one.msgs_per_s,
            "msgs_per_s_8_sessions": eight.msgs_per_s,
            "gateway_cpu_us_per_inbound_msg_1_session": one.gateway_cpu_us_per_msg,
            "gateway_cpu_us_per_inbound_msg_8_sessions": eight.gateway_cpu_us_per_msg,
        });
        match write_results(eight.gateway_cpu_us_per_msg, figures) {
            Ok(path) => println!("wrote {path}"),
            Err(error) => eprintln!("could not write the results: {error}"),
        }
    }
    gateway_runtime.shutdown_background();
}

/// Sets `gateway_cpu_us_per_inbound_msg` and `inbound_bench` in
/// `benches/results/latest.json`, keeping every other key.
fn write_results(cpu_us_per_msg: f64, figures: Value) -> Result<String, String> {
    let path = format!("{}/benches/results/latest.json", env!("CARGO_MANIFEST_DIR"));
    let mut doc: Value = match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?,
        Err(_) => json!({}),
    };
    let object = doc
        .as_object_mut()
        .ok_or_else(|| format!("{path} is not a JSON object"))?;
    object.insert(
        "gateway_cpu_us_per_inbound_msg".into(),
        json!(cpu_us_per_msg),
    );
    object.insert("inbound_bench".into(), figures);
    let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())? + "\n";
    std::fs::write(&path, text).map_err(|e| format!("{path}: {e}"))?;
    Ok(path)
}

/// The 1, 5 and 15 minute load averages.
fn load_average() -> Vec<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .filter_map(|v| v.parse().ok())
        .collect()
}
