//! The built-in numbers (tone, echo) heard by a real SIP client, and trunks marked down and up
//! again by OPTIONS probes.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::*;
use landline_codecs::G711Law;
use landline_codecs::rtp::{RtpHeader, RtpPacket};

fn media_socket() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("media socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(10)))
        .expect("timeout");
    socket
}

fn client_args(port: u16, number: &str) -> Vec<String> {
    [
        "-au",
        "alice",
        "-ap",
        PASSWORD,
        "-s",
        number,
        "-key",
        "rtp_port",
        &port.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// PCMU payloads received on `socket` until `until`, decoded, with their sources.
fn receive_pcmu(socket: &UdpSocket, until: Instant) -> (Vec<i16>, Option<SocketAddr>) {
    let mut pcm = Vec::new();
    let mut from = None;
    let mut buf = [0u8; 2048];
    while Instant::now() < until {
        if let Ok((n, source)) = socket.recv_from(&mut buf) {
            if let Ok(rtp) = RtpPacket::parse(&buf[..n]) {
                if rtp.payload_type == 0 {
                    let mut frame = vec![0i16; rtp.payload.len()];
                    G711Law::Mu.decode(rtp.payload, &mut frame);
                    pcm.extend_from_slice(&frame);
                    from = Some(source);
                }
            }
        }
    }
    (pcm, from)
}

#[test]
fn the_tone_number_plays_a_1_khz_tone() {
    let gateway = Gateway::start(&[]);
    let media = media_socket();
    let args = client_args(media.local_addr().expect("addr").port(), "601");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut client = Sipp::start(
        "client_call_media",
        SocketAddr::from(([127, 0, 0, 1], free_port())),
        Some(gateway.sip),
        1,
        &args,
    );
    let (pcm, from) = receive_pcmu(&media, Instant::now() + Duration::from_millis(2500));
    assert_calls(client.finish(), 1, "client", &gateway, &[&client]);
    assert!(
        pcm.len() >= 8000 * 3 / 2,
        "only {} samples of tone arrived",
        pcm.len()
    );
    assert!(from.is_some());
    let ratio = tone_ratio(&pcm, 1000.0, 8000.0);
    assert!(ratio > 0.9, "1 kHz holds {ratio:.2} of the power");
    gateway.assert_idle();
}

#[test]
fn the_echo_number_returns_the_callers_audio() {
    let gateway = Gateway::start(&[]);
    let media = media_socket();
    let args = client_args(media.local_addr().expect("addr").port(), "600");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut client = Sipp::start(
        "client_call_media",
        SocketAddr::from(([127, 0, 0, 1], free_port())),
        Some(gateway.sip),
        1,
        &args,
    );
    // The gateway's media port is in its 200 OK, which SIPp logs.
    let port = client.answer_port();
    let gateway_media = SocketAddr::from(([127, 0, 0, 1], port));
    let mut echoed = Vec::new();
    let mut buf = [0u8; 2048];
    for i in 0..100u32 {
        let pcm: Vec<i16> = (0..160)
            .map(|n| {
                let t = f64::from(i * 160 + n) / 8000.0;
                (8000.0 * (2.0 * std::f64::consts::PI * 600.0 * t).sin()) as i16
            })
            .collect();
        let mut packet = vec![0u8; 12 + 160];
        RtpHeader {
            marker: i == 0,
            payload_type: 0,
            sequence: i as u16,
            timestamp: i * 160,
            ssrc: 0x600,
        }
        .write(&mut packet);
        G711Law::Mu.encode(&pcm, &mut packet[12..]);
        media.send_to(&packet, gateway_media).expect("send");
        let until = Instant::now() + Duration::from_millis(20);
        while Instant::now() < until {
            if let Ok((n, _)) = media.recv_from(&mut buf) {
                if let Ok(rtp) = RtpPacket::parse(&buf[..n]) {
                    assert_ne!(rtp.ssrc, 0x600, "the echo carries the gateway's own SSRC");
                    let mut frame = vec![0i16; rtp.payload.len()];
                    G711Law::Mu.decode(rtp.payload, &mut frame);
                    echoed.extend_from_slice(&frame);
                }
            }
        }
    }
    // The last echoes are still on their way when the sending stops.
    let until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < until {
        if let Ok((n, _)) = media.recv_from(&mut buf) {
            if let Ok(rtp) = RtpPacket::parse(&buf[..n]) {
                let mut frame = vec![0i16; rtp.payload.len()];
                G711Law::Mu.decode(rtp.payload, &mut frame);
                echoed.extend_from_slice(&frame);
            }
        }
    }
    assert_calls(client.finish(), 1, "client", &gateway, &[&client]);
    // 100 frames were sent; a loaded machine may lose the odd datagram on loopback.
    assert!(
        echoed.len() >= 160 * 90,
        "only {} samples came back",
        echoed.len()
    );
    let ratio = tone_ratio(&echoed[1600..], 600.0, 8000.0);
    assert!(ratio > 0.8, "600 Hz holds {ratio:.2} of the echoed power");
    gateway.assert_idle();
}

#[test]
fn a_trunk_that_stops_answering_options_is_skipped_until_it_answers_again() {
    let carrier = SocketAddr::from(([127, 0, 0, 2], free_port()));
    let gateway = Gateway::start(&[TestTrunk {
        name: "carrier",
        addr: carrier,
        probe: true,
    }]);
    // Nobody answers at the carrier: two lost probes (1 s apart, each timing out) mark it down.
    let deadline = Instant::now() + Duration::from_secs(60);
    while gateway.metric("landline_trunk_up") != 0.0 {
        assert!(
            Instant::now() < deadline,
            "trunk never marked down:\n{}",
            gateway.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let args = ["-au", "alice", "-ap", PASSWORD, "-s", "+15557654321"];
    let mut client = Sipp::start(
        "client_call_refused",
        SocketAddr::from(([127, 0, 0, 1], free_port())),
        Some(gateway.sip),
        1,
        &args,
    );
    assert_calls(
        client.finish(),
        1,
        "client refused with 503",
        &gateway,
        &[&client],
    );

    // The carrier comes back: SIPp answers the probes (-aa), and the trunk is up again.
    let mut back = Sipp::start("carrier_answer", carrier, None, 1000, &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while gateway.metric("landline_trunk_up") != 1.0 {
        assert!(
            Instant::now() < deadline,
            "trunk never came back:\n{}",
            gateway.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    back.stop();
    gateway.assert_idle();
}
