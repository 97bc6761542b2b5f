//! Codec hot paths: what the server does per request (split a frame, decode the
//! request, encode the reply) and what ckbench does per op (the reverse).
//!
//! `CARGO_TARGET_DIR=... cargo bench -p bench --bench jute_codec`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use transport::jute::*;

fn stat() -> Stat {
    Stat {
        czxid: 0x1_0000_0042,
        mzxid: 0x1_0000_0099,
        ctime: 1_700_000_000_000,
        mtime: 1_700_000_000_500,
        version: 7,
        data_length: 100,
        pzxid: 0x1_0000_0042,
        ..Stat::default()
    }
}

fn get_data() -> Request {
    Request::GetData(GetDataRequest {
        path: "/app/workers/node-0000000042".into(),
        watch: true,
    })
}

fn get_data_reply() -> Response {
    Response::GetData(GetDataResponse {
        data: Some(vec![0xab; 100]),
        stat: stat(),
    })
}

fn multi(n: usize) -> Request {
    let ops = (0..n)
        .map(|i| {
            MultiOp::Create(CreateRequest {
                path: format!("/app/batch/item-{i:04}"),
                data: Some(vec![1; 32]),
                acl: Acl::open_unsafe(),
                flags: 0,
            })
        })
        .collect();
    Request::Multi(MultiRequest { ops })
}

fn server_side(c: &mut Criterion) {
    let mut frame = Vec::new();
    get_data().encode_frame(42, &mut frame);
    c.bench_function("server/decode getData request frame", |b| {
        b.iter(|| {
            let Ok(FrameStatus::Frame { body, .. }) =
                FrameDecoder::default().decode(black_box(&frame))
            else {
                unreachable!()
            };
            Request::decode_body(body).unwrap()
        })
    });
    let reply = get_data_reply();
    let header = ReplyHeader::new(42, 0x1_0000_0100, ErrorCode::Ok);
    let mut out = Vec::with_capacity(4096);
    c.bench_function("server/encode getData reply frame (100 B)", |b| {
        b.iter(|| {
            out.clear();
            black_box(&reply).encode_frame(&header, &mut out)
        })
    });
    let mut multi_frame = Vec::new();
    multi(10).encode_frame(7, &mut multi_frame);
    c.bench_function("server/decode multi of 10 creates", |b| {
        b.iter(|| Request::decode_body(black_box(&multi_frame[4..])).unwrap())
    });
}

fn client_side(c: &mut Criterion) {
    let req = get_data();
    let mut out = Vec::with_capacity(4096);
    c.bench_function("client/encode getData request frame", |b| {
        b.iter(|| {
            out.clear();
            black_box(&req).encode_frame(42, &mut out)
        })
    });
    let mut frame = Vec::new();
    get_data_reply().encode_frame(&ReplyHeader::new(42, 9, ErrorCode::Ok), &mut frame);
    c.bench_function("client/decode getData reply (100 B)", |b| {
        b.iter(|| {
            let (h, rest) = ReplyHeader::split(black_box(&frame[4..])).unwrap();
            Response::decode(OpCode::GetData, &h, rest).unwrap()
        })
    });
}

fn stream_split(c: &mut Criterion) {
    let mut stream = Vec::new();
    for xid in 0..1000 {
        get_data().encode_frame(xid, &mut stream);
    }
    let mut g = c.benchmark_group("frames");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("split 1000 request frames from 4 KiB reads", |b| {
        b.iter(|| {
            let mut fb = FrameBuffer::new(FrameDecoder::default());
            let mut n = 0;
            for chunk in black_box(&stream).chunks(4096) {
                fb.extend_from_slice(chunk);
                while let Some(body) = fb.next_frame().unwrap() {
                    n += body.len();
                }
            }
            n
        })
    });
    g.finish();
}

criterion_group!(benches, server_side, client_side, stream_split);
criterion_main!(benches);
