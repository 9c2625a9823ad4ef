//! Interop against SIPp (Debian `sip-tester`): a small UA built on this crate, in the std-socket
//! shell of `tests/shell`, plays UAC and UAS against the scenarios in `tests/sipp/`, over UDP and
//! TCP on 127.0.0.1. Each run must end with SIPp reporting one successful call and zero failed
//! calls in its statistics CSV, and our side must have seen the events the scenario implies.
//!
//! Needs `sipp` on PATH (`apt-get install --no-install-recommends sip-tester`).

mod shell;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use landline_sip::auth::Credentials;
use landline_sip::message::{SipUri, StatusCode, Transport};
use landline_sip::sdp::{Codec, Direction, LocalMedia, PreferenceOrder, Sdp, answer, build_offer};
use landline_sip::ua::{CallParams, Event, RegisterParams, UserAgent};
use shell::Shell;

/// SIPp runs one at a time: two cores, and fixed-cost startup.
static SERIAL: Mutex<()> = Mutex::new(());

/// Bound on any one SIPp run.
const RUN_LIMIT: Duration = Duration::from_secs(25);

fn sipp_bin() -> PathBuf {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/bin"])
    {
        let p = Path::new(dir).join("sipp");
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "sipp not found on PATH: install it with `apt-get install --no-install-recommends sip-tester`"
    );
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

struct Sipp {
    child: Child,
    calls: u64,
    dir: PathBuf,
    name: String,
}

/// SIPp's verdict from its statistics CSV.
#[derive(Debug)]
struct Stats {
    successful: u64,
    failed: u64,
    retransmissions: u64,
}

impl Sipp {
    /// Starts SIPp with `scenario`; `target` makes it a UAC calling us.
    fn start(
        scenario: &str,
        transport: &Transport,
        target: Option<SocketAddr>,
        calls: u64,
    ) -> (Self, SocketAddr) {
        let port = free_udp_port();
        let dir = std::env::temp_dir().join(format!("landline-sipp-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let xml = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/sipp")
            .join(format!("{scenario}.xml"));
        let mut cmd = Command::new(sipp_bin());
        if let Some(t) = target {
            cmd.arg(t.to_string());
        }
        cmd.arg("-sf")
            .arg(&xml)
            .args([
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-m",
                &calls.to_string(),
                "-l",
                "50",
                "-r",
                "50",
                "-s",
                "landline",
            ])
            .args([
                "-t",
                if *transport == Transport::Udp {
                    "u1"
                } else {
                    "t1"
                },
            ])
            .args([
                "-mi",
                "127.0.0.1",
                "-mp",
                &free_udp_port().to_string(),
                "-cp",
                &free_udp_port().to_string(),
            ])
            .args([
                "-trace_stat",
                "-fd",
                "1",
                "-trace_err",
                "-trace_msg",
                "-timeout",
                "20s",
                "-timeout_error",
            ])
            .arg("-stf")
            .arg(dir.join("stat.csv"))
            .arg("-error_file")
            .arg(dir.join("err.log"))
            .arg("-message_file")
            .arg(dir.join("msg.log"))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let child = cmd.spawn().expect("spawn sipp");
        (
            Self {
                child,
                calls,
                dir,
                name: scenario.to_owned(),
            },
            SocketAddr::from(([127, 0, 0, 1], port)),
        )
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits (bounded) and reads the statistics.
    fn finish(mut self, shell: &mut Shell) -> Stats {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !self.exited() && Instant::now() < deadline {
            shell.linger(Duration::from_millis(50));
        }
        if !self.exited() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let csv = std::fs::read_to_string(self.dir.join("stat.csv")).unwrap_or_default();
        let stats = parse_stats(&csv);
        let Some(stats) = stats else {
            panic!(
                "{}: no statistics from SIPp\n{}",
                self.name,
                self.diagnostics(shell)
            );
        };
        if stats.failed != 0 || stats.successful != self.calls {
            panic!(
                "{}: SIPp reports {stats:?}\n{}",
                self.name,
                self.diagnostics(shell)
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        stats
    }

    fn diagnostics(&self, shell: &Shell) -> String {
        let err = std::fs::read_to_string(self.dir.join("err.log")).unwrap_or_default();
        let msgs = std::fs::read_to_string(self.dir.join("msg.log")).unwrap_or_default();
        let tail: String = msgs
            .chars()
            .rev()
            .take(3000)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!(
            "--- our side ---\n{}\n--- sipp errors ---\n{err}\n--- sipp messages (tail) ---\n{tail}",
            shell.log.join("\n")
        )
    }
}

fn parse_stats(csv: &str) -> Option<Stats> {
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next()?.split(';').collect();
    let last: Vec<&str> = lines.next_back()?.split(';').collect();
    let col = |name: &str| -> Option<u64> {
        let i = header.iter().position(|h| h.trim() == name)?;
        last.get(i)?.trim().parse().ok()
    };
    Some(Stats {
        successful: col("SuccessfulCall(C)")?,
        failed: col("FailedCall(C)")?,
        retransmissions: col("Retransmissions(C)")?,
    })
}

fn local_media(direction: Direction, version: u64) -> LocalMedia {
    LocalMedia {
        addr: [127, 0, 0, 1].into(),
        port: 40_000,
        codecs: vec![Codec::Pcmu, Codec::Pcma],
        opus_fmtp: String::new(),
        telephone_event: true,
        ptime: 20,
        maxptime: None,
        rtcp_mux: false,
        direction,
        session_id: 1,
        session_version: version,
    }
}

fn offer(direction: Direction, version: u64) -> Vec<u8> {
    build_offer(&local_media(direction, version))
        .to_string()
        .into_bytes()
}

/// Our answer to a peer's offer, or `None` for 488.
fn answer_to(sdp: &[u8]) -> Option<Vec<u8>> {
    let offer = Sdp::parse(sdp).ok()?;
    let (ans, _) = answer(
        &offer,
        &local_media(Direction::SendRecv, 2),
        &PreferenceOrder(vec![Codec::Pcmu, Codec::Pcma]),
    )
    .ok()?;
    Some(ans.to_string().into_bytes())
}

/// What our UA does when SIPp calls it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Callee {
    Answer,
    AnswerThenBye,
    Reliable183,
    RingOnly,
    Nothing,
}

/// Runs a scenario where SIPp is the UAC; returns SIPp's stats and our events.
fn sipp_calls_us(
    scenario: &str,
    transport: Transport,
    behaviour: Callee,
    loss: Option<shell::Loss>,
    calls: u64,
) -> (Stats, Vec<Event>) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut sh = Shell::bind(|_| {});
    if let Some(l) = loss {
        sh.loss = l;
    }
    let (mut sipp, _) = Sipp::start(scenario, &transport, Some(sh.addr), calls);
    let mut events = Vec::new();
    let start = Instant::now();
    while !sipp.exited() && start.elapsed() < RUN_LIMIT {
        sh.run(Duration::from_millis(50), |ua: &mut UserAgent, now, e| {
            events.push(e.clone());
            match e {
                Event::IncomingCall { call, sdp, .. } => {
                    let ans = sdp.as_deref().and_then(answer_to);
                    match (behaviour, ans) {
                        (_, None) => ua.reject(now, call, StatusCode::NOT_ACCEPTABLE_HERE),
                        (Callee::Answer | Callee::AnswerThenBye, Some(a)) => {
                            ua.ring(now, call, StatusCode::RINGING, None, false);
                            ua.answer(now, call, a);
                        }
                        (Callee::Reliable183, Some(a)) => {
                            ua.ring(
                                now,
                                call,
                                StatusCode::SESSION_PROGRESS,
                                Some(a.clone()),
                                true,
                            );
                            ua.answer(now, call, a);
                        }
                        (Callee::RingOnly, _) => {
                            ua.ring(now, call, StatusCode::RINGING, None, false)
                        }
                        (Callee::Nothing, _) => {}
                    }
                }
                Event::Confirmed { call } if behaviour == Callee::AnswerThenBye => {
                    ua.hangup(now, call);
                }
                Event::Offer { call, sdp } => match answer_to(&sdp) {
                    Some(a) => ua.answer_offer(now, call, a),
                    None => ua.reject_offer(now, call, StatusCode::NOT_ACCEPTABLE_HERE),
                },
                _ => {}
            }
            false
        });
    }
    let stats = sipp.finish(&mut sh);
    (stats, events)
}

/// What our UA does when it calls SIPp.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Caller {
    CallAndBye,
    CancelOnRinging,
    HoldUnhold,
    WaitForRefresh,
    Options,
    Register,
}

fn we_call_sipp(
    scenario: &str,
    transport: Transport,
    behaviour: Caller,
    loss: Option<shell::Loss>,
) -> (Stats, Vec<Event>) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut sh = Shell::bind(|_| {});
    if let Some(l) = loss {
        sh.loss = l;
    }
    let (sipp, sipp_addr) = Sipp::start(scenario, &transport, None, 1);
    std::thread::sleep(Duration::from_millis(300));
    let now = Instant::now();
    let target = SipUri::new(
        Some("landline"),
        sipp_addr.ip().into(),
        Some(sipp_addr.port()),
    );
    let creds = Some(Credentials {
        username: "alice".into(),
        password: "s3cret".into(),
    });
    match behaviour {
        Caller::Options => {
            sh.ua.options(now, target, sipp_addr, transport.clone());
        }
        Caller::Register => {
            let params = RegisterParams {
                registrar: SipUri::new(None, sipp_addr.ip().into(), Some(sipp_addr.port())),
                aor: SipUri::new(Some("alice"), sipp_addr.ip().into(), None),
                destination: sipp_addr,
                transport: transport.clone(),
                expires: 3,
                credentials: creds,
                fallbacks: Vec::new(),
            };
            sh.ua.register(now, params);
        }
        _ => {
            let params = CallParams {
                target,
                to: None,
                from: None,
                destination: sipp_addr,
                transport: transport.clone(),
                sdp: Some(offer(Direction::SendRecv, 1)),
                credentials: creds,
            };
            sh.ua.call(now, params);
        }
    }
    let mut events = Vec::new();
    let mut answered_offers = 0;
    let mut registered = 0;
    let done = sh.run(RUN_LIMIT, |ua: &mut UserAgent, now, e| {
        events.push(e.clone());
        match (behaviour, e) {
            (Caller::CallAndBye, Event::Answered { call, .. }) => ua.hangup(now, call),
            (Caller::CancelOnRinging, Event::Progress { call, .. }) => ua.hangup(now, call),
            (Caller::HoldUnhold, Event::Answered { call, .. }) => {
                ua.reinvite(now, call, offer(Direction::SendOnly, 2))
            }
            (Caller::HoldUnhold, Event::OfferAnswered { call, .. }) => {
                answered_offers += 1;
                if answered_offers == 1 {
                    ua.reinvite(now, call, offer(Direction::SendRecv, 3));
                } else {
                    ua.hangup(now, call);
                }
            }
            (Caller::WaitForRefresh, Event::OfferAnswered { call, .. }) => ua.hangup(now, call),
            (Caller::Options, Event::OptionsResult { .. }) => return true,
            (Caller::Register, Event::Registered { .. }) => {
                registered += 1;
                return registered == 2;
            }
            (_, Event::Ended { .. } | Event::Failed { .. }) => return true,
            _ => {}
        }
        false
    });
    assert!(
        done,
        "{scenario}: our UA did not finish; events {events:?}\n{}",
        sh.log.join("\n")
    );
    let stats = sipp.finish(&mut sh);
    (stats, events)
}

fn has(events: &[Event], pred: impl Fn(&Event) -> bool) -> bool {
    events.iter().any(pred)
}

fn both(f: impl Fn(Transport)) {
    f(Transport::Udp);
    f(Transport::Tcp);
}

#[test]
fn sipp_calls_us_plain_call_and_sipp_hangs_up() {
    both(|t| {
        let (_, ev) = sipp_calls_us("uac_plain", t, Callee::Answer, None, 1);
        assert!(has(&ev, |e| matches!(e, Event::Confirmed { .. })));
        assert!(has(&ev, |e| matches!(
            e,
            Event::Ended {
                reason: landline_sip::ua::Reason::RemoteBye,
                ..
            }
        )));
    });
}

#[test]
fn sipp_calls_us_and_we_hang_up() {
    both(|t| {
        let (_, ev) = sipp_calls_us("uac_callee_hangs_up", t, Callee::AnswerThenBye, None, 1);
        assert!(has(&ev, |e| matches!(
            e,
            Event::Ended {
                reason: landline_sip::ua::Reason::LocalBye,
                ..
            }
        )));
    });
}

#[test]
fn we_call_sipp_plain_call_and_we_hang_up() {
    both(|t| {
        let (_, ev) = we_call_sipp("uas_plain", t, Caller::CallAndBye, None);
        assert!(has(
            &ev,
            |e| matches!(e, Event::Progress { status, .. } if status.code() == 180)
        ));
        assert!(has(&ev, |e| matches!(
            e,
            Event::Ended {
                reason: landline_sip::ua::Reason::LocalBye,
                ..
            }
        )));
    });
}

#[test]
fn we_answer_a_407_challenge() {
    both(|t| {
        let (_, ev) = we_call_sipp("uas_auth407", t, Caller::CallAndBye, None);
        assert!(has(&ev, |e| matches!(e, Event::Answered { .. })));
    });
}

#[test]
fn early_media_183_then_200() {
    both(|t| {
        let (_, ev) = we_call_sipp("uas_183_sdp", t, Caller::CallAndBye, None);
        assert!(has(
            &ev,
            |e| matches!(e, Event::Progress { status, sdp: Some(_), .. } if status.code() == 183)
        ));
    });
}

#[test]
fn prack_as_uac_and_as_uas() {
    both(|t| {
        we_call_sipp("uas_100rel", t.clone(), Caller::CallAndBye, None);
        let (_, ev) = sipp_calls_us("uac_100rel", t, Callee::Reliable183, None, 1);
        assert!(has(&ev, |e| matches!(e, Event::Confirmed { .. })));
    });
}

#[test]
fn cancel_before_answer_either_side() {
    both(|t| {
        let (_, ev) = we_call_sipp("uas_cancel", t.clone(), Caller::CancelOnRinging, None);
        assert!(has(
            &ev,
            |e| matches!(e, Event::Failed { status, .. } if status.code() == 487)
        ));
        let (_, ev) = sipp_calls_us("uac_cancel", t, Callee::RingOnly, None, 1);
        assert!(has(&ev, |e| matches!(
            e,
            Event::Ended {
                reason: landline_sip::ua::Reason::Cancelled,
                ..
            }
        )));
    });
}

#[test]
fn hold_and_unhold_either_side() {
    both(|t| {
        let (_, ev) = we_call_sipp("uas_hold", t.clone(), Caller::HoldUnhold, None);
        assert_eq!(
            ev.iter()
                .filter(|e| matches!(e, Event::OfferAnswered { .. }))
                .count(),
            2
        );
        let (_, ev) = sipp_calls_us("uac_hold", t, Callee::Answer, None, 1);
        assert_eq!(
            ev.iter()
                .filter(|e| matches!(e, Event::Offer { .. }))
                .count(),
            2
        );
    });
}

#[test]
fn session_timer_refresh() {
    both(|t| {
        let (_, ev) = we_call_sipp("uas_timer", t, Caller::WaitForRefresh, None);
        assert!(has(&ev, |e| matches!(e, Event::OfferAnswered { .. })));
    });
}

/// SIPp asks a 30 s session: refused 422 with our Min-SE (90 s by default), its retry at 90 s
/// answered. SIPp fails the call if the 422 or its Min-SE is missing.
#[test]
fn too_small_session_interval_refused_with_422() {
    both(|t| {
        let (_, ev) = sipp_calls_us("uac_timer_too_small", t, Callee::Answer, None, 1);
        assert_eq!(
            ev.iter()
                .filter(|e| matches!(e, Event::IncomingCall { .. }))
                .count(),
            1,
            "the refused INVITE never became a call"
        );
        assert!(has(&ev, |e| matches!(e, Event::Confirmed { .. })));
    });
}

#[test]
fn options_both_ways() {
    both(|t| {
        let (_, ev) = we_call_sipp("uas_options", t.clone(), Caller::Options, None);
        assert!(has(
            &ev,
            |e| matches!(e, Event::OptionsResult { status, .. } if status.code() == 200)
        ));
        sipp_calls_us("uac_options", t, Callee::Nothing, None, 1);
    });
}

#[test]
fn register_with_digest_and_refresh() {
    both(|t| {
        let (_, ev) = we_call_sipp("uas_register", t, Caller::Register, None);
        assert_eq!(
            ev.iter()
                .filter(|e| matches!(e, Event::Registered { expires: 3, .. }))
                .count(),
            2
        );
    });
}

/// Lose SIPp's first 200: SIPp retransmits it, we ACK the retransmission.
#[test]
fn lost_first_200_is_retransmitted_by_sipp() {
    let mut lost = false;
    let loss: shell::Loss = Box::new(move |outgoing, line| {
        let hit = !outgoing && !lost && line.starts_with("SIP/2.0 200");
        lost |= hit;
        hit
    });
    let (stats, _) = we_call_sipp("uas_plain", Transport::Udp, Caller::CallAndBye, Some(loss));
    assert!(
        stats.retransmissions >= 1,
        "SIPp should have retransmitted: {stats:?}"
    );
}

/// Lose our first INVITE: timer A retransmits it.
#[test]
fn lost_first_invite_is_retransmitted_by_us() {
    let mut lost = false;
    let loss: shell::Loss = Box::new(move |outgoing, line| {
        let hit = outgoing && !lost && line.starts_with("INVITE");
        lost |= hit;
        hit
    });
    we_call_sipp("uas_plain", Transport::Udp, Caller::CallAndBye, Some(loss));
}

/// Lose our first 200: our 2xx retransmission (RFC 3261 §13.3.1.4) gets it through.
#[test]
fn lost_first_200_is_retransmitted_by_us() {
    let mut lost = false;
    let loss: shell::Loss = Box::new(move |outgoing, line| {
        let hit = outgoing && !lost && line.starts_with("SIP/2.0 200");
        lost |= hit;
        hit
    });
    let (_, ev) = sipp_calls_us("uac_plain", Transport::Udp, Callee::Answer, Some(loss), 1);
    assert!(has(&ev, |e| matches!(e, Event::Confirmed { .. })));
}

/// 200 calls at 50 calls/s with up to 50 at once, over UDP and TCP: every one must succeed.
#[test]
fn load_200_calls_at_50_per_second() {
    both(|t| {
        let (stats, ev) = sipp_calls_us("uac_plain", t, Callee::Answer, None, 200);
        assert_eq!(stats.successful, 200);
        assert_eq!(
            ev.iter()
                .filter(|e| matches!(e, Event::Confirmed { .. }))
                .count(),
            200
        );
    });
}
