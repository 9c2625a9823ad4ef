//! Measures how the user agent's per-input cost grows with the number of live calls: sets up N
//! calls between two in-memory UAs (TCP, so no retransmission noise), then times an OPTIONS
//! round and a timeout round. `cargo run --release --example scale_probe -- 5000`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use landline_sip::message::{SipUri, Transport};
use landline_sip::ua::{CallParams, Config, Event, UserAgent};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let a_addr = SocketAddr::from(([127, 0, 0, 1], 5060));
    let b_addr = SocketAddr::from(([127, 0, 0, 1], 5070));
    let mut a = UserAgent::new(Config::new(a_addr, 1));
    let mut b = UserAgent::new(Config::new(b_addr, 2));
    let mut now = Instant::now();
    for _ in 0..n {
        let target = SipUri::new(Some("b"), b_addr.ip().into(), Some(b_addr.port()));
        let sdp = Some(b"v=0\r\n".to_vec());
        let params = CallParams {
            target,
            to: None,
            from: None,
            destination: b_addr,
            transport: Transport::Tcp,
            sdp,
            credentials: None,
        };
        a.call(now, params);
    }
    loop {
        let mut moved = false;
        while let Some(t) = a.poll_transmit() {
            moved = true;
            b.handle_receive(now, a_addr, Transport::Tcp, &t.data);
        }
        while let Some(t) = b.poll_transmit() {
            moved = true;
            a.handle_receive(now, b_addr, Transport::Tcp, &t.data);
        }
        while let Some(e) = b.poll_event() {
            if let Event::IncomingCall { call, .. } = e {
                b.answer(now, call, b"v=0\r\n".to_vec());
                moved = true;
            }
        }
        while a.poll_event().is_some() {}
        if !moved {
            break;
        }
    }
    now += Duration::from_secs(40);
    a.handle_timeout(now);
    b.handle_timeout(now);
    while a.poll_transmit().is_some() || b.poll_transmit().is_some() {}
    println!("live calls: {} / {}", a.call_count(), b.call_count());

    let rounds = 1000;
    let start = Instant::now();
    for i in 0..rounds {
        let options = format!(
            "OPTIONS sip:b@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK{i}\r\n\
             From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>\r\nCall-ID: probe{i}\r\n\
             CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        b.handle_receive(now, a_addr, Transport::Tcp, options.as_bytes());
        while b.poll_transmit().is_some() {}
        b.handle_timeout(now);
        let _ = b.poll_timeout();
    }
    println!(
        "OPTIONS in, 200 out, timers polled: {:?} each",
        start.elapsed() / rounds
    );
    let start = Instant::now();
    for _ in 0..rounds {
        b.handle_timeout(now);
        let _ = b.poll_timeout();
    }
    println!(
        "handle_timeout + poll_timeout: {:?} each",
        start.elapsed() / rounds
    );
}
