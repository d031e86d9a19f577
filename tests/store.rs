//! The partition store (`ratchet::store`): does it behave like the small RocksDB-shaped store
//! the state machine is written against, and does it keep our recovery contract?
//!
//! Goal: every table supports put/get/delete/prefix/range; key encodings keep prefix scans
//! inside one component and timers in firing order; read transactions are snapshots; and after
//! any crash the store reopens at the last durable commit (or a later one), with `lsn_applied`
//! matching the data, so replaying the log after `lsn_applied` rebuilds the rest.
//!
//! Method: plain API tests on the in-memory backend; reopen tests on real files in a temp
//! dir; a process-crash test that copies a live file after non-durable commits; and
//! power-loss tests on `store::sim::SimBackend`, whose crash images drop, keep, or tear
//! (per 512-byte sector, seeded) every write issued since the last fsync. The crash tests
//! check the contract (data agrees with `lsn_applied`, which is at least the last durable
//! one) and also pin what redb 4.5 actually does: exactly the last durable commit survives.

use std::path::Path;

use ratchet::store::schema::{self, InvocationIdBytes, INVOCATION_ID_BYTES, KEY_BYTES_MAX};
use ratchet::store::sim::{Crash, SimBackend};
use ratchet::store::{Options, PartitionStore, ReadView, StoreError, Table, WriteTxn, WriteView};
use segment_format::Lsn;

type Rows = Vec<(Vec<u8>, Vec<u8>)>;

fn keys(rows: &Rows) -> Vec<Vec<u8>> {
    rows.iter().map(|(k, _)| k.clone()).collect()
}

fn inv(n: u8) -> InvocationIdBytes {
    let mut id = [0u8; INVOCATION_ID_BYTES];
    id[0] = n;
    id[INVOCATION_ID_BYTES - 1] = n;
    id
}

fn commit(txn: WriteTxn, durable: bool) {
    txn.commit(durable).expect("commit");
}

// ---- basic operations --------------------------------------------------------------------

#[test]
fn every_table_supports_put_get_delete_prefix_and_range() {
    let store = PartitionStore::open_in_memory().unwrap();
    // Keys under a marker byte that no schema key (nor Meta's ASCII keys) starts with.
    let key = |group: u8, i: u8| vec![0xEE, group, i];
    for t in Table::ALL {
        let mut txn = store.begin_write().unwrap();
        for group in 0..3u8 {
            for i in 0..4u8 {
                txn.put(t, &key(group, i), &[group, i, 7]).unwrap();
            }
        }
        // Reads inside the write transaction see its writes.
        assert_eq!(txn.get(t, &key(1, 2)).unwrap(), Some(vec![1, 2, 7]), "{t:?}");
        commit(txn, false);

        let read = store.begin_read().unwrap();
        assert_eq!(read.get(t, &key(2, 3)).unwrap(), Some(vec![2, 3, 7]), "{t:?}");
        assert_eq!(read.get(t, &key(3, 0)).unwrap(), None, "{t:?}");
        let group1 = read.scan_prefix(t, &[0xEE, 1], 100).unwrap();
        assert_eq!(keys(&group1), (0..4).map(|i| key(1, i)).collect::<Vec<_>>(), "{t:?}");
        assert_eq!(group1[3].1, vec![1, 3, 7]);
        let range = read.scan_range(t, &key(0, 2), &key(2, 1), 100).unwrap();
        let expected =
            [key(0, 2), key(0, 3), key(1, 0), key(1, 1), key(1, 2), key(1, 3), key(2, 0)];
        assert_eq!(keys(&range), expected.to_vec(), "{t:?}");
        // Limits cut scans short, in key order.
        assert_eq!(
            keys(&read.scan_range(t, &key(0, 2), &key(2, 1), 3).unwrap()),
            expected[..3].to_vec()
        );
        assert_eq!(read.scan_prefix(t, &[0xEE], 0).unwrap(), Vec::new());
        // Empty and inverted ranges are empty, not errors.
        assert!(read.scan_range(t, &key(1, 1), &key(1, 1), 10).unwrap().is_empty());
        assert!(read.scan_range(t, &key(2, 0), &key(1, 0), 10).unwrap().is_empty());
        drop(read);

        let mut txn = store.begin_write().unwrap();
        txn.delete(t, &key(0, 0)).unwrap();
        txn.delete(t, &key(0, 0)).unwrap(); // deleting a missing key is fine
        txn.delete_prefix(t, &[0xEE, 1]).unwrap();
        assert!(txn.scan_prefix(t, &[0xEE, 1], 10).unwrap().is_empty(), "{t:?}");
        commit(txn, true);

        let read = store.begin_read().unwrap();
        let left = keys(&read.scan_prefix(t, &[0xEE], 100).unwrap());
        let expected: Vec<Vec<u8>> = [(0, 1), (0, 2), (0, 3), (2, 0), (2, 1), (2, 2), (2, 3)]
            .iter()
            .map(|&(g, i)| key(g, i))
            .collect();
        assert_eq!(left, expected, "{t:?}");
    }
    // Tables are independent: the same key in two tables is two rows.
    let mut txn = store.begin_write().unwrap();
    txn.put(Table::State, b"same", b"state").unwrap();
    txn.put(Table::Inbox, b"same", b"inbox").unwrap();
    txn.delete(Table::State, b"same").unwrap();
    assert_eq!(txn.get(Table::Inbox, b"same").unwrap(), Some(b"inbox".to_vec()));
    commit(txn, false);
}

#[test]
fn delete_prefix_with_empty_or_all_ff_prefix() {
    let store = PartitionStore::open_in_memory().unwrap();
    let mut txn = store.begin_write().unwrap();
    for k in [&[0x00][..], &[0x7F], &[0xFF], &[0xFF, 0xFF], &[0xFF, 0xFF, 0x01]] {
        txn.put(Table::Outbox, k, b"v").unwrap();
    }
    txn.delete_prefix(Table::Outbox, &[0xFF, 0xFF]).unwrap();
    assert_eq!(
        keys(&txn.scan_prefix(Table::Outbox, &[], 10).unwrap()),
        vec![vec![0x00], vec![0x7F], vec![0xFF]]
    );
    txn.delete_prefix(Table::Outbox, &[]).unwrap();
    assert!(txn.scan_prefix(Table::Outbox, &[], 10).unwrap().is_empty());
    commit(txn, false);
}

#[test]
fn dropping_a_write_txn_discards_it() {
    let store = PartitionStore::open_in_memory().unwrap();
    let mut txn = store.begin_write().unwrap();
    txn.put(Table::State, b"k", b"v").unwrap();
    drop(txn);
    let mut txn = store.begin_write().unwrap();
    assert_eq!(txn.get(Table::State, b"k").unwrap(), None);
    txn.put(Table::State, b"k", b"v").unwrap();
    txn.abort().unwrap();
    assert_eq!(store.begin_read().unwrap().get(Table::State, b"k").unwrap(), None);
}

#[test]
fn scans_page_with_key_after() {
    let store = PartitionStore::open_in_memory().unwrap();
    let mut txn = store.begin_write().unwrap();
    for seq in 0..25u64 {
        txn.put(Table::Inbox, &schema::inbox_key("S", b"o", seq), &seq.to_be_bytes()).unwrap();
    }
    commit(txn, false);
    let read = store.begin_read().unwrap();
    let prefix = schema::inbox_prefix("S", b"o");
    let end = schema::prefix_end(&prefix).unwrap();
    let mut seen = Vec::new();
    let mut start = prefix.clone();
    loop {
        let page = read.scan_range(Table::Inbox, &start, &end, 7).unwrap();
        let Some((last, _)) = page.last() else { break };
        start = schema::key_after(last);
        for (k, _) in &page {
            seen.push(schema::decode_inbox_key(k).unwrap().2);
        }
    }
    assert_eq!(seen, (0..25).collect::<Vec<_>>());
}

#[test]
fn limits_are_typed_errors() {
    let store = PartitionStore::open_in_memory().unwrap();
    let mut txn = store.begin_write().unwrap();
    let big = vec![1u8; KEY_BYTES_MAX + 1];
    match txn.put(Table::State, &big, b"v") {
        Err(StoreError::KeyTooLarge { table: Table::State, bytes, limit_bytes }) => {
            assert_eq!((bytes, limit_bytes), (KEY_BYTES_MAX + 1, KEY_BYTES_MAX));
        }
        other => panic!("expected KeyTooLarge, got {other:?}"),
    }
    txn.put(Table::State, &big[..KEY_BYTES_MAX], b"v").unwrap();
    commit(txn, false);
}

// ---- key encodings -----------------------------------------------------------------------

#[test]
fn prefix_scans_do_not_leak_across_components() {
    let store = PartitionStore::open_in_memory().unwrap();
    let mut txn = store.begin_write().unwrap();
    let services = ["S", "S2", "S\0", ""];
    let objects: [&[u8]; 6] = [b"a", b"ab", b"a\0", b"a\0b", b"", b"\xFF"];
    for s in services {
        for o in objects {
            for k in [&b"x"[..], b"", b"\0"] {
                txn.put(Table::State, &schema::state_key(s, o, k), k).unwrap();
            }
            for seq in [0u64, 1, u64::MAX] {
                txn.put(Table::Inbox, &schema::inbox_key(s, o, seq), b"i").unwrap();
            }
            txn.put(Table::Promises, &schema::promise_key(s, o, b"p"), b"p").unwrap();
        }
    }
    commit(txn, false);

    let read = store.begin_read().unwrap();
    for s in services {
        for o in objects {
            let rows = read.scan_prefix(Table::State, &schema::state_prefix(s, o), 100).unwrap();
            assert_eq!(rows.len(), 3, "state of {s:?}/{o:?}");
            for (k, _) in &rows {
                let (service, object, _) = schema::decode_state_key(k).unwrap();
                assert_eq!((service.as_str(), object.as_slice()), (s, o));
            }
            let rows = read.scan_prefix(Table::Inbox, &schema::inbox_prefix(s, o), 100).unwrap();
            let seqs: Vec<u64> = rows
                .iter()
                .map(|(k, _)| {
                    let (service, object, seq) = schema::decode_inbox_key(k).unwrap();
                    assert_eq!((service.as_str(), object.as_slice()), (s, o));
                    seq
                })
                .collect();
            assert_eq!(seqs, vec![0, 1, u64::MAX], "inbox of {s:?}/{o:?} in seq order");
            let rows =
                read.scan_prefix(Table::Promises, &schema::promise_prefix(s, o), 100).unwrap();
            assert_eq!(rows.len(), 1);
        }
        let rows = read.scan_prefix(Table::State, &schema::state_service_prefix(s), 1000).unwrap();
        assert_eq!(rows.len(), objects.len() * 3, "state of service {s:?}");
    }

    // Journal: per invocation, entries in index order.
    let mut txn = store.begin_write().unwrap();
    for n in [1u8, 2] {
        for index in [3u32, 0, 256, u32::MAX] {
            txn.put(Table::Journal, &schema::journal_key(&inv(n), index), &[n]).unwrap();
        }
    }
    let rows = txn.scan_prefix(Table::Journal, &schema::journal_prefix(&inv(1)), 100).unwrap();
    let indexes: Vec<u32> = rows
        .iter()
        .map(|(k, _)| {
            let (id, index) = schema::decode_journal_key(k).unwrap();
            assert_eq!(id, inv(1));
            index
        })
        .collect();
    assert_eq!(indexes, vec![0, 3, 256, u32::MAX]);
    txn.delete_prefix(Table::Journal, &schema::journal_prefix(&inv(1))).unwrap();
    assert_eq!(txn.scan_prefix(Table::Journal, &[], 100).unwrap().len(), 4);
    commit(txn, false);
}

#[test]
fn distinct_components_give_distinct_keys() {
    // Moving bytes between components must never produce the same key.
    assert_ne!(schema::state_key("S", b"ab", b"c"), schema::state_key("S", b"a", b"bc"));
    assert_ne!(schema::object_lock_key("Sa", b"b"), schema::object_lock_key("S", b"ab"));
    assert_ne!(
        schema::idempotency_key("S", b"", "h", b"k"),
        schema::idempotency_key("S", b"h", "", b"k")
    );
    assert_ne!(
        schema::idempotency_key("S", b"o", "h", b"k"),
        schema::idempotency_key("S", b"o", "hk", b"")
    );
    assert_ne!(schema::promise_key("W", b"k\0", b"p"), schema::promise_key("W", b"k", b"\0p"));
    assert_ne!(schema::dedup_key(b"a"), schema::dedup_key(b"a\0"));
}

#[test]
fn due_timers_come_out_in_firing_order() {
    let store = PartitionStore::open_in_memory().unwrap();
    let timers = [
        (1_000u64, inv(2), 0u32),
        (5, inv(9), 1),
        (1_000, inv(1), 7),
        (1_000, inv(1), 2),
        (256, inv(3), 0),
        (u64::MAX, inv(4), 0),
        (0, inv(5), u32::MAX),
        (1_001, inv(6), 0),
    ];
    let mut txn = store.begin_write().unwrap();
    for (wake, id, completion) in timers {
        txn.put(Table::Timers, &schema::timer_key(wake, &id, completion), b"t").unwrap();
    }
    commit(txn, false);

    let mut sorted = timers.to_vec();
    sorted.sort();
    let read = store.begin_read().unwrap();
    for now in [0u64, 4, 5, 999, 1_000, 1_001, u64::MAX - 1, u64::MAX] {
        let due = read.scan_range(Table::Timers, &[], &schema::timers_due_end(now), 100).unwrap();
        let decoded: Vec<(u64, InvocationIdBytes, u32)> =
            due.iter().map(|(k, _)| schema::decode_timer_key(k).unwrap()).collect();
        let expected: Vec<_> = sorted.iter().copied().filter(|t| t.0 <= now).collect();
        assert_eq!(decoded, expected, "due at {now}");
    }
}

#[test]
fn key_decoders_round_trip_and_reject_garbage() {
    let id = inv(42);
    assert_eq!(schema::decode_timer_key(&schema::timer_key(77, &id, 9)).unwrap(), (77, id, 9));
    assert_eq!(schema::decode_journal_key(&schema::journal_key(&id, 5)).unwrap(), (id, 5));
    assert_eq!(
        schema::decode_inbox_key(&schema::inbox_key("Sv\0c", b"k\0\xFF", 12)).unwrap(),
        ("Sv\0c".to_string(), b"k\0\xFF".to_vec(), 12)
    );
    assert_eq!(
        schema::decode_state_key(&schema::state_key("S", b"o", b"\0\0")).unwrap(),
        ("S".to_string(), b"o".to_vec(), b"\0\0".to_vec())
    );
    assert_eq!(schema::decode_outbox_key(&schema::outbox_key(u64::MAX)).unwrap(), u64::MAX);

    assert!(schema::decode_timer_key(&[0; 10]).is_err());
    assert!(schema::decode_journal_key(&[0; 29]).is_err());
    assert!(schema::decode_outbox_key(&[0; 7]).is_err());
    assert!(schema::decode_inbox_key(b"S\0\x01o\0\x01\0\0\0").is_err()); // short seq
    assert!(schema::decode_inbox_key(b"S\0\x02o").is_err()); // bad escape
    assert!(schema::decode_inbox_key(b"\xFF\0\x01o\0\x01\0\0\0\0\0\0\0\0").is_err());
    // not UTF-8
}

#[test]
fn table_names_are_stable() {
    // Changing any of these strings orphans every existing store: add a new versioned name
    // instead and retire the old one (see schema.rs).
    let names: Vec<&str> = Table::ALL.iter().map(|t| t.name()).collect();
    assert_eq!(
        names,
        [
            "meta",
            "invocation_status.v2",
            "journal.v2",
            "state.v1",
            "inbox.v1",
            "object_lock.v1",
            "timers.v1",
            "outbox.v1",
            "idempotency.v1",
            "promises.v1",
            "dedup.v1",
            "runnable.v1",
            "journal_events.v2",
            "retained.v1",
            "invocation_created.v1",
        ]
    );
    assert_eq!(schema::partition_file_name(7), "partition-7.redb");
}

// ---- transactions ------------------------------------------------------------------------

#[test]
fn read_txn_is_a_snapshot() {
    let store = PartitionStore::open_in_memory().unwrap();
    let mut txn = store.begin_write().unwrap();
    txn.put(Table::State, b"k", b"v1").unwrap();
    txn.put(Table::State, b"gone", b"x").unwrap();
    txn.set_lsn_applied(Lsn(1)).unwrap();
    commit(txn, true);

    let old = store.begin_read().unwrap();
    for durable in [false, true] {
        let mut txn = store.begin_write().unwrap();
        txn.put(Table::State, b"k", b"v2").unwrap();
        txn.put(Table::State, b"new", b"n").unwrap();
        txn.delete(Table::State, b"gone").unwrap();
        txn.set_lsn_applied(Lsn(2)).unwrap();
        commit(txn, durable);
    }
    assert_eq!(old.get(Table::State, b"k").unwrap(), Some(b"v1".to_vec()));
    assert_eq!(old.get(Table::State, b"gone").unwrap(), Some(b"x".to_vec()));
    assert_eq!(old.get(Table::State, b"new").unwrap(), None);
    assert_eq!(old.scan_prefix(Table::State, &[], 10).unwrap().len(), 2);
    assert_eq!(old.lsn_applied().unwrap(), Lsn(1));

    // A non-durable commit is visible to every transaction that begins after it.
    let new = store.begin_read().unwrap();
    assert_eq!(new.get(Table::State, b"k").unwrap(), Some(b"v2".to_vec()));
    assert_eq!(new.get(Table::State, b"gone").unwrap(), None);
    assert_eq!(new.lsn_applied().unwrap(), Lsn(2));
    assert_eq!(store.lsn_applied().unwrap(), Lsn(2));
}

#[test]
fn new_store_has_no_applied_lsn() {
    let store = PartitionStore::open_in_memory().unwrap();
    assert_eq!(store.lsn_applied().unwrap(), Lsn::INVALID);
    let txn = store.begin_write().unwrap();
    assert_eq!(txn.lsn_applied().unwrap(), Lsn::INVALID);
}

#[test]
fn in_memory_backend_works_and_forgets() {
    let store = PartitionStore::open_in_memory().unwrap();
    let mut txn = store.begin_write().unwrap();
    txn.put(Table::Outbox, &schema::outbox_key(1), b"m").unwrap();
    txn.set_lsn_applied(Lsn(9)).unwrap();
    commit(txn, true);
    assert_eq!(
        store.begin_read().unwrap().get(Table::Outbox, &schema::outbox_key(1)).unwrap(),
        Some(b"m".to_vec())
    );
    store.close().unwrap();
    let fresh = PartitionStore::open_in_memory().unwrap();
    assert_eq!(fresh.lsn_applied().unwrap(), Lsn::INVALID);
}

// ---- files, schema -----------------------------------------------------------------------

fn temp_store_path(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join(schema::partition_file_name(0))
}

#[test]
fn durable_commit_survives_reopen_from_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_store_path(&dir);
    {
        let store = PartitionStore::open(&path).unwrap();
        let mut txn = store.begin_write().unwrap();
        for t in Table::ALL {
            txn.put(t, b"\xEEkey", t.name().as_bytes()).unwrap();
        }
        txn.set_lsn_applied(Lsn(42)).unwrap();
        commit(txn, true);
        store.close().unwrap();
    }
    let store = PartitionStore::open(&path).unwrap();
    assert_eq!(store.lsn_applied().unwrap(), Lsn(42));
    let read = store.begin_read().unwrap();
    for t in Table::ALL {
        assert_eq!(read.get(t, b"\xEEkey").unwrap(), Some(t.name().as_bytes().to_vec()));
    }
}

#[test]
fn opening_the_same_file_twice_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_store_path(&dir);
    let _store = PartitionStore::open(&path).unwrap();
    assert!(matches!(PartitionStore::open(&path), Err(StoreError::Open { .. })));
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_store_path(&dir);
    {
        let store = PartitionStore::open(&path).unwrap();
        let mut txn = store.begin_write().unwrap();
        let newer = schema::SCHEMA_VERSION + 1;
        txn.put(Table::Meta, schema::META_SCHEMA_VERSION, &newer.to_be_bytes()).unwrap();
        commit(txn, true);
    }
    match PartitionStore::open(&path) {
        Err(StoreError::SchemaTooNew { found, supported, .. }) => {
            assert_eq!((found, supported), (schema::SCHEMA_VERSION + 1, schema::SCHEMA_VERSION));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[test]
fn an_older_schema_is_refused_with_both_versions_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_store_path(&dir);
    {
        let store = PartitionStore::open(&path).unwrap();
        let mut txn = store.begin_write().unwrap();
        let older = schema::SCHEMA_VERSION_MIN - 1;
        txn.put(Table::Meta, schema::META_SCHEMA_VERSION, &older.to_be_bytes()).unwrap();
        commit(txn, true);
    }
    match PartitionStore::open(&path) {
        Err(e @ StoreError::SchemaTooOld { found, min_supported, .. }) => {
            assert_eq!((found, min_supported), (2, 3));
            let msg = e.to_string();
            assert!(msg.contains('2') && msg.contains('3'), "{msg}");
        }
        other => panic!("expected SchemaTooOld, got {other:?}"),
    }
}

#[test]
fn a_foreign_redb_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_store_path(&dir);
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        let def: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("something_else");
        txn.open_table(def).unwrap().insert("k", &1).unwrap();
        txn.commit().unwrap();
    }
    assert!(matches!(PartitionStore::open(&path), Err(StoreError::NotAPartitionStore { .. })));
}

#[test]
fn non_durable_commits_then_clean_close_are_kept() {
    // redb's close (and drop) runs one last durable commit: nothing is lost on a clean
    // shutdown, even if the last checkpoint was long ago.
    for clean in ["close", "drop"] {
        let dir = tempfile::tempdir().unwrap();
        let path = temp_store_path(&dir);
        let store = PartitionStore::open(&path).unwrap();
        apply(&store, 1..=3, true);
        apply(&store, 4..=8, false);
        if clean == "close" {
            store.close().unwrap();
        } else {
            drop(store);
        }
        let store = PartitionStore::open(&path).unwrap();
        assert_eq!(store.lsn_applied().unwrap(), Lsn(8), "after {clean}");
        check_consistent(&store, 8);
    }
}

// ---- crashes -----------------------------------------------------------------------------

/// Applies log records `lsns` the way the partition processor does: one transaction per
/// record with its effects and `lsn_applied`, all committed with the given durability.
/// Effects of record n: state row `k{n}` (1 KiB), a shared counter overwritten with n, and
/// the row of record n-3 deleted.
fn apply(store: &PartitionStore, lsns: std::ops::RangeInclusive<u64>, durable: bool) {
    for n in lsns {
        let mut txn = store.begin_write().unwrap();
        txn.put(
            Table::State,
            &schema::state_key("S", b"o", format!("k{n:06}").as_bytes()),
            &[n as u8; 1024],
        )
        .unwrap();
        txn.put(Table::State, &schema::state_key("S", b"o", b"counter"), &n.to_be_bytes()).unwrap();
        if n > 3 {
            txn.delete(
                Table::State,
                &schema::state_key("S", b"o", format!("k{:06}", n - 3).as_bytes()),
            )
            .unwrap();
        }
        txn.set_lsn_applied(Lsn(n)).unwrap();
        commit(txn, durable);
    }
}

/// The data must be exactly what applying records 1..=lsn produces.
fn check_consistent(store: &PartitionStore, lsn: u64) {
    let read = store.begin_read().unwrap();
    let counter = read.get(Table::State, &schema::state_key("S", b"o", b"counter")).unwrap();
    assert_eq!(counter, (lsn > 0).then(|| lsn.to_be_bytes().to_vec()), "counter at lsn {lsn}");
    let rows = read.scan_prefix(Table::State, &schema::state_prefix("S", b"o"), 10_000).unwrap();
    let mut expected: Vec<Vec<u8>> = (lsn.saturating_sub(2).max(1)..=lsn)
        .filter(|&n| n >= 1)
        .map(|n| schema::state_key("S", b"o", format!("k{n:06}").as_bytes()))
        .collect();
    if lsn > 0 {
        expected.push(schema::state_key("S", b"o", b"counter"));
    }
    expected.sort();
    assert_eq!(keys(&rows), expected, "rows at lsn {lsn}");
}

fn reopen(image: SimBackend) -> PartitionStore {
    PartitionStore::open_backend(image, &Options::default()).expect("reopen crash image")
}

/// redb buffers the pages of non-durable commits in its cache and writes them to the file
/// only when the cache is full. A tiny cache forces those writes, so crash images then hold
/// pages of non-durable commits; the default cache keeps them all in memory.
fn cache_options() -> [Options; 2] {
    [Options::default(), Options { cache_bytes_max: 16 * 1024 }]
}

#[test]
fn non_durable_commits_do_not_fsync() {
    for options in cache_options() {
        let backend = SimBackend::new();
        let store = PartitionStore::open_backend(backend.clone(), &options).unwrap();
        let syncs = backend.sync_count();
        // (redb may write a little after a durable commit's fsync, e.g. the open's.)
        let unsynced = backend.unsynced_ops();
        apply(&store, 1..=40, false);
        assert_eq!(backend.sync_count(), syncs, "Durability::None must not sync");
        if options.cache_bytes_max < 1024 * 1024 {
            assert!(
                backend.unsynced_ops() > unsynced + 10,
                "a tiny cache must spill non-durable pages to the file"
            );
        }
        apply(&store, 41..=41, true);
        assert!(backend.sync_count() > syncs, "Durability::Immediate must sync");
    }
}

#[test]
fn power_loss_returns_to_the_last_durable_commit() {
    let mut images = 0;
    let configs = [(0u64, 0u64), (0, 7), (10, 10), (10, 11), (10, 25), (30, 60)];
    for (options, (durable_upto, volatile_upto)) in
        cache_options().iter().flat_map(|o| configs.iter().map(move |c| (o, *c)))
    {
        let backend = SimBackend::new();
        let store = PartitionStore::open_backend(backend.clone(), options).unwrap();
        // Checkpoints every 10 records, like a processor that checkpoints periodically.
        let mut n = 1;
        while n <= durable_upto {
            let end = (n + 9).min(durable_upto);
            apply(&store, n..=end - 1, false);
            apply(&store, end..=end, true);
            n = end + 1;
        }
        apply(&store, durable_upto + 1..=volatile_upto, false);
        assert_eq!(store.lsn_applied().unwrap(), Lsn(volatile_upto));

        let mut crashes = vec![Crash::LoseUnsynced, Crash::KeepUnsynced];
        crashes.extend((0..40).map(Crash::Seeded));
        for crash in crashes {
            let store = reopen(backend.crash_image(crash));
            let lsn = store.lsn_applied().unwrap().0;
            // The contract: at least the last durable commit, and the data matches lsn_applied.
            assert!((durable_upto..=volatile_upto).contains(&lsn), "{crash:?}: lsn {lsn}");
            check_consistent(&store, lsn);
            // What redb 4.5 does: exactly the last durable commit.
            assert_eq!(lsn, durable_upto, "{crash:?}");
            // The recovered store keeps working: replay the rest and checkpoint.
            apply(&store, lsn + 1..=volatile_upto + 2, false);
            apply(&store, volatile_upto + 3..=volatile_upto + 3, true);
            check_consistent(&store, volatile_upto + 3);
            images += 1;
        }
    }
    assert_eq!(images, 2 * 6 * 42);
}

#[test]
fn failed_fsync_in_a_checkpoint_leaves_the_old_or_the_new_checkpoint() {
    let mut outcomes = [0usize; 2];
    for (seed, options) in (0..60).flat_map(|seed| cache_options().map(|o| (seed, o))) {
        let backend = SimBackend::new();
        let store = PartitionStore::open_backend(backend.clone(), &options).unwrap();
        apply(&store, 1..=10, true);
        apply(&store, 11..=19, false);
        backend.set_sync_fails(true);
        let mut txn = store.begin_write().unwrap();
        txn.set_lsn_applied(Lsn(20)).unwrap();
        txn.put(Table::State, &schema::state_key("S", b"o", b"counter"), &20u64.to_be_bytes())
            .unwrap();
        txn.put(Table::State, &schema::state_key("S", b"o", b"k000020"), &[20; 1024]).unwrap();
        txn.delete(Table::State, &schema::state_key("S", b"o", b"k000017")).unwrap();
        assert!(txn.commit(true).is_err(), "a failed fsync must fail the commit");
        // Fail-stop: the process goes down here; a restarted one opens the crash image.
        let store_after = reopen(backend.crash_image(Crash::Seeded(seed)));
        let lsn = store_after.lsn_applied().unwrap().0;
        assert!(lsn == 10 || lsn == 20, "seed {seed}: lsn {lsn}");
        check_consistent(&store_after, lsn);
        outcomes[usize::from(lsn == 20)] += 1;
        drop(store);
    }
    eprintln!("failed checkpoint: old kept {} times, new kept {} times", outcomes[0], outcomes[1]);
}

#[test]
fn process_crash_of_a_file_store_returns_to_the_last_durable_commit() {
    // A process crash keeps everything the process wrote to the file (page cache), but not
    // what redb still buffered. Simulated by copying the live file while the store is open.
    let dir = tempfile::tempdir().unwrap();
    let path = temp_store_path(&dir);
    let store = PartitionStore::open(&path).unwrap();
    apply(&store, 1..=9, false);
    apply(&store, 10..=10, true);
    apply(&store, 11..=40, false);
    let copy = dir.path().join("crash-copy.redb");
    copy_file(&path, &copy);
    let recovered = PartitionStore::open(&copy).unwrap();
    assert_eq!(recovered.lsn_applied().unwrap(), Lsn(10));
    check_consistent(&recovered, 10);
    // The live store is unaffected and still at its latest (non-durable) commit.
    assert_eq!(store.lsn_applied().unwrap(), Lsn(40));
}

fn copy_file(from: &Path, to: &Path) {
    std::fs::copy(from, to).expect("copy store file");
}

#[test]
fn a_store_without_the_creation_index_gets_it_built_from_its_statuses() {
    use ratchet::fsm::{FsmStore, Status};
    use ratchet::protocol::ids::InvocationId;
    let dir = tempfile::tempdir().unwrap();
    let path = temp_store_path(&dir);
    let ids = [
        (InvocationId { partition_key: 1, uuid: 99 }, 5_000u64),
        (InvocationId { partition_key: 2, uuid: 7 }, 7_000u64),
    ];
    {
        let store = PartitionStore::open(&path).unwrap();
        let mut txn = store.begin_write().unwrap();
        for (id, created_ms) in &ids {
            let st = Status { created_ms: *created_ms, ..Status::default() };
            txn.put_status(id, &st).unwrap();
        }
        commit(txn, true);
        store.close().unwrap();
    }
    // What a store written before the index looks like: no such table.
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        let def: redb::TableDefinition<&[u8], &[u8]> =
            redb::TableDefinition::new(Table::Created.name());
        assert!(txn.delete_table(def).unwrap());
        txn.commit().unwrap();
    }
    let store = PartitionStore::open(&path).unwrap();
    let read = store.begin_read().unwrap();
    let rows = read.scan_prefix(Table::Created, &[], 10).unwrap();
    let keys: Vec<Vec<u8>> = rows.into_iter().map(|(k, _)| k).collect();
    let want: Vec<Vec<u8>> =
        ids.iter().map(|(id, ms)| schema::created_key(*ms, &id.to_bytes())).collect();
    assert_eq!(keys, want);
    assert_eq!(schema::decode_created_key(&keys[1]).unwrap(), (7_000, ids[1].0.to_bytes()));
}
