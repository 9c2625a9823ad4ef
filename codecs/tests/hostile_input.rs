//! Whatever arrives from the network, a pipeline never panics, and a call's good stream is not
//! disturbed by garbage interleaved with it: the bad datagrams are counted and dropped.

mod common;

use common::*;
use landline_codecs::{G711Law, G711ToOpus, OpusToG711, Scratch};
use proptest::prelude::*;

#[test]
fn each_kind_of_bad_packet_is_counted_and_dropped() {
    let mut pipeline = OpusToG711::new(&opus_to_g711_config(G711Law::Mu)).unwrap();
    let mut scratch = Scratch::new();
    let mut sender = OpusSender::new(9);
    let clock = Clock::new();
    let mut sent = 0;
    let good = sender.next_packet();
    pipeline.push(clock.now, &good, &mut scratch, |_| sent += 1);
    let bad: [Vec<u8>; 6] = [
        vec![],
        vec![0x80, OPUS_PT, 0, 1],    // truncated header
        vec![0x40; 40],               // RTP version 1
        rtp(96, 5, 5, 9, &[1, 2, 3]), // payload type never negotiated
        rtp(OPUS_PT, sender.sequence, sender.timestamp, 9, &[0x03, 0x00]), // invalid Opus
        rtp(EVENT_PT_48K, 999, 0, 9, &[1, 2]), // short telephone-event
    ];
    for datagram in &bad {
        pipeline.push(clock.now, datagram, &mut scratch, |_| sent += 1);
    }
    assert_eq!(sent, 1, "nothing was emitted for garbage");
    let stats = pipeline.stats();
    assert_eq!(stats.malformed, 4);
    assert_eq!(stats.unexpected_payload_type, 1);
    assert_eq!(stats.decode_errors, 1);
}

#[test]
fn oversized_g711_payload_is_refused() {
    let mut pipeline = G711ToOpus::new(&g711_to_opus_config(G711Law::Mu)).unwrap();
    let mut scratch = Scratch::new();
    let clock = Clock::new();
    let mut sent = 0;
    pipeline.push(
        clock.now,
        &rtp(0, 1, 0, 1, &[0xFF; 1400]),
        &mut scratch,
        |_| sent += 1,
    );
    assert_eq!(sent, 0);
    assert_eq!(pipeline.stats().decode_errors, 1);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random datagrams, and random RTP with our payload types but absurd fields, between the
    /// packets of a good stream from another SSRC.
    #[test]
    fn garbage_between_good_packets_never_panics(
        garbage in prop::collection::vec(
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..300),
                (any::<u16>(), any::<u32>(), prop::collection::vec(any::<u8>(), 0..200))
                    .prop_map(|(seq, ts, payload)| rtp(OPUS_PT, seq, ts, 0xBAD, &payload)),
                (any::<u16>(), any::<u32>(), prop::collection::vec(any::<u8>(), 0..8))
                    .prop_map(|(seq, ts, payload)| rtp(EVENT_PT_48K, seq, ts, 0xBAD, &payload)),
            ],
            1..40,
        )
    ) {
        let mut to_trunk = OpusToG711::new(&opus_to_g711_config(G711Law::Mu)).unwrap();
        let mut to_client = G711ToOpus::new(&g711_to_opus_config(G711Law::Mu)).unwrap();
        let mut scratch = Scratch::new();
        let mut clock = Clock::new();
        for datagram in &garbage {
            clock.advance_ms(7);
            to_trunk.push(clock.now, datagram, &mut scratch, |p| { parse_sent(p); });
            to_client.push(clock.now, datagram, &mut scratch, |p| { parse_sent(p); });
            to_trunk.handle_timeout(clock.now, &mut scratch, |p| { parse_sent(p); });
            to_client.handle_timeout(clock.now, &mut scratch, |p| { parse_sent(p); });
        }
    }

    /// Garbage with other SSRCs and payload types interleaved into a good stream leaves the
    /// good stream's output exactly as it would have been.
    #[test]
    fn foreign_garbage_does_not_disturb_a_call(
        garbage in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..100), 20)
    ) {
        let mut clean = OpusToG711::new(&opus_to_g711_config(G711Law::A)).unwrap();
        let mut dirty = OpusToG711::new(&opus_to_g711_config(G711Law::A)).unwrap();
        let mut scratch = Scratch::new();
        let mut sender = OpusSender::new(0x600D);
        let mut clock = Clock::new();
        let (mut clean_out, mut dirty_out) = (Vec::new(), Vec::new());
        for junk in &garbage {
            let now = clock.advance_ms(20);
            let packet = sender.next_packet();
            clean.push(now, &packet, &mut scratch, |p| clean_out.push(p.to_vec()));
            dirty.push(now, &packet, &mut scratch, |p| dirty_out.push(p.to_vec()));
            // Random bytes that are not RTP version 2 or not our payload types.
            let mut junk = junk.clone();
            if let Some(first) = junk.first_mut() {
                *first &= 0x3F;
            }
            dirty.push(now, &junk, &mut scratch, |p| dirty_out.push(p.to_vec()));
            dirty.push(now, &rtp(97, 1, 1, 0x600D, &junk), &mut scratch, |p| dirty_out.push(p.to_vec()));
        }
        prop_assert_eq!(clean_out, dirty_out);
    }
}
