//! SDP for the gateway's two kinds of leg, and the codec each leg ends up with.
//!
//! Mechanism lives in `landline_sip::sdp`; this is the policy: which codecs each leg offers, in
//! which order, and how a negotiated codec becomes a media-plane [`LegCodec`].

use std::net::{IpAddr, SocketAddr};

use landline_codecs::G711Law;
use landline_sip::sdp::{Codec, CodecPolicy, Direction, LocalMedia, Negotiated, OfferedCodec, Sdp};

use crate::media::LegCodec;

/// Opus parameters we put in SDP towards clients. Everything towards the trunk is 8 kHz, so
/// asking the client for narrowband (`maxplaybackrate`) saves its bits and our decoding work
/// without losing anything the trunk could carry.
pub(crate) const CLIENT_OPUS_FMTP: &str =
    "minptime=20;useinbandfec=1;maxplaybackrate=8000;sprop-maxcapturerate=8000";

/// Our side of a client leg: Opus first (robust on the internet), then G.711 for softphones
/// that lack it, and telephone-event.
pub(crate) fn client_media(
    addr: IpAddr,
    port: u16,
    codecs: Vec<Codec>,
    session_id: u64,
) -> LocalMedia {
    LocalMedia {
        addr,
        port,
        codecs,
        opus_fmtp: CLIENT_OPUS_FMTP.to_owned(),
        telephone_event: true,
        ptime: 20,
        maxptime: None,
        rtcp_mux: false,
        direction: Direction::SendRecv,
        session_id,
        session_version: 1,
    }
}

/// Our side of a trunk leg: the trunk's configured G.711 laws in its order, telephone-event.
pub(crate) fn trunk_media(
    addr: IpAddr,
    port: u16,
    codecs: Vec<Codec>,
    session_id: u64,
) -> LocalMedia {
    LocalMedia {
        addr,
        port,
        codecs,
        opus_fmtp: String::new(),
        telephone_event: true,
        ptime: 20,
        maxptime: None,
        rtcp_mux: false,
        direction: Direction::SendRecv,
        session_id,
        session_version: 1,
    }
}

/// Whether an offer comes from a WebRTC endpoint (a browser): DTLS-SRTP on its audio, which
/// only the media plane's WebRTC sessions can answer.
pub(crate) fn is_webrtc_offer(offer: &Sdp) -> bool {
    offer
        .media
        .iter()
        .find(|m| m.kind == "audio" && m.port != 0)
        .is_some_and(|m| m.proto.to_ascii_uppercase().contains("TLS/RTP/SAVP"))
}

/// Our answer to a browser's re-offer on a running session: the previous answer, its direction
/// mirroring the offer's (RFC 3264 §6.1) and its `o=` version one higher (§8).
pub(crate) fn webrtc_reanswer(previous: &str, offer: &Sdp) -> String {
    let direction = offer
        .media
        .iter()
        .position(|m| m.kind == "audio" && m.port != 0)
        .map(|i| offer.direction_of(i))
        .unwrap_or(Direction::SendRecv);
    let ours = match direction {
        Direction::SendOnly => "a=recvonly",
        Direction::RecvOnly => "a=sendonly",
        Direction::Inactive => "a=inactive",
        Direction::SendRecv => "a=sendrecv",
    };
    rewrite_direction(previous, ours)
}

/// A re-offer to a browser on its running session: our last SDP towards it with `direction`
/// and its `o=` version one higher (RFC 3264 §8). ICE credentials, fingerprint and the settled
/// DTLS role stay, so the browser keeps its DTLS association (RFC 8842 §5.5).
pub(crate) fn webrtc_reoffer(previous: &str, direction: Direction) -> String {
    let ours = match direction {
        Direction::SendOnly => "a=sendonly",
        Direction::RecvOnly => "a=recvonly",
        Direction::Inactive => "a=inactive",
        Direction::SendRecv => "a=sendrecv",
    };
    rewrite_direction(previous, ours)
}

/// `previous` with every direction line replaced by `ours` and the `o=` version bumped.
fn rewrite_direction(previous: &str, ours: &str) -> String {
    previous
        .split_inclusive('\n')
        .map(|line| {
            let text = line.trim_end();
            if matches!(
                text,
                "a=sendrecv" | "a=sendonly" | "a=recvonly" | "a=inactive"
            ) {
                format!("{ours}\r\n")
            } else if let Some(origin) = text.strip_prefix("o=") {
                format!("o={}\r\n", bump_version(origin))
            } else {
                line.to_owned()
            }
        })
        .collect()
}

/// Our offer to a browser as it stands once answered: `a=setup:actpass` becomes the role the
/// browser's `a=setup` left us (RFC 5763 §5), so a re-offer can be answered from it.
pub(crate) fn settled_offer(offer: &str, answer: &str) -> String {
    let browser_active = answer.lines().any(|l| l.trim() == "a=setup:active");
    let ours = if browser_active {
        "a=setup:passive"
    } else {
        "a=setup:active"
    };
    offer
        .split_inclusive('\n')
        .map(|line| {
            if line.trim_end() == "a=setup:actpass" {
                format!("{ours}\r\n")
            } else {
                line.to_owned()
            }
        })
        .collect()
}

/// The ICE username fragment an SDP carries (session or first media level).
pub(crate) fn ice_ufrag(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|l| l.trim().strip_prefix("a=ice-ufrag:").map(str::to_owned))
}

/// An `o=` line's value with its session version incremented.
fn bump_version(origin: &str) -> String {
    let mut fields: Vec<String> = origin.split(' ').map(str::to_owned).collect();
    if let Some(version) = fields.get_mut(2) {
        if let Ok(number) = version.parse::<u64>() {
            *version = (number + 1).to_string();
        }
    }
    fields.join(" ")
}

/// The codec a leg negotiated, as the media plane needs it.
pub(crate) fn leg_codec(negotiated: &Negotiated) -> LegCodec {
    let our_event_payload_type = negotiated
        .local_telephone_event
        .filter(|ours| Some(*ours) != negotiated.telephone_event);
    match negotiated.codec {
        Codec::Opus => LegCodec::Opus {
            payload_type: negotiated.pt,
            event_payload_type: negotiated.telephone_event,
            our_event_payload_type,
        },
        Codec::Pcmu | Codec::Pcma => LegCodec::G711 {
            law: if negotiated.codec == Codec::Pcmu {
                G711Law::Mu
            } else {
                G711Law::A
            },
            payload_type: negotiated.pt,
            event_payload_type: negotiated.telephone_event,
            our_event_payload_type,
            comfort_noise_payload_type: None,
        },
    }
}

/// Where a negotiated leg's media goes, unless the SDP gave no usable address (`0.0.0.0`
/// means "not yet", RFC 3264 §8.4), in which case symmetric RTP learns it.
pub(crate) fn remote_of(negotiated: &Negotiated) -> Option<SocketAddr> {
    let remote = negotiated.remote;
    (!remote.ip().is_unspecified() && remote.port() != 0).then_some(remote)
}

/// The client codec to use once the trunk's is known: the same G.711 law when the client
/// offered it (relay, no transcoding, when the client has no Opus), else Opus, else refuse.
pub(crate) struct ClientCodecPolicy {
    /// The law the trunk leg settled on.
    pub(crate) trunk_law: Codec,
}

impl CodecPolicy for ClientCodecPolicy {
    fn choose(&self, offered: &[OfferedCodec]) -> Option<usize> {
        offered
            .iter()
            .position(|o| o.codec == Codec::Opus)
            .or_else(|| offered.iter().position(|o| o.codec == self.trunk_law))
    }
}

/// The trunk's codec when the trunk offers (inbound calls): the first of our configured laws
/// that it offered, in our order.
pub(crate) struct TrunkCodecPolicy {
    /// The trunk's configured codecs, in preference order.
    pub(crate) codecs: Vec<Codec>,
}

impl CodecPolicy for TrunkCodecPolicy {
    fn choose(&self, offered: &[OfferedCodec]) -> Option<usize> {
        self.codecs
            .iter()
            .find_map(|c| offered.iter().position(|o| o.codec == *c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(codecs: &[Codec]) -> Vec<OfferedCodec> {
        codecs
            .iter()
            .enumerate()
            .map(|(i, c)| OfferedCodec {
                codec: *c,
                pt: 96 + i as u8,
                fmtp: None,
            })
            .collect()
    }

    #[test]
    fn a_client_gets_opus_when_it_can_and_the_trunk_law_otherwise() {
        let policy = ClientCodecPolicy {
            trunk_law: Codec::Pcma,
        };
        assert_eq!(
            policy.choose(&offered(&[Codec::Pcmu, Codec::Opus])),
            Some(1)
        );
        assert_eq!(
            policy.choose(&offered(&[Codec::Pcmu, Codec::Pcma])),
            Some(1)
        );
        assert_eq!(policy.choose(&offered(&[Codec::Pcmu])), None);
    }

    const WEBRTC_ANSWER: &str = "v=0\r\no=str0m-1 42 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
        a=ice-lite\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n\
        a=ice-ufrag:ours\r\na=setup:passive\r\na=mid:0\r\na=sendrecv\r\n\
        a=rtpmap:111 opus/48000/2\r\n";

    fn browser_offer(direction: &str) -> Sdp {
        let text = format!(
            "v=0\r\no=- 1 3 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
             m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:theirs\r\n\
             a=mid:0\r\na={direction}\r\na=rtpmap:111 opus/48000/2\r\n"
        );
        Sdp::parse(text.as_bytes()).expect("offer parses")
    }

    #[test]
    fn a_browser_hold_is_answered_with_the_mirrored_direction_and_a_new_version() {
        assert!(is_webrtc_offer(&browser_offer("sendrecv")));
        let held = webrtc_reanswer(WEBRTC_ANSWER, &browser_offer("sendonly"));
        assert!(held.contains("\r\na=recvonly\r\n"), "{held}");
        assert!(!held.contains("a=sendrecv"), "{held}");
        assert!(held.contains("o=str0m-1 42 3 IN IP4"), "{held}");
        let resumed = webrtc_reanswer(&held, &browser_offer("sendrecv"));
        assert!(resumed.contains("\r\na=sendrecv\r\n"), "{resumed}");
        assert!(resumed.contains("o=str0m-1 42 4 IN IP4"), "{resumed}");
        assert_eq!(ice_ufrag(WEBRTC_ANSWER).as_deref(), Some("ours"));
    }

    #[test]
    fn a_carriers_hold_is_re_offered_to_a_browser_on_its_running_session() {
        let held = webrtc_reoffer(WEBRTC_ANSWER, Direction::SendOnly);
        assert!(held.contains("\r\na=sendonly\r\n"), "{held}");
        assert!(held.contains("o=str0m-1 42 3 IN IP4"), "{held}");
        // Same ICE credentials and DTLS role: the browser keeps its association.
        assert!(held.contains("a=ice-ufrag:ours") && held.contains("a=setup:passive"));
        let resumed = webrtc_reoffer(&held, Direction::SendRecv);
        assert!(resumed.contains("\r\na=sendrecv\r\n"), "{resumed}");
        assert!(resumed.contains("o=str0m-1 42 4 IN IP4"), "{resumed}");
    }

    #[test]
    fn our_offer_takes_the_dtls_role_the_browser_left_us() {
        let offer = "v=0\r\na=setup:actpass\r\n";
        assert_eq!(
            settled_offer(offer, "a=setup:active\r\n"),
            "v=0\r\na=setup:passive\r\n"
        );
        assert_eq!(
            settled_offer(offer, "a=setup:passive\r\n"),
            "v=0\r\na=setup:active\r\n"
        );
    }

    #[test]
    fn a_trunk_offer_is_answered_in_our_order() {
        let policy = TrunkCodecPolicy {
            codecs: vec![Codec::Pcma, Codec::Pcmu],
        };
        assert_eq!(
            policy.choose(&offered(&[Codec::Pcmu, Codec::Pcma])),
            Some(1)
        );
        assert_eq!(policy.choose(&offered(&[Codec::Opus])), None);
    }
}
