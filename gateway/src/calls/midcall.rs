//! What happens on an established call: re-offers (hold and unhold, a browser's included),
//! hold passed on to the other leg, and SIP INFO digits turned into RFC 4733.

use std::time::{Duration, Instant};

use landline_sip::message::StatusCode;
use landline_sip::sdp::{self, Sdp};
use landline_sip::ua::CallId as LegId;

use super::call::Service;
use super::{Signalling, session};
use crate::media::{Command, LegRole};

impl Signalling {
    /// A re-INVITE or UPDATE offer on a leg: answer it ourselves (RFC 3264, in our codec
    /// order), and make the media follow its codec, payload types, address and hold state.
    pub(super) fn answer_reoffer(&mut self, now: Instant, id: u64, leg: LegId, body: &[u8]) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let bridged = call.service == Service::Bridge;
        let Some((role, session)) = call.leg_session(leg) else {
            return;
        };
        let Ok(offer) = Sdp::parse(body) else {
            self.ua.reject_offer(now, leg, StatusCode::BAD_REQUEST);
            return;
        };
        if let Some(previous) = session.webrtc_answer.as_deref() {
            // A browser's re-offer (hold, unhold) on the same connection: the session on the
            // shard goes on as it is; our answer is the first one with its direction mirrored.
            let restart = std::str::from_utf8(body).ok().and_then(session::ice_ufrag);
            if restart.is_some() && restart != session.webrtc_peer_ufrag {
                // ICE restart needs the shard's session to take new credentials: not done.
                tracing::info!(call = id, "browser ICE restart refused");
                self.ua
                    .reject_offer(now, leg, StatusCode::NOT_ACCEPTABLE_HERE);
                return;
            }
            let answer = session::webrtc_reanswer(previous, &offer);
            let held = offer_holds(&offer);
            let hold_changed = session.remote_held != held;
            session.remote_held = held;
            session.webrtc_answer = Some(answer.clone());
            self.ua.answer_offer(now, leg, answer.into_bytes());
            if let Some((media_id, shard)) = call.media {
                let _ = self
                    .media
                    .send(shard, Command::SetHold(media_id, role, held));
            }
            if hold_changed {
                self.propagate_hold(now, id, role, held);
            }
            return;
        }
        // RFC 3264: the answer picks what we support from the offer: the running codec while
        // it is still offered (a hold or a refresh changes nothing on the shard), else the first
        // in our order (the trunk's configured codecs; a client's Opus first); the media plane
        // then follows the new codec, payload types and address. The echo and tone calls'
        // single leg keeps the codec they started with.
        let running = session.negotiated.as_ref().map(|n| n.codec);
        let fixed = (!bridged).then_some(running).flatten();
        let Ok((answer, negotiated)) = answer_in_our_order(&offer, &session.local, fixed, running)
        else {
            self.ua
                .reject_offer(now, leg, StatusCode::NOT_ACCEPTABLE_HERE);
            return;
        };
        session.local.session_version += 1;
        let remote = session::remote_of(&negotiated);
        let codec = session::leg_codec(&negotiated);
        let held = offer_holds(&offer);
        let hold_changed = session.remote_held != held;
        let previous = session.negotiated.replace(negotiated);
        if !self.change_leg_codec(id, role, codec) {
            // Nothing on the shard changed: the session stays as it was, the offer refused.
            if let Some((_, session)) = self.calls.get_mut(&id).and_then(|c| c.leg_session(leg)) {
                session.negotiated = previous;
            }
            self.ua
                .reject_offer(now, leg, StatusCode::NOT_ACCEPTABLE_HERE);
            return;
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if let Some((_, session)) = call.leg_session(leg) {
            session.remote_held = held;
        }
        self.ua
            .answer_offer(now, leg, answer.to_string().into_bytes());
        if let Some((media_id, shard)) = call.media {
            if let Some(remote) = remote {
                let _ = self
                    .media
                    .send(shard, Command::SetRemote(media_id, role, remote));
            }
            let _ = self
                .media
                .send(shard, Command::SetHold(media_id, role, held));
        }
        if hold_changed {
            self.propagate_hold(now, id, role, held);
        }
    }

    /// A re-INVITE without SDP on a leg (RFC 3261 §14.2): our 200 offers the session as it
    /// runs (the negotiated codec, our current direction, a new version) and the answer comes
    /// in the ACK ([`Signalling::ack_answer`]). A browser is offered its session unchanged.
    pub(super) fn offer_for_reinvite(&mut self, now: Instant, id: u64, leg: LegId) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some((_, session)) = call.leg_session(leg) else {
            return;
        };
        if let Some(previous) = session.webrtc_answer.as_deref() {
            let offer = session::webrtc_reoffer(previous, session.local.direction);
            session.webrtc_answer = Some(offer.clone());
            self.ua.answer_offer(now, leg, offer.into_bytes());
            return;
        }
        let Some(codec) = session.negotiated.as_ref().map(|n| n.codec) else {
            self.ua.reject_offer(now, leg, StatusCode::SERVER_ERROR);
            return;
        };
        session.local.session_version += 1;
        let mut local = session.local.clone();
        local.codecs = vec![codec];
        let offer = sdp::build_offer(&local);
        session.offer = Some(offer.clone());
        self.ua
            .answer_offer(now, leg, offer.to_string().into_bytes());
    }

    /// The ACK that answers the offer in our 200 to an offerless re-INVITE: media follows the
    /// answer (address, hold). An answer that does not fit our offer ends the call, since the
    /// session has no agreed description left (RFC 3261 §13.3.1.4 leaves us a BYE).
    pub(super) fn ack_answer(&mut self, now: Instant, id: u64, leg: LegId, sdp: Option<Vec<u8>>) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some((role, session)) = call.leg_session(leg) else {
            return;
        };
        let Some(offer) = session.offer.take() else {
            // A browser's answer to its unchanged session: nothing on the shard changes.
            return;
        };
        let answer = sdp.as_deref().and_then(|b| Sdp::parse(b).ok());
        let negotiated = answer
            .as_ref()
            .and_then(|answer| sdp::accept_answer(&offer, answer).ok());
        let current = session.negotiated.as_ref().map(|n| n.codec);
        let Some(negotiated) = negotiated.filter(|n| Some(n.codec) == current) else {
            tracing::warn!(call = id, ?role, "ACK without a usable answer to our offer");
            self.end_call(
                now,
                id,
                crate::ops::cdr::EndedBy::Gateway,
                "bad_ack_answer",
                None,
            );
            return;
        };
        let held = answer.as_ref().is_some_and(offer_holds);
        let hold_changed = session.remote_held != held;
        session.remote_held = held;
        let remote = session::remote_of(&negotiated);
        let codec = session::leg_codec(&negotiated);
        session.negotiated = Some(negotiated);
        let media = call.media;
        // Same codec as offered, but the answer may give it or its events other types.
        self.change_leg_codec(id, role, codec);
        if let Some((media_id, shard)) = media {
            if let Some(remote) = remote {
                let _ = self
                    .media
                    .send(shard, Command::SetRemote(media_id, role, remote));
            }
            let _ = self
                .media
                .send(shard, Command::SetHold(media_id, role, held));
        }
        if hold_changed {
            self.propagate_hold(now, id, role, held);
        }
    }

    /// Tells the other leg that this one went on hold (or came back), with a re-INVITE that
    /// makes us `sendonly` (or `sendrecv` again) towards it, so a carrier knows the line is on
    /// hold and a client shows it. Media keeps flowing through the shard either way.
    pub(super) fn propagate_hold(&mut self, now: Instant, id: u64, held_role: LegRole, held: bool) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let (other_leg, other) = match held_role {
            LegRole::Client => (call.trunk, call.trunk_session.as_mut()),
            LegRole::Trunk => (call.client, Some(&mut call.client_session)),
        };
        let (Some(other_leg), Some(other)) = (other_leg, other) else {
            return;
        };
        // Our direction towards the other leg from now on; re-offers from it are answered so.
        other.local.direction = if held {
            sdp::Direction::SendOnly
        } else {
            sdp::Direction::SendRecv
        };
        if let Some(previous) = other.webrtc_answer.as_deref() {
            // A browser: its session on the shard goes on unchanged (same ICE credentials,
            // fingerprint and DTLS role); only the direction and the version change.
            let offer = session::webrtc_reoffer(previous, other.local.direction);
            other.webrtc_answer = Some(offer.clone());
            self.ua.reinvite(now, other_leg, offer.into_bytes());
            return;
        }
        let Some(codec) = other.negotiated.as_ref().map(|n| n.codec) else {
            return;
        };
        other.local.session_version += 1;
        let mut local = other.local.clone();
        local.codecs = vec![codec];
        let offer = sdp::build_offer(&local);
        self.ua
            .reinvite(now, other_leg, offer.to_string().into_bytes());
    }

    /// SIP INFO DTMF from a client becomes RFC 4733 towards the trunk.
    pub(super) fn info(&mut self, id: u64, leg: LegId, content_type: Option<&str>, body: &[u8]) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        if call.trunk == Some(leg) {
            return;
        }
        let Some((digit, duration)) = parse_dtmf_info(content_type, body) else {
            return;
        };
        if let Some((media_id, shard)) = call.media {
            let command = Command::SendDigit(media_id, LegRole::Trunk, digit, duration);
            let _ = self.media.send(shard, command);
        }
    }
}

/// Our answer to a re-offer on a plain RTP leg (RFC 3264 §8.3.2 with §6.1): what we support of
/// the offer, in our order (`local.codecs`: the trunk's configured codecs, a client's Opus
/// first), or only `fixed` when the leg's codec cannot change; a new `o=` version.
fn answer_in_our_order(
    offer: &Sdp,
    local: &sdp::LocalMedia,
    fixed: Option<sdp::Codec>,
    running: Option<sdp::Codec>,
) -> Result<(Sdp, sdp::Negotiated), sdp::NegotiationError> {
    let mut local = local.clone();
    local.session_version += 1;
    if let Some(codec) = fixed {
        local.codecs = vec![codec];
    }
    let mut order: Vec<sdp::Codec> = running.into_iter().collect();
    order.extend(local.codecs.iter().filter(|c| Some(**c) != running));
    let policy = sdp::PreferenceOrder(order);
    sdp::answer(offer, &local, &policy)
}

/// Whether an offer puts us on hold: its audio stream will not send to us, or (RFC 2543
/// style, still sent by carriers' older switches) it gives `c=0.0.0.0` as its address.
fn offer_holds(offer: &Sdp) -> bool {
    offer
        .media
        .iter()
        .position(|m| m.kind == "audio" && m.port != 0)
        .is_some_and(|i| {
            matches!(
                offer.direction_of(i),
                sdp::Direction::SendOnly | sdp::Direction::Inactive
            ) || offer.address_of(i).is_some_and(|a| a.is_unspecified())
        })
}

/// Reads a DTMF digit from a SIP INFO body: `application/dtmf-relay` (`Signal=5`,
/// `Duration=160` in ms) or `application/dtmf` (just the digit).
fn parse_dtmf_info(content_type: Option<&str>, body: &[u8]) -> Option<(char, Duration)> {
    let text = std::str::from_utf8(body).ok()?;
    let kind = content_type?.trim().to_ascii_lowercase();
    let default = Duration::from_millis(160);
    let valid = |c: char| c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D' | 'a'..='d');
    if kind.starts_with("application/dtmf-relay") {
        let mut digit = None;
        let mut duration = default;
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            match key.trim().to_ascii_lowercase().as_str() {
                "signal" => digit = value.trim().chars().next().filter(|c| valid(*c)),
                "duration" => {
                    if let Ok(ms) = value.trim().parse::<u64>() {
                        duration = Duration::from_millis(ms.clamp(40, 2000));
                    }
                }
                _ => {}
            }
        }
        return digit.map(|d| (d.to_ascii_uppercase(), duration));
    }
    if kind.starts_with("application/dtmf") {
        let c = text.trim().chars().next().filter(|c| valid(*c))?;
        return Some((c.to_ascii_uppercase(), default));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_is_read_from_the_direction_or_an_unspecified_address() {
        let offer = |extra: &str, addr: &str| {
            let text = format!(
                "v=0\r\no=c 1 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 {addr}\r\nt=0 0\r\n\
                 m=audio 4000 RTP/AVP 0\r\n{extra}"
            );
            Sdp::parse(text.as_bytes()).expect("offer parses")
        };
        assert!(!offer_holds(&offer("", "192.0.2.1")));
        assert!(offer_holds(&offer("a=sendonly\r\n", "192.0.2.1")));
        assert!(offer_holds(&offer("a=inactive\r\n", "192.0.2.1")));
        assert!(offer_holds(&offer("a=sendrecv\r\n", "0.0.0.0")));
        assert!(!offer_holds(&offer("a=recvonly\r\n", "192.0.2.1")));
    }

    fn trunk_local(codecs: Vec<sdp::Codec>) -> sdp::LocalMedia {
        session::trunk_media([192, 0, 2, 1].into(), 4000, codecs, 7)
    }

    fn reoffer(formats: &str, maps: &str) -> Sdp {
        let text = format!(
            "v=0\r\no=c 1 3 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
             m=audio 6002 RTP/AVP {formats}\r\n{maps}"
        );
        Sdp::parse(text.as_bytes()).expect("offer parses")
    }

    #[test]
    fn a_reoffer_is_answered_in_the_trunks_order_with_its_address_and_event_type() {
        use sdp::Codec::{Pcma, Pcmu};
        let maps = "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
                    a=rtpmap:96 telephone-event/8000\r\n";
        let offer = reoffer("0 8 96", maps);
        let (answer, negotiated) =
            answer_in_our_order(&offer, &trunk_local(vec![Pcma, Pcmu]), None, None)
                .expect("answer");
        assert_eq!(negotiated.codec, Pcma, "the trunk's order, not the offer's");
        assert_eq!(negotiated.telephone_event, Some(96));
        assert_eq!(negotiated.remote, "192.0.2.9:6002".parse().expect("addr"));
        assert_eq!(answer.media[0].formats, ["8", "96"]);
        assert_eq!(answer.session_version, 2);
        // Only PCMA offered while PCMU ran: PCMA it is.
        let only_pcma = reoffer("8", "a=rtpmap:8 PCMA/8000\r\n");
        let (_, negotiated) =
            answer_in_our_order(&only_pcma, &trunk_local(vec![Pcmu, Pcma]), None, Some(Pcmu))
                .expect("answer");
        assert_eq!(negotiated.codec, Pcma);
        // Both offered while PCMA runs on a PCMU-first trunk (a hold, say): PCMA goes on.
        let (_, negotiated) =
            answer_in_our_order(&offer, &trunk_local(vec![Pcmu, Pcma]), None, Some(Pcma))
                .expect("answer");
        assert_eq!(negotiated.codec, Pcma, "no needless codec change");
        // Nothing we support, or a leg whose codec is fixed and not offered: refused (488).
        let g729 = reoffer("18", "a=rtpmap:18 G729/8000\r\n");
        assert!(answer_in_our_order(&g729, &trunk_local(vec![Pcmu, Pcma]), None, None).is_err());
        assert!(
            answer_in_our_order(
                &only_pcma,
                &trunk_local(vec![Pcmu, Pcma]),
                Some(Pcmu),
                Some(Pcmu)
            )
            .is_err()
        );
    }

    #[test]
    fn dtmf_info_bodies_are_read() {
        let relay = b"Signal=5\r\nDuration=250\r\n";
        assert_eq!(
            parse_dtmf_info(Some("application/dtmf-relay"), relay),
            Some(('5', Duration::from_millis(250)))
        );
        assert_eq!(
            parse_dtmf_info(Some("application/dtmf"), b"#"),
            Some(('#', Duration::from_millis(160)))
        );
        assert_eq!(
            parse_dtmf_info(Some("application/dtmf-relay"), b"Signal=x"),
            None
        );
        assert_eq!(parse_dtmf_info(Some("text/plain"), b"5"), None);
        assert_eq!(parse_dtmf_info(None, b"5"), None);
    }
}
