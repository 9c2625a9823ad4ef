//! Browser legs in the benches: a str0m client doing what a browser does (full ICE as the
//! controlling agent, DTLS client, SRTP, Opus), paired with the gateway's own
//! [`WebRtcSession`] in virtual time.
//!
//! Only the gateway's side is measured. Its calls (`answer`, `receive`, `drain`, `write`,
//! `handle_timeout`, and dropping the session) run inside [`gateway_section`], which adds its
//! time to a per-thread total when a bench asks for one ([`SectionClock`]), and, once
//! [`count_sections`] turned counting on, runs them through `measured_section`, which callgrind
//! counts by name (`benches/callgrind.sh` toggles on `*measured_section*`): building a
//! workload and warming it up run sections too, uncounted. The
//! client's work (its DTLS, its SRTP, making the packets the gateway receives and reading what
//! it sends) happens between sections, or in [`Workload::prepare`], and is never counted.
//!
//! Nothing goes through the network towards the gateway: the client's datagrams are handed to
//! [`WebRtcSession::receive`] in memory. The other way cannot avoid a socket, because
//! [`WebRtcSession::drain`] sends through a `mio` UDP socket itself: the gateway's datagrams go
//! over loopback to a socket the client reads outside the measured sections. So a section's CPU
//! time includes one `sendto` per datagram the gateway sends (the kernel's part, which
//! callgrind does not count); the `udp_send` workload measures that part alone.

use std::cell::Cell;
use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use landline::media::{Drained, RTP_BUFFER, WebRtcIdentity, WebRtcSession};
use landline_codecs::{G711ToOpus, OpusToG711, Scratch};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::config::DtlsCert;
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::{Candidate, Event, Input, Output, Rtc};

use crate::fixtures::{ClientAudio, FRAME, Fixtures, OPUS_PAYLOAD_TYPE, PTIME, RtpLoop};
use crate::workloads::{Workload, g711_to_opus_config, opus_to_g711_config};

/// Steps a per-packet workload prepares at once: one second of call. What the gateway sends
/// reaches the client at the next preparation, so at most this late in virtual time (ICE
/// consent and RTCP tolerate far more).
pub const BATCH: usize = 50;
/// RTP clock ticks of one 20 ms Opus frame.
const OPUS_TICKS: u32 = 960;

/// Runs `f` as gateway work: timed when the thread has a [`SectionClock`], counted by
/// callgrind once [`count_sections`] is on. Sections must not nest (callgrind's toggle would
/// turn counting off inside).
pub fn gateway_section<R>(f: impl FnOnce() -> R) -> R {
    let clock = CLOCK.get();
    let start = clock.map(SectionClock::read);
    let result = if COUNTING.get() {
        measured_section(f)
    } else {
        f()
    };
    if let (Some(clock), Some(start)) = (clock, start) {
        TOTAL.set(TOTAL.get() + clock.read().saturating_sub(start));
    }
    result
}

/// Turns callgrind's counting of the gateway's sections on this thread on or off.
pub fn count_sections(on: bool) {
    COUNTING.set(on);
}

/// The function callgrind toggles on. Never inlined, so callgrind can find it.
#[inline(never)]
fn measured_section<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Which clock [`gateway_section`] reads on this thread, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionClock {
    /// Wall time (`Instant`).
    Wall,
    /// The thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`).
    ThreadCpu,
}

thread_local! {
    static CLOCK: Cell<Option<SectionClock>> = const { Cell::new(None) };
    static TOTAL: Cell<u64> = const { Cell::new(0) };
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static EPOCH: Instant = Instant::now();
}

impl SectionClock {
    /// Makes [`gateway_section`] time its sections with this clock on this thread.
    pub fn install(self) {
        CLOCK.set(Some(self));
    }

    /// Nanoseconds spent in sections on this thread since the last call; resets the total.
    pub fn take() -> u64 {
        TOTAL.replace(0)
    }

    /// The clock's reading, in nanoseconds.
    pub fn read(self) -> u64 {
        match self {
            SectionClock::Wall => EPOCH.with(|e| e.elapsed().as_nanos() as u64),
            SectionClock::ThreadCpu => thread_cpu_nanos(),
        }
    }
}

/// CPU time consumed by the calling thread (`CLOCK_THREAD_CPUTIME_ID`), in nanoseconds.
pub fn thread_cpu_nanos() -> u64 {
    /// Linux's clock id for the calling thread's CPU time.
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    #[repr(C)]
    struct Timespec {
        seconds: i64,
        nanos: i64,
    }
    unsafe extern "C" {
        fn clock_gettime(clock: i32, time: *mut Timespec) -> i32;
    }
    let mut time = Timespec {
        seconds: 0,
        nanos: 0,
    };
    // SAFETY: `time` is a valid, writable timespec (64-bit Linux layout); this clock always exists.
    let status = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut time) };
    assert_eq!(status, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    time.seconds as u64 * 1_000_000_000 + time.nanos as u64
}

/// One DTLS certificate for all the bench's clients (browsers make one per peer connection,
/// but that is the browser's cost, not the gateway's).
fn client_cert() -> DtlsCert {
    str0m::crypto::from_feature_flags()
        .dtls_provider
        .generate_certificate()
        .expect("a DTLS certificate for the clients")
}

/// The client: a str0m endpoint configured as the load generator's and the gateway tests'
/// "browser" (full ICE, controlling; DTLS active; Opus only; RTP mode).
pub struct Browser {
    rtc: Rtc,
    /// Where the gateway's datagrams arrive; read only outside measured sections.
    socket: UdpSocket,
    local: SocketAddr,
    mid: Mid,
    pending: Option<SdpPendingOffer>,
    opus_pt: u8,
    connected: bool,
    /// Frames written so far (the next one's sequence number and timestamp).
    frames: u64,
    /// What the client's engine wants sent to the gateway, oldest first.
    outbox: VecDeque<Vec<u8>>,
    /// RTP packets the client decrypted from the gateway.
    pub packets_received: u64,
}

impl Browser {
    /// A new client on `socket` (non-blocking), at virtual time `now`, and its SDP offer.
    pub fn new(now: Instant, cert: DtlsCert, socket: UdpSocket) -> (Browser, String) {
        let local = socket.local_addr().expect("client socket address");
        let mut rtc = Rtc::builder()
            .set_rtp_mode(true)
            .set_dtls_cert(cert)
            .set_stats_interval(None)
            .clear_codecs()
            .enable_opus(true, false)
            .build(now);
        rtc.add_local_candidate(Candidate::host(local, "udp").expect("host candidate"));
        let mut change = rtc.sdp_api();
        let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let (offer, pending) = change.apply().expect("an offer");
        let browser = Browser {
            rtc,
            socket,
            local,
            mid,
            pending: Some(pending),
            opus_pt: OPUS_PAYLOAD_TYPE,
            connected: false,
            frames: 0,
            outbox: VecDeque::new(),
            packets_received: 0,
        };
        (browser, offer.to_sdp_string())
    }

    /// Applies the gateway's answer.
    pub fn accept_answer(&mut self, now: Instant, answer: &str) {
        let parsed = SdpAnswer::from_sdp_string(answer).expect("the gateway's answer parses");
        let pending = self.pending.take().expect("an offer is pending");
        self.rtc
            .sdp_api()
            .accept_answer(pending, parsed)
            .expect("the gateway's answer is accepted");
        self.opus_pt = answer
            .lines()
            .find_map(|l| l.strip_prefix("a=rtpmap:")?.strip_suffix(" opus/48000/2"))
            .and_then(|pt| pt.trim().parse().ok())
            .expect("the answer has Opus");
        self.poll(now);
    }

    /// Whether DTLS completed on the client's side (and so on the gateway's: the DTLS server
    /// finishes when it sends its last flight, before the client can).
    pub fn connected(&self) -> bool {
        self.connected
    }

    /// The client's next timeout.
    fn timeout(&mut self, now: Instant) -> Instant {
        match self.rtc.poll_output().expect("client output") {
            Output::Timeout(t) => t.max(now),
            // `poll` leaves nothing else queued.
            _ => unreachable!("client polled after draining"),
        }
    }

    /// Drains the client's engine: datagrams into the outbox, events noted.
    fn poll(&mut self, _now: Instant) -> Instant {
        loop {
            match self.rtc.poll_output().expect("client output") {
                Output::Timeout(t) => return t,
                Output::Transmit(t) => self.outbox.push_back(t.contents.to_vec()),
                Output::Event(Event::Connected) => self.connected = true,
                Output::Event(Event::RtpPacket(_)) => self.packets_received += 1,
                Output::Event(_) => {}
            }
        }
    }

    /// Reads what the gateway sent (up to `expected` datagrams, waiting briefly for each, as
    /// loopback delivery may trail the send) and feeds it to the client.
    fn read_socket(&mut self, now: Instant, expected: u64) {
        let mut buf = [0u8; 2048];
        let mut read = 0;
        loop {
            let blocking = read < expected;
            let _ = self.socket.set_nonblocking(!blocking);
            if blocking {
                let _ = self.socket.set_read_timeout(Some(Duration::from_secs(1)));
            }
            let (n, source) = match self.socket.recv_from(&mut buf) {
                Ok(received) => received,
                Err(e) if e.kind() == ErrorKind::WouldBlock && !blocking => break,
                Err(e) => panic!("the client missed a datagram from the gateway: {e}"),
            };
            read += 1;
            let Ok(contents) = buf[..n].try_into() else {
                continue;
            };
            let input = Input::Receive(
                now,
                Receive {
                    proto: Protocol::Udp,
                    source,
                    destination: self.local,
                    contents,
                },
            );
            self.rtc.handle_input(input).expect("client input");
            self.poll(now);
        }
        let _ = self.socket.set_nonblocking(true);
    }

    /// Runs the client's timers due at `now`.
    fn handle_timeout(&mut self, now: Instant) {
        self.rtc
            .handle_input(Input::Timeout(now))
            .expect("client timeout");
        self.poll(now);
    }

    /// Queues the next 20 ms of the client's microphone: `payload`, an Opus frame.
    fn write_opus(&mut self, now: Instant, payload: &[u8]) {
        let frame = self.frames;
        self.frames += 1;
        let (pt, mid) = (self.opus_pt, self.mid);
        let mut api = self.rtc.direct_api();
        let stream = api
            .stream_tx_by_mid(mid, None)
            .expect("the client's send stream");
        let write = RtpWrite::new(
            Pt::from(pt),
            SeqNo::from(frame + 1),
            (frame as u32).wrapping_mul(OPUS_TICKS),
            now,
            payload.to_vec(),
        );
        stream.write_rtp(write);
        // str0m queues what is written and sends it at its next timeout (due at once).
        self.poll(now);
        if self.timeout(now) <= now {
            self.handle_timeout(now);
        }
    }
}

/// The gateway's side: its session, the socket its drain sends from, and the buffer the
/// shard lends it for decrypted RTP.
pub struct Gateway {
    /// The session (`None` once dropped inside a measured section).
    session: Option<WebRtcSession>,
    socket: mio::net::UdpSocket,
    rtp: Box<[u8; RTP_BUFFER]>,
    /// Datagrams the gateway sent, not yet read by the client.
    unread: u64,
}

impl Gateway {
    fn session(&mut self) -> &mut WebRtcSession {
        self.session.as_mut().expect("the session is alive")
    }

    /// Feeds one client datagram and drains, measured; `on_rtp` gets each decrypted packet
    /// (inside the section: it is the call's own work).
    fn receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        datagram: &[u8],
        on_rtp: &mut dyn FnMut(&[u8]),
    ) -> usize {
        let Gateway {
            session,
            socket,
            rtp,
            unread,
        } = self;
        let session = session.as_mut().expect("the session is alive");
        gateway_section(|| {
            session.receive(now, source, datagram);
            drain(session, now, socket, rtp, unread, on_rtp)
        })
    }

    /// Runs the session's timers if due, measured, as a shard's tick does.
    fn tick(&mut self, now: Instant) -> usize {
        let Gateway {
            session,
            socket,
            rtp,
            unread,
        } = self;
        let session = session.as_mut().expect("the session is alive");
        if session.poll_timeout().is_some_and(|t| t <= now) {
            gateway_section(|| {
                session.handle_timeout(now);
                drain(session, now, socket, rtp, unread, &mut |_| {})
            })
        } else {
            0
        }
    }
}

/// `WebRtcSession::drain` until idle, as the shard's call does.
fn drain(
    session: &mut WebRtcSession,
    now: Instant,
    socket: &mio::net::UdpSocket,
    rtp: &mut [u8; RTP_BUFFER],
    sent: &mut u64,
    on_rtp: &mut dyn FnMut(&[u8]),
) -> usize {
    let mut bytes = 0;
    loop {
        match session.drain(now, socket, rtp, sent) {
            Drained::Idle => return bytes,
            Drained::Rtp(len) => {
                bytes += len;
                on_rtp(&rtp[..len]);
            }
        }
    }
}

/// A client and a gateway session, connected (ICE, DTLS, SRTP), and their virtual clock.
pub struct Pair {
    /// The client.
    pub browser: Browser,
    /// The gateway's side.
    pub gateway: Gateway,
    /// The virtual time both run at.
    pub now: Instant,
}

/// Sockets and certificates reused from one session setup to the next.
pub struct Endpoints {
    identity: WebRtcIdentity,
    cert: DtlsCert,
    gateway: Option<mio::net::UdpSocket>,
    client: Option<UdpSocket>,
    now: Instant,
}

impl Endpoints {
    /// The gateway's identity (made once per process, as the gateway does) and a certificate
    /// for the clients.
    pub fn new() -> Endpoints {
        Endpoints {
            identity: WebRtcIdentity::generate().expect("the gateway's DTLS identity"),
            cert: client_cert(),
            gateway: None,
            client: None,
            now: Instant::now(),
        }
    }

    /// A loopback socket for each side: the released ones, or new ones.
    fn sockets(&mut self) -> (mio::net::UdpSocket, UdpSocket) {
        if let (Some(gateway), Some(client)) = (self.gateway.take(), self.client.take()) {
            return (gateway, client);
        }
        let gateway = std::net::UdpSocket::bind("127.0.0.1:0").expect("gateway socket");
        gateway.set_nonblocking(true).expect("non-blocking");
        let client = UdpSocket::bind("127.0.0.1:0").expect("client socket");
        client.set_nonblocking(true).expect("non-blocking");
        // A large receive buffer: the client reads a second of the gateway's packets at once.
        let client = socket2::Socket::from(client);
        client
            .set_recv_buffer_size(1 << 20)
            .expect("receive buffer");
        (mio::net::UdpSocket::from_std(gateway), client.into())
    }

    /// Connects a new client to a new gateway session, from the client's offer to DTLS
    /// connected; the gateway's part is measured. The pair gives its sockets back with
    /// [`release`](Self::release).
    pub fn connect(&mut self) -> Pair {
        let (gateway_socket, client_socket) = self.sockets();
        let mut buf = [0u8; 2048];
        while client_socket.recv_from(&mut buf).is_ok() {}
        let local = gateway_socket.local_addr().expect("gateway address");
        let now = self.now;
        let (mut browser, offer) = Browser::new(now, self.cert.clone(), client_socket);
        let identity = &self.identity;
        let (session, answer) =
            gateway_section(|| WebRtcSession::answer(now, identity, local, &offer))
                .expect("the gateway answers a str0m offer");
        browser.accept_answer(now, &answer);
        let mut pair = Pair {
            browser,
            gateway: Gateway {
                session: Some(session),
                socket: gateway_socket,
                rtp: Box::new([0; RTP_BUFFER]),
                unread: 0,
            },
            now,
        };
        pair.handshake();
        pair
    }

    /// Takes a pair's sockets back for the next [`connect`](Self::connect), dropping its
    /// gateway session inside a measured section (ending a call is part of its cost).
    pub fn release(&mut self, mut pair: Pair) {
        let session = pair.gateway.session.take();
        gateway_section(|| drop(session));
        self.now = pair.now + Duration::from_secs(1);
        self.gateway = Some(pair.gateway.socket);
        self.client = Some(pair.browser.socket);
    }
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints::new()
    }
}

impl Pair {
    /// Exchanges datagrams and advances virtual time until the client is connected.
    fn handshake(&mut self) {
        let source = self.browser.local;
        for _ in 0..10_000 {
            if self.browser.connected {
                return;
            }
            let now = self.now;
            let mut progressed = false;
            while let Some(datagram) = self.browser.outbox.pop_front() {
                self.gateway.receive(now, source, &datagram, &mut |_| {});
                progressed = true;
            }
            if self.gateway.unread > 0 {
                let unread = std::mem::take(&mut self.gateway.unread);
                self.browser.read_socket(now, unread);
                progressed = true;
            }
            if progressed {
                continue;
            }
            // Both idle: on to the earlier timer.
            let client = self.browser.timeout(now);
            let gateway = self.gateway.session().poll_timeout().unwrap_or(client);
            self.now = client.min(gateway).max(now);
            if client <= self.now {
                self.browser.handle_timeout(self.now);
            }
            self.gateway.tick(self.now);
        }
        panic!("the client did not connect");
    }

    /// Advances both sides to `now`: runs due timers (the gateway's measured) and carries the
    /// gateway's datagrams to the client.
    fn settle(&mut self, now: Instant) {
        self.now = now;
        let unread = std::mem::take(&mut self.gateway.unread);
        self.browser.read_socket(now, unread);
        if self.browser.timeout(now) <= now {
            self.browser.handle_timeout(now);
        }
    }
}

/// What a [`Leg`] does per 20 ms step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegWork {
    /// One Opus packet from the client: SRTP unprotect through `receive` + `drain`.
    In,
    /// One Opus packet to the client: `write` + `drain` (SRTP protect, send).
    Out,
    /// The whole call: client Opus in, through `OpusToG711` (PCMU counted, not sent); trunk
    /// PCMU through `G711ToOpus`, out to the client through `write` + `drain`.
    Call,
    /// [`In`](Self::In) and [`Out`](Self::Out), no pipeline: the session alone, both ways.
    Duplex,
}

/// A connected browser leg in its steady state, 20 ms per step. The client's packets for the
/// next [`BATCH`] steps are made in [`prepare`](Workload::prepare) (unmeasured), and it reads
/// what the gateway sent there too; each step is the gateway's work for one 20 ms slot: the
/// datagrams of the slot, its timers, and in [`LegWork::Call`] the pipelines.
pub struct Leg {
    work: LegWork,
    pair: Pair,
    /// Client datagrams due in each prepared slot (its Opus, and STUN consent checks and RTCP
    /// when its timers produce them), by slot.
    slots: VecDeque<Vec<Vec<u8>>>,
    /// Slots stepped through, freed at the next preparation (not inside a step).
    spent: Vec<Vec<Vec<u8>>>,
    /// The client's Opus payloads (the browser fixture), looped.
    client_opus: Vec<Vec<u8>>,
    /// Opus RTP the gateway sends in [`LegWork::Out`]: what `G711ToOpus` made of the trunk
    /// fixture, sequence numbers and timestamps rewritten as it loops.
    gateway_opus: RtpLoop,
    /// The trunk's PCMU, for [`LegWork::Call`].
    trunk: RtpLoop,
    to_trunk: Box<OpusToG711>,
    to_client: Box<G711ToOpus>,
    scratch: Box<Scratch>,
    /// Slots prepared so far.
    prepared: u64,
    /// Slots stepped so far.
    stepped: u64,
    /// The virtual time of slot 0.
    start: Instant,
}

impl Leg {
    /// A connected pair, doing `work` per step.
    pub fn new(fixtures: &Fixtures, work: LegWork) -> Leg {
        Leg::on(&mut Endpoints::new(), fixtures, work)
    }

    /// A connected pair on `endpoints`' identity and certificate, doing `work` per step.
    pub fn on(endpoints: &mut Endpoints, fixtures: &Fixtures, work: LegWork) -> Leg {
        let pair = endpoints.connect();
        // The gateway's packets towards the client, as the pipeline makes them.
        let mut to_client = G711ToOpus::new(&g711_to_opus_config()).expect("default config");
        let mut scratch = Box::new(Scratch::new());
        let mut made = Vec::new();
        let t0 = Instant::now();
        for (i, datagram) in fixtures.trunk_rtp.iter().enumerate() {
            to_client.push(t0 + PTIME * i as u32, datagram, &mut scratch, |p| {
                made.push(p.to_vec())
            });
        }
        let start = pair.now + PTIME;
        Leg {
            work,
            pair,
            slots: VecDeque::new(),
            spent: Vec::new(),
            client_opus: fixtures
                .client_opus(ClientAudio::Browser)
                .map(<[u8]>::to_vec)
                .collect(),
            gateway_opus: RtpLoop::new(&made, OPUS_TICKS),
            trunk: RtpLoop::new(&fixtures.trunk_rtp, FRAME as u32),
            to_trunk: Box::new(OpusToG711::new(&opus_to_g711_config()).expect("default config")),
            to_client: Box::new(G711ToOpus::new(&g711_to_opus_config()).expect("default config")),
            scratch,
            prepared: 0,
            stepped: 0,
            start,
        }
    }

    fn slot_time(&self, slot: u64) -> Instant {
        self.start + PTIME * slot as u32
    }

    /// Ends the leg but keeps the gateway's session (with all it accumulated), dropping the
    /// client, the sockets and the leg's fixtures: what the gateway holds per browser call.
    pub fn into_session(mut self) -> WebRtcSession {
        self.pair
            .gateway
            .session
            .take()
            .expect("the session is alive")
    }

    /// RTP packets the client has decrypted from the gateway so far.
    pub fn client_received(&self) -> u64 {
        self.pair.browser.packets_received
    }

    /// The pipelines' counters (client → trunk, trunk → client), for [`LegWork::Call`].
    pub fn stats(
        &self,
    ) -> (
        &landline_codecs::PipelineStats,
        &landline_codecs::PipelineStats,
    ) {
        (self.to_trunk.stats(), self.to_client.stats())
    }
}

impl Workload for Leg {
    fn prepare(&mut self, steps: usize) -> usize {
        let steps = steps.min(BATCH);
        self.spent.clear();
        // What the gateway sent in the steps since the last preparation reaches the client now.
        let now = self.slot_time(self.prepared);
        self.pair.settle(now.max(self.pair.now));
        for _ in 0..steps {
            let slot = self.prepared;
            let now = self.slot_time(slot);
            if self.pair.browser.timeout(now) <= now {
                self.pair.browser.handle_timeout(now);
            }
            if self.work != LegWork::Out {
                // `In`, `Duplex` and `Call`: the client talks.
                let payload = &self.client_opus[slot as usize % self.client_opus.len()];
                self.pair.browser.write_opus(now, payload);
            }
            self.slots
                .push_back(self.pair.browser.outbox.drain(..).collect());
            self.prepared += 1;
        }
        self.pair.now = self
            .slot_time(self.prepared.saturating_sub(1))
            .max(self.pair.now);
        steps
    }

    fn step(&mut self) -> usize {
        let now = self.slot_time(self.stepped);
        self.stepped += 1;
        let datagrams = self
            .slots
            .pop_front()
            .expect("step called without a prepared slot");
        let source = self.pair.browser.local;
        let mut out = 0;
        let Leg {
            work,
            pair,
            spent,
            gateway_opus,
            trunk,
            to_trunk,
            to_client,
            scratch,
            ..
        } = self;
        let mut pcmu_out = 0;
        for datagram in &datagrams {
            match work {
                LegWork::Call => {
                    out += pair.gateway.receive(now, source, datagram, &mut |rtp| {
                        to_trunk.push(now, rtp, scratch, |pcmu| pcmu_out += pcmu.len());
                    });
                }
                _ => out += pair.gateway.receive(now, source, datagram, &mut |_| {}),
            }
        }
        out += pcmu_out;
        spent.push(datagrams);
        match work {
            LegWork::In => {}
            LegWork::Out | LegWork::Duplex => {
                let packet = gateway_opus.next_datagram();
                let gateway = &mut pair.gateway;
                let Gateway {
                    session,
                    socket,
                    rtp,
                    unread,
                } = gateway;
                let session = session.as_mut().expect("the session is alive");
                out += gateway_section(|| {
                    session.write(now, packet);
                    drain(session, now, socket, rtp, unread, &mut |_| {})
                });
            }
            LegWork::Call => {
                let pcmu = trunk.next_datagram();
                let Gateway {
                    session,
                    socket,
                    rtp,
                    unread,
                } = &mut pair.gateway;
                let session = session.as_mut().expect("the session is alive");
                out += gateway_section(|| {
                    to_client.push(now, pcmu, scratch, |opus| {
                        session.write(now, opus);
                    });
                    // Each direction's timer, as the shard checks after a packet.
                    if to_trunk.poll_timeout().is_some_and(|t| t <= now) {
                        to_trunk.handle_timeout(now, scratch, |_| {});
                    }
                    if to_client.poll_timeout().is_some_and(|t| t <= now) {
                        to_client.handle_timeout(now, scratch, |opus| {
                            session.write(now, opus);
                        });
                    }
                    drain(session, now, socket, rtp, unread, &mut |_| {})
                });
            }
        }
        out + pair.gateway.tick(now)
    }

    fn sections(&self) -> bool {
        true
    }
}

/// Session setup, one per step: a new client's offer answered by a new gateway session, ICE
/// and DTLS to connected, then the session dropped. Only the gateway's calls are measured.
pub struct Setup {
    endpoints: Endpoints,
}

impl Setup {
    /// Reuses one pair of sockets and one certificate per side for every session.
    pub fn new() -> Setup {
        Setup {
            endpoints: Endpoints::new(),
        }
    }
}

impl Default for Setup {
    fn default() -> Self {
        Setup::new()
    }
}

impl Workload for Setup {
    fn step(&mut self) -> usize {
        let pair = self.endpoints.connect();
        let connected = usize::from(pair.browser.connected());
        self.endpoints.release(pair);
        connected
    }

    fn sections(&self) -> bool {
        true
    }

    fn far_end_in_step(&self) -> bool {
        true
    }
}

/// The kernel's part of what the gateway's drain does per datagram: one `sendto` of an
/// Opus-sized datagram (the SRTP packet of `webrtc_out`) over loopback, the receiver reading
/// it in `prepare`. Measured as a section, like the gateway's work in the other workloads.
pub struct UdpSend {
    socket: mio::net::UdpSocket,
    sink: UdpSocket,
    to: SocketAddr,
    datagram: Vec<u8>,
    unread: usize,
}

impl UdpSend {
    /// A socket pair on loopback; datagrams the size of the gateway's SRTP Opus packets.
    pub fn new(fixtures: &Fixtures) -> UdpSend {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("socket");
        let sink = UdpSocket::bind("127.0.0.1:0").expect("sink");
        sink.set_read_timeout(Some(Duration::from_secs(1)))
            .expect("timeout");
        let to = sink.local_addr().expect("sink address");
        // The pipeline's Opus at its default 24 kb/s: about 60 B of payload; + 12 B header,
        // + 10 B SRTP tag.
        let mut scratch = Scratch::new();
        let mut pipeline = G711ToOpus::new(&g711_to_opus_config()).expect("default config");
        let mut len = 0;
        pipeline.push(
            Instant::now(),
            &fixtures.trunk_rtp[100],
            &mut scratch,
            |p| len = p.len(),
        );
        UdpSend {
            socket: mio::net::UdpSocket::from_std(socket),
            sink,
            to,
            datagram: vec![0x80; len + 10],
            unread: 0,
        }
    }
}

impl Workload for UdpSend {
    fn prepare(&mut self, steps: usize) -> usize {
        let mut buf = [0u8; 2048];
        for _ in 0..std::mem::take(&mut self.unread) {
            self.sink.recv_from(&mut buf).expect("the datagram sent");
        }
        steps.min(BATCH)
    }

    fn step(&mut self) -> usize {
        let (socket, datagram, to) = (&self.socket, &self.datagram, self.to);
        let sent = gateway_section(|| socket.send_to(datagram, to).unwrap_or(0));
        self.unread += 1;
        sent
    }

    fn sections(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session connects, and over 25 s of call both directions flow without a loss, with the
    /// client's consent checks and both sides' RTCP going through.
    #[test]
    fn legs_run_in_steady_state() {
        let fixtures = Fixtures::get();
        let mut leg = Leg::new(fixtures, LegWork::Call);
        let steps = 1_250;
        let mut done = 0;
        while done < steps {
            let n = leg.prepare(steps - done);
            for i in 0..n {
                let out = leg.step();
                assert!(
                    out > 0,
                    "step {} gave nothing; stats {:?}",
                    done + i,
                    leg.stats()
                );
            }
            done += n;
        }
        leg.prepare(1);
        let (to_trunk, to_client) = leg.stats();
        assert_eq!(to_trunk.packets_in, steps as u64);
        assert_eq!(to_trunk.packets_out, steps as u64);
        assert_eq!(to_trunk.lost + to_trunk.late + to_trunk.restarts, 0);
        assert_eq!(to_client.packets_out, steps as u64);
        assert!(
            leg.client_received() >= steps as u64 - 1,
            "the client decrypted {} of {steps}",
            leg.client_received()
        );
    }

    #[test]
    fn setup_connects_again_and_again() {
        let mut setup = Setup::new();
        for _ in 0..3 {
            assert_eq!(setup.step(), 1);
        }
    }
}
