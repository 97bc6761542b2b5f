//! Oracles shared by the robustness tests and the cargo-fuzz target
//! (`transport/fuzz`): feed arbitrary bytes to every decode entry point.
//!
//! [`exercise_decoders`] panics only if the codec breaks its contract: a decoder
//! panicking, or a value that decodes but does not survive encode → decode unchanged.
//! Decode errors are expected and ignored.

use std::fmt::Debug;

use super::codes::OpCode;
use super::connect::{ConnectRequest, ConnectResponse};
use super::data::{Acl, Stat};
use super::frame::{FrameBuffer, FrameDecoder};
use super::header::{ReplyHeader, RequestHeader};
use super::multi::{MultiRequest, MultiResponse};
use super::records::*;
use super::request::Request;
use super::response::Response;
use super::wire::Wire;

/// Runs `input` through every decoder; see the module docs.
pub fn exercise_decoders(input: &[u8]) {
    frames(input);
    connect(input);
    requests(input);
    responses(input);
    records(input);
}

/// A value that decoded must decode again, unchanged, from its own encoding.
fn assert_stable<T: Wire + PartialEq + Debug>(v: &T) {
    let bytes = v.to_bytes();
    assert_eq!(
        T::from_bytes_exact(&bytes).as_ref(),
        Ok(v),
        "unstable re-encoding"
    );
}

fn wire<T: Wire + PartialEq + Debug>(input: &[u8]) {
    if let Ok(v) = T::from_bytes(input) {
        assert_stable(&v);
    }
}

fn frames(input: &[u8]) {
    for max in [0, 16, super::frame::FRAME_BYTES_MAX_DEFAULT] {
        let _ = FrameDecoder::new(max).decode(input);
        let mut fb = FrameBuffer::new(FrameDecoder::new(max));
        for chunk in input.chunks(5) {
            fb.extend_from_slice(chunk);
            while let Ok(Some(body)) = fb.next_frame() {
                assert!(body.len() <= max, "frame over the limit");
            }
        }
    }
}

fn connect(input: &[u8]) {
    if let Ok(v) = ConnectRequest::decode(input) {
        assert_stable(&v);
    }
    if let Ok(v) = ConnectResponse::decode(input) {
        assert_stable(&v);
    }
}

fn requests(input: &[u8]) {
    let Ok((header, req)) = Request::decode_body(input) else {
        return;
    };
    let mut bytes = Vec::new();
    req.encode(header.xid, &mut bytes);
    assert_eq!(
        Request::decode_body(&bytes),
        Ok((header, req)),
        "unstable request"
    );
}

fn responses(input: &[u8]) {
    let Ok((header, rest)) = ReplyHeader::split(input) else {
        return;
    };
    for op in OpCode::ALL {
        let Ok(rsp) = Response::decode(*op, &header, rest) else {
            continue;
        };
        let mut bytes = Vec::new();
        rsp.encode(&header, &mut bytes);
        let (h, body) = ReplyHeader::split(&bytes).expect("own header decodes");
        assert_eq!(
            Response::decode(*op, &h, body),
            Ok(rsp),
            "unstable response"
        );
    }
}

fn records(input: &[u8]) {
    wire::<RequestHeader>(input);
    wire::<ReplyHeader>(input);
    wire::<Stat>(input);
    wire::<Vec<Acl>>(input);
    wire::<MultiRequest>(input);
    wire::<MultiResponse>(input);
    wire::<CreateRequest>(input);
    wire::<CreateTtlRequest>(input);
    wire::<SetDataRequest>(input);
    wire::<SetAclRequest>(input);
    wire::<ReconfigRequest>(input);
    wire::<AuthPacket>(input);
    wire::<SetWatches>(input);
    wire::<SetWatches2>(input);
    wire::<GetDataResponse>(input);
    wire::<GetAclResponse>(input);
    wire::<GetChildren2Response>(input);
    wire::<WhoAmIResponse>(input);
    wire::<WatcherEvent>(input);
}
