//! The media plane over real loopback sockets: a client sending browser-like Opus and a trunk
//! echoing G.711 (as SIPp's -rtp_echo does) hear each other through both transcoding
//! directions; the echo and tone calls work with nothing else; strangers' packets change
//! nothing; ports come back when calls end.

mod common;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::tone_ratio;
use landline::media::{
    CallKind, CallSpec, LatchPolicy, LegCodec, LegSpec, LegTransport, MediaCallId, MediaEvent,
    MediaPlane, PortPool,
};
use landline_codecs::rtp::{RtpHeader, RtpPacket};
use landline_codecs::{G711Law, OpusDecoder, OpusEncoder, OpusSettings, OutputStream, Timing};

const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
const OPUS_PT: u8 = 111;

fn opus_codec() -> LegCodec {
    LegCodec::Opus {
        payload_type: OPUS_PT,
        event_payload_type: Some(110),
        our_event_payload_type: None,
    }
}

fn pcmu_codec() -> LegCodec {
    LegCodec::G711 {
        law: G711Law::Mu,
        payload_type: 0,
        event_payload_type: Some(101),
        our_event_payload_type: None,
        comfort_noise_payload_type: None,
    }
}

fn leg(
    pool: &PortPool,
    remote: &UdpSocket,
    latch: LatchPolicy,
    codec: LegCodec,
    ssrc: u32,
) -> LegSpec {
    LegSpec {
        transport: LegTransport::Rtp(pool.bind(LOOPBACK).expect("bind leg")),
        remote: Some(remote.local_addr().unwrap()),
        latch,
        codec,
        output: OutputStream {
            ssrc,
            first_sequence: 100,
            first_timestamp: 1000,
        },
    }
}

fn spec(id: u64, kind: CallKind) -> CallSpec {
    CallSpec {
        id: MediaCallId(id),
        kind,
        opus: OpusSettings::default(),
        timing: Timing::default(),
        rtp_timeout: Duration::from_secs(30),
    }
}

fn endpoint() -> UdpSocket {
    let socket = UdpSocket::bind((LOOPBACK, 0)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    socket
}

/// A browser-like sender: 48 kHz Opus, 20 ms, a tone at `hz`.
struct Browser {
    encoder: OpusEncoder,
    sequence: u16,
    timestamp: u32,
    sample: usize,
    hz: f64,
}

impl Browser {
    fn new(hz: f64) -> Self {
        let settings = OpusSettings {
            bitrate: 32_000,
            complexity: 5,
            ..OpusSettings::default()
        };
        Browser {
            encoder: OpusEncoder::new(48_000, &settings).unwrap(),
            sequence: 1,
            timestamp: 0,
            sample: 0,
            hz,
        }
    }

    fn packet(&mut self) -> Vec<u8> {
        let pcm: Vec<i16> = (0..960)
            .map(|i| {
                let t = (self.sample + i) as f64 / 48_000.0;
                (8000.0 * (2.0 * std::f64::consts::PI * self.hz * t).sin()) as i16
            })
            .collect();
        self.sample += 960;
        let mut packet = vec![0u8; 1500];
        RtpHeader {
            marker: false,
            payload_type: OPUS_PT,
            sequence: self.sequence,
            timestamp: self.timestamp,
            ssrc: 0xB0B,
        }
        .write(&mut packet);
        let len = self.encoder.encode(&pcm, &mut packet[12..]).unwrap();
        packet.truncate(12 + len);
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(960);
        packet
    }
}

/// Where a plain RTP leg's socket listens.
fn leg_addr(leg: &LegSpec) -> SocketAddr {
    match &leg.transport {
        LegTransport::Rtp(socket) => socket.local_addr().expect("local addr"),
        LegTransport::WebRtc(_) => panic!("not an RTP leg"),
    }
}

/// Receives every datagram waiting on `socket`.
fn drain(socket: &UdpSocket) -> Vec<(Vec<u8>, SocketAddr)> {
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok((len, from)) = socket.recv_from(&mut buf) {
        out.push((buf[..len].to_vec(), from));
    }
    out
}

fn decode_opus(packets: &[Vec<u8>]) -> Vec<i16> {
    let mut decoder = OpusDecoder::new(8000).unwrap();
    let mut pcm = Vec::new();
    let mut frame = [0i16; 960];
    for p in packets {
        let rtp = RtpPacket::parse(p).unwrap();
        let n = decoder.decode(rtp.payload, &mut frame).unwrap();
        pcm.extend_from_slice(&frame[..n]);
    }
    pcm
}

#[tokio::test(flavor = "current_thread")]
async fn a_bridged_call_transcodes_both_ways_over_real_sockets() {
    let pool = Arc::new(PortPool::new(42_000, 42_099));
    let (plane, mut events) = MediaPlane::start(2, pool.clone(), None, 0).unwrap();
    let client = endpoint();
    let trunk = endpoint();
    let client_leg = leg(&pool, &client, LatchPolicy::Learn, opus_codec(), 0xC1);
    let trunk_leg = leg(&pool, &trunk, LatchPolicy::Strict, pcmu_codec(), 0x71);
    let (client_port, trunk_port) = (leg_addr(&client_leg), leg_addr(&trunk_leg));
    let shard = plane
        .add_call(spec(
            1,
            CallKind::Bridge {
                client: client_leg,
                trunk: trunk_leg,
            },
        ))
        .unwrap();

    let mut browser = Browser::new(440.0);
    let (mut at_trunk, mut at_client) = (Vec::new(), Vec::new());
    // A stranger sprays the client port with junk and with plausible RTP throughout.
    let stranger = endpoint();
    for _ in 0..100 {
        client.send_to(&browser.packet(), client_port).unwrap();
        stranger
            .send_to(
                &[0x80, OPUS_PT, 0, 9, 0, 0, 0, 0, 0, 0, 0, 9, 1, 2, 3],
                client_port,
            )
            .unwrap();
        stranger
            .send_to(b"INVITE sip:x SIP/2.0\r\n\r\n", client_port)
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        // The trunk echoes what it gets, like SIPp -rtp_echo.
        for (packet, from) in drain(&trunk) {
            assert_eq!(from, trunk_port, "media comes from the leg's own port");
            trunk.send_to(&packet, trunk_port).unwrap();
            at_trunk.push(packet);
        }
        for (packet, from) in drain(&client) {
            assert_eq!(from, client_port);
            at_client.push(packet);
        }
    }
    std::thread::sleep(Duration::from_millis(50));
    at_client.extend(drain(&client).into_iter().map(|(p, _)| p));

    // The trunk got 20 ms PCMU on our SSRC with the tone in it.
    assert!(
        at_trunk.len() >= 95,
        "trunk received {} packets",
        at_trunk.len()
    );
    let pcmu: Vec<i16> = at_trunk[10..]
        .iter()
        .flat_map(|p| {
            let rtp = RtpPacket::parse(p).unwrap();
            assert_eq!(
                (rtp.payload_type, rtp.ssrc, rtp.payload.len()),
                (0, 0x71, 160)
            );
            let mut pcm = vec![0i16; 160];
            G711Law::Mu.decode(rtp.payload, &mut pcm);
            pcm
        })
        .collect();
    assert!(tone_ratio(&pcmu, 440.0, 8000.0) > 0.7);

    // The client got Opus on our SSRC, and it is its own tone after two transcodings.
    assert!(
        at_client.len() >= 90,
        "client received {} packets",
        at_client.len()
    );
    assert!(
        at_client
            .iter()
            .all(|p| RtpPacket::parse(p).unwrap().ssrc == 0xC1)
    );
    let heard = decode_opus(&at_client[10..]);
    let ratio = tone_ratio(&heard, 440.0, 8000.0);
    assert!(ratio > 0.7, "440 Hz holds {ratio:.2} of the echoed power");

    let counters = plane.counters().nth(shard).unwrap();
    assert!(
        counters
            .packets_dropped
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 100
    );

    plane
        .send(shard, landline::media::Command::Remove(MediaCallId(1)))
        .unwrap();
    let removed = tokio::time::timeout(Duration::from_secs(2), events.recv())
        .await
        .unwrap();
    match removed {
        Some(MediaEvent::Removed(MediaCallId(1), stats)) => {
            assert!(stats.client_packets_in >= 95 && stats.trunk_packets_in >= 90);
        }
        other => panic!("expected Removed, got {other:?}"),
    }
    assert_eq!(pool.available(), pool.capacity(), "ports are back");
    assert_eq!(plane.active_calls(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn the_echo_and_tone_calls_need_nothing_else() {
    let pool = Arc::new(PortPool::new(42_100, 42_199));
    let (plane, _events) = MediaPlane::start(1, pool.clone(), None, 0).unwrap();
    let echo_client = endpoint();
    let tone_client = endpoint();
    let echo_leg = leg(&pool, &echo_client, LatchPolicy::Learn, opus_codec(), 0xE);
    let echo_port = leg_addr(&echo_leg);
    plane
        .add_call(spec(1, CallKind::Echo { client: echo_leg }))
        .unwrap();
    let tone_leg = leg(&pool, &tone_client, LatchPolicy::Learn, pcmu_codec(), 0x7);
    plane
        .add_call(spec(
            2,
            CallKind::Tone {
                client: tone_leg,
                hz: 1000,
            },
        ))
        .unwrap();

    let mut browser = Browser::new(600.0);
    let started = Instant::now();
    let mut echoed = Vec::new();
    for _ in 0..60 {
        echo_client.send_to(&browser.packet(), echo_port).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        echoed.extend(drain(&echo_client).into_iter().map(|(p, _)| p));
    }
    let tone: Vec<i16> = drain(&tone_client)
        .iter()
        .flat_map(|(p, _)| {
            let rtp = RtpPacket::parse(p).unwrap();
            let mut pcm = vec![0i16; rtp.payload.len()];
            G711Law::Mu.decode(rtp.payload, &mut pcm);
            pcm
        })
        .collect();
    let elapsed_frames = started.elapsed().as_millis() as usize / 20;
    assert!(echoed.len() >= 55, "echo returned {} packets", echoed.len());
    assert!(tone_ratio(&decode_opus(&echoed[5..]), 600.0, 8000.0) > 0.7);
    assert!(
        tone.len() / 160 + 5 >= elapsed_frames,
        "tone sent {} frames in {elapsed_frames}",
        tone.len() / 160
    );
    assert!(tone_ratio(&tone, 1000.0, 8000.0) > 0.9);
}

#[test]
fn a_call_is_refused_when_the_port_range_is_exhausted() {
    let pool = PortPool::new(42_200, 42_203);
    let _a = pool.bind(LOOPBACK).unwrap();
    let _b = pool.bind(LOOPBACK).unwrap();
    assert!(matches!(
        pool.bind(LOOPBACK),
        Err(landline::media::MediaError::PortsExhausted)
    ));
}
