//! Feeds arbitrary bytes to the peer frame decoder two ways:
//! - as a raw stream, cut into chunks at a fuzzer-chosen point (headers, crcs, limits);
//! - as the body of a frame whose header and crcs are made valid here, so arbitrary
//!   archives reach rkyv's bytecheck (random streams almost never pass the crcs).
//!
//! The oracle panics only if the decoder panics, or a message it accepted does not
//! survive deserialize → encode → decode unchanged. Decode errors are fine.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rkyv::rancor;
use rkyv::util::AlignedVec;
use transport::peer::{PEER_FRAME_MAGIC, PEER_FRAME_VERSION, PeerDecoder, PeerMsg, encode_frame};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    raw_stream(rest, cut as usize);
    framed_body(rest);
});

fn raw_stream(data: &[u8], cut: usize) {
    let mut stream = AlignedVec::<16>::new();
    stream.extend_from_slice(data);
    let (a, b) = stream.split_at(cut.min(stream.len()));
    let mut dec = PeerDecoder::new();
    for chunk in [a, b] {
        let mut chunk = chunk;
        while let Ok(Some(msg)) = dec.decode(&mut chunk) {
            check_roundtrip(msg);
        }
    }
}

fn framed_body(body: &[u8]) {
    let padded = (body.len() + 15) & !15;
    let mut frame = AlignedVec::<16>::with_capacity(16 + padded);
    let mut head = [0u8; 16];
    head[0..2].copy_from_slice(&PEER_FRAME_MAGIC.to_le_bytes());
    head[2] = PEER_FRAME_VERSION;
    head[4..8].copy_from_slice(&(body.len() as u32).to_le_bytes());
    let mut padded_body = body.to_vec();
    padded_body.resize(padded, 0);
    head[8..12].copy_from_slice(&crc32c::crc32c(&padded_body).to_le_bytes());
    let head_crc = crc32c::crc32c(&head[..12]);
    head[12..16].copy_from_slice(&head_crc.to_le_bytes());
    frame.extend_from_slice(&head);
    frame.extend_from_slice(&padded_body);
    let mut dec = PeerDecoder::new();
    let mut chunk: &[u8] = &frame;
    if let Ok(Some(msg)) = dec.decode(&mut chunk) {
        check_roundtrip(msg);
    }
}

fn check_roundtrip(msg: &transport::peer::ArchivedPeerMsg) {
    let owned: PeerMsg = rkyv::deserialize::<PeerMsg, rancor::Error>(msg)
        .expect("a validated archive deserializes");
    let mut out = AlignedVec::<16>::new();
    encode_frame(&owned, &mut out).expect("an accepted message re-encodes");
    let mut dec = PeerDecoder::new();
    let mut chunk: &[u8] = &out;
    let again = dec
        .decode(&mut chunk)
        .expect("a re-encoded message decodes")
        .expect("a whole frame is there");
    let again: PeerMsg = rkyv::deserialize::<PeerMsg, rancor::Error>(again).expect("deserializes");
    assert_eq!(owned, again, "decode -> encode -> decode changed the message");
}
