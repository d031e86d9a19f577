//! Conformance tests of the service-protocol layer (`ratchet::protocol`) against the protocol
//! fact sheet: what goes on the wire must be exactly what the Restate SDKs expect, and nothing
//! an SDK (or a broken network) sends may make the server panic.
//!
//! Method: (1) round-trip a fully populated instance of every V5–V7 message through prost and
//! through the framing layer, splitting the byte stream at every position; (2) pin the bytes
//! that matter to SDKs (explicit void notifications, header layout, id strings and awakeable
//! ids from the fact sheet's test vectors, the random-seed function); (3) parse the example
//! manifest and a table of invalid ones, and check the negotiation table; (4) run the discovery
//! client against an in-process HTTP/2-only server, and check what a signed discovery and a
//! signed attempt carry (request identity); (5) feed seeded pseudo-random and mutated bytes to
//! every decoder and require only typed errors, never a panic.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use prost::Message as _;
use ratchet::protocol::codec::{self, Command, DecodeError, Message};
use ratchet::protocol::discovery::{self, DiscoveryError, HandlerKind, ProtocolMode, ServiceType};
use ratchet::protocol::framing::{self, Decoder, Frame, FrameError, FLAG_REQUESTED_ACK};
use ratchet::protocol::identity;
use ratchet::protocol::ids::{self, AwakeableId, DeploymentId, IdError, InvocationId};
use ratchet::protocol::messages::*;
use ratchet::protocol::version::{self, ManifestVersion, ServiceProtocolVersion};

// ---------------------------------------------------------------------------------------------
// Fixtures.

fn value(s: &str) -> Value {
    Value { content: Bytes::copy_from_slice(s.as_bytes()) }
}

fn failure() -> Failure {
    Failure {
        code: 409,
        message: "conflict".into(),
        metadata: vec![FailureMetadata { key: "k".into(), value: "v".into() }],
    }
}

fn headers() -> Vec<Header> {
    vec![
        Header { key: "a".into(), value: "1".into() },
        Header { key: "b".into(), value: "2".into() },
    ]
}

fn future() -> Future {
    Future {
        waiting_completions: vec![1, 2],
        waiting_signals: vec![1, 17],
        waiting_named_signals: vec!["go".into()],
        nested_futures: vec![Future {
            waiting_completions: vec![3],
            combinator_type: CombinatorType::AllSucceededOrFirstFailed as i32,
            ..Default::default()
        }],
        combinator_type: CombinatorType::FirstCompleted as i32,
    }
}

/// One fully populated instance of every command, with its id.
fn all_commands() -> Vec<Command> {
    vec![
        Command::Input(InputCommandMessage {
            headers: headers(),
            value: Some(value("in")),
            name: "input".into(),
        }),
        Command::Output(OutputCommandMessage {
            result: Some(OutputResult::Failure(failure())),
            name: "out".into(),
        }),
        Command::GetLazyState(GetLazyStateCommandMessage {
            key: Bytes::from_static(b"k"),
            result_completion_id: 1,
            name: "get".into(),
        }),
        Command::SetState(SetStateCommandMessage {
            key: Bytes::from_static(b"k"),
            value: Some(value("v")),
            name: "set".into(),
        }),
        Command::ClearState(ClearStateCommandMessage {
            key: Bytes::from_static(b"k"),
            name: "clear".into(),
        }),
        Command::ClearAllState(ClearAllStateCommandMessage { name: "clear_all".into() }),
        Command::GetLazyStateKeys(GetLazyStateKeysCommandMessage {
            result_completion_id: 2,
            name: "keys".into(),
        }),
        Command::GetEagerState(GetEagerStateCommandMessage {
            key: Bytes::from_static(b"k"),
            result: Some(EagerStateResult::Void(Void {})),
            name: "get_eager".into(),
        }),
        Command::GetEagerStateKeys(GetEagerStateKeysCommandMessage {
            value: Some(StateKeys { keys: vec![Bytes::from_static(b"a"), Bytes::new()] }),
            name: "keys_eager".into(),
        }),
        Command::GetPromise(GetPromiseCommandMessage {
            key: "p".into(),
            result_completion_id: 3,
            name: "promise".into(),
        }),
        Command::PeekPromise(PeekPromiseCommandMessage {
            key: "p".into(),
            result_completion_id: 4,
            name: "peek".into(),
        }),
        Command::CompletePromise(CompletePromiseCommandMessage {
            key: "p".into(),
            completion: Some(PromiseCompletion::Value(value("done"))),
            result_completion_id: 5,
            name: "complete".into(),
        }),
        Command::Sleep(SleepCommandMessage {
            wake_up_time: 1_700_000_000_000,
            result_completion_id: 6,
            name: "nap".into(),
        }),
        Command::Call(CallCommandMessage {
            service_name: "Greeter".into(),
            handler_name: "greet".into(),
            parameter: Bytes::from_static(b"{}"),
            headers: headers(),
            key: "k".into(),
            idempotency_key: Some("idem".into()),
            scope: Some("scope".into()),
            limit_key: Some("limit".into()),
            invocation_id_notification_idx: 7,
            result_completion_id: 8,
            name: "call".into(),
        }),
        Command::OneWayCall(OneWayCallCommandMessage {
            service_name: "Greeter".into(),
            handler_name: "greet".into(),
            parameter: Bytes::from_static(b"{}"),
            invoke_time: 1_700_000_000_000,
            headers: headers(),
            key: "k".into(),
            idempotency_key: Some("idem".into()),
            scope: Some("scope".into()),
            limit_key: Some("limit".into()),
            invocation_id_notification_idx: 9,
            name: "send".into(),
        }),
        Command::SendSignal(SendSignalCommandMessage {
            target_invocation_id: "inv_105k1wlNFHb201SZwviYzes2mjOamuMJWw".into(),
            signal_id: Some(SignalId::Name("go".into())),
            result: Some(SignalResult::Value(value("x"))),
            entry_name: "signal".into(),
        }),
        Command::Run(RunCommandMessage { result_completion_id: 10, name: "charge".into() }),
        Command::AttachInvocation(AttachInvocationCommandMessage {
            target: Some(InvocationTarget::IdempotentRequest(IdempotentRequestTarget {
                service_name: "S".into(),
                service_key: Some("k".into()),
                handler_name: "h".into(),
                idempotency_key: "i".into(),
                scope: Some("sc".into()),
            })),
            result_completion_id: 11,
            name: "attach".into(),
        }),
        Command::GetInvocationOutput(GetInvocationOutputCommandMessage {
            target: Some(InvocationTarget::Workflow(WorkflowTarget {
                workflow_name: "W".into(),
                workflow_key: "k".into(),
                scope: None,
            })),
            result_completion_id: 12,
            name: "output".into(),
        }),
        Command::CompleteAwakeable(CompleteAwakeableCommandMessage {
            awakeable_id: "sign_1ASNFZ4mrze8BI0VniavN7wEjRWeJq83vAAAAEQ".into(),
            result: Some(AwakeableResult::Failure(failure())),
            name: "resolve".into(),
        }),
    ]
}

fn all_notifications() -> Vec<(u16, Notification)> {
    let void = || NotificationResult::Void(Void {});
    vec![
        (MessageType::GET_LAZY_STATE_COMPLETION, Notification::completion(1, void())),
        (
            MessageType::GET_LAZY_STATE_KEYS_COMPLETION,
            Notification::completion(
                2,
                NotificationResult::StateKeys(StateKeys { keys: vec![Bytes::from_static(b"a")] }),
            ),
        ),
        (
            MessageType::GET_PROMISE_COMPLETION,
            Notification::completion(3, NotificationResult::Value(value("p"))),
        ),
        (MessageType::PEEK_PROMISE_COMPLETION, Notification::completion(4, void())),
        (
            MessageType::COMPLETE_PROMISE_COMPLETION,
            Notification::completion(5, NotificationResult::Failure(failure())),
        ),
        (MessageType::SLEEP_COMPLETION, Notification::completion(6, void())),
        (
            MessageType::CALL_INVOCATION_ID_COMPLETION,
            Notification::completion(
                7,
                NotificationResult::InvocationId("inv_105k1wlNFHb201SZwviYzes2mjOamuMJWw".into()),
            ),
        ),
        (
            MessageType::CALL_COMPLETION,
            Notification::completion(8, NotificationResult::Value(value("r"))),
        ),
        (
            MessageType::RUN_COMPLETION,
            Notification::completion(10, NotificationResult::Value(value("ok"))),
        ),
        (
            MessageType::ATTACH_INVOCATION_COMPLETION,
            Notification::completion(11, NotificationResult::Failure(failure())),
        ),
        (MessageType::GET_INVOCATION_OUTPUT_COMPLETION, Notification::completion(12, void())),
        (MessageType::SIGNAL_NOTIFICATION, Notification::cancel()),
        (
            MessageType::SIGNAL_NOTIFICATION,
            Notification::signal(17, NotificationResult::Value(value("a"))),
        ),
        (MessageType::SIGNAL_NOTIFICATION, Notification::named_signal("go", void())),
    ]
}

fn start_message() -> StartMessage {
    let id = InvocationId::new(7, 42);
    StartMessage {
        id: Bytes::copy_from_slice(&id.to_bytes()),
        debug_id: id.to_string(),
        known_entries: 3,
        state_map: vec![
            StateEntry { key: Bytes::from_static(b"count"), value: Bytes::from_static(b"1") },
            StateEntry { key: Bytes::from_static(b"empty"), value: Bytes::new() },
        ],
        partial_state: true,
        key: "obj".into(),
        retry_count_since_last_stored_entry: 2,
        duration_since_last_stored_entry: 1500,
        random_seed: ids::random_seed(&id),
        scope: Some("s".into()),
        limit_key: Some("l".into()),
        idempotency_key: Some("i".into()),
    }
}

fn round_trip<M: prost::Message + Default + PartialEq + std::fmt::Debug>(m: &M) {
    let bytes = m.encode_to_vec();
    assert_eq!(&M::decode(bytes.as_slice()).expect("decodes"), m);
}

// ---------------------------------------------------------------------------------------------
// Messages.

#[test]
fn every_control_message_round_trips() {
    round_trip(&start_message());
    round_trip(&SuspensionMessage {
        waiting_completions: vec![1, 2, 3],
        waiting_signals: vec![1],
        waiting_named_signals: vec!["n".into()],
        awaiting_on: None,
    });
    round_trip(&SuspensionMessage { awaiting_on: Some(future()), ..Default::default() });
    round_trip(&ErrorMessage {
        code: 570,
        message: "journal mismatch".into(),
        stacktrace: "at line 1".into(),
        related_command_index: Some(0),
        related_command_name: Some("charge".into()),
        related_command_type: Some(u32::from(MessageType::RUN_COMMAND)),
        next_retry_delay: Some(250),
        behavior: ErrorBehavior::Pause as i32,
    });
    round_trip(&EndMessage {});
    round_trip(&CommandAckMessage { command_index: 4 });
    round_trip(&ProposeRunCompletionMessage {
        result_completion_id: 1,
        result: Some(RunProposalResult::Value(Bytes::from_static(b"v"))),
    });
    round_trip(&ProposeRunCompletionMessage {
        result_completion_id: 1,
        result: Some(RunProposalResult::Failure(failure())),
    });
    round_trip(&AwaitingOnMessage { awaiting_on: Some(future()), executing_side_effects: true });
    round_trip(&ProposeRunCompletionAckMessage { completion_id: 9 });
}

#[test]
fn start_message_field_numbers() {
    // Spot-check tags against the fact sheet: random_seed = 9 (varint), scope = 10 (bytes).
    let m = StartMessage { random_seed: 1, scope: Some(String::new()), ..Default::default() };
    assert_eq!(m.encode_to_vec(), vec![9 << 3, 1, (10 << 3) | 2, 0]);
    // ErrorMessage: next_retry_delay = 8, behavior = 9.
    let m = ErrorMessage {
        next_retry_delay: Some(5),
        behavior: ErrorBehavior::Fail as i32,
        ..Default::default()
    };
    assert_eq!(m.encode_to_vec(), vec![8 << 3, 5, 9 << 3, 2]);
    // ProposeRunCompletion: bytes value at 14.
    let m = ProposeRunCompletionMessage {
        result_completion_id: 1,
        result: Some(RunProposalResult::Value(Bytes::from_static(b"x"))),
    };
    assert_eq!(m.encode_to_vec(), vec![1 << 3, 1, (14 << 3) | 2, 1, b'x']);
}

#[test]
fn every_command_round_trips_through_frames_and_keeps_its_bytes() {
    let commands = all_commands();
    assert_eq!(commands.len(), 20, "0x0400..=0x0414 minus the unassigned 0x040F");
    let mut stream = BytesMut::new();
    for command in &commands {
        assert!(is_command(command.message_type()));
        assert!(message_name(command.message_type()).is_some());
        framing::encode_frame(command.message_type(), 0, &command.encode_to_vec(), &mut stream);
    }
    let mut decoder = Decoder::new();
    decoder.push(&stream);
    for expected in &commands {
        let frame = decoder.next_frame().unwrap().expect("complete frame");
        let Message::Command(raw) = codec::decode_message(frame.ty, frame.payload.clone()).unwrap()
        else {
            panic!("{:#06x} is a command", frame.ty);
        };
        assert_eq!(&raw.command, expected);
        assert_eq!(raw.raw, frame.payload);
        assert_eq!(raw.message_type(), expected.message_type());
        assert!(!raw.command.entry_name().is_empty());
        assert_eq!(codec::decode_command(frame.ty, frame.payload).unwrap(), raw);
    }
    assert_eq!(decoder.next_frame().unwrap(), None);
    decoder.finish().unwrap();
}

#[test]
fn command_raw_bytes_survive_unknown_fields() {
    // A Run command followed by an unknown field 99 (varint 5): the struct drops it, the raw
    // bytes keep it, so replay is byte-identical to what the SDK sent.
    let mut payload =
        RunCommandMessage { result_completion_id: 1, name: "r".into() }.encode_to_vec();
    payload.extend_from_slice(&[0x98, 0x06, 0x05]);
    let payload = Bytes::from(payload);
    let Message::Command(raw) =
        codec::decode_message(MessageType::RUN_COMMAND, payload.clone()).unwrap()
    else {
        panic!("run is a command");
    };
    assert_eq!(raw.raw, payload);
    assert_ne!(raw.command.encode_to_vec(), payload.to_vec());
    assert_eq!(raw.command.result_completion_id(), Some(1));
}

#[test]
fn completion_ids_of_commands() {
    for command in all_commands() {
        let completable = matches!(
            command.message_type(),
            0x0402 | 0x0406 | 0x0409..=0x040D | 0x0411..=0x0413
        );
        assert_eq!(command.result_completion_id().is_some(), completable, "{command:?}");
        let with_id = matches!(command.message_type(), 0x040D | 0x040E);
        assert_eq!(command.invocation_id_notification_idx().is_some(), with_id);
    }
}

#[test]
fn sdk_control_messages_decode_to_their_variants() {
    let cases: Vec<(u16, Vec<u8>)> = vec![
        (
            MessageType::SUSPENSION,
            SuspensionMessage { awaiting_on: Some(future()), ..Default::default() }.encode_to_vec(),
        ),
        (MessageType::ERROR, ErrorMessage { code: 500, ..Default::default() }.encode_to_vec()),
        (MessageType::END, vec![]),
        (
            MessageType::PROPOSE_RUN_COMPLETION,
            ProposeRunCompletionMessage { result_completion_id: 3, result: None }.encode_to_vec(),
        ),
        (MessageType::AWAITING_ON, AwaitingOnMessage::default().encode_to_vec()),
    ];
    for (ty, payload) in cases {
        let m = codec::decode_message(ty, Bytes::from(payload)).unwrap();
        assert_eq!(m.message_type(), ty);
        assert_eq!(m.is_terminal(), ty <= MessageType::END);
        match (ty, m) {
            (MessageType::SUSPENSION, Message::Suspension(s)) => {
                assert_eq!(s.awaiting_on, Some(future()))
            }
            (MessageType::ERROR, Message::Error(e)) => assert_eq!(e.code, 500),
            (MessageType::END, Message::End(_)) => {}
            (MessageType::PROPOSE_RUN_COMPLETION, Message::ProposeRunCompletion(p)) => {
                assert_eq!(p.result_completion_id, 3)
            }
            (MessageType::AWAITING_ON, Message::AwaitingOn(_)) => {}
            (ty, m) => panic!("{ty:#06x} decoded as {m:?}"),
        }
    }
}

#[test]
fn unknown_ids_are_custom_or_errors() {
    for ty in [0x040F, 0x0415, 0x7FFF, 0x8001, 0x8FFF, 0xFC00, 0xFFFF] {
        let payload = Bytes::from_static(b"\xff\xfe opaque");
        assert_eq!(
            codec::decode_message(ty, payload.clone()).unwrap(),
            Message::Custom { ty, payload },
            "{ty:#06x}"
        );
    }
    for ty in [0x0008, 0x0100, 0x0200, 0x0300, 0x03FF] {
        assert_eq!(
            codec::decode_message(ty, Bytes::new()),
            Err(DecodeError::UnknownControl { ty })
        );
    }
    for ty in
        [MessageType::START, MessageType::COMMAND_ACK, MessageType::PROPOSE_RUN_COMPLETION_ACK]
            .into_iter()
            .chain(all_notifications().into_iter().map(|(ty, _)| ty))
    {
        assert!(
            matches!(
                codec::decode_message(ty, Bytes::new()),
                Err(DecodeError::WrongDirection { .. })
            ),
            "{ty:#06x}"
        );
    }
    assert!(matches!(
        codec::decode_message(MessageType::ERROR, Bytes::from_static(b"\x0a\xff")),
        Err(DecodeError::Protobuf { ty: 0x0002, name: "ErrorMessage", .. })
    ));
    assert_eq!(
        codec::decode_command(MessageType::END, Bytes::new()),
        Err(DecodeError::NotACommand { ty: MessageType::END })
    );
}

#[test]
fn every_notification_round_trips_through_the_template() {
    for (ty, n) in all_notifications() {
        assert!(is_notification(ty) && message_name(ty).is_some());
        assert!(n.id.is_some() && n.result.is_some());
        let mut framed = BytesMut::new();
        codec::encode_message(ty, &n, &mut framed);
        let mut decoder = Decoder::new();
        decoder.push(&framed);
        let frame = decoder.next_frame().unwrap().unwrap();
        assert_eq!((frame.ty, frame.requested_ack), (ty, false));
        assert_eq!(codec::decode_notification(frame.ty, frame.payload).unwrap(), n);
    }
    assert_eq!(
        codec::decode_notification(MessageType::RUN_COMMAND, Bytes::new()),
        Err(DecodeError::NotANotification { ty: MessageType::RUN_COMMAND })
    );
}

#[test]
fn void_results_are_encoded_explicitly() {
    let tag4_len0 = [(4 << 3) | 2, 0];
    let n = Notification::completion(1, NotificationResult::Void(Void {}));
    assert_eq!(n.encode_to_vec(), [&[1 << 3, 1][..], &tag4_len0].concat());
    let n = Notification::cancel();
    assert_eq!(n.encode_to_vec(), [&[2 << 3, 1][..], &tag4_len0].concat());
    let n = Notification::named_signal("x", NotificationResult::Void(Void {}));
    assert_eq!(n.encode_to_vec(), [&[(3 << 3) | 2, 1, b'x'][..], &tag4_len0].concat());
    // A decoded void stays a void (not "no result").
    let back = Notification::decode(&[0x08, 0x01, 0x22, 0x00][..]).unwrap();
    assert_eq!(back.result, Some(NotificationResult::Void(Void {})));
    // Other result tags: invocation id 16, state keys 17.
    let n = Notification::completion(1, NotificationResult::InvocationId("i".into()));
    assert_eq!(n.encode_to_vec(), vec![0x08, 0x01, 0x82, 0x01, 0x01, b'i']);
    let n = Notification::completion(1, NotificationResult::StateKeys(StateKeys::default()));
    assert_eq!(n.encode_to_vec(), vec![0x08, 0x01, 0x8A, 0x01, 0x00]);
}

#[test]
fn run_proposals_transcode_to_notifications() {
    let p = ProposeRunCompletionMessage {
        result_completion_id: 4,
        result: Some(RunProposalResult::Failure(failure())),
    };
    assert_eq!(
        Notification::from_run_proposal(&p),
        Some(Notification::completion(4, NotificationResult::Failure(failure())))
    );
    let p = ProposeRunCompletionMessage { result_completion_id: 4, result: None };
    assert_eq!(Notification::from_run_proposal(&p), None);
    // Signal payloads of SendSignal become the notification result unchanged.
    let r: NotificationResult = SignalResult::Void(Void {}).into();
    assert_eq!(r, NotificationResult::Void(Void {}));
    let r: NotificationResult = AwakeableResult::Value(value("a")).into();
    assert_eq!(r, NotificationResult::Value(value("a")));
}

// ---------------------------------------------------------------------------------------------
// Framing.

#[test]
fn frames_survive_every_two_and_three_way_split() {
    let mut stream = BytesMut::new();
    codec::encode_message(MessageType::START, &start_message(), &mut stream);
    framing::encode_frame(
        MessageType::INPUT_COMMAND,
        0,
        &all_commands()[0].encode_to_vec(),
        &mut stream,
    );
    framing::encode_frame(
        MessageType::PROPOSE_RUN_COMPLETION,
        FLAG_REQUESTED_ACK,
        b"\x08\x01",
        &mut stream,
    );
    framing::encode_frame(MessageType::END, 0, &[], &mut stream);
    let expected = {
        let mut d = Decoder::new();
        d.push(&stream);
        let mut v = Vec::new();
        while let Some(f) = d.next_frame().unwrap() {
            v.push(f);
        }
        v
    };
    assert_eq!(expected.len(), 4);
    assert!(expected[2].requested_ack && !expected[0].requested_ack);
    assert_eq!(StartMessage::decode(expected[0].payload.clone()).unwrap(), start_message());

    let decode_chunks = |chunks: &[&[u8]]| -> Vec<Frame> {
        let mut d = Decoder::new();
        let mut got = Vec::new();
        for c in chunks {
            d.push(c);
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f);
            }
        }
        d.finish().unwrap();
        got
    };
    for i in 0..=stream.len() {
        assert_eq!(decode_chunks(&[&stream[..i], &stream[i..]]), expected, "split at {i}");
    }
    for i in (0..=stream.len()).step_by(3) {
        for j in (i..=stream.len()).step_by(5) {
            assert_eq!(decode_chunks(&[&stream[..i], &stream[i..j], &stream[j..]]), expected);
        }
    }
}

#[test]
fn frame_errors_are_typed() {
    let mut d = Decoder::with_message_bytes_max(4);
    d.push(&((0x0400u64 << 48) | 5).to_be_bytes());
    assert_eq!(
        d.next_frame(),
        Err(FrameError::TooLarge { ty: 0x0400, length_bytes: 5, message_bytes_max: 4 })
    );
    let mut d = Decoder::new();
    assert_eq!(d.message_bytes_max(), framing::MESSAGE_BYTES_MAX);
    assert_eq!(framing::MESSAGE_BYTES_MAX, 32 * 1024 * 1024);
    d.push(&((0x0005u64 << 48) | (1 << 40)).to_be_bytes());
    assert!(matches!(d.next_frame(), Err(FrameError::ReservedBits { ty: 5, .. })));
}

// ---------------------------------------------------------------------------------------------
// Identifiers.

#[test]
fn id_vectors_from_the_fact_sheet() {
    let a = InvocationId::new(1, 1);
    let b = InvocationId::new(0x0123456789abcdef, 0x0123456789abcdef0123456789abcdef);
    assert_eq!(a.to_string(), "inv_105k1wlNFHb201SZwviYzes2mjOamuMJWw");
    assert_eq!(b.to_string(), "inv_1kAt0t9pq7gB7iv9LWd4uZm5grdN3xFeQ9");
    assert_eq!("inv_105k1wlNFHb201SZwviYzes2mjOamuMJWw".parse(), Ok(a));
    assert_eq!("inv_1kAt0t9pq7gB7iv9LWd4uZm5grdN3xFeQ9".parse(), Ok(b));
    assert_eq!(
        b.to_bytes().to_vec(),
        [
            &0x0123456789abcdefu64.to_be_bytes()[..],
            &0x0123456789abcdef0123456789abcdefu128.to_be_bytes()
        ]
        .concat()
    );
    assert_eq!(InvocationId::from_bytes(&b.to_bytes()), Ok(b));

    let awakeable = AwakeableId { invocation_id: b, signal_index: 17 };
    assert_eq!(awakeable.to_string(), "sign_1ASNFZ4mrze8BI0VniavN7wEjRWeJq83vAAAAEQ");
    assert_eq!(awakeable.to_string().len(), AwakeableId::STRING_CHARS);
    assert_eq!("sign_1ASNFZ4mrze8BI0VniavN7wEjRWeJq83vAAAAEQ".parse(), Ok(awakeable));
    assert_eq!("sign_1ASNFZ4mrze8BI0VniavN7wEjRWeJq83vAAAAEQ==".parse(), Ok(awakeable));
    assert_eq!(AwakeableId::from_bytes(&awakeable.to_bytes()), Ok(awakeable));

    let d = DeploymentId(0x0123456789abcdef0123456789abcdef);
    let s = d.to_string();
    assert!(s.starts_with("dp_1") && s.len() == DeploymentId::STRING_CHARS, "{s}");
    assert_eq!(&s[4..], &b.to_string()[16..]);
    assert_eq!(s.parse(), Ok(d));
}

#[test]
fn random_seed_is_pinned() {
    let a = InvocationId::new(1, 1);
    let b = InvocationId::new(0x0123456789abcdef, 0x0123456789abcdef0123456789abcdef);
    assert_eq!(ids::random_seed(&a), ids::random_seed(&InvocationId::new(1, 1)));
    assert_ne!(ids::random_seed(&a), ids::random_seed(&b));
    // Golden values: changing the function changes ctx.rand of stored invocations.
    assert_eq!(ids::random_seed(&a), RANDOM_SEED_A);
    assert_eq!(ids::random_seed(&b), RANDOM_SEED_B);
}
const RANDOM_SEED_A: u64 = 7806873273932414515;
const RANDOM_SEED_B: u64 = 4890137998011991711;

#[test]
fn bad_ids_are_rejected_with_typed_errors() {
    let inv = |s: &str| s.parse::<InvocationId>();
    assert_eq!(
        inv("dp_105k1wlNFHb201SZwviYzes2mjOamuMJWw"),
        Err(IdError::WrongPrefix { expected: "inv" })
    );
    assert!(matches!(
        inv("inv_205k1wlNFHb201SZwviYzes2mjOamuMJWw"),
        Err(IdError::UnsupportedVersion { version: '2', .. })
    ));
    assert!(matches!(
        inv("inv_105k1wlNFHb201SZwviYzes2mjOamuMJW"),
        Err(IdError::WrongLength { .. })
    ));
    assert!(matches!(
        inv("inv_105k1wlNFHb201SZwviYzes2mjOamuMJW!"),
        Err(IdError::InvalidCharacter { character: '!', position: 37 })
    ));
    assert!(matches!(
        inv("inv_105k1wlNFHb201SZwviYzes2mjOamuMJWé"),
        Err(IdError::WrongLength { .. })
    ));
    assert_eq!(inv("inv_1ZZZZZZZZZZZ01SZwviYzes2mjOamuMJWw"), Err(IdError::Overflow));
    assert_eq!(inv("inv_105k1wlNFHb2ZZZZZZZZZZZZZZZZZZZZZZ"), Err(IdError::Overflow));
    assert!(matches!(
        InvocationId::from_bytes(&[0; 23]),
        Err(IdError::WrongRawLength { actual_bytes: 23, .. })
    ));

    let awk = |s: &str| s.parse::<AwakeableId>();
    assert_eq!(awk("prom_1ASNFZ4mrze8BI0VniavN7wEjRWeJq83vAAAAEQ"), Err(IdError::LegacyAwakeable));
    assert!(matches!(
        awk("sign_1ASNFZ4mrze8BI0VniavN7wEjRWeJq83vAAAA"),
        Err(IdError::WrongRawLength { .. })
    ));
    assert_eq!(awk("sign_1ASNFZ4mrze8BI0VniavN7wEjRWeJq83vAAAAER"), Err(IdError::MalformedBase64));
    assert!(matches!(
        awk("sign_1ASNFZ4mrze8BI0VniavN7wEjRWeJq83vAAAA+Q"),
        Err(IdError::InvalidCharacter { .. })
    ));
    assert!(matches!(awk("sign_2AAAA"), Err(IdError::UnsupportedVersion { .. })));
    assert!(matches!(awk(""), Err(IdError::WrongPrefix { .. })));
}

// ---------------------------------------------------------------------------------------------
// Versions and negotiation.

#[test]
fn negotiation_table() {
    use ServiceProtocolVersion::*;
    // (min, max, v7 enabled) -> picked
    let table: &[(i32, i32, bool, Option<ServiceProtocolVersion>)] = &[
        (5, 7, false, Some(V6)),
        (5, 7, true, Some(V7)),
        (5, 5, false, Some(V5)),
        (5, 6, true, Some(V6)),
        (1, 5, false, Some(V5)),
        (5, 8, true, Some(V7)),
        (5, 8, false, Some(V6)),
        (7, 7, false, None),
        (7, 7, true, Some(V7)),
        (6, 9, false, Some(V6)),
        (1, 4, true, None),
        (8, 9, true, None),
        (6, 5, true, None),
        (i32::MIN, i32::MAX, false, Some(V6)),
    ];
    for &(min, max, v7, expected) in table {
        assert_eq!(version::negotiate(min, max, v7), expected, "{min}..{max} v7={v7}");
    }
    for v in ServiceProtocolVersion::ALL {
        assert_eq!(v.content_type(), format!("application/vnd.restate.invocation.v{}", v.as_i32()));
        assert_eq!(ServiceProtocolVersion::from_content_type(v.content_type()), Some(v));
    }
    assert_eq!(
        version::DISCOVERY_ACCEPT,
        "application/vnd.restate.endpointmanifest.v1+json, \
         application/vnd.restate.endpointmanifest.v2+json, \
         application/vnd.restate.endpointmanifest.v3+json, \
         application/vnd.restate.endpointmanifest.v4+json"
    );
}

// ---------------------------------------------------------------------------------------------
// Discovery manifest.

const EXAMPLE_MANIFEST: &str = r#"{"protocolMode":"BIDI_STREAM","minProtocolVersion":5,"maxProtocolVersion":7,
 "services":[{"name":"Counter","ty":"VIRTUAL_OBJECT","handlers":[
   {"name":"add","ty":"EXCLUSIVE","input":{"required":false,"contentType":"application/json"},
    "output":{"setContentTypeIfEmpty":false,"contentType":"application/json"}},
   {"name":"get","ty":"SHARED","input":{},"output":{"setContentTypeIfEmpty":false,"contentType":"application/json"}}],
  "inactivityTimeout":30000,"retryPolicyMaxAttempts":10,"retryPolicyOnMaxAttempts":"PAUSE"}]}"#;

#[test]
fn example_manifest_parses_and_validates() {
    let e = discovery::parse_manifest(EXAMPLE_MANIFEST.as_bytes()).unwrap();
    assert_eq!(e.protocol_mode, Some(ProtocolMode::BidiStream));
    assert_eq!((e.min_protocol_version, e.max_protocol_version), (5, 7));
    let s = &e.services[0];
    assert_eq!((s.name.as_str(), s.ty), ("Counter", ServiceType::VirtualObject));
    assert_eq!(s.inactivity_timeout_ms, Some(30_000));
    assert_eq!(s.retry_policy.max_attempts, Some(10));
    assert_eq!(s.retry_policy.on_max_attempts, Some(discovery::OnMaxAttempts::Pause));
    assert_eq!(s.handlers.len(), 2);
    assert_eq!(s.handler_kind(&s.handlers[0]), Some(HandlerKind::Exclusive));
    assert_eq!(s.handler_kind(&s.handlers[1]), Some(HandlerKind::Shared));
    let input = s.handlers[0].input.as_ref().unwrap();
    assert_eq!(input.content_type.as_deref(), Some("application/json"));
    assert_eq!(input.required, Some(false));
    assert_eq!(s.handlers[1].input, Some(Default::default()));

    // Serializing and re-parsing is lossless.
    let again = serde_json::to_vec(&e).unwrap();
    assert_eq!(discovery::parse_manifest(&again).unwrap(), e);
}

#[test]
fn manifest_is_lenient_about_unknown_fields_and_optional_ones() {
    let json = r#"{"protocolMode":"REQUEST_RESPONSE","minProtocolVersion":5,"maxProtocolVersion":6,
        "futureField":{"x":1},"lambdaCompression":"zstd",
        "services":[
          {"name":"Greeter","ty":"SERVICE","handlers":[{"name":"greet","somethingNew":true}],
           "documentation":"hi","metadata":{"a":"b"},"abortTimeout":1,"journalRetention":2,
           "idempotencyRetention":3,"enableLazyState":true,"ingressPrivate":false,
           "retryPolicyInitialInterval":10,"retryPolicyMaxInterval":20,
           "retryPolicyExponentiationFactor":1.5,"retryPolicyOnMaxAttempts":"KILL"},
          {"name":"Flow","ty":"WORKFLOW","handlers":[
            {"name":"run","ty":"WORKFLOW","workflowCompletionRetention":86400000,
             "input":{"jsonSchema":{"type":"object"}}},
            {"name":"status"},
            {"name":"signal","ty":"SHARED","idempotencyRetention":5}]}]}"#;
    let e = discovery::parse_manifest(json.as_bytes()).unwrap();
    assert_eq!(e.protocol_mode, Some(ProtocolMode::RequestResponse));
    let greeter = &e.services[0];
    assert_eq!(greeter.handler_kind(&greeter.handlers[0]), Some(HandlerKind::Service));
    assert_eq!(greeter.metadata.get("a").map(String::as_str), Some("b"));
    assert_eq!(greeter.retry_policy.exponentiation_factor, Some(1.5));
    let flow = &e.services[1];
    let kinds: Vec<_> = flow.handlers.iter().map(|h| flow.handler_kind(h).unwrap()).collect();
    assert_eq!(
        kinds,
        [HandlerKind::WorkflowRun, HandlerKind::WorkflowShared, HandlerKind::WorkflowShared]
    );
    assert!(kinds[0].can_write_state() && kinds[0].can_use_promises() && kinds[0].is_exclusive());
    assert!(
        kinds[1].can_read_state() && !kinds[1].can_write_state() && kinds[1].can_use_promises()
    );
    assert!(!HandlerKind::Service.is_keyed() && !HandlerKind::Shared.can_write_state());
}

#[test]
fn invalid_manifests_are_rejected() {
    let base = |services: &str| {
        format!(
            r#"{{"protocolMode":"BIDI_STREAM","minProtocolVersion":5,"maxProtocolVersion":7,"services":[{services}]}}"#
        )
    };
    let svc = |name: &str, ty: &str, handlers: &str| {
        format!(r#"{{"name":"{name}","ty":"{ty}","handlers":[{handlers}]}}"#)
    };
    let cases: Vec<(String, &str)> = vec![
        (r#"{"minProtocolVersion":5,"maxProtocolVersion":7,"services":[]}"#.into(), "manifest_missing_protocol_mode"),
        (r#"{"protocolMode":"BIDI_STREAM","minProtocolVersion":1,"maxProtocolVersion":4,"services":[]}"#.into(), "manifest_unsupported_versions"),
        (r#"{"protocolMode":"BIDI_STREAM","minProtocolVersion":8,"maxProtocolVersion":9,"services":[]}"#.into(), "manifest_unsupported_versions"),
        (r#"{"protocolMode":"BIDI_STREAM","minProtocolVersion":7,"maxProtocolVersion":5,"services":[]}"#.into(), "manifest_invalid_version_range"),
        (r#"{"protocolMode":"BIDI_STREAM","minProtocolVersion":0,"maxProtocolVersion":5,"services":[]}"#.into(), "manifest_invalid_version_range"),
        (r#"{"protocolMode":"SOMETIMES","minProtocolVersion":5,"maxProtocolVersion":7,"services":[]}"#.into(), "manifest_json"),
        ("not json".into(), "manifest_json"),
        (r#"{"protocolMode":"BIDI_STREAM","minProtocolVersion":5}"#.into(), "manifest_json"),
        (base(&svc("1bad", "SERVICE", "")), "manifest_invalid_service_name"),
        (base(&svc("a b", "SERVICE", "")), "manifest_invalid_service_name"),
        (base(&svc("RestateThing", "SERVICE", "")), "manifest_reserved_service_name"),
        (base(&svc("openapi", "SERVICE", "")), "manifest_reserved_service_name"),
        (base(&format!("{},{}", svc("A", "SERVICE", ""), svc("A", "WORKFLOW", ""))), "manifest_duplicate_service"),
        (base(&svc("A", "SERVICE", r#"{"name":"a.b"}"#)), "manifest_invalid_handler_name"),
        (base(&svc("A", "SERVICE", r#"{"name":"h"},{"name":"h"}"#)), "manifest_duplicate_handler"),
        (base(&svc("A", "SERVICE", r#"{"name":"h","ty":"EXCLUSIVE"}"#)), "manifest_invalid_handler_type"),
        (base(&svc("A", "SERVICE", r#"{"name":"h","ty":"WORKFLOW"}"#)), "manifest_invalid_handler_type"),
        (base(&svc("A", "VIRTUAL_OBJECT", r#"{"name":"h","ty":"WORKFLOW"}"#)), "manifest_invalid_handler_type"),
        (base(&svc("A", "WORKFLOW", r#"{"name":"h","ty":"EXCLUSIVE"}"#)), "manifest_invalid_handler_type"),
        (base(&svc("A", "WORKFLOW", r#"{"name":"h","workflowCompletionRetention":1}"#)), "manifest_workflow_retention_not_allowed"),
        (base(&svc("A", "WORKFLOW", r#"{"name":"h","ty":"WORKFLOW","idempotencyRetention":1}"#)), "manifest_idempotency_retention_not_allowed"),
        (
            base(r#"{"name":"A","ty":"SERVICE","ingressPrivate":true,"handlers":[{"name":"h","ingressPrivate":false}]}"#),
            "manifest_public_handler_in_private_service",
        ),
    ];
    for (json, code) in cases {
        let err = discovery::parse_manifest(json.as_bytes()).unwrap_err();
        assert_eq!(err.code(), code, "{json} -> {err}");
        assert!(!err.is_retryable());
        assert!(err.to_string().contains(';'), "error says what to do: {err}");
    }
}

// ---------------------------------------------------------------------------------------------
// Discovery client against an in-process h2c server.

mod h2c_server {
    use std::convert::Infallible;
    use std::net::SocketAddr;

    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::service::service_fn;
    use hyper::{Request, Response};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use ratchet::protocol::version::DISCOVERY_ACCEPT;
    use tokio::net::TcpListener;

    /// Serves HTTP/2 only (like the Rust SDK): answers `/discover` and `/prefix/discover` with
    /// `content_type` and `body`; 404 elsewhere, 400/415 if the request headers are wrong.
    pub async fn spawn(content_type: &'static str, body: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                tokio::spawn(async move {
                    let service =
                        service_fn(move |req: Request<hyper::body::Incoming>| async move {
                            let header =
                                |name: &str| req.headers().get(name).map(|v| v.as_bytes().to_vec());
                            let status = if header("x-custom").as_deref() != Some(b"yes") {
                                400 // additional headers must be forwarded
                            } else if header("accept").as_deref()
                                != Some(DISCOVERY_ACCEPT.as_bytes())
                            {
                                415 // the accept header must list v1..v4 and not be overridden
                            } else if matches!(req.uri().path(), "/discover" | "/prefix/discover") {
                                200
                            } else {
                                404
                            };
                            let resp = Response::builder()
                                .status(status)
                                .header("content-type", content_type)
                                .header("x-restate-server", "test-sdk/1.0")
                                .body(Full::new(Bytes::from_static(body.as_bytes())));
                            Ok::<_, Infallible>(resp.unwrap())
                        });
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        addr
    }
}

fn custom_headers() -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    h.insert("x-custom", http::HeaderValue::from_static("yes"));
    h.insert("accept", http::HeaderValue::from_static("text/plain")); // must not override
    h
}

#[tokio::test]
async fn discover_over_h2c() {
    let addr =
        h2c_server::spawn("application/vnd.restate.endpointmanifest.v4+json", EXAMPLE_MANIFEST)
            .await;
    let uri: http::Uri = format!("http://{addr}/prefix/").parse().unwrap();
    let found = discovery::discover(&uri, &custom_headers(), None).await.unwrap();
    assert_eq!(found.manifest_version, ManifestVersion::V4);
    assert_eq!(found.http_version, http::Version::HTTP_2);
    assert_eq!(found.server.as_deref(), Some("test-sdk/1.0"));
    assert_eq!(found.endpoint.services[0].name, "Counter");
}

#[tokio::test]
async fn discover_reports_what_to_do() {
    // Wrong path prefix: the SDK answers 404.
    let addr =
        h2c_server::spawn("application/vnd.restate.endpointmanifest.v4+json", EXAMPLE_MANIFEST)
            .await;
    let uri: http::Uri = format!("http://{addr}/wrong?q=1").parse().unwrap();
    let err = discovery::discover(&uri, &custom_headers(), None).await.unwrap_err();
    assert!(matches!(err, DiscoveryError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("check the path"), "{err}");

    let addr = h2c_server::spawn("application/json", EXAMPLE_MANIFEST).await;
    let err =
        discovery::discover(&format!("http://{addr}").parse().unwrap(), &custom_headers(), None)
            .await
            .unwrap_err();
    assert!(matches!(err, DiscoveryError::BadContentType { .. }), "{err}");

    let addr = h2c_server::spawn("application/vnd.restate.endpointmanifest.v3+json", "{}").await;
    let err =
        discovery::discover(&format!("http://{addr}").parse().unwrap(), &custom_headers(), None)
            .await
            .unwrap_err();
    assert_eq!(err.code(), "manifest_json", "{err}");

    // Nothing listens on this port (bound, then dropped).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let uri: http::Uri = format!("http://127.0.0.1:{port}").parse().unwrap();
    let err = discovery::discover(&uri, &http::HeaderMap::new(), None).await.unwrap_err();
    assert!(matches!(err, DiscoveryError::Unreachable { .. }), "{err}");
    assert!(err.is_retryable());
    assert!(err.to_string().contains("make sure the service is running and reachable"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Request identity: what a signed discovery and a signed attempt put on the wire.

/// An HTTP/2-only server that records the path and headers of every request and answers
/// `/discover` with the example manifest and anything else with an empty V5 response.
async fn spawn_recorder() -> (std::net::SocketAddr, Arc<Mutex<Vec<(String, http::HeaderMap)>>>) {
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let record = record.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let path = req.uri().path().to_string();
                    record.lock().unwrap().push((path.clone(), req.headers().clone()));
                    async move {
                        let (ct, body) = if path.ends_with("/discover") {
                            ("application/vnd.restate.endpointmanifest.v4+json", EXAMPLE_MANIFEST)
                        } else {
                            (ServiceProtocolVersion::V5.content_type(), "")
                        };
                        let resp = http::Response::builder()
                            .header("content-type", ct)
                            .body(http_body_util::Full::new(Bytes::from_static(body.as_bytes())));
                        Ok::<_, std::convert::Infallible>(resp.unwrap())
                    }
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

/// The claims of a request's token, after checking its signature with `public`.
fn verified_claims(
    headers: &http::HeaderMap,
    public: &ed25519_dalek::VerifyingKey,
) -> serde_json::Value {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use ed25519_dalek::Verifier as _;
    assert_eq!(headers.get(identity::SIGNATURE_SCHEME_HEADER).unwrap(), "v1");
    assert_eq!(headers.get_all(identity::JWT_HEADER).iter().count(), 1);
    let token = headers.get(identity::JWT_HEADER).unwrap().to_str().unwrap();
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let signature =
        ed25519_dalek::Signature::from_slice(&URL_SAFE_NO_PAD.decode(signature).unwrap()).unwrap();
    public.verify(signed.as_bytes(), &signature).expect("the signature verifies");
    let claims = signed.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap()
}

#[tokio::test]
async fn signed_requests_carry_the_path_relative_to_the_deployment() {
    use ratchet::invoker::{Target, Transport as _};
    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let public = key.verifying_key();
    let signer = identity::RequestSigner::new(key, Duration::from_secs(60));
    let (addr, seen) = spawn_recorder().await;

    // Discovery under a path prefix; a forged token among the additional headers is replaced.
    let uri: http::Uri = format!("http://{addr}/prefix/").parse().unwrap();
    let mut extra = custom_headers();
    extra.insert(identity::JWT_HEADER, http::HeaderValue::from_static("forged"));
    discovery::discover(&uri, &extra, Some(&signer)).await.unwrap();
    // Unsigned: no identity header at all.
    discovery::discover(&uri, &custom_headers(), None).await.unwrap();

    // An attempt of a keyed handler on a deployment with a path prefix.
    let deployment = ratchet::schema::Deployment {
        id: "dp".into(),
        uri: format!("http://{addr}/prefix"),
        bidi: false,
        http_version: "HTTP/2.0".into(),
        min_protocol_version: 5,
        max_protocol_version: 5,
        sdk_version: None,
        additional_headers: BTreeMap::new(),
        metadata: BTreeMap::new(),
        created_ms: 0,
        services: Vec::new(),
    };
    let target = Target {
        deployment,
        version: ServiceProtocolVersion::V5,
        service: "Counter".into(),
        handler: "add".into(),
        invocation_id: "inv_1".into(),
        key: Some("k/1".into()),
    };
    let transport = ratchet::invoker::http::Http2::new(Some(Arc::new(signer)));
    let conn = transport.open(&target, Bytes::new(), false).await.unwrap();
    drop(conn);

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    let (path, headers) = &seen[0];
    assert_eq!(path, "/prefix/discover");
    let claims = verified_claims(headers, &public);
    assert_eq!(claims["aud"], "/discover");
    assert!(claims.get("sub").is_none(), "{claims}");
    let (_, headers) = &seen[1];
    assert!(headers.get(identity::SIGNATURE_SCHEME_HEADER).is_none());
    assert!(headers.get(identity::JWT_HEADER).is_none());
    let (path, headers) = &seen[2];
    assert_eq!(path, "/prefix/invoke/Counter/add");
    let claims = verified_claims(headers, &public);
    assert_eq!(claims["aud"], "/invoke/Counter/add");
    assert_eq!(claims["sub"], "k/1");
    let (iat, nbf, exp) = (claims["iat"].as_u64(), claims["nbf"].as_u64(), claims["exp"].as_u64());
    assert_eq!((nbf, exp), (iat.map(|t| t - 60), iat.map(|t| t + 60)));
}

// ---------------------------------------------------------------------------------------------
// No-panic smoke loop over arbitrary bytes.

struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Valid encodings to mutate, so the loop also explores near-valid inputs.
fn seeds() -> Vec<(u16, Vec<u8>)> {
    let mut v = vec![
        (MessageType::START, start_message().encode_to_vec()),
        (
            MessageType::SUSPENSION,
            SuspensionMessage {
                awaiting_on: Some(future()),
                waiting_completions: vec![1],
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            MessageType::ERROR,
            ErrorMessage {
                code: 500,
                message: "m".into(),
                next_retry_delay: Some(1),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
    ];
    v.extend(all_commands().iter().map(|c| (c.message_type(), c.encode_to_vec())));
    v.extend(all_notifications().into_iter().map(|(ty, n)| (ty, n.encode_to_vec())));
    v
}

fn exercise_decoders(ty: u16, payload: &[u8]) {
    let bytes = Bytes::copy_from_slice(payload);
    let _ = StartMessage::decode(bytes.clone());
    let _ = SuspensionMessage::decode(bytes.clone());
    let _ = ErrorMessage::decode(bytes.clone());
    let _ = Notification::decode(bytes.clone());
    let _ = codec::decode_message(ty, bytes.clone());
    let _ = codec::decode_notification(ty, bytes.clone());
    if let Ok(text) = std::str::from_utf8(payload) {
        let _ = text.parse::<InvocationId>();
        let _ = text.parse::<AwakeableId>();
        let _ = text.parse::<DeploymentId>();
        let _ = discovery::parse_manifest(payload);
    }
    let _ = AwakeableId::from_bytes(payload);
}

#[test]
fn arbitrary_bytes_never_panic() {
    const ITERATIONS: usize = 100_000;
    let mut rng = SplitMix(0x5EED_0F7A_7C4E);
    let seeds = seeds();
    let mut frames_decoded = 0usize;
    for _ in 0..ITERATIONS {
        // Random or mutated-valid payload.
        let (ty, payload) = if rng.below(2) == 0 {
            let len = rng.below(64);
            (rng.next() as u16, rng.bytes(len))
        } else {
            let (ty, mut p) = seeds[rng.below(seeds.len())].clone();
            for _ in 0..=rng.below(4) {
                match rng.below(3) {
                    0 if !p.is_empty() => {
                        let i = rng.below(p.len());
                        p[i] ^= 1 << rng.below(8);
                    }
                    1 if !p.is_empty() => p.truncate(rng.below(p.len())),
                    _ => {
                        let i = rng.below(p.len() + 1);
                        p.insert(i, rng.next() as u8);
                    }
                }
            }
            (ty, p)
        };
        exercise_decoders(ty, &payload);

        // The same bytes as a frame stream, fed in random chunks to a small-limit decoder.
        let mut decoder = Decoder::with_message_bytes_max(1 + rng.below(128) as u32);
        let mut stream = payload.clone();
        if rng.below(2) == 0 {
            let mut framed = BytesMut::new();
            framing::encode_frame(ty, 0, &payload, &mut framed);
            stream = framed.to_vec();
        }
        let mut at = 0;
        'feed: while at < stream.len() {
            let n = 1 + rng.below(stream.len() - at);
            decoder.push(&stream[at..at + n]);
            at += n;
            loop {
                match decoder.next_frame() {
                    Ok(Some(frame)) => {
                        frames_decoded += 1;
                        exercise_decoders(frame.ty, &frame.payload);
                    }
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
            }
        }
        let _ = decoder.finish();
    }
    assert!(frames_decoded > ITERATIONS / 10, "the loop reaches the payload decoders");
}
