//! Client → trunk in steady state: one 20 ms G.711 packet per 20 ms of Opus, whatever the
//! client's frame size, with our own SSRC, consecutive sequence numbers and an 8 kHz clock.

mod common;

use common::*;
use landline_codecs::{G711Law, OpusToG711, Scratch};

fn run(law: G711Law, frame_samples: usize, packets: usize) -> (Vec<Sent>, OpusToG711) {
    let mut pipeline = OpusToG711::new(&opus_to_g711_config(law)).unwrap();
    let mut scratch = Scratch::new();
    let mut sender = OpusSender::new(0x1111);
    sender.frame_samples = frame_samples;
    let mut clock = Clock::new();
    let mut sent = Vec::new();
    for _ in 0..packets {
        let now = clock.advance_ms(frame_samples as u64 / 48);
        pipeline.push(now, &sender.next_packet(), &mut scratch, |p| {
            sent.push(parse_sent(p))
        });
    }
    (sent, pipeline)
}

#[test]
fn twenty_ms_opus_becomes_twenty_ms_pcmu() {
    let (sent, pipeline) = run(G711Law::Mu, 960, 100);
    assert_eq!(sent.len(), 100);
    assert!(sent[0].marker, "first packet carries the marker");
    assert_eq!(sent[0].sequence, 65_530);
    assert_eq!(sent[0].timestamp, u32::MAX - 500);
    assert!(
        sent.iter()
            .all(|p| p.payload_type == 0 && p.payload.len() == 160)
    );
    assert!(sent.iter().all(|p| p.ssrc == OUT_SSRC));
    assert_continuous(&sent, 160);
    let stats = pipeline.stats();
    assert_eq!(
        (stats.packets_in, stats.packets_out, stats.lost),
        (100, 100, 0)
    );
    assert_eq!(stats.concealed_samples + stats.noise_samples, 0);
}

#[test]
fn the_tone_survives_in_both_laws() {
    for law in [G711Law::Mu, G711Law::A] {
        let (sent, _) = run(law, 960, 50);
        assert!(sent.iter().all(|p| p.payload_type == law.payload_type()));
        // Skip the codec's start-up, then the 440 Hz tone must dominate.
        let pcm = decode_g711(law, &sent[5..]);
        let ratio = tone_ratio(&pcm, 440.0, 8000.0);
        assert!(ratio > 0.8, "{law:?}: 440 Hz holds {ratio:.2} of the power");
        assert!(rms(&pcm) > 3000.0, "{law:?}: level {}", rms(&pcm));
    }
}

#[test]
fn any_opus_frame_size_is_repacketised_to_20_ms() {
    // 10, 40 and 60 ms frames: 200 ms of input each.
    for (frame_samples, packets) in [(480, 20), (1920, 5), (2880, 4)] {
        let (sent, pipeline) = run(G711Law::A, frame_samples, packets);
        let expected = frame_samples * packets / 6 / 160;
        assert_eq!(sent.len(), expected, "frame of {frame_samples} samples");
        assert_continuous(&sent, 160);
        assert_eq!(pipeline.stats().lost, 0);
    }
}
