//! The state machine alone, on an in-memory partition store: no WAL, no network, no clock.
//!
//! Goal: pin the rules that the end-to-end tests only observe from outside — one exclusive
//! invocation per object key with the others queued in arrival order, idempotent handling of
//! repeated deliveries (what makes crash replay safe), effects of superseded attempts being
//! ignored, and determinism (the same records give the same actions).
//!
//! Method: build records by hand, apply them with `Fsm::apply` inside store transactions, and
//! assert on the returned actions and the stored statuses.

use bytes::Bytes;
use prost::Message;
use ratchet::fsm::{
    effect, record, sink, Action, Effect, End, Failed, Fsm, FsmStore, HandlerKind, Invoke, Phase,
    Record, RetryPolicy, Sink, Status,
};
use ratchet::protocol::ids::InvocationId;
use ratchet::protocol::messages::{OutputCommandMessage, OutputResult, Value};
use ratchet::store::PartitionStore;

fn id(n: u128) -> InvocationId {
    InvocationId { partition_key: 7, uuid: n }
}

fn invoke(n: u128, kind: HandlerKind, key: &str, request: u64) -> Record {
    Record {
        kind: Some(record::Kind::Invoke(Invoke {
            invocation_id: Bytes::copy_from_slice(&id(n).to_bytes()),
            service: "Counter".into(),
            handler: "add".into(),
            key: key.into(),
            kind: kind as i32,
            input: Bytes::from_static(b"1"),
            headers: vec![],
            sink: Some(Sink { kind: Some(sink::Kind::Ingress(request)) }),
            execute_at_ms: 0,
        })),
    }
}

fn effect_of(n: u128, attempt: u32, kind: effect::Kind) -> Record {
    Record {
        kind: Some(record::Kind::Effect(Effect {
            invocation_id: Bytes::copy_from_slice(&id(n).to_bytes()),
            attempt,
            kind: Some(kind),
        })),
    }
}

/// Output + End: the invocation finishes with `value`.
fn finish(n: u128, attempt: u32, value: &'static [u8]) -> Vec<Record> {
    let output = OutputCommandMessage {
        result: Some(OutputResult::Value(Value { content: Bytes::from_static(value) })),
        name: String::new(),
    };
    vec![
        effect_of(
            n,
            attempt,
            effect::Kind::Command(ratchet::fsm::Command {
                ty: 0x0401,
                payload: output.encode_to_vec().into(),
                callee_kind: 0,
            }),
        ),
        effect_of(n, attempt, effect::Kind::End(End {})),
    ]
}

fn apply_all(fsm: &Fsm, store: &PartitionStore, records: &[Record]) -> Vec<Action> {
    let mut txn = store.begin_write().unwrap();
    let mut out = Vec::new();
    for (i, r) in records.iter().enumerate() {
        fsm.apply(&mut txn, r, 1_000 + i as u64, &mut out).unwrap();
    }
    txn.commit(false).unwrap();
    out
}

fn status(store: &PartitionStore, n: u128) -> Status {
    let txn = store.begin_write().unwrap();
    txn.status(&id(n)).unwrap().expect("status exists")
}

fn started(actions: &[Action]) -> Vec<(u128, u32)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Invoke(at) => Some((at.id.uuid, at.attempt)),
            _ => None,
        })
        .collect()
}

fn replies(actions: &[Action]) -> Vec<(u64, u128)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::IngressReply { request_id, id, .. } => Some((*request_id, id.uuid)),
            _ => None,
        })
        .collect()
}

#[test]
fn exclusive_invocations_take_turns_in_arrival_order() {
    let (fsm, store) = (Fsm::default(), PartitionStore::open_in_memory().unwrap());
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

    let a = apply_all(&fsm, &store, &finish(1, 1, b"\"one\""));
    assert_eq!(replies(&a), vec![(11, 1)]);
    assert_eq!(started(&a), vec![(2, 1)], "the next in line gets the key");
    let a = apply_all(&fsm, &store, &finish(2, 1, b"\"two\""));
    assert_eq!(started(&a), vec![(3, 1)]);
    assert_eq!(status(&store, 1).phase(), Phase::Completed);
}

#[test]
fn repeated_deliveries_and_stale_effects_change_nothing() {
    let (fsm, store) = (Fsm::default(), PartitionStore::open_in_memory().unwrap());
    apply_all(&fsm, &store, &[invoke(1, HandlerKind::Service, "", 11)]);
    // The same Invoke again (a re-sent delivery after a crash) starts nothing new.
    let a = apply_all(&fsm, &store, &[invoke(1, HandlerKind::Service, "", 11)]);
    assert!(a.is_empty(), "{a:?}");

    // Attempt 1 fails; attempt 2 starts after the backoff.
    let fail = effect::Kind::Failed(Failed {
        code: 500,
        message: "boom".into(),
        retry_after_ms: None,
        counts: true,
    });
    let a = apply_all(&fsm, &store, &[effect_of(1, 1, fail.clone())]);
    match &a[..] {
        [Action::Invoke(at)] => {
            assert_eq!(at.attempt, 2);
            assert_eq!(at.delay_ms, RetryPolicy::default().delay_ms(1));
            assert_eq!(at.retry_count, 1);
        }
        other => panic!("expected a new attempt, got {other:?}"),
    }
    // Effects of the superseded attempt 1 are ignored, also an End.
    let a = apply_all(&fsm, &store, &finish(1, 1, b"\"stale\""));
    assert!(a.is_empty(), "{a:?}");
    assert_eq!(status(&store, 1).phase(), Phase::Invoked);
    // Attempt 2 ends it; a late duplicate Invoke with a new waiter gets the stored outcome.
    let a = apply_all(&fsm, &store, &finish(1, 2, b"\"done\""));
    assert_eq!(replies(&a), vec![(11, 1)]);
    let a = apply_all(&fsm, &store, &[invoke(1, HandlerKind::Service, "", 99)]);
    assert_eq!(replies(&a), vec![(99, 1)]);
}

#[test]
fn retries_stop_at_the_attempt_limit_with_a_failure() {
    let fsm = Fsm::new(RetryPolicy { attempts_max: 3, ..RetryPolicy::default() });
    let store = PartitionStore::open_in_memory().unwrap();
    apply_all(&fsm, &store, &[invoke(1, HandlerKind::Service, "", 11)]);
    let fail = || {
        effect::Kind::Failed(Failed {
            code: 500,
            message: "boom".into(),
            retry_after_ms: Some(5),
            counts: true,
        })
    };
    let a = apply_all(&fsm, &store, &[effect_of(1, 1, fail()), effect_of(1, 2, fail())]);
    assert_eq!(started(&a), vec![(1, 2), (1, 3)]);
    let a = apply_all(&fsm, &store, &[effect_of(1, 3, fail())]);
    assert_eq!(replies(&a), vec![(11, 1)]);
    assert_eq!(status(&store, 1).phase(), Phase::Completed);
}

#[test]
fn applying_the_same_records_gives_the_same_actions() {
    let records: Vec<Record> =
        [invoke(1, HandlerKind::Exclusive, "k", 1), invoke(2, HandlerKind::Exclusive, "k", 2)]
            .into_iter()
            .chain(finish(1, 1, b"1"))
            .chain(finish(2, 1, b"2"))
            .collect();
    let fsm = Fsm::default();
    let one = apply_all(&fsm, &PartitionStore::open_in_memory().unwrap(), &records);
    let two = apply_all(&fsm, &PartitionStore::open_in_memory().unwrap(), &records);
    assert_eq!(one, two);
    assert_eq!(replies(&one), vec![(1, 1), (2, 2)]);
}
