//! Browser legs: one str0m session per call (ICE-lite, DTLS-SRTP, rtcp-mux, BUNDLE, RTP mode).
//!
//! Call control builds a [`WebRtcSession`] from the SDP exchange (answering a browser's offer,
//! or offering to a browser that is being called), then hands it to the shard whose WebRTC port
//! its candidate names. From then on the shard owns it like any other leg: it feeds it the
//! datagrams its one WebRTC port demultiplexed to it, and the time, and drains what it produces
//! (datagrams to send, and decrypted RTP for the call's pipeline).
//!
//! The gateway is ICE-lite with one host candidate (the configured public address and the
//! shard's port): browsers send checks to it, and a peer-reflexive pair is learnt from them, so
//! the browser's own candidates (mDNS `.local` names included) are never needed and are dropped
//! from its SDP before str0m reads it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use landline_codecs::rtp::RtpPacket;
use landline_sip::sdp::Sdp;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::config::DtlsCert;
use str0m::crypto::CryptoProvider;
use str0m::format::{Codec, FormatParams};
use str0m::media::{Direction, Frequency, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};

use super::{LegCodec, MediaError, dtls};

/// The payload type we offer for `telephone-event/48000` when we make the offer.
const TELEPHONE_EVENT_PT: u8 = 101;
/// Due timeouts fed back to str0m within one drain (each may release queued packets); a bound,
/// so a session that keeps reporting a past deadline cannot hold the shard.
const MAX_DUE_TIMEOUTS: u32 = 4;
/// The largest RTP packet handed to the pipeline; Opus audio is far smaller.
pub const RTP_BUFFER: usize = 1500;

/// The DTLS certificate of this process: generating one costs milliseconds of CPU, so one is
/// made at start and every session presents it (its fingerprint goes in each SDP). With it, the
/// crypto every session uses: OpenSSL's DTLS context holding that certificate, built once here
/// rather than once per session (`dtls.rs`).
#[derive(Clone)]
pub struct WebRtcIdentity {
    cert: DtlsCert,
    crypto: Arc<CryptoProvider>,
}

impl std::fmt::Debug for WebRtcIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebRtcIdentity")
    }
}

impl WebRtcIdentity {
    /// Generates the process's certificate and builds its DTLS context.
    pub fn generate() -> Result<Self, MediaError> {
        let provider = str0m::crypto::from_feature_flags();
        let cert = provider
            .dtls_provider
            .generate_certificate()
            .ok_or(MediaError::WebRtc(
                "cannot generate a DTLS certificate".into(),
            ))?;
        let crypto = dtls::crypto_provider(&cert)
            .map_err(|e| MediaError::WebRtc(format!("cannot set up DTLS: {e}")))?;
        Ok(WebRtcIdentity { cert, crypto })
    }
}

/// What a shard's drain of a session produced next.
pub enum Drained {
    /// A decrypted RTP packet, written to the caller's buffer with this length.
    Rtp(usize),
    /// Nothing more until new input or the session's timeout.
    Idle,
}

/// A browser's WebRTC session, from the SDP exchange to the end of the call.
pub struct WebRtcSession {
    rtc: Box<Rtc>,
    /// Our host candidate: where the browser sends, and the destination of what we receive.
    local: SocketAddr,
    ufrag: String,
    mid: Option<Mid>,
    pending: Option<SdpPendingOffer>,
    codec: Option<LegCodec>,
    next_timeout: Option<Instant>,
    /// The extended sequence number of the last packet written, for str0m's 64-bit counter.
    last_seq: Option<u64>,
    /// Told once, at the browser's first packet, so DTLS frees what it kept for the handshake.
    dtls_confirmed: Option<dtls::PeerConfirmed>,
    connected: bool,
    ended: bool,
}

impl std::fmt::Debug for WebRtcSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebRtcSession")
            .field("local", &self.local)
            .field("ufrag", &self.ufrag)
            .field("codec", &self.codec)
            .field("connected", &self.connected)
            .finish_non_exhaustive()
    }
}

impl WebRtcSession {
    /// Answers a browser's offer; returns the session and our SDP answer.
    pub fn answer(
        now: Instant,
        identity: &WebRtcIdentity,
        local: SocketAddr,
        offer: &str,
    ) -> Result<(Self, String), MediaError> {
        let offer = SdpOffer::from_sdp_string(&without_candidates(offer))
            .map_err(|e| MediaError::WebRtc(format!("unreadable WebRTC offer: {e}")))?;
        let mut session = Self::new(now, identity, local)?;
        let answer = session
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| MediaError::WebRtc(format!("offer refused: {e}")))?
            .to_sdp_string();
        session.settle(now);
        let codec = codec_of(&answer)?;
        session.codec = Some(codec);
        Ok((session, narrowband(&answer, codec)))
    }

    /// Makes an offer for a browser that is being called; its answer goes to
    /// [`accept_answer`](Self::accept_answer).
    pub fn offer(
        now: Instant,
        identity: &WebRtcIdentity,
        local: SocketAddr,
    ) -> Result<(Self, String), MediaError> {
        let mut session = Self::new(now, identity, local)?;
        let mut change = session.rtc.sdp_api();
        let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let (offer, pending) = change
            .apply()
            .ok_or(MediaError::WebRtc("empty WebRTC offer".into()))?;
        session.mid = Some(mid);
        session.pending = Some(pending);
        session.settle(now);
        let offer = offer.to_sdp_string();
        let codec = codec_of(&offer)?;
        Ok((session, narrowband(&offer, codec)))
    }

    /// Applies the browser's answer to our offer.
    pub fn accept_answer(&mut self, now: Instant, answer: &str) -> Result<(), MediaError> {
        let pending = self
            .pending
            .take()
            .ok_or(MediaError::WebRtc("no offer awaits an answer".into()))?;
        let parsed = SdpAnswer::from_sdp_string(&without_candidates(answer))
            .map_err(|e| MediaError::WebRtc(format!("unreadable WebRTC answer: {e}")))?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, parsed)
            .map_err(|e| MediaError::WebRtc(format!("answer refused: {e}")))?;
        self.settle(now);
        self.codec = Some(codec_of(answer)?);
        Ok(())
    }

    /// The codec negotiated: Opus and telephone-event payload types.
    pub fn codec(&self) -> Option<LegCodec> {
        self.codec
    }

    /// Our ICE username fragment: the browser's checks carry it, which is how the shard's port
    /// finds this session before it knows the browser's address.
    pub fn ufrag(&self) -> &str {
        &self.ufrag
    }

    /// Our host candidate.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    fn new(now: Instant, identity: &WebRtcIdentity, local: SocketAddr) -> Result<Self, MediaError> {
        let mut config = RtcConfig::new()
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .set_dtls_cert(identity.cert.clone())
            .set_crypto_provider(identity.crypto.clone())
            .set_stats_interval(None)
            .clear_codecs()
            .clear_extension_map()
            .enable_opus(true, false);
        config.codec_config().add_config(
            Pt::from(TELEPHONE_EVENT_PT),
            None,
            Codec::Tele,
            Frequency::FORTY_EIGHT_KHZ,
            None,
            FormatParams::default(),
        );
        let confirmed = dtls::PeerConfirmed::default();
        let mut rtc = dtls::with_signal(&confirmed, || config.build(now));
        let candidate = Candidate::host(local, "udp")
            .map_err(|e| MediaError::WebRtc(format!("bad WebRTC address {local}: {e}")))?;
        rtc.add_local_candidate(candidate);
        let ufrag = rtc.direct_api().local_ice_credentials().ufrag;
        let mut session = WebRtcSession {
            rtc: Box::new(rtc),
            local,
            ufrag,
            mid: None,
            pending: None,
            codec: None,
            next_timeout: None,
            last_seq: None,
            dtls_confirmed: Some(confirmed),
            connected: false,
            ended: false,
        };
        session.settle(now);
        Ok(session)
    }

    /// Drains what a mutation on the control plane produced (no datagram can be due yet: an
    /// ICE-lite agent waits for the browser's checks).
    fn settle(&mut self, now: Instant) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.next_timeout = Some(t.max(now));
                    return;
                }
                Ok(Output::Event(Event::MediaAdded(added))) => self.mid = Some(added.mid),
                Ok(_) => {}
                Err(error) => {
                    tracing::debug!(%error, "WebRTC session failed during setup");
                    self.ended = true;
                    return;
                }
            }
        }
    }

    /// Feeds a datagram the shard's port received for this session.
    pub fn receive(&mut self, now: Instant, source: SocketAddr, datagram: &[u8]) -> bool {
        let Ok(contents) = datagram.try_into() else {
            return false;
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
        self.rtc.handle_input(input).is_ok()
    }

    /// Lets the session run its timers (ICE consent, DTLS retransmits, RTCP).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.next_timeout.is_some_and(|t| t <= now)
            && self.rtc.handle_input(Input::Timeout(now)).is_err()
        {
            self.ended = true;
        }
    }

    /// When the session next needs [`handle_timeout`](Self::handle_timeout).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_timeout
    }

    /// Sends what the session wants sent, from `socket`, until it yields a decrypted RTP packet
    /// (written to `rtp`) or has nothing more. Call until [`Drained::Idle`] after every input.
    pub fn drain(
        &mut self,
        now: Instant,
        socket: &mio::net::UdpSocket,
        rtp: &mut [u8; RTP_BUFFER],
        sent: &mut u64,
    ) -> Drained {
        // str0m sends what `write` queued only on its next timeout input: when that timeout is
        // already due, feed it now rather than leave the packet for the shard's next tick.
        let mut due_timeouts = 0;
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) if t <= now && due_timeouts < MAX_DUE_TIMEOUTS => {
                    due_timeouts += 1;
                    if self.rtc.handle_input(Input::Timeout(now)).is_err() {
                        self.ended = true;
                        self.next_timeout = None;
                        return Drained::Idle;
                    }
                }
                Ok(Output::Timeout(t)) => {
                    self.next_timeout = Some(t.max(now));
                    return Drained::Idle;
                }
                Ok(Output::Transmit(transmit)) => {
                    if socket
                        .send_to(&transmit.contents, transmit.destination)
                        .is_ok()
                    {
                        *sent += 1;
                    }
                }
                Ok(Output::Event(Event::RtpPacket(packet))) => {
                    if let Some(confirmed) = self.dtls_confirmed.take() {
                        confirmed.confirm();
                    }
                    if let Some(len) = write_rtp(&packet.header, &packet.payload, rtp) {
                        return Drained::Rtp(len);
                    }
                }
                Ok(Output::Event(Event::Connected)) => self.connected = true,
                Ok(Output::Event(Event::IceConnectionStateChange(state))) => {
                    if state == IceConnectionState::Disconnected {
                        // No consent from the browser any more; the media timeout ends the
                        // call if it does not come back.
                        tracing::debug!(local = %self.local, "WebRTC peer disconnected");
                    }
                }
                Ok(Output::Event(Event::MediaAdded(added))) => self.mid = Some(added.mid),
                Ok(_) => {}
                Err(error) => {
                    tracing::debug!(%error, "WebRTC session failed");
                    self.ended = true;
                    self.next_timeout = None;
                    return Drained::Idle;
                }
            }
        }
    }

    /// Queues one RTP packet from the call's pipeline towards the browser; the next drain
    /// encrypts and sends it. Packets before DTLS completes are dropped (returns false).
    pub fn write(&mut self, now: Instant, packet: &[u8]) -> bool {
        if !self.connected || self.ended {
            return false;
        }
        let (Some(mid), Ok(rtp)) = (self.mid, RtpPacket::parse(packet)) else {
            return false;
        };
        let seq = extend_sequence(self.last_seq, rtp.sequence);
        let mut api = self.rtc.direct_api();
        let Some(stream) = api.stream_tx_by_mid(mid, None) else {
            return false;
        };
        self.last_seq = Some(seq);
        let write = RtpWrite::new(
            Pt::from(rtp.payload_type),
            SeqNo::from(seq),
            rtp.timestamp,
            now,
            rtp.payload,
        )
        .marker(rtp.marker);
        stream.write_rtp(write);
        true
    }

    /// Whether the session failed or ended (str0m refused input, or DTLS closed).
    pub fn has_ended(&self) -> bool {
        self.ended || !self.rtc.is_alive()
    }
}

/// The session's SDP without `a=candidate` lines: an ICE-lite agent answers the browser's checks
/// and needs none of its candidates, and mDNS `.local` names would not parse.
fn without_candidates(sdp: &str) -> String {
    sdp.split_inclusive('\n')
        .filter(|line| !line.trim_start().starts_with("a=candidate:"))
        .collect()
}

/// Our SDP with the Opus format asking the browser for narrowband (RFC 7587
/// `maxplaybackrate`, `sprop-maxcapturerate`): the trunk side is 8 kHz, so wider audio would
/// only cost the browser's bits and our decoding (a narrowband packet decodes in about a
/// quarter of the instructions). str0m has no such parameter, and has already applied the
/// negotiation, so the text it wrote is amended before it leaves.
fn narrowband(sdp: &str, codec: LegCodec) -> String {
    const NARROWBAND: &str = "maxplaybackrate=8000;sprop-maxcapturerate=8000";
    let LegCodec::Opus { payload_type, .. } = codec else {
        return sdp.to_owned();
    };
    let fmtp = format!("a=fmtp:{payload_type} ");
    let rtpmap = format!("a=rtpmap:{payload_type} ");
    let has_fmtp = sdp.lines().any(|l| l.starts_with(&fmtp));
    sdp.split_inclusive('\n')
        .map(|line| {
            let text = line.trim_end();
            if has_fmtp && text.starts_with(&fmtp) && !text.contains("maxplaybackrate") {
                format!("{text};{NARROWBAND}\r\n")
            } else if !has_fmtp && text.starts_with(&rtpmap) {
                format!("{text}\r\n{fmtp}{NARROWBAND}\r\n")
            } else {
                line.to_owned()
            }
        })
        .collect()
}

/// The Opus and telephone-event payload types an SDP answer settled on.
fn codec_of(answer: &str) -> Result<LegCodec, MediaError> {
    let sdp = Sdp::parse(answer.as_bytes())
        .map_err(|e| MediaError::WebRtc(format!("unreadable SDP answer: {e}")))?;
    let audio = sdp
        .media
        .iter()
        .find(|m| m.kind == "audio" && m.port != 0)
        .ok_or(MediaError::WebRtc("no audio in the WebRTC answer".into()))?;
    let find = |name: &str, rate: u32| {
        audio
            .formats
            .iter()
            .filter_map(|f| f.parse::<u8>().ok())
            .find(|pt| {
                audio
                    .rtpmap(*pt)
                    .is_some_and(|m| m.name.eq_ignore_ascii_case(name) && m.rate == rate)
            })
    };
    let payload_type =
        find("opus", 48_000).ok_or(MediaError::WebRtc("the browser has no Opus".into()))?;
    Ok(LegCodec::Opus {
        payload_type,
        event_payload_type: find("telephone-event", 48_000),
        our_event_payload_type: None,
    })
}

/// RTP bytes (12-byte header, no extensions) for a packet str0m decrypted, so the pipeline sees
/// what a plain RTP leg would give it.
fn write_rtp(
    header: &str0m::rtp::RtpHeader,
    payload: &[u8],
    out: &mut [u8; RTP_BUFFER],
) -> Option<usize> {
    let len = 12 + payload.len();
    if len > out.len() {
        return None;
    }
    out[0] = 0x80;
    out[1] = (u8::from(header.marker) << 7) | (*header.payload_type & 0x7F);
    out[2..4].copy_from_slice(&header.sequence_number.to_be_bytes());
    out[4..8].copy_from_slice(&header.timestamp.to_be_bytes());
    out[8..12].copy_from_slice(&(*header.ssrc).to_be_bytes());
    out[12..len].copy_from_slice(payload);
    Some(len)
}

/// The 64-bit sequence number nearest the last one whose low 16 bits are `seq`.
fn extend_sequence(last: Option<u64>, seq: u16) -> u64 {
    let Some(last) = last else {
        return u64::from(seq);
    };
    let candidate = (last & !0xFFFF) | u64::from(seq);
    if candidate + 0x8000 < last {
        candidate + 0x1_0000
    } else if candidate > last + 0x8000 && candidate >= 0x1_0000 {
        candidate - 0x1_0000
    } else {
        candidate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_extend_across_wraps() {
        assert_eq!(extend_sequence(None, 65_535), 65_535);
        assert_eq!(extend_sequence(Some(65_535), 0), 65_536);
        assert_eq!(extend_sequence(Some(65_536), 65_535), 65_535);
        assert_eq!(extend_sequence(Some(70_000), 4_465), 70_001);
    }

    /// An offer as Chromium makes it for a microphone: BUNDLE, RED, G.722, two
    /// telephone-events, header extensions, and an mDNS host candidate.
    const CHROME_OFFER: &str = "v=0\r\n\
        o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
        s=-\r\n\
        t=0 0\r\n\
        a=group:BUNDLE 0\r\n\
        a=extmap-allow-mixed\r\n\
        a=msid-semantic: WMS 8a9b\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n\
        c=IN IP4 0.0.0.0\r\n\
        a=rtcp:9 IN IP4 0.0.0.0\r\n\
        a=candidate:3387637311 1 udp 2113937151 5f8c2a5e-8b5c-4c7c-9d7e-1f0a7b6f0a1b.local 54321 typ host generation 0 network-cost 999\r\n\
        a=ice-ufrag:Gx3e\r\n\
        a=ice-pwd:Kx2dNbm2dD0Kj1Cq2m3P4s5y\r\n\
        a=ice-options:trickle\r\n\
        a=fingerprint:sha-256 5B:2E:43:0A:91:8C:6D:1F:22:71:0E:9A:AB:3C:4D:5E:6F:70:81:92:A3:B4:C5:D6:E7:F8:09:1A:2B:3C:4D:5E\r\n\
        a=setup:actpass\r\n\
        a=mid:0\r\n\
        a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
        a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
        a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
        a=sendrecv\r\n\
        a=msid:8a9b 1c2d\r\n\
        a=rtcp-mux\r\n\
        a=rtcp-rsize\r\n\
        a=rtpmap:111 opus/48000/2\r\n\
        a=rtcp-fb:111 transport-cc\r\n\
        a=fmtp:111 minptime=10;useinbandfec=1\r\n\
        a=rtpmap:63 red/48000/2\r\n\
        a=fmtp:63 111/111\r\n\
        a=rtpmap:9 G722/8000\r\n\
        a=rtpmap:0 PCMU/8000\r\n\
        a=rtpmap:8 PCMA/8000\r\n\
        a=rtpmap:13 CN/8000\r\n\
        a=rtpmap:110 telephone-event/48000\r\n\
        a=rtpmap:126 telephone-event/8000\r\n\
        a=ssrc:3735928559 cname:Qw3rTy\r\n\
        a=ssrc:3735928559 msid:8a9b 1c2d\r\n";

    fn identity() -> WebRtcIdentity {
        WebRtcIdentity::generate().expect("a DTLS certificate")
    }

    fn local() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 20_000))
    }

    #[test]
    fn a_chrome_offer_with_an_mdns_candidate_is_answered_ice_lite_with_opus() {
        let (session, answer) =
            WebRtcSession::answer(Instant::now(), &identity(), local(), CHROME_OFFER)
                .expect("answered");
        assert!(answer.contains("a=ice-lite"), "{answer}");
        assert!(answer.contains("a=fingerprint:sha-256"), "{answer}");
        assert!(answer.contains("a=rtpmap:111 opus/48000/2"), "{answer}");
        assert!(answer.contains("127.0.0.1 20000 typ host"), "{answer}");
        assert!(!answer.contains("PCMU"), "browsers get Opus only: {answer}");
        assert!(
            answer.contains("a=fmtp:111 minptime=10;useinbandfec=1;maxplaybackrate=8000;"),
            "{answer}"
        );
        assert_eq!(
            session.codec(),
            Some(LegCodec::Opus {
                payload_type: 111,
                event_payload_type: Some(110),
                our_event_payload_type: None,
            })
        );
        assert!(!session.ufrag().is_empty());
    }

    #[test]
    fn an_offer_without_opus_or_that_is_not_sdp_is_refused_not_panicked_on() {
        let no_opus = CHROME_OFFER.replace("opus/48000/2", "speex/48000/2");
        let now = Instant::now();
        assert!(WebRtcSession::answer(now, &identity(), local(), &no_opus).is_err());
        assert!(WebRtcSession::answer(now, &identity(), local(), "hello").is_err());
        assert!(WebRtcSession::answer(now, &identity(), local(), "").is_err());
    }

    #[test]
    fn any_truncation_or_line_loss_of_an_offer_is_answered_or_refused() {
        let identity = identity();
        let now = Instant::now();
        for cut in (0..CHROME_OFFER.len()).step_by(7) {
            let _ = WebRtcSession::answer(now, &identity, local(), &CHROME_OFFER[..cut]);
        }
        let lines: Vec<&str> = CHROME_OFFER.split_inclusive("\r\n").collect();
        for skip in 0..lines.len() {
            let offer: String = lines
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != skip)
                .map(|(_, l)| *l)
                .collect();
            let _ = WebRtcSession::answer(now, &identity, local(), &offer);
        }
    }

    #[test]
    fn our_offer_is_ice_lite_and_takes_the_browsers_answer() {
        let now = Instant::now();
        let (mut session, offer) =
            WebRtcSession::offer(now, &identity(), local()).expect("an offer");
        assert!(
            offer.contains("a=ice-lite") && offer.contains("a=setup:actpass"),
            "{offer}"
        );
        assert!(offer.contains("telephone-event/48000"), "{offer}");
        assert!(session.accept_answer(now, "not an answer").is_err());
    }

    #[test]
    fn candidates_are_dropped_from_sdp() {
        let sdp = "v=0\r\na=candidate:1 1 udp 1 abc.local 5000 typ host\r\na=mid:0\r\n";
        assert_eq!(without_candidates(sdp), "v=0\r\na=mid:0\r\n");
    }
}
