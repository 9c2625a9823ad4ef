//! SDP for the gateway's two kinds of leg, and the codec each leg ends up with.
//!
//! Mechanism lives in `landline_sip::sdp`; this is the policy: which codecs each leg offers, in
//! which order, and how a negotiated codec becomes a media-plane [`LegCodec`].

use std::net::{IpAddr, SocketAddr};

use landline_codecs::G711Law;
use landline_sip::sdp::{Codec, CodecPolicy, Direction, LocalMedia, Negotiated, OfferedCodec};

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

/// The codec a leg negotiated, as the media plane needs it.
pub(crate) fn leg_codec(negotiated: &Negotiated) -> LegCodec {
    match negotiated.codec {
        Codec::Opus => LegCodec::Opus {
            payload_type: negotiated.pt,
            event_payload_type: negotiated.telephone_event,
        },
        Codec::Pcmu | Codec::Pcma => LegCodec::G711 {
            law: if negotiated.codec == Codec::Pcmu {
                G711Law::Mu
            } else {
                G711Law::A
            },
            event_payload_type: negotiated.telephone_event,
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
