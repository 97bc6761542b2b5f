//! Decoder robustness: random bytes and random mutations of real (golden) frames go
//! through every decode entry point ([`exercise_decoders`]). Each must return Ok or
//! Err, never panic; what decodes must re-encode stably; and no single allocation may
//! exceed what the input size justifies (checked by a counting global allocator).

mod alloc_count;
mod common;

use alloc_count::largest_allocation;
use common::golden::all_bodies;
use common::*;
use proptest::prelude::*;
use std::sync::OnceLock;
use transport::jute::fuzzing::exercise_decoders;
use transport::jute::*;

/// Bytes a decoder may allocate at once per input byte: a decoded element is at most
/// ~12x its smallest encoding (an `OpResult` vs its 9-byte header), and a growing `Vec`
/// may double once.
const ALLOC_BYTES_PER_INPUT_BYTE_MAX: usize = 32;
/// Fixed slack for small buffers (a frame buffer's first growth, formatting).
const ALLOC_BYTES_SLACK_MAX: usize = 4096;

/// Runs every decoder on `input` and checks the largest single allocation.
fn exercise_bounded(input: &[u8]) -> Result<(), TestCaseError> {
    let largest = largest_allocation(|| exercise_decoders(input));
    let bound = input.len() * ALLOC_BYTES_PER_INPUT_BYTE_MAX + ALLOC_BYTES_SLACK_MAX;
    prop_assert!(
        largest <= bound,
        "a {}-byte input made a {largest}-byte allocation (bound {bound})",
        input.len()
    );
    Ok(())
}

fn golden_bodies() -> &'static [Vec<u8>] {
    static BODIES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    BODIES.get_or_init(all_bodies)
}

/// Lengths and counts that stress bounds checks.
const EDGE_I32S: &[i32] = &[-1, -2, 0, 1, 16, 0x7fff_ffff, i32::MIN, 0x0010_0000, 0xffff];

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit {
        at: usize,
        bit: u8,
    },
    SetByte {
        at: usize,
        value: u8,
    },
    /// Overwrite 4 bytes with an edge-case length.
    SetI32 {
        at: usize,
        value: i32,
    },
    Truncate {
        at: usize,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    Remove {
        at: usize,
        len: usize,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<usize>();
    prop_oneof![
        (at, 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        (at, any::<u8>()).prop_map(|(at, value)| Mutation::SetByte { at, value }),
        (at, proptest::sample::select(EDGE_I32S))
            .prop_map(|(at, value)| Mutation::SetI32 { at, value }),
        at.prop_map(|at| Mutation::Truncate { at }),
        (at, proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (at, 1usize..16).prop_map(|(at, len)| Mutation::Remove { at, len }),
    ]
}

fn apply(body: &mut Vec<u8>, m: &Mutation) {
    let pos = |at: usize, len: usize| if len == 0 { 0 } else { at % len };
    match m {
        Mutation::FlipBit { at, bit } if !body.is_empty() => {
            let i = pos(*at, body.len());
            body[i] ^= 1 << bit;
        }
        Mutation::SetByte { at, value } if !body.is_empty() => {
            let i = pos(*at, body.len());
            body[i] = *value;
        }
        Mutation::SetI32 { at, value } if body.len() >= 4 => {
            let i = pos(*at, body.len() - 3);
            body[i..i + 4].copy_from_slice(&value.to_be_bytes());
        }
        Mutation::Truncate { at } => body.truncate(pos(*at, body.len() + 1)),
        Mutation::Insert { at, bytes } => {
            let i = pos(*at, body.len() + 1);
            body.splice(i..i, bytes.iter().copied());
        }
        Mutation::Remove { at, len } if !body.is_empty() => {
            let i = pos(*at, body.len());
            body.drain(i..(i + len).min(body.len()));
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(config(2048))]

    #[test]
    fn random_bytes_never_panic_or_over_allocate(
        input in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        exercise_bounded(&input)?;
    }

    #[test]
    fn random_bytes_after_a_valid_header_never_panic(
        xid in any::<i32>(),
        op in proptest::sample::select(OpCode::ALL),
        tail in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        // Random bytes rarely form a known opcode: pin it so each record decoder runs.
        let mut input = RequestHeader::new(xid, op).to_bytes();
        input.extend_from_slice(&tail);
        exercise_bounded(&input)?;
    }

    #[test]
    fn mutated_golden_frames_never_panic_or_over_allocate(
        pick in any::<usize>(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let bodies = golden_bodies();
        let mut body = bodies[pick % bodies.len()].clone();
        for m in &mutations {
            apply(&mut body, m);
        }
        exercise_bounded(&body)?;
        // Also as a whole frame, prefix included.
        let mut frame = Vec::new();
        write_frame(&mut frame, |b| b.extend_from_slice(&body));
        exercise_bounded(&frame)?;
    }
}

#[test]
fn every_golden_frame_passes_the_oracle_unmutated() {
    for body in golden_bodies() {
        exercise_bounded(body).unwrap();
    }
}

/// A length of 2^31-1 inside a 20-byte frame is an error, not an allocation, for every
/// decoder of every opcode (the value lands on the first field after the header).
#[test]
fn huge_length_in_a_small_frame_is_an_error_for_every_op() {
    for op in OpCode::ALL {
        let mut body = RequestHeader::new(1, *op).to_bytes();
        body.extend_from_slice(&i32::MAX.to_be_bytes());
        body.resize(20, 0);
        exercise_bounded(&body).unwrap();
        let mut reply = ReplyHeader::default().to_bytes();
        reply.extend_from_slice(&i32::MAX.to_be_bytes());
        exercise_bounded(&reply).unwrap();
    }
}

/// The allocation check is only as good as the counter: make sure it sees a large
/// allocation, and that an over-allocating "decoder" would fail the bound.
#[test]
fn the_allocation_counter_sees_large_allocations() {
    let largest =
        largest_allocation(|| drop(std::hint::black_box(Vec::<u64>::with_capacity(100_000))));
    assert!(largest >= 800_000);
}
