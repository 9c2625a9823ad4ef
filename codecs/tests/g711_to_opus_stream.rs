//! Trunk → client: G.711 of any packet time and comfort noise become a continuous 20 ms Opus
//! stream on a 48 kHz clock that a browser decodes back to the carrier's audio.

mod common;

use common::*;
use landline_codecs::{G711Law, G711ToOpus, OpusDecoder, Scratch};

fn decode_opus(packets: &[Sent]) -> Vec<i16> {
    let mut decoder = OpusDecoder::new(8000).unwrap();
    let mut pcm = Vec::new();
    let mut frame = [0i16; 960];
    for p in packets {
        let n = decoder.decode(&p.payload, &mut frame).unwrap();
        pcm.extend_from_slice(&frame[..n]);
    }
    pcm
}

fn run(law: G711Law, ptime_ms: usize, packets: usize) -> (Vec<Sent>, G711ToOpus) {
    let mut pipeline = G711ToOpus::new(&g711_to_opus_config(law)).unwrap();
    let mut scratch = Scratch::new();
    let mut sender = G711Sender::new(law, ptime_ms);
    let mut clock = Clock::new();
    let mut sent = Vec::new();
    for _ in 0..packets {
        let now = clock.advance_ms(ptime_ms as u64);
        pipeline.push(now, &sender.next_packet(), &mut scratch, |p| {
            sent.push(parse_sent(p))
        });
    }
    (sent, pipeline)
}

#[test]
fn twenty_ms_pcmu_becomes_twenty_ms_opus_carrying_the_tone() {
    let (sent, pipeline) = run(G711Law::Mu, 20, 100);
    assert_eq!(sent.len(), 100);
    assert!(sent[0].marker);
    assert!(
        sent.iter()
            .all(|p| p.payload_type == OPUS_PT && p.ssrc == OUT_SSRC)
    );
    assert_continuous(&sent, 960);
    let pcm = decode_opus(&sent);
    let ratio = tone_ratio(&pcm[800..], 1000.0, 8000.0);
    assert!(ratio > 0.8, "1 kHz holds {ratio:.2} of the power");
    assert_eq!(pipeline.stats().packets_out, 100);
}

#[test]
fn any_ptime_is_repacketised_to_20_ms() {
    for (ptime, packets, expected) in [(10, 40, 20), (30, 20, 30), (40, 10, 20), (60, 10, 30)] {
        let (sent, _) = run(G711Law::A, ptime, packets);
        assert_eq!(sent.len(), expected, "ptime {ptime}");
        assert_continuous(&sent, 960);
    }
}

#[test]
fn a_lost_g711_packet_is_concealed() {
    let mut pipeline = G711ToOpus::new(&g711_to_opus_config(G711Law::Mu)).unwrap();
    let mut scratch = Scratch::new();
    let mut sender = G711Sender::new(G711Law::Mu, 20);
    let mut clock = Clock::new();
    let mut sent = Vec::new();
    for i in 0..30 {
        let now = clock.advance_ms(20);
        let packet = sender.next_packet();
        if i != 15 {
            pipeline.push(now, &packet, &mut scratch, |p| sent.push(parse_sent(p)));
        }
    }
    assert_eq!(sent.len(), 30);
    assert_continuous(&sent, 960);
    assert_eq!(pipeline.stats().lost, 1);
    assert_eq!(pipeline.stats().concealed_samples, 160);
    // The concealed frame continues the tone rather than going silent.
    let pcm = decode_opus(&sent);
    let around_loss = &pcm[15 * 160..16 * 160];
    assert!(
        rms(around_loss) > 2000.0,
        "concealed level {}",
        rms(around_loss)
    );
}

#[test]
fn comfort_noise_fills_the_silence_at_its_level() {
    let mut pipeline = G711ToOpus::new(&g711_to_opus_config(G711Law::Mu)).unwrap();
    let mut scratch = Scratch::new();
    let mut sender = G711Sender::new(G711Law::Mu, 20);
    let mut clock = Clock::new();
    let mut sent = Vec::new();
    for _ in 0..10 {
        let now = clock.advance_ms(20);
        pipeline.push(now, &sender.next_packet(), &mut scratch, |p| {
            sent.push(parse_sent(p))
        });
    }
    // The carrier goes silent with a CN packet at -40 dBov, then sends nothing for a second.
    let cn = rtp(CN_PT, sender.sequence, sender.timestamp, sender.ssrc, &[40]);
    let now = clock.advance_ms(20);
    pipeline.push(now, &cn, &mut scratch, |p| sent.push(parse_sent(p)));
    let end = clock.now + std::time::Duration::from_secs(1);
    while let Some(deadline) = pipeline.poll_timeout() {
        if deadline > end {
            break;
        }
        pipeline.handle_timeout(deadline, &mut scratch, |p| sent.push(parse_sent(p)));
    }
    assert!(sent.len() >= 10 + 49, "{} packets", sent.len());
    assert_continuous(&sent, 960);
    assert_eq!(pipeline.stats().comfort_noise_in, 1);
    assert_eq!(
        pipeline.stats().concealed_samples,
        0,
        "no concealment of the last words"
    );
    // -40 dBov white noise has an RMS near 164; Opus narrowband keeps it in that region.
    let pcm = decode_opus(&sent[20..]);
    let level = rms(&pcm);
    assert!(level > 40.0 && level < 400.0, "noise rms {level}");
}
