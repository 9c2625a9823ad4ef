//! Runs parse + serialize of the bench INVITE `N` times (first argument, default 1000), for
//! instruction counting under `valgrind --tool=callgrind`, which a noisy machine cannot disturb:
//! `valgrind --tool=callgrind target/release/examples/invite_cost 1000` minus the run with 0.

use landline_sip::message::{Limits, Message};
use std::hint::black_box;

const INVITE: &[u8] = include_bytes!("../benches/typical_invite.sip");

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let limits = Limits::default();
    let mut out = Vec::with_capacity(2048);
    let mut total = 0;
    for _ in 0..n {
        out.clear();
        if let Ok(m) = Message::parse(black_box(INVITE), &limits) {
            m.write_to(&mut out);
        }
        total += black_box(out.len());
    }
    println!("{n} round trips, {total} bytes written");
}
