//! A client calls out: authenticate, normalise the number, route it, INVITE a trunk (failing
//! over on 503, 408 or a timeout), relay progress and early media, bridge the answer.

use std::time::{Instant, SystemTime};

use landline_sip::message::{Host, SipUri, StatusCode, Uri};
use landline_sip::sdp::{self, Codec, Sdp};
use landline_sip::ua::{CallId as LegId, CallParams};

use super::call::{Call, LegSession, Phase, Service};
use super::caller_id::caller_identity;
use super::session::{self, ClientCodecPolicy};
use super::{Signalling, sip_transport};
use crate::config::{E164, TrunkCodec};
use crate::media::LegRole;
use crate::ops::cdr::EndedBy;
use crate::ops::metrics::Direction;

/// A new INVITE from a client.
pub(super) fn start(
    s: &mut Signalling,
    now: Instant,
    leg: LegId,
    user: Option<String>,
    from: &str,
    to: &str,
    offer: Option<Vec<u8>>,
) {
    // Only authenticated users reach a trunk, whatever their From says.
    let Some(user) = user
        .and_then(|u| s.config.users.iter().find(|c| c.username.as_str() == u))
        .cloned()
    else {
        s.ua.reject(now, leg, StatusCode::FORBIDDEN);
        return;
    };
    let dialled = user_part(to).unwrap_or_default();
    let service = if dialled == s.config.numbers.echo.as_str() {
        Service::Echo
    } else if dialled == s.config.numbers.tone.as_str() {
        Service::Tone
    } else {
        Service::Bridge
    };
    let id = s.new_call_id();
    let caller = user
        .dids
        .first()
        .map(|d| d.to_string())
        .unwrap_or_else(|| user_part(from).unwrap_or_default());
    let session_id = s.random() >> 1;
    let client_session = LegSession::new(session::client_media(
        s.config.media.public_address,
        0,
        vec![Codec::Opus, Codec::Pcmu, Codec::Pcma],
        session_id,
    ));
    let mut call = Call::new(
        Direction::Outbound,
        service,
        (caller, dialled.clone()),
        client_session,
        None,
    );
    call.user = Some(user.username.as_str().to_owned());
    call.client = Some(leg);
    call.client_call_id = s.ua.sip_call_id(leg).map(str::to_owned);
    s.calls.insert(id, call);
    s.legs.insert(leg, id);
    s.metrics.call_started(Direction::Outbound);
    tracing::info!(call = id, user = %user.username, dialled = %dialled, "outbound call");

    let offer_bytes = offer;
    let Some(offer) = offer_bytes.as_deref().and_then(|b| Sdp::parse(b).ok()) else {
        // Offerless INVITEs (offer in our 200) are not supported: every client we serve offers.
        return fail(s, now, id, StatusCode::NOT_ACCEPTABLE_HERE, "no_sdp_offer");
    };
    if session::is_webrtc_offer(&offer) {
        // A browser: its session answers now, on a shard's WebRTC port; the answer goes out
        // with the trunk's progress or answer, or ours for the built-in numbers.
        match s.webrtc_session(now, None, offer_bytes.as_deref()) {
            Ok((webrtc, shard, answer)) => {
                if let Some(call) = s.calls.get_mut(&id) {
                    call.client_session.webrtc = Some(webrtc);
                    call.client_session.webrtc_answer = Some(answer);
                    call.client_session.webrtc_peer_ufrag = offer_bytes
                        .as_deref()
                        .and_then(|b| std::str::from_utf8(b).ok())
                        .and_then(session::ice_ufrag);
                    call.client_session.remote_offer = Some(offer);
                    call.webrtc_shard = Some(shard);
                }
            }
            Err(error) => {
                tracing::info!(call = id, %error, "browser offer refused");
                return fail(
                    s,
                    now,
                    id,
                    StatusCode::NOT_ACCEPTABLE_HERE,
                    "webrtc_offer_refused",
                );
            }
        }
    } else {
        // Refused now, before any trunk rings, when no answer could ever be made: no audio in
        // plain RTP (an SRTP-only softphone) or none of our codecs.
        let policy = sdp::PreferenceOrder(vec![Codec::Opus, Codec::Pcmu, Codec::Pcma]);
        let refusal = s
            .calls
            .get(&id)
            .and_then(|c| sdp::answer(&offer, &c.client_session.local, &policy).err());
        if let Some(error) = refusal {
            tracing::info!(call = id, %error, "client offer refused");
            return fail(
                s,
                now,
                id,
                StatusCode::NOT_ACCEPTABLE_HERE,
                "client_offer_refused",
            );
        }
        let Some(socket) = s.bind_rtp() else {
            return fail(
                s,
                now,
                id,
                StatusCode::SERVICE_UNAVAILABLE,
                "rtp_ports_exhausted",
            );
        };
        let port = socket.local_addr().map(|a| a.port()).unwrap_or(0);
        if let Some(call) = s.calls.get_mut(&id) {
            call.client_session.local.port = port;
            call.client_session.socket = Some(socket);
            call.client_session.remote_offer = Some(offer);
        }
    }
    if service != Service::Bridge {
        return answer_locally(s, now, id);
    }

    let Some(number) = E164::from_dialled(&dialled, &user.country) else {
        return fail(s, now, id, StatusCode::ADDRESS_INCOMPLETE, "invalid_number");
    };
    let routed: Vec<usize> = s
        .routes
        .lookup(&number)
        .iter()
        .filter_map(|name| s.trunks.iter().position(|t| &t.config.name == name))
        .collect();
    if routed.is_empty() {
        return fail(s, now, id, StatusCode::NOT_FOUND, "no_route");
    }
    let mut usable: Vec<usize> = routed
        .into_iter()
        .filter(|&i| s.trunks[i].can_take_call())
        .collect();
    if usable.is_empty() {
        return fail(
            s,
            now,
            id,
            StatusCode::SERVICE_UNAVAILABLE,
            "all_trunks_down_or_full",
        );
    }
    let first = usable.remove(0);
    if let Some(call) = s.calls.get_mut(&id) {
        call.to = number.to_string();
        call.called_e164 = Some(number);
        call.fallbacks = usable;
    }
    place_trunk_call(s, now, id, first, None);
}

/// Answers the echo and tone numbers ourselves.
fn answer_locally(s: &mut Signalling, now: Instant, id: u64) {
    let Some(call) = s.calls.get_mut(&id) else {
        return;
    };
    let Some(offer) = call.client_session.remote_offer.take() else {
        return;
    };
    let answer = match call.client_session.webrtc_answer.clone() {
        Some(answer) => answer,
        None => {
            let policy = sdp::PreferenceOrder(call.client_session.local.codecs.clone());
            let Ok((answer, negotiated)) = sdp::answer(&offer, &call.client_session.local, &policy)
            else {
                return fail(
                    s,
                    now,
                    id,
                    StatusCode::NOT_ACCEPTABLE_HERE,
                    "no_common_codec",
                );
            };
            call.client_session.negotiated = Some(negotiated);
            answer.to_string()
        }
    };
    let leg = call.client;
    if !s.start_media(id) {
        return fail(
            s,
            now,
            id,
            StatusCode::SERVICE_UNAVAILABLE,
            "media_setup_failed",
        );
    }
    if let Some(call) = s.calls.get_mut(&id) {
        call.phase = Phase::Answered;
        call.answered = Some(SystemTime::now());
    }
    if let Some(leg) = leg {
        s.ua.answer(now, leg, answer.into_bytes());
    }
}

/// INVITEs trunk `index` for the call's number, at its first address after `after` that the
/// probes do not say is down (or the next trunk when none is left).
fn place_trunk_call(s: &mut Signalling, now: Instant, id: u64, index: usize, after: Option<usize>) {
    let Some((slot, address, trunk)) = s.trunks.get(index).and_then(|t| {
        let slot = t.next_address(after)?;
        Some((slot, t.address(slot)?.clone(), t.config.clone()))
    }) else {
        return next_trunk_or_fail(s, now, id, "no_trunk_address".to_owned());
    };
    let destination = address.socket;
    let Some(call) = s.calls.get(&id) else {
        return;
    };
    let Some(number) = call.called_e164.clone() else {
        return;
    };
    let client_offer = call.client_session.remote_offer.as_ref();
    let offered: Vec<Codec> = client_offer.map(offered_codecs).unwrap_or_default();
    let mut codecs: Vec<Codec> = trunk.codecs.iter().map(|c| trunk_codec(*c)).collect();
    if !offered.contains(&Codec::Opus) {
        // A G.711-only client: offer the trunk what the client has, so media is relayed.
        let common: Vec<Codec> = codecs
            .iter()
            .copied()
            .filter(|c| offered.contains(c))
            .collect();
        if !common.is_empty() {
            codecs = common;
        }
    }
    let socket = match call.trunk_session.as_ref().map(|t| t.socket.is_some()) {
        Some(true) => None,
        _ => match s.bind_rtp() {
            Some(socket) => Some(socket),
            None => {
                return fail(
                    s,
                    now,
                    id,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "rtp_ports_exhausted",
                );
            }
        },
    };
    let session_id = s.random() >> 1;
    let Some(call) = s.calls.get_mut(&id) else {
        return;
    };
    let session = call.trunk_session.get_or_insert_with(|| {
        LegSession::new(session::trunk_media(
            s.config.media.public_address,
            0,
            Vec::new(),
            session_id,
        ))
    });
    if let Some(socket) = socket {
        session.local.port = socket.local_addr().map(|a| a.port()).unwrap_or(0);
        session.socket = Some(socket);
    }
    session.local.codecs = codecs;
    let offer = sdp::build_offer(&session.local);
    session.offer = Some(offer.clone());

    let host = Host::parse(&address.host).unwrap_or_else(|| destination.ip().into());
    let called = trunk.format_number(&number);
    let target = SipUri::new(Some(&called), host.clone(), Some(destination.port()));
    let (from, headers) = caller_identity(&trunk, &call.from, &host);
    let params = CallParams {
        target,
        to: None,
        from,
        destination,
        transport: sip_transport(trunk.transport),
        sdp: Some(offer.to_string().into_bytes()),
        credentials: trunk
            .auth
            .as_ref()
            .map(|a| landline_sip::auth::Credentials {
                username: a.username.clone(),
                password: a.password.clone(),
            }),
    };
    let leg = s.ua.call_with_headers(now, params, &headers);
    call.trunk = Some(leg);
    call.trunk_call_id = s.ua.sip_call_id(leg).map(str::to_owned);
    call.trunk_index = Some(index);
    call.trunk_address = slot;
    call.trunk_released = false;
    s.legs.insert(leg, id);
    if let Some(t) = s.trunks.get_mut(index) {
        t.call_started();
    }
    tracing::info!(call = id, trunk = %trunk.name.as_str(), %destination, called = %called, "INVITE to trunk");
}

/// 18x from the trunk: relay ringing, or bridge early media with a 183 carrying our SDP.
pub(super) fn trunk_progress(
    s: &mut Signalling,
    now: Instant,
    id: u64,
    status: StatusCode,
    sdp: Option<Vec<u8>>,
) {
    let Some(client) = s.calls.get(&id).and_then(|c| c.client) else {
        return;
    };
    if s.calls.get(&id).is_some_and(|c| c.media.is_some()) {
        // Early media runs already: a later 18x (another fork's, or the same dialog's with a
        // new address) moves it; the client's answer stays as it was.
        if let Some(body) = sdp.as_deref() {
            follow_trunk_answer(s, id, body);
        }
        return;
    }
    if let Some(answer) = sdp.as_deref().and_then(|b| negotiate(s, id, b)) {
        if s.start_media(id) {
            s.ua.ring(
                now,
                client,
                StatusCode::SESSION_PROGRESS,
                Some(answer),
                false,
            );
            return;
        }
    }
    let Some(call) = s.calls.get_mut(&id) else {
        return;
    };
    if !call.ringing_sent {
        call.ringing_sent = true;
        let status = if status.code() == 183 {
            StatusCode::RINGING
        } else {
            status
        };
        s.ua.ring(now, client, status, None, false);
    }
}

/// 200 from the trunk: media (if not already up from early media), then answer the client.
pub(super) fn trunk_answered(s: &mut Signalling, now: Instant, id: u64, sdp: Option<Vec<u8>>) {
    let media_up = s.calls.get(&id).is_some_and(|c| c.media.is_some());
    let answer = match (media_up, sdp) {
        (false, Some(body)) => negotiate(s, id, &body),
        // Early media ran on a 18x's SDP; the 200's is the answer that counts (an unreliable
        // 18x's was only a preview, and the 200 may come from another fork): media follows it.
        (true, Some(body)) => follow_trunk_answer(s, id, &body)
            .then(|| {
                s.calls
                    .get(&id)
                    .and_then(|c| c.client_session.answer_body())
            })
            .flatten(),
        (true, None) => s
            .calls
            .get(&id)
            .and_then(|c| c.client_session.answer_body()),
        (false, None) => None,
    };
    let Some(answer) = answer else {
        // No audio stream left (port 0), no codec of ours, or no SDP at all: media cannot
        // work, which the client hears as 488 (RFC 3261 §21.4.26).
        tracing::warn!(call = id, "trunk answered without a usable SDP answer");
        return fail_after_answer(
            s,
            now,
            id,
            "bad_trunk_answer",
            StatusCode::NOT_ACCEPTABLE_HERE,
        );
    };
    if !s.start_media(id) {
        return fail_after_answer(
            s,
            now,
            id,
            "media_setup_failed",
            StatusCode::SERVICE_UNAVAILABLE,
        );
    }
    let Some(call) = s.calls.get_mut(&id) else {
        return;
    };
    call.phase = Phase::Answered;
    call.answered = Some(SystemTime::now());
    if let Some(client) = call.client {
        s.ua.answer(now, client, answer);
    }
}

/// The trunk refused, timed out or could not be reached: on 503, 408 or a transport failure
/// try the trunk's next address, then the next trunk; else tell the client.
pub(super) fn trunk_failed(s: &mut Signalling, now: Instant, id: u64, status: StatusCode) {
    let Some(call) = s.calls.get_mut(&id) else {
        return;
    };
    let by_transport = call
        .trunk
        .take()
        .is_some_and(|leg| s.transport_failed.contains(&leg));
    let cause = if by_transport {
        "transport_failure".to_owned()
    } else {
        format!("carrier_{}", status.code())
    };
    call.reason = Some(super::call::sip_reason(status));
    if let Some(index) = call.trunk_index {
        if !call.trunk_released {
            call.trunk_released = true;
            if let Some(t) = s.trunks.get_mut(index) {
                t.call_ended();
            }
        }
    }
    tracing::info!(
        call = id,
        status = status.code(),
        cause,
        "trunk refused the call"
    );
    let retry = matches!(status.code(), 408 | 503) && call.media.is_none();
    if retry {
        let (index, slot) = (call.trunk_index, call.trunk_address);
        let next_address = index.filter(|&i| {
            s.trunks
                .get(i)
                .is_some_and(|t| t.can_take_call() && t.next_address(Some(slot)).is_some())
        });
        return match next_address {
            Some(index) => place_trunk_call(s, now, id, index, Some(slot)),
            None => next_trunk_or_fail(s, now, id, cause),
        };
    }
    let mapped = client_status_for(status);
    if let Some(call) = s.calls.get_mut(&id) {
        call.final_status = Some(mapped);
    }
    s.end_call(now, id, EndedBy::Trunk, &cause, Some(mapped));
}

/// The next trunk of the route that can take the call, or the end of the call with `cause`.
fn next_trunk_or_fail(s: &mut Signalling, now: Instant, id: u64, cause: String) {
    let next = s.calls.get_mut(&id).and_then(|c| {
        while !c.fallbacks.is_empty() {
            let index = c.fallbacks.remove(0);
            if s.trunks.get(index).is_some_and(|t| t.can_take_call()) {
                return Some(index);
            }
        }
        None
    });
    match next {
        Some(index) => place_trunk_call(s, now, id, index, None),
        None => {
            s.end_call(
                now,
                id,
                EndedBy::Trunk,
                &cause,
                Some(StatusCode::SERVICE_UNAVAILABLE),
            );
        }
    }
}

/// A new answer from the trunk while media already runs (early media from a 18x): the trunk
/// leg's media goes where the new answer says, in the codec and payload types it names (the
/// client's answer went out already and stays: the shard transcodes or maps between laws as
/// the new pair needs); `false` when the answer is unusable.
fn follow_trunk_answer(s: &mut Signalling, id: u64, trunk_answer: &[u8]) -> bool {
    let Some(trunk) = s.calls.get_mut(&id).and_then(|c| c.trunk_session.as_mut()) else {
        return false;
    };
    let negotiated = Sdp::parse(trunk_answer)
        .ok()
        .zip(trunk.offer.as_ref())
        .and_then(|(answer, offer)| sdp::accept_answer(offer, &answer).ok())
        .filter(|n| n.codec != Codec::Opus);
    let Some(negotiated) = negotiated else {
        tracing::warn!(
            call = id,
            "trunk sent an unusable SDP answer after early media"
        );
        return false;
    };
    let remote = session::remote_of(&negotiated);
    let moved = trunk.negotiated.as_ref().map(session::remote_of) != Some(remote);
    let codec = session::leg_codec(&negotiated);
    trunk.negotiated = Some(negotiated);
    if !s.change_leg_codec(id, LegRole::Trunk, codec) {
        return false;
    }
    let media = s.calls.get(&id).and_then(|c| c.media);
    if let (true, Some(remote), Some((media_id, shard))) = (moved, remote, media) {
        tracing::info!(call = id, %remote, "trunk media moved");
        let _ = s.media.send(
            shard,
            crate::media::Command::SetRemote(media_id, LegRole::Trunk, remote),
        );
    }
    true
}

/// Reads the trunk's SDP answer and answers the client's offer to match; returns our answer
/// for the client.
fn negotiate(s: &mut Signalling, id: u64, trunk_answer: &[u8]) -> Option<Vec<u8>> {
    let call = s.calls.get_mut(&id)?;
    let trunk = call.trunk_session.as_mut()?;
    let answer = Sdp::parse(trunk_answer).ok()?;
    let negotiated = sdp::accept_answer(trunk.offer.as_ref()?, &answer).ok()?;
    if negotiated.codec == Codec::Opus {
        return None;
    }
    let trunk_law = negotiated.codec;
    trunk.negotiated = Some(negotiated);
    if let Some(answer) = &call.client_session.webrtc_answer {
        // A browser: always Opus, transcoded; its answer was made with its session.
        return Some(answer.clone().into_bytes());
    }
    let offer = call.client_session.remote_offer.as_ref()?;
    let policy = ClientCodecPolicy { trunk_law };
    let (client_answer, client_negotiated) =
        sdp::answer(offer, &call.client_session.local, &policy).ok()?;
    call.client_session.negotiated = Some(client_negotiated);
    call.client_session.answer = Some(client_answer.clone());
    Some(client_answer.to_string().into_bytes())
}

fn fail(s: &mut Signalling, now: Instant, id: u64, status: StatusCode, cause: &str) {
    if let Some(call) = s.calls.get_mut(&id) {
        call.final_status = Some(status);
    }
    s.end_call(now, id, EndedBy::Gateway, cause, Some(status));
}

fn fail_after_answer(s: &mut Signalling, now: Instant, id: u64, cause: &str, status: StatusCode) {
    if let Some(call) = s.calls.get_mut(&id) {
        // The trunk answered: it must get a BYE, and the client `status`.
        call.phase = Phase::Setup;
        call.final_status = Some(status);
    }
    s.end_call(now, id, EndedBy::Gateway, cause, Some(status));
}

/// The status a client gets for a trunk's final failure.
fn client_status_for(status: StatusCode) -> StatusCode {
    match status.code() {
        // Our own account or configuration failed at the carrier: the user cannot fix it.
        401 | 407 | 403 => StatusCode::SERVICE_UNAVAILABLE,
        400..=499 | 600..=699 => status,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn offered_codecs(offer: &Sdp) -> Vec<Codec> {
    let Some(m) = offer
        .media
        .iter()
        .find(|m| m.kind == "audio" && m.port != 0)
    else {
        return Vec::new();
    };
    m.formats
        .iter()
        .filter_map(|f| f.parse::<u8>().ok())
        .filter_map(|pt| m.rtpmap(pt))
        .filter_map(
            |map| match (map.name.to_ascii_uppercase().as_str(), map.rate) {
                ("PCMU", 8000) => Some(Codec::Pcmu),
                ("PCMA", 8000) => Some(Codec::Pcma),
                ("OPUS", 48000) => Some(Codec::Opus),
                _ => None,
            },
        )
        .collect()
}

fn trunk_codec(codec: TrunkCodec) -> Codec {
    match codec {
        TrunkCodec::Pcmu => Codec::Pcmu,
        TrunkCodec::Pcma => Codec::Pcma,
    }
}

/// The user part of a SIP URI given as text (`sip:+4420...@host;params`).
pub(super) fn user_part(uri: &str) -> Option<String> {
    let text = uri.trim().trim_start_matches('<');
    if let Ok(parsed) = text.trim_end_matches('>').parse::<Uri>() {
        if let Some(sip) = parsed.as_sip() {
            return sip.user.clone();
        }
    }
    let rest = text
        .strip_prefix("sips:")
        .or_else(|| text.strip_prefix("sip:"))?;
    rest.split_once('@').map(|(user, _)| user.to_owned())
}
