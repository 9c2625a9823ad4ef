#![no_main]
//! The RTP, telephone-event and comfort-noise parsers on arbitrary bytes: no panic, and a parsed
//! packet's payload always lies inside the datagram.

use landline_codecs::comfort_noise::NoiseLevel;
use landline_codecs::rtp::RtpPacket;
use landline_codecs::telephone_event::TelephoneEvent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(packet) = RtpPacket::parse(data) {
        assert!(!packet.payload.is_empty() && packet.payload.len() <= data.len() - 12);
        let _ = TelephoneEvent::parse(packet.payload);
        let _ = NoiseLevel::parse(packet.payload);
    }
});
