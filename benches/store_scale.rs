//! Store scale benchmark: 1,000 companies with the credential state a fresh
//! pairing writes, stored through `SledBackend`, then measured for disk size,
//! RSS per company and the time to reopen the store.
//!
//! Run: `cargo bench --bench store_scale` (release). Options:
//! `--companies N` (default 1000), `--dir PATH` (default: a temporary dir).
//! The reopen phase runs in a child process (`--reopen PATH`) so its RSS is not
//! inflated by the populate phase.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use wacore::appstate::hash::HashState;
use wacore::store::Device;
use wacore::store::traits::{
    AppStateSyncKey, Backend, DeviceInfo, DeviceListRecord, DeviceStore as _, LidPnMappingEntry,
    SignalStore as _,
};
use wagate::domain::CompanyId;
use wagate::store::Store;

/// One-time pre-keys a fresh companion uploads.
const PREKEYS: u32 = 812;
/// libsignal PreKeyRecord: id + 33-byte public + 32-byte private key, protobuf-framed.
const PREKEY_RECORD_BYTES: usize = 75;
/// Signal sessions (and identities) of a freshly paired account: own devices
/// and the first contacts.
const SESSIONS: usize = 6;
const SESSION_RECORD_BYTES: usize = 1_400;
const APP_STATE_COLLECTIONS: [&str; 5] = [
    "critical_block",
    "critical_unblock_low",
    "regular",
    "regular_high",
    "regular_low",
];

/// Tiny deterministic PRNG so the data does not compress unrealistically.
struct XorShift(u64);

impl XorShift {
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                self.0 as u8
            })
            .collect()
    }
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn dir_size(path: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(path) {
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            total += if meta.is_dir() {
                dir_size(&entry.path())
            } else {
                meta.len()
            };
        }
    }
    total
}

fn company(i: usize) -> CompanyId {
    CompanyId::parse(&format!("company-{i:05}")).expect("valid id")
}

/// Writes what a fresh pairing leaves behind, through the Backend trait.
async fn pair(backend: &dyn Backend, i: usize, rng: &mut XorShift) {
    let phone = format!("1555{i:07}");
    let mut device = Device::new();
    device.pn = Some(format!("{phone}:7@s.whatsapp.net").parse().expect("jid"));
    device.lid = Some(format!("1000000{i:08}:7@lid").parse().expect("jid"));
    device.push_name = format!("Company {i}");
    device.next_pre_key_id = PREKEYS + 1;
    backend.save(&device).await.expect("save device");

    let prekeys: Vec<(u32, Bytes)> = (1..=PREKEYS)
        .map(|id| (id, Bytes::from(rng.bytes(PREKEY_RECORD_BYTES))))
        .collect();
    backend
        .store_prekeys_batch(&prekeys, true)
        .await
        .expect("prekeys");
    backend
        .store_signed_prekey(1, &rng.bytes(110))
        .await
        .expect("signed prekey");

    let sessions: Vec<(Arc<str>, Bytes)> = (0..SESSIONS)
        .map(|s| {
            (
                Arc::from(format!("1555999{s:04}.0:{s}").as_str()),
                Bytes::from(rng.bytes(SESSION_RECORD_BYTES)),
            )
        })
        .collect();
    backend
        .put_sessions_batch(&sessions)
        .await
        .expect("sessions");
    let identities: Vec<(Arc<str>, [u8; 32])> = sessions
        .iter()
        .map(|(address, _)| (address.clone(), rng.bytes(32).try_into().expect("32 bytes")))
        .collect();
    backend
        .put_identities_batch(&identities)
        .await
        .expect("identities");

    for k in 0..3u8 {
        let key = AppStateSyncKey {
            key_data: rng.bytes(32),
            fingerprint: rng.bytes(12),
            timestamp: 1_700_000_000,
        };
        backend.set_sync_key(&[k; 6], key).await.expect("sync key");
    }
    for name in APP_STATE_COLLECTIONS {
        let mut state = HashState {
            version: 3,
            ..Default::default()
        };
        state.hash.copy_from_slice(&rng.bytes(128));
        backend.set_version(name, state).await.expect("version");
    }
    backend
        .put_lid_mapping(&LidPnMappingEntry {
            lid: format!("1000000{i:08}"),
            phone_number: phone.clone(),
            created_at: 1_700_000_000,
            updated_at: 1_700_000_000,
            learning_source: "pairing".into(),
        })
        .await
        .expect("lid mapping");
    backend
        .update_device_list(DeviceListRecord {
            user: phone,
            devices: vec![DeviceInfo::new(0, None), DeviceInfo::new(7, Some(1))],
            timestamp: 1_700_000_000,
            phash: Some("2:abcdef".into()),
            raw_id: Some(1),
        })
        .await
        .expect("device list");
}

async fn populate(dir: &Path, companies: usize) {
    let rss_before = rss_kib();
    let store = Store::open(dir).expect("open");
    let started = Instant::now();
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for i in 0..companies {
        pair(
            &*wagate::wa::SledBackend::open(&store, &company(i)),
            i,
            &mut rng,
        )
        .await;
    }
    store.flush().await.expect("flush");
    let write_time = started.elapsed();
    let rss_after = rss_kib();
    drop(store);
    let disk = dir_size(dir);
    println!(
        "populate: {companies} companies in {:.2} s",
        write_time.as_secs_f64()
    );
    println!(
        "populate: disk {:.1} MiB total, {:.1} KiB per company",
        disk as f64 / 1_048_576.0,
        disk as f64 / 1024.0 / companies as f64
    );
    println!(
        "populate: RSS {:.1} MiB -> {:.1} MiB while writing ({:.1} KiB per company)",
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0,
        rss_after.saturating_sub(rss_before) as f64 / companies as f64
    );
}

async fn reopen(dir: &Path) {
    let rss_before = rss_kib();
    let started = Instant::now();
    let store = Store::open(dir).expect("reopen");
    let opened = started.elapsed();
    let companies = store.companies_with_credentials().expect("list");
    let listed = started.elapsed();
    // What startup does per company: check it is linked, load its device.
    let mut linked = 0;
    for company in &companies {
        if wagate::wa::is_linked(&store, company).expect("is_linked") {
            linked += 1;
        }
        let backend = wagate::wa::SledBackend::open(&store, company);
        let device = backend.load().await.expect("load").expect("device present");
        assert!(device.pn.is_some());
        assert!(
            backend
                .load_prekey(PREKEYS)
                .await
                .expect("prekey")
                .is_some()
        );
    }
    let loaded = started.elapsed();
    let rss_after = rss_kib();
    println!(
        "reopen: open {:.0} ms, list {} companies with credentials {:.0} ms, + is_linked/load device/load a pre-key for all {:.0} ms ({linked} linked)",
        opened.as_secs_f64() * 1e3,
        companies.len(),
        (listed - opened).as_secs_f64() * 1e3,
        (loaded - listed).as_secs_f64() * 1e3,
    );
    println!(
        "reopen: RSS {:.1} MiB -> {:.1} MiB after loading every company ({:.1} KiB per company)",
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0,
        rss_after.saturating_sub(rss_before) as f64 / companies.len().max(1) as f64
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value_of = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    if let Some(dir) = value_of("--reopen") {
        reopen(Path::new(&dir)).await;
        return;
    }
    let companies: usize =
        value_of("--companies").map_or(1000, |n| n.parse().expect("--companies N"));
    let temp = tempfile::tempdir().expect("temp dir");
    let dir: PathBuf =
        value_of("--dir").map_or_else(|| temp.path().join("sessions"), PathBuf::from);
    populate(&dir, companies).await;
    let status = std::process::Command::new(std::env::current_exe().expect("own path"))
        .arg("--reopen")
        .arg(&dir)
        .status()
        .expect("spawn reopen phase");
    assert!(status.success(), "reopen phase failed");
}
