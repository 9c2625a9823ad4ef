//! The HTTP listener: the web dialer's files and the upgrade to SIP over WebSocket (RFC 7118)
//! on one port, plain (`[http] listen`) and TLS (`secure_listen`).
//!
//! The request head is read and parsed here (bounded in size and time) rather than by a
//! WebSocket library's handshake, so the same port can answer `GET /` with the page. Every
//! response closes its connection: a page of four files needs no keep-alive, and a connection
//! that does one thing is easy to bound. Browsers are hostile input: a bad request is answered
//! with a 4xx and that connection closed, nothing else.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::gate::ConnectionGate;
use super::{EdgeError, assets, ws};
use crate::ops::metrics::Metrics;

/// The largest request head accepted; a browser's upgrade request is well under 2 KiB.
const MAX_HEAD: usize = 8 * 1024;
/// Header lines accepted in one request head.
const MAX_HEADERS: usize = 48;
/// How long a client may take for its TLS handshake, then again for its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a response may take to write, and how long we read what follows it before closing.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const LINGER: Duration = Duration::from_secs(1);

/// What the HTTP listeners share: where WebSockets go, who may open one, the connection cap.
pub(super) struct HttpServer {
    ws_path: String,
    /// The dialer's page with the configured WebSocket path written into it.
    page: Vec<u8>,
    allowed_origins: Vec<String>,
    websockets: Arc<ws::WebSockets>,
    metrics: Arc<Metrics>,
    /// Connection caps, shared with the SIP TCP/TLS listeners.
    gate: Arc<ConnectionGate>,
}

impl HttpServer {
    pub(super) fn new(
        ws_path: String,
        allowed_origins: Vec<String>,
        websockets: Arc<ws::WebSockets>,
        metrics: Arc<Metrics>,
        gate: Arc<ConnectionGate>,
    ) -> Self {
        HttpServer {
            page: page_with_ws_path(&ws_path),
            ws_path,
            allowed_origins,
            websockets,
            metrics,
            gate,
        }
    }

    /// Answers one request on a new connection (or hands the connection to the WebSocket side).
    async fn connection<S>(self: Arc<Self>, mut io: S, peer: SocketAddr, secure: bool)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (buf, head_len) = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut io)).await {
            Ok(Ok(Some(head))) => head,
            Ok(Ok(None)) | Ok(Err(HeadError::Io)) => return,
            Ok(Err(HeadError::TooLarge)) => {
                let response = Response::error(431, "the request head is over 8 KiB");
                return self.respond(io, response, None).await;
            }
            Err(_) => {
                let response = Response::error(408, "the request head took too long");
                return self.respond(io, response, None).await;
            }
        };
        let head = match Head::parse(&buf[..head_len]) {
            Ok(head) => head,
            Err(response) => return self.respond(io, response, None).await,
        };
        let host = head.header("host").and_then(host_source).map(str::to_owned);
        let path = head.target.split('?').next().unwrap_or_default();
        let response = if head.method != "GET" {
            Response::error(405, "only GET is served here").with("Allow", "GET")
        } else if path == self.ws_path {
            match check_upgrade(&head, &self.allowed_origins) {
                Ok(accept) => {
                    if self.switch(&mut io, &accept).await {
                        let leftover = buf[head_len..].to_vec();
                        ws::serve(self.websockets.clone(), io, leftover, peer, secure).await;
                    }
                    return;
                }
                Err(refusal) => {
                    tracing::debug!(%peer, status = refusal.status, "WebSocket upgrade refused");
                    refusal
                }
            }
        } else if let Some(asset) = assets::find(path) {
            match asset.path {
                "/" | "/index.html" => Response::owned(asset.content_type, self.page.clone()),
                _ => Response::ok(asset.content_type, asset.body),
            }
        } else {
            Response::error(404, "no such page")
        };
        self.respond(io, response, host.as_deref()).await;
    }

    /// Sends the 101 that makes the connection a SIP WebSocket.
    async fn switch<S: AsyncWrite + Unpin>(&self, io: &mut S, accept: &str) -> bool {
        let head = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: sip\r\n\r\n"
        );
        self.metrics.http_response(101);
        let written = tokio::time::timeout(WRITE_TIMEOUT, async {
            io.write_all(head.as_bytes()).await?;
            io.flush().await
        })
        .await;
        matches!(written, Ok(Ok(())))
    }

    /// Writes a response, then closes the connection gently (reading what the client still
    /// sends for a moment, so unread request bytes do not turn our close into a reset that
    /// could destroy the response before the client reads it).
    async fn respond<S>(&self, mut io: S, response: Response, host: Option<&str>)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.metrics.http_response(response.status);
        let bytes = response.render(host);
        let written = tokio::time::timeout(WRITE_TIMEOUT, async {
            io.write_all(&bytes).await?;
            io.shutdown().await
        })
        .await;
        if !matches!(written, Ok(Ok(()))) {
            return;
        }
        let _ = tokio::time::timeout(LINGER, async {
            let mut sink = [0u8; 4096];
            let mut left: usize = 64 * 1024;
            while left > 0 {
                match io.read(&mut sink).await {
                    Ok(n) if n > 0 => left = left.saturating_sub(n),
                    _ => break,
                }
            }
        })
        .await;
    }
}

/// Binds an HTTP (or, with `tls`, HTTPS) listener and serves it; returns the bound address.
pub(super) async fn listen(
    server: Arc<HttpServer>,
    address: SocketAddr,
    tls: Option<TlsAcceptor>,
) -> Result<SocketAddr, EdgeError> {
    let transport = if tls.is_some() {
        "HTTPS/WSS"
    } else {
        "HTTP/WS"
    };
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| EdgeError::Bind {
            transport,
            address,
            source,
        })?;
    let local = listener.local_addr().unwrap_or(address);
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                // Out of descriptors, say: pause instead of spinning.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let slot = match server.gate.admit(Some(peer.ip())) {
                Ok(admission) => admission,
                Err(why) => {
                    server.gate.log_refusal(peer, "HTTP", why);
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let server = server.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    None => server.connection(stream, peer, false).await,
                    Some(acceptor) => {
                        match tokio::time::timeout(HEAD_TIMEOUT, acceptor.accept(stream)).await {
                            Ok(Ok(tls)) => server.connection(tls, peer, true).await,
                            _ => tracing::debug!(%peer, "HTTPS handshake failed"),
                        }
                    }
                }
                drop(slot);
            });
        }
    });
    Ok(local)
}

#[derive(Debug)]
enum HeadError {
    TooLarge,
    Io,
}

/// Reads until the blank line that ends a request head; the buffer and the head's length
/// (bytes past it belong to what follows), or `None` when the client closed before sending
/// anything.
async fn read_head<S: AsyncRead + Unpin>(
    io: &mut S,
) -> Result<Option<(Vec<u8>, usize)>, HeadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = io.read(&mut chunk).await.map_err(|_| HeadError::Io)?;
        if n == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(HeadError::Io)
            };
        }
        let from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            let len = from + end + 4;
            return if len > MAX_HEAD {
                Err(HeadError::TooLarge)
            } else {
                Ok(Some((buf, len)))
            };
        }
        if buf.len() > MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
    }
}

/// A parsed request head, owned.
#[derive(Debug)]
struct Head {
    method: String,
    target: String,
    /// Names in lower case.
    headers: Vec<(String, String)>,
}

impl Head {
    fn parse(bytes: &[u8]) -> Result<Head, Response> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(bytes) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => {
                return Err(Response::error(400, "incomplete request head"));
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Err(Response::error(431, "too many header lines"));
            }
            Err(_) => return Err(Response::error(400, "malformed request head")),
        }
        let (Some(method), Some(target)) = (request.method, request.path) else {
            return Err(Response::error(400, "malformed request line"));
        };
        Ok(Head {
            method: method.to_owned(),
            target: target.to_owned(),
            headers: request
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).trim().to_owned(),
                    )
                })
                .collect(),
        })
    }

    /// The first value of a header (`name` in lower case).
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether a comma-separated header lists `token` (case-insensitively), over all its lines.
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }
}

/// Checks an upgrade request against RFC 6455 §4.2.1 and RFC 7118 §4; the
/// `Sec-WebSocket-Accept` value, or the response that refuses it.
fn check_upgrade(head: &Head, allowed_origins: &[String]) -> Result<String, Response> {
    if !head.has_token("upgrade", "websocket") {
        return Err(Response::error(
            426,
            "this path speaks SIP over WebSocket: send Upgrade: websocket",
        )
        .with("Upgrade", "websocket"));
    }
    if !head.has_token("connection", "upgrade") {
        return Err(Response::error(400, "an upgrade needs Connection: Upgrade"));
    }
    if head.header("sec-websocket-version") != Some("13") {
        return Err(
            Response::error(426, "only WebSocket version 13 is spoken here")
                .with("Sec-WebSocket-Version", "13"),
        );
    }
    let key = head.header("sec-websocket-key").unwrap_or_default();
    if key.len() != 24 || !key.ends_with("==") {
        return Err(Response::error(
            400,
            "Sec-WebSocket-Key is missing or malformed",
        ));
    }
    if !head.has_token("sec-websocket-protocol", "sip") {
        return Err(Response::error(
            400,
            "SIP over WebSocket needs the subprotocol sip (Sec-WebSocket-Protocol: sip, RFC 7118)",
        ));
    }
    // Only browsers send Origin, and only they can be made to connect by another site's page;
    // a native client without one is let in (it still needs a password).
    if let (false, Some(origin)) = (allowed_origins.is_empty(), head.header("origin")) {
        if !allowed_origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin))
        {
            return Err(Response::error(
                403,
                "this page's origin may not open SIP connections here (http.allowed_origins)",
            ));
        }
    }
    Ok(derive_accept_key(key.as_bytes()))
}

/// A `Host` header usable inside our Content-Security-Policy (a host and port, nothing that
/// could add a directive), else `None`.
fn host_source(host: &str) -> Option<&str> {
    let ok = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    ok.then_some(host)
}

/// A response to render.
#[derive(Debug)]
struct Response {
    status: u16,
    content_type: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    body: Cow<'static, [u8]>,
}

impl Response {
    fn ok(content_type: &'static str, body: &'static [u8]) -> Response {
        Response {
            status: 200,
            content_type,
            headers: Vec::new(),
            body: Cow::Borrowed(body),
        }
    }

    fn owned(content_type: &'static str, body: Vec<u8>) -> Response {
        Response {
            status: 200,
            content_type,
            headers: Vec::new(),
            body: Cow::Owned(body),
        }
    }

    /// A refusal whose plain-text body says what went wrong.
    fn error(status: u16, why: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body: Cow::Owned(format!("{status} {}: {why}\n", reason(status)).into_bytes()),
        }
    }

    fn with(mut self, name: &'static str, value: &'static str) -> Response {
        self.headers.push((name, value));
        self
    }

    /// The bytes on the wire. The page may load only its own scripts and styles, and connect
    /// only to its own origin and the same host's ws:/wss: (CSP `'self'` covers WebSockets
    /// only in newer browsers, hence the explicit sources).
    fn render(&self, host: Option<&str>) -> Vec<u8> {
        let sockets = host.map_or_else(String::new, |h| format!(" ws://{h} wss://{h}"));
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\
             Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n\
             Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; \
             img-src 'self' data:; font-src 'self'; media-src 'self' blob:; \
             connect-src 'self'{sockets}; base-uri 'none'; form-action 'self'; \
             frame-ancestors 'none'\r\nReferrer-Policy: no-referrer\r\nX-Frame-Options: DENY\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len(),
        );
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    }
}

/// The dialer's page telling its script where the WebSocket is (`data-ws-path` on `<body>`),
/// so an operator's `http.ws_path` is followed without rebuilding the page.
fn page_with_ws_path(ws_path: &str) -> Vec<u8> {
    let page = assets::find("/").map_or(&[][..], |a| a.body);
    let text = String::from_utf8_lossy(page);
    let escaped: String = ws_path
        .chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '"' => "&quot;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect();
    text.replacen(
        "data-ws-path=\"/ws\"",
        &format!("data-ws-path=\"{escaped}\""),
        1,
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(extra: &str) -> Head {
        let text = format!("GET /ws HTTP/1.1\r\nHost: gw.example:8080\r\n{extra}\r\n");
        Head::parse(text.as_bytes()).expect("parses")
    }

    const UPGRADE: &str = "Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
        Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

    #[test]
    fn an_upgrade_with_sip_is_accepted_with_the_rfc_6455_key() {
        let request = head(&format!("{UPGRADE}Sec-WebSocket-Protocol: chat, sip\r\n"));
        assert_eq!(
            check_upgrade(&request, &[]).expect("accepted"),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn upgrades_missing_a_part_are_refused_with_a_reason() {
        let status = |extra: &str| check_upgrade(&head(extra), &[]).err().map(|r| r.status);
        assert_eq!(status(UPGRADE), Some(400), "no sip subprotocol");
        assert_eq!(
            status(&format!("{UPGRADE}Sec-WebSocket-Protocol: chat\r\n")),
            Some(400)
        );
        assert_eq!(
            status("Sec-WebSocket-Protocol: sip\r\n"),
            Some(426),
            "no Upgrade"
        );
        let old = UPGRADE.replace("Version: 13", "Version: 8");
        assert_eq!(
            status(&format!("{old}Sec-WebSocket-Protocol: sip\r\n")),
            Some(426)
        );
        let keyless = UPGRADE.replace("dGhlIHNhbXBsZSBub25jZQ==", "short");
        assert_eq!(
            status(&format!("{keyless}Sec-WebSocket-Protocol: sip\r\n")),
            Some(400)
        );
        let refusal = check_upgrade(&head(UPGRADE), &[]).expect_err("refused");
        assert!(String::from_utf8_lossy(&refusal.body).contains("Sec-WebSocket-Protocol: sip"));
    }

    #[test]
    fn origins_are_checked_only_when_configured() {
        let allowed = vec!["https://phone.example.com".to_string()];
        let from = |origin: &str| {
            head(&format!(
                "{UPGRADE}Sec-WebSocket-Protocol: sip\r\nOrigin: {origin}\r\n"
            ))
        };
        assert!(check_upgrade(&from("https://phone.example.com"), &allowed).is_ok());
        assert!(check_upgrade(&from("https://evil.example"), &[]).is_ok());
        let refused = check_upgrade(&from("https://evil.example"), &allowed);
        assert_eq!(refused.err().map(|r| r.status), Some(403));
        let native = head(&format!("{UPGRADE}Sec-WebSocket-Protocol: sip\r\n"));
        assert!(
            check_upgrade(&native, &allowed).is_ok(),
            "no Origin: not a browser"
        );
    }

    #[test]
    fn the_policy_names_only_a_clean_host() {
        let page = Response::ok("text/html", b"<p>");
        let text = String::from_utf8(page.render(host_source("gw.example:8080"))).expect("text");
        assert!(text.contains("connect-src 'self' ws://gw.example:8080 wss://gw.example:8080;"));
        assert!(text.contains("X-Content-Type-Options: nosniff\r\n"));
        assert!(text.ends_with("\r\n\r\n<p>"));
        assert_eq!(host_source("evil; script-src *"), None);
        assert_eq!(host_source(""), None);
    }

    #[test]
    fn malformed_heads_are_answered_not_panicked_on() {
        assert_eq!(
            Head::parse(b"\x00\x01 junk\r\n\r\n")
                .err()
                .map(|r| r.status),
            Some(400)
        );
        let many: String = (0..60).map(|i| format!("X-{i}: y\r\n")).collect();
        let text = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(
            Head::parse(text.as_bytes()).err().map(|r| r.status),
            Some(431)
        );
    }

    #[test]
    fn the_page_carries_the_configured_websocket_path_escaped() {
        let page = String::from_utf8(page_with_ws_path("/sip\"<x>")).expect("UTF-8 page");
        assert!(
            page.contains("data-ws-path=\"/sip&quot;&lt;x&gt;\""),
            "{page}"
        );
        let default = String::from_utf8(page_with_ws_path("/ws")).expect("UTF-8 page");
        assert!(default.contains("data-ws-path=\"/ws\""));
    }
}
