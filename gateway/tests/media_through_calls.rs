//! Media through real calls: the test owns both ends' RTP sockets while SIPp does the
//! signalling, so it can check what the carrier actually receives.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::*;
use landline_codecs::G711Law;
use landline_codecs::rtp::{RtpHeader, RtpPacket};
use landline_codecs::telephone_event::TelephoneEvent;

fn socket_on(ip: [u8; 4]) -> UdpSocket {
    let socket = UdpSocket::bind(SocketAddr::from((ip, 0))).expect("media socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(5)))
        .expect("timeout");
    socket
}

fn port_of(socket: &UdpSocket) -> String {
    socket.local_addr().expect("addr").port().to_string()
}

fn event_packet(sequence: u16, timestamp: u32, event: TelephoneEvent, marker: bool) -> Vec<u8> {
    let mut packet = vec![0u8; 16];
    RtpHeader {
        marker,
        payload_type: 101,
        sequence,
        timestamp,
        ssrc: 0xC11E,
    }
    .write(&mut packet);
    event.write(&mut packet[12..]);
    packet
}

#[test]
fn audio_and_rfc4733_digits_reach_the_carrier() {
    let carrier = SocketAddr::from(([127, 0, 0, 2], free_port()));
    let gateway = Gateway::start(&[TestTrunk {
        name: "carrier",
        addr: carrier,
        probe: false,
    }]);
    let carrier_media = socket_on([127, 0, 0, 2]);
    let client_media = socket_on([127, 0, 0, 1]);
    let carrier_port = port_of(&carrier_media);
    let mut trunk = Sipp::start(
        "carrier_answer_media",
        carrier,
        None,
        1,
        &["-key", "rtp_port", &carrier_port],
    );
    std::thread::sleep(Duration::from_millis(300));
    let client_port = port_of(&client_media);
    let args = [
        "-au",
        "alice",
        "-ap",
        PASSWORD,
        "-s",
        "+15557654321",
        "-key",
        "rtp_port",
        &client_port,
    ];
    let mut client = Sipp::start(
        "client_call_media",
        SocketAddr::from(([127, 0, 0, 1], free_port())),
        Some(gateway.sip),
        1,
        &args,
    );
    let gateway_media = SocketAddr::from(([127, 0, 0, 1], client.answer_port()));

    // 1 s of tone, then the digit 5 (three updates, three end reports), then more tone.
    let mut sent = Vec::new();
    let mut sequence = 0u16;
    for i in 0..50u32 {
        sent.push(common::pcmu_tone(sequence, i * 160, 440.0));
        sequence += 1;
    }
    let digit_ts = 50 * 160;
    for step in 1..=3u16 {
        let e = TelephoneEvent {
            event: 5,
            end: false,
            volume: 10,
            duration: 160 * step,
        };
        sent.push(event_packet(sequence, digit_ts, e, step == 1));
        sequence += 1;
    }
    for _ in 0..3 {
        let e = TelephoneEvent {
            event: 5,
            end: true,
            volume: 10,
            duration: 640,
        };
        sent.push(event_packet(sequence, digit_ts, e, false));
        sequence += 1;
    }
    for i in 54..80u32 {
        sent.push(common::pcmu_tone(sequence, i * 160, 440.0));
        sequence += 1;
    }
    let mut received = Vec::new();
    let mut buf = [0u8; 2048];
    for packet in &sent {
        client_media.send_to(packet, gateway_media).expect("send");
        let until = Instant::now() + Duration::from_millis(20);
        while Instant::now() < until {
            if let Ok((n, _)) = carrier_media.recv_from(&mut buf) {
                received.push(buf[..n].to_vec());
            }
        }
    }
    assert_calls(client.finish(), 1, "client", &gateway, &[&client, &trunk]);
    assert_calls(trunk.finish(), 1, "carrier", &gateway, &[&client, &trunk]);

    let parsed: Vec<RtpPacket<'_>> = received
        .iter()
        .filter_map(|p| RtpPacket::parse(p).ok())
        .collect();
    let audio: Vec<i16> = parsed
        .iter()
        .filter(|p| p.payload_type == 0)
        .flat_map(|p| {
            let mut pcm = vec![0i16; p.payload.len()];
            G711Law::Mu.decode(p.payload, &mut pcm);
            pcm
        })
        .collect();
    assert!(
        audio.len() >= 160 * 70,
        "only {} samples reached the carrier",
        audio.len()
    );
    let events: Vec<(TelephoneEvent, u32, bool)> = parsed
        .iter()
        .filter(|p| p.payload_type == 101)
        .filter_map(|p| {
            Some((
                TelephoneEvent::parse(p.payload).ok()?,
                p.timestamp,
                p.marker,
            ))
        })
        .collect();
    assert_eq!(events.len(), 6, "every event report is relayed: {events:?}");
    assert!(
        events
            .iter()
            .all(|(e, _, _)| e.event == 5 && e.volume == 10)
    );
    assert!(events[0].2, "the first report keeps its marker");
    assert!(
        events.iter().all(|(_, ts, _)| *ts == events[0].1),
        "one timestamp per event"
    );
    assert_eq!(events.iter().filter(|(e, _, _)| e.end).count(), 3);
    // The carrier sees our stream, not the client's: a different SSRC.
    assert!(parsed.iter().all(|p| p.ssrc != 0xC11E));
    assert!(
        parsed.windows(2).all(|w| w[1].ssrc == w[0].ssrc),
        "one SSRC towards the carrier"
    );
    gateway.assert_idle();
}

/// Ten calls at once, each client sending its own tone; the carrier echoes every call's audio.
/// Each client must hear its own tone and nobody else's.
#[test]
fn concurrent_calls_never_cross_their_audio() {
    const CALLS: usize = 10;
    let carrier = SocketAddr::from(([127, 0, 0, 2], free_port()));
    let gateway = Gateway::start(&[TestTrunk {
        name: "carrier",
        addr: carrier,
        probe: false,
    }]);
    let mut trunk = Sipp::start(
        "carrier_answer",
        carrier,
        None,
        CALLS as u64,
        &["-rtp_echo"],
    );
    std::thread::sleep(Duration::from_millis(300));
    let tones: Vec<f64> = (0..CALLS).map(|i| 350.0 + 110.0 * i as f64).collect();
    let sockets: Vec<UdpSocket> = (0..CALLS).map(|_| socket_on([127, 0, 0, 1])).collect();
    let mut clients: Vec<Sipp> = sockets
        .iter()
        .map(|socket| {
            let port = port_of(socket);
            let args = [
                "-au",
                "alice",
                "-ap",
                PASSWORD,
                "-s",
                "+15557654321",
                "-key",
                "rtp_port",
                &port,
            ];
            Sipp::start(
                "client_call_media",
                SocketAddr::from(([127, 0, 0, 1], free_port())),
                Some(gateway.sip),
                1,
                &args,
            )
        })
        .collect();
    let targets: Vec<SocketAddr> = clients
        .iter()
        .map(|c| SocketAddr::from(([127, 0, 0, 1], c.answer_port())))
        .collect();

    let mut heard: Vec<Vec<i16>> = vec![Vec::new(); CALLS];
    let mut buf = [0u8; 2048];
    // 1.2 s of audio per call: the first call set up is 6 s long and the ten set-ups take a few.
    for frame in 0..60u32 {
        for (i, socket) in sockets.iter().enumerate() {
            let packet = common::pcmu_tone(frame as u16, frame * 160, tones[i]);
            socket.send_to(&packet, targets[i]).expect("send");
        }
        let until = Instant::now() + Duration::from_millis(20);
        while Instant::now() < until {
            for (i, socket) in sockets.iter().enumerate() {
                while let Ok((n, _)) = socket.recv_from(&mut buf) {
                    if let Ok(rtp) = RtpPacket::parse(&buf[..n]) {
                        let mut pcm = vec![0i16; rtp.payload.len()];
                        G711Law::Mu.decode(rtp.payload, &mut pcm);
                        heard[i].extend_from_slice(&pcm);
                    }
                }
            }
        }
    }
    for client in &mut clients {
        assert_calls(client.finish(), 1, "client", &gateway, &[client, &trunk]);
    }
    assert_calls(trunk.finish(), CALLS as u64, "carrier", &gateway, &[&trunk]);
    for (i, pcm) in heard.iter().enumerate() {
        assert!(
            pcm.len() >= 160 * 40,
            "call {i} heard only {} samples",
            pcm.len()
        );
        let settled = &pcm[800..];
        let own = tone_ratio(settled, tones[i], 8000.0);
        assert!(
            own > 0.8,
            "call {i} hears its own {} Hz at {own:.2}",
            tones[i]
        );
        for (j, &other) in tones.iter().enumerate().filter(|(j, _)| *j != i) {
            let crossed = tone_ratio(settled, other, 8000.0);
            assert!(
                crossed < 0.02,
                "call {i} hears call {j}'s {other} Hz ({crossed:.3})"
            );
        }
    }
    gateway.assert_idle();
}

/// A G.711 softphone pressing a key by SIP INFO: the carrier gets RFC 4733 on the relayed stream.
#[test]
fn a_sip_info_digit_reaches_the_carrier_as_rfc4733() {
    let carrier = SocketAddr::from(([127, 0, 0, 2], free_port()));
    let gateway = Gateway::start(&[TestTrunk {
        name: "carrier",
        addr: carrier,
        probe: false,
    }]);
    let carrier_media = socket_on([127, 0, 0, 2]);
    let carrier_port = port_of(&carrier_media);
    let mut trunk = Sipp::start(
        "carrier_answer_media",
        carrier,
        None,
        1,
        &["-key", "rtp_port", &carrier_port],
    );
    std::thread::sleep(Duration::from_millis(300));
    let client_media = socket_on([127, 0, 0, 1]);
    let client_port = port_of(&client_media);
    let args = [
        "-au",
        "alice",
        "-ap",
        PASSWORD,
        "-s",
        "+15557654321",
        "-key",
        "rtp_port",
        &client_port,
    ];
    let mut client = Sipp::start(
        "client_call_info",
        SocketAddr::from(([127, 0, 0, 1], free_port())),
        Some(gateway.sip),
        1,
        &args,
    );
    let gateway_media = SocketAddr::from(([127, 0, 0, 1], client.answer_port()));
    // Audio flows while the digit is pressed, so the digit has a stream to take its place in.
    let mut events = Vec::new();
    let mut buf = [0u8; 2048];
    for i in 0..100u32 {
        client_media
            .send_to(&common::pcmu_tone(i as u16, i * 160, 440.0), gateway_media)
            .expect("send");
        let until = Instant::now() + Duration::from_millis(20);
        while Instant::now() < until {
            if let Ok((n, _)) = carrier_media.recv_from(&mut buf) {
                if let Ok(rtp) = RtpPacket::parse(&buf[..n]) {
                    if rtp.payload_type == 101 {
                        events.push((
                            TelephoneEvent::parse(rtp.payload).expect("event"),
                            rtp.marker,
                        ));
                    }
                }
            }
        }
    }
    assert_calls(client.finish(), 1, "client", &gateway, &[&client, &trunk]);
    assert_calls(trunk.finish(), 1, "carrier", &gateway, &[&client, &trunk]);
    assert!(
        !events.is_empty(),
        "no RFC 4733 reached the carrier:\n{}",
        gateway.log()
    );
    assert!(events.iter().all(|(e, _)| e.event == 9), "{events:?}");
    assert!(events[0].1, "the first report carries the marker");
    assert_eq!(
        events.iter().filter(|(e, _)| e.end).count(),
        3,
        "{events:?}"
    );
    gateway.assert_idle();
}
