//! SDP (RFC 4566) for audio, and the RFC 3264 offer/answer the gateway needs.
//!
//! The model keeps what call setup uses typed (connection, ports, formats, rtpmap, fmtp, ptime,
//! direction, rtcp-mux) and every other line verbatim, so re-serialising loses nothing.

mod negotiate;

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

pub use negotiate::{
    Codec, CodecPolicy, LocalMedia, Negotiated, NegotiationError, OfferedCodec, PreferenceOrder,
    accept_answer, answer, build_offer,
};

/// Why an SDP body was refused; a UA answers 400 (or 488 if it parsed but nothing fits).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// A line is not `x=value` or a mandatory line is malformed.
    #[error("malformed SDP line {0:?}")]
    Line(String),
    /// `v=`, `o=` or `s=` missing.
    #[error("missing mandatory SDP field {0}")]
    Missing(&'static str),
    /// Not UTF-8.
    #[error("SDP is not UTF-8")]
    Encoding,
}

/// Media direction (RFC 3264 §5.1); hold is `sendonly` from the holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Both ways (the default when absent).
    #[default]
    SendRecv,
    /// We send only (we put the peer on hold).
    SendOnly,
    /// We receive only.
    RecvOnly,
    /// Neither.
    Inactive,
}

impl Direction {
    /// The direction an answerer uses for an offered one, given what it wants itself.
    pub fn answer(self, local: Direction) -> Direction {
        let (peer_sends, peer_recvs) = self.flags();
        let (we_send, we_recv) = local.flags();
        Direction::from_flags(we_send && peer_recvs, we_recv && peer_sends)
    }

    fn flags(self) -> (bool, bool) {
        match self {
            Direction::SendRecv => (true, true),
            Direction::SendOnly => (true, false),
            Direction::RecvOnly => (false, true),
            Direction::Inactive => (false, false),
        }
    }

    fn from_flags(send: bool, recv: bool) -> Self {
        match (send, recv) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }
}

/// `a=rtpmap:<pt> <name>/<rate>[/<channels>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// Payload type.
    pub pt: u8,
    /// Encoding name as written.
    pub name: String,
    /// Clock rate.
    pub rate: u32,
    /// Channel count (1 when absent).
    pub channels: u8,
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// `audio`, `video`...
    pub kind: String,
    /// RTP port; 0 rejects the stream.
    pub port: u16,
    /// `RTP/AVP`, `RTP/SAVPF`, `UDP/TLS/RTP/SAVPF`...
    pub proto: String,
    /// Format list (payload types for RTP).
    pub formats: Vec<String>,
    /// Media-level `c=` address.
    pub connection: Option<IpAddr>,
    /// `a=rtpmap` lines.
    pub rtpmaps: Vec<RtpMap>,
    /// `a=fmtp` lines as (payload type, parameters).
    pub fmtps: Vec<(u8, String)>,
    /// `a=ptime`.
    pub ptime: Option<u32>,
    /// `a=maxptime`.
    pub maxptime: Option<u32>,
    /// `a=rtcp-mux`.
    pub rtcp_mux: bool,
    /// Direction attribute, if present.
    pub direction: Option<Direction>,
    /// Other lines (without the trailing CRLF), kept verbatim.
    pub extra: Vec<String>,
}

impl Media {
    /// The rtpmap for a payload type, with RFC 3551 static types filled in.
    pub fn rtpmap(&self, pt: u8) -> Option<RtpMap> {
        if let Some(m) = self.rtpmaps.iter().find(|m| m.pt == pt) {
            return Some(m.clone());
        }
        let (name, rate) = match pt {
            0 => ("PCMU", 8000),
            8 => ("PCMA", 8000),
            _ => return None,
        };
        Some(RtpMap {
            pt,
            name: name.into(),
            rate,
            channels: 1,
        })
    }

    /// The fmtp parameters for a payload type.
    pub fn fmtp(&self, pt: u8) -> Option<&str> {
        self.fmtps
            .iter()
            .find(|(p, _)| *p == pt)
            .map(|(_, s)| s.as_str())
    }
}

/// A session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    /// `o=` username.
    pub origin_user: String,
    /// `o=` session id.
    pub session_id: u64,
    /// `o=` version, incremented on every change (RFC 3264 §8).
    pub session_version: u64,
    /// `o=` address.
    pub origin_addr: IpAddr,
    /// `s=`.
    pub session_name: String,
    /// Session-level `c=`.
    pub connection: Option<IpAddr>,
    /// `t=` (start and stop time; `0 0` for the unbounded sessions telephony uses).
    pub timing: String,
    /// Session-level lines other than v/o/s/c/t, verbatim.
    pub extra: Vec<String>,
    /// Session-level direction, the default for media without one.
    pub direction: Option<Direction>,
    /// The media sections in order.
    pub media: Vec<Media>,
}

impl Sdp {
    /// Parses an SDP body.
    pub fn parse(body: &[u8]) -> Result<Self, SdpError> {
        body.try_into()
    }

    /// The direction of media `i`, falling back to the session level.
    pub fn direction_of(&self, i: usize) -> Direction {
        self.media
            .get(i)
            .and_then(|m| m.direction)
            .or(self.direction)
            .unwrap_or_default()
    }

    /// The address RTP for media `i` goes to.
    pub fn address_of(&self, i: usize) -> Option<IpAddr> {
        self.media
            .get(i)
            .and_then(|m| m.connection)
            .or(self.connection)
    }
}

impl TryFrom<&[u8]> for Sdp {
    type Error = SdpError;

    fn try_from(body: &[u8]) -> Result<Self, SdpError> {
        let text = std::str::from_utf8(body).map_err(|_| SdpError::Encoding)?;
        let mut origin = None;
        let mut session_name = None;
        let mut sdp = Sdp {
            origin_user: String::new(),
            session_id: 0,
            session_version: 0,
            origin_addr: IpAddr::from([0, 0, 0, 0]),
            session_name: String::new(),
            connection: None,
            timing: "0 0".into(),
            extra: Vec::new(),
            direction: None,
            media: Vec::new(),
        };
        let mut seen_v = false;
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if line.is_empty() {
                continue;
            }
            let bad = || SdpError::Line(line.chars().take(80).collect());
            let (kind, value) = line.split_once('=').ok_or_else(bad)?;
            if kind.len() != 1 {
                return Err(bad());
            }
            let media = sdp.media.last_mut();
            match (kind, media) {
                ("v", _) => seen_v = value == "0" || return Err(bad()),
                ("o", None) => origin = Some(parse_origin(value).ok_or_else(bad)?),
                ("s", None) => session_name = Some(value.to_owned()),
                ("t", None) => sdp.timing = value.to_owned(),
                ("c", None) => sdp.connection = Some(parse_connection(value).ok_or_else(bad)?),
                ("c", Some(m)) => m.connection = Some(parse_connection(value).ok_or_else(bad)?),
                ("m", _) => sdp.media.push(parse_m(value).ok_or_else(bad)?),
                ("a", Some(m)) => parse_media_attr(m, value).ok_or_else(bad)?,
                ("a", None) => match parse_direction(value) {
                    Some(d) => sdp.direction = Some(d),
                    None => sdp.extra.push(line.to_owned()),
                },
                (_, Some(m)) => m.extra.push(line.to_owned()),
                (_, None) => sdp.extra.push(line.to_owned()),
            }
        }
        if !seen_v {
            return Err(SdpError::Missing("v"));
        }
        let (user, id, version, addr) = origin.ok_or(SdpError::Missing("o"))?;
        sdp.session_name = session_name.ok_or(SdpError::Missing("s"))?;
        (
            sdp.origin_user,
            sdp.session_id,
            sdp.session_version,
            sdp.origin_addr,
        ) = (user, id, version, addr);
        Ok(sdp)
    }
}

impl FromStr for Sdp {
    type Err = SdpError;

    fn from_str(s: &str) -> Result<Self, SdpError> {
        s.as_bytes().try_into()
    }
}

fn parse_origin(v: &str) -> Option<(String, u64, u64, IpAddr)> {
    let f: Vec<&str> = v.split_ascii_whitespace().collect();
    if f.len() != 6 || f[3] != "IN" {
        return None;
    }
    Some((
        f[0].to_owned(),
        f[1].parse().ok()?,
        f[2].parse().ok()?,
        f[5].parse().ok()?,
    ))
}

fn parse_connection(v: &str) -> Option<IpAddr> {
    let f: Vec<&str> = v.split_ascii_whitespace().collect();
    if f.len() != 3 || f[0] != "IN" {
        return None;
    }
    // Multicast `addr/ttl` is not for a gateway; take the address part.
    f[2].split('/').next()?.parse().ok()
}

fn parse_m(v: &str) -> Option<Media> {
    let mut f = v.split_ascii_whitespace();
    let kind = f.next()?.to_owned();
    let port = f.next()?.split('/').next()?.parse().ok()?;
    let proto = f.next()?.to_owned();
    let formats: Vec<String> = f.map(str::to_owned).collect();
    Some(Media {
        kind,
        port,
        proto,
        formats,
        connection: None,
        rtpmaps: Vec::new(),
        fmtps: Vec::new(),
        ptime: None,
        maxptime: None,
        rtcp_mux: false,
        direction: None,
        extra: Vec::new(),
    })
}

fn parse_direction(v: &str) -> Option<Direction> {
    Some(match v {
        "sendrecv" => Direction::SendRecv,
        "sendonly" => Direction::SendOnly,
        "recvonly" => Direction::RecvOnly,
        "inactive" => Direction::Inactive,
        _ => return None,
    })
}

fn parse_media_attr(m: &mut Media, v: &str) -> Option<()> {
    if let Some(d) = parse_direction(v) {
        m.direction = Some(d);
    } else if v == "rtcp-mux" {
        m.rtcp_mux = true;
    } else if let Some(rest) = v.strip_prefix("rtpmap:") {
        let (pt, enc) = rest.split_once(' ')?;
        let mut parts = enc.trim().split('/');
        let name = parts.next()?.to_owned();
        let rate = parts.next()?.parse().ok()?;
        let channels = parts.next().map_or(Some(1), |c| c.parse().ok())?;
        m.rtpmaps.push(RtpMap {
            pt: pt.parse().ok()?,
            name,
            rate,
            channels,
        });
    } else if let Some(rest) = v.strip_prefix("fmtp:") {
        let (pt, params) = rest.split_once(' ')?;
        m.fmtps.push((pt.parse().ok()?, params.trim().to_owned()));
    } else if let Some(p) = v.strip_prefix("ptime:") {
        m.ptime = Some(p.trim().parse().ok()?);
    } else if let Some(p) = v.strip_prefix("maxptime:") {
        m.maxptime = Some(p.trim().parse().ok()?);
    } else {
        m.extra.push(format!("a={v}"));
    }
    Some(())
}

fn ip_kind(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() { "IP4" } else { "IP6" }
}

impl fmt::Display for Sdp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v=0\r\n")?;
        let o = &self.origin_addr;
        let (user, id, ver) = (&self.origin_user, self.session_id, self.session_version);
        write!(f, "o={user} {id} {ver} IN {} {o}\r\n", ip_kind(o))?;
        write!(f, "s={}\r\n", self.session_name)?;
        if let Some(c) = &self.connection {
            write!(f, "c=IN {} {c}\r\n", ip_kind(c))?;
        }
        write!(f, "t={}\r\n", self.timing)?;
        for l in &self.extra {
            write!(f, "{l}\r\n")?;
        }
        if let Some(d) = self.direction {
            write!(f, "a={}\r\n", d.as_str())?;
        }
        for m in &self.media {
            write!(f, "m={} {} {}", m.kind, m.port, m.proto)?;
            for fmt_ in &m.formats {
                write!(f, " {fmt_}")?;
            }
            f.write_str("\r\n")?;
            if let Some(c) = &m.connection {
                write!(f, "c=IN {} {c}\r\n", ip_kind(c))?;
            }
            for r in &m.rtpmaps {
                write!(f, "a=rtpmap:{} {}/{}", r.pt, r.name, r.rate)?;
                if r.channels != 1 {
                    write!(f, "/{}", r.channels)?;
                }
                f.write_str("\r\n")?;
            }
            for (pt, p) in &m.fmtps {
                write!(f, "a=fmtp:{pt} {p}\r\n")?;
            }
            if let Some(p) = m.ptime {
                write!(f, "a=ptime:{p}\r\n")?;
            }
            if let Some(p) = m.maxptime {
                write!(f, "a=maxptime:{p}\r\n")?;
            }
            if m.rtcp_mux {
                f.write_str("a=rtcp-mux\r\n")?;
            }
            if let Some(d) = m.direction {
                write!(f, "a={}\r\n", d.as_str())?;
            }
            for l in &m.extra {
                write!(f, "{l}\r\n")?;
            }
        }
        Ok(())
    }
}
