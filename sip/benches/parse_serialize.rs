//! Parse + serialize of a typical trunk INVITE with SDP: the per-message cost of the edge.

use criterion::{Criterion, criterion_group, criterion_main};
use landline_sip::message::{Limits, Message};
use std::hint::black_box;

const INVITE: &str = "INVITE sip:+15551234567@trunk.example.net:5060;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK776asdhds;rport\r\n\
Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK4b43c2ff8.1;received=10.0.0.5\r\n\
Max-Forwards: 69\r\n\
Record-Route: <sip:203.0.113.10;lr>\r\n\
From: \"Alice Caller\" <sip:+15557654321@landline.example.com>;tag=1928301774\r\n\
To: <sip:+15551234567@trunk.example.net;user=phone>\r\n\
Call-ID: a84b4c76e66710@pc33.landline.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:landline@203.0.113.10:5060;transport=udp>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, PRACK, UPDATE, INFO\r\n\
Supported: 100rel, timer\r\n\
Session-Expires: 1800\r\n\
Min-SE: 90\r\n\
User-Agent: landline/0.1\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 252\r\n\r\n\
v=0\r\n\
o=landline 2890844526 2890844526 IN IP4 203.0.113.10\r\n\
s=landline\r\n\
c=IN IP4 203.0.113.10\r\n\
t=0 0\r\n\
m=audio 40000 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

fn bench(c: &mut Criterion) {
    let limits = Limits::default();
    let parsed = Message::parse(INVITE.as_bytes(), &limits).expect("bench input must parse");
    assert_eq!(
        parsed.to_bytes().len(),
        INVITE.len(),
        "bench input is canonical"
    );
    let mut out = Vec::with_capacity(2048);
    c.bench_function("sip_invite_parse_serialize", |b| {
        b.iter(|| {
            let msg = Message::parse(black_box(INVITE.as_bytes()), &limits);
            out.clear();
            if let Ok(m) = msg {
                m.write_to(&mut out);
            }
            black_box(out.len())
        })
    });
    c.bench_function("sip_invite_parse", |b| {
        b.iter(|| black_box(Message::parse(black_box(INVITE.as_bytes()), &limits).is_ok()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
