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

/// Least-squares slope (KiB per session) of `[{n, rss_anon_kib}]` points;
/// `linked` (sessions that actually opened, when some failed) is used for x
/// in place of `n` when a point has it. Failed steps (no RssAnon) drop out.
fn rss_slope(points: &[Value]) -> Option<crate::stats::Fit> {
    let xy: Vec<(f64, f64)> = points
        .iter()
        .filter_map(|p| {
            let x = p["linked"].as_f64().or_else(|| p["n"].as_f64())?;
            Some((x, p["rss_anon_kib"].as_f64()?))
        })
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

fn slope_of(fit: Option<crate::stats::Fit>) -> f64 {
    fit.map(|f| f.slope).unwrap_or(f64::NAN)
}

/// t50/t90/t100/CPU spreads of restore runs whose figures sit under `key`
/// (`/restore` for wagate's runs, `/fake` for Baileys').
fn restore_spreads(runs: &[Value], key: &str) -> Value {
    let of = |field: &str| Spread::of(&numbers(runs, &format!("{key}/{field}")));
    json!({
        "t50_s": of("t50_s"),
        "t90_s": of("t90_s"),
        "t100_s": of("t100_s"),
        "cpu_s": of("cpu_s"),
        "rss_anon_kib": Spread::of(&numbers(runs, "/rss_anon_kib")),
    })
}

/// Tenants that failed and steps that failed on the Baileys side: nothing
/// is dropped silently.
fn baileys_failures(raw: &Map<String, Value>) -> Value {
    let mut steps: Vec<&Value> = Vec::new();
    for key in [
        "/baileys/rss_memory",
        "/baileys/rss_file",
        "/baileys/restore/runs",
        "/baileys/restore/rss_points",
        "/baileys/restore_link/batches",
        "/baileys/create_to_qr_single",
        "/baileys/create_to_qr_burst",
        "/baileys/send",
        "/baileys/inbound",
    ] {
        steps.extend(array(raw, key));
    }
    steps.extend(raw_pointer(raw, "/baileys/restore_link"));
    let step_errors: Vec<&Value> = steps.iter().filter_map(|s| s.get("error")).collect();
    let tenants = |key: &str| -> f64 {
        array(raw, key)
            .iter()
            .filter_map(|s| s["failed"].as_f64())
            .sum()
    };
    json!({
        "steps_failed": step_errors.len(),
        "step_errors": step_errors,
        "tenants_failed": {
            "link_memory": tenants("/baileys/rss_memory"),
            "link_file": tenants("/baileys/rss_file")
                + raw_pointer(raw, "/baileys/restore_link/failed").and_then(Value::as_f64).unwrap_or(0.0),
            "restore": tenants("/baileys/restore/runs") + tenants("/baileys/restore/rss_points"),
            "create_to_qr": tenants("/baileys/create_to_qr_single") + tenants("/baileys/create_to_qr_burst"),
            "send": tenants("/baileys/send"),
            "inbound": tenants("/baileys/inbound"),
        },
        "send_errors": array(raw, "/baileys/send").iter().filter_map(|s| s["errors"].as_f64()).sum::<f64>(),
        "inbound_lost": array(raw, "/baileys/inbound").iter().filter_map(|s| s["lost"].as_f64()).sum::<f64>(),
    })
}

/// `latest.json`: headline keys, per-figure spreads, the raw runs.
pub fn build(meta: Value, raw: &Map<String, Value>) -> Value {
    let ladder_points = array(raw, "/ladder/points");
    let fit = rss_slope(ladder_points);
    let restore_runs = array(raw, "/restore/runs");
    let restore = Spread::of(&numbers(restore_runs, "/restore/t100_s"));
    let restore_50 = Spread::of(&numbers(restore_runs, "/restore/t50_s"));
    let restore_90 = Spread::of(&numbers(restore_runs, "/restore/t90_s"));
    let restore_cpu = Spread::of(&numbers(restore_runs, "/restore/cpu_s"));
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

    // The restore compared with Baileys: wagate at Baileys' N (its own runs,
    // or the main runs when the sizes match).
    let b_restore_n = raw_pointer(raw, "/baileys/restore/n")
        .and_then(Value::as_f64)
        .or_else(|| meta["plan"]["baileys_restore_n"].as_f64());
    let (w_at_n_runs, w_at_n) = match raw_pointer(raw, "/restore_at_baileys_n") {
        Some(v) => (array(raw, "/restore_at_baileys_n/runs"), v["n"].as_f64()),
        None if raw_pointer(raw, "/restore/n").and_then(Value::as_f64) == b_restore_n => {
            (restore_runs, b_restore_n)
        }
        None => (&[][..], None),
    };
    let w_at = restore_spreads(w_at_n_runs, "/restore");
    let b_restore_runs = array(raw, "/baileys/restore/runs");
    let b_at = restore_spreads(b_restore_runs, "/fake");
    let median = |v: &Value, key: &str| v[key]["median"].as_f64().unwrap_or(f64::NAN);

    let b_mem = rss_slope(array(raw, "/baileys/rss_memory"));
    let b_file = rss_slope(array(raw, "/baileys/rss_file"));
    let b_qr = Spread::of(&numbers(
        array(raw, "/baileys/create_to_qr_single"),
        "/p50_ms",
    ));
    let b_qr_99 = Spread::of(&numbers(
        array(raw, "/baileys/create_to_qr_single"),
        "/p99_ms",
    ));
    let b_qr_burst = Spread::of(&numbers(
        array(raw, "/baileys/create_to_qr_burst"),
        "/p50_ms",
    ));
    let b_qr_burst_99 = Spread::of(&numbers(
        array(raw, "/baileys/create_to_qr_burst"),
        "/p99_ms",
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
            let of = |key: &str| Spread::of(&numbers(&runs, key));
            (
                format!("{rate}"),
                json!({
                    "p50_ms": of("/p50_ms"), "p99_ms": of("/p99_ms"),
                    "ack_p50_ms": of("/ack_p50_ms"), "ack_p99_ms": of("/ack_p99_ms"),
                }),
            )
        })
        .collect();
    let wagate_rss = slope_of(fit);
    // After a restart, wagate: the empty gateway (the ladder's, else the
    // restore phase's), the restored `restore_n` and Baileys' N (medians of
    // the runs) and the restored ladder.
    let mut restored_points = Vec::new();
    if let Some(base) = raw_pointer(raw, "/ladder/baseline_rss_anon_kib")
        .or_else(|| raw_pointer(raw, "/restore/baseline_rss_anon_kib"))
        .and_then(Value::as_f64)
    {
        restored_points.push(json!({"n": 0, "rss_anon_kib": base}));
    }
    for (runs, n) in [
        (
            restore_runs,
            raw_pointer(raw, "/restore/n").and_then(Value::as_f64),
        ),
        (
            array(raw, "/restore_at_baileys_n/runs"),
            raw_pointer(raw, "/restore_at_baileys_n/n").and_then(Value::as_f64),
        ),
    ] {
        let rss = Spread::of(&numbers(runs, "/rss_anon_kib"));
        if let (Some(n), true) = (n, rss.runs > 0) {
            restored_points.push(json!({"n": n, "rss_anon_kib": rss.median}));
        }
    }
    if let (Some(n), Some(kib)) = (
        raw_pointer(raw, "/ladder/restore/n").and_then(Value::as_f64),
        raw_pointer(raw, "/ladder/restored_rss_anon_kib").and_then(Value::as_f64),
    ) {
        restored_points.push(json!({"n": n, "rss_anon_kib": kib}));
    }
    let restored_fit = rss_slope(&restored_points);
    // After a restart, Baileys: the harness with no tenant, one restore of
    // each other file-auth size, and the median of the restore runs at N
    // (x = tenants that opened).
    let mut b_restored_points: Vec<Value> = array(raw, "/baileys/restore/rss_points")
        .iter()
        .filter(|p| p.get("error").is_none())
        .map(|p| json!({"n": p["n"], "linked": p["ready"]["open"], "rss_anon_kib": p["rss_anon_kib"]}))
        .collect();
    let b_ok_runs: Vec<&Value> = b_restore_runs
        .iter()
        .filter(|r| r.get("error").is_none())
        .collect();
    let b_restored_rss = Spread::of(&numbers(b_ok_runs.iter().copied(), "/rss_anon_kib"));
    let b_restored_open = Spread::of(&numbers(b_ok_runs.iter().copied(), "/ready/open"));
    if let (Some(n), true) = (b_restore_n, b_restored_rss.runs > 0) {
        b_restored_points.push(json!({"n": n, "linked": num(b_restored_open.median), "rss_anon_kib": b_restored_rss.median}));
    }
    let b_restored_fit = rss_slope(&b_restored_points);

    let mut doc = json!({
        "rss_kib_per_session": num(wagate_rss),
        "rss_kib_per_session_restored": num(slope_of(restored_fit)),
        "max_healthy_sessions": raw_pointer(raw, "/ladder/max_healthy_sessions").cloned().unwrap_or(Value::Null),
        "restore_1000_s": num(restore.median),
        "send_p99_ms_at_200": num(send_at(raw, 200.0, "p99_ms").median),
        "send_max_sustained_rate": num(max_rate.median),
        "inbound_msgs_per_s": num(inbound.median),
        "create_to_qr_p50_ms": num(qr_single.median),
        // Memory (a) as linked: Baileys with memory auth (its lightest
        // profile) against wagate's ladder; file auth beside it.
        "baileys_rss_ratio": ratio(slope_of(b_mem), wagate_rss),
        "baileys_rss_file_ratio": ratio(slope_of(b_file), wagate_rss),
        // Memory (b) after a restart: both restored from their stores.
        "baileys_rss_restored_ratio": ratio(slope_of(b_restored_fit), slope_of(restored_fit)),
        "baileys_rss_restored_method": "least-squares slope of RssAnon over sessions restored (x = sessions open), each side: Baileys over the harness with 0 tenants, one restore of each other CAP_BAILEYS_SIZES file-auth size and the median of the restore runs at baileys_restore_n; wagate over the empty gateway, the median of the restore runs at CAP_RESTORE_N and at baileys_restore_n, and the restored ladder",
        // Restore at the same N on both sides (t100 and CPU-seconds).
        "baileys_restore_n": b_restore_n.map(|n| json!(n)).unwrap_or(Value::Null),
        "baileys_restore_ratio": ratio(median(&b_at, "t100_s"), median(&w_at, "t100_s")),
        "baileys_restore_cpu_ratio": ratio(median(&b_at, "cpu_s"), median(&w_at, "cpu_s")),
        "baileys_node_flags": raw_pointer(raw, "/baileys/node_flags").cloned().unwrap_or(Value::Null),
        "baileys_failures": baileys_failures(raw),
        "summary": {
            "wagate": {
                "rss_fit": fit,
                "rss_fit_restored": restored_fit,
                "rss_restored_points": restored_points,
                "restore_n": raw_pointer(raw, "/restore/n"),
                "restore_t50_s": restore_50, "restore_t90_s": restore_90, "restore_t100_s": restore,
                "restore_cpu_s": restore_cpu,
                "restore_at_baileys_n": {"n": w_at_n, "runs": w_at_n_runs.len(), "figures": w_at},
                "send": send,
                "send_max_sustained_rate": max_rate,
                "inbound_msgs_per_s": inbound,
                "create_to_qr_single_p50_ms": qr_single, "create_to_qr_single_p99_ms": qr_single_99,
                "create_to_qr_burst_p50_ms": qr_burst, "create_to_qr_burst_p99_ms": qr_burst_99,
            },
            "baileys": {
                "rss_fit_memory_auth": b_mem,
                "rss_fit_file_auth": b_file,
                "rss_fit_restored": b_restored_fit,
                "rss_restored_points": b_restored_points,
                "restore_n": b_restore_n,
                "restore": b_at,
                "restore_t100_s": b_at["t100_s"],
                "restore_cpu_s": b_at["cpu_s"],
                "send": b_send,
                "send_tenants": raw_pointer(raw, "/baileys/send_tenants"),
                "inbound_msgs_per_s": b_inbound,
                "inbound_offered_per_s": meta["plan"]["baileys_inbound_rate"],
                "create_to_qr_single_p50_ms": b_qr, "create_to_qr_single_p99_ms": b_qr_99,
                "create_to_qr_burst_p50_ms": b_qr_burst, "create_to_qr_burst_p99_ms": b_qr_burst_99,
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

/// A fit's slope as a one-run spread, for [`row`].
fn slope(fit: &Value) -> Value {
    fit["slope"]
        .as_f64()
        .map(|s| json!({"median": s, "min": s, "max": s, "runs": 1}))
        .unwrap_or(Value::Null)
}

/// `N = …` of a count that may be missing.
fn n_of(v: &Value) -> String {
    v.as_f64()
        .map(|n| format!("{n:.0}"))
        .unwrap_or_else(|| "?".into())
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
    out.push_str("| metric | wagate | Baileys | Baileys ÷ wagate |\n|---|---|---|---|\n");
    out.push_str(&row(
        "RssAnon per idle linked session, KiB (fit), Baileys memory auth",
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
        "RssAnon per session after a restart, KiB (fit), Baileys file auth",
        &slope(&w["rss_fit_restored"]),
        &slope(&b["rss_fit_restored"]),
        1,
        Some(true),
    ));
    let n = n_of(&doc["baileys_restore_n"]);
    let (wn, bn) = (&w["restore_at_baileys_n"]["figures"], &b["restore"]);
    for (label, key, digits) in [
        ("t100", "t100_s", 2),
        ("t50", "t50_s", 2),
        ("t90", "t90_s", 2),
        ("CPU", "cpu_s", 2),
    ] {
        out.push_str(&row(
            &format!("restore {n} {label}, s"),
            &wn[key],
            &bn[key],
            digits,
            Some(true),
        ));
    }
    let null = Value::Null;
    let wn_main = n_of(&w["restore_n"]);
    out.push_str(&row(
        &format!("restore {wn_main} t100, s (wagate only)"),
        &w["restore_t100_s"],
        &null,
        2,
        None,
    ));
    out.push_str(&row(
        &format!("restore {wn_main} CPU, s (wagate only)"),
        &w["restore_cpu_s"],
        &null,
        2,
        None,
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
            out.push_str(&row(
                &format!("— Baileys to the server ack, p99 at {rate}/s, ms"),
                &figures["p99_ms"],
                &b["send"][rate]["ack_p99_ms"],
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
    for (label, key) in [
        ("create → QR single p50, ms", "create_to_qr_single_p50_ms"),
        ("create → QR single p99, ms", "create_to_qr_single_p99_ms"),
        ("create → QR burst p50, ms", "create_to_qr_burst_p50_ms"),
        ("create → QR burst p99, ms", "create_to_qr_burst_p99_ms"),
    ] {
        out.push_str(&row(label, &w[key], &b[key], 1, Some(true)));
    }
    out.push_str(&format!(
        "\nmax healthy sessions: {} · max sustained send rate: {} msg/s\n",
        doc["max_healthy_sessions"],
        spread(&w["send_max_sustained_rate"]).show(0)
    ));
    let failures = &doc["baileys_failures"];
    out.push_str(&format!(
        "Baileys: node {} · failed steps {} · failed tenants {} · send errors {} · inbound lost {} · inbound offered {} msg/s · send/inbound tenants: {}\n",
        doc["baileys_node_flags"],
        failures["steps_failed"],
        failures["tenants_failed"],
        failures["send_errors"],
        failures["inbound_lost"],
        b["inbound_offered_per_s"],
        b["send_tenants"].as_str().unwrap_or("—"),
    ));
    out.push_str(&format!(
        "ratios: memory as linked {} (file auth {}), after a restart {} · restore of {n}: t100 {}, CPU {}\n",
        doc["baileys_rss_ratio"],
        doc["baileys_rss_file_ratio"],
        doc["baileys_rss_restored_ratio"],
        doc["baileys_restore_ratio"],
        doc["baileys_restore_cpu_ratio"],
    ));
    if let Some(phases) = doc["phase_seconds"].as_object() {
        let list: Vec<String> = phases
            .iter()
            .map(|(k, v)| format!("{k} {:.0} s", v.as_f64().unwrap_or(0.0)))
            .collect();
        out.push_str(&format!("phases: {}\n", list.join(" · ")));
    }
    out
}
