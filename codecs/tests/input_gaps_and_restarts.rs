//! When the client goes quiet (loss, DTX, a stalled network) the trunk must keep receiving 20 ms
//! packets; when the client's stream restarts (new SSRC, sequence jump, absurd timestamp) the
//! trunk's stream must not notice.

mod common;

use std::time::Duration;

use common::*;
use landline_codecs::{G711Law, OpusToG711, Scratch};

fn pump_timer(
    pipeline: &mut OpusToG711,
    scratch: &mut Scratch,
    clock: &mut Clock,
    ms: u64,
    sent: &mut Vec<Sent>,
) {
    let end = clock.now + Duration::from_millis(ms);
    while let Some(deadline) = pipeline.poll_timeout() {
        if deadline > end {
            break;
        }
        clock.now = clock.now.max(deadline);
        pipeline.handle_timeout(clock.now, scratch, |p| sent.push(parse_sent(p)));
    }
    clock.now = end;
}

#[test]
fn nothing_is_due_before_the_first_packet() {
    let pipeline = OpusToG711::new(&opus_to_g711_config(G711Law::Mu)).unwrap();
    assert_eq!(pipeline.poll_timeout(), None);
}

#[test]
fn silence_from_the_client_is_filled_with_conceal_then_noise() {
    let mut pipeline = OpusToG711::new(&opus_to_g711_config(G711Law::Mu)).unwrap();
    let mut scratch = Scratch::new();
    let mut sender = OpusSender::new(1);
    let mut clock = Clock::new();
    let mut sent = Vec::new();
    for _ in 0..10 {
        let now = clock.advance_ms(20);
        pipeline.push(now, &sender.next_packet(), &mut scratch, |p| {
            sent.push(parse_sent(p))
        });
    }
    // The client stops for ten seconds.
    pump_timer(&mut pipeline, &mut scratch, &mut clock, 10_000, &mut sent);
    // It waits for the hold time (60 ms) before filling, then keeps real time.
    assert!(
        sent.len() >= 10 + 495 && sent.len() <= 10 + 500,
        "{} packets",
        sent.len()
    );
    assert_continuous(&sent, 160);
    let stats = *pipeline.stats();
    assert_eq!(stats.concealed_samples, 800, "100 ms of codec concealment");
    assert!(stats.noise_samples > 70_000, "then comfort noise");
    // The noise is quiet.
    let tail = decode_g711(G711Law::Mu, &sent[sent.len() - 50..]);
    assert!(rms(&tail) < 50.0, "noise rms {}", rms(&tail));

    // The client comes back (its timestamps kept counting): the stream just goes on.
    sender.timestamp = sender.timestamp.wrapping_add(48 * 10_000);
    let before = sent.len();
    for _ in 0..10 {
        let now = clock.advance_ms(20);
        pipeline.push(now, &sender.next_packet(), &mut scratch, |p| {
            sent.push(parse_sent(p))
        });
    }
    assert!(sent.len() >= before + 10);
    assert_continuous(&sent, 160);
    let voice = decode_g711(G711Law::Mu, &sent[sent.len() - 5..]);
    assert!(tone_ratio(&voice, 440.0, 8000.0) > 0.8);
}

#[test]
fn a_late_burst_after_filling_realigns_instead_of_dropping() {
    let mut pipeline = OpusToG711::new(&opus_to_g711_config(G711Law::Mu)).unwrap();
    let mut scratch = Scratch::new();
    let mut sender = OpusSender::new(1);
    let mut clock = Clock::new();
    let mut sent = Vec::new();
    for _ in 0..5 {
        let now = clock.advance_ms(20);
        pipeline.push(now, &sender.next_packet(), &mut scratch, |p| {
            sent.push(parse_sent(p))
        });
    }
    // The network stalls for 300 ms, then delivers everything at once.
    pump_timer(&mut pipeline, &mut scratch, &mut clock, 300, &mut sent);
    let filled = sent.len() - 5;
    assert!(filled >= 10, "filled {filled} frames while waiting");
    for _ in 0..15 {
        pipeline.push(clock.now, &sender.next_packet(), &mut scratch, |p| {
            sent.push(parse_sent(p))
        });
    }
    assert_continuous(&sent, 160);
    let stats = pipeline.stats();
    assert_eq!(stats.late, 0, "in-sequence packets are never thrown away");
    assert!(stats.realigned >= 1);
    assert_eq!(sent.len(), 5 + filled + 15);
}

#[test]
fn a_new_ssrc_continues_the_output_stream() {
    let mut pipeline = OpusToG711::new(&opus_to_g711_config(G711Law::A)).unwrap();
    let mut scratch = Scratch::new();
    let mut first = OpusSender::new(0xAAAA);
    let mut second = OpusSender::new(0xBBBB);
    second.sequence = 40_000;
    second.timestamp = 3_000_000_000;
    let mut clock = Clock::new();
    let mut sent = Vec::new();
    for _ in 0..10 {
        let now = clock.advance_ms(20);
        pipeline.push(now, &first.next_packet(), &mut scratch, |p| {
            sent.push(parse_sent(p))
        });
    }
    for _ in 0..10 {
        let now = clock.advance_ms(20);
        pipeline.push(now, &second.next_packet(), &mut scratch, |p| {
            sent.push(parse_sent(p))
        });
    }
    assert_eq!(sent.len(), 20);
    assert_continuous(&sent, 160);
    assert_eq!(pipeline.stats().restarts, 1);
    assert_eq!(pipeline.stats().lost, 0);
}

#[test]
fn sequence_and_timestamp_jumps_restart_without_a_gap_or_a_flood() {
    let mut pipeline = OpusToG711::new(&opus_to_g711_config(G711Law::Mu)).unwrap();
    let mut scratch = Scratch::new();
    let mut sender = OpusSender::new(7);
    let mut clock = Clock::new();
    let mut sent = Vec::new();
    for round in 0..4 {
        for _ in 0..5 {
            let now = clock.advance_ms(20);
            pipeline.push(now, &sender.next_packet(), &mut scratch, |p| {
                sent.push(parse_sent(p))
            });
        }
        match round {
            0 => sender.sequence = sender.sequence.wrapping_add(20_000),
            1 => sender.timestamp = sender.timestamp.wrapping_add(1 << 31),
            _ => sender.timestamp = sender.timestamp.wrapping_add(48_000 * 3600),
        }
    }
    // A timestamp jump within a sequence is filled at most 200 ms, not an hour.
    assert!(sent.len() <= 20 + 2 * 10, "{} packets", sent.len());
    assert_continuous(&sent, 160);
    assert_eq!(pipeline.stats().restarts, 1);
}
