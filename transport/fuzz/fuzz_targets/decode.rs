//! Feeds arbitrary bytes to every jute decode entry point (frames, connect
//! handshake, request and reply headers, every request, every reply shape for every
//! opcode, every record). The oracle panics only if a decoder panics or a decoded
//! value does not survive encode → decode unchanged; decode errors are fine.

#![no_main]

use libfuzzer_sys::fuzz_target;
use transport::jute::fuzzing::exercise_decoders;

fuzz_target!(|data: &[u8]| {
    exercise_decoders(data);
});
