//! A call's media: browser sessions prepared for the SDP exchange, the legs handed to a shard
//! once negotiated, and what the shards report back.

use std::net::SocketAddr;
use std::time::Instant;

use super::call::{self, OwnHangup, Service};
use super::{Signalling, session};
use crate::media::{
    CallKind, CallSpec, Command, LatchPolicy, LegChange, LegCodec, LegRole, LegSpec, LegTransport,
    MediaCallId, MediaEvent, WebRtcSession,
};

impl Signalling {
    /// Prepares a browser's session for a new call: on the least loaded shard's WebRTC port,
    /// answering `offer` if given, else offering. Returns the session, the shard and our SDP.
    pub(super) fn webrtc_session(
        &self,
        now: Instant,
        shard: Option<usize>,
        offer: Option<&[u8]>,
    ) -> Result<(Box<WebRtcSession>, usize, String), crate::media::MediaError> {
        use crate::media::MediaError;
        let identity = self
            .webrtc
            .as_ref()
            .ok_or(MediaError::WebRtc("no DTLS identity".into()))?;
        let shard = shard.unwrap_or_else(|| self.media.least_loaded());
        let port = self
            .media
            .webrtc_port(shard)
            .ok_or(MediaError::WebRtc("no WebRTC port".into()))?;
        let local = SocketAddr::new(self.config.media.webrtc_address(), port);
        let (session, sdp) = match offer {
            Some(offer) => {
                let text = std::str::from_utf8(offer)
                    .map_err(|_| MediaError::WebRtc("offer is not UTF-8".into()))?;
                WebRtcSession::answer(now, identity, local, text)?
            }
            None => WebRtcSession::offer(now, identity, local)?,
        };
        Ok((Box::new(session), shard, sdp))
    }

    /// Starts a call's media on a shard; the legs' sockets move to it.
    pub(super) fn start_media(&mut self, id: u64) -> bool {
        let Some(call) = self.calls.get_mut(&id) else {
            return false;
        };
        if call.media.is_some() {
            return true;
        }
        let media_id = MediaCallId(id);
        let output = |rng: u64| landline_codecs::OutputStream {
            ssrc: rng as u32,
            first_sequence: (rng >> 32) as u16,
            first_timestamp: (rng >> 16) as u32,
        };
        let (r1, r2) = (
            self.rng.wrapping_mul(31).wrapping_add(id),
            self.rng ^ id.rotate_left(17),
        );
        let client = match call.client_session.webrtc.take() {
            Some(session) => session.codec().map(|codec| LegSpec {
                transport: LegTransport::WebRtc(session),
                remote: None,
                latch: LatchPolicy::Learn,
                codec,
                output: output(r1),
            }),
            None => leg_spec(&mut call.client_session, LatchPolicy::Learn, output(r1)),
        };
        let kind = match call.service {
            Service::Bridge => {
                let trunk = call
                    .trunk_session
                    .as_mut()
                    .and_then(|t| leg_spec(t, LatchPolicy::Strict, output(r2)));
                match (client, trunk) {
                    (Some(client), Some(trunk)) => CallKind::Bridge { client, trunk },
                    _ => return false,
                }
            }
            Service::Echo => match client {
                Some(client) => CallKind::Echo { client },
                None => return false,
            },
            Service::Tone => match client {
                Some(client) => CallKind::Tone {
                    client,
                    hz: self.config.numbers.tone_hz,
                },
                None => return false,
            },
        };
        match &kind {
            CallKind::Bridge { client, trunk } => {
                call.client_session.media_codec = Some(client.codec);
                if let Some(session) = call.trunk_session.as_mut() {
                    session.media_codec = Some(trunk.codec);
                }
            }
            CallKind::Echo { client } | CallKind::Tone { client, .. } => {
                call.client_session.media_codec = Some(client.codec);
            }
        }
        let spec = CallSpec {
            id: media_id,
            kind,
            opus: self.config.opus.settings(),
            timing: self.config.media.timing(),
            rtp_timeout: self.config.media.rtp_timeout,
        };
        let placed = match call.webrtc_shard {
            Some(shard) => self.media.add_call_on(shard, spec),
            None => self.media.add_call(spec),
        };
        match placed {
            Ok(shard) => {
                call.media = Some((media_id, shard));
                self.media_calls.insert(media_id, id);
                true
            }
            Err(error) => {
                tracing::warn!(call = id, %error, "cannot start media");
                false
            }
        }
    }

    /// Makes the media plane run `role`'s leg in `codec` (a new negotiation on it ended in
    /// another codec or payload types); the other leg stays as it is. `false` when the change
    /// cannot be made: no bridged media to change (echo, tone), or pipelines that cannot be
    /// built. Before media starts there is nothing to do: it will start with the new codec.
    pub(super) fn change_leg_codec(&mut self, id: u64, role: LegRole, codec: LegCodec) -> bool {
        let rng = self.random();
        let (opus, timing) = (self.config.opus.settings(), self.config.media.timing());
        let Some(call) = self.calls.get_mut(&id) else {
            return false;
        };
        let Some((media_id, shard)) = call.media else {
            return true;
        };
        let (leg, other) = match role {
            LegRole::Client => (Some(&mut call.client_session), call.trunk_session.as_ref()),
            LegRole::Trunk => (call.trunk_session.as_mut(), Some(&call.client_session)),
        };
        let Some(leg) = leg else {
            return false;
        };
        if leg.media_codec == Some(codec) {
            return true;
        }
        let Some(other) = other.and_then(|o| o.media_codec) else {
            // Echo and tone calls have no other leg: their one leg's codec is fixed.
            return false;
        };
        // Used only where the running streams cannot be continued (a new RTP clock).
        let fresh = |r: u64| landline_codecs::OutputStream {
            ssrc: r as u32,
            first_sequence: (r >> 32) as u16,
            first_timestamp: (r >> 16) as u32,
        };
        let outputs = (fresh(rng), fresh(rng.rotate_left(23)));
        let change = match LegChange::new(role, (codec, other), outputs, &opus, timing) {
            Ok(change) => change,
            Err(error) => {
                tracing::warn!(call = id, ?role, %error, "cannot change the leg's codec");
                return false;
            }
        };
        if let Err(error) = self
            .media
            .send(shard, Command::SetCodec(media_id, Box::new(change)))
        {
            tracing::warn!(call = id, ?role, %error, "cannot change the leg's codec");
            return false;
        }
        tracing::info!(call = id, ?role, from = ?leg.media_codec, to = ?codec, "leg codec changed");
        leg.media_codec = Some(codec);
        true
    }

    pub(super) fn on_media_event(&mut self, now: Instant, event: MediaEvent) {
        let Some(&id) = self.media_calls.get(&call::media_call_of(&event)) else {
            return;
        };
        match event {
            MediaEvent::Digit(_, role, digit) => {
                tracing::info!(call = id, ?role, %digit, "DTMF");
                if let Some(call) = self.calls.get_mut(&id) {
                    if call.digits.len() < 64 {
                        call.digits.push(digit);
                    }
                }
            }
            MediaEvent::MediaTimeout(_, role) => {
                tracing::info!(call = id, ?role, "no media: ending the call");
                self.end_call_ourselves(now, id, "media_timeout", OwnHangup::MediaTimeout);
            }
            MediaEvent::Failed(_, reason) => {
                tracing::warn!(call = id, reason, "media failed: ending the call");
                self.end_call_ourselves(now, id, reason, OwnHangup::MediaFailure);
            }
            MediaEvent::Removed(media_id, stats) => {
                self.media_calls.remove(&media_id);
                if let Some(call) = self.calls.get_mut(&id) {
                    call.media_stats = Some(stats);
                }
                self.finish_if_done(id);
            }
        }
    }
}

/// The media-plane description of a negotiated leg, taking its socket.
fn leg_spec(
    session: &mut call::LegSession,
    latch: LatchPolicy,
    output: landline_codecs::OutputStream,
) -> Option<LegSpec> {
    let negotiated = session.negotiated.as_ref()?;
    Some(LegSpec {
        remote: session::remote_of(negotiated),
        codec: session::leg_codec(negotiated),
        transport: LegTransport::Rtp(session.socket.take()?),
        latch,
        output,
    })
}
