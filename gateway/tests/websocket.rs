//! SIP over WebSocket (RFC 7118) and the HTTP listener, against the real gateway binary: a Rust
//! WebSocket client plays the browser (real browsers come in the browser tests), SIPp the
//! carrier. Every test ends with the leak check, which includes open WebSockets.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::*;
use landline_sip::auth::{Challenge, Credentials, DigestClient};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Response;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocket;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// The DID of the harness's user alice.
const DID: &str = "+15551230001";

/// A byte stream a WebSocket runs on: TCP, or TLS over TCP.
trait Socket: Read + Write {}
impl<T: Read + Write> Socket for T {}

/// A SIP-over-WebSocket client, blocking, as a test drives it.
struct WsClient {
    ws: WebSocket<Box<dyn Socket>>,
    /// The TCP socket under it, for read timeouts.
    tcp: TcpStream,
    /// The `.invalid` host it writes in Via and Contact, as browsers do.
    host: String,
    /// Requests sent, for branches and CSeqs.
    sent: u32,
}

impl WsClient {
    /// Connects to the gateway's WebSocket path with the `sip` subprotocol.
    fn connect(gateway: &Gateway) -> WsClient {
        let tcp = tcp(gateway.http);
        let stream: Box<dyn Socket> = Box::new(tcp.try_clone().expect("clone"));
        WsClient::over(tcp, stream, &format!("ws://{}/ws", gateway.http))
    }

    /// Connects over TLS (wss://) to `address`, trusting the test CA.
    fn connect_secure(address: SocketAddr) -> WsClient {
        let (tcp, stream) = tls(address);
        WsClient::over(tcp, Box::new(stream), &format!("wss://{address}/ws"))
    }

    fn over(tcp: TcpStream, stream: Box<dyn Socket>, url: &str) -> WsClient {
        let (ws, response) = upgrade(stream, url, Some("sip")).expect("upgrade accepted");
        assert_eq!(
            response.headers().get("sec-websocket-protocol"),
            Some(&HeaderValue::from_static("sip")),
            "RFC 7118 §4: the server echoes the sip subprotocol"
        );
        let port = tcp.local_addr().map(|a| a.port()).unwrap_or(0);
        WsClient {
            ws,
            tcp,
            host: format!("c{port}.invalid"),
            sent: 0,
        }
    }

    fn contact(&self) -> String {
        format!("sip:alice@{};transport=ws", self.host)
    }

    fn send(&mut self, message: &str) {
        self.ws
            .send(Message::text(message.to_owned()))
            .expect("send over the WebSocket");
    }

    /// The next data message (text or binary), waiting up to `limit`; pings are answered by
    /// tungstenite as it reads. `Err` when the connection closed or failed.
    fn next(&mut self, limit: Duration) -> Result<Option<String>, WsError> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let _ = self.tcp.set_read_timeout(Some(left));
            match self.ws.read() {
                Ok(Message::Text(text)) => return Ok(Some(text.as_str().to_owned())),
                Ok(Message::Binary(data)) => {
                    return Ok(Some(String::from_utf8_lossy(&data).into_owned()));
                }
                Ok(_) => continue,
                Err(WsError::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The next SIP message whose first line starts with `start`, skipping others (100
    /// Trying, say); panics after 5 s.
    fn expect(&mut self, start: &str, gateway: &Gateway) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            match self.next(deadline.saturating_duration_since(Instant::now())) {
                Ok(Some(message)) if message.starts_with(start) => return message,
                Ok(Some(message)) => seen.push(message),
                Ok(None) => break,
                Err(e) => panic!(
                    "WebSocket ended waiting for {start}: {e}\n{}",
                    gateway.log()
                ),
            }
        }
        panic!(
            "no `{start}` over the WebSocket; got {seen:#?}\n--- gateway log ---\n{}",
            tail(&gateway.log())
        );
    }

    /// Builds and sends a request from alice; returns its branch.
    fn request(&mut self, method: &str, uri: &str, to: &str, call: &Call, extra: &str) -> String {
        self.sent += 1;
        let branch = format!("z9hG4bKws{}{}", call.id, self.sent);
        let (body, content_type) = match &call.sdp {
            Some(sdp) if method == "INVITE" => (sdp.as_str(), "Content-Type: application/sdp\r\n"),
            _ => ("", ""),
        };
        let message = format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/WS {host};branch={branch}\r\n\
             Max-Forwards: 70\r\nTo: {to}\r\nFrom: <sip:alice@landline.test>;tag={tag}\r\n\
             Call-ID: {id}\r\nCSeq: {cseq} {method}\r\nContact: <{contact}>\r\n{extra}\
             {content_type}Content-Length: {len}\r\n\r\n{body}",
            host = self.host,
            tag = call.tag,
            id = call.id,
            cseq = call.cseq,
            contact = self.contact(),
            len = body.len(),
        );
        self.send(&message);
        branch
    }

    /// REGISTERs alice: 401, then digest, then 200 listing our binding.
    fn register(&mut self, gateway: &Gateway) -> String {
        let mut call = Call::new("reg");
        let to = "<sip:alice@landline.test>";
        let expires = "Expires: 600\r\n";
        self.request("REGISTER", "sip:landline.test", to, &call, expires);
        let challenge = self.expect("SIP/2.0 401", gateway);
        let authorization = answer(
            &challenge,
            "WWW-Authenticate",
            "REGISTER",
            "sip:landline.test",
        );
        call.cseq += 1;
        let extra = format!("{expires}Authorization: {authorization}\r\n");
        self.request("REGISTER", "sip:landline.test", to, &call, &extra);
        self.expect("SIP/2.0 200", gateway)
    }

    /// Answers `request` (an INVITE we received) with `status`, echoing its dialog headers.
    fn respond(&mut self, request: &str, status: &str) {
        let mut response = format!("SIP/2.0 {status}\r\n");
        for name in ["Via", "From", "Call-ID", "CSeq"] {
            for value in headers(request, name) {
                response.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        let to = header(request, "To").unwrap_or_default();
        response.push_str(&format!(
            "To: {to};tag=wsanswer\r\nContent-Length: 0\r\n\r\n"
        ));
        self.send(&response);
    }

    /// Closes the connection from our side and waits for the gateway's close.
    fn close(mut self) {
        let _ = self.ws.close(None);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            let _ = self.tcp.set_read_timeout(Some(Duration::from_millis(200)));
            match self.ws.read() {
                Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => return,
                Err(WsError::Io(e)) if e.kind() != std::io::ErrorKind::WouldBlock => return,
                _ => {}
            }
        }
    }
}

/// One dialog's identifiers, as the client keeps them.
struct Call {
    id: String,
    tag: String,
    cseq: u32,
    sdp: Option<String>,
}

impl Call {
    fn new(name: &str) -> Call {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        Call {
            id: format!("{name}-{pid}-{n}"),
            tag: format!("t{name}{n}"),
            cseq: 1,
            sdp: None,
        }
    }
}

/// A TLS connection to `address` trusting the test CA (`tests/fixtures/make-wss-certs.sh`),
/// and the TCP socket under it.
fn tls(
    address: SocketAddr,
) -> (
    TcpStream,
    rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
) {
    let pem = std::fs::read(fixture("wss-ca.pem")).expect("test CA");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.expect("PEM")).expect("a CA certificate");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").expect("name");
    let connection = rustls::ClientConnection::new(Arc::new(config), name).expect("TLS");
    let tcp = tcp(address);
    let stream = rustls::StreamOwned::new(connection, tcp.try_clone().expect("clone"));
    (tcp, stream)
}

/// A TCP connection with a read timeout.
fn tcp(address: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&address, Duration::from_secs(2)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// An upgrade request to `url` over `stream`, with `protocol` offered if given.
fn upgrade<S: Read + Write>(
    stream: S,
    url: &str,
    protocol: Option<&str>,
) -> Result<(WebSocket<S>, Response), WsError> {
    let mut request = url.into_client_request().expect("request");
    if let Some(protocol) = protocol {
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(protocol).expect("header"),
        );
    }
    tokio_tungstenite::tungstenite::client(request, stream).map_err(|e| match e {
        tokio_tungstenite::tungstenite::HandshakeError::Failure(e) => e,
        tokio_tungstenite::tungstenite::HandshakeError::Interrupted(_) => {
            WsError::Io(std::io::ErrorKind::WouldBlock.into())
        }
    })
}

/// A raw HTTP exchange: the whole response as text (the server closes after each).
fn http(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream.write_all(request.as_bytes()).expect("send");
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Every value of header `name` in a SIP message or HTTP response head.
fn headers<'a>(message: &'a str, name: &str) -> Vec<&'a str> {
    let head = message.split("\r\n\r\n").next().unwrap_or_default();
    head.lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    headers(message, name).first().copied()
}

/// The Digest answer to the challenge in `response`.
fn answer(response: &str, challenge_header: &str, method: &str, uri: &str) -> String {
    let value = header(response, challenge_header)
        .unwrap_or_else(|| panic!("no {challenge_header} in:\n{response}"));
    let challenge = Challenge::parse(value).expect("a Digest challenge");
    let credentials = Credentials {
        username: "alice".into(),
        password: PASSWORD.into(),
    };
    DigestClient::new(challenge, 7).authorize(&credentials, method, uri)
}

fn tail(log: &str) -> &str {
    log.get(log.len().saturating_sub(6000)..).unwrap_or(log)
}

/// Waits (bounded) until the gateway holds `n` registrations.
fn wait_registrations(gateway: &Gateway, n: f64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while gateway.metric("landline_registrations") != n {
        assert!(
            Instant::now() < deadline,
            "registrations stayed at {}, expected {n}\n{}",
            gateway.metric("landline_registrations"),
            tail(&gateway.log())
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn no_trunks() -> Gateway {
    Gateway::start(&[])
}

#[test]
fn an_upgrade_without_the_sip_subprotocol_is_refused() {
    let gateway = no_trunks();
    let ws_url = format!("ws://{}/ws", gateway.http);
    match upgrade(tcp(gateway.http), &ws_url, None) {
        Err(WsError::Http(response)) => assert_eq!(response.status().as_u16(), 400),
        other => panic!("upgrade without sip: {:?}", other.map(|(_, r)| r.status())),
    }
    match upgrade(tcp(gateway.http), &ws_url, Some("chat")) {
        Err(WsError::Http(response)) => assert_eq!(response.status().as_u16(), 400),
        other => panic!("upgrade with chat: {:?}", other.map(|(_, r)| r.status())),
    }
    let raw = http(
        gateway.http,
        "GET /ws HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
    assert!(raw.starts_with("HTTP/1.1 400 "), "{raw}");
    assert!(
        raw.contains("Sec-WebSocket-Protocol: sip"),
        "says why: {raw}"
    );
    let plain = http(gateway.http, "GET /ws HTTP/1.1\r\nHost: gw\r\n\r\n");
    assert!(plain.starts_with("HTTP/1.1 426 "), "{plain}");
    assert_eq!(header(&plain, "Upgrade"), Some("websocket"), "{plain}");
    // The refused connections left nothing open, and a good upgrade still works.
    WsClient::connect(&gateway).close();
    gateway.assert_idle();
}

#[test]
fn the_page_and_its_files_are_served_with_strict_headers() {
    let gateway = no_trunks();
    let page = http(
        gateway.http,
        &format!("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", gateway.http),
    );
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert_eq!(
        header(&page, "Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(header(&page, "Cache-Control"), Some("no-cache"));
    assert_eq!(header(&page, "X-Content-Type-Options"), Some("nosniff"));
    let csp = header(&page, "Content-Security-Policy").expect("a CSP");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        &format!("connect-src 'self' ws://{0} wss://{0}", gateway.http),
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "`{directive}` missing from {csp}");
    }
    let shipped = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/web/index.html"))
        .expect("gateway/web/index.html");
    let body = page
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    assert_eq!(body.as_bytes(), shipped.as_slice(), "the page as shipped");
    assert_eq!(
        header(&page, "Content-Length").and_then(|l| l.parse().ok()),
        Some(shipped.len())
    );

    for (path, kind) in [
        ("/app.js", "text/javascript; charset=utf-8"),
        ("/sip.js", "text/javascript; charset=utf-8"),
        ("/app.css", "text/css; charset=utf-8"),
    ] {
        let file = http(
            gateway.http,
            &format!("GET {path}?v=1 HTTP/1.1\r\nHost: gw\r\n\r\n"),
        );
        assert!(file.starts_with("HTTP/1.1 200 OK\r\n"), "{path}: {file}");
        assert_eq!(header(&file, "Content-Type"), Some(kind), "{path}");
        assert_eq!(header(&file, "X-Content-Type-Options"), Some("nosniff"));
    }
    let missing = http(gateway.http, "GET /etc/passwd HTTP/1.1\r\nHost: gw\r\n\r\n");
    assert!(missing.starts_with("HTTP/1.1 404 "), "{missing}");
    let post = http(
        gateway.http,
        "POST / HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
    assert_eq!(header(&post, "Allow"), Some("GET"));
    let garbage = http(gateway.http, "\x16\x03\x01 not http at all\r\n\r\n");
    assert!(garbage.starts_with("HTTP/1.1 400 "), "{garbage}");
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: gw\r\nX-Big: {}\r\n\r\n",
        "a".repeat(10_000)
    );
    let too_big = http(gateway.http, &huge);
    assert!(too_big.starts_with("HTTP/1.1 431 "), "{too_big}");
    // 5 answered 200, then 404, 405, 400, 431.
    assert!(gateway.metric("landline_http_requests_total") >= 8.0);
    gateway.assert_idle();
}

#[test]
fn register_over_websocket_is_challenged_then_bound_and_unbound_on_close() {
    let gateway = no_trunks();
    let mut client = WsClient::connect(&gateway);
    let ok = client.register(&gateway);
    let contacts = headers(&ok, "Contact");
    assert_eq!(contacts.len(), 1, "{ok}");
    assert!(
        contacts[0].starts_with(&format!("<{}>", client.contact())),
        "the binding is our .invalid contact: {ok}"
    );
    assert!(
        header(&ok, "Via").is_some_and(|v| v.starts_with("SIP/2.0/WS c")),
        "{ok}"
    );
    wait_registrations(&gateway, 1.0);
    assert_eq!(gateway.metric("landline_websocket_connections"), 1.0);
    client.close();
    wait_registrations(&gateway, 0.0);
    gateway.assert_idle();
}

#[test]
fn a_call_from_a_websocket_client_is_challenged_then_goes_through() {
    let gateway = no_trunks();
    let mut client = WsClient::connect(&gateway);
    let mut call = Call::new("echo");
    call.sdp = Some(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
            .to_owned(),
    );
    let uri = "sip:600@landline.test";
    let to = "<sip:600@landline.test>";
    let branch = client.request("INVITE", uri, to, &call, "");
    // The gateway is the UAS here, so it challenges with 401 (a proxy would send 407); a
    // client answers either.
    let challenge = client.expect("SIP/2.0 40", &gateway);
    let (ask, reply) = match &challenge[8..11] {
        "401" => ("WWW-Authenticate", "Authorization"),
        "407" => ("Proxy-Authenticate", "Proxy-Authorization"),
        _ => panic!("not a challenge: {challenge}"),
    };
    // The challenge ends the INVITE transaction: ACK it (same branch, its To tag).
    let to_tagged = header(&challenge, "To").unwrap_or_default().to_owned();
    let ack = format!(
        "ACK {uri} SIP/2.0\r\nVia: SIP/2.0/WS {host};branch={branch}\r\nMax-Forwards: 70\r\n\
         To: {to_tagged}\r\nFrom: <sip:alice@landline.test>;tag={tag}\r\nCall-ID: {id}\r\n\
         CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        host = client.host,
        tag = call.tag,
        id = call.id,
    );
    client.send(&ack);
    let authorization = answer(&challenge, ask, "INVITE", uri);
    call.cseq = 2;
    client.request(
        "INVITE",
        uri,
        to,
        &call,
        &format!("{reply}: {authorization}\r\n"),
    );
    // A plain RTP offer over WS is answered like a native client's (the echo number); a
    // browser's DTLS-SRTP offer over WS is the browser tests' part (`browser.rs`). Should plain
    // RTP over WS ever be refused (488), this test must send a WebRTC offer instead.
    let final_response = loop {
        let message = client.expect("SIP/2.0 ", &gateway);
        let code: u16 = message[8..11].parse().unwrap_or(0);
        assert_ne!(
            code, 407,
            "authenticated INVITE challenged again: {message}"
        );
        if code >= 200 {
            break message;
        }
    };
    assert!(
        final_response.starts_with("SIP/2.0 200 "),
        "the echo number answers: {final_response}\n{}",
        tail(&gateway.log())
    );
    assert!(
        final_response.contains("m=audio "),
        "with SDP: {final_response}"
    );
    let to_tagged = header(&final_response, "To").unwrap_or_default().to_owned();
    let contact = header(&final_response, "Contact")
        .unwrap_or_default()
        .trim_matches(|c| c == '<' || c == '>')
        .to_owned();
    let target = contact.split('>').next().unwrap_or_default().to_owned();
    call.cseq = 2;
    client.request("ACK", &target, &to_tagged, &call, "");
    call.cseq = 3;
    client.request("BYE", &target, &to_tagged, &call, "");
    client.expect("SIP/2.0 200", &gateway);
    client.close();
    gateway.assert_idle();
}

#[test]
fn a_did_call_rings_the_websocket_registration_and_its_close_unregisters_it() {
    let carrier = SocketAddr::from(([127, 0, 0, 2], free_port()));
    let gateway = Gateway::start(&[TestTrunk {
        name: "carrier",
        addr: carrier,
        probe: false,
    }]);
    let mut client = WsClient::connect(&gateway);
    client.register(&gateway);
    wait_registrations(&gateway, 1.0);

    let mut trunk = Sipp::start(
        "carrier_call_busy",
        carrier,
        Some(gateway.sip),
        1,
        &["-s", DID],
    );
    let invite = client.expect("INVITE ", &gateway);
    let request_uri = invite.lines().next().unwrap_or_default();
    assert_eq!(
        request_uri,
        format!("INVITE {} SIP/2.0", client.contact()),
        "the Request-URI is the registered .invalid contact"
    );
    assert!(
        header(&invite, "Via").is_some_and(|v| v.starts_with("SIP/2.0/WS ")),
        "{invite}"
    );
    assert_eq!(
        header(&invite, "To"),
        Some("<sip:alice@landline.test>"),
        "To names the user's address-of-record, not the contact (RFC 3261 §8.1.1.2)"
    );
    assert_eq!(
        header(&invite, "Contact"),
        Some(format!("<sip:landline@{};transport=ws>", gateway.http).as_str()),
        "our Contact names the WebSocket listener the client reaches us on (RFC 7118 §5)"
    );
    client.respond(&invite, "486 Busy Here");
    client.expect("ACK ", &gateway);
    assert_calls(trunk.finish(), 1, "carrier hears busy", &gateway, &[&trunk]);

    client.close();
    wait_registrations(&gateway, 0.0);
    let mut trunk = Sipp::start(
        "carrier_call_unavailable",
        carrier,
        Some(gateway.sip),
        1,
        &["-s", DID],
    );
    assert_calls(trunk.finish(), 1, "carrier hears 480", &gateway, &[&trunk]);

    // A client that goes away while its phone rings: the call fails over at once (to 480 here,
    // no other binding), not after Timer B (64 × T1 = 6.4 s in these tests).
    let mut client = WsClient::connect(&gateway);
    client.register(&gateway);
    wait_registrations(&gateway, 1.0);
    let started = Instant::now();
    let mut trunk = Sipp::start(
        "carrier_call_unavailable",
        carrier,
        Some(gateway.sip),
        1,
        &["-s", DID],
    );
    client.expect("INVITE ", &gateway);
    client.close();
    assert_calls(trunk.finish(), 1, "carrier hears 480", &gateway, &[&trunk]);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "480 took {:?}: the closed connection's fork waited for Timer B",
        started.elapsed()
    );
    wait_registrations(&gateway, 0.0);
    gateway.assert_idle();
}

#[test]
fn a_malformed_message_gets_400_on_its_own_connection_only() {
    let gateway = no_trunks();
    let mut bad = WsClient::connect(&gateway);
    let mut good = WsClient::connect(&gateway);
    let truncated = format!(
        "OPTIONS sip:landline.test SIP/2.0\r\nVia: SIP/2.0/WS {}.invalid;branch=z9hG4bKbad\r\n\
         Max-Forwards: 70\r\nTo: <sip:landline.test>\r\nFrom: <sip:alice@landline.test>;tag=b\r\n\
         Call-ID: bad-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 500\r\n\r\nshort",
        bad.host
    );
    bad.send(&truncated);
    let refusal = bad.expect("SIP/2.0 400", &gateway);
    assert_eq!(header(&refusal, "Call-ID"), Some("bad-1"));
    assert_eq!(
        good.next(Duration::from_millis(300)).expect("open"),
        None,
        "nothing reaches the other connection"
    );
    for client in [&mut bad, &mut good] {
        let call = Call::new("opt");
        client.request(
            "OPTIONS",
            "sip:landline.test",
            "<sip:landline.test>",
            &call,
            "",
        );
        client.expect("SIP/2.0 200", &gateway);
    }
    bad.close();
    good.close();
    gateway.assert_idle();
}

#[test]
fn an_oversized_message_closes_only_its_connection() {
    let gateway = no_trunks();
    let mut big = WsClient::connect(&gateway);
    let mut other = WsClient::connect(&gateway);
    // One byte over the default max_message_size (65535).
    big.send(&"A".repeat(65_536));
    let deadline = Instant::now() + Duration::from_secs(5);
    let code = loop {
        assert!(Instant::now() < deadline, "the big sender was not closed");
        let _ = big.tcp.set_read_timeout(Some(Duration::from_millis(200)));
        match big.ws.read() {
            Ok(Message::Close(frame)) => break frame.map(|f| f.code),
            Ok(_) => {}
            Err(WsError::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("closed without a close frame: {e}"),
        }
    };
    assert_eq!(
        code,
        Some(CloseCode::Size),
        "RFC 6455 1009: message too big"
    );
    let call = Call::new("opt");
    other.request(
        "OPTIONS",
        "sip:landline.test",
        "<sip:landline.test>",
        &call,
        "",
    );
    other.expect("SIP/2.0 200", &gateway);
    big.close();
    other.close();
    gateway.assert_idle();
}

#[test]
fn keepalives_are_answered_and_a_silent_client_is_closed() {
    let gateway = Gateway::start_with_env(
        &[],
        &[
            ("LANDLINE__HTTP__PING_INTERVAL", "500ms"),
            ("LANDLINE__HTTP__IDLE_TIMEOUT", "2s"),
        ],
    );
    let mut client = WsClient::connect(&gateway);
    // RFC 5626-style CRLF keep-alive: a double CRLF is answered with one, not parsed as SIP.
    client.send("\r\n\r\n");
    assert_eq!(
        client
            .next(Duration::from_secs(2))
            .expect("open")
            .as_deref(),
        Some("\r\n")
    );
    // The gateway pings; tungstenite answers as we read, so a reading client stays open past
    // the idle timeout.
    let mut pinged = false;
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let _ = client
            .tcp
            .set_read_timeout(Some(Duration::from_millis(100)));
        match client.ws.read() {
            Ok(Message::Ping(_)) => pinged = true,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(WsError::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("a live client was closed: {e}\n{}", tail(&gateway.log())),
        }
    }
    assert!(pinged, "no WebSocket ping in 3 s");
    assert_eq!(gateway.metric("landline_websocket_connections"), 1.0);
    // A client that stops reading stops answering pings: closed after the idle timeout (with
    // a close frame, which our client may not get to read: its pending pongs hit the closed
    // socket first).
    std::thread::sleep(Duration::from_secs(3));
    let deadline = Instant::now() + Duration::from_secs(3);
    let closed = loop {
        let _ = client
            .tcp
            .set_read_timeout(Some(Duration::from_millis(200)));
        match client.ws.read() {
            Ok(Message::Close(frame)) => break frame.map(|f| f.code),
            Ok(_) => {}
            Err(WsError::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "the silent client is still open");
            }
            Err(_) => break Some(CloseCode::Away),
        }
    };
    assert!(
        gateway.log().contains("reason=\"idle\""),
        "closed as idle:\n{}",
        tail(&gateway.log())
    );
    assert_eq!(closed, Some(CloseCode::Away));
    gateway.assert_idle();
}

#[test]
fn wss_carries_registration_and_a_did_call_down_the_tls_connection() {
    let carrier = SocketAddr::from(([127, 0, 0, 2], free_port()));
    let https = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let (cert, key) = (fixture("wss-server.pem"), fixture("wss-server.key"));
    let gateway = Gateway::start_with_env(
        &[TestTrunk {
            name: "carrier",
            addr: carrier,
            probe: false,
        }],
        &[
            ("LANDLINE__HTTP__SECURE_LISTEN", &https.to_string()),
            ("LANDLINE__HTTP__TLS_CERT", &cert.display().to_string()),
            ("LANDLINE__HTTP__TLS_KEY", &key.display().to_string()),
        ],
    );
    let mut client = WsClient::connect_secure(https);
    client.register(&gateway);
    wait_registrations(&gateway, 1.0);

    let mut trunk = Sipp::start(
        "carrier_call_busy",
        carrier,
        Some(gateway.sip),
        1,
        &["-s", DID],
    );
    // Only the TLS connection the client opened reaches it: the binding remembers WSS.
    let invite = client.expect("INVITE ", &gateway);
    assert!(
        header(&invite, "Via").is_some_and(|v| v.starts_with("SIP/2.0/WSS ")),
        "{invite}"
    );
    assert_eq!(header(&invite, "To"), Some("<sip:alice@landline.test>"));
    assert_eq!(
        header(&invite, "Contact"),
        Some(format!("<sip:landline@{https};transport=wss>").as_str()),
        "our Contact names the WSS listener"
    );
    client.respond(&invite, "486 Busy Here");
    client.expect("ACK ", &gateway);
    assert_calls(trunk.finish(), 1, "carrier hears busy", &gateway, &[&trunk]);
    client.close();
    wait_registrations(&gateway, 0.0);
    assert!(
        gateway.log().contains("transport=WSS"),
        "the connection was WSS:\n{}",
        tail(&gateway.log())
    );
    // The page is served over HTTPS too (the same listener).
    let (_tcp, mut stream) = tls(https);
    stream
        .write_all(format!("GET / HTTP/1.1\r\nHost: {https}\r\n\r\n").as_bytes())
        .expect("send");
    let mut page = Vec::new();
    let _ = stream.read_to_end(&mut page);
    let page = String::from_utf8_lossy(&page);
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(
        header(&page, "Content-Security-Policy")
            .is_some_and(|csp| csp.contains(&format!("wss://{https}"))),
        "{page}"
    );
    gateway.assert_idle();
}
