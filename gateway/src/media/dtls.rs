//! DTLS for browser sessions over OpenSSL, with one `SslContext` for the whole process.
//!
//! str0m-openssl 0.6 builds a new OpenSSL context for every session: it parses the process's
//! certificate and private key from DER again and sets up ciphers and SRTP profiles each time
//! (7.6 M of the 15.7 M instructions of a session's setup), and each session then keeps its own
//! context's memory. Every session of this process presents the same certificate, so
//! [`crypto_provider`] builds the context once and gives each session only its own `Ssl`. SRTP,
//! STUN's HMAC and SHA-256 stay str0m-openssl's.
//!
//! The session itself is sans-IO like str0m: OpenSSL reads the one datagram str0m handed in and
//! writes its records to a queue str0m polls; time comes from str0m, never from the clock.
//!
//! Once connected, an audio-only session never uses DTLS again (SRTP has its own keys, and no
//! data channel is negotiated), yet OpenSSL keeps about 75 KB per connection: its handshake
//! buffer and last flight, kept in case the peer retransmits, and its record buffers. So when the
//! peer has shown it finished the handshake, by sending media ([`PeerConfirmed`]), the
//! connection is freed. A `close_notify` from the peer after that goes unread: a browser's call
//! ends by SIP (BYE, or its WebSocket closing) or by the media timeout.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use openssl::error::ErrorStack;
use openssl::pkey::PKey;
use openssl::srtp::SrtpProfileId;
use openssl::ssl::{
    ErrorCode, HandshakeError, MidHandshakeSslStream, ShutdownState, Ssl, SslContext,
    SslContextBuilder, SslMethod, SslOptions, SslSessionCacheMode, SslStream, SslVerifyMode,
};
use openssl::x509::X509;
use str0m::crypto::CryptoError;
use str0m::crypto::CryptoProvider;
use str0m::crypto::dtls::{
    DtlsCert, DtlsImplError, DtlsInstance, DtlsOutput, DtlsProvider, DtlsVersion, KeyingMaterial,
    ProtocolVersion, SrtpProfile,
};
use str0m_proto::crypto::dtls::{DtlsCryptoError, DtlsCryptoOperation};

/// DTLS 1.2 cipher suites: ECDHE with AES-GCM first, as browsers offer them.
const CIPHERS: &str = "ECDHE+AESGCM:DHE+AESGCM:ECDHE+AES256:DHE+AES256";
/// SRTP profiles in our order of preference; OpenSSL, as the DTLS server (a browser is the
/// client towards an ICE-lite gateway), picks the first of these the client offers. The GCM
/// profiles protect a packet in one AEAD pass; AES-CM needs an HMAC-SHA1 on top.
const SRTP_PROFILES: &str = "SRTP_AEAD_AES_128_GCM:SRTP_AEAD_AES_256_GCM:SRTP_AES128_CM_SHA1_80";
/// RFC 5764's exporter label for the SRTP keys.
const SRTP_KEY_LABEL: &str = "EXTRACTOR-dtls_srtp";
/// How often str0m is asked to poll a session whose handshake is under way (OpenSSL's own
/// retransmit timer is checked then).
const HANDSHAKE_POLL: Duration = Duration::from_millis(500);
/// The deadline given once connected: nothing in DTLS runs on a timer then.
const IDLE_POLL: Duration = Duration::from_secs(3600);
/// The largest application record read at once (str0m's DTLS buffer is 2,000 bytes).
const APPLICATION_BUFFER: usize = 2000;

/// str0m-openssl's crypto with [`SharedDtls`] for DTLS, built once for the process's
/// certificate.
///
/// str0m wants a `&'static` DTLS provider, so the provider is leaked: one per identity, and
/// the gateway makes one identity per process.
pub(super) fn crypto_provider(cert: &DtlsCert) -> Result<Arc<CryptoProvider>, ErrorStack> {
    let shared: &'static SharedDtls = Box::leak(Box::new(SharedDtls::new(cert)?));
    let openssl = str0m::crypto::from_feature_flags();
    Ok(Arc::new(CryptoProvider {
        dtls_provider: shared,
        ..openssl
    }))
}

/// Told by a browser session when its peer has finished the DTLS handshake (its first SRTP
/// packet arrived: a peer sends media only once its handshake is complete), so the DTLS
/// connection can free OpenSSL's state.
#[derive(Debug, Clone, Default)]
pub(super) struct PeerConfirmed(Arc<AtomicBool>);

impl PeerConfirmed {
    /// The peer has finished its handshake.
    pub(super) fn confirm(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn is_confirmed(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

thread_local! {
    /// The signal for the DTLS session the `Rtc` being built on this thread creates.
    static BUILDING: RefCell<Option<PeerConfirmed>> = const { RefCell::new(None) };
}

/// Runs `build`, which builds one str0m `Rtc` (and so one DTLS session, made inside it), with
/// `confirmed` handed to that session. str0m gives a provider no per-session argument, so the
/// signal passes through this thread.
pub(super) fn with_signal<R>(confirmed: &PeerConfirmed, build: impl FnOnce() -> R) -> R {
    BUILDING.with(|next| *next.borrow_mut() = Some(confirmed.clone()));
    let built = build();
    BUILDING.with(|next| next.borrow_mut().take());
    built
}

/// Makes DTLS sessions from one OpenSSL context holding the process's certificate.
struct SharedDtls {
    context: SslContext,
    /// The certificate the context holds: a session asked for with another one gets a context
    /// of its own.
    certificate: Vec<u8>,
}

impl std::fmt::Debug for SharedDtls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedDtls")
    }
}

impl SharedDtls {
    fn new(cert: &DtlsCert) -> Result<Self, ErrorStack> {
        Ok(SharedDtls {
            context: context(cert)?,
            certificate: cert.certificate.clone(),
        })
    }
}

impl DtlsProvider for SharedDtls {
    fn generate_certificate(&self) -> Option<DtlsCert> {
        str0m::crypto::from_feature_flags()
            .dtls_provider
            .generate_certificate()
    }

    fn new_dtls(
        &self,
        cert: &DtlsCert,
        now: Instant,
        dtls_version: DtlsVersion,
        mtu: Option<usize>,
    ) -> Result<Box<dyn DtlsInstance>, CryptoError> {
        if dtls_version != DtlsVersion::Dtls12 {
            return Err(CryptoError::Other(format!(
                "{dtls_version} asked for; OpenSSL DTLS here is 1.2 only"
            )));
        }
        let openssl = |error: ErrorStack| CryptoError::Other(format!("OpenSSL: {error}"));
        let own;
        let context = if cert.certificate == self.certificate {
            &self.context
        } else {
            own = context(cert).map_err(openssl)?;
            &own
        };
        let mut ssl = Ssl::new(context).map_err(openssl)?;
        if let Some(mtu) = mtu {
            ssl.set_mtu(u32::try_from(mtu).unwrap_or(u32::MAX))
                .map_err(openssl)?;
        }
        let confirmed = BUILDING
            .with(|next| next.borrow_mut().take())
            .unwrap_or_default();
        Ok(Box::new(Session::new(ssl, now, confirmed)))
    }
}

/// The process's DTLS context: DTLS 1.2, ECDHE suites, DTLS-SRTP, any peer certificate
/// accepted (str0m checks its fingerprint against the SDP's), no session cache (sessions are
/// never resumed, and a shared context would otherwise keep every one).
fn context(cert: &DtlsCert) -> Result<SslContext, ErrorStack> {
    let mut builder = SslContextBuilder::new(SslMethod::dtls())?;
    builder.set_cipher_list(CIPHERS)?;
    builder.set_tlsext_use_srtp(SRTP_PROFILES)?;
    builder.set_verify_callback(
        SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
        |_, _| true,
    );
    let key = PKey::private_key_from_der(&cert.private_key)?;
    let certificate = X509::from_der(&cert.certificate)?;
    builder.set_private_key(&key)?;
    builder.set_certificate(&certificate)?;
    builder.check_private_key()?;
    builder.set_session_cache_mode(SslSessionCacheMode::OFF);
    builder.set_options(
        SslOptions::SINGLE_ECDH_USE
            | SslOptions::NO_DTLSV1
            | SslOptions::NO_QUERY_MTU
            | SslOptions::NO_TICKET,
    );
    Ok(builder.build())
}

/// One session's DTLS: the OpenSSL connection and what it produced for str0m.
struct Session {
    link: Link,
    active: bool,
    /// The latest time str0m gave us.
    now: Instant,
    /// Records OpenSSL wrote, one datagram each, until str0m polls them.
    datagrams: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    close_notify_sent: bool,
    close_notify_received: bool,
    confirmed: PeerConfirmed,
}

/// Where the OpenSSL connection is.
enum Link {
    /// Made, waiting for the handshake to start (str0m says client or server first).
    New(Ssl, Wire),
    /// Handshake under way.
    Handshake(MidHandshakeSslStream<Wire>),
    /// Connected: SRTP keys exported.
    Up(SslStream<Wire>),
    /// Connected, and the peer has finished too: OpenSSL's state is freed.
    Retired,
    /// The handshake or a record failed: the session is dead.
    Failed,
}

/// What str0m is told besides the datagrams.
#[derive(Debug)]
enum Event {
    Connected,
    PeerCert(Vec<u8>),
    Keys(Vec<u8>, SrtpProfile),
    CloseNotify,
    ApplicationData(Vec<u8>),
}

/// OpenSSL's side of the wire: the datagram being read, and the records written.
#[derive(Debug, Default)]
struct Wire {
    incoming: Vec<u8>,
    outgoing: VecDeque<Vec<u8>>,
}

impl Session {
    fn new(ssl: Ssl, now: Instant, confirmed: PeerConfirmed) -> Self {
        Session {
            link: Link::New(ssl, Wire::default()),
            active: false,
            now,
            datagrams: VecDeque::new(),
            events: VecDeque::new(),
            close_notify_sent: false,
            close_notify_received: false,
            confirmed,
        }
    }

    fn wire(&mut self) -> Option<&mut Wire> {
        match &mut self.link {
            Link::New(_, wire) => Some(wire),
            Link::Handshake(mid) => Some(mid.get_mut()),
            Link::Up(stream) => Some(stream.get_mut()),
            Link::Retired | Link::Failed => None,
        }
    }

    /// Frees the connection once str0m has everything from it and the peer is done with it.
    fn retire_when_confirmed(&mut self) {
        if matches!(self.link, Link::Up(_))
            && self.datagrams.is_empty()
            && self.events.is_empty()
            && self.confirmed.is_confirmed()
        {
            self.link = Link::Retired;
            self.datagrams = VecDeque::new();
            self.events = VecDeque::new();
        }
    }

    /// Moves what OpenSSL wrote to the datagrams str0m polls.
    fn collect(&mut self) {
        if let Some(wire) = self.wire() {
            let written = std::mem::take(&mut wire.outgoing);
            self.datagrams.extend(written);
        }
    }

    /// Runs the handshake as far as the datagrams received allow.
    fn handshake(&mut self) -> Result<(), DtlsImplError> {
        let result = match std::mem::replace(&mut self.link, Link::Failed) {
            Link::New(ssl, wire) if self.active => ssl.connect(wire),
            Link::New(ssl, wire) => ssl.accept(wire),
            Link::Handshake(mid) => mid.handshake(),
            other => {
                self.link = other;
                return Ok(());
            }
        };
        match result {
            Ok(mut stream) => {
                // Nothing more is read during the handshake's datagrams; keep no buffer for it.
                stream.get_mut().incoming = Vec::new();
                let exported = export_keys(&stream);
                self.link = Link::Up(stream);
                self.collect();
                let (peer_cert, keys, profile) = exported.map_err(|error| {
                    tracing::debug!(%error, "DTLS connected without usable SRTP keys");
                    failed(DtlsCryptoOperation::CompleteKeyExchange)
                })?;
                tracing::debug!(%profile, active = self.active, "DTLS connected");
                self.events.push_back(Event::Connected);
                self.events.push_back(Event::PeerCert(peer_cert));
                self.events.push_back(Event::Keys(keys, profile));
                Ok(())
            }
            Err(HandshakeError::WouldBlock(mid)) => {
                self.link = Link::Handshake(mid);
                self.collect();
                Ok(())
            }
            Err(HandshakeError::SetupFailure(error)) => {
                tracing::debug!(%error, "DTLS setup failed");
                Err(failed(DtlsCryptoOperation::StartKeyExchange))
            }
            Err(HandshakeError::Failure(mut mid)) => {
                tracing::debug!(error = %mid.error(), "DTLS handshake failed");
                // The alert OpenSSL wrote for the peer still goes out.
                self.datagrams
                    .extend(std::mem::take(&mut mid.get_mut().outgoing));
                Err(failed(DtlsCryptoOperation::CompleteKeyExchange))
            }
        }
    }

    /// Reads what a connected peer sent: application data, or its close_notify.
    fn read_records(&mut self) -> Result<(), DtlsImplError> {
        let Link::Up(stream) = &mut self.link else {
            return Ok(());
        };
        let result = loop {
            let mut buffer = vec![0; APPLICATION_BUFFER];
            match stream.ssl_read(&mut buffer) {
                Ok(n) => {
                    buffer.truncate(n);
                    self.events.push_back(Event::ApplicationData(buffer));
                }
                Err(error) if error.code() == ErrorCode::WANT_READ => break Ok(()),
                Err(error) if error.code() == ErrorCode::ZERO_RETURN => {
                    if stream.get_shutdown().contains(ShutdownState::RECEIVED)
                        && !self.close_notify_received
                    {
                        self.close_notify_received = true;
                        self.events.push_back(Event::CloseNotify);
                        if !self.close_notify_sent {
                            // RFC 5246 §7.2.1: answer with our own close_notify.
                            let _ = stream.shutdown();
                            self.close_notify_sent = true;
                        }
                    }
                    break Ok(());
                }
                Err(error) => {
                    tracing::debug!(%error, "DTLS record refused");
                    break Err(failed(DtlsCryptoOperation::Decrypt));
                }
            }
        };
        self.collect();
        result
    }

    fn deadline(&self) -> Instant {
        match self.link {
            Link::Handshake(_) => self.now + HANDSHAKE_POLL,
            _ => self.now + IDLE_POLL,
        }
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("active", &self.active)
            .field("datagrams", &self.datagrams.len())
            .finish_non_exhaustive()
    }
}

impl DtlsInstance for Session {
    fn set_active(&mut self, active: bool) {
        self.active = active;
    }

    fn handle_packet(&mut self, packet: &[u8]) -> Result<(), DtlsImplError> {
        if matches!(self.link, Link::Retired) {
            tracing::debug!("DTLS record after the handshake was confirmed ignored");
            return Ok(());
        }
        let Some(wire) = self.wire() else {
            return Err(DtlsImplError::ConnectionClosed);
        };
        wire.incoming.clear();
        wire.incoming.extend_from_slice(packet);
        match self.link {
            Link::New(..) | Link::Handshake(_) => self.handshake(),
            Link::Up(_) => self.read_records(),
            Link::Retired | Link::Failed => Err(DtlsImplError::ConnectionClosed),
        }
    }

    fn poll_output<'a>(&mut self, buf: &'a mut [u8]) -> DtlsOutput<'a> {
        if matches!(self.link, Link::Up(_)) {
            self.retire_when_confirmed();
        }
        while let Some(datagram) = self.datagrams.pop_front() {
            if datagram.len() <= buf.len() {
                let out = &mut buf[..datagram.len()];
                out.copy_from_slice(&datagram);
                return DtlsOutput::Packet(out);
            }
            tracing::debug!(
                len = datagram.len(),
                "DTLS record larger than str0m's buffer dropped"
            );
        }
        while let Some(event) = self.events.pop_front() {
            let bytes = match event {
                Event::Connected => return DtlsOutput::Connected,
                Event::CloseNotify => return DtlsOutput::CloseNotify,
                Event::Keys(keys, profile) => {
                    return DtlsOutput::KeyingMaterial(KeyingMaterial::new(&keys), profile);
                }
                Event::PeerCert(ref bytes) | Event::ApplicationData(ref bytes) => bytes,
            };
            if bytes.len() > buf.len() {
                tracing::debug!(
                    len = bytes.len(),
                    "DTLS output larger than str0m's buffer dropped"
                );
                continue;
            }
            let out = &mut buf[..bytes.len()];
            out.copy_from_slice(bytes);
            return match event {
                Event::PeerCert(_) => DtlsOutput::PeerCert(out),
                _ => DtlsOutput::ApplicationData(out),
            };
        }
        DtlsOutput::Timeout(self.deadline())
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsImplError> {
        self.now = now;
        if matches!(self.link, Link::Handshake(_)) {
            // OpenSSL checks its retransmit timer when it is driven.
            self.handshake()?;
        }
        Ok(())
    }

    fn send_application_data(&mut self, data: &[u8]) -> Result<(), DtlsImplError> {
        let Link::Up(stream) = &mut self.link else {
            return Err(DtlsImplError::HandshakePending);
        };
        let result = stream.ssl_write(data);
        self.collect();
        result
            .map(|_| ())
            .map_err(|_| failed(DtlsCryptoOperation::Encrypt))
    }

    fn is_active(&self) -> bool {
        self.active
    }

    fn protocol_version(&self) -> Option<ProtocolVersion> {
        Some(ProtocolVersion::DTLS1_2)
    }

    fn is_closing(&self) -> bool {
        self.close_notify_sent || self.close_notify_received
    }

    fn is_closed(&self) -> bool {
        self.close_notify_sent && self.datagrams.is_empty()
    }

    fn close(&mut self) -> Result<(), DtlsImplError> {
        if let Link::Up(stream) = &mut self.link {
            if !self.close_notify_sent {
                let _ = stream.shutdown();
            }
        }
        self.close_notify_sent = true;
        self.collect();
        Ok(())
    }
}

impl Read for Wire {
    /// One datagram per read, as a datagram socket gives it (a read too small truncates it).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.incoming.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.incoming.len().min(buf.len());
        buf[..n].copy_from_slice(&self.incoming[..n]);
        self.incoming.clear();
        Ok(n)
    }
}

impl Write for Wire {
    /// One record per write: each is sent as a datagram of its own.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.outgoing.push_back(buf.to_vec());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The peer's certificate (DER), the SRTP keying material and the SRTP profile of a
/// connection whose handshake just completed.
fn export_keys(stream: &SslStream<Wire>) -> Result<(Vec<u8>, Vec<u8>, SrtpProfile), ErrorStack> {
    let ssl = stream.ssl();
    let no = |what: &str| {
        tracing::debug!("DTLS connected without {what}");
        ErrorStack::get()
    };
    let peer_cert = ssl
        .peer_certificate()
        .ok_or_else(|| no("a peer certificate"))?
        .to_der()?;
    let profile = match ssl.selected_srtp_profile().map(|p| p.id()) {
        Some(SrtpProfileId::SRTP_AEAD_AES_128_GCM) => SrtpProfile::AEAD_AES_128_GCM,
        Some(SrtpProfileId::SRTP_AEAD_AES_256_GCM) => SrtpProfile::AEAD_AES_256_GCM,
        Some(SrtpProfileId::SRTP_AES128_CM_SHA1_80) => SrtpProfile::AES128_CM_SHA1_80,
        _ => return Err(no("an SRTP profile we support")),
    };
    let mut keys = vec![0; profile.keying_material_len()];
    ssl.export_keying_material(&mut keys, SRTP_KEY_LABEL, None)?;
    Ok((peer_cert, keys, profile))
}

fn failed(operation: DtlsCryptoOperation) -> DtlsImplError {
    DtlsImplError::CryptoError(DtlsCryptoError::OperationFailed(operation))
}
