#![no_main]
//! Arbitrary datagrams and clock steps into a trunk → client pipeline: no panic, only valid RTP out.

mod session;

use landline_codecs::{
    G711Law, G711ToOpus, G711ToOpusConfig, OpusSettings, OutputStream, Timing,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let config = G711ToOpusConfig {
        law: G711Law::A,
        comfort_noise_payload_type: Some(13),
        event_payload_type_in: Some(101),
        opus_payload_type: 111,
        event_payload_type_out: Some(110),
        opus: OpusSettings::default(),
        output: OutputStream { ssrc: 2, first_sequence: 1, first_timestamp: 0 },
        timing: Timing::default(),
    };
    let Ok(mut pipeline) = G711ToOpus::new(&config) else { return };
    let pipeline = std::cell::RefCell::new(&mut pipeline);
    session::run(
        data,
        8,
        |now, d, scratch, emit| pipeline.borrow_mut().push(now, d, scratch, |p| emit(p)),
        |now, scratch, emit| pipeline.borrow_mut().handle_timeout(now, scratch, |p| emit(p)),
    );
});
