//! A trunk calls a DID: find its user, ring every registration of that user (first answer wins,
//! the others are cancelled), answer the trunk with the codec it offered that we prefer.

use std::time::{Instant, SystemTime};

use landline_sip::message::{Host, NameAddr, SipUri, StatusCode, Transport, Uri};
use landline_sip::sdp::{self, Codec, Sdp};
use landline_sip::ua::{CallId as LegId, CallParams};

use super::Signalling;
use super::call::{Call, LegSession, Phase, Service};
use super::outbound::user_part;
use super::session::{self, TrunkCodecPolicy};
use crate::config::{CountryCode, E164, TrunkCodec};
use crate::ops::cdr::EndedBy;
use crate::ops::metrics::Direction;

/// Where a trunk's INVITE was addressed: its Request-URI and its To header's URI.
pub(super) struct Called<'a> {
    /// The Request-URI: the DID when the carrier peers by address; our registered Contact
    /// when it delivers to a registration.
    pub(super) request_uri: &'a str,
    /// The To URI: the number the caller dialled, whoever retargeted the request.
    pub(super) to: &'a str,
}

/// A new INVITE from a trunk.
pub(super) fn start(
    s: &mut Signalling,
    now: Instant,
    leg: LegId,
    trunk_index: usize,
    from: &str,
    called: Called<'_>,
    offer: Option<Vec<u8>>,
) {
    let id = s.new_call_id();
    let trunk = s.trunks[trunk_index].config.clone();
    let dialled = dialled_number(&called, trunk.country.as_ref(), |did| {
        s.config.users.iter().any(|u| u.dids.contains(did))
    });
    let caller = user_part(from).unwrap_or_default();
    let session_id = s.random() >> 1;
    let client_session = LegSession::new(session::client_media(
        s.config.media.public_address,
        0,
        vec![Codec::Opus, Codec::Pcmu, Codec::Pcma],
        session_id,
    ));
    let trunk_session = LegSession::new(session::trunk_media(
        s.config.media.public_address,
        0,
        trunk.codecs.iter().map(|c| trunk_codec(*c)).collect(),
        session_id ^ 1,
    ));
    let mut call = Call::new(
        Direction::Inbound,
        Service::Bridge,
        (caller.clone(), dialled.clone()),
        client_session,
        Some(trunk_session),
    );
    call.trunk = Some(leg);
    call.trunk_call_id = s.ua.sip_call_id(leg).map(str::to_owned);
    call.trunk_index = Some(trunk_index);
    s.calls.insert(id, call);
    s.legs.insert(leg, id);
    s.metrics.call_started(Direction::Inbound);
    tracing::info!(call = id, trunk = %trunk.name.as_str(), did = %dialled, "inbound call");

    if !s.trunks[trunk_index].can_take_call() {
        return fail(
            s,
            now,
            id,
            StatusCode::SERVICE_UNAVAILABLE,
            "trunk_call_limit",
        );
    }
    s.trunks[trunk_index].call_started();
    if let Some(call) = s.calls.get_mut(&id) {
        call.trunk_released = false;
    }

    let did = did_of(&dialled, trunk.country.as_ref());
    let Some(user) = did
        .as_ref()
        .and_then(|d| s.config.users.iter().find(|u| u.dids.contains(d)))
        .cloned()
    else {
        return fail(s, now, id, StatusCode::NOT_FOUND, "unknown_did");
    };
    if let Some(call) = s.calls.get_mut(&id) {
        call.user = Some(user.username.as_str().to_owned());
        if let Some(did) = &did {
            call.to = did.to_string();
        }
        if let Some(e164) = did_of(&caller, trunk.country.as_ref()) {
            call.from = e164.to_string();
        }
    }
    // No SDP at all is a late offer (RFC 3261 §13.2.1): we offer in our 200, the trunk answers
    // in its ACK. SDP that does not parse is refused.
    let offer = match offer.as_deref().map(Sdp::parse) {
        None => None,
        Some(Ok(offer)) => Some(offer),
        Some(Err(_)) => {
            return fail(s, now, id, StatusCode::BAD_REQUEST, "bad_sdp_offer");
        }
    };
    let bindings: Vec<(
        String,
        std::net::SocketAddr,
        landline_sip::message::Transport,
    )> =
        s.ua.registrar()
            .map(|r| {
                r.lookup(now, user.username.as_str())
                    .into_iter()
                    .map(|b| (b.contact.clone(), b.source, b.transport.clone()))
                    .collect()
            })
            .unwrap_or_default();
    if bindings.is_empty() {
        return fail(
            s,
            now,
            id,
            StatusCode::TEMPORARILY_UNAVAILABLE,
            "not_registered",
        );
    }
    let (trunk_socket, client_socket) = match (s.bind_rtp(), s.bind_rtp()) {
        (Some(trunk), Some(client)) => (trunk, client),
        (one, other) => {
            // Half a pair is no use: give back whichever port was bound.
            for socket in [one, other].into_iter().flatten() {
                s.release_rtp(socket);
            }
            return fail(
                s,
                now,
                id,
                StatusCode::SERVICE_UNAVAILABLE,
                "rtp_ports_exhausted",
            );
        }
    };
    let Some(call) = s.calls.get_mut(&id) else {
        return;
    };
    // The trunk's offer is answered when a client answers; refuse now if that cannot work.
    let Some(trunk_session) = call.trunk_session.as_mut() else {
        return;
    };
    trunk_session.local.port = trunk_socket.local_addr().map(|a| a.port()).unwrap_or(0);
    trunk_session.socket = Some(trunk_socket);
    let policy = TrunkCodecPolicy {
        codecs: trunk_session.local.codecs.clone(),
    };
    match offer.map(|offer| sdp::answer(&offer, &trunk_session.local, &policy)) {
        None => {}
        Some(Ok((answer, negotiated))) => {
            trunk_session.answer = Some(answer);
            trunk_session.negotiated = Some(negotiated);
        }
        Some(Err(_)) => {
            return fail(
                s,
                now,
                id,
                StatusCode::NOT_ACCEPTABLE_HERE,
                "no_common_codec",
            );
        }
    }
    call.client_session.local.port = client_socket.local_addr().map(|a| a.port()).unwrap_or(0);
    call.client_session.socket = Some(client_socket);
    let client_offer = sdp::build_offer(&call.client_session.local);
    call.client_session.offer = Some(client_offer.clone());
    let body = client_offer.to_string().into_bytes();
    let from_uri = SipUri::new(
        Some(call.from.as_str()),
        s.ua.config().local_addr.ip().into(),
        None,
    );
    // To names the user's address-of-record; each registration's contact is only where the
    // INVITE goes (its Request-URI), which JsSIP and SIP.js do not take for the user.
    let aor = Host::parse(&s.config.sip.domain)
        .map(|domain| NameAddr::new(SipUri::new(Some(user.username.as_str()), domain, None)));
    for (contact, source, transport) in bindings {
        let target = contact
            .trim_matches(|c| c == '<' || c == '>')
            .parse::<Uri>()
            .ok()
            .and_then(|u| u.as_sip().cloned())
            .unwrap_or_else(|| {
                SipUri::new(
                    Some(user.username.as_str()),
                    source.ip().into(),
                    Some(source.port()),
                )
            });
        // A browser (registered over WebSocket) gets a WebRTC offer of its own; every browser
        // of the call on one shard, where the call's media will run.
        let browser = matches!(transport, Transport::Ws | Transport::Wss);
        let mut webrtc = None;
        let sdp = if browser {
            let shard = s.calls.get(&id).and_then(|c| c.webrtc_shard);
            match s.webrtc_session(now, shard, None) {
                Ok((session, shard, offer)) => {
                    let bytes = offer.clone().into_bytes();
                    webrtc = Some((session, shard, offer));
                    bytes
                }
                Err(error) => {
                    tracing::warn!(call = id, %error, "cannot offer WebRTC to a browser");
                    continue;
                }
            }
        } else {
            body.clone()
        };
        let params = CallParams {
            target,
            to: aor.clone(),
            from: Some(NameAddr::new(from_uri.clone())),
            // Where the registration came from, so calls reach clients behind NAT.
            destination: source,
            transport,
            sdp: Some(sdp),
            credentials: None,
        };
        let fork = s.ua.call(now, params);
        s.legs.insert(fork, id);
        if let Some(call) = s.calls.get_mut(&id) {
            call.forks.push(fork);
            if let Some((session, shard, offer)) = webrtc {
                call.webrtc_forks.push((fork, session, offer));
                call.webrtc_shard = Some(shard);
            }
        }
    }
}

/// A registration rings: tell the trunk once.
pub(super) fn fork_progress(
    s: &mut Signalling,
    now: Instant,
    id: u64,
    _fork: LegId,
    status: StatusCode,
) {
    let Some(call) = s.calls.get_mut(&id) else {
        return;
    };
    if call.ringing_sent || !matches!(status.code(), 180 | 183) {
        return;
    }
    call.ringing_sent = true;
    if let Some(trunk) = call.trunk {
        s.ua.ring(now, trunk, StatusCode::RINGING, None, false);
    }
}

/// A registration answered: it wins, the others are cancelled, the trunk is answered.
pub(super) fn fork_answered(
    s: &mut Signalling,
    now: Instant,
    id: u64,
    fork: LegId,
    sdp: Option<Vec<u8>>,
) {
    let Some(call) = s.calls.get_mut(&id) else {
        return;
    };
    if call.client.is_some() {
        // Another registration won already.
        s.legs.remove(&fork);
        s.ua.hangup(now, fork);
        return;
    }
    call.forks.retain(|f| *f != fork);
    call.client = Some(fork);
    call.client_call_id = s.ua.sip_call_id(fork).map(str::to_owned);
    let losers: Vec<LegId> = call.forks.drain(..).collect();
    let browser = call
        .webrtc_forks
        .iter()
        .position(|(f, ..)| *f == fork)
        .map(|i| call.webrtc_forks.swap_remove(i));
    // The other browsers' sessions end with their forks.
    call.webrtc_forks.clear();
    let mut unused_socket = None;
    match browser {
        Some((_, mut session, offer)) => {
            let answer = sdp.as_deref().and_then(|b| std::str::from_utf8(b).ok());
            match answer.map(|text| session.accept_answer(now, text)) {
                Some(Ok(())) => {
                    call.client_session.webrtc = Some(session);
                    call.client_session.webrtc_answer =
                        answer.map(|text| session::settled_offer(&offer, text));
                    call.client_session.webrtc_peer_ufrag = answer.and_then(session::ice_ufrag);
                    unused_socket = call.client_session.socket.take();
                }
                Some(Err(error)) => {
                    tracing::info!(call = id, %error, "browser answer refused");
                }
                None => {}
            }
        }
        None => {
            let negotiated = sdp
                .as_deref()
                .and_then(|b| Sdp::parse(b).ok())
                .and_then(|answer| {
                    sdp::accept_answer(call.client_session.offer.as_ref()?, &answer).ok()
                });
            call.client_session.negotiated = negotiated;
        }
    }
    // The trunk's answer; or, when its INVITE had no SDP, our offer (answered in its ACK).
    let late_offer = call
        .trunk_session
        .as_ref()
        .is_some_and(|t| t.answer.is_none());
    // A G.711 client is relayed, never converted between laws: offer the trunk its law.
    let client_law = call
        .client_session
        .negotiated
        .as_ref()
        .map(|n| n.codec)
        .filter(|c| *c != Codec::Opus);
    let trunk_answer = call.trunk_session.as_mut().map(|t| match &t.answer {
        Some(answer) => answer.to_string().into_bytes(),
        None => {
            if let Some(law) = client_law.filter(|law| t.local.codecs.contains(law)) {
                t.local.codecs = vec![law];
            }
            let offer = sdp::build_offer(&t.local);
            t.offer = Some(offer.clone());
            offer.to_string().into_bytes()
        }
    });
    for loser in losers {
        s.legs.remove(&loser);
        s.ua.hangup(now, loser);
    }
    if let Some(socket) = unused_socket {
        s.release_rtp(socket);
    }
    let usable = s.calls.get(&id).is_some_and(|c| {
        c.client_session.negotiated.is_some() || c.client_session.webrtc.is_some()
    });
    if !usable || trunk_answer.is_none() || (!late_offer && !s.start_media(id)) {
        tracing::warn!(call = id, "client answered without a usable SDP answer");
        if let Some(call) = s.calls.get_mut(&id) {
            // The client answered: it gets a BYE; the trunk a 503.
            call.final_status = Some(StatusCode::SERVICE_UNAVAILABLE);
        }
        s.end_call(
            now,
            id,
            EndedBy::Gateway,
            "bad_client_answer",
            Some(StatusCode::SERVICE_UNAVAILABLE),
        );
        return;
    }
    let Some(call) = s.calls.get_mut(&id) else {
        return;
    };
    call.phase = Phase::Answered;
    call.answered = Some(SystemTime::now());
    if let (Some(trunk), Some(answer)) = (call.trunk, trunk_answer) {
        s.ua.answer(now, trunk, answer);
    }
}

/// The trunk's ACK answered the offer our 200 made to its offerless INVITE: media starts
/// now. An ACK without a usable answer ends the call (RFC 3261 §13.3.1.4 leaves a BYE).
pub(super) fn trunk_late_answer(s: &mut Signalling, now: Instant, id: u64, sdp: Option<Vec<u8>>) {
    let Some(trunk) = s.calls.get_mut(&id).and_then(|c| c.trunk_session.as_mut()) else {
        return;
    };
    let negotiated = trunk.offer.take().and_then(|offer| {
        let answer = Sdp::parse(sdp.as_deref()?).ok()?;
        sdp::accept_answer(&offer, &answer).ok()
    });
    let usable = negotiated.as_ref().is_some_and(|n| n.codec != Codec::Opus);
    if usable {
        trunk.negotiated = negotiated;
    }
    if !usable || !s.start_media(id) {
        tracing::warn!(call = id, "trunk ACK without a usable SDP answer");
        s.end_call(now, id, EndedBy::Gateway, "bad_trunk_answer", None);
    }
}

/// A registration refused or timed out; when none is left, the trunk hears why.
pub(super) fn fork_failed(
    s: &mut Signalling,
    now: Instant,
    id: u64,
    fork: LegId,
    status: StatusCode,
) {
    let Some(call) = s.calls.get_mut(&id) else {
        return;
    };
    call.forks.retain(|f| *f != fork);
    // Busy only if every registration said busy; otherwise the user is unavailable.
    let busy = matches!(status.code(), 486 | 600);
    call.fork_failure = Some(match (call.fork_failure, busy) {
        (None, true) | (Some(StatusCode::BUSY_HERE), true) => StatusCode::BUSY_HERE,
        (Some(s), _) if s.code() == 603 => s,
        _ if status.code() == 603 => status,
        _ => StatusCode::TEMPORARILY_UNAVAILABLE,
    });
    if call.forks.is_empty() && call.client.is_none() {
        let status = call
            .fork_failure
            .unwrap_or(StatusCode::TEMPORARILY_UNAVAILABLE);
        call.final_status = Some(status);
        call.reason = Some(super::call::sip_reason(status));
        s.end_call(
            now,
            id,
            EndedBy::Client,
            &format!("client_{}", status.code()),
            Some(status),
        );
    }
}

fn fail(s: &mut Signalling, now: Instant, id: u64, status: StatusCode, cause: &str) {
    if let Some(call) = s.calls.get_mut(&id) {
        call.final_status = Some(status);
    }
    s.end_call(now, id, EndedBy::Gateway, cause, Some(status));
}

/// The number a trunk's INVITE dials, as the trunk wrote it: the Request-URI's user when it
/// is one of our DIDs, else the To header's user when that is, else the Request-URI's user
/// (which then fails as an unknown DID).
///
/// A carrier that peers by address puts the DID in the Request-URI. One that delivers to a
/// registration sends the INVITE to the Contact we registered (`landline@our-address`, not a
/// number: its location lookup replaced the Request-URI, RFC 3261 §10.3 and §16.5) and the DID
/// is found only in To.
fn dialled_number(
    called: &Called<'_>,
    country: Option<&CountryCode>,
    is_did: impl Fn(&E164) -> bool,
) -> String {
    let request_user = user_part(called.request_uri).unwrap_or_default();
    let ours = |user: &str| did_of(user, country).is_some_and(|did| is_did(&did));
    if ours(&request_user) {
        return request_user;
    }
    match user_part(called.to) {
        Some(to_user) if ours(&to_user) => to_user,
        _ => request_user,
    }
}

/// The E.164 number a trunk sent, written in whatever form the trunk uses.
fn did_of(number: &str, country: Option<&CountryCode>) -> Option<E164> {
    if let Ok(e164) = number.parse::<E164>() {
        return Some(e164);
    }
    if let Some(country) = country {
        if let Some(e164) = E164::from_dialled(number, country) {
            return Some(e164);
        }
    }
    format!("+{number}").parse().ok()
}

fn trunk_codec(codec: TrunkCodec) -> Codec {
    match codec {
        TrunkCodec::Pcmu => Codec::Pcmu,
        TrunkCodec::Pcma => Codec::Pcma,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialled(request_uri: &str, to: &str) -> String {
        let ours: E164 = "+15551230001".parse().expect("E.164");
        let country = CountryCode::try_from("1".to_owned()).expect("country");
        dialled_number(&Called { request_uri, to }, Some(&country), |did| {
            *did == ours
        })
    }

    #[test]
    fn the_did_comes_from_the_request_uri_of_a_peered_carrier() {
        assert_eq!(
            dialled(
                "sip:+15551230001@192.0.2.1:5060",
                "<sip:+15551230001@192.0.2.1>"
            ),
            "+15551230001"
        );
        // National form in the Request-URI, anything in To: the Request-URI decides.
        assert_eq!(
            dialled("sip:5551230001@192.0.2.1", "sip:someone@example.com"),
            "5551230001"
        );
    }

    #[test]
    fn a_call_to_our_registered_contact_takes_the_did_from_to() {
        assert_eq!(
            dialled(
                "sip:landline@192.0.2.1:5060",
                "<sip:+15551230001@carrier.example>"
            ),
            "+15551230001"
        );
        assert_eq!(
            dialled(
                "sip:landline@192.0.2.1:5060",
                "sip:15551230001@carrier.example"
            ),
            "15551230001"
        );
    }

    #[test]
    fn a_number_that_is_no_did_stays_the_request_uris() {
        assert_eq!(
            dialled(
                "sip:+15550000000@192.0.2.1",
                "sip:+15550000001@carrier.example"
            ),
            "+15550000000"
        );
        assert_eq!(
            dialled("sip:landline@192.0.2.1", "sip:+15550000001@carrier.example"),
            "landline"
        );
    }
}
