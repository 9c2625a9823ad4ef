//! A WebRTC endpoint calls through the gateway: str0m as the client does what a browser does
//! (full ICE as the controlling agent, DTLS-SRTP, rtcp-mux, Opus 48 kHz), signalled over SIP/UDP
//! by the project's own user agent. The gateway's side is its real media plane: the shard's
//! shared WebRTC port, its demultiplexing and its str0m sessions.
//!
//! Browser-specific behaviour (Chromium's SDP, mDNS candidates, the web dialer) is proven in the
//! Chromium tests; these prove the media path with an independent WebRTC implementation.

mod common;
#[path = "common/relay.rs"]
mod relay;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::{Gateway, PASSWORD, Sipp, TestTrunk, tone_ratio};
use landline_codecs::{OpusDecoder, OpusEncoder, OpusSettings};
use landline_sip::auth::Credentials;
use landline_sip::message::{SipUri, Transport};
use landline_sip::ua::{CallId, CallParams, Config as UaConfig, Event, UserAgent};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::{Candidate, Event as RtcEvent, Input, Output, Rtc};

/// 20 ms at 48 kHz.
const FRAME: usize = 960;

/// A browser-like WebRTC endpoint on a socket of its own.
struct Browser {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    pending: Option<SdpPendingOffer>,
    mid: Mid,
    connected: bool,
    encoder: OpusEncoder,
    decoder: OpusDecoder,
    opus_pt: Option<u8>,
    sent: u64,
    heard: Vec<i16>,
    packets_heard: usize,
    /// Arrival time, extended sequence number and RTP timestamp of every Opus packet heard.
    arrivals: Vec<(Instant, u64, u32)>,
    /// When the call was answered (200), as the SIP side saw it.
    answered_at: Option<Instant>,
    /// The gateway's `landline_shard_webrtc_sessions` while the call ran.
    sessions_during_call: f64,
    /// The gateway's `landline_shard_packets_lost_total` while the call ran.
    lost_during_call: f64,
    /// The gateway's host candidate, from its SDP.
    gateway_media: Option<SocketAddr>,
    /// When, after media connects, to [`attack`](Self::attack) the gateway's port (once).
    attack_after: Option<Duration>,
    /// When the attack was made.
    attacked_at: Option<Instant>,
}

impl Browser {
    /// A new endpoint and its SDP offer.
    fn offer() -> (Browser, String) {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("browser socket");
        socket.set_nonblocking(true).expect("non-blocking");
        let local = socket.local_addr().expect("local addr");
        let mut rtc = Rtc::builder()
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_opus(true, false)
            .build(Instant::now());
        rtc.add_local_candidate(Candidate::host(local, "udp").expect("candidate"));
        let mut change = rtc.sdp_api();
        let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let (offer, pending) = change.apply().expect("an offer");
        let settings = OpusSettings::default();
        let browser = Browser {
            rtc,
            socket,
            local,
            pending: Some(pending),
            mid,
            connected: false,
            encoder: OpusEncoder::new(48_000, &settings).expect("encoder"),
            decoder: OpusDecoder::new(48_000).expect("decoder"),
            opus_pt: None,
            sent: 0,
            heard: Vec::new(),
            packets_heard: 0,
            arrivals: Vec::new(),
            answered_at: None,
            sessions_during_call: 0.0,
            lost_during_call: 0.0,
            gateway_media: None,
            attack_after: None,
            attacked_at: None,
        };
        (browser, offer.to_sdp_string())
    }

    fn accept_answer(&mut self, answer: &[u8]) {
        let text = std::str::from_utf8(answer).expect("UTF-8 answer");
        if self.pending.is_none() {
            // The 200 repeats the answer a 183 gave: the session goes on unchanged.
            return;
        }
        assert!(
            text.contains("a=ice-lite") && text.contains("a=fingerprint:"),
            "the gateway's answer is not an ICE-lite DTLS answer:\n{text}"
        );
        let answer = SdpAnswer::from_sdp_string(text).expect("answer parses");
        let pending = self.pending.take().expect("an offer is pending");
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .expect("answer accepted");
        self.opus_pt = text
            .lines()
            .find_map(|l| l.strip_prefix("a=rtpmap:")?.strip_suffix(" opus/48000/2"))
            .and_then(|pt| pt.parse().ok());
        // a=candidate:<foundation> 1 udp <priority> <ip> <port> typ host
        self.gateway_media = text.lines().find_map(|l| {
            let fields: Vec<&str> = l.strip_prefix("a=candidate:")?.split(' ').collect();
            format!("{}:{}", fields.get(4)?, fields.get(5)?)
                .parse()
                .ok()
        });
    }

    /// Throws hostile datagrams at the gateway's WebRTC port while the call runs: garbage,
    /// truncated and forged RTP, STUN with a wrong ufrag, from the browser's own address (which
    /// the gateway knows) and from a stranger's.
    fn attack(&self) {
        let Some(target) = self.gateway_media else {
            return;
        };
        let stranger = UdpSocket::bind("127.0.0.1:0").expect("stranger socket");
        let mut rng = 0x00DD_BA11_CAFE_F00D_u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let stun_wrong_ufrag = [
            &[0x00, 0x01, 0x00, 0x0c, 0x21, 0x12, 0xa4, 0x42][..],
            &[7; 12],
            &[0x00, 0x06, 0x00, 0x08],
            b"nope:bad",
        ]
        .concat();
        for i in 0..300u32 {
            let datagram: Vec<u8> = match i % 4 {
                0 => (0..next() % 200).map(|_| next() as u8).collect(),
                // RTP-shaped (version 2, the Opus payload type) with a random body: SRTP
                // authentication must refuse it.
                1 => {
                    let mut forged: Vec<u8> = (0..60).map(|_| next() as u8).collect();
                    forged[0] = 0x80;
                    forged[1] = self.opus_pt.unwrap_or(111);
                    forged
                }
                2 => stun_wrong_ufrag.clone(),
                _ => vec![0x16, 0xfe, 0xfd, 0, 0], // a truncated DTLS record
            };
            let _ = self.socket.send_to(&datagram, target);
            let _ = stranger.send_to(&datagram, target);
            if i % 20 == 19 {
                // A flood, but not one that only measures the kernel's socket buffer.
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// Feeds what arrived and the time, and sends what the engine wants sent.
    fn step(&mut self, now: Instant) {
        let mut buf = [0u8; 2048];
        while let Ok((n, source)) = self.socket.recv_from(&mut buf) {
            let Ok(contents) = buf[..n].try_into() else {
                continue;
            };
            let input = Input::Receive(
                now,
                Receive {
                    proto: Protocol::Udp,
                    source,
                    destination: self.local,
                    contents,
                },
            );
            self.rtc.handle_input(input).expect("input");
            self.drain(now);
        }
        self.rtc.handle_input(Input::Timeout(now)).expect("timeout");
        self.drain(now);
    }

    fn drain(&mut self, _now: Instant) {
        loop {
            match self.rtc.poll_output().expect("output") {
                Output::Timeout(_) => return,
                Output::Transmit(t) => {
                    let _ = self.socket.send_to(&t.contents, t.destination);
                }
                Output::Event(RtcEvent::Connected) => self.connected = true,
                Output::Event(RtcEvent::RtpPacket(packet)) => {
                    if Some(*packet.header.payload_type) != self.opus_pt {
                        continue;
                    }
                    self.arrivals
                        .push((Instant::now(), *packet.seq_no, packet.header.timestamp));
                    let mut pcm = [0i16; 5760];
                    if let Ok(n) = self.decoder.decode(&packet.payload, &mut pcm) {
                        self.heard.extend_from_slice(&pcm[..n]);
                        self.packets_heard += 1;
                    }
                }
                Output::Event(_) => {}
            }
        }
    }

    /// Sends the next 20 ms of a tone, as a browser's microphone would.
    fn send_tone(&mut self, now: Instant, hz: f64) {
        let Some(pt) = self.opus_pt else {
            return;
        };
        let start = self.sent as usize * FRAME;
        let pcm: Vec<i16> = (start..start + FRAME)
            .map(|i| {
                let t = i as f64 / 48_000.0;
                (8_000.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16
            })
            .collect();
        let mut packet = [0u8; 1500];
        let n = self.encoder.encode(&pcm, &mut packet).expect("encode");
        let mut api = self.rtc.direct_api();
        let Some(stream) = api.stream_tx_by_mid(self.mid, None) else {
            return;
        };
        let write = RtpWrite::new(
            Pt::from(pt),
            SeqNo::from(self.sent + 1),
            (self.sent * FRAME as u64) as u32,
            now,
            packet[..n].to_vec(),
        );
        stream.write_rtp(write);
        self.sent += 1;
        self.drain(now);
    }
}

/// The project's own SIP user agent on a UDP socket, as the signalling half of the client.
struct SipClient {
    ua: UserAgent,
    socket: UdpSocket,
    events: Vec<Event>,
}

impl SipClient {
    fn new() -> SipClient {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("SIP socket");
        socket.set_nonblocking(true).expect("non-blocking");
        let local = socket.local_addr().expect("local addr");
        let ua = UserAgent::new(UaConfig::new(local, 0x5EED_0001));
        SipClient {
            ua,
            socket,
            events: Vec::new(),
        }
    }

    fn call(&mut self, gateway: &Gateway, number: &str, sdp: String) -> CallId {
        let target = SipUri::new(
            Some(number),
            gateway.sip.ip().into(),
            Some(gateway.sip.port()),
        );
        let params = CallParams {
            target,
            to: None,
            from: None,
            destination: gateway.sip,
            transport: Transport::Udp,
            sdp: Some(sdp.into_bytes()),
            credentials: Some(Credentials {
                username: "alice".into(),
                password: PASSWORD.into(),
            }),
        };
        let call = self.ua.call(Instant::now(), params);
        self.step(Instant::now());
        call
    }

    fn step(&mut self, now: Instant) {
        let mut buf = [0u8; 8192];
        while let Ok((n, source)) = self.socket.recv_from(&mut buf) {
            self.ua
                .handle_receive(now, source, Transport::Udp, &buf[..n]);
        }
        if self.ua.poll_timeout().is_some_and(|t| t <= now) {
            self.ua.handle_timeout(now);
        }
        while let Some(transmit) = self.ua.poll_transmit() {
            let _ = self.socket.send_to(&transmit.data, transmit.destination);
        }
        while let Some(event) = self.ua.poll_event() {
            self.events.push(event);
        }
    }
}

/// Runs a browser call to `number` for `talk` after media connects, sending a `hz` tone;
/// returns what the browser heard.
fn browser_call(gateway: &Gateway, number: &str, hz: f64, talk: Duration) -> Browser {
    let (browser, offer) = Browser::offer();
    browser_call_with(gateway, (browser, offer), number, hz, talk, &mut || {})
}

/// [`browser_call`], running `beside` (the far side's part) on every turn of the loop.
fn browser_call_with(
    gateway: &Gateway,
    (mut browser, offer): (Browser, String),
    number: &str,
    hz: f64,
    talk: Duration,
    beside: &mut dyn FnMut(),
) -> Browser {
    let mut sip = SipClient::new();
    let call = sip.call(gateway, number, offer);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut connected_at = None;
    let mut next_frame = Instant::now();
    loop {
        let now = Instant::now();
        assert!(
            now < deadline,
            "call did not connect and run in time (connected: {}, heard {} packets):\n{}",
            browser.connected,
            browser.packets_heard,
            gateway.log()
        );
        sip.step(now);
        for event in sip.events.drain(..) {
            match event {
                Event::Progress { sdp: Some(sdp), .. } => browser.accept_answer(&sdp),
                Event::Answered { sdp, .. } => {
                    browser.answered_at = Some(now);
                    if let Some(sdp) = sdp {
                        browser.accept_answer(&sdp);
                    }
                }
                Event::Failed { status, .. } => {
                    panic!("the call failed: {status:?}\n{}", gateway.log())
                }
                _ => {}
            }
        }
        browser.step(now);
        beside();
        if browser.connected && now >= next_frame {
            browser.send_tone(now, hz);
            next_frame += Duration::from_millis(20);
        }
        if browser.connected {
            let since = *connected_at.get_or_insert(now);
            let attack_due = browser
                .attack_after
                .is_some_and(|a| now.duration_since(since) >= a);
            if attack_due && browser.attacked_at.is_none() {
                browser.attack();
                browser.attacked_at = Some(now);
            }
            if now.duration_since(since) >= talk {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    browser.sessions_during_call = gateway.metric("landline_shard_webrtc_sessions");
    browser.lost_during_call = gateway.metric("landline_shard_packets_lost_total");
    sip.ua.hangup(Instant::now(), call);
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        sip.step(Instant::now());
        if sip.events.iter().any(|e| matches!(e, Event::Ended { .. })) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    browser
}

/// The last second of what the browser heard, or all of it if less.
fn last_second(heard: &[i16]) -> &[i16] {
    &heard[heard.len().saturating_sub(48_000)..]
}

#[test]
fn a_webrtc_client_hears_itself_on_the_echo_number() {
    let gateway = Gateway::start(&[]);
    let browser = browser_call(&gateway, "600", 1000.0, Duration::from_secs(3));
    assert!(
        browser.packets_heard > 100,
        "the browser heard only {} packets:\n{}",
        browser.packets_heard,
        gateway.log()
    );
    let ratio = tone_ratio(last_second(&browser.heard), 1000.0, 48_000.0);
    assert!(
        ratio > 0.5,
        "the echo does not carry the browser's tone (ratio {ratio:.3})"
    );
    assert_eq!(browser.sessions_during_call, 1.0, "WebRTC sessions gauge");
    gateway.assert_idle();
    let deadline = Instant::now() + Duration::from_secs(5);
    while gateway.metric("landline_shard_webrtc_sessions") != 0.0 {
        assert!(
            Instant::now() < deadline,
            "a WebRTC session outlived its call"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn hostile_datagrams_at_the_webrtc_port_do_not_disturb_a_call() {
    let gateway = Gateway::start(&[]);
    let (mut browser, offer) = Browser::offer();
    browser.attack_after = Some(Duration::from_secs(1));
    let browser = browser_call_with(
        &gateway,
        (browser, offer),
        "600",
        1000.0,
        Duration::from_secs(4),
        &mut || {},
    );
    let attacked = browser.attacked_at.expect("the attack was made");
    let after: Vec<_> = browser
        .arrivals
        .iter()
        .filter(|a| a.0 > attacked + Duration::from_millis(500))
        .collect();
    assert!(
        after.len() > 100,
        "only {} packets after the attack:\n{}",
        after.len(),
        gateway.log()
    );
    for pair in after.windows(2) {
        assert_eq!(
            pair[1].1,
            pair[0].1 + 1,
            "the stream broke after the attack"
        );
    }
    let ratio = tone_ratio(last_second(&browser.heard), 1000.0, 48_000.0);
    assert!(
        ratio > 0.5,
        "the echo lost its tone after the attack ({ratio:.3})"
    );
    // Most of the stranger's 300 datagrams were seen and dropped (the kernel may drop some of
    // a burst on a loaded machine before the shard reads them).
    let deadline = Instant::now() + Duration::from_secs(5);
    while gateway.metric("landline_shard_packets_dropped_total") < 200.0 {
        assert!(
            Instant::now() < deadline,
            "the attack did not reach the gateway's WebRTC port"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    gateway.assert_idle();
}

#[test]
fn a_webrtc_client_calls_out_and_hears_itself_through_an_echoing_carrier() {
    let carrier: SocketAddr = "127.0.0.2:0".parse().expect("address");
    let carrier = SocketAddr::new(carrier.ip(), common::free_port());
    let gateway = Gateway::start(&[TestTrunk {
        name: "carrier",
        addr: carrier,
        probe: false,
    }]);
    let mut trunk = Sipp::start("carrier_answer", carrier, None, 1, &["-rtp_echo"]);
    let browser = browser_call(&gateway, "+15557654321", 700.0, Duration::from_secs(3));
    let stats = trunk.finish();
    assert!(
        browser.packets_heard > 100,
        "the browser heard only {} packets:\n{}",
        browser.packets_heard,
        gateway.log()
    );
    let ratio = tone_ratio(last_second(&browser.heard), 700.0, 48_000.0);
    assert!(
        ratio > 0.5,
        "the carrier's echo does not carry the browser's tone (ratio {ratio:.3})"
    );
    common::assert_calls(stats, 1, "carrier", &gateway, &[&trunk]);
    let record = gateway.wait_cdrs(1);
    assert_eq!(record[0]["outcome"], "answered", "{record:?}");
    gateway.assert_idle();
}

/// A carrier's media, played by the test beside a SIPp carrier whose SDP names this socket
/// (`-key rtp_port`): it speaks a 1 kHz PCMU tone from the moment the INVITE says where, and
/// keeps every packet that reaches it.
struct CarrierMedia {
    socket: UdpSocket,
    target: Option<SocketAddr>,
    sequence: u16,
    next: Instant,
    /// (sequence, timestamp) of each PCMU packet received.
    received: Vec<(u16, u32)>,
    pcm: Vec<i16>,
    /// From this long after its first packet on, it speaks PCMA (its 200 changed codec).
    pcma_after: Option<Duration>,
    first_sent: Option<Instant>,
    /// The audio of each PCMA packet received.
    pcma: Vec<i16>,
}

impl CarrierMedia {
    fn new() -> CarrierMedia {
        let socket = UdpSocket::bind("127.0.0.2:0").expect("carrier media socket");
        socket.set_nonblocking(true).expect("non-blocking");
        CarrierMedia {
            socket,
            target: None,
            sequence: 0,
            next: Instant::now(),
            received: Vec::new(),
            pcm: Vec::new(),
            pcma_after: None,
            first_sent: None,
            pcma: Vec::new(),
        }
    }

    fn port(&self) -> String {
        self.socket.local_addr().expect("addr").port().to_string()
    }

    fn step(&mut self, trunk: &Sipp) {
        use landline_codecs::G711Law;
        use landline_codecs::rtp::RtpPacket;

        if self.target.is_none() {
            self.target = common::offered_media(trunk);
            self.next = Instant::now();
        }
        let Some(to) = self.target else { return };
        while Instant::now() >= self.next {
            let mut packet =
                common::pcmu_tone(self.sequence, u32::from(self.sequence) * 160, 1000.0);
            let first = *self.first_sent.get_or_insert_with(Instant::now);
            if self
                .pcma_after
                .is_some_and(|after| first.elapsed() >= after)
            {
                let mut pcm = [0i16; 160];
                G711Law::Mu.decode(&packet[12..], &mut pcm);
                G711Law::A.encode(&pcm, &mut packet[12..]);
                packet[1] = (packet[1] & 0x80) | 8;
            }
            let _ = self.socket.send_to(&packet, to);
            self.sequence = self.sequence.wrapping_add(1);
            self.next += Duration::from_millis(20);
        }
        let mut buf = [0u8; 2048];
        while let Ok((n, _)) = self.socket.recv_from(&mut buf) {
            let Ok(rtp) = RtpPacket::parse(&buf[..n]) else {
                continue;
            };
            if rtp.payload_type == 0 {
                self.received.push((rtp.sequence, rtp.timestamp));
                let mut pcm = vec![0i16; rtp.payload.len()];
                G711Law::Mu.decode(rtp.payload, &mut pcm);
                self.pcm.extend_from_slice(&pcm);
            } else if rtp.payload_type == 8 {
                let mut pcm = vec![0i16; rtp.payload.len()];
                G711Law::A.decode(rtp.payload, &mut pcm);
                self.pcma.extend_from_slice(&pcm);
            }
        }
    }
}

/// A gateway with one carrier on 127.0.0.2, and a SIPp carrier running `scenario` whose media
/// is the returned [`CarrierMedia`].
fn carrier_gateway(scenario: &str) -> (Gateway, Sipp, CarrierMedia) {
    carrier_gateway_with_env(scenario, &[])
}

/// [`carrier_gateway`] with `LANDLINE__…` overrides.
fn carrier_gateway_with_env(scenario: &str, env: &[(&str, &str)]) -> (Gateway, Sipp, CarrierMedia) {
    let carrier = SocketAddr::new([127, 0, 0, 2].into(), common::free_port());
    let gateway = Gateway::start_with_env(
        &[TestTrunk {
            name: "carrier",
            addr: carrier,
            probe: false,
        }],
        env,
    );
    let media = CarrierMedia::new();
    let port = media.port();
    let trunk = Sipp::start(scenario, carrier, None, 1, &["-key", "rtp_port", &port]);
    std::thread::sleep(Duration::from_millis(300));
    (gateway, trunk, media)
}

#[test]
fn a_webrtc_client_hears_the_carrier_speak_first() {
    let (gateway, mut trunk, mut media) = carrier_gateway("carrier_answer_media");
    let browser = browser_call_with(
        &gateway,
        Browser::offer(),
        "+15557654321",
        440.0,
        Duration::from_secs(3),
        &mut || media.step(&trunk),
    );
    let stats = trunk.finish();
    let ratio = tone_ratio(last_second(&browser.heard), 1000.0, 48_000.0);
    assert!(
        ratio > 0.5,
        "the browser does not hear the carrier's tone (ratio {ratio:.3}, {} packets)",
        browser.packets_heard
    );
    common::assert_calls(stats, 1, "carrier", &gateway, &[&trunk]);
    gateway.assert_idle();
}

#[test]
fn early_media_reaches_the_browser_before_the_answer_and_goes_on_without_a_gap() {
    let (gateway, mut trunk, mut media) = carrier_gateway("carrier_early_media");
    let browser = browser_call_with(
        &gateway,
        Browser::offer(),
        "+15557654321",
        440.0,
        Duration::from_secs(4),
        &mut || media.step(&trunk),
    );
    let stats = trunk.finish();
    let answered = browser.answered_at.expect("the carrier answered");
    let (early, late): (Vec<&(Instant, u64, u32)>, Vec<_>) =
        browser.arrivals.iter().partition(|a| a.0 < answered);
    assert!(
        early.len() > 50 && late.len() > 25,
        "packets before the answer: {}, after: {}",
        early.len(),
        late.len()
    );
    // 20 ms before the 200 have the carrier's tone.
    let early_samples = early.len() * FRAME;
    let ratio = tone_ratio(
        &browser.heard[..early_samples.min(browser.heard.len())],
        1000.0,
        48_000.0,
    );
    assert!(
        ratio > 0.5,
        "early media without the carrier's tone (ratio {ratio:.3})"
    );
    // The stream goes on through the answer as one: every sequence number, 20 ms apart.
    for pair in browser.arrivals.windows(2) {
        let ((_, seq_a, ts_a), (_, seq_b, ts_b)) = (pair[0], pair[1]);
        assert_eq!(seq_b, seq_a + 1, "a sequence gap in the browser's stream");
        assert_eq!(
            ts_b.wrapping_sub(ts_a),
            960,
            "a timestamp jump in the browser's stream"
        );
    }
    let last_early = early.last().map(|a| a.0).expect("early packets");
    let first_late = late.first().map(|a| a.0).expect("late packets");
    assert!(
        first_late - last_early < Duration::from_millis(200),
        "{:?} without media at the answer",
        first_late - last_early
    );
    common::assert_calls(stats, 1, "carrier", &gateway, &[&trunk]);
    gateway.assert_idle();
}

#[test]
fn a_carrier_answering_pcma_after_pcmu_early_media_is_transcoded_on_without_a_gap() {
    let (gateway, mut trunk, mut media) = carrier_gateway("carrier_early_media_then_pcma");
    // The 200 comes 2.5 s after the 183; the carrier speaks PCMA from 2.7 s on.
    media.pcma_after = Some(Duration::from_millis(2700));
    let browser = browser_call_with(
        &gateway,
        Browser::offer(),
        "+15557654321",
        440.0,
        Duration::from_secs(5),
        &mut || media.step(&trunk),
    );
    let stats = trunk.finish();
    common::assert_calls(stats, 1, "carrier", &gateway, &[&trunk]);
    assert!(browser.answered_at.is_some(), "the call was answered");
    let ratio = tone_ratio(last_second(&browser.heard), 1000.0, 48_000.0);
    assert!(
        ratio > 0.5,
        "the browser does not hear the carrier's PCMA tone (ratio {ratio:.3})\n{}",
        gateway.log()
    );
    // The browser's stream goes on through the codec change as one.
    for pair in browser.arrivals.windows(2) {
        let ((_, seq_a, ts_a), (_, seq_b, ts_b)) = (pair[0], pair[1]);
        assert_eq!(seq_b, seq_a + 1, "a sequence gap in the browser's stream");
        assert_eq!(
            ts_b.wrapping_sub(ts_a),
            960,
            "a timestamp jump in the browser's stream"
        );
    }
    // The carrier gets the browser's tone in PCMA after its 200 (and PCMU before).
    assert!(
        media.pcm.len() >= 50 * 160 && media.pcma.len() >= 50 * 160,
        "PCMU samples {}, PCMA samples {}",
        media.pcm.len(),
        media.pcma.len()
    );
    let ratio = tone_ratio(&media.pcma, 440.0, 8000.0);
    assert!(
        ratio > 0.5,
        "the browser's tone in the PCMA (ratio {ratio:.3})"
    );
    gateway.assert_idle();
}

#[test]
fn with_5_percent_loss_from_the_browser_the_carrier_gets_continuous_concealed_g711() {
    // Browsers are sent to 127.0.0.5, where a relay drops 5 % of their RTP on its way to the
    // gateway's WebRTC port.
    let (first, last) = common::rtp_range();
    let (min, max) = (first.to_string(), last.to_string());
    let relay = relay::LossyRelay::start(
        [127, 0, 0, 5].into(),
        [127, 0, 0, 1].into(),
        (first, last),
        0.05,
    );
    let (gateway, mut trunk, mut media) = carrier_gateway_with_env(
        "carrier_answer_media",
        &[
            ("LANDLINE__MEDIA__WEBRTC_ADDRESS", "127.0.0.5"),
            ("LANDLINE__MEDIA__RTP_PORT_MIN", &min),
            ("LANDLINE__MEDIA__RTP_PORT_MAX", &max),
        ],
    );
    let browser = browser_call_with(
        &gateway,
        Browser::offer(),
        "+15557654321",
        440.0,
        Duration::from_secs(5),
        &mut || media.step(&trunk),
    );
    let stats = trunk.finish();
    let (sent, dropped) = relay.rtp();
    assert!(
        sent > 200 && dropped * 100 >= sent * 3,
        "the path lost only {dropped} of {sent} packets"
    );
    // Every 20 ms reached the carrier: no sequence or timestamp gap in what it received.
    let received = &media.received;
    assert!(
        received.len() >= 200,
        "the carrier received only {} packets for 5 s",
        received.len()
    );
    for pair in received.windows(2) {
        let ((seq_a, ts_a), (seq_b, ts_b)) = (pair[0], pair[1]);
        assert_eq!(
            seq_b,
            seq_a.wrapping_add(1),
            "the carrier's stream has a gap"
        );
        assert_eq!(ts_b.wrapping_sub(ts_a), 160, "the carrier's stream jumps");
    }
    // The losses were concealed: each second has the tone (a Goertzel filter over one second;
    // concealment shifts the phase, so longer stretches are not measured as one).
    let seconds: Vec<f64> = media
        .pcm
        .chunks_exact(8000)
        // The first two seconds cover the answer and the browser's ICE and DTLS.
        .skip(2)
        .map(|second| tone_ratio(second, 440.0, 8000.0))
        .collect();
    // The tone is kept through the losses: judged on the median second, since on a loaded
    // machine one second may lose more to late packets than the 5 % the relay drops.
    let mut sorted = seconds.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
    assert!(
        seconds.len() >= 3 && median > 0.5,
        "the carrier hears the browser's tone per second at {seconds:.3?}"
    );
    common::assert_calls(stats, 1, "carrier", &gateway, &[&trunk]);
    let record = gateway.wait_cdrs(1);
    // The shards' loss counter shows it while the call runs, not only once it has ended.
    assert!(
        browser.lost_during_call > 0.0,
        "landline_shard_packets_lost_total read 0 during a lossy call"
    );
    let lost = record[0]["media"]["client_lost"].as_u64().unwrap_or(0);
    assert!(
        lost > 0,
        "the call record shows no loss from the client: {record:?}"
    );
    gateway.assert_idle();
}
