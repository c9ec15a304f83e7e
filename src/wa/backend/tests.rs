//! Backend conformance: every case runs against whatsapp-rust's reference
//! `InMemoryBackend`, against [`SledBackend`] and against [`PgBackend`]
//! (when a test server is configured: `store::postgres::test_db`), and all
//! must observe the same results.
//!
//! A case is one `async fn(&dyn Backend) -> Vec<String>`: it drives the backend
//! through the trait only, asserts the documented semantics itself, and
//! returns what it observed (debug-formatted, collections sorted). Each store
//! runs it twice in one database, for company `ab` and then for company `a`
//! (whose key prefix is a byte prefix of `ab`'s id), so every case also proves
//! that one company's keyspace never leaks into another's; and once without
//! and once with a store key, after which no secret row may be in clear.

use std::sync::Arc;

use bytes::Bytes;
use wacore::appstate::hash::HashState;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::store::InMemoryBackend;
use wacore::store::traits::{
    AppStateSyncKey, Backend, DeviceInfo, DeviceListRecord, LidPnMappingEntry, MsgSecretEntry,
    PendingInboundKey, PendingInboundRow, TcTokenEntry,
};

use super::{PgBackend, SledBackend};
use crate::domain::CompanyId;
use crate::store::Store;
use crate::store::postgres::test_db;

/// A valid company id (test input).
pub(crate) fn company(id: &str) -> CompanyId {
    CompanyId::parse(id).unwrap()
}

/// A device as whatsapp-rust stores it after pairing: it has its own JID.
pub(crate) fn paired_device(phone: &str) -> wacore::store::Device {
    let mut device = wacore::store::Device::new();
    device.pn = Some(format!("{phone}:3@s.whatsapp.net").parse().unwrap());
    device.lid = Some("100000012345678:3@lid".parse().unwrap());
    device.push_name = "Acme".into();
    device
}

/// A store key for the sealed runs of the suite.
fn test_store_key() -> crate::store::StoreKey {
    crate::store::StoreKey::parse(&"5a".repeat(32)).unwrap()
}

/// How many device rows and secret `wa` rows of `store` are not sealed.
fn secrets_in_clear(store: &Store) -> usize {
    let trees = store.raw_trees();
    let wa = trees.wa.iter().map(Result::unwrap);
    let device = trees.device.iter().map(|row| row.unwrap().1);
    count_in_clear(wa, device)
}

/// [`secrets_in_clear`] of a PostgreSQL store.
async fn pg_secrets_in_clear(pg: &test_db::TestPg) -> usize {
    let (wa, device) = pg.raw_rows().await;
    count_in_clear(wa, device)
}

/// How many of the secret `wa` rows and of the device rows are in clear.
fn count_in_clear<K: AsRef<[u8]>, V: AsRef<[u8]>>(
    wa: impl IntoIterator<Item = (K, V)>,
    device: impl IntoIterator<Item = V>,
) -> usize {
    let clear = |value: &[u8]| !value.is_empty() && !crate::store::is_sealed(value);
    let wa = (wa.into_iter()).filter(|(key, value)| {
        crate::store::keys::is_secret_wa_row(key.as_ref()) && clear(value.as_ref())
    });
    let device = (device.into_iter()).filter(|value| !crate::store::is_sealed(value.as_ref()));
    wa.count() + device.count()
}

#[tokio::test]
async fn without_a_store_key_the_secret_rows_are_in_clear() {
    // The sealed runs' "none in clear" check counts something.
    let store = Store::open_temporary().unwrap();
    let backend = SledBackend::open(&store, &company("a"));
    cases::prekeys(&*backend).await;
    cases::device(&*backend).await;
    assert!(secrets_in_clear(&store) > 1);
    if let Some(pg) = test_db::start(None).await {
        let backend = PgBackend::open(&pg.store, &company("a"));
        cases::prekeys(&*backend).await;
        cases::device(&*backend).await;
        assert!(pg_secrets_in_clear(&pg).await > 1);
        pg.drop_schema().await;
    }
}

/// What a case observed, in order.
type Seen = Vec<String>;

/// Debug-formats `value` into the observations.
fn see(seen: &mut Seen, label: &str, value: impl std::fmt::Debug) {
    seen.push(format!("{label}: {value:?}"));
}

fn sorted<T: Ord>(mut values: Vec<T>) -> Vec<T> {
    values.sort();
    values
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let reference = cases::$case(&InMemoryBackend::new()).await;
                for key in [None, Some(test_store_key())] {
                    let store = Store::open_temporary_with_key(key.as_ref()).unwrap();
                    for id in ["ab", "a"] {
                        let sled = cases::$case(&*SledBackend::open(&store, &company(id))).await;
                        assert_eq!(sled, reference, "sled backend of company {id:?} (store key: {}) disagrees with InMemoryBackend", key.is_some());
                    }
                    if key.is_some() {
                        assert_eq!(secrets_in_clear(&store), 0, "with a store key, no secret row is left in clear");
                    }
                    let Some(pg) = test_db::start(key.as_ref()).await else {
                        continue;
                    };
                    for id in ["ab", "a"] {
                        let seen = cases::$case(&*PgBackend::open(&pg.store, &company(id))).await;
                        assert_eq!(seen, reference, "PostgreSQL backend of company {id:?} (store key: {}) disagrees with InMemoryBackend", key.is_some());
                    }
                    if key.is_some() {
                        assert_eq!(pg_secrets_in_clear(&pg).await, 0, "with a store key, no secret PostgreSQL row is left in clear");
                    }
                    pg.drop_schema().await;
                }
            }
        )*
    };
}

conformance!(
    identities,
    sessions,
    prekeys,
    signed_prekeys,
    sender_keys,
    app_state,
    sender_key_devices,
    lid_pn_mappings,
    base_keys,
    device_lists,
    group_metadata,
    tc_tokens,
    sent_messages,
    pending_inbound,
    message_secrets,
    device,
);

mod cases {
    use super::*;

    const ALICE: &str = "15550002222@s.whatsapp.net";
    const ALICE_DEV: &str = "15550002222:3@s.whatsapp.net";
    const LONGER_USER: &str = "155500022229@s.whatsapp.net";

    pub async fn identities(b: &dyn Backend) -> Seen {
        let mut seen = Seen::new();
        assert_eq!(b.load_identity(ALICE).await.unwrap(), None);
        b.put_identity(ALICE, [1; 32]).await.unwrap();
        b.put_identity(ALICE, [2; 32]).await.unwrap();
        assert_eq!(
            b.load_identity(ALICE).await.unwrap(),
            Some([2; 32]),
            "last write wins"
        );
        b.put_identities_batch(&[
            (Arc::from(ALICE_DEV), [3; 32]),
            (Arc::from(LONGER_USER), [4; 32]),
        ])
        .await
        .unwrap();
        for address in [ALICE, ALICE_DEV, LONGER_USER] {
            see(&mut seen, address, b.load_identity(address).await.unwrap());
        }
        b.delete_identity(ALICE).await.unwrap();
        assert_eq!(b.load_identity(ALICE).await.unwrap(), None);
        see(
            &mut seen,
            "dev after delete of device 0",
            b.load_identity(ALICE_DEV).await.unwrap(),
        );
        seen
    }

    pub async fn sessions(b: &dyn Backend) -> Seen {
        let mut seen = Seen::new();
        assert!(!b.has_signal_state_for_user("15550002222").await.unwrap());
        assert!(!b.has_session(ALICE).await.unwrap());
        b.put_session(ALICE, b"s1").await.unwrap();
        assert!(b.has_session(ALICE).await.unwrap());
        b.put_sessions_batch(&[
            (Arc::from(ALICE), Bytes::from_static(b"s1-updated")),
            (Arc::from(LONGER_USER), Bytes::from_static(b"other")),
        ])
        .await
        .unwrap();
        see(&mut seen, "alice", b.get_session(ALICE).await.unwrap());
        see(
            &mut seen,
            "longer",
            b.get_session(LONGER_USER).await.unwrap(),
        );
        see(
            &mut seen,
            "alice has state",
            b.has_signal_state_for_user("15550002222").await.unwrap(),
        );
        b.delete_session(ALICE).await.unwrap();
        assert_eq!(b.get_session(ALICE).await.unwrap(), None);
        // Only the longer user's session is left: a user-id prefix is not a match.
        see(
            &mut seen,
            "after delete",
            b.has_signal_state_for_user("15550002222").await.unwrap(),
        );
        b.put_identity(ALICE_DEV, [9; 32]).await.unwrap();
        see(
            &mut seen,
            "via device identity",
            b.has_signal_state_for_user("15550002222").await.unwrap(),
        );
        seen
    }

    pub async fn prekeys(b: &dyn Backend) -> Seen {
        let mut seen = Seen::new();
        assert_eq!(
            b.get_max_prekey_id().await.unwrap(),
            0,
            "no pre-keys: max id 0"
        );
        let batch: Vec<(u32, Bytes)> = (1..=812)
            .map(|id| (id, Bytes::from(format!("pk-{id}"))))
            .collect();
        b.store_prekeys_batch(&batch, false).await.unwrap();
        b.store_prekey(1000, b"pk-1000", true).await.unwrap();
        see(&mut seen, "max", b.get_max_prekey_id().await.unwrap());
        see(&mut seen, "256", b.load_prekey(256).await.unwrap());
        see(
            &mut seen,
            "batch",
            b.load_prekeys_batch(&[1, 2, 999, 812, 1000]).await.unwrap(),
        );

        // Uploaded marks are UPDATE-only: a consumed key is never resurrected.
        b.remove_prekey(2).await.unwrap();
        b.mark_prekeys_uploaded(&[1, 2, 3]).await.unwrap();
        assert_eq!(b.load_prekey(2).await.unwrap(), None);
        see(&mut seen, "1 after mark", b.load_prekey(1).await.unwrap());

        b.remove_prekey(1000).await.unwrap();
        see(
            &mut seen,
            "max after removing the largest",
            b.get_max_prekey_id().await.unwrap(),
        );
        seen
    }

    pub async fn signed_prekeys(b: &dyn Backend) -> Seen {
        let mut seen = Seen::new();
        assert!(b.load_all_signed_prekeys().await.unwrap().is_empty());
        b.store_signed_prekey(1, b"spk-1").await.unwrap();
        b.store_signed_prekey(2, b"spk-2").await.unwrap();
        b.store_signed_prekey(2, b"spk-2b").await.unwrap();
        see(&mut seen, "2", b.load_signed_prekey(2).await.unwrap());
        see(
            &mut seen,
            "all",
            sorted(b.load_all_signed_prekeys().await.unwrap()),
        );
        b.remove_signed_prekey(1).await.unwrap();
        see(
            &mut seen,
            "all after remove",
            sorted(b.load_all_signed_prekeys().await.unwrap()),
        );
        see(&mut seen, "1", b.load_signed_prekey(1).await.unwrap());
        seen
    }

    pub async fn sender_keys(b: &dyn Backend) -> Seen {
        let mut seen = Seen::new();
        let group_addr = "120363000000000001@g.us::15550002222:3@s.whatsapp.net";
        b.put_sender_key(group_addr, b"sk1").await.unwrap();
        b.put_sender_keys_batch(&[
            (Arc::from(group_addr), Bytes::from_static(b"sk1b")),
            (Arc::from("g2::x"), Bytes::from_static(b"sk2")),
        ])
        .await
        .unwrap();
        see(&mut seen, "1", b.get_sender_key(group_addr).await.unwrap());
        see(&mut seen, "2", b.get_sender_key("g2::x").await.unwrap());
        b.delete_sender_key(group_addr).await.unwrap();
        see(
            &mut seen,
            "1 after delete",
            b.get_sender_key(group_addr).await.unwrap(),
        );
        seen
    }

    pub async fn app_state(b: &dyn Backend) -> Seen {
        let mut seen = Seen::new();
        assert_eq!(b.get_latest_sync_key_id().await.unwrap(), None);
        let key = |n: u8| AppStateSyncKey {
            key_data: vec![n; 32],
            fingerprint: vec![n, 1],
            timestamp: 1_700_000_000 + i64::from(n),
        };
        b.set_sync_key(b"key-a", key(1)).await.unwrap();
        b.set_sync_key(b"key-b", key(2)).await.unwrap();
        see(&mut seen, "key-a", b.get_sync_key(b"key-a").await.unwrap());
        see(&mut seen, "missing", b.get_sync_key(b"nope").await.unwrap());
        see(
            &mut seen,
            "latest",
            b.get_latest_sync_key_id().await.unwrap(),
        );

        let fresh = b.get_version("regular").await.unwrap();
        see(
            &mut seen,
            "default version",
            (fresh.version, fresh.index_value_map.len()),
        );
        let mut state = HashState {
            version: 7,
            hash: [5; 128],
            ..Default::default()
        };
        state.index_value_map.insert("idx".into(), vec![1, 2, 3]);
        b.set_version("regular", state).await.unwrap();
        let loaded = b.get_version("regular").await.unwrap();
        see(
            &mut seen,
            "version",
            (
                loaded.version,
                loaded.hash.to_vec(),
                sorted(loaded.index_value_map.into_iter().collect()),
            ),
        );

        let mac = |i: u8, v: u8| AppStateMutationMAC {
            index_mac: vec![i; 32],
            value_mac: vec![v; 32],
        };
        b.put_mutation_macs("regular", 7, &[mac(1, 10), mac(2, 20)])
            .await
            .unwrap();
        b.put_mutation_macs("critical_block", 3, &[mac(1, 99)])
            .await
            .unwrap();
        see(
            &mut seen,
            "mac 1",
            b.get_mutation_mac("regular", &[1; 32]).await.unwrap(),
        );
        see(
            &mut seen,
            "other collection",
            b.get_mutation_mac("critical_block", &[1; 32])
                .await
                .unwrap(),
        );
        let many = b
            .get_mutation_macs("regular", &[[1; 32], [2; 32], [3; 32]])
            .await
            .unwrap();
        see(&mut seen, "batch", sorted(many.into_iter().collect()));
        b.delete_mutation_macs("regular", &[vec![1; 32]])
            .await
            .unwrap();
        see(
            &mut seen,
            "deleted",
            b.get_mutation_mac("regular", &[1; 32]).await.unwrap(),
        );
        b.clear_mutation_macs("regular").await.unwrap();
        see(
            &mut seen,
            "cleared",
            b.get_mutation_mac("regular", &[2; 32]).await.unwrap(),
        );
        see(
            &mut seen,
            "other survives clear",
            b.get_mutation_mac("critical_block", &[1; 32])
                .await
                .unwrap(),
        );
        seen
    }

    pub async fn sender_key_devices(b: &dyn Backend) -> Seen {
        let mut seen = Seen::new();
        let (g1, g2) = ("120363000000000001@g.us", "120363000000000002@g.us");
        b.set_sender_key_status(
            g1,
            &[(ALICE_DEV, true), ("15550003333:1@s.whatsapp.net", false)],
        )
        .await
        .unwrap();
        b.set_sender_key_status(g1, &[("15550003333:1@s.whatsapp.net", true)])
            .await
            .unwrap();
        b.set_sender_key_status(g2, &[(ALICE_DEV, false)])
            .await
            .unwrap();
        see(
            &mut seen,
            "g1",
            sorted(b.get_sender_key_devices(g1).await.unwrap()),
        );
        b.delete_sender_key_device_rows(&[ALICE_DEV]).await.unwrap();
        see(
            &mut seen,
            "g1 after row delete",
            sorted(b.get_sender_key_devices(g1).await.unwrap()),
        );
        see(
            &mut seen,
            "g2 after row delete",
            sorted(b.get_sender_key_devices(g2).await.unwrap()),
        );
        b.set_sender_key_status(g2, &[(ALICE_DEV, true)])
            .await
            .unwrap();
        b.clear_sender_key_devices(g1).await.unwrap();
        see(
            &mut seen,
            "g1 cleared",
            b.get_sender_key_devices(g1).await.unwrap(),
        );
        see(
            &mut seen,
            "g2 kept",
            b.get_sender_key_devices(g2).await.unwrap(),
        );
        b.clear_all_sender_key_devices().await.unwrap();
        see(
            &mut seen,
            "g2 after clear all",
            b.get_sender_key_devices(g2).await.unwrap(),
        );
        seen
    }

    fn mapping(lid: &str, phone: &str, at: i64) -> LidPnMappingEntry {
        LidPnMappingEntry {
            lid: lid.into(),
            phone_number: phone.into(),
            created_at: at,
            updated_at: at,
            learning_source: "usync".into(),
        }
    }

    fn mapping_view(entry: Option<LidPnMappingEntry>) -> Option<(String, String, i64)> {
        entry.map(|e| (e.lid, e.phone_number, e.updated_at))
    }

    pub async fn lid_pn_mappings(b: &dyn Backend) -> Seen {
        let mut seen = Seen::new();
        b.put_lid_mapping(&mapping("100000000000001", "15550002222", 1))
            .await
            .unwrap();
        b.put_lid_mappings(&[
            mapping("100000000000002", "15550003333", 2),
            mapping("100000000000003", "15550004444", 3),
        ])
        .await
        .unwrap();
        see(
            &mut seen,
            "by lid",
            mapping_view(b.get_lid_mapping("100000000000001").await.unwrap()),
        );
        see(
            &mut seen,
            "by pn",
            mapping_view(b.get_pn_mapping("15550003333").await.unwrap()),
        );
        // The LID moves to another number: the old number no longer resolves.
        b.put_lid_mapping(&mapping("100000000000001", "15550005555", 4))
            .await
            .unwrap();
        see(
            &mut seen,
            "old pn",
            mapping_view(b.get_pn_mapping("15550002222").await.unwrap()),
        );
        see(
            &mut seen,
            "new pn",
            mapping_view(b.get_pn_mapping("15550005555").await.unwrap()),
        );
        // A number gets a new LID: the number resolves to the newest LID.
        b.put_lid_mapping(&mapping("100000000000009", "15550003333", 5))
            .await
            .unwrap();
        see(
            &mut seen,
            "pn to newest lid",
            mapping_view(b.get_pn_mapping("15550003333").await.unwrap()),
        );
        let all = b.get_all_lid_mappings().await.unwrap();
        see(
            &mut seen,
            "all",
            sorted(all.into_iter().map(|e| mapping_view(Some(e))).collect()),
        );
        see(
            &mut seen,
            "unknown",
            mapping_view(b.get_lid_mapping("1").await.unwrap()),
        );
        seen
    }

    pub async fn base_keys(b: &dyn Backend) -> Seen {
        let mut seen = Seen::new();
        b.save_base_key(ALICE_DEV, "MSG1", b"base").await.unwrap();
        see(
            &mut seen,
            "same",
            b.has_same_base_key(ALICE_DEV, "MSG1", b"base")
                .await
                .unwrap(),
        );
        see(
            &mut seen,
            "different",
            b.has_same_base_key(ALICE_DEV, "MSG1", b"other")
                .await
                .unwrap(),
        );
        see(
            &mut seen,
            "other message",
            b.has_same_base_key(ALICE_DEV, "MSG2", b"base")
                .await
                .unwrap(),
        );
        b.delete_base_key(ALICE_DEV, "MSG1").await.unwrap();
        see(
            &mut seen,
            "after delete",
            b.has_same_base_key(ALICE_DEV, "MSG1", b"base")
                .await
                .unwrap(),
        );
        seen
    }

    fn devices(user: &str, ids: &[u32], timestamp: i64) -> DeviceListRecord {
        DeviceListRecord {
            user: user.into(),
            devices: ids
                .iter()
                .map(|&id| DeviceInfo::new(id, Some(id + 1)).with_hosting(id == 99))
                .collect(),
            timestamp,
            phash: Some("2:abc".into()),
            raw_id: Some(42),
        }
    }

    pub async fn device_lists(b: &dyn Backend) -> Seen {
        let mut seen = Seen::new();
        b.update_device_list(devices("15550002222", &[0, 3], 1))
            .await
            .unwrap();
        b.update_device_lists(vec![
            devices("15550003333", &[0], 2),
            devices("15550002222", &[0, 3, 99], 3),
        ])
        .await
        .unwrap();
        see(
            &mut seen,
            "alice",
            b.get_devices("15550002222").await.unwrap(),
        );
        see(
            &mut seen,
            "bob",
            b.get_devices("15550003333").await.unwrap(),
        );
        b.delete_devices("15550002222").await.unwrap();
        see(
            &mut seen,
            "alice deleted",
            b.get_devices("15550002222").await.unwrap(),
        );
        seen
    }

    pub async fn group_metadata(b: &dyn Backend) -> Seen {
        let mut seen = Seen::new();
        let g = "120363000000000001@g.us";
        see(&mut seen, "none", b.get_group_metadata(g).await.unwrap());
        b.put_group_metadata(g, b"v1").await.unwrap();
        b.put_group_metadata(g, b"v2").await.unwrap();
        see(&mut seen, "v2", b.get_group_metadata(g).await.unwrap());
        b.delete_group_metadata(g).await.unwrap();
        see(&mut seen, "deleted", b.get_group_metadata(g).await.unwrap());
        seen
    }

    pub async fn tc_tokens(b: &dyn Backend) -> Seen {
        let mut seen = Seen::new();
        let (x, y, z) = (
            "100000000000001@lid",
            "100000000000002@lid",
            "100000000000003@lid",
        );
        b.put_tc_token(
            x,
            &TcTokenEntry {
                token: vec![1],
                token_timestamp: 100,
                sender_timestamp: None,
            },
        )
        .await
        .unwrap();
        // The sender bucket only moves forward and keeps the token bytes.
        b.touch_tc_token_sender_timestamp(x, 150).await.unwrap();
        b.touch_tc_token_sender_timestamp(x, 120).await.unwrap();
        see(&mut seen, "x", b.get_tc_token(x).await.unwrap());
        // Touching an unknown contact inserts a byte-less placeholder.
        b.touch_tc_token_sender_timestamp(y, 200).await.unwrap();
        see(&mut seen, "y placeholder", b.get_tc_token(y).await.unwrap());
        // Received tokens: newer wins; a placeholder never blocks; sender kept.
        b.store_received_tc_token(y, &[7], 50).await.unwrap();
        see(&mut seen, "y real", b.get_tc_token(y).await.unwrap());
        b.store_received_tc_token(y, &[8], 40).await.unwrap();
        see(
            &mut seen,
            "y stale write ignored",
            b.get_tc_token(y).await.unwrap(),
        );
        b.store_received_tc_token(z, &[9], 10).await.unwrap();
        see(
            &mut seen,
            "jids",
            sorted(b.get_all_tc_token_jids().await.unwrap()),
        );
        // x: token 100, sender 150 -> live by sender; y: token 50, sender 200; z: token 10, no sender.
        see(
            &mut seen,
            "expired",
            b.delete_expired_tc_tokens(60, 160).await.unwrap(),
        );
        see(
            &mut seen,
            "jids after expiry",
            sorted(b.get_all_tc_token_jids().await.unwrap()),
        );
        b.delete_tc_token(y).await.unwrap();
        see(&mut seen, "y deleted", b.get_tc_token(y).await.unwrap());
        seen
    }

    pub async fn sent_messages(b: &dyn Backend) -> Seen {
        let mut seen = Seen::new();
        b.store_sent_message(ALICE, "M1", b"payload-1")
            .await
            .unwrap();
        b.store_sent_message(ALICE, "M2", b"payload-2")
            .await
            .unwrap();
        b.store_sent_message(LONGER_USER, "M1", b"payload-3")
            .await
            .unwrap();
        // Take is atomic and consuming.
        see(
            &mut seen,
            "take",
            b.take_sent_message(ALICE, "M1").await.unwrap(),
        );
        see(
            &mut seen,
            "take again",
            b.take_sent_message(ALICE, "M1").await.unwrap(),
        );
        let now = wacore::time::now_secs();
        see(
            &mut seen,
            "nothing expired",
            b.delete_expired_sent_messages(now - 3600).await.unwrap(),
        );
        see(
            &mut seen,
            "other chat",
            b.take_sent_message(LONGER_USER, "M1").await.unwrap(),
        );
        see(
            &mut seen,
            "all expired",
            b.delete_expired_sent_messages(now + 3600).await.unwrap(),
        );
        see(
            &mut seen,
            "M2 gone",
            b.take_sent_message(ALICE, "M2").await.unwrap(),
        );
        seen
    }

    pub async fn pending_inbound(b: &dyn Backend) -> Seen {
        let mut seen = Seen::new();
        b.store_pending_inbound(ALICE, ALICE_DEV, "IN1", b"m1")
            .await
            .unwrap();
        b.store_pending_inbound_batch(&[
            PendingInboundRow {
                chat: ALICE,
                sender: ALICE_DEV,
                id: "IN2",
                message: b"m2",
            },
            PendingInboundRow {
                chat: "120363000000000001@g.us",
                sender: ALICE_DEV,
                id: "IN1",
                message: b"g1",
            },
        ])
        .await
        .unwrap();
        see(
            &mut seen,
            "IN1",
            b.get_pending_inbound(ALICE, ALICE_DEV, "IN1")
                .await
                .unwrap(),
        );
        see(
            &mut seen,
            "group IN1",
            b.get_pending_inbound("120363000000000001@g.us", ALICE_DEV, "IN1")
                .await
                .unwrap(),
        );
        see(
            &mut seen,
            "other sender",
            b.get_pending_inbound(ALICE, ALICE, "IN1").await.unwrap(),
        );
        b.delete_pending_inbound(ALICE, ALICE_DEV, "IN1")
            .await
            .unwrap();
        see(
            &mut seen,
            "IN1 deleted",
            b.get_pending_inbound(ALICE, ALICE_DEV, "IN1")
                .await
                .unwrap(),
        );
        b.delete_pending_inbound_batch(&[PendingInboundKey {
            chat: ALICE,
            sender: ALICE_DEV,
            id: "IN2",
        }])
        .await
        .unwrap();
        see(
            &mut seen,
            "IN2 deleted",
            b.get_pending_inbound(ALICE, ALICE_DEV, "IN2")
                .await
                .unwrap(),
        );
        let now = wacore::time::now_secs();
        see(
            &mut seen,
            "nothing expired",
            b.delete_expired_pending_inbound(now - 3600).await.unwrap(),
        );
        see(
            &mut seen,
            "expired",
            b.delete_expired_pending_inbound(now + 3600).await.unwrap(),
        );
        see(
            &mut seen,
            "group gone",
            b.get_pending_inbound("120363000000000001@g.us", ALICE_DEV, "IN1")
                .await
                .unwrap(),
        );
        seen
    }

    fn secret(
        chat: &str,
        sender: &str,
        id: &str,
        byte: u8,
        expires_at: i64,
        message_ts: i64,
    ) -> MsgSecretEntry {
        MsgSecretEntry {
            chat: Arc::from(chat),
            sender: Arc::from(sender),
            msg_id: Arc::from(id),
            secret: [byte; 32],
            expires_at,
            message_ts,
        }
    }

    pub async fn message_secrets(b: &dyn Backend) -> Seen {
        let mut seen = Seen::new();
        b.put_msg_secret(ALICE, ALICE, "S0", &[1; 32])
            .await
            .unwrap();
        let stored = b
            .put_msg_secrets(vec![
                secret(ALICE, ALICE, "S1", 2, 1_000, 500),
                secret(ALICE, ALICE, "S2", 3, 2_000, 0),
                secret("120363000000000001@g.us", ALICE, "S1", 4, 1_500, 600),
            ])
            .await
            .unwrap();
        see(&mut seen, "stored", stored);
        // Re-persist: secret replaced, deadline never shrinks, known time never
        // lost; also when one batch names the same message twice.
        b.put_msg_secrets(vec![
            secret(ALICE, ALICE, "S1", 5, 900, 0),
            secret(ALICE, ALICE, "S1", 5, 800, 0),
        ])
        .await
        .unwrap();
        b.put_msg_secrets(vec![secret(ALICE, ALICE, "S2", 3, 0, 700)])
            .await
            .unwrap();
        see(
            &mut seen,
            "S0",
            b.get_msg_secret_with_ts(ALICE, ALICE, "S0").await.unwrap(),
        );
        see(
            &mut seen,
            "S1",
            b.get_msg_secret_with_ts(ALICE, ALICE, "S1").await.unwrap(),
        );
        see(
            &mut seen,
            "S2",
            b.get_msg_secret(ALICE, ALICE, "S2").await.unwrap(),
        );
        see(
            &mut seen,
            "wrong sender",
            b.get_msg_secret(ALICE, ALICE_DEV, "S1").await.unwrap(),
        );
        // S1 expires at 1000, the group's at 1500; S0 and S2 never.
        see(
            &mut seen,
            "expired at 950",
            b.delete_expired_msg_secrets(950).await.unwrap(),
        );
        see(
            &mut seen,
            "expired at 1000",
            b.delete_expired_msg_secrets(1_000).await.unwrap(),
        );
        see(
            &mut seen,
            "S1 gone",
            b.get_msg_secret(ALICE, ALICE, "S1").await.unwrap(),
        );
        see(
            &mut seen,
            "group kept",
            b.get_msg_secret_with_ts("120363000000000001@g.us", ALICE, "S1")
                .await
                .unwrap(),
        );
        see(
            &mut seen,
            "expired far later",
            b.delete_expired_msg_secrets(i64::MAX).await.unwrap(),
        );
        see(
            &mut seen,
            "never-expiring kept",
            b.get_msg_secret(ALICE, ALICE, "S2")
                .await
                .unwrap()
                .is_some(),
        );
        seen
    }

    pub async fn device(b: &dyn Backend) -> Seen {
        let mut seen = Seen::new();
        assert!(!b.exists().await.unwrap());
        assert!(b.load().await.unwrap().is_none());
        see(&mut seen, "create", b.create().await.unwrap());
        assert!(b.exists().await.unwrap(), "create materializes a device");
        let created = b.load().await.unwrap().expect("a created device loads");
        see(&mut seen, "created is unpaired", created.pn.is_none());

        let mut device = paired_device("15550001111");
        device.next_pre_key_id = 813;
        device.server_has_prekeys = true;
        device.login_counter = 4;
        device.edge_routing_info = Some(vec![1, 2, 3]);
        b.save(&device).await.unwrap();
        let loaded = b.load().await.unwrap().expect("saved device loads");
        assert_eq!(loaded.registration_id, device.registration_id);
        assert_eq!(
            loaded.identity_key.public_key,
            device.identity_key.public_key
        );
        assert_eq!(
            loaded.identity_key.private_key.serialize(),
            device.identity_key.private_key.serialize()
        );
        assert_eq!(loaded.noise_key.public_key, device.noise_key.public_key);
        assert_eq!(
            loaded.signed_pre_key.public_key,
            device.signed_pre_key.public_key
        );
        assert_eq!(
            loaded.signed_pre_key_signature,
            device.signed_pre_key_signature
        );
        assert_eq!(loaded.adv_secret_key, device.adv_secret_key);
        see(
            &mut seen,
            "loaded",
            (
                loaded.pn.map(|j| j.to_string()),
                loaded.lid.map(|j| j.to_string()),
                loaded.push_name,
                loaded.next_pre_key_id,
                loaded.server_has_prekeys,
                loaded.login_counter,
                loaded.edge_routing_info,
                loaded.signed_pre_key_id == device.signed_pre_key_id,
            ),
        );
        // The id is opaque (one device per store): only the device kept matters.
        b.create().await.unwrap();
        see(
            &mut seen,
            "still paired",
            b.load()
                .await
                .unwrap()
                .and_then(|d| d.pn)
                .map(|j| j.to_string()),
        );
        seen
    }
}
