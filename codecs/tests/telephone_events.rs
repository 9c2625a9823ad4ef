//! RFC 4733 events cross the gateway re-clocked: 48 kHz durations become 8 kHz ones and back,
//! every report of one event keeps one timestamp, the marker starts an event even when the sender
//! forgot it, and the end bit and its repeats are kept.

mod common;

use common::*;
use landline_codecs::telephone_event::TelephoneEvent;
use landline_codecs::{G711Law, G711ToOpus, OpusToG711, Scratch};

fn events(sent: &[Sent], pt: u8) -> Vec<(Sent, TelephoneEvent)> {
    sent.iter()
        .filter(|p| p.payload_type == pt)
        .map(|p| (p.clone(), TelephoneEvent::parse(&p.payload).unwrap()))
        .collect()
}

#[test]
fn a_browser_digit_reaches_the_trunk_at_8_khz() {
    let mut pipeline = OpusToG711::new(&opus_to_g711_config(G711Law::Mu)).unwrap();
    let mut scratch = Scratch::new();
    let mut sender = OpusSender::new(0x3333);
    let mut clock = Clock::new();
    let mut sent = Vec::new();
    for _ in 0..5 {
        let now = clock.advance_ms(20);
        pipeline.push(now, &sender.next_packet(), &mut scratch, |p| {
            sent.push(parse_sent(p))
        });
    }
    // Digit 5 starts where the next audio frame would; the marker is missing on purpose.
    let start = sender.timestamp;
    for step in 1..=5u16 {
        let now = clock.advance_ms(20);
        let e = TelephoneEvent {
            event: 5,
            end: false,
            volume: 10,
            duration: 960 * step,
        };
        pipeline.push(
            now,
            &sender.event_packet(e, start, false),
            &mut scratch,
            |p| sent.push(parse_sent(p)),
        );
    }
    for _ in 0..3 {
        let e = TelephoneEvent {
            event: 5,
            end: true,
            volume: 10,
            duration: 960 * 6,
        };
        pipeline.push(
            clock.now,
            &sender.event_packet(e, start, false),
            &mut scratch,
            |p| sent.push(parse_sent(p)),
        );
    }
    sender.timestamp = sender.timestamp.wrapping_add(960 * 6);
    for _ in 0..5 {
        let now = clock.advance_ms(20);
        pipeline.push(now, &sender.next_packet(), &mut scratch, |p| {
            sent.push(parse_sent(p))
        });
    }

    let digits = events(&sent, EVENT_PT_8K);
    assert_eq!(digits.len(), 8);
    let audio_ts_after_five = sent[4].timestamp.wrapping_add(160);
    for (i, (packet, event)) in digits.iter().enumerate() {
        assert_eq!(packet.ssrc, OUT_SSRC);
        assert_eq!(
            packet.timestamp, audio_ts_after_five,
            "one timestamp for the event"
        );
        assert_eq!(packet.marker, i == 0, "marker on the first report only");
        assert_eq!(event.event, 5);
        assert_eq!(event.volume, 10);
        if i < 5 {
            assert_eq!(event.duration, 160 * (i as u16 + 1));
            assert!(!event.end);
        } else {
            assert_eq!(event.duration, 960);
            assert!(event.end);
        }
    }
    // Sequence numbers run through audio and events alike.
    for pair in sent.windows(2) {
        assert_eq!(pair[1].sequence, pair[0].sequence.wrapping_add(1));
    }
    // The audio after the digit sits after the digit on the trunk's clock.
    let last_audio = sent.iter().rev().find(|p| p.payload_type == 0).unwrap();
    assert!(last_audio.timestamp.wrapping_sub(audio_ts_after_five) >= 960);
    assert_eq!(pipeline.stats().events_in, 8);
    assert_eq!(pipeline.stats().lost, 0, "events are not audio loss");
}

#[test]
fn two_digits_in_a_row_are_two_events() {
    let mut pipeline = OpusToG711::new(&opus_to_g711_config(G711Law::Mu)).unwrap();
    let mut scratch = Scratch::new();
    let mut sender = OpusSender::new(0x3333);
    let mut clock = Clock::new();
    let mut sent = Vec::new();
    pipeline.push(clock.now, &sender.next_packet(), &mut scratch, |p| {
        sent.push(parse_sent(p))
    });
    for (digit, ts) in [(1u8, 100_200u32), (2, 112_200)] {
        for end in [false, true] {
            let now = clock.advance_ms(20);
            let e = TelephoneEvent {
                event: digit,
                end,
                volume: 0,
                duration: 4800,
            };
            pipeline.push(now, &sender.event_packet(e, ts, false), &mut scratch, |p| {
                sent.push(parse_sent(p))
            });
        }
    }
    let digits = events(&sent, EVENT_PT_8K);
    assert_eq!(digits.len(), 4);
    assert!(digits[0].0.marker && !digits[1].0.marker && digits[2].0.marker);
    assert_ne!(digits[0].0.timestamp, digits[2].0.timestamp);
    assert_eq!(
        digits[2].0.timestamp.wrapping_sub(digits[0].0.timestamp),
        2000
    );
}

#[test]
fn a_trunk_digit_reaches_the_client_at_48_khz_and_long_events_are_segmented() {
    let mut pipeline = G711ToOpus::new(&g711_to_opus_config(G711Law::A)).unwrap();
    let mut scratch = Scratch::new();
    let mut sender = G711Sender::new(G711Law::A, 20);
    let mut clock = Clock::new();
    let mut sent = Vec::new();
    for _ in 0..3 {
        let now = clock.advance_ms(20);
        pipeline.push(now, &sender.next_packet(), &mut scratch, |p| {
            sent.push(parse_sent(p))
        });
    }
    let start = sender.timestamp;
    // 2 s of '#': 16 000 ticks at 8 kHz, 96 000 at 48 kHz, more than 16 bits hold.
    for (duration, end) in [(8000u16, false), (16_000, false), (16_000, true)] {
        let now = clock.advance_ms(20);
        let e = TelephoneEvent {
            event: 11,
            end,
            volume: 7,
            duration,
        };
        let mut payload = [0u8; 4];
        e.write(&mut payload);
        let packet = rtp(EVENT_PT_8K, sender.sequence, start, sender.ssrc, &payload);
        sender.sequence += 1;
        pipeline.push(now, &packet, &mut scratch, |p| sent.push(parse_sent(p)));
    }
    let digits = events(&sent, EVENT_PT_48K);
    assert_eq!(digits.len(), 3);
    let first_ts = digits[0].0.timestamp;
    assert_eq!(
        first_ts,
        sent[2].timestamp.wrapping_add(960),
        "right after the audio"
    );
    assert_eq!(digits[0].1.duration, 48_000);
    // 96 000 ticks: the first segment ends at 65 535, the second carries the rest.
    assert_eq!(digits[1].0.timestamp, first_ts.wrapping_add(65_535));
    assert_eq!(digits[1].1.duration, (96_000 - 65_535) as u16);
    assert!(digits[2].1.end);
}

#[test]
fn a_digit_from_sip_info_is_generated_on_the_trunk_stream() {
    let mut pipeline = OpusToG711::new(&opus_to_g711_config(G711Law::Mu)).unwrap();
    let mut scratch = Scratch::new();
    let mut sender = OpusSender::new(0x3333);
    let mut clock = Clock::new();
    let mut sent = Vec::new();
    for _ in 0..3 {
        let now = clock.advance_ms(20);
        pipeline.push(now, &sender.next_packet(), &mut scratch, |p| {
            sent.push(parse_sent(p))
        });
    }
    pipeline
        .send_digit(
            clock.now,
            '#',
            std::time::Duration::from_millis(160),
            &mut scratch,
            |p| sent.push(parse_sent(p)),
        )
        .unwrap();
    assert!(
        pipeline
            .send_digit(
                clock.now,
                'x',
                std::time::Duration::from_millis(100),
                &mut scratch,
                |_| {}
            )
            .is_err()
    );
    // Audio keeps flowing while the digit's updates and end reports follow on the timer.
    for _ in 0..15 {
        let now = clock.advance_ms(20);
        pipeline.push(now, &sender.next_packet(), &mut scratch, |p| {
            sent.push(parse_sent(p))
        });
        pipeline.handle_timeout(now, &mut scratch, |p| sent.push(parse_sent(p)));
    }
    let digits = events(&sent, EVENT_PT_8K);
    let timestamp = sent[2].timestamp.wrapping_add(160);
    assert!(
        digits
            .iter()
            .all(|(p, e)| p.timestamp == timestamp && e.event == 11)
    );
    assert!(digits[0].0.marker && digits.iter().skip(1).all(|(p, _)| !p.marker));
    assert_eq!(digits[0].1.duration, 160);
    let durations: Vec<u16> = digits.iter().map(|(_, e)| e.duration).collect();
    assert!(
        durations.windows(2).all(|w| w[0] <= w[1]),
        "durations grow: {durations:?}"
    );
    let ends: Vec<_> = digits.iter().filter(|(_, e)| e.end).collect();
    assert_eq!(ends.len(), 3, "three end reports");
    assert!(ends.iter().all(|(_, e)| e.duration == 1280));
    for pair in sent.windows(2) {
        assert_eq!(
            pair[1].sequence,
            pair[0].sequence.wrapping_add(1),
            "one sequence space"
        );
    }
    assert_eq!(pipeline.poll_timeout().map(|t| t > clock.now), Some(true));
}
