//! The report: health verdicts from `/metrics`, the machine, the headline
//! figures of `latest.json` (medians of the runs, ratios to Baileys) and the
//! markdown tables for `BENCHMARKS.md`.

use serde_json::{Map, Value, json};

use crate::gateway::Metrics;
use crate::stats::{Spread, least_squares};

/// Health of `expected` linked sessions between two scrapes: every one
/// `connected` at the gateway and logged in at the fake (`live`), no
/// keepalive ping failed and no reconnect started in between.
pub fn health(before: &Metrics, now: &Metrics, expected: usize, live: usize) -> Value {
    let connected = now.sum("wagate_sessions", "state=\"connected\"") as usize;
    let pings = |m: &Metrics| m.sum("wagate_keepalive_pings_total", "");
    let ok = |m: &Metrics| m.sum("wagate_keepalive_pings_total", "outcome=\"ok\"");
    let reconnects = |m: &Metrics| m.sum("wagate_reconnect_attempts_total", "");
    let ok_delta = ok(now) - ok(before);
    let failed_delta = (pings(now) - ok(now)) - (pings(before) - ok(before));
    let reconnect_delta = reconnects(now) - reconnects(before);
    json!({
        "healthy": connected == expected && live >= expected && failed_delta == 0.0 && reconnect_delta == 0.0,
        "connected": connected,
        "live_at_fake": live,
        "keepalive_ok": ok_delta,
        "keepalive_failed": failed_delta,
        "reconnects": reconnect_delta,
        "keepalive_rtt_p50_le_s": now.histogram_quantile("wagate_keepalive_rtt_seconds", 0.5),
        "keepalive_rtt_p99_le_s": now.histogram_quantile("wagate_keepalive_rtt_seconds", 0.99),
    })
}

fn command_line(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

pub fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: Option<u64> = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok());
    json!({
        // Not `available_parallelism`: this process is pinned to one CPU.
        "cpus": cpuinfo.lines().filter(|l| l.starts_with("processor")).count(),
        "cpu_model": model,
        "mem_gib": mem_kib.map(|k| (k as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0),
        "kernel": command_line("uname", &["-r"]),
        "rustc": command_line("rustc", &["--version"]),
        "node": command_line("node", &["--version"]),
    })
}

fn numbers<'a>(values: impl IntoIterator<Item = &'a Value>, key: &str) -> Vec<f64> {
    values
        .into_iter()
        .filter_map(|v| v.pointer(key).and_then(Value::as_f64))
        .collect()
}

fn array<'a>(raw: &'a Map<String, Value>, pointer: &str) -> &'a [Value] {
    raw_pointer(raw, pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn raw_pointer<'a>(raw: &'a Map<String, Value>, pointer: &str) -> Option<&'a Value> {
    let mut parts = pointer.trim_start_matches('/').splitn(2, '/');
    let head = raw.get(parts.next()?)?;
    match parts.next() {
        Some(rest) => head.pointer(&format!("/{rest}")),
        None => Some(head),
    }
}

/// Least-squares slope (KiB per session) of `[{n, rss_anon_kib}]` points.
fn rss_slope(points: &[Value]) -> Option<crate::stats::Fit> {
    let xy: Vec<(f64, f64)> = points
        .iter()
        .filter_map(|p| Some((p["n"].as_f64()?, p["rss_anon_kib"].as_f64()?)))
        .collect();
    least_squares(&xy)
}

/// Send runs at `rate` across the restore runs.
fn send_at(raw: &Map<String, Value>, rate: f64, key: &str) -> Spread {
    let values: Vec<f64> = array(raw, "/send")
        .iter()
        .flat_map(|run| run["runs"].as_array().cloned().unwrap_or_default())
        .filter(|r| r["rate"].as_f64() == Some(rate))
        .filter_map(|r| r[key].as_f64())
        .collect();
    Spread::of(&values)
}

fn ratio(baileys: f64, wagate: f64) -> Value {
    if baileys.is_finite() && wagate.is_finite() && wagate > 0.0 {
        json!((baileys / wagate * 10.0).round() / 10.0)
    } else {
        Value::Null
    }
}

fn num(x: f64) -> Value {
    if x.is_finite() { json!(x) } else { Value::Null }
}

/// `latest.json`: headline keys, per-figure spreads, the raw runs.
pub fn build(meta: Value, raw: &Map<String, Value>) -> Value {
    let ladder_points = array(raw, "/ladder/points");
    let fit = rss_slope(ladder_points);
    let restore = Spread::of(&numbers(array(raw, "/restore/runs"), "/restore/t100_s"));
    let restore_50 = Spread::of(&numbers(array(raw, "/restore/runs"), "/restore/t50_s"));
    let restore_90 = Spread::of(&numbers(array(raw, "/restore/runs"), "/restore/t90_s"));
    let restore_cpu = Spread::of(&numbers(array(raw, "/restore/runs"), "/restore/cpu_s"));
    let qr_single = Spread::of(&numbers(array(raw, "/create_to_qr"), "/single_p50_ms"));
    let qr_single_99 = Spread::of(&numbers(array(raw, "/create_to_qr"), "/single_p99_ms"));
    let qr_burst = Spread::of(&numbers(array(raw, "/create_to_qr"), "/burst_p50_ms"));
    let qr_burst_99 = Spread::of(&numbers(array(raw, "/create_to_qr"), "/burst_p99_ms"));
    let inbound = Spread::of(&numbers(array(raw, "/inbound"), "/msgs_per_s"));
    let max_rate = Spread::of(&numbers(array(raw, "/send"), "/max_sustained_rate"));
    let rates: Vec<f64> = meta["plan"]["rates"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    let send: Map<String, Value> = rates
        .iter()
        .map(|rate| {
            (
                format!("{rate}"),
                json!({"p50_ms": send_at(raw, *rate, "p50_ms"), "p99_ms": send_at(raw, *rate, "p99_ms")}),
            )
        })
        .collect();

    let b_mem = rss_slope(array(raw, "/baileys/rss_memory"));
    let b_file = rss_slope(array(raw, "/baileys/rss_file"));
    let b_restore = Spread::of(&numbers(array(raw, "/baileys/restore"), "/fake/t100_s"));
    let b_restore_cpu = Spread::of(&numbers(array(raw, "/baileys/restore"), "/fake/cpu_s"));
    let b_qr = Spread::of(&numbers(
        array(raw, "/baileys/create_to_qr_single"),
        "/p50_ms",
    ));
    let b_qr_burst = Spread::of(&numbers(
        array(raw, "/baileys/create_to_qr_burst"),
        "/p50_ms",
    ));
    let b_inbound = Spread::of(&numbers(array(raw, "/baileys/inbound"), "/msgs_per_s"));
    let b_send: Map<String, Value> = rates
        .iter()
        .map(|rate| {
            let runs: Vec<Value> = array(raw, "/baileys/send")
                .iter()
                .filter(|r| r["rate"].as_f64() == Some(*rate))
                .cloned()
                .collect();
            (
                format!("{rate}"),
                json!({"p50_ms": Spread::of(&numbers(&runs, "/p50_ms")), "p99_ms": Spread::of(&numbers(&runs, "/p99_ms"))}),
            )
        })
        .collect();
    let wagate_rss = fit.map(|f| f.slope).unwrap_or(f64::NAN);
    // After a restart: the baseline, the restored `restore_n` (median of the
    // runs) and the restored ladder.
    let mut restored_points = Vec::new();
    if let Some(base) = raw_pointer(raw, "/ladder/baseline_rss_anon_kib").and_then(Value::as_f64) {
        restored_points.push(json!({"n": 0, "rss_anon_kib": base}));
    }
    let restored_rss = Spread::of(&numbers(array(raw, "/restore/runs"), "/rss_anon_kib"));
    if let (Some(n), true) = (
        raw_pointer(raw, "/restore/n").and_then(Value::as_f64),
        restored_rss.runs > 0,
    ) {
        restored_points.push(json!({"n": n, "rss_anon_kib": restored_rss.median}));
    }
    if let (Some(n), Some(kib)) = (
        raw_pointer(raw, "/ladder/restore/n").and_then(Value::as_f64),
        raw_pointer(raw, "/ladder/restored_rss_anon_kib").and_then(Value::as_f64),
    ) {
        restored_points.push(json!({"n": n, "rss_anon_kib": kib}));
    }
    let restored_fit = rss_slope(&restored_points);

    let mut doc = json!({
        "rss_kib_per_session": num(wagate_rss),
        "rss_kib_per_session_restored": num(restored_fit.map(|f| f.slope).unwrap_or(f64::NAN)),
        "max_healthy_sessions": raw_pointer(raw, "/ladder/max_healthy_sessions").cloned().unwrap_or(Value::Null),
        "restore_1000_s": num(restore.median),
        "send_p99_ms_at_200": num(send_at(raw, 200.0, "p99_ms").median),
        "send_max_sustained_rate": num(max_rate.median),
        "inbound_msgs_per_s": num(inbound.median),
        "create_to_qr_p50_ms": num(qr_single.median),
        "baileys_rss_ratio": ratio(b_mem.map(|f| f.slope).unwrap_or(f64::NAN), wagate_rss),
        "baileys_rss_file_ratio": ratio(b_file.map(|f| f.slope).unwrap_or(f64::NAN), wagate_rss),
        "baileys_restore_ratio": ratio(b_restore.median, restore.median),
        "summary": {
            "wagate": {
                "rss_fit": fit,
                "rss_fit_restored": restored_fit,
                "rss_restored_points": restored_points,
                "restore_n": raw_pointer(raw, "/restore/n"),
                "restore_t50_s": restore_50, "restore_t90_s": restore_90, "restore_t100_s": restore,
                "restore_cpu_s": restore_cpu,
                "send": send,
                "send_max_sustained_rate": max_rate,
                "inbound_msgs_per_s": inbound,
                "create_to_qr_single_p50_ms": qr_single, "create_to_qr_single_p99_ms": qr_single_99,
                "create_to_qr_burst_p50_ms": qr_burst, "create_to_qr_burst_p99_ms": qr_burst_99,
            },
            "baileys": {
                "rss_fit_memory_auth": b_mem,
                "rss_fit_file_auth": b_file,
                "restore_t100_s": b_restore,
                "restore_cpu_s": b_restore_cpu,
                "send": b_send,
                "inbound_msgs_per_s": b_inbound,
                "create_to_qr_single_p50_ms": b_qr,
                "create_to_qr_burst_p50_ms": b_qr_burst,
            },
        },
        "raw": raw,
    });
    if let (Some(doc), Some(meta)) = (doc.as_object_mut(), meta.as_object()) {
        for (k, v) in meta {
            doc.insert(k.clone(), v.clone());
        }
    }
    doc
}

fn spread(v: &Value) -> Spread {
    serde_json::from_value::<SpreadIn>(v.clone())
        .map(|s| Spread {
            median: s.median.unwrap_or(f64::NAN),
            min: s.min.unwrap_or(f64::NAN),
            max: s.max.unwrap_or(f64::NAN),
            runs: s.runs,
        })
        .unwrap_or(Spread::of(&[]))
}

#[derive(serde::Deserialize)]
struct SpreadIn {
    median: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    runs: usize,
}

fn row(
    name: &str,
    wagate: &Value,
    baileys: &Value,
    digits: usize,
    ratio_of: Option<bool>,
) -> String {
    let (w, b) = (spread(wagate), spread(baileys));
    // `Some(true)`: Baileys / wagate (lower is better); `Some(false)`:
    // wagate / Baileys (higher is better).
    let ratio = match ratio_of {
        Some(true) => ratio(b.median, w.median),
        Some(false) => ratio(w.median, b.median),
        None => Value::Null,
    };
    let ratio = ratio
        .as_f64()
        .map(|r| format!("{r}×"))
        .unwrap_or_else(|| "—".into());
    format!(
        "| {name} | {} | {} | {ratio} |\n",
        w.show(digits),
        b.show(digits)
    )
}

/// The markdown tables (printed; pasted into `BENCHMARKS.md`).
pub fn markdown(doc: &Value) -> String {
    let w = &doc["summary"]["wagate"];
    let b = &doc["summary"]["baileys"];
    let mut out = String::new();
    out.push_str(&format!(
        "date {} · load before {} · after {} · suite {:.0} s\n\n",
        doc["date"],
        doc["load_average_before"],
        doc["load_average_after"],
        doc["suite_seconds"].as_f64().unwrap_or(0.0)
    ));
    let slope = |f: &Value| {
        f["slope"]
            .as_f64()
            .map(|s| json!({"median": s, "min": s, "max": s, "runs": 1}))
            .unwrap_or(Value::Null)
    };
    out.push_str("| metric | wagate | Baileys | Baileys ÷ wagate |\n|---|---|---|---|\n");
    out.push_str(&row(
        "RssAnon per idle linked session, KiB (fit)",
        &slope(&w["rss_fit"]),
        &slope(&b["rss_fit_memory_auth"]),
        1,
        Some(true),
    ));
    out.push_str(&row(
        "— Baileys with file auth, KiB",
        &slope(&w["rss_fit"]),
        &slope(&b["rss_fit_file_auth"]),
        1,
        Some(true),
    ));
    out.push_str(&row(
        "restore t100, s",
        &w["restore_t100_s"],
        &b["restore_t100_s"],
        2,
        Some(true),
    ));
    out.push_str(&row(
        "restore CPU, s",
        &w["restore_cpu_s"],
        &b["restore_cpu_s"],
        2,
        Some(true),
    ));
    if let Some(rates) = w["send"].as_object() {
        for (rate, figures) in rates {
            out.push_str(&row(
                &format!("send p50 at {rate}/s, ms"),
                &figures["p50_ms"],
                &b["send"][rate]["p50_ms"],
                1,
                Some(true),
            ));
            out.push_str(&row(
                &format!("send p99 at {rate}/s, ms"),
                &figures["p99_ms"],
                &b["send"][rate]["p99_ms"],
                1,
                Some(true),
            ));
        }
    }
    out.push_str(&row(
        "inbound msg/s",
        &w["inbound_msgs_per_s"],
        &b["inbound_msgs_per_s"],
        0,
        Some(false),
    ));
    out.push_str(&row(
        "create → QR single p50, ms",
        &w["create_to_qr_single_p50_ms"],
        &b["create_to_qr_single_p50_ms"],
        1,
        Some(true),
    ));
    out.push_str(&row(
        "create → QR burst p50, ms",
        &w["create_to_qr_burst_p50_ms"],
        &b["create_to_qr_burst_p50_ms"],
        1,
        Some(true),
    ));
    out.push_str(&format!(
        "\nmax healthy sessions: {} · max sustained send rate: {} msg/s\n",
        doc["max_healthy_sessions"],
        spread(&w["send_max_sustained_rate"]).show(0)
    ));
    out
}
