//! Carriers' varied but legal SIP, end to end: late offers (the answer in the ACK), early
//! dialogs whose SDP changes or forks, 100rel, answers shaped unlike ours, a refused stream.
//! SIPp plays the carrier (and the client); the test owns the carrier's RTP sockets, sends a
//! tone into the gateway and counts where the media the gateway sends back arrives. The far
//! client runs SIPp's `-rtp_echo`, so what comes back crossed the gateway both ways.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::*;
use landline_codecs::G711Law;
use landline_codecs::rtp::{RtpHeader, RtpPacket};
use landline_codecs::telephone_event::TelephoneEvent;

fn carrier_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 2], free_port()))
}

fn client_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

fn one_carrier() -> (SocketAddr, Gateway) {
    let carrier = carrier_addr();
    let gateway = Gateway::start(&[TestTrunk {
        name: "carrier",
        addr: carrier,
        probe: false,
    }]);
    (carrier, gateway)
}

/// An RTP socket on the carrier's address.
fn carrier_media() -> (UdpSocket, String) {
    let socket = UdpSocket::bind(SocketAddr::from(([127, 0, 0, 2], 0))).expect("media socket");
    socket
        .set_nonblocking(true)
        .expect("non-blocking media socket");
    let port = socket.local_addr().expect("addr").port().to_string();
    (socket, port)
}

/// A softphone registered as alice, answering (PCMU) with `-rtp_echo`.
fn echoing_softphone(gateway: &Gateway) -> Sipp {
    softphone(gateway, "client_answer", &["-rtp_echo"])
}

/// A softphone registered as alice, then answering with `scenario`.
fn softphone(gateway: &Gateway, scenario: &str, extra: &[&str]) -> Sipp {
    let phone = client_addr();
    let mut register = Sipp::start(
        "client_register",
        phone,
        Some(gateway.sip),
        1,
        &["-au", "alice", "-ap", PASSWORD],
    );
    assert_calls(register.finish(), 1, "register", gateway, &[&register]);
    Sipp::start(scenario, phone, None, 1, extra)
}

/// A client calling out through the trunk (PCMU and PCMA offered), talking for `ms`, echoing.
fn echoing_client(gateway: &Gateway, ms: u32) -> Sipp {
    let ms = ms.to_string();
    let args = [
        "-au",
        "alice",
        "-ap",
        PASSWORD,
        "-s",
        "+15557654321",
        "-rtp_echo",
        "-d",
        &ms,
    ];
    Sipp::start(
        "client_call_long",
        client_addr(),
        Some(gateway.sip),
        1,
        &args,
    )
}

/// An RTP socket on the client's address.
fn client_media() -> (UdpSocket, String) {
    let socket = UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("media socket");
    socket
        .set_nonblocking(true)
        .expect("non-blocking media socket");
    let port = socket.local_addr().expect("addr").port().to_string();
    (socket, port)
}

/// A client calling out (PCMU) with its media at `port`, talking for `ms` after the answer.
fn talking_client(gateway: &Gateway, port: &str, ms: u32) -> Sipp {
    talking_client_with(gateway, "client_call_talk", port, ms)
}

/// [`talking_client`] with another scenario (`client_call_talk_g711`: PCMU and PCMA offered).
fn talking_client_with(gateway: &Gateway, scenario: &str, port: &str, ms: u32) -> Sipp {
    let ms = ms.to_string();
    let args = [
        "-au",
        "alice",
        "-ap",
        PASSWORD,
        "-s",
        "+15557654321",
        "-key",
        "rtp_port",
        port,
        "-d",
        &ms,
    ];
    Sipp::start(scenario, client_addr(), Some(gateway.sip), 1, &args)
}

/// Where the carrier's SIPp was told to send media: the gateway's trunk-side port, from the
/// first SDP in `log` after `marker`.
fn gateway_port_after(sipp: &Sipp, marker: &str) -> SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let log = sipp.messages();
        let port = log.find(marker).and_then(|i| {
            log[i..]
                .lines()
                .find_map(|l| l.strip_prefix("m=audio "))?
                .split(' ')
                .next()?
                .parse::<u16>()
                .ok()
        });
        if let Some(port) = port {
            return SocketAddr::from(([127, 0, 0, 1], port));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no SDP after {marker:?}:\n{}", sipp.diagnostics());
}

/// Media arrivals: (time since start, which socket, payload type, payload).
struct Heard(Vec<(Duration, usize, u8, Vec<u8>)>);

impl Heard {
    fn count(&self, socket: usize, from: Duration, to: Duration) -> usize {
        self.of(socket, from, to, None).count()
    }

    /// The arrivals on `socket` in `[from, to)`, of one payload type if given.
    fn of(
        &self,
        socket: usize,
        from: Duration,
        to: Duration,
        payload_type: Option<u8>,
    ) -> impl Iterator<Item = &(Duration, usize, u8, Vec<u8>)> {
        self.0.iter().filter(move |(t, s, pt, _)| {
            *s == socket && *t >= from && *t < to && payload_type.is_none_or(|p| p == *pt)
        })
    }
}

/// Sends a PCMU (or PCMA, `payload_type` 8) tone from `from` to `to` every 20 ms for `length`,
/// recording every RTP packet arriving on `listen`.
fn talk(from: &UdpSocket, to: SocketAddr, listen: &[&UdpSocket], length: Duration) -> Heard {
    talk_with(from, to, listen, length, 0)
}

fn talk_with(
    from: &UdpSocket,
    to: SocketAddr,
    listen: &[&UdpSocket],
    length: Duration,
    payload_type: u8,
) -> Heard {
    talk_packets(from, to, listen, length, |sequence| {
        let mut packet = pcmu_tone(sequence, u32::from(sequence) * 160, 440.0);
        packet[1] = (packet[1] & 0x80) | payload_type;
        packet
    })
}

/// Sends `packet(sequence)` from `from` to `to` every 20 ms for `length`, recording every RTP
/// packet arriving on `listen`.
fn talk_packets(
    from: &UdpSocket,
    to: SocketAddr,
    listen: &[&UdpSocket],
    length: Duration,
    mut packet: impl FnMut(u16) -> Vec<u8>,
) -> Heard {
    let start = Instant::now();
    let mut heard = Vec::new();
    let mut buf = [0u8; 2048];
    let mut sequence = 0u16;
    while start.elapsed() < length {
        let _ = from.send_to(&packet(sequence), to);
        sequence = sequence.wrapping_add(1);
        let until = start + Duration::from_millis(20 * u64::from(sequence));
        while Instant::now() < until {
            for (i, socket) in listen.iter().enumerate() {
                while let Ok((n, _)) = socket.recv_from(&mut buf) {
                    if let Ok(rtp) = RtpPacket::parse(&buf[..n]) {
                        heard.push((start.elapsed(), i, rtp.payload_type, rtp.payload.to_vec()));
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    Heard(heard)
}

/// How much of the G.711 audio in `payloads` (in `law`) is the test's 440 Hz tone, 0 to 1.
fn tone_in<'a>(law: G711Law, payloads: impl Iterator<Item = &'a Vec<u8>>) -> f64 {
    let mut pcm = Vec::new();
    for payload in payloads {
        let mut frame = vec![0i16; payload.len()];
        law.decode(payload, &mut frame);
        pcm.extend_from_slice(&frame);
    }
    tone_ratio(&pcm, 440.0, 8000.0)
}

const S: fn(u64) -> Duration = Duration::from_millis;

#[test]
fn a_late_offer_from_the_carrier_is_offered_in_our_200_and_answered_in_its_ack() {
    let (carrier, gateway) = one_carrier();
    let mut phone = echoing_softphone(&gateway);
    let (media, port) = carrier_media();
    let mut trunk = Sipp::start(
        "carrier_late_offer",
        carrier,
        Some(gateway.sip),
        1,
        &[
            "-s",
            "+15551230001",
            "-key",
            "rtp_port",
            &port,
            "-d",
            "2500",
        ],
    );
    let target = gateway_port_after(&trunk, "SIP/2.0 200 OK");
    let heard = talk(&media, target, &[&media], S(2000));
    assert_calls(trunk.finish(), 1, "carrier", &gateway, &[&trunk, &phone]);
    assert_calls(phone.finish(), 1, "softphone", &gateway, &[&trunk, &phone]);
    let back = heard.count(0, S(0), S(2000));
    assert!(
        back >= 50,
        "the tone crossed the gateway both ways only {back} times\n{}",
        gateway.log()
    );
    gateway.assert_idle();
}

/// A DID call from carrier `scenario`, which re-INVITEs to move its media from its first socket
/// (`rtp_port`) to its second (`rtp_port2`), answered by a softphone talking PCMU for 3.3 s
/// while the carrier's sockets only listen; both sides' SIPp runs checked. What the carrier's
/// two sockets heard (index 0 and 1).
fn carrier_moving_its_media(scenario: &str) -> (Gateway, Sipp, Heard) {
    let (carrier, gateway) = one_carrier();
    let (phone_media, phone_port) = client_media();
    let mut phone = softphone(
        &gateway,
        "client_answer_media",
        &["-key", "rtp_port", &phone_port],
    );
    let (first, first_port) = carrier_media();
    let (second, second_port) = carrier_media();
    let mut trunk = Sipp::start(
        scenario,
        carrier,
        Some(gateway.sip),
        1,
        &[
            "-s",
            "+15551230001",
            "-key",
            "rtp_port",
            &first_port,
            "-key",
            "rtp_port2",
            &second_port,
        ],
    );
    let target = gateway_port_after(&phone, "INVITE sip:");
    let heard = talk(&phone_media, target, &[&first, &second], S(3300));
    assert_calls(trunk.finish(), 1, "carrier", &gateway, &[&trunk, &phone]);
    assert_calls(phone.finish(), 1, "softphone", &gateway, &[&trunk, &phone]);
    (gateway, trunk, heard)
}

#[test]
fn a_carrier_reinvite_without_sdp_gets_our_offer_and_media_follows_the_ack() {
    let (gateway, trunk, heard) = carrier_moving_its_media("carrier_reinvite_late");
    let at_carrier = trunk.messages();
    let offer = at_carrier
        .split("SIP/2.0 200 OK")
        .map(|m| m.split("UDP message").next().unwrap_or(""))
        .find(|m| m.contains("CSeq: 2 INVITE"))
        .unwrap_or_else(|| panic!("no 200 to the re-INVITE:\n{at_carrier}"));
    assert!(offer.contains("m=audio"), "our 200 offers: {offer}");
    let (before, after) = (
        heard.count(0, S(0), S(1300)),
        heard.count(1, S(2000), S(3300)),
    );
    assert!(
        before >= 30 && after >= 30,
        "media at the first port {before}, at the ACK's port {after}\n{}",
        gateway.log()
    );
    assert!(
        heard.count(0, S(2300), S(3300)) <= 3,
        "media left the old port"
    );
    gateway.assert_idle();
}

#[test]
fn early_media_moves_to_the_address_of_the_200s_answer() {
    let (carrier, gateway) = one_carrier();
    let (early, early_port) = carrier_media();
    let (answered, answered_port) = carrier_media();
    let mut trunk = Sipp::start(
        "carrier_183_then_200_moved",
        carrier,
        None,
        1,
        &[
            "-key",
            "rtp_port",
            &early_port,
            "-key",
            "rtp_port2",
            &answered_port,
        ],
    );
    std::thread::sleep(S(300));
    let (phone, phone_port) = client_media();
    let mut client = talking_client(&gateway, &phone_port, 1500);
    // The gateway's client-side port, from its 183; the carrier sends nothing, so what
    // arrives where shows where the gateway sends.
    let target = gateway_port_after(&client, "SIP/2.0 183");
    let heard = talk(&phone, target, &[&early, &answered], S(3000));
    assert_calls(client.finish(), 1, "client", &gateway, &[&client, &trunk]);
    assert_calls(trunk.finish(), 1, "carrier", &gateway, &[&client, &trunk]);
    let (during, after) = (
        heard.count(0, S(200), S(1300)),
        heard.count(1, S(1800), S(2800)),
    );
    assert!(
        during >= 20 && after >= 30,
        "early media at the 183's port {during}, after the 200 at its port {after}\n{}",
        gateway.log()
    );
    assert!(
        heard.count(0, S(1800), S(3000)) <= 3,
        "media left the 183's port"
    );
    gateway.assert_idle();
}

#[test]
fn forked_early_dialogs_end_with_media_and_the_dialog_of_the_fork_that_answered() {
    let (carrier, gateway) = one_carrier();
    let (fork1, fork1_port) = carrier_media();
    let (fork2, fork2_port) = carrier_media();
    let mut trunk = Sipp::start(
        "carrier_forked_early",
        carrier,
        None,
        1,
        &[
            "-key",
            "rtp_port",
            &fork1_port,
            "-key",
            "rtp_port2",
            &fork2_port,
        ],
    );
    std::thread::sleep(S(300));
    let (phone, phone_port) = client_media();
    let mut client = talking_client(&gateway, &phone_port, 1500);
    let target = gateway_port_after(&client, "SIP/2.0 183");
    let heard = talk(&phone, target, &[&fork1, &fork2], S(3200));
    assert_calls(client.finish(), 1, "client", &gateway, &[&client, &trunk]);
    assert_calls(trunk.finish(), 1, "carrier", &gateway, &[&client, &trunk]);
    assert!(
        heard.count(1, S(1000), S(1600)) >= 10,
        "the second fork's early media was followed\n{}",
        gateway.log()
    );
    assert!(
        heard.count(0, S(2300), S(3200)) >= 30,
        "media ends at the answering fork\n{}",
        gateway.log()
    );
    let at_carrier = trunk.messages();
    let bye = &at_carrier[at_carrier.rfind("BYE sip:").unwrap_or(0)..];
    assert!(
        bye.contains("SIPpTag01"),
        "BYE to the fork that answered: {bye}"
    );
    gateway.assert_idle();
}

#[test]
fn a_carrier_requiring_100rel_is_pracked_and_the_bye_cseq_follows_the_pracks() {
    let (carrier, gateway) = one_carrier();
    let mut trunk = Sipp::start("carrier_100rel", carrier, None, 1, &["-rtp_echo"]);
    std::thread::sleep(S(300));
    let mut client = echoing_client(&gateway, 1000);
    assert_calls(client.finish(), 1, "client", &gateway, &[&client, &trunk]);
    assert_calls(trunk.finish(), 1, "carrier", &gateway, &[&client, &trunk]);
    let at_carrier = trunk.messages();
    let cseq_of = |method: &str| -> Vec<u32> {
        at_carrier
            .split(&format!("{method} sip:"))
            .skip(1)
            .filter_map(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("CSeq: "))?
                    .split(' ')
                    .next()?
                    .parse()
                    .ok()
            })
            .collect()
    };
    let (pracks, byes) = (cseq_of("PRACK"), cseq_of("BYE"));
    assert_eq!(pracks.len(), 2, "{at_carrier}");
    assert!(pracks[1] > pracks[0], "PRACK CSeqs {pracks:?}");
    assert!(
        byes.iter().all(|b| *b > pracks[1]),
        "BYE {byes:?} after PRACKs {pracks:?}"
    );
    gateway.assert_idle();
}

#[test]
fn an_answer_refusing_the_audio_stream_fails_the_call_cleanly() {
    let (carrier, gateway) = one_carrier();
    let mut trunk = Sipp::start("carrier_answer_port_zero", carrier, None, 1, &[]);
    std::thread::sleep(S(300));
    let mut client = Sipp::start(
        "client_call_not_acceptable",
        client_addr(),
        Some(gateway.sip),
        1,
        &["-au", "alice", "-ap", PASSWORD, "-s", "+15557654321"],
    );
    let client_stats = client.finish();
    assert_calls(trunk.finish(), 1, "carrier", &gateway, &[&client, &trunk]);
    let at_client = client.messages();
    assert!(
        at_client.contains("SIP/2.0 488"),
        "the client hears 488 ({client_stats:?}):\n{at_client}"
    );
    let cdrs = gateway.wait_cdrs(1);
    assert_eq!(cdrs[0]["hangup_cause"], "bad_trunk_answer");
    gateway.assert_idle();
}

#[test]
fn an_answer_in_pcma_with_its_own_event_type_ptime_and_media_level_address_carries_media() {
    let (carrier, gateway) = one_carrier();
    let (media, port) = carrier_media();
    let rtcp = (port.parse::<u16>().unwrap_or(0) + 1).to_string();
    let mut trunk = Sipp::start(
        "carrier_answer_shapes",
        carrier,
        None,
        1,
        &["-key", "rtp_port", &port, "-key", "rtp_port_rtcp", &rtcp],
    );
    std::thread::sleep(S(300));
    let mut client = echoing_client(&gateway, 2000);
    let target = gateway_port_after(&trunk, "INVITE sip:");
    let heard = talk_with(&media, target, &[&media], S(1800), 8);
    assert_calls(client.finish(), 1, "client", &gateway, &[&client, &trunk]);
    assert_calls(trunk.finish(), 1, "carrier", &gateway, &[&client, &trunk]);
    let pcma = heard.0.iter().filter(|(_, _, pt, _)| *pt == 8).count();
    assert!(
        pcma >= 40,
        "PCMA came back {pcma} times of {}\n{}",
        heard.0.len(),
        gateway.log()
    );
    gateway.assert_idle();
}

#[test]
fn a_carrier_whose_200_says_pcma_after_early_media_in_pcmu_gets_pcma_with_the_clients_audio() {
    let (carrier, gateway) = one_carrier();
    let (media, media_port) = carrier_media();
    let mut trunk = Sipp::start(
        "carrier_183_pcmu_200_pcma",
        carrier,
        None,
        1,
        &["-key", "rtp_port", &media_port],
    );
    std::thread::sleep(S(300));
    let (phone, phone_port) = client_media();
    // PCMU and PCMA offered, so the gateway offers the carrier both; PCMU answered with the 183.
    let mut client = talking_client_with(&gateway, "client_call_talk_g711", &phone_port, 1500);
    // The client talks PCMU from the 183 on; the carrier only listens.
    let target = gateway_port_after(&client, "SIP/2.0 183");
    let heard = talk(&phone, target, &[&media], S(3000));
    assert_calls(client.finish(), 1, "client", &gateway, &[&client, &trunk]);
    assert_calls(trunk.finish(), 1, "carrier", &gateway, &[&client, &trunk]);
    let (early, answered) = (
        heard.of(0, S(200), S(1300), Some(0)).count(),
        heard.of(0, S(1800), S(2800), Some(8)).count(),
    );
    assert!(
        early >= 20 && answered >= 30,
        "PCMU during early media {early}, PCMA after the 200 {answered}\n{}",
        gateway.log()
    );
    let stale = heard.of(0, S(1800), S(3000), Some(0)).count();
    assert!(stale <= 3, "PCMU still sent after the 200: {stale}");
    let tone = tone_in(
        G711Law::A,
        heard.of(0, S(1800), S(2800), Some(8)).map(|h| &h.3),
    );
    assert!(tone > 0.8, "the client's tone in the PCMA: {tone:.2}");
    let cdrs = gateway.wait_cdrs(1);
    assert_ne!(cdrs[0]["hangup_cause"], "bad_trunk_answer", "{:?}", cdrs[0]);
    gateway.assert_idle();
}

#[test]
fn a_carrier_reinvite_moving_its_media_and_switching_to_pcma_is_answered_and_followed() {
    // The scenario checks that our 200 to its re-INVITE answers PCMA (the call fails otherwise).
    let (gateway, _trunk, heard) = carrier_moving_its_media("carrier_reinvite_codec");
    let (before, after) = (
        heard.of(0, S(0), S(1300), Some(0)).count(),
        heard.of(1, S(2000), S(3300), Some(8)).count(),
    );
    assert!(
        before >= 30 && after >= 30,
        "PCMU at the first port {before}, PCMA at the re-INVITE's port {after}\n{}",
        gateway.log()
    );
    assert!(
        heard.count(0, S(2300), S(3300)) <= 3,
        "media left the old port"
    );
    let pcmu_at_new = heard.of(1, S(0), S(3300), Some(0)).count();
    assert!(pcmu_at_new <= 3, "PCMU at the new port: {pcmu_at_new}");
    let tone = tone_in(
        G711Law::A,
        heard.of(1, S(2000), S(3300), Some(8)).map(|h| &h.3),
    );
    assert!(tone > 0.8, "the phone's tone in the PCMA: {tone:.2}");
    gateway.assert_idle();
}

/// An RFC 4733 report of `digit` (event code) with `payload_type`, on the test's stream.
fn event_packet(payload_type: u8, sequence: u16, timestamp: u32, digit: u8) -> Vec<u8> {
    let mut packet = vec![0u8; 16];
    RtpHeader {
        marker: false,
        payload_type,
        sequence,
        timestamp,
        ssrc: CARRIER_SSRC,
    }
    .write(&mut packet);
    TelephoneEvent {
        event: digit,
        end: false,
        volume: 10,
        duration: 160,
    }
    .write(&mut packet[12..]);
    packet
}

#[test]
fn events_reach_a_carrier_answering_another_event_type_with_its_type_and_come_back_with_ours() {
    let (carrier, gateway) = one_carrier();
    let (media, media_port) = carrier_media();
    // Our offer says telephone-event 101; the carrier's answer 96.
    let mut trunk = Sipp::start(
        "carrier_answer_event_96",
        carrier,
        None,
        1,
        &["-key", "rtp_port", &media_port],
    );
    std::thread::sleep(S(300));
    let (phone, phone_port) = client_media();
    let mut client = talking_client(&gateway, &phone_port, 3000);
    let target = gateway_port_after(&client, "SIP/2.0 200");
    // The client (PCMU, events at 101) talks, with a digit 7 from packet 30 to 40.
    let to_carrier = talk_packets(&phone, target, &[&media], S(1600), |sequence| {
        if (30..40).contains(&sequence) {
            event_packet(101, sequence, 30 * 160, 7)
        } else {
            pcmu_tone(sequence, u32::from(sequence) * 160, 440.0)
        }
    });
    // Then the carrier sends a digit 3 with our type, 101 (RFC 3264), and a 9 with its own.
    let trunk_side = gateway_port_after(&trunk, "INVITE sip:");
    let to_client = talk_packets(
        &media,
        trunk_side,
        &[&phone],
        S(800),
        |sequence| match sequence {
            10..20 => event_packet(101, sequence, 10 * 160, 3),
            25..35 => event_packet(96, sequence, 25 * 160, 9),
            _ => pcmu_tone(sequence, u32::from(sequence) * 160, 440.0),
        },
    );
    assert_calls(client.finish(), 1, "client", &gateway, &[&client, &trunk]);
    assert_calls(trunk.finish(), 1, "carrier", &gateway, &[&client, &trunk]);
    let all = S(10_000);
    let sent: Vec<u8> = to_carrier
        .of(0, S(0), all, Some(96))
        .map(|h| h.3[0])
        .collect();
    assert!(
        sent.len() >= 8 && sent.iter().all(|d| *d == 7),
        "the digit reached the carrier with its type 96: {sent:?}\n{}",
        gateway.log()
    );
    let wrong = to_carrier.of(0, S(0), all, Some(101)).count();
    assert_eq!(wrong, 0, "events sent to the carrier with our type");
    let back: Vec<u8> = to_client
        .of(0, S(0), all, Some(101))
        .map(|h| h.3[0])
        .collect();
    assert!(
        back.iter().filter(|d| **d == 3).count() >= 8
            && back.iter().filter(|d| **d == 9).count() >= 8,
        "the carrier's digits (3 with PT 101, 9 with PT 96) at the client: {back:?}\n{}",
        gateway.log()
    );
    // Both were seen as digits from the trunk (call control hears of them).
    let log = gateway.log();
    for digit in ['3', '9'] {
        assert!(
            log.contains(&format!("role=Trunk digit={digit}")),
            "digit {digit} from the trunk not reported\n{log}"
        );
    }
    gateway.assert_idle();
}

/// The test's 440 Hz tone as an A-law packet with `payload_type`.
fn pcma_tone(payload_type: u8, sequence: u16) -> Vec<u8> {
    let mut packet = pcmu_tone(sequence, u32::from(sequence) * 160, 440.0);
    let mut pcm = [0i16; 160];
    G711Law::Mu.decode(&packet[12..], &mut pcm);
    G711Law::A.encode(&pcm, &mut packet[12..]);
    packet[1] = (packet[1] & 0x80) | payload_type;
    packet
}

#[test]
fn a_carrier_giving_pcma_a_dynamic_type_gets_it_with_that_type_and_may_send_either() {
    let (carrier, gateway) = one_carrier();
    let (media, media_port) = carrier_media();
    // Our offer says PCMA is 8; the carrier's answer maps it to 96.
    let mut trunk = Sipp::start(
        "carrier_answer_pcma_96",
        carrier,
        None,
        1,
        &["-key", "rtp_port", &media_port],
    );
    std::thread::sleep(S(300));
    let (phone, phone_port) = client_media();
    let mut client = talking_client_with(&gateway, "client_call_talk_g711", &phone_port, 3000);
    // The client was answered PCMA (8): it talks PCMA.
    let target = gateway_port_after(&client, "SIP/2.0 200");
    let to_carrier = talk_packets(&phone, target, &[&media], S(1200), |sequence| {
        pcma_tone(8, sequence)
    });
    // The carrier talks PCMA with our type, 8, then with its own, 96.
    let trunk_side = gateway_port_after(&trunk, "INVITE sip:");
    let to_client = talk_packets(&media, trunk_side, &[&phone], S(1200), |sequence| {
        pcma_tone(if sequence < 30 { 8 } else { 96 }, sequence)
    });
    assert_calls(client.finish(), 1, "client", &gateway, &[&client, &trunk]);
    assert_calls(trunk.finish(), 1, "carrier", &gateway, &[&client, &trunk]);
    let all = S(10_000);
    let (as_96, as_8) = (
        to_carrier.of(0, S(0), all, Some(96)).count(),
        to_carrier.of(0, S(0), all, Some(8)).count(),
    );
    assert!(
        as_96 >= 40 && as_8 == 0,
        "PCMA reached the carrier as 96 {as_96} times, as 8 {as_8} times\n{}",
        gateway.log()
    );
    let tone = tone_in(
        G711Law::A,
        to_carrier.of(0, S(0), all, Some(96)).map(|h| &h.3),
    );
    assert!(tone > 0.8, "the client's tone at the carrier: {tone:.2}");
    // Both halves of the carrier's talk reach the client, as PCMA with its type 8.
    let (first, second) = (
        to_client.of(0, S(100), S(550), Some(8)).count(),
        to_client.of(0, S(700), S(1200), Some(8)).count(),
    );
    assert!(
        first >= 15 && second >= 15,
        "the carrier's PCMA at the client: sent as 8 {first}, as 96 {second}\n{}",
        gateway.log()
    );
    let tone = tone_in(
        G711Law::A,
        to_client.of(0, S(0), all, Some(8)).map(|h| &h.3),
    );
    assert!(tone > 0.8, "the carrier's tone at the client: {tone:.2}");
    gateway.assert_idle();
}

#[test]
fn a_softphone_reinvite_switching_to_pcma_is_answered_and_its_audio_still_reaches_the_carrier() {
    let (carrier, gateway) = one_carrier();
    let (media, media_port) = carrier_media();
    let mut trunk = Sipp::start(
        "carrier_answer_media",
        carrier,
        None,
        1,
        &["-key", "rtp_port", &media_port],
    );
    std::thread::sleep(S(300));
    let (phone, phone_port) = client_media();
    // Answered PCMU like the carrier; 1.2 s later its re-INVITE offers only PCMA (the scenario
    // fails the call unless our 200 answers PCMA).
    let mut client = talking_client_with(
        &gateway,
        "client_call_talk_reinvite_pcma",
        &phone_port,
        1800,
    );
    let target = gateway_port_after(&client, "SIP/2.0 200");
    let heard = talk_packets(&phone, target, &[&media], S(2900), |sequence| {
        if sequence < 65 {
            pcmu_tone(sequence, u32::from(sequence) * 160, 440.0)
        } else {
            pcma_tone(8, sequence)
        }
    });
    assert_calls(client.finish(), 1, "client", &gateway, &[&client, &trunk]);
    assert_calls(trunk.finish(), 1, "carrier", &gateway, &[&client, &trunk]);
    // The carrier's leg stays PCMU: the phone's PCMA is mapped to it.
    let (before, after) = (
        heard.of(0, S(100), S(1200), Some(0)).count(),
        heard.of(0, S(1500), S(2800), Some(0)).count(),
    );
    assert!(
        before >= 30 && after >= 40,
        "PCMU at the carrier before the re-INVITE {before}, after it {after}\n{}",
        gateway.log()
    );
    let tone = tone_in(
        G711Law::Mu,
        heard.of(0, S(1500), S(2800), Some(0)).map(|h| &h.3),
    );
    assert!(
        tone > 0.8,
        "the phone's PCMA tone at the carrier: {tone:.2}"
    );
    gateway.assert_idle();
}
