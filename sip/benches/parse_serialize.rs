//! Parse + serialize of a typical trunk INVITE with SDP: the per-message cost of the edge.

use criterion::{Criterion, criterion_group, criterion_main};
use landline_sip::message::{Limits, Message};
use std::hint::black_box;

/// A trunk INVITE with SDP, canonical (serialising it gives the same bytes).
const INVITE: &[u8] = include_bytes!("typical_invite.sip");
fn bench(c: &mut Criterion) {
    let limits = Limits::default();
    let parsed = Message::parse(INVITE, &limits).expect("bench input must parse");
    assert_eq!(
        parsed.to_bytes().len(),
        INVITE.len(),
        "bench input is canonical"
    );
    let mut out = Vec::with_capacity(2048);
    c.bench_function("sip_invite_parse_serialize", |b| {
        b.iter(|| {
            let msg = Message::parse(black_box(INVITE), &limits);
            out.clear();
            if let Ok(m) = msg {
                m.write_to(&mut out);
            }
            black_box(out.len())
        })
    });
    c.bench_function("sip_invite_parse", |b| {
        b.iter(|| black_box(Message::parse(black_box(INVITE), &limits).is_ok()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
