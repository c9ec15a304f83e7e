//! The store key at open: a check value in `settings` proves that the key
//! given is the one the store was sealed with, and a clear store opened with
//! a key for the first time is sealed (migrated) before anything runs.
//!
//! | check row | key given | outcome                                          |
//! |-----------|-----------|--------------------------------------------------|
//! | absent    | none      | clear store: nothing to do                       |
//! | present   | none      | [`StoreError::StoreKeyMissing`]                  |
//! | present   | opens it  | sealed store: nothing to do                      |
//! | present   | else      | [`StoreError::WrongStoreKey`]                    |
//! | absent    | some      | seal every secret row, then write the check row  |
//!
//! The failures change nothing, so a mistyped key costs a restart, never
//! data.
//!
//! # Sealing a clear store
//!
//! `device`, `registry` and the secret `wa` rows are sealed in batches, each
//! row unless it already is (a migration cut short by a crash resumes at the
//! next start with the key; started without it, the rows already sealed
//! would read as corrupt, so the README says to keep the key from then on). The
//! `settings` rows are sealed together with the check row in one transaction:
//! their raw bytes could look sealed, so they must all be clear or all sealed,
//! and the check row says which. Old clear copies may survive in sled's file
//! until it reuses that space; README "Security" says so.

use super::sealed::is_sealed;
use super::{Store, StoreError, keys, tree};

/// The `settings` row holding the check value.
const CHECK_SETTING: &[u8] = b"store_key_check";
/// What the check row holds, sealed.
const CHECK_CLEAR: &[u8] = b"wagate store key check v1";
/// Rows sealed per sled batch while sealing a clear store.
const BATCH_ROWS: usize = 4_096;

/// Checks the store key against the store at `path` (see the table above).
pub(super) fn check(store: &Store, path: &str) -> Result<(), StoreError> {
    let sealer = &store.sealer;
    let check = store.trees.settings.get(CHECK_SETTING)?;
    match (check, sealer.is_keyed()) {
        (None, false) => Ok(()),
        (Some(_), false) => Err(StoreError::StoreKeyMissing {
            path: path.to_owned(),
        }),
        (Some(sealed), true) => match sealer.open(tree::SETTINGS, CHECK_SETTING, &sealed) {
            Ok(clear) if *clear == *CHECK_CLEAR => Ok(()),
            _ => Err(StoreError::WrongStoreKey {
                path: path.to_owned(),
            }),
        },
        (None, true) => seal_clear_store(store),
    }
}

/// Seals every secret row of a store that had no key until now.
fn seal_clear_store(store: &Store) -> Result<(), StoreError> {
    let trees = &store.trees;
    let mut sealed = 0;
    sealed += seal_rows(store, &trees.device, tree::DEVICE, |_| true)?;
    sealed += seal_rows(store, &trees.registry, tree::REGISTRY, |_| true)?;
    sealed += seal_rows(store, &trees.wa, tree::WA, keys::is_secret_wa_row)?;
    let settings = trees.settings.iter().collect::<Result<Vec<_>, _>>()?;
    let mut batch = sled::Batch::default();
    for (key, value) in &settings {
        batch.insert(key, store.sealer.seal(tree::SETTINGS, key, value)?.as_ref());
    }
    let check = store
        .sealer
        .seal(tree::SETTINGS, CHECK_SETTING, CHECK_CLEAR)?;
    batch.insert(CHECK_SETTING, check.as_ref());
    // One batch is atomic: settings are all clear with no check row, or all
    // sealed with it.
    trees.settings.apply_batch(batch)?;
    store.flush_now()?;
    tracing::info!(
        rows.sealed = sealed + settings.len(),
        "sealed the store's credentials with the store key"
    );
    Ok(())
}

/// Seals the clear rows of `tree` that `secret` selects, in batches;
/// returns how many.
fn seal_rows(
    store: &Store,
    tree: &sled::Tree,
    name: &str,
    secret: impl Fn(&[u8]) -> bool,
) -> Result<usize, StoreError> {
    let mut sealed = 0;
    let mut batch = sled::Batch::default();
    let mut pending = 0;
    for row in tree {
        let (key, value) = row?;
        if !secret(&key) || is_sealed(&value) {
            continue;
        }
        batch.insert(&key, store.sealer.seal(name, &key, &value)?.as_ref());
        pending += 1;
        if pending == BATCH_ROWS {
            tree.apply_batch(std::mem::take(&mut batch))?;
            sealed += pending;
            pending = 0;
        }
    }
    tree.apply_batch(batch)?;
    Ok(sealed + pending)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CompanyId;
    use crate::pb;
    use crate::store::StoreKey;
    use crate::store::keys::{Category, WaKeys};

    const KEY: &str = "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100";
    const OTHER: &str = "2f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100";
    const CACHE: u64 = 1 << 20;

    fn key(hex: &str) -> StoreKey {
        StoreKey::parse(hex).unwrap()
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn a_clear_store_is_sealed_the_first_time_it_opens_with_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let acme = CompanyId::parse("acme").unwrap();
        let wa = WaKeys::new(&acme);
        let session = wa.key(Category::Session, b"15550002222@s.whatsapp.net");
        let identity = wa.key(Category::Identity, b"15550002222@s.whatsapp.net");
        {
            let store = Store::open_with_cache(dir.path(), CACHE).unwrap();
            store
                .put_company(&pb::CompanyRecord {
                    company_id: "acme".into(),
                    webhook_secret: b"whsec-clear".to_vec(),
                    ..Default::default()
                })
                .unwrap();
            store.put_setting("pairing_key", &[0x00, 0x01, 7]).unwrap();
            store
                .trees
                .device
                .insert(keys::company_row(&acme), &b"{\"noise_key\":[9]}"[..])
                .unwrap();
            store
                .trees
                .wa
                .insert(&session, &b"\x0asession"[..])
                .unwrap();
            store.trees.wa.insert(&identity, &b"\x05pub"[..]).unwrap();
        }
        let store =
            Store::when_unlocked(|| Store::open_with_key(dir.path(), CACHE, Some(&key(KEY))))
                .unwrap();
        let raw = |tree: &sled::Tree, key: &[u8]| tree.get(key).unwrap().unwrap().to_vec();
        assert!(is_sealed(&raw(&store.trees.device, b"acme")));
        assert!(is_sealed(&raw(&store.trees.registry, b"acme")));
        assert!(is_sealed(&raw(&store.trees.wa, &session)));
        assert!(is_sealed(&raw(&store.trees.settings, b"pairing_key")));
        assert_eq!(
            raw(&store.trees.wa, &identity),
            b"\x05pub",
            "public identities stay in clear"
        );
        // Everything still reads back as it was written.
        assert_eq!(
            store.get_company(&acme).unwrap().unwrap().webhook_secret,
            b"whsec-clear"
        );
        assert_eq!(
            store.get_setting("pairing_key").unwrap().unwrap(),
            [0x00, 0x01, 7],
            "a clear setting that looks sealed was sealed all the same"
        );
        assert_eq!(
            store.device_row(&acme).unwrap().unwrap(),
            b"{\"noise_key\":[9]}"
        );
        drop(store);

        // And it reopens with its key (no second migration), not without.
        let store =
            Store::when_unlocked(|| Store::open_with_key(dir.path(), CACHE, Some(&key(KEY))))
                .unwrap();
        assert_eq!(
            store.get_setting("pairing_key").unwrap().unwrap(),
            [0x00, 0x01, 7]
        );
        drop(store);
        let error = Store::when_unlocked(|| Store::open_with_cache(dir.path(), CACHE))
            .err()
            .unwrap();
        assert!(
            matches!(error, StoreError::StoreKeyMissing { .. }),
            "{error}"
        );
    }

    #[test]
    fn a_wrong_key_or_no_key_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open_with_key(dir.path(), CACHE, Some(&key(KEY))).unwrap();
            store.put_setting("pairing_key", b"secret-bytes").unwrap();
        }
        let snapshot = || {
            let mut files = Vec::new();
            for entry in std::fs::read_dir(dir.path()).unwrap() {
                let path = entry.unwrap().path();
                if path.is_file() {
                    files.push((path.clone(), std::fs::read(&path).unwrap()));
                }
            }
            files.sort();
            files
        };
        let error =
            Store::when_unlocked(|| Store::open_with_key(dir.path(), CACHE, Some(&key(OTHER))))
                .err()
                .unwrap();
        assert!(matches!(error, StoreError::WrongStoreKey { .. }));
        assert!(error.to_string().contains("not the key"), "{error}");
        let error = Store::when_unlocked(|| Store::open_with_cache(dir.path(), CACHE))
            .err()
            .unwrap();
        assert!(error.to_string().contains("WAGATE_STORE_KEY"), "{error}");
        assert!(
            !snapshot()
                .iter()
                .any(|(_, bytes)| contains(bytes, b"secret-bytes")),
            "the setting was never written in clear"
        );
        let store =
            Store::when_unlocked(|| Store::open_with_key(dir.path(), CACHE, Some(&key(KEY))))
                .unwrap();
        assert_eq!(
            store.get_setting("pairing_key").unwrap().unwrap(),
            b"secret-bytes"
        );
    }

    #[test]
    fn a_moved_sealed_row_is_reported_as_that_companys_corruption() {
        let store = Store::open_temporary_with_key(Some(&key(KEY))).unwrap();
        for id in ["acme", "evil"] {
            store
                .put_company(&pb::CompanyRecord {
                    company_id: id.into(),
                    ..Default::default()
                })
                .unwrap();
        }
        let acme_row = store.trees.registry.get(b"acme").unwrap().unwrap();
        store.trees.registry.insert(b"evil", acme_row).unwrap();
        let evil = CompanyId::parse("evil").unwrap();
        let error = store.get_company(&evil).unwrap_err();
        assert!(
            matches!(&error, StoreError::Corrupt { company, .. } if company == "evil"),
            "{error}"
        );
        assert_eq!(store.list_companies().unwrap().len(), 1, "only acme reads");
    }
}
