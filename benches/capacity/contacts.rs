//! The `contacts` phase (issue 20): is one tenant's memory bounded when it
//! hears from very many people?
//!
//! One linked session on a fresh gateway receives one message from each of
//! `CAP_CONTACTS` (50,000) distinct fake contacts. Each writes from its LID
//! and names its phone number (`as_lid` + `sender_pn` at the fake's admin
//! API, as WhatsApp does in LID-addressed chats), so the session learns one
//! LID↔phone mapping, one Signal session and one chat per contact. Every
//! `CAP_CONTACTS_STEP` (5,000) contacts, once all their messages reached the
//! webhook sink, the gateway's `RssAnon` is sampled. The same is run twice,
//! each on a fresh gateway: with whatsapp-rust's own cache sizes
//! (`WaCacheOptions::whatsapp_rust_defaults`: the LID↔phone cache unbounded,
//! 5,000 chat lanes, 10,000 session locks, 5,000 device lists) and with
//! wagate's defaults. Bounded means the growth per contact falls to about
//! nothing once the caches are full; the figure compared is the growth over
//! the last half of the contacts, in KiB per 1,000 contacts.

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use serde_json::{Value, json};

use crate::Suite;
use crate::scenarios;

const COMPANY: &str = "contacts0";
const OWN_PHONE: &str = "15557780001";
/// Contact `c`'s phone number.
fn contact(c: usize) -> String {
    (15_560_000_000 + c as u64).to_string()
}
/// Contact messages in flight at the fake's admin API.
const IN_FLIGHT: usize = 32;

/// The two cache configurations compared, as the gateway's environment.
fn variants() -> [(&'static str, Vec<(&'static str, String)>); 2] {
    [
        (
            "whatsapp_rust_defaults",
            vec![
                ("WAGATE_WA_LID_CACHE_CAPACITY", "0".to_owned()),
                ("WAGATE_WA_CHAT_LANES", "5000".to_owned()),
                ("WAGATE_WA_SESSION_LOCKS", "10000".to_owned()),
                ("WAGATE_WA_DEVICE_CACHE_CAPACITY", "5000".to_owned()),
            ],
        ),
        ("wagate_defaults", Vec::new()),
    ]
}

pub async fn phase(suite: &mut Suite) -> anyhow::Result<()> {
    let n = crate::env_num("CAP_CONTACTS", 50_000usize).max(1);
    let step = crate::env_num("CAP_CONTACTS_STEP", 5_000usize).clamp(1, n);
    let mut result = serde_json::Map::new();
    for (name, env) in variants() {
        let run = run(suite, name, &env, n, step).await?;
        eprintln!("  contacts, {name}: {run}");
        result.insert(name.to_owned(), run);
    }
    suite.raw.insert("contacts".into(), Value::Object(result));
    Ok(())
}

async fn run(
    suite: &Suite,
    name: &str,
    env: &[(&str, String)],
    n: usize,
    step: usize,
) -> anyhow::Result<Value> {
    let dir = format!("contacts-{name}");
    let gw = suite.gateway_with_env(&dir, env).await?;
    gw.link(&suite.fake, COMPANY, OWN_PHONE).await?;
    gw.set_webhook(COMPANY, &suite.sink.url).await?;
    suite.sink.clear();
    let baseline = scenarios::settled_rss_kib(gw.proc.pid, Duration::from_secs(2)).await;
    let cpu_before = gw.proc.cpu_seconds();
    let started = Instant::now();
    let mut points = vec![json!({"contacts": 0, "rss_anon_kib": baseline, "s": 0.0})];
    let mut sent = 0;
    while sent < n {
        let upto = (sent + step).min(n);
        let failures: Vec<anyhow::Error> = futures_util::stream::iter(sent..upto)
            .map(|c| {
                let fake = &suite.fake;
                async move {
                    fake.contact_text_from_lid(&contact(c), OWN_PHONE, &format!("c{c}"))
                        .await
                }
            })
            .buffer_unordered(IN_FLIGHT)
            .filter_map(|r| async move { r.err() })
            .collect()
            .await;
        if let Some(first) = failures.first() {
            anyhow::bail!(
                "{} contact messages failed, first: {first:#}",
                failures.len()
            );
        }
        sent = upto;
        let complete = suite
            .sink
            .wait_until(Duration::from_secs(600), |log| {
                log.first_arrival.len() >= sent
            })
            .await;
        anyhow::ensure!(complete, "only part of {sent} messages reached the sink");
        let rss = scenarios::settled_rss_kib(gw.proc.pid, Duration::from_secs(1)).await;
        let s = started.elapsed().as_secs_f64();
        eprintln!("  contacts, {name}: {sent} contacts, RssAnon {rss} KiB ({s:.0} s)");
        points.push(json!({"contacts": sent, "rss_anon_kib": rss, "s": s}));
    }
    let cpu_s = gw.proc.cpu_seconds() - cpu_before;
    gw.proc.kill().await;
    let _ = std::fs::remove_dir_all(suite.plan.work.join(dir));
    let rss_at = |i: usize| points[i]["rss_anon_kib"].as_f64().unwrap_or(0.0);
    let contacts_at = |i: usize| points[i]["contacts"].as_f64().unwrap_or(0.0);
    let (last, half) = (points.len() - 1, (points.len() - 1) / 2);
    let kib_per_1000 = |from: usize, to: usize| {
        (rss_at(to) - rss_at(from)) * 1000.0 / (contacts_at(to) - contacts_at(from)).max(1.0)
    };
    Ok(json!({
        "contacts": n,
        "environment": env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        "points": points,
        "rss_growth_kib": rss_at(last) - rss_at(0),
        "kib_per_1000_contacts_first_half": kib_per_1000(0, half),
        "kib_per_1000_contacts_last_half": kib_per_1000(half, last),
        "gateway_cpu_s": cpu_s,
    }))
}
