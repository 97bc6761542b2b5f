//! Peer messages survive framing and decoding unchanged, however TCP splits the stream,
//! and are read in place (zero-copy) when their frame arrives whole and aligned.

mod peer_common;

use peer_common::*;
use proptest::prelude::*;
use rkyv::util::AlignedVec;
use transport::peer::*;

#[test]
fn every_variant_round_trips() {
    let msgs = one_of_each();
    for m in &msgs {
        let wire = encode_all(std::slice::from_ref(m));
        let got = decode_chunks(&mut PeerDecoder::new(), [&wire[..]]).unwrap();
        assert_eq!(got, std::slice::from_ref(m), "{}", m.name());
    }
}

#[test]
fn a_stream_split_at_every_byte_decodes_identically() {
    let msgs = one_of_each();
    let wire = encode_all(&msgs);
    for cut in 0..=wire.len() {
        let (a, b) = wire.split_at(cut);
        let got = decode_chunks(&mut PeerDecoder::new(), [a, b]).unwrap();
        assert_eq!(got, msgs, "split at byte {cut}");
    }
}

#[test]
fn a_stream_fed_byte_by_byte_decodes_identically() {
    let msgs = one_of_each();
    let wire = encode_all(&msgs);
    let mut d = PeerDecoder::new();
    let got = decode_chunks(&mut d, wire.chunks(1)).unwrap();
    assert_eq!(got, msgs);
    assert_eq!(d.pending_bytes(), 0);
    assert_eq!(d.stream_offset(), wire.len() as u64);
}

#[test]
fn many_frames_in_one_buffer_are_all_read_in_place() {
    let msgs: Vec<PeerMsg> = (0..1000)
        .map(|i| PeerMsg::Ack(Ack { zxid: zxid(1, i) }))
        .collect();
    let wire = encode_all(&msgs);
    let range = wire.as_ptr_range();
    let mut d = PeerDecoder::new();
    let mut chunk: &[u8] = &wire;
    let mut n = 0;
    while let Some(msg) = d.decode(&mut chunk).unwrap() {
        assert!(range.contains(&(msg as *const ArchivedPeerMsg as *const u8)));
        assert!(msg == &msgs[n]);
        n += 1;
    }
    assert_eq!(n, msgs.len());
    assert_eq!(
        d.buffer_capacity(),
        0,
        "nothing was copied into the decoder"
    );
}

fn proposal(txn_len: usize) -> PeerMsg {
    PeerMsg::Proposal(Proposal {
        zxid: zxid(2, 9),
        txn: (0..txn_len).map(|i| i as u8).collect(),
    })
}

fn txn_of(msg: &ArchivedPeerMsg) -> &[u8] {
    match msg {
        ArchivedPeerMsg::Proposal(p) => p.txn.as_slice(),
        other => panic!("expected a proposal, got {}", other.name()),
    }
}

#[test]
fn proposal_txn_is_a_slice_of_the_receive_buffer() {
    let mut wire = encode_all(&[PeerMsg::UpToDate]);
    let txn_at = wire.len() + PEER_FRAME_HEADER_BYTES;
    encode_frame(&proposal(1000), &mut wire).unwrap();
    let mut d = PeerDecoder::new();
    let mut chunk: &[u8] = &wire;
    assert!(d.decode(&mut chunk).unwrap().is_some());
    let txn = txn_of(d.decode(&mut chunk).unwrap().unwrap());
    assert_eq!(txn.as_ptr(), wire[txn_at..].as_ptr(), "txn read in place");
    assert_eq!(txn, &(0..1000).map(|i| i as u8).collect::<Vec<_>>()[..]);
    assert!((txn.as_ptr() as usize).is_multiple_of(16), "txn 16-aligned");
}

#[test]
fn a_split_proposal_is_copied_once_and_stays_aligned() {
    let wire = encode_all(&[proposal(1000)]);
    let mut d = PeerDecoder::new();
    let (a, b) = wire.split_at(37);
    let mut chunk = a;
    assert!(d.decode(&mut chunk).unwrap().is_none());
    let mut chunk = b;
    let txn = txn_of(d.decode(&mut chunk).unwrap().unwrap());
    assert!(
        !wire.as_ptr_range().contains(&txn.as_ptr()),
        "from the decoder's buffer"
    );
    assert!((txn.as_ptr() as usize).is_multiple_of(16));
    assert_eq!(txn.len(), 1000);
}

#[test]
fn a_misaligned_chunk_is_decoded_through_the_buffer() {
    let wire = encode_all(&one_of_each());
    let mut shifted = AlignedVec::<16>::new();
    shifted.extend_from_slice(&[0]);
    shifted.extend_from_slice(&wire);
    let got = decode_chunks(&mut PeerDecoder::new(), [&shifted[1..]]).unwrap();
    assert_eq!(got, one_of_each());
}

#[test]
fn spare_and_filled_read_a_large_frame_without_a_copy() {
    let wire = encode_all(&[proposal(100_000), PeerMsg::UpToDate]);
    let mut d = PeerDecoder::new();
    let mut first: &[u8] = &wire[..1000];
    assert!(d.decode(&mut first).unwrap().is_none());
    let mut at = 1000;
    while d.missing_bytes() > 0 && d.pending_bytes() >= PEER_FRAME_HEADER_BYTES {
        let spare = d.spare();
        let n = spare.len().min(4096); // a socket read of at most 4 KiB
        spare[..n].copy_from_slice(&wire[at..at + n]);
        d.filled(n);
        at += n;
    }
    let mut empty: &[u8] = &[];
    assert_eq!(
        txn_of(d.decode(&mut empty).unwrap().unwrap()).len(),
        100_000
    );
    let got = decode_chunks(&mut d, [&wire[at..]]).unwrap();
    assert_eq!(got, [PeerMsg::UpToDate]);
}

#[test]
fn spare_reads_a_header_too() {
    let wire = encode_all(&[PeerMsg::Ack(Ack { zxid: 5 })]);
    let mut d = PeerDecoder::new();
    assert_eq!(d.missing_bytes(), PEER_FRAME_HEADER_BYTES);
    let spare = d.spare();
    spare[..10].copy_from_slice(&wire[..10]);
    d.filled(10);
    assert_eq!(d.missing_bytes(), 6);
    let got = decode_chunks(&mut d, [&wire[10..]]).unwrap();
    assert_eq!(got, [PeerMsg::Ack(Ack { zxid: 5 })]);
}

#[test]
fn the_largest_payloads_fit_a_frame() {
    let big = [
        PeerMsg::Proposal(Proposal {
            zxid: 1,
            txn: vec![7; TXN_BYTES_MAX],
        }),
        PeerMsg::Inform(Inform {
            zxid: 1,
            txn: vec![7; TXN_BYTES_MAX],
        }),
        PeerMsg::Request(Request {
            session: 1,
            cxid: 2,
            op: 3,
            body: vec![7; REQUEST_BODY_BYTES_MAX],
        }),
        PeerMsg::SnapChunk(SnapChunk {
            offset: 0,
            bytes: vec![7; SNAP_CHUNK_BYTES_MAX],
        }),
        PeerMsg::Ping(Ping {
            zxid: 1,
            sessions: vec![
                SessionTouch {
                    session: 1,
                    timeout_ms: 2
                };
                PING_SESSIONS_MAX
            ],
            config: i64::MAX,
        }),
    ];
    for m in big {
        let mut out = AlignedVec::<16>::new();
        let len = encode_frame(&m, &mut out).unwrap();
        let body = len - PEER_FRAME_HEADER_BYTES;
        assert!(
            body <= m.payload_bytes() + PEER_MSG_OVERHEAD_BYTES_MAX,
            "{}: {body} B body for {} B of payload",
            m.name(),
            m.payload_bytes()
        );
        let got = decode_chunks(&mut PeerDecoder::new(), out.chunks(64 << 10)).unwrap();
        assert!(got == [m.clone()], "{}", m.name());
    }
}

#[test]
fn payloads_start_16_aligned_in_their_frame() {
    for m in one_of_each() {
        let wire = encode_all(std::slice::from_ref(&m));
        let mut d = PeerDecoder::new();
        let mut chunk: &[u8] = &wire;
        let payload = match d.decode(&mut chunk).unwrap().unwrap() {
            ArchivedPeerMsg::Proposal(p) => p.txn.as_slice(),
            ArchivedPeerMsg::Inform(p) => p.txn.as_slice(),
            ArchivedPeerMsg::Request(r) => r.body.as_slice(),
            ArchivedPeerMsg::SnapChunk(c) => c.bytes.as_slice(),
            _ => continue,
        };
        assert_eq!(
            payload.as_ptr(),
            wire[PEER_FRAME_HEADER_BYTES..].as_ptr(),
            "{}",
            m.name()
        );
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_message_round_trips(m in peer_msg()) {
        let wire = encode_all(std::slice::from_ref(&m));
        let got = decode_chunks(&mut PeerDecoder::new(), [&wire[..]]).unwrap();
        prop_assert_eq!(got, vec![m]);
    }

    #[test]
    fn any_stream_in_any_chunks_round_trips(
        msgs in prop::collection::vec(peer_msg(), 0..12),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let wire = encode_all(&msgs);
        let mut at: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        at.extend([0, wire.len()]);
        at.sort_unstable();
        let chunks = at.windows(2).map(|w| &wire[w[0]..w[1]]);
        let mut d = PeerDecoder::new();
        let got = decode_chunks(&mut d, chunks).unwrap();
        prop_assert_eq!(got, msgs);
        prop_assert_eq!(d.pending_bytes(), 0);
    }
}

/// `decode_framed` gives back the exact bytes of each frame, read in place or
/// assembled from pieces, so a receiver can send a message on without encoding it
/// again (a CRAQ member forwarding an entry down the chain).
#[test]
fn decode_framed_returns_each_frame_as_it_was_sent() {
    let msgs = [PeerMsg::UpToDate, proposal(1000), proposal(3)];
    let mut frames = Vec::new();
    for m in &msgs {
        let mut f = rkyv::util::AlignedVec::<16>::new();
        encode_frame(m, &mut f).unwrap();
        frames.push(f.to_vec());
    }
    let wire = encode_all(&msgs);
    // In place: one chunk.
    let mut d = PeerDecoder::new();
    let mut chunk: &[u8] = &wire;
    for (i, f) in frames.iter().enumerate() {
        let (m, frame) = d.decode_framed(&mut chunk).unwrap().expect("a whole frame");
        assert!(m == &msgs[i]);
        assert_eq!(frame, &f[..], "frame {i} in place");
    }
    // Assembled: a few bytes at a time.
    let mut d = PeerDecoder::new();
    let mut got = Vec::new();
    for piece in wire.chunks(7) {
        let mut chunk = piece;
        while let Some((_, frame)) = d.decode_framed(&mut chunk).unwrap() {
            got.push(frame.to_vec());
        }
    }
    assert_eq!(got, frames, "frames assembled from pieces");
}
