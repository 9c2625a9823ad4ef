//! Client → trunk under loss, reordering and duplication: the trunk still sees one continuous
//! 20 ms stream, lost packets are rebuilt from the next packet's FEC or concealed.

mod common;

use common::*;
use landline_codecs::{G711Law, OpusToG711, Scratch};

struct Call {
    pipeline: OpusToG711,
    scratch: Scratch,
    sender: OpusSender,
    clock: Clock,
    sent: Vec<Sent>,
}

impl Call {
    fn new() -> Self {
        Call {
            pipeline: OpusToG711::new(&opus_to_g711_config(G711Law::Mu)).unwrap(),
            scratch: Scratch::new(),
            sender: OpusSender::new(0x2222),
            clock: Clock::new(),
            sent: Vec::new(),
        }
    }

    fn deliver(&mut self, packet: &[u8]) {
        let now = self.clock.now;
        let sent = &mut self.sent;
        self.pipeline
            .push(now, packet, &mut self.scratch, |p| sent.push(parse_sent(p)));
    }

    fn tick(&mut self) {
        self.clock.advance_ms(20);
    }

    fn send_next(&mut self) {
        self.tick();
        let packet = self.sender.next_packet();
        self.deliver(&packet);
    }
}

#[test]
fn a_single_loss_is_rebuilt_from_fec() {
    let mut call = Call::new();
    for _ in 0..20 {
        call.send_next();
    }
    call.tick();
    call.sender.lose_packet();
    for _ in 0..20 {
        call.send_next();
    }
    // 41 packets of input time, 40 received: the trunk still gets 41 continuous packets.
    assert_eq!(call.sent.len(), 41);
    assert_continuous(&call.sent, 160);
    let stats = call.pipeline.stats();
    assert_eq!(stats.lost, 1);
    assert_eq!(stats.recovered_samples, 160, "the lost frame came from FEC");
    assert_eq!(stats.concealed_samples, 0);
    // The rebuilt audio is still the tone, at a similar level.
    let pcm = decode_g711(G711Law::Mu, &call.sent[18..24]);
    assert!(tone_ratio(&pcm, 440.0, 8000.0) > 0.7);
}

#[test]
fn a_burst_is_concealed_then_the_last_frame_recovered() {
    let mut call = Call::new();
    for _ in 0..10 {
        call.send_next();
    }
    for _ in 0..3 {
        call.tick();
        call.sender.lose_packet();
    }
    for _ in 0..10 {
        call.send_next();
    }
    assert_eq!(call.sent.len(), 23);
    assert_continuous(&call.sent, 160);
    let stats = call.pipeline.stats();
    assert_eq!(stats.lost, 3);
    assert_eq!(stats.concealed_samples, 320, "two frames concealed");
    assert_eq!(stats.recovered_samples, 160, "the third from FEC");
}

#[test]
fn reordered_packets_are_used_when_in_time_and_dropped_when_late() {
    let mut call = Call::new();
    for _ in 0..5 {
        call.send_next();
    }
    // Packets 6 and 7 swap places: 7 arrives first, 6 after it.
    call.tick();
    let six = call.sender.next_packet();
    let seven = call.sender.next_packet();
    call.deliver(&seven);
    call.tick();
    call.deliver(&six);
    for _ in 0..5 {
        call.send_next();
    }
    assert_continuous(&call.sent, 160);
    assert_eq!(call.sent.len(), 12);
    let stats = call.pipeline.stats();
    assert_eq!(
        stats.late, 1,
        "six arrived after its place was filled from seven's FEC"
    );
    assert_eq!(stats.recovered_samples, 160);
}

#[test]
fn duplicates_are_dropped() {
    let mut call = Call::new();
    for _ in 0..5 {
        call.tick();
        let packet = call.sender.next_packet();
        call.deliver(&packet);
        call.deliver(&packet);
    }
    assert_eq!(call.sent.len(), 5);
    assert_continuous(&call.sent, 160);
    assert_eq!(call.pipeline.stats().duplicates, 5);
}

#[test]
fn heavy_random_loss_keeps_the_stream_continuous() {
    let mut call = Call::new();
    let mut state = 0x9E37_79B9u32;
    let mut lost = 0;
    let mut last_received = 0;
    for frame in 0..1000 {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        if state % 100 < 20 {
            call.tick();
            call.sender.lose_packet();
            lost += 1;
        } else {
            call.send_next();
            last_received = frame;
        }
    }
    assert_continuous(&call.sent, 160);
    let stats = call.pipeline.stats();
    // Losses after the last received packet are not known yet (the timer was never run).
    assert_eq!(stats.lost, lost - (999 - last_received) as u64);
    // Every 20 ms of input time up to the last received packet produced one packet.
    assert_eq!(call.sent.len(), last_received + 1);
    assert!(stats.recovered_samples > 0 && stats.concealed_samples > 0);
}
