//! RFC 3264 offer/answer for one audio stream, with the codec choice left to a caller policy
//! (mechanism here, policy in the gateway's config).

use std::net::{IpAddr, SocketAddr};

use super::{Direction, Media, RtpMap, Sdp};

/// Audio codecs the gateway can handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, static PT 0.
    Pcmu,
    /// G.711 A-law, static PT 8.
    Pcma,
    /// Opus, 48 kHz, two channels in SDP (RFC 7587).
    Opus,
}

impl Codec {
    fn from_rtpmap(m: &RtpMap) -> Option<Self> {
        let name = m.name.to_ascii_uppercase();
        match (name.as_str(), m.rate) {
            ("PCMU", 8000) => Some(Codec::Pcmu),
            ("PCMA", 8000) => Some(Codec::Pcma),
            ("OPUS", 48000) => Some(Codec::Opus),
            _ => None,
        }
    }

    fn rtpmap(self, pt: u8) -> RtpMap {
        let (name, rate, channels) = match self {
            Codec::Pcmu => ("PCMU", 8000, 1),
            Codec::Pcma => ("PCMA", 8000, 1),
            Codec::Opus => ("opus", 48000, 2),
        };
        RtpMap {
            pt,
            name: name.into(),
            rate,
            channels,
        }
    }

    fn default_pt(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
            Codec::Opus => 111,
        }
    }

    /// The RTP clock rate, which telephone-event must share.
    pub fn clock_rate(self) -> u32 {
        match self {
            Codec::Opus => 48000,
            Codec::Pcmu | Codec::Pcma => 8000,
        }
    }
}

/// A codec as the peer offered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedCodec {
    /// Which codec.
    pub codec: Codec,
    /// The peer's payload type.
    pub pt: u8,
    /// The peer's fmtp, if any.
    pub fmtp: Option<String>,
}

/// Picks the codec to answer with from those offered (in the offer's preference order).
pub trait CodecPolicy {
    /// The index into `offered` to use, or `None` to refuse with 488.
    fn choose(&self, offered: &[OfferedCodec]) -> Option<usize>;
}

/// The simplest policy: our own preference list, first match wins.
#[derive(Debug, Clone)]
pub struct PreferenceOrder(pub Vec<Codec>);

impl CodecPolicy for PreferenceOrder {
    fn choose(&self, offered: &[OfferedCodec]) -> Option<usize> {
        self.0
            .iter()
            .find_map(|c| offered.iter().position(|o| o.codec == *c))
    }
}

/// What we put in our side of the negotiation.
#[derive(Debug, Clone)]
pub struct LocalMedia {
    /// Our RTP address.
    pub addr: IpAddr,
    /// Our RTP port.
    pub port: u16,
    /// Codecs to offer, in preference order.
    pub codecs: Vec<Codec>,
    /// fmtp for Opus when we offer or answer it.
    pub opus_fmtp: String,
    /// Offer and accept RFC 4733 telephone-event.
    pub telephone_event: bool,
    /// Packetisation time in ms.
    pub ptime: u32,
    /// Largest ptime we accept.
    pub maxptime: Option<u32>,
    /// Offer rtcp-mux.
    pub rtcp_mux: bool,
    /// What we want: `SendOnly` to put the peer on hold.
    pub direction: Direction,
    /// `o=` session id.
    pub session_id: u64,
    /// `o=` version; bump on every new offer or changed answer.
    pub session_version: u64,
}

/// The outcome both sides agree on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The codec.
    pub codec: Codec,
    /// Its payload type: the offerer's when we answer; the answer's when we offered (what we
    /// send with; the peer should send with our offer's).
    pub pt: u8,
    /// fmtp in force.
    pub fmtp: Option<String>,
    /// telephone-event payload type, if both support it at the codec's clock rate: the peer's
    /// (what we send with).
    pub telephone_event: Option<u8>,
    /// The telephone-event payload type our own SDP gave, which the peer sends with (RFC 3264
    /// §6.1); differs from `telephone_event` only when the peer answered our offer with
    /// another one.
    pub local_telephone_event: Option<u8>,
    /// Where to send RTP.
    pub remote: SocketAddr,
    /// Packetisation the peer asked for.
    pub ptime: Option<u32>,
    /// RTP and RTCP on one port.
    pub rtcp_mux: bool,
    /// Our direction.
    pub direction: Direction,
}

/// Why negotiation failed: a UA answers 488 (Not Acceptable Here).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    /// No audio stream in plain RTP, or it has no address.
    #[error("no usable audio stream (plain RTP/AVP)")]
    NoAudio,
    /// No codec in common under the policy.
    #[error("no acceptable codec")]
    NoCodec,
    /// The answer does not match our offer.
    #[error("answer does not match the offer")]
    BadAnswer,
}

/// Builds our offer.
pub fn build_offer(local: &LocalMedia) -> Sdp {
    let mut m = media_skeleton(local);
    let mut next_dynamic = 96;
    for c in &local.codecs {
        let pt = match c {
            Codec::Opus => 111,
            other => other.default_pt(),
        };
        m.formats.push(pt.to_string());
        m.rtpmaps.push(c.rtpmap(pt));
        if *c == Codec::Opus && !local.opus_fmtp.is_empty() {
            m.fmtps.push((pt, local.opus_fmtp.clone()));
        }
    }
    if local.telephone_event {
        let rates: Vec<u32> = dedup(local.codecs.iter().map(|c| c.clock_rate()).collect());
        for rate in rates {
            let pt = if rate == 8000 { 101 } else { next_dynamic };
            next_dynamic += 1;
            m.formats.push(pt.to_string());
            m.rtpmaps.push(RtpMap {
                pt,
                name: "telephone-event".into(),
                rate,
                channels: 1,
            });
            m.fmtps.push((pt, "0-16".into()));
        }
    }
    m.direction = Some(local.direction);
    m.rtcp_mux = local.rtcp_mux;
    session(local, vec![m])
}

/// Answers `offer`: the first audio stream is negotiated, every other stream is refused with
/// port 0 (RFC 3264 §6 keeps the m-line count).
pub fn answer(
    offer: &Sdp,
    local: &LocalMedia,
    policy: &dyn CodecPolicy,
) -> Result<(Sdp, Negotiated), NegotiationError> {
    // An SRTP stream (SDES `RTP/SAVP`, DTLS `UDP/TLS/RTP/SAVPF`) cannot be answered in plain
    // RTP: its packets would be played as noise. Another audio line in plain RTP (best-effort
    // SRTP offers carry both) is answered instead; with none, the offer is refused.
    let audio = offer
        .media
        .iter()
        .position(|m| m.kind == "audio" && m.port != 0 && is_plain_rtp(&m.proto))
        .ok_or(NegotiationError::NoAudio)?;
    let om = &offer.media[audio];
    // Only what we can handle goes to the policy, so it never picks a codec we lack.
    let offered: Vec<OfferedCodec> = offered_codecs(om)
        .into_iter()
        .filter(|o| local.codecs.contains(&o.codec))
        .collect();
    let chosen = policy
        .choose(&offered)
        .and_then(|i| offered.get(i))
        .cloned();
    let chosen = chosen.ok_or(NegotiationError::NoCodec)?;
    let te = local
        .telephone_event
        .then(|| telephone_event_pt(om, chosen.codec.clock_rate()))
        .flatten();
    let remote_ip = offer.address_of(audio).ok_or(NegotiationError::NoAudio)?;
    let direction = offer.direction_of(audio).answer(local.direction);

    let mut media = Vec::new();
    for (i, m) in offer.media.iter().enumerate() {
        if i != audio {
            let mut refused = m.clone();
            refused.port = 0;
            (refused.rtpmaps, refused.fmtps, refused.extra) = (Vec::new(), Vec::new(), Vec::new());
            media.push(refused);
            continue;
        }
        let mut a = media_skeleton(local);
        // The answer keeps the offer's profile (AVPF is AVP with feedback we need not send).
        a.proto = om.proto.clone();
        a.formats.push(chosen.pt.to_string());
        a.rtpmaps.push(chosen.codec.rtpmap(chosen.pt));
        if chosen.codec == Codec::Opus {
            let fmtp = if local.opus_fmtp.is_empty() {
                chosen.fmtp.clone()
            } else {
                Some(local.opus_fmtp.clone())
            };
            if let Some(f) = fmtp {
                a.fmtps.push((chosen.pt, f));
            }
        }
        if let Some(pt) = te {
            a.formats.push(pt.to_string());
            a.rtpmaps.push(RtpMap {
                pt,
                name: "telephone-event".into(),
                rate: chosen.codec.clock_rate(),
                channels: 1,
            });
            a.fmtps.push((pt, om.fmtp(pt).unwrap_or("0-16").to_owned()));
        }
        a.rtcp_mux = local.rtcp_mux && om.rtcp_mux;
        a.direction = Some(direction);
        media.push(a);
    }
    let negotiated = Negotiated {
        codec: chosen.codec,
        pt: chosen.pt,
        fmtp: chosen.fmtp,
        telephone_event: te,
        local_telephone_event: te,
        remote: SocketAddr::new(remote_ip, om.port),
        ptime: om.ptime,
        rtcp_mux: local.rtcp_mux && om.rtcp_mux,
        direction,
    };
    Ok((session(local, media), negotiated))
}

/// Whether a media line's transport is plain RTP (`RTP/AVP`, or `RTP/AVPF`).
fn is_plain_rtp(proto: &str) -> bool {
    proto.eq_ignore_ascii_case("RTP/AVP") || proto.eq_ignore_ascii_case("RTP/AVPF")
}

/// Reads the peer's answer to our offer.
pub fn accept_answer(offer: &Sdp, answer: &Sdp) -> Result<Negotiated, NegotiationError> {
    if answer.media.len() != offer.media.len() {
        return Err(NegotiationError::BadAnswer);
    }
    let audio = answer
        .media
        .iter()
        .position(|m| m.kind == "audio" && m.port != 0)
        .ok_or(NegotiationError::NoAudio)?;
    let am = &answer.media[audio];
    let first = offered_codecs(am)
        .into_iter()
        .next()
        .ok_or(NegotiationError::NoCodec)?;
    // The answer must pick a codec we offered; some carriers give it another payload type than
    // ours (PCMA under 96, say). We send with theirs and they should send with ours (RFC 3264
    // §6.1), so that is workable and accepted.
    let ours = offered_codecs(&offer.media[audio]);
    if !ours.iter().any(|o| o.codec == first.codec) {
        return Err(NegotiationError::BadAnswer);
    }
    let theirs = answer.direction_of(audio);
    let telephone_event = telephone_event_pt(am, first.codec.clock_rate());
    let ours = telephone_event_pt(&offer.media[audio], first.codec.clock_rate());
    Ok(Negotiated {
        codec: first.codec,
        pt: first.pt,
        fmtp: first.fmtp,
        telephone_event,
        // Only where both agreed to events; ours is what the peer must send them with.
        local_telephone_event: telephone_event.and(ours),
        remote: SocketAddr::new(
            answer.address_of(audio).ok_or(NegotiationError::NoAudio)?,
            am.port,
        ),
        ptime: am.ptime,
        rtcp_mux: am.rtcp_mux,
        direction: theirs.answer(Direction::SendRecv),
    })
}

fn offered_codecs(m: &Media) -> Vec<OfferedCodec> {
    m.formats
        .iter()
        .filter_map(|f| f.parse::<u8>().ok())
        .filter_map(|pt| {
            let map = m.rtpmap(pt)?;
            let codec = Codec::from_rtpmap(&map)?;
            Some(OfferedCodec {
                codec,
                pt,
                fmtp: m.fmtp(pt).map(str::to_owned),
            })
        })
        .collect()
}

fn telephone_event_pt(m: &Media, rate: u32) -> Option<u8> {
    m.formats
        .iter()
        .filter_map(|f| f.parse::<u8>().ok())
        .find(|pt| {
            m.rtpmap(*pt)
                .is_some_and(|r| r.name.eq_ignore_ascii_case("telephone-event") && r.rate == rate)
        })
}

fn media_skeleton(local: &LocalMedia) -> Media {
    Media {
        kind: "audio".into(),
        port: local.port,
        proto: "RTP/AVP".into(),
        formats: Vec::new(),
        connection: None,
        rtpmaps: Vec::new(),
        fmtps: Vec::new(),
        ptime: Some(local.ptime),
        maxptime: local.maxptime,
        rtcp_mux: false,
        direction: None,
        extra: Vec::new(),
    }
}

fn session(local: &LocalMedia, media: Vec<Media>) -> Sdp {
    Sdp {
        origin_user: "landline".into(),
        session_id: local.session_id,
        session_version: local.session_version,
        origin_addr: local.addr,
        session_name: "landline".into(),
        connection: Some(local.addr),
        timing: "0 0".into(),
        extra: Vec::new(),
        direction: None,
        media,
    }
}

fn dedup(mut v: Vec<u32>) -> Vec<u32> {
    let mut seen = Vec::new();
    v.retain(|x| {
        let new = !seen.contains(x);
        seen.push(*x);
        new
    });
    v
}
