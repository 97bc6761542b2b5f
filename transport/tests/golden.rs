//! Golden tests: frames captured between real ZooKeeper 3.8 and real clients (Java
//! client and zkCli, kazoo, the C client) decode, and re-encode byte for byte.
//!
//! The frames live in `tests/golden/*.txt`, one file per TCP connection, written by
//! `tools/scripts/capture-golden.py` (see `tests/golden/README.md`). No ZooKeeper is
//! needed to run these tests: they only read the committed files.

mod common;

use common::golden::{golden_files, parse};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use transport::jute::*;

/// The body of a whole frame, checked by the frame decoder.
fn body_of<'a>(frame: &'a [u8], at: &str) -> &'a [u8] {
    match FrameDecoder::default().decode(frame) {
        Ok(FrameStatus::Frame { body, consumed }) => {
            assert_eq!(consumed, frame.len(), "{at}: frame has trailing bytes");
            body
        }
        other => panic!("{at}: not one whole frame: {other:?}"),
    }
}

/// What the golden files exercised, for the coverage assertions.
#[derive(Default)]
struct Seen {
    request_ops: BTreeSet<i32>,
    reply_ops: BTreeSet<i32>,
    multi_result_types: BTreeSet<i32>,
    error_codes: BTreeSet<i32>,
    frames: usize,
    notifications: usize,
}

/// Decodes every frame of one connection and checks the re-encoding is identical.
fn check_connection(path: &Path, seen: &mut Seen) {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let mut connected = (false, false);
    let mut outstanding: HashMap<i32, OpCode> = HashMap::new();
    for c in parse(path) {
        let at = format!("{name}:{}", c.line);
        let body = body_of(&c.frame, &at);
        let mut again = Vec::new();
        seen.frames += 1;
        if c.to_server && !connected.0 {
            connected.0 = true;
            let req = ConnectRequest::decode(body).unwrap_or_else(|e| panic!("{at}: {e}"));
            assert_eq!(
                req.read_only,
                Some(false),
                "{at}: 3.5+ clients send readOnly"
            );
            req.encode_frame(&mut again);
        } else if !c.to_server && !connected.1 {
            connected.1 = true;
            let rsp = ConnectResponse::decode(body).unwrap_or_else(|e| panic!("{at}: {e}"));
            assert_eq!(
                body.len(),
                37,
                "{at}: ZooKeeper's connect reply is 37 bytes"
            );
            assert_eq!(
                rsp.passwd.as_ref().map(Vec::len),
                Some(CONNECT_PASSWD_BYTES)
            );
            rsp.encode_frame(&mut again);
        } else if c.to_server {
            let (h, req) = Request::decode_body(body).unwrap_or_else(|e| panic!("{at}: {e}"));
            seen.request_ops.insert(h.op);
            if !matches!(req, Request::Ping | Request::Auth(_)) {
                let prev = outstanding.insert(h.xid, req.op_code());
                assert!(
                    prev.is_none(),
                    "{at}: xid {} reused while outstanding",
                    h.xid
                );
            }
            req.encode_frame(h.xid, &mut again);
        } else {
            let (h, rest) = ReplyHeader::split(body).unwrap_or_else(|e| panic!("{at}: {e}"));
            let op = outstanding
                .remove(&h.xid)
                .or_else(|| op_for_special_xid(h.xid))
                .unwrap_or_else(|| panic!("{at}: reply to xid {} not outstanding", h.xid));
            seen.reply_ops.insert(op.code());
            seen.error_codes.insert(h.err);
            let rsp = Response::decode(op, &h, rest).unwrap_or_else(|e| panic!("{at}: {e}"));
            check_reply_shape(&at, op, &h, &rsp, seen);
            rsp.encode_frame(&h, &mut again);
        }
        assert_eq!(hex(&again), hex(&c.frame), "{at}: re-encoding differs");
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Facts real clients depend on (see ZOOKEEPER-NOTES.md), checked on real replies.
fn check_reply_shape(at: &str, op: OpCode, h: &ReplyHeader, rsp: &Response, seen: &mut Seen) {
    match rsp {
        Response::Notification(ev) => {
            seen.notifications += 1;
            assert_eq!((h.zxid, h.err), (-1, 0), "{at}: notification header");
            assert_eq!(ev.state(), Some(KeeperState::SyncConnected), "{at}");
            assert!(ev.event_type().is_some(), "{at}: unknown event type");
        }
        Response::Multi(m) => {
            for r in &m.results {
                seen.multi_result_types.insert(r.type_code());
            }
            if op == OpCode::Multi && m.first_error().is_some() {
                check_failed_multi(at, m);
            }
        }
        Response::AddWatch(e) => assert_eq!(e.err, 0, "{at}: addWatch body"),
        _ => {}
    }
}

/// A failed multi: every result is an error; 0s, the failing code, then -2s.
fn check_failed_multi(at: &str, m: &MultiResponse) {
    let codes: Vec<i32> = m
        .results
        .iter()
        .map(|r| match r {
            OpResult::Error { err } => *err,
            other => panic!("{at}: non-error result {other:?} in a failed multi"),
        })
        .collect();
    let failing = codes.iter().position(|c| *c != 0).expect("a failing op");
    assert!(codes[..failing].iter().all(|c| *c == 0), "{at}: {codes:?}");
    let rest = &codes[failing + 1..];
    assert!(
        rest.iter()
            .all(|c| *c == ErrorCode::RuntimeInconsistency.code()),
        "{at}: {codes:?}"
    );
}

#[test]
fn golden_frames_decode_and_reencode_byte_for_byte() {
    let mut seen = Seen::default();
    for path in golden_files() {
        check_connection(&path, &mut seen);
    }
    let ops = |codes: &[OpCode]| codes.iter().map(|o| o.code()).collect::<BTreeSet<_>>();
    let must_see_requests = ops(&[
        OpCode::Create,
        OpCode::Create2,
        OpCode::CreateContainer,
        OpCode::CreateTtl,
        OpCode::Delete,
        OpCode::Exists,
        OpCode::GetData,
        OpCode::SetData,
        OpCode::GetAcl,
        OpCode::SetAcl,
        OpCode::GetChildren,
        OpCode::GetChildren2,
        OpCode::GetAllChildrenNumber,
        OpCode::GetEphemerals,
        OpCode::Sync,
        OpCode::Multi,
        OpCode::MultiRead,
        OpCode::Ping,
        OpCode::Auth,
        OpCode::SetWatches,
        OpCode::SetWatches2,
        OpCode::AddWatch,
        OpCode::CheckWatches,
        OpCode::RemoveWatches,
        OpCode::CloseSession,
        OpCode::WhoAmI,
    ]);
    let missing: Vec<_> = must_see_requests.difference(&seen.request_ops).collect();
    assert!(missing.is_empty(), "golden files lack opcodes {missing:?}");
    let must_see_results = ops(&[
        OpCode::Create,
        OpCode::Delete,
        OpCode::SetData,
        OpCode::Check,
        OpCode::GetData,
        OpCode::GetChildren,
        OpCode::Error,
    ]);
    let missing: Vec<_> = must_see_results
        .difference(&seen.multi_result_types)
        .collect();
    assert!(missing.is_empty(), "golden multi results lack {missing:?}");
    assert!(seen.notifications > 0, "no watch notifications captured");
    assert!(
        seen.error_codes.len() > 4,
        "few error replies: {:?}",
        seen.error_codes
    );
    assert!(seen.reply_ops.contains(&OpCode::Notification.code()));
    eprintln!(
        "{} golden frames; request ops {:?}; error codes {:?}",
        seen.frames, seen.request_ops, seen.error_codes
    );
}

/// The same bytes, streamed in odd-sized chunks through a [`FrameBuffer`], give the
/// same frames (a socket splits them anywhere).
#[test]
fn golden_streams_split_anywhere_into_the_same_frames() {
    for path in golden_files() {
        let frames = parse(&path);
        for to_server in [true, false] {
            let want: Vec<&[u8]> = frames
                .iter()
                .filter(|c| c.to_server == to_server)
                .map(|c| &c.frame[4..])
                .collect();
            let stream: Vec<u8> = frames
                .iter()
                .filter(|c| c.to_server == to_server)
                .flat_map(|c| c.frame.iter().copied())
                .collect();
            for chunk in [1, 7, 64, 4096] {
                let mut fb = FrameBuffer::new(FrameDecoder::default());
                let mut got: Vec<Vec<u8>> = Vec::new();
                for piece in stream.chunks(chunk) {
                    fb.extend_from_slice(piece);
                    while let Some(body) = fb.next_frame().expect("valid stream") {
                        got.push(body.to_vec());
                    }
                }
                assert_eq!(got, want, "{}: chunk {chunk}", path.display());
            }
        }
    }
}

/// A pre-3.4 client sends no readOnly byte and expects none back: derive such a
/// client's handshake from every real one and check both directions.
#[test]
fn old_clients_without_read_only_byte_get_a_36_byte_reply() {
    for path in golden_files() {
        let Some(first) = parse(&path).into_iter().find(|c| c.to_server) else {
            continue;
        };
        let body = &first.frame[4..];
        let old = ConnectRequest::decode(&body[..body.len() - 1]).unwrap();
        assert_eq!(old.read_only, None, "{}", path.display());
        let rsp = ConnectResponse::for_request(&old, 4000, 0x77, [3; 16], false);
        let mut frame = Vec::new();
        rsp.encode_frame(&mut frame);
        assert_eq!(frame.len(), 4 + 36, "{}", path.display());
        assert_eq!(ConnectResponse::decode(&frame[4..]), Ok(rsp));
    }
}
