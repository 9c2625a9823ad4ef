//! Any bytes as SDP: parse, re-serialise, and run offer/answer against it without panicking.
#![no_main]

use landline_sip::sdp::{
    Codec, Direction, LocalMedia, PreferenceOrder, Sdp, accept_answer, answer, build_offer,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(sdp) = Sdp::parse(data) else { return };
    let _ = Sdp::parse(sdp.to_string().as_bytes());
    let local = LocalMedia {
        addr: [127, 0, 0, 1].into(),
        port: 4000,
        codecs: vec![Codec::Pcmu, Codec::Pcma, Codec::Opus],
        opus_fmtp: String::new(),
        telephone_event: true,
        ptime: 20,
        maxptime: None,
        rtcp_mux: true,
        direction: Direction::SendRecv,
        session_id: 1,
        session_version: 1,
    };
    let _ = answer(
        &sdp,
        &local,
        &PreferenceOrder(vec![Codec::Opus, Codec::Pcmu]),
    );
    let _ = accept_answer(&build_offer(&local), &sdp);
});
