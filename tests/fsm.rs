//! The state machine alone, on an in-memory partition store: no WAL, no network, no clock.
//!
//! Goal: pin the rules that the end-to-end tests only observe from outside — one exclusive
//! invocation per object key with the others queued in arrival order, effects of superseded
//! attempts and leader epochs ignored, deliveries de-duplicated by (producer, seq) and written
//! to the outbox, retry decisions taken from the record (never from configuration), limits
//! failing the invocation and never the partition, the Runnable index following the phase,
//! and determinism (the same records give the same actions and the same store).
//!
//! Method: build records by hand, apply them with `Fsm::apply` inside store transactions, and
//! assert on the returned actions and what the store holds.

use bytes::Bytes;
use prost::Message;
use ratchet::codes::Code;
use ratchet::fsm::{
    effect, limits, outcome, record, sink, Action, AnnounceLeader, Applied, ApplyError, Command,
    Effect, End, Failed, Fsm, FsmRead, FsmStore, HandlerKind, InvocationResponse, Invoke, Outcome,
    Phase, Record, RecordHeader, Status, TruncateOutbox,
};
use ratchet::protocol::ids::InvocationId;
use ratchet::protocol::messages::{
    OneWayCallCommandMessage, OutputCommandMessage, OutputResult, SetStateCommandMessage, Value,
};
use ratchet::store::{PartitionStore, ReadView, Table};

fn id(n: u128) -> InvocationId {
    InvocationId { partition_key: 7, uuid: n }
}

fn rec(kind: record::Kind) -> Record {
    Record { header: None, kind: Some(kind) }
}

fn invoke(n: u128, kind: HandlerKind, key: &str, request: u64) -> Record {
    rec(record::Kind::Invoke(Invoke {
        invocation_id: Bytes::copy_from_slice(&id(n).to_bytes()),
        service: "Counter".into(),
        handler: "add".into(),
        key: key.into(),
        kind: kind as i32,
        input: Bytes::from_static(b"1"),
        headers: vec![],
        sink: Some(ratchet::fsm::Sink { kind: Some(sink::Kind::Ingress(request)) }),
        execute_at_ms: 0,
        retention_ms: None,
        ack_request: 0,
        journal_retention_ms: None,
        idempotency_key: String::new(),
        caller: Bytes::new(),
    }))
}

fn effect_of(n: u128, attempt: u32, kind: effect::Kind) -> Record {
    rec(record::Kind::Effect(Effect {
        invocation_id: Bytes::copy_from_slice(&id(n).to_bytes()),
        attempt,
        kind: Some(kind),
        life: 0,
    }))
}

fn command(ty: u16, payload: Vec<u8>) -> effect::Kind {
    effect::Kind::Command(Command {
        ty: u32::from(ty),
        payload: payload.into(),
        callee_kind: 0,
        callee_retention_ms: None,
        callee_journal_retention_ms: None,
    })
}

/// Output + End: the invocation finishes with `value`.
fn finish(n: u128, attempt: u32, value: &'static [u8]) -> Vec<Record> {
    let output = OutputCommandMessage {
        result: Some(OutputResult::Value(Value { content: Bytes::from_static(value) })),
        name: String::new(),
    };
    vec![
        effect_of(n, attempt, command(0x0401, output.encode_to_vec())),
        effect_of(n, attempt, effect::Kind::End(End {})),
    ]
}

fn failed(retry_in_ms: u64, give_up: bool) -> effect::Kind {
    effect::Kind::Failed(Failed {
        code: 500,
        message: "boom".into(),
        retry_after_ms: None,
        counts: true,
        retry_in_ms,
        give_up,
        pause: false,
    })
}

/// Applies `r` at `lsn`. An effect built with life 0 is stamped with the current life of its
/// invocation, as the invoker stamps the life of the status it started the attempt from.
fn apply_at<S: FsmStore>(
    fsm: &Fsm,
    txn: &mut S,
    r: &Record,
    lsn: u64,
    now_ms: u64,
    out: &mut Vec<Action>,
) -> Result<Applied, ApplyError> {
    let mut r = r.clone();
    if let Some(record::Kind::Effect(e)) = &mut r.kind {
        if e.life == 0 {
            let id = InvocationId::from_bytes(&e.invocation_id).unwrap();
            e.life = txn.status(&id).unwrap().map_or(0, |st| st.life);
        }
    }
    // Each record is a batch of its own here.
    let mut batch = ratchet::fsm::Batch::new();
    let applied = fsm.apply(txn, &r, lsn, now_ms, &mut batch);
    fsm.finish(txn, &mut batch).unwrap();
    out.append(&mut batch.actions);
    applied
}

/// [`apply_at`] with the record's time as its LSN (the tests that apply one by one count up).
fn apply<S: FsmStore>(
    fsm: &Fsm,
    txn: &mut S,
    r: &Record,
    now_ms: u64,
    out: &mut Vec<Action>,
) -> Result<Applied, ApplyError> {
    apply_at(fsm, txn, r, now_ms, now_ms, out)
}

thread_local! {
    /// The last LSN applied to each store (by address), so the records of successive
    /// `apply_all` calls follow each other in one log.
    static LSNS: std::cell::RefCell<std::collections::HashMap<usize, u64>> = Default::default();
}

fn apply_all(fsm: &Fsm, store: &PartitionStore, records: &[Record]) -> Vec<Action> {
    let mut txn = store.begin_write().unwrap();
    let mut out = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let lsn = LSNS.with(|l| {
            let mut l = l.borrow_mut();
            let last = l.entry(store as *const PartitionStore as usize).or_insert(0);
            *last += 1;
            *last
        });
        apply_at(fsm, &mut txn, r, lsn, 1_000 + i as u64, &mut out).unwrap();
    }
    txn.commit(false).unwrap();
    out
}

fn status(store: &PartitionStore, n: u128) -> Status {
    store.begin_read().unwrap().status(&id(n)).unwrap().expect("status exists")
}

fn started(actions: &[Action]) -> Vec<(u128, u32)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Invoke { id, attempt, .. } => Some((id.uuid, *attempt)),
            _ => None,
        })
        .collect()
}

fn replies(actions: &[Action]) -> Vec<(u64, u128, Outcome)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::IngressReply { request_id, id, outcome } => {
                Some((*request_id, id.uuid, outcome.clone()))
            }
            _ => None,
        })
        .collect()
}

fn failure_of(o: &Outcome) -> (u32, String) {
    match &o.result {
        Some(outcome::Result::Failure(f)) => (f.code, f.message.clone()),
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn runnable(store: &PartitionStore) -> Vec<u128> {
    let r = store.begin_read().unwrap();
    r.runnable_after(None, 100).unwrap().into_iter().map(|(_, id)| id.uuid).collect()
}

#[test]
fn exclusive_invocations_take_turns_in_arrival_order() {
    let (fsm, store) = (Fsm::new(0), PartitionStore::open_in_memory().unwrap());
    let a = apply_all(
        &fsm,
        &store,
        &[
            invoke(1, HandlerKind::Exclusive, "k", 11),
            invoke(2, HandlerKind::Exclusive, "k", 12),
            invoke(3, HandlerKind::Exclusive, "k", 13),
            invoke(4, HandlerKind::Exclusive, "other", 14),
            invoke(5, HandlerKind::Shared, "k", 15),
        ],
    );
    // One per key holds the lock; shared handlers never wait.
    assert_eq!(started(&a), vec![(1, 1), (4, 1), (5, 1)]);
    assert_eq!(status(&store, 2).phase(), Phase::Inboxed);
    assert_eq!(status(&store, 3).phase(), Phase::Inboxed);
    assert_eq!(runnable(&store), vec![1, 4, 5], "the Runnable index follows the phase");

    let a = apply_all(&fsm, &store, &finish(1, 1, b"\"one\""));
    assert_eq!(replies(&a).iter().map(|r| (r.0, r.1)).collect::<Vec<_>>(), vec![(11, 1)]);
    assert_eq!(started(&a), vec![(2, 1)], "the next in line gets the key");
    let a = apply_all(&fsm, &store, &finish(2, 1, b"\"two\""));
    assert_eq!(started(&a), vec![(3, 1)]);
    assert_eq!(status(&store, 1).phase(), Phase::Completed);
    assert_eq!(runnable(&store), vec![4, 5, 3]);
}

#[test]
fn stale_effects_change_nothing_and_the_record_decides_retries() {
    let (fsm, store) = (Fsm::new(0), PartitionStore::open_in_memory().unwrap());
    apply_all(&fsm, &store, &[invoke(1, HandlerKind::Service, "", 11)]);
    // Attempt 1 fails; the record says retry in 1234 ms.
    let a = apply_all(&fsm, &store, &[effect_of(1, 1, failed(1234, false))]);
    match &a[..] {
        [Action::Invoke { attempt: 2, not_before_ms, .. }] => {
            assert_eq!(*not_before_ms, 1_000 + 1234, "now (record time) plus the record's delay")
        }
        other => panic!("expected a new attempt, got {other:?}"),
    }
    let st = status(&store, 1);
    assert_eq!((st.retry_count, st.failures), (1, 1));
    // Effects of the superseded attempt 1 are ignored, also an End.
    let a = apply_all(&fsm, &store, &finish(1, 1, b"\"stale\""));
    assert!(a.is_empty(), "{a:?}");
    assert_eq!(status(&store, 1).phase(), Phase::Invoked);
    // The record says give up: the invocation fails with the record's code and message.
    let a = apply_all(&fsm, &store, &[effect_of(1, 2, failed(0, true))]);
    let r = replies(&a);
    assert_eq!(r.len(), 1);
    assert_eq!(failure_of(&r[0].2), (500, "boom".to_string()));
    assert!(runnable(&store).is_empty());
}

#[test]
fn the_leaders_own_records_of_a_superseded_epoch_are_ignored() {
    let (fsm, store) = (Fsm::new(0), PartitionStore::open_in_memory().unwrap());
    let epoch = |e: u64, r: Record| Record {
        header: Some(RecordHeader { epoch: e, ..Default::default() }),
        ..r
    };
    let announce = |e: u64| rec(record::Kind::AnnounceLeader(AnnounceLeader { epoch: e }));
    let mut txn = store.begin_write().unwrap();
    let mut out = Vec::new();
    assert_eq!(apply(&fsm, &mut txn, &announce(1), 1, &mut out).unwrap(), Applied::Yes);
    let first = epoch(1, invoke(1, HandlerKind::Service, "", 11));
    assert_eq!(apply(&fsm, &mut txn, &first, 2, &mut out).unwrap(), Applied::Yes);
    assert_eq!(apply(&fsm, &mut txn, &announce(2), 3, &mut out).unwrap(), Applied::Yes);
    // An effect of the attempt that epoch 1 ran: that leadership is over.
    for r in finish(1, 1, b"late") {
        assert_eq!(apply(&fsm, &mut txn, &epoch(1, r), 4, &mut out).unwrap(), Applied::Superseded);
    }
    assert_eq!(txn.status(&id(1)).unwrap().unwrap().phase(), Phase::Invoked);
    // An ingress request the log acknowledged under epoch 1 still counts.
    let accepted = epoch(1, invoke(2, HandlerKind::Service, "", 12));
    assert_eq!(apply(&fsm, &mut txn, &accepted, 5, &mut out).unwrap(), Applied::Yes);
    // The current leader's effects count.
    for r in finish(1, 1, b"now") {
        assert_eq!(apply(&fsm, &mut txn, &epoch(2, r), 6, &mut out).unwrap(), Applied::Yes);
    }
    // An older announcement changes nothing.
    assert_eq!(apply(&fsm, &mut txn, &announce(1), 7, &mut out).unwrap(), Applied::Superseded);
    assert_eq!(txn.leader_epoch().unwrap(), 2);
    txn.commit(false).unwrap();
    assert_eq!(started(&out), vec![(1, 1), (2, 1)]);
    assert_eq!(status(&store, 1).phase(), Phase::Completed);
    assert_eq!(status(&store, 2).phase(), Phase::Invoked);
}

#[test]
fn deliveries_are_deduplicated_by_producer_and_sequence() {
    let (fsm, store) = (Fsm::new(0), PartitionStore::open_in_memory().unwrap());
    let from = |producer: u32, seq: u64, r: Record| Record {
        header: Some(RecordHeader { epoch: 0, producer, producer_seq: seq }),
        ..r
    };
    let mut txn = store.begin_write().unwrap();
    let mut out = Vec::new();
    let first = from(3, 10, invoke(1, HandlerKind::Service, "", 0));
    assert_eq!(apply(&fsm, &mut txn, &first, 1, &mut out).unwrap(), Applied::Yes);
    // The same delivery again, and an older one of the same producer: dropped.
    assert_eq!(apply(&fsm, &mut txn, &first, 2, &mut out).unwrap(), Applied::Duplicate);
    let older = from(3, 9, invoke(2, HandlerKind::Service, "", 0));
    assert_eq!(apply(&fsm, &mut txn, &older, 3, &mut out).unwrap(), Applied::Duplicate);
    // Another producer has its own sequence.
    let other = from(4, 1, invoke(3, HandlerKind::Service, "", 0));
    assert_eq!(apply(&fsm, &mut txn, &other, 4, &mut out).unwrap(), Applied::Yes);
    txn.commit(false).unwrap();
    assert_eq!(started(&out), vec![(1, 1), (3, 1)]);
    let r = store.begin_read().unwrap();
    assert_eq!((r.dedup_seq(3).unwrap(), r.dedup_seq(4).unwrap()), (10, 1));
}

#[test]
fn sends_and_responses_go_through_the_outbox_in_emission_order() {
    let (fsm, store) = (Fsm::new(2), PartitionStore::open_in_memory().unwrap());
    apply_all(&fsm, &store, &[invoke(1, HandlerKind::Service, "", 0)]);
    let send = |n: u8, cid: u32| {
        let m = OneWayCallCommandMessage {
            service_name: "Counter".into(),
            handler_name: "add".into(),
            key: "k".into(),
            parameter: Bytes::from(vec![n]),
            invocation_id_notification_idx: cid,
            ..Default::default()
        };
        effect::Kind::Command(Command {
            ty: 0x040E,
            payload: m.encode_to_vec().into(),
            callee_kind: HandlerKind::Exclusive as i32,
            callee_retention_ms: None,
            callee_journal_retention_ms: None,
        })
    };
    let a = apply_all(&fsm, &store, &[effect_of(1, 1, send(1, 1)), effect_of(1, 1, send(2, 2))]);
    let seqs: Vec<u64> = a
        .iter()
        .filter_map(|a| if let Action::Outbox { seq } = a { Some(*seq) } else { None })
        .collect();
    assert_eq!(seqs, vec![1, 2]);
    let r = store.begin_read().unwrap();
    let entries = r.outbox_from(1, 10, usize::MAX).unwrap();
    assert_eq!(entries.len(), 2);
    for (i, (seq, e)) in entries.iter().enumerate() {
        let h = e.record.as_ref().unwrap().header.unwrap();
        assert_eq!((h.producer, h.producer_seq), (3, *seq), "producer is partition 2 + 1");
        match &e.record.as_ref().unwrap().kind {
            Some(record::Kind::Invoke(inv)) => assert_eq!(inv.input.as_ref(), &[i as u8 + 1]),
            other => panic!("expected an invoke, got {other:?}"),
        }
        assert_eq!(e.partition_key, ratchet::fsm::partition_key_of("k"));
    }
    drop(r);
    // Truncation deletes what was delivered, nothing more.
    apply_all(
        &fsm,
        &store,
        &[rec(record::Kind::TruncateOutbox(TruncateOutbox { seq_through: 1 }))],
    );
    let left: Vec<u64> = store
        .begin_read()
        .unwrap()
        .outbox_from(1, 10, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(left, vec![2]);
    // A response from a callee to a caller that is gone is dropped quietly.
    let resp = rec(record::Kind::Response(InvocationResponse {
        invocation_id: Bytes::copy_from_slice(&id(99).to_bytes()),
        completion_id: 5,
        outcome: None,
        notification_ty: 0,
        life: 0,
    }));
    assert!(apply_all(&fsm, &store, &[resp]).is_empty());
}

#[test]
fn an_oversized_state_key_fails_the_invocation_and_the_partition_goes_on() {
    let (fsm, store) = (Fsm::new(0), PartitionStore::open_in_memory().unwrap());
    apply_all(&fsm, &store, &[invoke(1, HandlerKind::Exclusive, "k", 11)]);
    apply_all(&fsm, &store, &[invoke(2, HandlerKind::Exclusive, "k", 12)]);
    let set = SetStateCommandMessage {
        key: vec![b'x'; 65 * 1024].into(),
        value: Some(Value { content: Bytes::from_static(b"1") }),
        name: String::new(),
    };
    let a = apply_all(&fsm, &store, &[effect_of(1, 1, command(0x0403, set.encode_to_vec()))]);
    let r = replies(&a);
    assert_eq!(r.len(), 1, "{a:?}");
    let (code, message) = failure_of(&r[0].2);
    assert_eq!(code, 413);
    assert!(message.starts_with("[RA1001]"), "{message}");
    assert!(a.contains(&Action::Abort { id: id(1) }), "the running attempt is stopped: {a:?}");
    // The key passes to the next invocation, which can write state.
    assert_eq!(started(&a), vec![(2, 1)]);
    let ok = SetStateCommandMessage {
        key: Bytes::from_static(b"count"),
        value: Some(Value { content: Bytes::from_static(b"7") }),
        name: String::new(),
    };
    apply_all(&fsm, &store, &[effect_of(2, 1, command(0x0403, ok.encode_to_vec()))]);
    let r = store.begin_read().unwrap();
    assert_eq!(r.state_get("Counter", "k", b"count").unwrap().as_deref(), Some(&b"7"[..]));
    let (keys, more) = r.state_keys("Counter", "k", 1 << 20).unwrap();
    assert!(!more && keys.iter().all(|k| k.len() < 100), "{keys:?}");
}

#[test]
fn a_journal_at_its_limit_fails_the_invocation() {
    let (fsm, store) = (Fsm::new(0), PartitionStore::open_in_memory().unwrap());
    apply_all(&fsm, &store, &[invoke(1, HandlerKind::Service, "", 11)]);
    // Custom entries grow the journal one by one up to the limit (the input is entry 0).
    let n = (limits::JOURNAL_ENTRIES_MAX - 1) as usize;
    let batch: Vec<Record> =
        (0..n).map(|_| effect_of(1, 1, command(0xFC01, b"x".to_vec()))).collect();
    for chunk in batch.chunks(4096) {
        let a = apply_all(&fsm, &store, chunk);
        assert!(replies(&a).is_empty());
    }
    assert_eq!(status(&store, 1).journal_len, limits::JOURNAL_ENTRIES_MAX);
    let a = apply_all(&fsm, &store, &[effect_of(1, 1, command(0xFC01, b"x".to_vec()))]);
    let r = replies(&a);
    assert_eq!(r.len(), 1);
    let (code, message) = failure_of(&r[0].2);
    assert_eq!(code, u32::from(Code::JournalTooLong.http_status()));
    assert!(message.starts_with("[RA1002]"), "{message}");
    assert_eq!(status(&store, 1).phase(), Phase::Completed);
    // Its journal is gone, so the store is small again.
    assert!(store.begin_read().unwrap().scan_prefix(Table::Journal, &[], 1).unwrap().is_empty());
}

#[test]
fn a_state_write_from_a_shared_handler_fails_the_invocation() {
    let (fsm, store) = (Fsm::new(0), PartitionStore::open_in_memory().unwrap());
    apply_all(&fsm, &store, &[invoke(1, HandlerKind::Shared, "k", 11)]);
    let set = SetStateCommandMessage {
        key: Bytes::from_static(b"count"),
        value: Some(Value { content: Bytes::from_static(b"1") }),
        name: String::new(),
    };
    let a = apply_all(&fsm, &store, &[effect_of(1, 1, command(0x0403, set.encode_to_vec()))]);
    let (_, message) = failure_of(&replies(&a)[0].2);
    assert!(message.starts_with("[RA1006]"), "{message}");
    assert!(store.begin_read().unwrap().state_get("Counter", "k", b"count").unwrap().is_none());
}

#[test]
fn an_oversized_object_key_is_answered_without_storing_anything() {
    let (fsm, store) = (Fsm::new(0), PartitionStore::open_in_memory().unwrap());
    let key = "k".repeat(limits::OBJECT_KEY_BYTES_MAX + 1);
    let a = apply_all(&fsm, &store, &[invoke(1, HandlerKind::Exclusive, &key, 11)]);
    let (code, message) = failure_of(&replies(&a)[0].2);
    assert_eq!(code, 413);
    assert!(message.starts_with("[RA1004]"), "{message}");
    assert!(store.begin_read().unwrap().status(&id(1)).unwrap().is_none());
}

#[test]
fn applying_the_same_records_gives_the_same_actions_and_store() {
    let records: Vec<Record> =
        [invoke(1, HandlerKind::Exclusive, "k", 1), invoke(2, HandlerKind::Exclusive, "k", 2)]
            .into_iter()
            .chain(finish(1, 1, b"1"))
            .chain([effect_of(2, 1, failed(10, false))])
            .chain(finish(2, 2, b"2"))
            .collect();
    let fsm = Fsm::new(0);
    let (s1, s2) =
        (PartitionStore::open_in_memory().unwrap(), PartitionStore::open_in_memory().unwrap());
    let one = apply_all(&fsm, &s1, &records);
    let two = apply_all(&fsm, &s2, &records);
    assert_eq!(one, two);
    assert_eq!(replies(&one).iter().map(|r| (r.0, r.1)).collect::<Vec<_>>(), vec![(1, 1), (2, 2)]);
    let (r1, r2) = (s1.begin_read().unwrap(), s2.begin_read().unwrap());
    for t in Table::ALL {
        assert_eq!(
            r1.scan_prefix(t, &[], usize::MAX).unwrap(),
            r2.scan_prefix(t, &[], usize::MAX).unwrap(),
            "table {t:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Signals, kill, attach, promises, workflows
// ---------------------------------------------------------------------------------------------

fn signal(n: u128, index: u32, value: &'static [u8]) -> Record {
    rec(record::Kind::Signal(ratchet::fsm::Signal {
        invocation_id: Bytes::copy_from_slice(&id(n).to_bytes()),
        index,
        name: String::new(),
        outcome: Some(Outcome { result: Some(outcome::Result::Value(Bytes::from_static(value))) }),
    }))
}

fn suspended_on_signal(n: u128, attempt: u32, index: u32) -> Record {
    effect_of(
        n,
        attempt,
        effect::Kind::Suspended(ratchet::fsm::Suspended {
            completions: vec![],
            signals: vec![index],
            named_signals: vec![],
        }),
    )
}

fn outbox(store: &PartitionStore) -> Vec<record::Kind> {
    let r = store.begin_read().unwrap();
    r.outbox_from(0, 100, usize::MAX)
        .unwrap()
        .into_iter()
        .filter_map(|(_, e)| e.record.and_then(|r| r.kind))
        .collect()
}

#[test]
fn an_awakeables_first_completion_wins_and_resumes_the_invocation() {
    let (fsm, store) = (Fsm::new(0), PartitionStore::open_in_memory().unwrap());
    apply_all(&fsm, &store, &[invoke(1, HandlerKind::Service, "", 11)]);
    let a = apply_all(&fsm, &store, &[suspended_on_signal(1, 1, 17)]);
    assert!(a.is_empty(), "{a:?}");
    assert_eq!(status(&store, 1).phase(), Phase::Suspended);
    // Another signal index does not wake it; 17 does, once.
    let a = apply_all(&fsm, &store, &[signal(1, 18, b"other")]);
    assert!(started(&a).is_empty());
    let a = apply_all(&fsm, &store, &[signal(1, 17, b"first"), signal(1, 17, b"second")]);
    assert_eq!(started(&a), vec![(1, 2)]);
    let st = status(&store, 1);
    assert_eq!(st.journal_len, 3, "input and two signals; the second 17 was ignored");
    let journal = store.begin_read().unwrap().journal(&id(1), st.journal_len).unwrap();
    assert_eq!(journal[2].0, 0xFBFF);
    assert!(journal[2].1.windows(5).any(|w| w == b"first"));
    // Suspending on a signal already received resumes at once.
    let a = apply_all(&fsm, &store, &[suspended_on_signal(1, 2, 17)]);
    assert_eq!(started(&a), vec![(1, 3)]);
}

#[test]
fn cancel_ends_a_queued_invocation_and_kill_ends_a_running_one_with_its_calls() {
    let (fsm, store) = (Fsm::new(0), PartitionStore::open_in_memory().unwrap());
    apply_all(
        &fsm,
        &store,
        &[invoke(1, HandlerKind::Exclusive, "k", 11), invoke(2, HandlerKind::Exclusive, "k", 12)],
    );
    assert_eq!(status(&store, 2).phase(), Phase::Inboxed);
    let a = apply_all(&fsm, &store, &[signal(2, 1, b"")]);
    assert_eq!(failure_of(&replies(&a)[0].2), (409, "canceled".to_string()));
    // A running invocation gets the cancel signal in its journal, live.
    let a = apply_all(&fsm, &store, &[signal(1, 1, b"")]);
    assert!(
        matches!(&a[..], [Action::Notify { ty: 0xFBFF, .. }]),
        "cancel reaches the running attempt: {a:?}"
    );
    // Kill: the call it waits on is killed too (through the outbox), then it ends.
    let call = ratchet::protocol::messages::CallCommandMessage {
        service_name: "Counter".into(),
        handler_name: "add".into(),
        key: "other".into(),
        invocation_id_notification_idx: 1,
        result_completion_id: 2,
        ..Default::default()
    };
    let cmd = effect::Kind::Command(Command {
        ty: 0x040D,
        payload: call.encode_to_vec().into(),
        callee_kind: HandlerKind::Exclusive as i32,
        callee_retention_ms: None,
        callee_journal_retention_ms: None,
    });
    apply_all(&fsm, &store, &[effect_of(1, 1, cmd)]);
    let callee = match &outbox(&store)[..] {
        [record::Kind::Invoke(i)] => i.invocation_id.clone(),
        other => panic!("expected the callee's Invoke, got {other:?}"),
    };
    let kill = rec(record::Kind::Kill(ratchet::fsm::Kill {
        invocation_id: Bytes::copy_from_slice(&id(1).to_bytes()),
    }));
    let a = apply_all(&fsm, &store, std::slice::from_ref(&kill));
    assert!(a.iter().any(|x| matches!(x, Action::Abort { .. })), "{a:?}");
    assert_eq!(failure_of(&replies(&a)[0].2), (409, "killed".to_string()));
    match &outbox(&store)[1..] {
        [record::Kind::Kill(k)] => assert_eq!(k.invocation_id, callee),
        other => panic!("expected a Kill for the callee, got {other:?}"),
    }
    // Killing it again changes nothing.
    assert!(apply_all(&fsm, &store, &[kill]).is_empty());
}

#[test]
fn attach_answers_now_later_or_not_found() {
    let (fsm, store) = (Fsm::new(0), PartitionStore::open_in_memory().unwrap());
    let attach = |n: u128, request: u64, now: bool| {
        rec(record::Kind::Attach(ratchet::fsm::Attach {
            invocation_id: Bytes::copy_from_slice(&id(n).to_bytes()),
            sink: Some(ratchet::fsm::Sink { kind: Some(sink::Kind::Ingress(request)) }),
            now,
        }))
    };
    let a = apply_all(&fsm, &store, &[attach(9, 90, false)]);
    assert_eq!(failure_of(&replies(&a)[0].2), (404, "not found".to_string()));
    apply_all(&fsm, &store, &[invoke(1, HandlerKind::Service, "", 11)]);
    // get-output while it runs: void at once; attach: when it ends.
    let a = apply_all(&fsm, &store, &[attach(1, 91, true), attach(1, 92, false)]);
    assert_eq!(replies(&a), vec![(91, 1, Outcome::default())]);
    let a = apply_all(&fsm, &store, &finish(1, 1, b"\"done\""));
    let got: Vec<u64> = replies(&a).iter().map(|r| r.0).collect();
    assert_eq!(got, vec![11, 92]);
    let a = apply_all(&fsm, &store, &[attach(1, 93, false)]);
    assert_eq!(
        replies(&a)[0].2.result,
        Some(outcome::Result::Value(Bytes::from_static(b"\"done\"")))
    );
}

#[test]
fn a_workflow_runs_once_and_its_promise_wakes_the_waiter() {
    use ratchet::protocol::messages as pm;
    let (fsm, store) = (Fsm::new(0), PartitionStore::open_in_memory().unwrap());
    let wf = ratchet::fsm::workflow_id("Wf", "w");
    let run = |request: u64| {
        rec(record::Kind::Invoke(Invoke {
            invocation_id: Bytes::copy_from_slice(&wf.to_bytes()),
            service: "Wf".into(),
            handler: "run".into(),
            key: "w".into(),
            kind: HandlerKind::WorkflowRun as i32,
            input: Bytes::new(),
            headers: vec![],
            sink: Some(ratchet::fsm::Sink { kind: Some(sink::Kind::Ingress(request)) }),
            execute_at_ms: 0,
            retention_ms: None,
            ack_request: 0,
            journal_retention_ms: None,
            idempotency_key: String::new(),
            caller: Bytes::new(),
        }))
    };
    let a = apply_all(&fsm, &store, &[run(1)]);
    assert_eq!(started(&a).len(), 1);
    let a = apply_all(&fsm, &store, &[run(2)]);
    let r = replies(&a);
    assert_eq!(failure_of(&r[0].2), (409, "the workflow method was already invoked".to_string()));
    let wf_effect = |kind: effect::Kind| {
        rec(record::Kind::Effect(Effect {
            invocation_id: Bytes::copy_from_slice(&wf.to_bytes()),
            attempt: 1,
            kind: Some(kind),
            life: 0,
        }))
    };
    let get = pm::GetPromiseCommandMessage {
        key: "p".into(),
        result_completion_id: 1,
        name: String::new(),
    };
    apply_all(&fsm, &store, &[wf_effect(command(0x0409, get.encode_to_vec()))]);
    let complete = |v: &'static [u8], cid: u32| pm::CompletePromiseCommandMessage {
        key: "p".into(),
        completion: Some(pm::PromiseCompletion::Value(Value { content: Bytes::from_static(v) })),
        result_completion_id: cid,
        name: String::new(),
    };
    // Completed (by the run itself here): the waiter's notification, then the completion's.
    let a =
        apply_all(&fsm, &store, &[wf_effect(command(0x040B, complete(b"yes", 2).encode_to_vec()))]);
    let tys: Vec<u16> = a
        .iter()
        .filter_map(|x| if let Action::Notify { ty, .. } = x { Some(*ty) } else { None })
        .collect();
    assert_eq!(tys, vec![0x8009, 0x800B]);
    // A second completion answers 409.
    let a =
        apply_all(&fsm, &store, &[wf_effect(command(0x040B, complete(b"no", 3).encode_to_vec()))]);
    match &a[..] {
        [Action::Notify { ty: 0x800B, payload, .. }] => {
            assert!(payload.windows(9).any(|w| w == b"completed"), "{payload:?}")
        }
        other => panic!("expected one 0x800B, got {other:?}"),
    }
}

#[test]
fn an_expire_record_purges_only_completed_invocations_whose_retention_passed() {
    let (fsm, store) = (Fsm::new(0), PartitionStore::open_in_memory().unwrap());
    let with_retention = |n: u128, retention_ms: Option<u64>| match invoke(
        n,
        HandlerKind::Service,
        "",
        10 + n as u64,
    ) {
        Record { header, kind: Some(record::Kind::Invoke(mut i)) } => {
            i.retention_ms = retention_ms;
            Record { header, kind: Some(record::Kind::Invoke(i)) }
        }
        other => other,
    };
    let expire = |ns: &[u128]| {
        rec(record::Kind::Expire(ratchet::fsm::Expire {
            invocation_ids: ns.iter().map(|n| Bytes::copy_from_slice(&id(*n).to_bytes())).collect(),
            retained_blocks: vec![],
        }))
    };
    let mut txn = store.begin_write().unwrap();
    let mut out = Vec::new();
    for (n, r) in [(1, Some(5_000)), (2, Some(0)), (3, None), (4, Some(5_000))] {
        apply(&fsm, &mut txn, &with_retention(n, r), 1_000, &mut out).unwrap();
    }
    for n in [1, 2, 3] {
        for r in finish(n, 1, b"1") {
            apply(&fsm, &mut txn, &r, 2_000, &mut out).unwrap();
        }
    }
    // Retention 0: gone at once; unset: kept; 5 s: kept until 7_000.
    assert!(txn.status(&id(2)).unwrap().is_none());
    assert_eq!(txn.status(&id(1)).unwrap().unwrap().purge_at_ms, 7_000);
    apply(&fsm, &mut txn, &expire(&[1, 3, 4]), 6_999, &mut out).unwrap();
    assert!(txn.status(&id(1)).unwrap().is_some(), "not yet");
    apply(&fsm, &mut txn, &expire(&[1, 3, 4]), 7_000, &mut out).unwrap();
    assert!(txn.status(&id(1)).unwrap().is_none(), "retention passed");
    assert!(txn.status(&id(3)).unwrap().is_some(), "kept without a retention");
    assert_eq!(txn.status(&id(4)).unwrap().unwrap().phase(), Phase::Invoked, "running: kept");
    txn.commit(false).unwrap();
}

#[test]
fn a_paused_invocation_waits_for_resume_and_then_runs_a_new_attempt() {
    let (fsm, store) = (Fsm::new(0), PartitionStore::open_in_memory().unwrap());
    apply_all(&fsm, &store, &[invoke(1, HandlerKind::Service, "", 11)]);
    let pause = effect::Kind::Failed(Failed {
        code: 500,
        message: "paused".into(),
        retry_after_ms: None,
        counts: true,
        retry_in_ms: 0,
        give_up: false,
        pause: true,
    });
    let a = apply_all(&fsm, &store, &[effect_of(1, 1, pause)]);
    assert!(a.is_empty(), "{a:?}");
    assert_eq!(status(&store, 1).phase(), Phase::Paused);
    assert!(runnable(&store).is_empty(), "a paused invocation is not runnable");
    let raw = Bytes::copy_from_slice(&id(1).to_bytes());
    let resume = rec(record::Kind::Resume(ratchet::fsm::Resume {
        invocation_id: raw.clone(),
        deployment_id: "latest".into(),
    }));
    let a = apply_all(&fsm, &store, &[resume]);
    assert_eq!(started(&a), vec![(1, 2)]);
    let st = status(&store, 1);
    assert_eq!((st.phase(), st.failures, st.deployment_id.as_str()), (Phase::Invoked, 0, ""));
    // Paused on request: the attempt is stopped.
    let a = apply_all(
        &fsm,
        &store,
        &[rec(record::Kind::Pause(ratchet::fsm::Kill { invocation_id: raw }))],
    );
    assert!(matches!(&a[..], [Action::Abort { .. }]), "{a:?}");
    assert_eq!(status(&store, 1).phase(), Phase::Paused);
}

#[test]
fn attach_targets_by_workflow_and_idempotency_key_name_the_deterministic_ids() {
    use ratchet::fsm::{attach_target, idempotent_id, parse_awakeable, workflow_id};
    use ratchet::protocol::messages as pm;
    let w = pm::InvocationTarget::Workflow(pm::WorkflowTarget {
        workflow_name: "Wf".into(),
        workflow_key: "k".into(),
        scope: None,
    });
    assert_eq!(attach_target(Some(&w)).unwrap(), workflow_id("Wf", "k"));
    let i = pm::InvocationTarget::IdempotentRequest(pm::IdempotentRequestTarget {
        service_name: "Svc".into(),
        service_key: None,
        handler_name: "h".into(),
        idempotency_key: "ik".into(),
        scope: None,
    });
    assert_eq!(attach_target(Some(&i)).unwrap(), idempotent_id("Svc", None, "h", "ik"));
    assert_ne!(idempotent_id("Svc", None, "h", "ik"), idempotent_id("Svc", Some(""), "h", "ik"));
    assert_eq!(attach_target(None).unwrap_err().code, Code::InvalidId);
    // Awakeable ids: only signal indexes from 17.
    let awk = |index| {
        ratchet::protocol::ids::AwakeableId { invocation_id: id(1), signal_index: index }
            .to_string()
    };
    assert!(parse_awakeable(&awk(17)).is_ok());
    assert_eq!(parse_awakeable(&awk(1)).unwrap_err().code, Code::InvalidId);
}

#[test]
fn an_invocation_keeps_a_bounded_number_of_waiters() {
    // Why: every attach would otherwise grow the status that each record rewrites.
    let (fsm, store) = (Fsm::new(0), PartitionStore::open_in_memory().unwrap());
    apply_all(&fsm, &store, &[invoke(1, HandlerKind::Service, "", 11)]);
    let attach = |request: u64| {
        rec(record::Kind::Attach(ratchet::fsm::Attach {
            invocation_id: Bytes::copy_from_slice(&id(1).to_bytes()),
            sink: Some(ratchet::fsm::Sink { kind: Some(sink::Kind::Ingress(request)) }),
            now: false,
        }))
    };
    let records: Vec<Record> =
        (0..limits::SINKS_MAX as u64 + 5).map(|r| attach(1000 + r)).collect();
    let a = apply_all(&fsm, &store, &records);
    assert_eq!(
        status(&store, 1).sinks.len(),
        limits::SINKS_MAX,
        "the invocation's own sink plus attaches"
    );
    let refused = replies(&a);
    assert_eq!(refused.len(), 6, "the attaches past the cap are answered at once");
    for (_, _, o) in &refused {
        let (code, message) = failure_of(o);
        assert_eq!(code, 429);
        assert!(message.starts_with("[RA2003]"), "{message}");
    }
}

#[test]
fn a_send_learns_whether_it_created_the_invocation_or_found_it() {
    // Why: a workflow or idempotent send answers Accepted or PreviouslyAccepted, and only the
    // applied log knows which (another send may have been appended first).
    let (fsm, store) = (Fsm::new(0), PartitionStore::open_in_memory().unwrap());
    let send = |ack: u64| match invoke(1, HandlerKind::Service, "", 0) {
        Record { header, kind: Some(record::Kind::Invoke(mut i)) } => {
            i.sink = None;
            i.ack_request = ack;
            Record { header, kind: Some(record::Kind::Invoke(i)) }
        }
        other => other,
    };
    let a = apply_all(&fsm, &store, &[send(7), send(8)]);
    let acks: Vec<(u64, Outcome)> = replies(&a).into_iter().map(|(r, _, o)| (r, o)).collect();
    let value =
        |v: &'static [u8]| Outcome { result: Some(outcome::Result::Value(Bytes::from_static(v))) };
    assert_eq!(acks, vec![(7, value(b"Accepted")), (8, value(b"PreviouslyAccepted"))]);
}

#[test]
fn a_recreated_id_gets_nothing_addressed_to_its_earlier_life() {
    let (fsm, store) = (Fsm::new(0), PartitionStore::open_in_memory().unwrap());
    let raw = Bytes::copy_from_slice(&id(1).to_bytes());
    let call = |completion: u32| {
        let m = ratchet::protocol::messages::CallCommandMessage {
            service_name: "Counter".into(),
            handler_name: "add".into(),
            key: "other".into(),
            invocation_id_notification_idx: completion - 1,
            result_completion_id: completion,
            ..Default::default()
        };
        effect::Kind::Command(Command {
            ty: 0x040D,
            payload: m.encode_to_vec().into(),
            callee_kind: HandlerKind::Exclusive as i32,
            callee_retention_ms: None,
            callee_journal_retention_ms: None,
        })
    };
    let sleep = ratchet::protocol::messages::SleepCommandMessage {
        wake_up_time: 5_000,
        result_completion_id: 3,
        name: String::new(),
    };
    // First life: a call (journal index 1) and a sleep, then killed and purged.
    apply_all(&fsm, &store, &[invoke(1, HandlerKind::WorkflowRun, "k", 11)]);
    apply_all(&fsm, &store, &[effect_of(1, 1, call(2))]);
    apply_all(&fsm, &store, &[effect_of(1, 1, command(0x040C, sleep.encode_to_vec()))]);
    let first_life = status(&store, 1).life;
    let first_callee = match &outbox(&store)[..] {
        [record::Kind::Invoke(i)] => i.invocation_id.clone(),
        other => panic!("expected the callee's Invoke, got {other:?}"),
    };
    let kill = rec(record::Kind::Kill(ratchet::fsm::Kill { invocation_id: raw.clone() }));
    let purge = rec(record::Kind::Purge(ratchet::fsm::Kill { invocation_id: raw.clone() }));
    apply_all(&fsm, &store, &[kill, purge]);
    assert!(store.begin_read().unwrap().status(&id(1)).unwrap().is_none(), "purged");

    // Second life of the same id.
    apply_all(&fsm, &store, &[invoke(1, HandlerKind::WorkflowRun, "k", 12)]);
    let second = status(&store, 1);
    assert_ne!(second.life, first_life);
    assert_eq!((second.phase(), second.attempt, second.journal_len), (Phase::Invoked, 1, 1));
    // The old attempt's late effect (same attempt number), the old sleep's timer and the old
    // call's answer all miss.
    let mut stale = finish(1, 1, b"stale");
    for r in &mut stale {
        if let Some(record::Kind::Effect(e)) = &mut r.kind {
            e.life = first_life;
        }
    }
    let timer = rec(record::Kind::TimerFired(ratchet::fsm::TimerFired {
        invocation_id: raw.clone(),
        completion_id: 3,
        wake_ms: 5_000,
    }));
    let answer = |life: u64| {
        rec(record::Kind::Response(InvocationResponse {
            invocation_id: raw.clone(),
            completion_id: 2,
            outcome: None,
            notification_ty: 0,
            life,
        }))
    };
    let a = apply_all(&fsm, &store, &[stale, vec![timer, answer(first_life)]].concat());
    assert!(a.is_empty(), "nothing reaches the second life: {a:?}");
    let after = status(&store, 1);
    assert_eq!((after.phase(), after.journal_len), (Phase::Invoked, 1));
    assert!(after.completed_ids.is_empty(), "{after:?}");
    // The same call at the same journal index makes a new callee.
    apply_all(&fsm, &store, &[effect_of(1, 1, call(2))]);
    let second_callee = match outbox(&store).last() {
        Some(record::Kind::Invoke(i)) => i.invocation_id.clone(),
        other => panic!("expected the callee's Invoke, got {other:?}"),
    };
    assert_ne!(second_callee, first_callee);
    // Its own answer does arrive.
    let a = apply_all(&fsm, &store, &[answer(second.life)]);
    assert!(matches!(&a[..], [Action::Notify { ty: 0x800D, .. }]), "{a:?}");
    assert_eq!(status(&store, 1).completed_ids, vec![1, 2]);
}

#[test]
fn a_restart_keeps_a_prefix_and_the_later_results_its_commands_wait_for() {
    use ratchet::fsm::restart::{plan, Plan, PrefixError, PAGE_ENTRIES};
    use ratchet::protocol::messages::{Notification, NotificationResult, RunCommandMessage, Void};
    let run = |c: u32| {
        let m = RunCommandMessage { result_completion_id: c, ..Default::default() };
        (0x0411u16, Bytes::from(m.encode_to_vec()))
    };
    let done = |c: u32| {
        let n = Notification::completion(c, NotificationResult::Void(Void {}));
        (0x8011u16, Bytes::from(n.encode_to_vec()))
    };
    let input = (0x0400u16, Bytes::new());
    // input, run 1, run 2, result 2, result 1, run 3 (its result never came)
    let journal = [input, run(1), run(2), done(2), done(1), run(3)];
    let len = journal.len() as u32;
    let mut page = |at: u32, n: u32| {
        let end = (at + n).min(len) as usize;
        Ok(journal[at as usize..end].to_vec())
    };
    assert_eq!(plan(len, 0, &mut page).unwrap(), Ok(Plan { from: 0, extra: vec![] }));
    // From entry 1: run 1's result comes later; it is copied after the prefix.
    assert_eq!(plan(len, 1, &mut page).unwrap(), Ok(Plan { from: 1, extra: vec![4] }));
    assert_eq!(plan(len, 3, &mut page).unwrap(), Ok(Plan { from: 3, extra: vec![4] }));
    assert_eq!(plan(len, 4, &mut page).unwrap(), Ok(Plan { from: 4, extra: vec![] }));
    assert_eq!(
        plan(len, 5, &mut page).unwrap(),
        Err(PrefixError::Incomplete { from: 5, index: 5, completion: 3 })
    );
    assert_eq!(plan(len, 6, &mut page).unwrap(), Err(PrefixError::OutOfRange { from: 6, len: 6 }));
    // A long journal is read in pages.
    let long: Vec<_> = std::iter::once((0x0400u16, Bytes::new()))
        .chain((1..=2 * PAGE_ENTRIES).map(|c| if c % 2 == 1 { run(c) } else { done(c - 1) }))
        .collect();
    let n = long.len() as u32;
    let mut reads = Vec::new();
    let got = plan(n, n - 1, |at, k| {
        reads.push(k);
        Ok(long[at as usize..(at + k).min(n) as usize].to_vec())
    });
    assert_eq!(got.unwrap(), Ok(Plan { from: n - 1, extra: vec![] }));
    assert!(reads.iter().all(|k| *k <= PAGE_ENTRIES) && reads.len() == 3, "{reads:?}");
}

#[test]
fn a_restarted_invocation_starts_from_the_planned_journal_with_the_old_seed() {
    use ratchet::protocol::messages::RunCommandMessage;
    let (fsm, store) = (Fsm::new(0), PartitionStore::open_in_memory().unwrap());
    let kept = match invoke(1, HandlerKind::Service, "", 11) {
        Record { header, kind: Some(record::Kind::Invoke(mut i)) } => {
            i.retention_ms = Some(60_000);
            i.journal_retention_ms = Some(60_000);
            i.idempotency_key = "ik".into();
            Record { header, kind: Some(record::Kind::Invoke(i)) }
        }
        other => other,
    };
    apply_all(&fsm, &store, &[kept]);
    let run = RunCommandMessage { result_completion_id: 1, ..Default::default() };
    apply_all(&fsm, &store, &[effect_of(1, 1, command(0x0411, run.encode_to_vec()))]);
    let proposal = effect::Kind::ProposeRun(ratchet::fsm::ProposeRun {
        completion_id: 1,
        outcome: Some(Outcome { result: Some(outcome::Result::Value(Bytes::from_static(b"7"))) }),
    });
    apply_all(&fsm, &store, &[effect_of(1, 1, proposal)]);
    apply_all(&fsm, &store, &finish(1, 1, b"done"));
    let old = status(&store, 1);
    assert_eq!((old.phase(), old.journal_len), (Phase::Completed, 4), "{old:?}");
    // The kept journal left the journal rows for its retained block.
    let r = store.begin_read().unwrap();
    assert!(old.journal_archived);
    assert!(r.scan_prefix(Table::Journal, &[], usize::MAX).unwrap().is_empty());
    assert_eq!(r.scan_prefix(Table::Retained, &[], usize::MAX).unwrap().len(), 1);
    let archived: Vec<u16> =
        r.journal_page_of(&id(1), &old, 0, 10).unwrap().iter().map(|e| e.0).collect();
    assert_eq!(archived, vec![0x0400, 0x0411, 0x8011, 0x0401]);
    assert_eq!(r.journal_page_of(&id(1), &old, 2, 1).unwrap()[0].0, 0x8011);
    drop(r);
    let restart = |new: u128, from: u32, deployment: &str| {
        rec(record::Kind::RestartAsNew(ratchet::fsm::RestartAsNew {
            invocation_id: Bytes::copy_from_slice(&id(1).to_bytes()),
            new_invocation_id: Bytes::copy_from_slice(&id(new).to_bytes()),
            from,
            deployment_id: deployment.into(),
            ack_request: 70 + new as u64,
        }))
    };
    let a = apply_all(&fsm, &store, &[restart(2, 1, "keep")]);
    assert_eq!(started(&a), vec![(2, 1)]);
    let ok = Outcome { result: Some(outcome::Result::Value(Bytes::from_static(b"Accepted"))) };
    assert_eq!(replies(&a), vec![(72, 2, ok)], "the asker hears the new id");
    let new = status(&store, 2);
    assert_eq!(new.journal_len, 3, "input, run, its result");
    assert_eq!(new.completed_ids, vec![1]);
    assert_eq!(new.restarted_from.as_ref(), &id(1).to_bytes()[..]);
    assert_eq!(new.random_seed, ratchet::protocol::ids::random_seed(&id(1)));
    assert!(new.idempotency_key.is_empty(), "a restart is not idempotent");
    assert_eq!((new.deployment_id.clone(), new.life > old.life), (old.deployment_id.clone(), true));
    let r = store.begin_read().unwrap();
    let types: Vec<u16> = r.journal(&id(2), 3).unwrap().into_iter().map(|e| e.0).collect();
    assert_eq!(types, vec![0x0400, 0x0411, 0x8011]);
    drop(r);
    // An entry out of range or a taken new id change nothing, and the asker hears why.
    let a = apply_all(&fsm, &store, &[restart(3, 9, "")]);
    assert_eq!((replies(&a).len(), failure_of(&replies(&a)[0].2).0), (1, 400), "{a:?}");
    let a = apply_all(&fsm, &store, &[restart(2, 0, "")]);
    assert_eq!(failure_of(&replies(&a)[0].2).0, 409, "{a:?}");
    assert!(started(&a).is_empty());
    assert!(store.begin_read().unwrap().status(&id(3)).unwrap().is_none());
    // Purging the old one forgets it, its kept journal included: it was the block's only
    // member, so the block goes.
    let purge = rec(record::Kind::Purge(ratchet::fsm::Kill {
        invocation_id: Bytes::copy_from_slice(&id(1).to_bytes()),
    }));
    apply_all(&fsm, &store, &[purge]);
    let r = store.begin_read().unwrap();
    assert!(r.status(&id(1)).unwrap().is_none());
    assert!(r.scan_prefix(Table::Retained, &[], usize::MAX).unwrap().is_empty());
    assert_eq!(r.status(&id(2)).unwrap().unwrap().phase(), Phase::Invoked, "the new one runs");
}

/// A completion with a retention, applied at `lsn` and time `now_ms`.
fn retained_completion(
    fsm: &Fsm,
    txn: &mut ratchet::store::WriteTxn,
    n: u128,
    lsn: u64,
    now_ms: u64,
    input: &'static [u8],
) {
    let r = match invoke(n, HandlerKind::Service, "", 10 + n as u64) {
        Record { header, kind: Some(record::Kind::Invoke(mut i)) } => {
            i.retention_ms = Some(60_000);
            i.journal_retention_ms = Some(60_000);
            i.input = Bytes::from_static(input);
            Record { header, kind: Some(record::Kind::Invoke(i)) }
        }
        other => other,
    };
    let mut out = Vec::new();
    apply_at(fsm, txn, &r, lsn, now_ms, &mut out).unwrap();
    let [output, end] = <[Record; 2]>::try_from(finish(n, 1, b"ok")).unwrap();
    apply_at(fsm, txn, &output, lsn + 1, now_ms, &mut out).unwrap();
    apply_at(fsm, txn, &end, lsn + 2, now_ms, &mut out).unwrap();
}

#[test]
fn retained_blocks_hold_small_journals_and_expire_whole_when_their_bucket_ends() {
    static BIG: [u8; 20_000] = [7; 20_000];
    let (fsm, store) = (Fsm::new(0), PartitionStore::open_in_memory().unwrap());
    let mut txn = store.begin_write().unwrap();
    retained_completion(&fsm, &mut txn, 1, 10, 5_000, b"small");
    retained_completion(&fsm, &mut txn, 2, 20, 5_000, &BIG);
    txn.commit(false).unwrap();
    let r = store.begin_read().unwrap();
    let (small, big) = (r.status(&id(1)).unwrap().unwrap(), r.status(&id(2)).unwrap().unwrap());
    assert!(small.journal_archived && !big.journal_archived, "{small:?} {big:?}");
    // The large journal stays in its rows; the small one is only in the block.
    let rows = r.scan_prefix(Table::Journal, &[], usize::MAX).unwrap();
    assert_eq!(rows.len(), 2, "input and output of the large one");
    assert_eq!(r.journal_page_of(&id(1), &small, 0, 9).unwrap()[0].0, 0x0400);
    assert_eq!(r.journal_page_of(&id(2), &big, 0, 9).unwrap().len(), 2);
    let blocks = r.retained_due(None, u64::MAX, 10).unwrap();
    assert_eq!(blocks.len(), 1, "one bucket, one window");
    let stored = r.retained_value(&blocks[0]).unwrap().unwrap();
    let block = ratchet::fsm::retained::Block::decode(&stored).unwrap();
    let members = block.decode_members().unwrap();
    assert_eq!(members.iter().map(|m| m.id).collect::<Vec<_>>(), vec![id(1), id(2)]);
    assert!(members[0].journal.is_some() && members[1].journal.is_none());
    assert_eq!((members[0].rows, members[1].rows), (0, 2), "the large one's two journal rows");
    assert_eq!(ratchet::fsm::retained::head(&stored).unwrap(), (2, 2));
    // Not due before its bucket ends: nothing happens.
    let (bucket_end, _) = ratchet::store::schema::decode_retained_key(&blocks[0]).unwrap();
    assert_eq!(bucket_end, 66_000, "retention ends at 65 s, in the bucket ending at 66 s");
    assert!(r.retained_due(None, bucket_end - 1, 10).unwrap().is_empty());
    drop(r);
    let expire = rec(record::Kind::Expire(ratchet::fsm::Expire {
        invocation_ids: vec![],
        retained_blocks: vec![Bytes::from(blocks[0].clone())],
    }));
    let mut txn = store.begin_write().unwrap();
    apply_at(&fsm, &mut txn, &expire, 100, bucket_end - 1, &mut Vec::new()).unwrap();
    assert!(txn.status(&id(1)).unwrap().is_some(), "early: kept");
    apply_at(&fsm, &mut txn, &expire, 101, bucket_end, &mut Vec::new()).unwrap();
    assert!(txn.status(&id(1)).unwrap().is_none() && txn.status(&id(2)).unwrap().is_none());
    for t in [Table::Journal, Table::Retained] {
        assert!(txn.scan_prefix(t, &[], usize::MAX).unwrap().is_empty(), "{t:?} left");
    }
    txn.commit(false).unwrap();
}

#[test]
fn a_retained_block_is_the_same_whatever_the_batches_were() {
    let fsm = Fsm::new(0);
    // Invoke, output and end of three invocations completing in one window, applied as one
    // batch, as two, or one record per batch.
    let records: Vec<(Record, u64)> = (1..=3u128)
        .flat_map(|n| {
            let r = match invoke(n, HandlerKind::Service, "", 10 + n as u64) {
                Record { header, kind: Some(record::Kind::Invoke(mut i)) } => {
                    i.retention_ms = Some(60_000);
                    i.journal_retention_ms = Some(60_000);
                    Record { header, kind: Some(record::Kind::Invoke(i)) }
                }
                other => other,
            };
            std::iter::once(r).chain(finish(n, 1, b"ok"))
        })
        .zip(1u64..)
        .collect();
    let run = |cuts: &[u64]| {
        let store = PartitionStore::open_in_memory().unwrap();
        let mut txn = store.begin_write().unwrap();
        let mut batch = ratchet::fsm::Batch::new();
        for (r, lsn) in &records {
            let mut r = r.clone();
            if let Some(record::Kind::Effect(e)) = &mut r.kind {
                let id = InvocationId::from_bytes(&e.invocation_id).unwrap();
                e.life = txn.status(&id).unwrap().map_or(0, |st| st.life);
            }
            fsm.apply(&mut txn, &r, *lsn, 5_000, &mut batch).unwrap();
            if cuts.contains(lsn) {
                fsm.finish(&mut txn, &mut batch).unwrap();
                txn.commit(false).unwrap();
                txn = store.begin_write().unwrap();
            }
        }
        fsm.finish(&mut txn, &mut batch).unwrap();
        txn.commit(false).unwrap();
        let rows = store.begin_read().unwrap().scan_prefix(Table::Retained, &[], 9).unwrap();
        assert_eq!(rows.len(), 1, "one block");
        let block = ratchet::fsm::retained::Block::decode(&rows[0].1).unwrap();
        assert_eq!(block.members, 3);
        rows
    };
    let one = run(&[]);
    assert_eq!(run(&[6]), one, "cut between the second and third completion");
    assert_eq!(run(&(1..=9).collect::<Vec<_>>()), one, "one record per batch");
}

#[test]
fn an_expired_block_leaves_a_recreated_life_alone() {
    let (fsm, store) = (Fsm::new(0), PartitionStore::open_in_memory().unwrap());
    let mut txn = store.begin_write().unwrap();
    retained_completion(&fsm, &mut txn, 1, 10, 5_000, b"first life");
    let purge = rec(record::Kind::Purge(ratchet::fsm::Kill {
        invocation_id: Bytes::copy_from_slice(&id(1).to_bytes()),
    }));
    apply_at(&fsm, &mut txn, &purge, 13, 5_000, &mut Vec::new()).unwrap();
    // The purge took its member (and journal) out of the block: nothing else was in it.
    assert!(txn.scan_prefix(Table::Retained, &[], 9).unwrap().is_empty());
    // The same id again (as a workflow or idempotent id would be), twice: the second life
    // completes in the same window and bucket as a third invocation whose block expires.
    retained_completion(&fsm, &mut txn, 1, 20, 5_000, b"second life");
    retained_completion(&fsm, &mut txn, 2, 23, 5_000, b"other");
    let purge_again = rec(record::Kind::Purge(ratchet::fsm::Kill {
        invocation_id: Bytes::copy_from_slice(&id(1).to_bytes()),
    }));
    apply_at(&fsm, &mut txn, &purge_again, 26, 5_000, &mut Vec::new()).unwrap();
    retained_completion(&fsm, &mut txn, 1, 300, 200_000, b"third life");
    txn.commit(false).unwrap();
    let r = store.begin_read().unwrap();
    let first = r.retained_due(None, 120_000, 10).unwrap();
    assert_eq!(first.len(), 1, "the block of the second life and of 2");
    let members =
        ratchet::fsm::retained::Block::decode(&r.retained_value(&first[0]).unwrap().unwrap())
            .unwrap()
            .decode_members()
            .unwrap();
    assert_eq!(members.iter().map(|m| m.id).collect::<Vec<_>>(), vec![id(2)], "purged: out");
    drop(r);
    let expire = rec(record::Kind::Expire(ratchet::fsm::Expire {
        invocation_ids: vec![],
        retained_blocks: vec![Bytes::from(first[0].clone())],
    }));
    let mut txn = store.begin_write().unwrap();
    apply_at(&fsm, &mut txn, &expire, 3_000, 120_000, &mut Vec::new()).unwrap();
    assert!(txn.status(&id(2)).unwrap().is_none(), "expired");
    let st = txn.status(&id(1)).unwrap().expect("the third life is kept");
    assert_eq!(st.life, 300);
    let input = txn.journal_page_of(&id(1), &st, 0, 1).unwrap().remove(0).1;
    assert!(input.windows(10).any(|w| w == b"third life"), "{input:?}");
    assert_eq!(txn.retained_due(None, u64::MAX, 10).unwrap().len(), 1, "the third life's block");
    txn.commit(false).unwrap();
}

#[test]
fn a_recreated_id_waits_behind_those_queued_before_its_new_life() {
    let (fsm, store) = (Fsm::new(0), PartitionStore::open_in_memory().unwrap());
    let raw = |n: u128| Bytes::copy_from_slice(&id(n).to_bytes());
    // 1 holds key k; 2 then 3 wait in its inbox.
    apply_all(
        &fsm,
        &store,
        &[
            invoke(1, HandlerKind::Exclusive, "k", 11),
            invoke(2, HandlerKind::Exclusive, "k", 12),
            invoke(3, HandlerKind::Exclusive, "k", 13),
        ],
    );
    // 2 is killed while queued, purged, and made again (same id): it queues again, last.
    let kill = rec(record::Kind::Kill(ratchet::fsm::Kill { invocation_id: raw(2) }));
    let purge = rec(record::Kind::Purge(ratchet::fsm::Kill { invocation_id: raw(2) }));
    apply_all(&fsm, &store, &[kill, purge, invoke(2, HandlerKind::Exclusive, "k", 22)]);
    assert_eq!(status(&store, 2).phase(), Phase::Inboxed);
    // 1 ends: 3 goes first (2's old place is not its new life's), then 2.
    let a = apply_all(&fsm, &store, &finish(1, 1, b"1"));
    assert_eq!(started(&a), vec![(3, 1)]);
    let a = apply_all(&fsm, &store, &finish(3, 1, b"3"));
    assert_eq!(started(&a), vec![(2, 1)]);
}

#[test]
fn failures_and_pauses_are_kept_as_bounded_journal_events() {
    use ratchet::fsm::{JournalEvent, JournalEventKind};
    let (fsm, store) = (Fsm::new(0), PartitionStore::open_in_memory().unwrap());
    let kept = |n: u128| match invoke(n, HandlerKind::Service, "", 10 + n as u64) {
        Record { header, kind: Some(record::Kind::Invoke(mut i)) } => {
            i.retention_ms = Some(60_000);
            i.journal_retention_ms = Some(60_000);
            Record { header, kind: Some(record::Kind::Invoke(i)) }
        }
        other => other,
    };
    let fail = |code: u32, message: &str, pause: bool| {
        effect::Kind::Failed(Failed {
            code,
            message: message.into(),
            retry_after_ms: None,
            counts: true,
            retry_in_ms: 0,
            give_up: false,
            pause,
        })
    };
    let events = |n: u128| -> Vec<JournalEvent> {
        let r = store.begin_read().unwrap();
        let len = r.status(&id(n)).unwrap().map_or(0, |s| s.events_len);
        r.journal_events(&id(n), len).unwrap()
    };
    apply_all(&fsm, &store, &[kept(1)]);
    // The same error twice in a row is one event counted twice; another error is another.
    apply_all(&fsm, &store, &[effect_of(1, 1, fail(500, "boom", false))]);
    apply_all(&fsm, &store, &[effect_of(1, 2, fail(500, "boom", false))]);
    apply_all(&fsm, &store, &[effect_of(1, 3, fail(503, "busy", true))]);
    let got: Vec<(i32, u32, u32)> = events(1).iter().map(|e| (e.kind, e.code, e.count)).collect();
    let (t, p) = (JournalEventKind::TransientError as i32, JournalEventKind::Paused as i32);
    assert_eq!(got, vec![(t, 500, 2), (t, 503, 1), (p, 503, 1)]);
    assert_eq!(status(&store, 1).phase(), Phase::Paused);
    // Resumed and finished: the events stay with the kept journal, and go with the purge.
    let resume = rec(record::Kind::Resume(ratchet::fsm::Resume {
        invocation_id: Bytes::copy_from_slice(&id(1).to_bytes()),
        deployment_id: String::new(),
    }));
    apply_all(&fsm, &store, &[resume]);
    apply_all(&fsm, &store, &finish(1, 4, b"1"));
    assert_eq!(status(&store, 1).phase(), Phase::Completed);
    assert_eq!(events(1).len(), 3);
    let purge = rec(record::Kind::Purge(ratchet::fsm::Kill {
        invocation_id: Bytes::copy_from_slice(&id(1).to_bytes()),
    }));
    apply_all(&fsm, &store, &[purge]);
    let r = store.begin_read().unwrap();
    assert!(r.scan_prefix(Table::JournalEvents, &[], usize::MAX).unwrap().is_empty());
    drop(r);

    // Ever-different failures: at most JOURNAL_EVENTS_MAX rows, the last one the latest.
    apply_all(&fsm, &store, &[kept(2)]);
    let max = limits::JOURNAL_EVENTS_MAX;
    for a in 1..=max + 10 {
        apply_all(&fsm, &store, &[effect_of(2, a, fail(500, &format!("error {a}"), false))]);
    }
    let e = events(2);
    assert_eq!(e.len() as u32, max);
    assert_eq!(e.last().unwrap().message, format!("error {}", max + 10));
    let r = store.begin_read().unwrap();
    assert_eq!(r.scan_prefix(Table::JournalEvents, &[], usize::MAX).unwrap().len() as u32, max);
    drop(r);
    // A long message (a stack trace) is cut.
    apply_all(&fsm, &store, &[kept(3)]);
    apply_all(&fsm, &store, &[effect_of(3, 1, fail(500, &"é".repeat(10_000), false))]);
    let m = &events(3)[0].message;
    assert!(m.len() <= limits::JOURNAL_EVENT_MESSAGE_BYTES_MAX && m.len() > 4000, "{}", m.len());
}

#[test]
fn state_versions_are_restates_and_a_stale_edit_changes_nothing() {
    use ratchet::fsm::state_version;
    assert_eq!(state_version(&[]), "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU");
    assert_eq!(
        state_version(&[(b"name".as_slice(), b"bob".as_slice())]),
        "tDqA04Lj3_qJ-PgNPTecXDGZgpwy6jm2Ni2BYqJIthM"
    );
    let (fsm, store) = (Fsm::new(0), PartitionStore::open_in_memory().unwrap());
    let edit = |version: String, value: &'static [u8]| state_edit(version, value, 0);
    let read = |store: &PartitionStore| {
        store.begin_read().unwrap().state_get("Counter", "k", b"name").unwrap()
    };
    // No version: replaces whatever is there.
    apply_all(&fsm, &store, &[edit(String::new(), b"bob")]);
    assert_eq!(read(&store).as_deref(), Some(b"bob".as_slice()));
    // The version of the state it saw: applied.
    let seen = state_version(&[(b"name".as_slice(), b"bob".as_slice())]);
    apply_all(&fsm, &store, &[edit(seen.clone(), b"ann")]);
    assert_eq!(read(&store).as_deref(), Some(b"ann".as_slice()));
    // The same (now stale) version again: nothing changes.
    apply_all(&fsm, &store, &[edit(seen, b"cy")]);
    assert_eq!(read(&store).as_deref(), Some(b"ann".as_slice()));
}

#[test]
fn a_state_edit_waits_its_turn_behind_the_lock_and_is_refused_when_too_much_waits() {
    let (fsm, store) = (Fsm::new(0), PartitionStore::open_in_memory().unwrap());
    let edit = |value: &'static [u8], ack: u64| state_edit(String::new(), value, ack);
    let read = |store: &PartitionStore| {
        store.begin_read().unwrap().state_get("Counter", "k", b"name").unwrap()
    };
    let taken = |a: &[Action], request: u64| {
        replies(a).iter().any(|r| {
            r.0 == request && matches!(r.2.result, Some(ratchet::fsm::outcome::Result::Value(_)))
        })
    };
    // No holder: applied at once.
    let a = apply_all(&fsm, &store, &[edit(b"first", 20)]);
    assert!(taken(&a, 20), "{a:?}");
    assert_eq!(read(&store).as_deref(), Some(b"first".as_slice()));
    // Behind a holder: taken (queued), not applied; an invocation after it waits behind it.
    apply_all(&fsm, &store, &[invoke(1, HandlerKind::Exclusive, "k", 11)]);
    let a =
        apply_all(&fsm, &store, &[edit(b"queued", 21), invoke(2, HandlerKind::Exclusive, "k", 12)]);
    assert!(taken(&a, 21), "{a:?}");
    assert_eq!(read(&store).as_deref(), Some(b"first".as_slice()), "the holder's state stays");
    // The holder finishes: the edit applies in its turn, then the next invocation starts.
    let a = apply_all(&fsm, &store, &finish(1, 1, b"\"one\""));
    assert_eq!(read(&store).as_deref(), Some(b"queued".as_slice()));
    assert_eq!(started(&a), vec![(2, 1)]);
    // Too much waiting: the edit is refused (its asker hears why) and changes nothing.
    let behind: Vec<Record> = (10..10 + limits::STATE_EDIT_QUEUE_BEHIND_MAX as u128)
        .map(|n| invoke(n, HandlerKind::Exclusive, "k", 0))
        .collect();
    apply_all(&fsm, &store, &behind);
    let a = apply_all(&fsm, &store, &[edit(b"late", 22)]);
    let refused: Vec<_> = replies(&a).into_iter().filter(|r| r.0 == 22).collect();
    assert_eq!(refused.len(), 1, "{a:?}");
    assert!(failure_of(&refused[0].2).1.contains("queues behind at most"), "{refused:?}");
    let a = apply_all(&fsm, &store, &finish(2, 1, b"\"two\""));
    assert_eq!(started(&a), vec![(10, 1)]);
    assert_eq!(read(&store).as_deref(), Some(b"queued".as_slice()));
}

/// An admin edit of `Counter/k`'s state to `name` = `value`.
fn state_edit(version: String, value: &'static [u8], ack_request: u64) -> Record {
    use ratchet::fsm::{ModifyState, StateEntry};
    rec(record::Kind::ModifyState(ModifyState {
        service: "Counter".into(),
        key: "k".into(),
        entries: vec![StateEntry {
            key: Bytes::from_static(b"name"),
            value: Bytes::from_static(value),
        }],
        version,
        ack_request,
    }))
}
