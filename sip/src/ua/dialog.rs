//! Dialog state (RFC 3261 §12): the identifiers, sequence numbers, remote target and route set
//! that every in-dialog request is built from.

use std::net::SocketAddr;

use crate::message::{
    CSeq, Header, Headers, Method, NameAddr, Request, Response, Transport, Uri, Via,
};

/// One dialog's state.
#[derive(Debug, Clone)]
pub(crate) struct Dialog {
    pub(crate) call_id: String,
    pub(crate) local_tag: String,
    pub(crate) remote_tag: String,
    pub(crate) local_uri: NameAddr,
    pub(crate) remote_uri: NameAddr,
    pub(crate) local_seq: u32,
    pub(crate) remote_seq: Option<u32>,
    pub(crate) remote_target: Uri,
    /// Route set in the order requests carry it.
    pub(crate) route_set: Vec<NameAddr>,
}

impl Dialog {
    /// The UAC side, from our INVITE and the response that created the dialog.
    pub(crate) fn from_uac(invite: &Request, resp: &Response) -> Option<Self> {
        let h = &invite.headers;
        let mut local_uri = h.from()?.clone();
        let local_tag = local_uri.tag()?.to_owned();
        local_uri.params.remove("tag");
        let mut remote_uri = resp.headers.to()?.clone();
        let remote_tag = remote_uri.tag()?.to_owned();
        remote_uri.params.remove("tag");
        let remote_target = resp
            .headers
            .contacts()
            .next()
            .map_or_else(|| invite.uri.clone(), |c| c.uri.clone());
        let mut route_set: Vec<NameAddr> = resp.headers.record_routes().cloned().collect();
        route_set.reverse();
        Some(Self {
            call_id: h.call_id()?.to_owned(),
            local_tag,
            remote_tag,
            local_uri,
            remote_uri,
            local_seq: h.cseq()?.seq,
            remote_seq: None,
            remote_target,
            route_set,
        })
    }

    /// The UAS side, from the received INVITE and our chosen tag.
    pub(crate) fn from_uas(invite: &Request, local_tag: &str) -> Option<Self> {
        let h = &invite.headers;
        let mut remote_uri = h.from()?.clone();
        let remote_tag = remote_uri.tag().unwrap_or("").to_owned();
        remote_uri.params.remove("tag");
        let mut local_uri = h.to()?.clone();
        local_uri.params.remove("tag");
        let remote_target = h
            .contacts()
            .next()
            .map_or_else(|| invite.uri.clone(), |c| c.uri.clone());
        Some(Self {
            call_id: h.call_id()?.to_owned(),
            local_tag: local_tag.to_owned(),
            remote_tag,
            local_uri,
            remote_uri,
            local_seq: 0,
            remote_seq: Some(h.cseq()?.seq),
            remote_target,
            route_set: h.record_routes().cloned().collect(),
        })
    }

    /// Whether a request's tags belong to this dialog (we are the To side of it).
    pub(crate) fn matches_request(&self, req: &Request) -> bool {
        let h = &req.headers;
        h.call_id() == Some(self.call_id.as_str())
            && h.to().and_then(|t| t.tag()) == Some(self.local_tag.as_str())
            && h.from().and_then(|f| f.tag()).unwrap_or("") == self.remote_tag
    }

    /// A new in-dialog request; CSeq increments except for ACK (which reuses `seq`) and CANCEL.
    pub(crate) fn request(
        &mut self,
        method: Method,
        via: Via,
        contact: &NameAddr,
        seq: Option<u32>,
    ) -> Request {
        let seq = seq.unwrap_or_else(|| {
            self.local_seq += 1;
            self.local_seq
        });
        let mut headers = Headers::new();
        headers.push(Header::Via(via));
        headers.push(Header::MaxForwards(70));
        let mut from = self.local_uri.clone();
        from.params.set("tag", Some(&self.local_tag));
        headers.push(Header::From(from));
        let mut to = self.remote_uri.clone();
        if !self.remote_tag.is_empty() {
            to.params.set("tag", Some(&self.remote_tag));
        }
        headers.push(Header::To(to));
        headers.push(Header::CallId(self.call_id.clone()));
        headers.push(Header::CSeq(CSeq {
            seq,
            method: method.clone(),
        }));
        for r in &self.route_set {
            headers.push(Header::Route(r.clone()));
        }
        headers.push(Header::Contact(crate::message::Contact::Addr(
            contact.clone(),
        )));
        Request {
            method,
            uri: self.remote_target.clone(),
            headers,
            body: Vec::new(),
        }
    }

    /// Where an in-dialog request goes: the first loose route or the remote target, when it is
    /// an IP literal; otherwise `fallback` (the address the dialog was set up with), since this
    /// crate does no DNS.
    ///
    /// Over WebSocket it is always `fallback`, the connection the client opened: nobody can
    /// open a WebSocket to a browser, so its Contact (usually `xxx.invalid`, sometimes a
    /// private address) only names the connection (RFC 7118 §5).
    pub(crate) fn destination(&self, fallback: SocketAddr, transport: &Transport) -> SocketAddr {
        if matches!(transport, Transport::Ws | Transport::Wss) {
            return fallback;
        }
        let uri = self
            .route_set
            .first()
            .map_or(&self.remote_target, |r| &r.uri);
        uri.as_sip()
            .and_then(|u| {
                u.host
                    .ip()
                    .map(|ip| SocketAddr::new(ip, u.port.unwrap_or(5060)))
            })
            .unwrap_or(fallback)
    }
}
