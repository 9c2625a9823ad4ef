#![no_main]
//! Arbitrary datagrams and clock steps into a client → trunk pipeline: no panic, only valid RTP out.

mod session;

use landline_codecs::{G711Law, OpusToG711, OpusToG711Config, OutputStream, Timing};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let config = OpusToG711Config {
        opus_payload_type: 111,
        event_payload_type_in: Some(110),
        law: G711Law::Mu,
        event_payload_type_out: Some(101),
        output: OutputStream { ssrc: 1, first_sequence: 65_000, first_timestamp: u32::MAX - 1000 },
        timing: Timing::default(),
    };
    let Ok(mut pipeline) = OpusToG711::new(&config) else { return };
    let pipeline = std::cell::RefCell::new(&mut pipeline);
    session::run(
        data,
        111,
        |now, d, scratch, emit| pipeline.borrow_mut().push(now, d, scratch, |p| emit(p)),
        |now, scratch, emit| pipeline.borrow_mut().handle_timeout(now, scratch, |p| emit(p)),
    );
});
