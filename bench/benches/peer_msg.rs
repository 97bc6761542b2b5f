//! Peer protocol hot paths: what a leader does per proposal (encode it into the batch
//! for each follower), what a follower does per received frame (check the header and
//! crc, bytecheck the archive, reach the txn bytes in place), and what the leader does
//! with a burst of acks. `access_unchecked` shows what bytecheck costs on top.
//!
//! `CARGO_TARGET_DIR=... cargo bench -p bench --bench peer_msg`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rkyv::rancor;
use rkyv::util::AlignedVec;
use transport::peer::*;

fn proposal(txn_bytes: usize) -> PeerMsg {
    PeerMsg::Proposal(Proposal {
        zxid: zxid(3, 1_000_000),
        txn: vec![0xab; txn_bytes],
    })
}

fn vote() -> PeerMsg {
    PeerMsg::Vote(Vote {
        sender: 2,
        round: 17,
        leader: 3,
        zxid: zxid(3, 1_000_000),
        peer_epoch: 3,
        state: ServerState::Looking,
        config: zxid(3, 999_000),
    })
}

fn frame_of(msgs: &[PeerMsg]) -> AlignedVec<16> {
    let mut out = AlignedVec::new();
    for m in msgs {
        encode_frame(m, &mut out).unwrap();
    }
    out
}

fn txn_len(msg: &ArchivedPeerMsg) -> usize {
    match msg {
        ArchivedPeerMsg::Proposal(p) => p.txn.as_slice().len(),
        _ => 0,
    }
}

/// Decodes every frame of `wire` in place; returns how many.
fn decode_all(wire: &[u8]) -> usize {
    let mut d = PeerDecoder::new();
    let mut chunk = wire;
    let mut n = 0;
    while let Some(msg) = d.decode(&mut chunk).unwrap() {
        black_box(msg);
        n += 1;
    }
    n
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("peer/encode");
    let mut out = AlignedVec::<16>::with_capacity(8192);
    for (name, txn_bytes) in [("proposal 100 B", 100), ("proposal 1 KiB", 1024)] {
        let msg = proposal(txn_bytes);
        g.throughput(Throughput::Elements(1));
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                encode_frame(black_box(&msg), &mut out).unwrap()
            })
        });
    }
    let msg = vote();
    g.bench_function("vote", |b| {
        b.iter(|| {
            out.clear();
            encode_frame(black_box(&msg), &mut out).unwrap()
        })
    });
    g.finish();
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("peer/decode");
    for (name, txn_bytes) in [("proposal 100 B", 100), ("proposal 1 KiB", 1024)] {
        let wire = frame_of(&[proposal(txn_bytes)]);
        g.bench_function(format!("{name}: header+crc+bytecheck, in place"), |b| {
            b.iter(|| {
                let mut d = PeerDecoder::new();
                let mut chunk: &[u8] = black_box(&wire);
                txn_len(d.decode(&mut chunk).unwrap().unwrap())
            })
        });
        let (_, body) = split_frame(&wire, 0, PEER_FRAME_BYTES_MAX)
            .unwrap()
            .unwrap();
        g.bench_function(format!("{name}: bytecheck only (rkyv::access)"), |b| {
            b.iter(|| {
                let msg = rkyv::access::<ArchivedPeerMsg, rancor::Error>(black_box(body)).unwrap();
                txn_len(msg)
            })
        });
        rkyv::access::<ArchivedPeerMsg, rancor::Error>(body).unwrap();
        g.bench_function(format!("{name}: access_unchecked"), |b| {
            b.iter(|| {
                // SAFETY: `body` is an aligned archive validated just above.
                let msg = unsafe { rkyv::access_unchecked::<ArchivedPeerMsg>(black_box(body)) };
                txn_len(msg)
            })
        });
    }
    let wire = frame_of(&[vote()]);
    g.bench_function("vote: header+crc+bytecheck", |b| {
        b.iter(|| decode_all(black_box(&wire)))
    });
    let acks: Vec<PeerMsg> = (0..64)
        .map(|i| PeerMsg::Ack(Ack { zxid: zxid(3, i) }))
        .collect();
    let wire = frame_of(&acks);
    g.throughput(Throughput::Elements(64));
    g.bench_function("64 acks in one buffer", |b| {
        b.iter(|| decode_all(black_box(&wire)))
    });
    g.finish();
}

/// The pieces of a decode: the header check and the body crc.
fn parts(c: &mut Criterion) {
    let mut g = c.benchmark_group("peer/parts");
    let wire = frame_of(&[proposal(100)]);
    let head: &[u8; PEER_FRAME_HEADER_BYTES] = wire.first_chunk().unwrap();
    g.bench_function("header parse+crc", |b| {
        b.iter(|| FrameHeader::parse(black_box(head), 0, PEER_FRAME_BYTES_MAX).unwrap())
    });
    let body = &wire[PEER_FRAME_HEADER_BYTES..];
    g.bench_function(format!("crc32c of a {} B padded body", body.len()), |b| {
        b.iter(|| crc32c::crc32c(black_box(body)))
    });
    g.finish();
}

fn quick() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = quick();
    targets = encode, decode, parts
}
criterion_main!(benches);
