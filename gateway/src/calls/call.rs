//! One B2BUA call: its two SIP legs, its media, and what goes in its call record.

use std::net::UdpSocket;
use std::time::SystemTime;

use landline_sip::message::StatusCode;
use landline_sip::sdp::{LocalMedia, Negotiated, Sdp};
use landline_sip::ua::CallId as LegId;

use crate::media::{LegCodec, LegRole, MediaCallId, MediaEvent, WebRtcSession};
use crate::ops::cdr::EndedBy;
use crate::ops::metrics::{Direction, Outcome};

/// Where a call is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// INVITE sent or received, no answer yet.
    Setup,
    /// Both legs answered; media flows.
    Answered,
}

/// What the call's media is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    /// A client and a trunk.
    Bridge,
    /// The built-in echo test.
    Echo,
    /// The built-in tone.
    Tone,
}

/// One leg's negotiation: our local media description and what was agreed.
#[derive(Debug)]
pub(crate) struct LegSession {
    /// Our side (address, port, codecs), reused to answer re-INVITEs.
    pub(crate) local: LocalMedia,
    /// Our offer on this leg, while its answer is awaited.
    pub(crate) offer: Option<Sdp>,
    /// The far side's offer on this leg, while our answer is pending.
    pub(crate) remote_offer: Option<Sdp>,
    /// Our answer on this leg, kept to answer a 200 the same way as the 183 before it.
    pub(crate) answer: Option<Sdp>,
    /// The outcome, once both sides agreed.
    pub(crate) negotiated: Option<Negotiated>,
    /// The bound RTP socket, until the media plane takes it.
    pub(crate) socket: Option<UdpSocket>,
    /// Whether the far side of this leg has put the call on hold.
    pub(crate) remote_held: bool,
    /// A browser leg's WebRTC session (instead of `socket`), until the media plane takes it.
    pub(crate) webrtc: Option<Box<WebRtcSession>>,
    /// Our SDP towards a browser, as str0m wrote it: our answer to its offer, or (inbound)
    /// our offer with the DTLS role its answer settled. Re-offers are answered from it.
    pub(crate) webrtc_answer: Option<String>,
    /// The browser's ICE username fragment: a re-offer with another one restarts ICE.
    pub(crate) webrtc_peer_ufrag: Option<String>,
    /// The codec the media plane runs this leg with, once media started: a new negotiation
    /// that ends elsewhere changes it on the shard.
    pub(crate) media_codec: Option<LegCodec>,
}

/// A call through the gateway.
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) direction: Direction,
    pub(crate) service: Service,
    pub(crate) phase: Phase,
    /// The authenticated user (outbound) or the user the DID belongs to (inbound).
    pub(crate) user: Option<String>,
    pub(crate) from: String,
    pub(crate) to: String,
    /// The client leg (outbound: the caller; inbound: the fork that answered).
    pub(crate) client: Option<LegId>,
    /// Inbound: every registration being rung, until one answers.
    pub(crate) forks: Vec<LegId>,
    /// Inbound: the strongest failure seen from a fork (486 when all were busy).
    pub(crate) fork_failure: Option<StatusCode>,
    /// The trunk leg.
    pub(crate) trunk: Option<LegId>,
    /// Index of the trunk carrying the call, into the signalling core's trunk list.
    pub(crate) trunk_index: Option<usize>,
    /// Which of that trunk's addresses the current INVITE went to.
    pub(crate) trunk_address: usize,
    /// Whether the trunk's call count was already given back.
    pub(crate) trunk_released: bool,
    /// Outbound: trunks still to try after the current one fails with 503, 408 or a timeout.
    pub(crate) fallbacks: Vec<usize>,
    /// The number as the trunk was asked for it (for retries on the next trunk).
    pub(crate) called_e164: Option<crate::config::E164>,
    pub(crate) client_session: LegSession,
    pub(crate) trunk_session: Option<LegSession>,
    pub(crate) media: Option<(MediaCallId, usize)>,
    /// The shard whose WebRTC port this call's browser sessions name; media must start there.
    pub(crate) webrtc_shard: Option<usize>,
    /// Inbound: the WebRTC offer made to each browser registration being rung.
    pub(crate) webrtc_forks: Vec<(LegId, Box<WebRtcSession>, String)>,
    pub(crate) ringing_sent: bool,
    pub(crate) started: SystemTime,
    pub(crate) answered: Option<SystemTime>,
    /// The SIP status the call ended with, for the record.
    pub(crate) final_status: Option<StatusCode>,
    pub(crate) ended_by: Option<EndedBy>,
    pub(crate) hangup_cause: Option<String>,
    /// The far side's failure as an RFC 3326 `Reason` value, passed on when the call is
    /// refused on the other leg.
    pub(crate) reason: Option<String>,
    /// The `Reason` of the BYE or CANCEL that ended one leg, passed on with the other leg's,
    /// or the gateway's own ([`OwnHangup`]) when it ended the call; in the record too.
    pub(crate) hangup_reason: Option<String>,
    /// The client leg's SIP Call-ID (the answering registration's, inbound), for the record.
    pub(crate) client_call_id: Option<String>,
    /// The trunk leg's SIP Call-ID (the last trunk tried, outbound), for the record.
    pub(crate) trunk_call_id: Option<String>,
    pub(crate) media_stats: Option<crate::media::CallMediaStats>,
    pub(crate) digits: String,
}

impl LegSession {
    /// A leg with our side described and nothing negotiated yet.
    pub(crate) fn new(local: LocalMedia) -> Self {
        LegSession {
            local,
            offer: None,
            remote_offer: None,
            answer: None,
            negotiated: None,
            socket: None,
            remote_held: false,
            webrtc: None,
            webrtc_answer: None,
            webrtc_peer_ufrag: None,
            media_codec: None,
        }
    }

    /// Our answer for this leg's far side, as it goes in a 18x or 200.
    pub(crate) fn answer_body(&self) -> Option<Vec<u8>> {
        match (&self.webrtc_answer, &self.answer) {
            (Some(text), _) => Some(text.clone().into_bytes()),
            (None, Some(sdp)) => Some(sdp.to_string().into_bytes()),
            (None, None) => None,
        }
    }
}

/// Why the gateway itself ends a call. Its BYEs (or CANCELs) to both legs carry it as an
/// RFC 3326 `Reason` with an ITU-T Q.850 cause, so a carrier or a client logs our cause rather
/// than a silent hang-up it would read as normal clearing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OwnHangup {
    /// No RTP within `media.rtp_timeout` (or a browser's session failed).
    MediaTimeout,
    /// The media plane could not run the call (setup, sockets, an internal error).
    MediaFailure,
    /// The drain time after SIGTERM ran out with the call still up.
    Shutdown,
    /// A leg's in-dialog refresh failed (408, 481, no answer: its transport or peer is gone).
    RefreshFailed,
    /// A leg's session timer ran out, or our 2xx to it was never ACKed.
    TimerExpired,
}

impl OwnHangup {
    /// The `Reason` header value. Q.850 41 "temporary failure" says the network failed for
    /// a while and an immediate new attempt may work (RFC 3398 maps it to 503): a lost media
    /// path, a node going away behind a balancer, a peer gone from under a dialog. 47
    /// "resource unavailable" is our own media plane failing; 102 "recovery on timer expiry"
    /// is a protocol timer (session expiry, ACK wait) ending the call.
    pub(crate) fn reason(self) -> String {
        let (cause, text) = match self {
            OwnHangup::MediaTimeout => (41, "Media timeout"),
            OwnHangup::MediaFailure => (47, "Media failure"),
            OwnHangup::Shutdown => (41, "Gateway shutdown"),
            OwnHangup::RefreshFailed => (41, "Session refresh failed"),
            OwnHangup::TimerExpired => (102, "Recovery on timer expiry"),
        };
        format!("Q.850;cause={cause};text=\"{text}\"")
    }
}

/// An RFC 3326 `Reason` header value for a SIP status.
pub(crate) fn sip_reason(status: StatusCode) -> String {
    format!("SIP;cause={};text=\"{}\"", status.code(), status.reason())
}

impl Call {
    /// Which side `leg` is on, and its session description: `None` for a trunk leg that has
    /// none yet (a re-offer cannot reach one before its answer, but the network decides).
    pub(crate) fn leg_session(&mut self, leg: LegId) -> Option<(LegRole, &mut LegSession)> {
        if self.trunk == Some(leg) {
            Some((LegRole::Trunk, self.trunk_session.as_mut()?))
        } else {
            Some((LegRole::Client, &mut self.client_session))
        }
    }

    /// A call just set up, before any leg has answered.
    pub(crate) fn new(
        direction: Direction,
        service: Service,
        (from, to): (String, String),
        client_session: LegSession,
        trunk_session: Option<LegSession>,
    ) -> Self {
        Call {
            direction,
            service,
            phase: Phase::Setup,
            user: None,
            from,
            to,
            client: None,
            forks: Vec::new(),
            fork_failure: None,
            trunk: None,
            trunk_index: None,
            trunk_address: 0,
            trunk_released: true,
            fallbacks: Vec::new(),
            called_e164: None,
            client_session,
            trunk_session,
            media: None,
            webrtc_shard: None,
            webrtc_forks: Vec::new(),
            ringing_sent: false,
            started: SystemTime::now(),
            answered: None,
            final_status: None,
            ended_by: None,
            hangup_cause: None,
            reason: None,
            hangup_reason: None,
            client_call_id: None,
            trunk_call_id: None,
            media_stats: None,
            digits: String::new(),
        }
    }

    /// The metrics outcome this call ended with.
    pub(crate) fn outcome(&self) -> Outcome {
        if self.answered.is_some() {
            return Outcome::Answered;
        }
        match self.final_status.map(StatusCode::code) {
            Some(486) | Some(600) => Outcome::Busy,
            Some(487) => Outcome::Cancelled,
            Some(408) | Some(480) => Outcome::NoAnswer,
            _ => Outcome::Failed,
        }
    }
}

/// A media event's call id.
pub(crate) fn media_call_of(event: &MediaEvent) -> MediaCallId {
    match event {
        MediaEvent::Digit(id, ..)
        | MediaEvent::MediaTimeout(id, _)
        | MediaEvent::Failed(id, _)
        | MediaEvent::Removed(id, _) => *id,
    }
}

#[cfg(test)]
mod tests {
    use super::OwnHangup;

    /// What carriers and clients read on our BYEs: RFC 3326 syntax, Q.850 causes.
    #[test]
    fn own_hang_ups_name_a_q850_cause() {
        assert_eq!(
            OwnHangup::MediaTimeout.reason(),
            "Q.850;cause=41;text=\"Media timeout\""
        );
        assert_eq!(
            OwnHangup::Shutdown.reason(),
            "Q.850;cause=41;text=\"Gateway shutdown\""
        );
        assert_eq!(
            OwnHangup::MediaFailure.reason(),
            "Q.850;cause=47;text=\"Media failure\""
        );
        assert_eq!(
            OwnHangup::TimerExpired.reason(),
            "Q.850;cause=102;text=\"Recovery on timer expiry\""
        );
    }
}
