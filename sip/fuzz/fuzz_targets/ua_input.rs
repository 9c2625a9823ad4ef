//! Any sequence of datagrams and clock steps into a user agent with a call in progress and one
//! being received: it may answer, but never panics.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use landline_sip::message::{SipUri, StatusCode, Transport};
use landline_sip::ua::{CallParams, Config, Event, UserAgent};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let me = SocketAddr::from(([127, 0, 0, 1], 5060));
    let peer = SocketAddr::from(([127, 0, 0, 1], 5070));
    let mut now = Instant::now();
    let mut ua = UserAgent::new(Config::new(me, 7));
    ua.call(
        now,
        CallParams {
            target: SipUri::new(Some("bob"), peer.ip().into(), Some(peer.port())),
            to: None,
            from: None,
            destination: peer,
            transport: Transport::Udp,
            sdp: Some(b"v=0\r\n".to_vec()),
            credentials: None,
        },
    );
    // Datagrams separated by 0xFF; the byte after each says how far the clock moves.
    for chunk in data.split(|b| *b == 0xff) {
        let (step, msg) = chunk.split_first().map_or((0, chunk), |(s, m)| (*s, m));
        now += Duration::from_millis(u64::from(step) * 50);
        ua.handle_receive(now, peer, Transport::Udp, msg);
        if ua.poll_timeout().is_some_and(|t| t <= now) {
            ua.handle_timeout(now);
        }
        while ua.poll_transmit().is_some() {}
        while let Some(e) = ua.poll_event() {
            match e {
                Event::IncomingCall { call, .. } => {
                    ua.ring(now, call, StatusCode::RINGING, None, true);
                    ua.answer(now, call, b"v=0\r\n".to_vec());
                }
                Event::Offer { call, .. } => ua.answer_offer(now, call, b"v=0\r\n".to_vec()),
                Event::Answered { call, .. } => ua.reinvite(now, call, b"v=0\r\n".to_vec()),
                _ => {}
            }
        }
    }
    ua.handle_timeout(now + Duration::from_secs(3600));
});
