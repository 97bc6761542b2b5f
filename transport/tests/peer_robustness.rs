//! Damaged, hostile and random peer streams: every error is caught, named and
//! distinct; nothing panics; memory stays bounded by the frame limit.

mod alloc_count;
mod peer_common;

use alloc_count::largest_allocation;
use peer_common::*;
use proptest::prelude::*;
use transport::peer::*;

fn decode_one(bytes: &[u8]) -> Result<Vec<PeerMsg>, PeerFrameError> {
    decode_chunks(&mut PeerDecoder::new(), [bytes])
}

#[test]
fn every_single_bit_flip_is_detected() {
    let msgs = [
        PeerMsg::Ack(Ack { zxid: zxid(1, 2) }),
        PeerMsg::UpToDate,
        one_of_each()[0].clone(), // a vote
        PeerMsg::Proposal(Proposal {
            zxid: zxid(1, 3),
            txn: vec![0x5a; 100],
        }),
        one_of_each()[15].clone(), // a ping with sessions
    ];
    for m in msgs {
        let wire = encode_all(std::slice::from_ref(&m));
        for bit in 0..wire.len() * 8 {
            let mut bad = wire.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let got = decode_one(&bad);
            assert!(
                got.is_err(),
                "{}: flip of bit {bit} went unnoticed: {got:?}",
                m.name()
            );
        }
    }
}

#[test]
fn header_flips_are_caught_by_the_header_alone() {
    let wire = encode_all(&[PeerMsg::Ack(Ack { zxid: 1 })]);
    for bit in 0..PEER_FRAME_HEADER_BYTES * 8 {
        let mut bad = wire.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        let err = decode_one(&bad[..PEER_FRAME_HEADER_BYTES]).unwrap_err();
        assert!(
            !matches!(
                err,
                PeerFrameError::BodyCrc { .. } | PeerFrameError::Invalid { .. }
            ),
            "bit {bit}: {err}"
        );
    }
}

#[test]
fn an_oversize_length_is_refused_before_any_body_byte() {
    let h = header(
        PEER_FRAME_MAGIC,
        PEER_FRAME_VERSION,
        0,
        (PEER_FRAME_BYTES_MAX + 1) as u32,
        0,
    );
    let mut d = PeerDecoder::new();
    let mut head = &h[..15];
    assert!(
        matches!(d.decode(&mut head), Ok(None)),
        "no verdict before the header is in"
    );
    let mut last = &h[15..];
    let err = d.decode(&mut last).unwrap_err();
    assert_eq!(
        err,
        PeerFrameError::TooLarge {
            offset: 0,
            len: PEER_FRAME_BYTES_MAX + 1,
            max: PEER_FRAME_BYTES_MAX
        }
    );
    assert!(d.buffer_capacity() < 1024, "the body was never reserved");
    let mut d = PeerDecoder::with_frame_bytes_max(64);
    let h = header(PEER_FRAME_MAGIC, PEER_FRAME_VERSION, 0, 65, 0);
    assert!(matches!(
        decode_chunks(&mut d, [&h[..]]),
        Err(PeerFrameError::TooLarge {
            len: 65,
            max: 64,
            ..
        })
    ));
}

#[test]
fn errors_are_distinct_and_name_the_frame_offset() {
    let good = encode_all(&[PeerMsg::UpToDate]);
    let at = good.len() as u64; // the bad frame follows a good one
    let with = |bad: &[u8]| {
        let mut s = good.to_vec();
        s.extend_from_slice(bad);
        let mut wire = rkyv::util::AlignedVec::<16>::new();
        wire.extend_from_slice(&s);
        decode_one(&wire).unwrap_err()
    };
    let ok_body = &good[PEER_FRAME_HEADER_BYTES..];
    let crc = crc32c::crc32c(ok_body);
    let len = 8; // any length: these headers fail before the body is looked at
    let cases = [
        (
            header(0x1234, 1, 0, len, crc),
            PeerFrameError::BadMagic {
                offset: at,
                found: 0x1234,
            },
        ),
        (
            header(PEER_FRAME_MAGIC, 9, 0, len, crc),
            PeerFrameError::UnsupportedVersion {
                offset: at,
                found: 9,
            },
        ),
        (
            header(PEER_FRAME_MAGIC, 1, 4, len, crc),
            PeerFrameError::UnknownFlags {
                offset: at,
                flags: 4,
            },
        ),
    ];
    for (h, want) in cases {
        assert_eq!(with(&h), want);
    }
    let mut h = header(PEER_FRAME_MAGIC, 1, 0, len, crc);
    h[12] ^= 0xff;
    assert!(matches!(with(&h), PeerFrameError::HeaderCrc { offset, .. } if offset == at));
    let mut frame = good.to_vec();
    frame[20] ^= 0x10;
    let e = with(&frame);
    assert!(
        matches!(e, PeerFrameError::BodyCrc { offset, .. } if offset == at),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with(&format!("peer frame at stream byte {at}: body crc"))
    );
}

#[test]
fn a_well_framed_non_archive_is_invalid_not_a_panic() {
    let mut tag_out_of_range = vec![0u8; 16];
    tag_out_of_range[0] = 200;
    for body in [vec![], vec![0xff; 3], tag_out_of_range, vec![0xff; 64]] {
        let wire = frame_around(&body);
        match decode_one(&wire) {
            Err(PeerFrameError::Invalid {
                offset: 0,
                len,
                reason,
            }) => {
                assert_eq!(len, body.len());
                assert!(!reason.is_empty());
            }
            other => panic!("{body:?}: {other:?}"),
        }
    }
}

#[test]
fn an_error_poisons_the_decoder() {
    let mut d = PeerDecoder::new();
    let first = decode_chunks(&mut d, [&[0u8; 16][..]]).unwrap_err();
    assert!(matches!(first, PeerFrameError::BadMagic { .. }));
    assert_eq!(d.poisoned(), Some(&first));
    let good = encode_all(&[PeerMsg::UpToDate]);
    assert_eq!(decode_chunks(&mut d, [&good[..]]), Err(first));
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn random_garbage_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..2048),
        chunk in 1usize..300,
    ) {
        let mut d = PeerDecoder::new();
        let _ = decode_chunks(&mut d, bytes.chunks(chunk));
        prop_assert!(d.buffer_capacity() <= frame_bytes(PEER_FRAME_BYTES_MAX));
    }

    /// Valid headers (so the decoder buffers) around random bodies of random announced
    /// lengths: allocation never exceeds one frame of the decoder's limit.
    #[test]
    fn framed_garbage_allocates_at_most_one_frame(
        bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..600), 1..6),
        chunk in 1usize..200,
    ) {
        let max = 512;
        let mut wire = rkyv::util::AlignedVec::<16>::new();
        for b in &bodies {
            wire.extend_from_slice(&frame_around(b));
        }
        let mut d = PeerDecoder::with_frame_bytes_max(max);
        let mut result: Result<(), PeerFrameError> = Ok(());
        let largest = largest_allocation(|| {
            for mut c in wire.chunks(chunk) {
                loop {
                    match d.decode(&mut c) {
                        Ok(Some(_)) => continue,
                        Ok(None) => break,
                        Err(e) => { result = Err(e); return; }
                    }
                }
            }
        });
        prop_assert!(largest <= frame_bytes(max), "allocated {} B (result {:?})", largest, result);
        prop_assert!(d.buffer_capacity() <= frame_bytes(max));
    }

    /// Random mutations of real streams: some error or the same messages, never a panic.
    #[test]
    fn mutated_streams_fail_cleanly(
        msgs in prop::collection::vec(peer_msg(), 1..6),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        chunk in 1usize..100,
    ) {
        let clean = encode_all(&msgs);
        let mut wire = clean.clone();
        for (i, x) in &flips {
            let at = i.index(wire.len());
            wire[at] ^= x | 1;
        }
        prop_assume!(wire[..] != clean[..], "two flips cancelled out");
        let got = decode_chunks(&mut PeerDecoder::new(), wire.chunks(chunk));
        prop_assert!(got.is_err(), "mutations went unnoticed");
    }
}
