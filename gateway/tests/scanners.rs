//! The gateway against the scanners an internet-facing SIP server meets within minutes:
//! SIPVicious (Debian's `sipvicious`: `svmap`, `svwar`, `svcrack`), run for real over loopback.
//!
//! - `svmap` finds the gateway (it is a SIP server; nothing to hide there) and nothing breaks.
//! - `svwar` lists no user, by REGISTER, OPTIONS or INVITE, even forced past its own sanity
//!   check: alice and accounts that do not exist get the same answers.
//! - `svcrack` guessing alice's password is banned at `sip.auth_failures_before_ban`: its
//!   guesses stop being answered, while a client on another address registers and calls, during
//!   the attack and after, and a call set up from the attacker's own address before the attack
//!   runs to its normal end.
//! - A guesser over TCP (SIPp, wrong password) is banned at the threshold the configuration
//!   sets (`LANDLINE__SIP__AUTH_FAILURES_BEFORE_BAN`).
//!
//! sipvicious 0.3 ignores `-b` (it binds every address) and so sends from 127.0.0.1 here; the
//! legitimate clients use 127.0.0.5 (Linux routes all of 127/8 to loopback), the carrier
//! 127.0.0.2.

mod common;

use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Where the attacker sends from (sipvicious binds every address; the kernel picks this one).
const ATTACKER: [u8; 4] = [127, 0, 0, 1];
/// Where the legitimate softphone sends from.
const PHONE: [u8; 4] = [127, 0, 0, 5];
/// Failures that ban, as the shipped default.
const THRESHOLD: u32 = 10;

/// A sipvicious tool running in the background, its output in a file; killed on drop.
struct Scanner {
    child: Child,
    output: PathBuf,
    name: String,
}

impl Scanner {
    /// Runs `tool` (`svmap`, `svwar`, `svcrack`) with `args`, its output going to `dir`.
    fn start(tool: &str, args: &[String], dir: &Path) -> Scanner {
        let output = dir.join(format!("{tool}-{}.log", free_port()));
        let file = std::fs::File::create(&output).expect("scanner log");
        // Debian installs `svwar`; pip's sipvicious installs `sipvicious_svwar`.
        let program = [tool.to_owned(), format!("sipvicious_{tool}")]
            .into_iter()
            .find(|p| {
                Command::new(p)
                    .arg("--version")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok()
            })
            .unwrap_or_else(|| {
                panic!(
                    "cannot run {tool}: install sipvicious (`apt-get install sipvicious`; \
                     scripts/test does)"
                )
            });
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("scanner log"))
            .stderr(file)
            .spawn()
            .expect("start the scanner");
        Scanner {
            child,
            output,
            name: tool.to_owned(),
        }
    }

    /// Whether it is still running.
    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits (bounded) for it to end; its output.
    fn finish(&mut self, limit: Duration) -> String {
        let ended = wait_until(limit, || !self.running()).is_some();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let output = self.output();
        assert!(
            ended,
            "{} still running after {limit:?}:\n{output}",
            self.name
        );
        output
    }

    fn output(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.output) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for Scanner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn addr(ip: [u8; 4]) -> SocketAddr {
    SocketAddr::from((ip, free_port()))
}

/// A gateway with one IP trunk at a carrier on 127.0.0.2; RTP timeout long enough for the
/// silent long call (its SIPp sends no media).
fn gateway_with_carrier() -> (SocketAddr, Gateway) {
    let carrier = addr([127, 0, 0, 2]);
    let gateway = Gateway::start_with_env(
        &[TestTrunk {
            name: "carrier",
            addr: carrier,
            probe: false,
        }],
        &[("LANDLINE__MEDIA__RTP_TIMEOUT", "120s")],
    );
    (carrier, gateway)
}

/// The target and local-port arguments every sipvicious tool takes.
fn target(gateway: &Gateway) -> Vec<String> {
    vec![
        "-p".into(),
        gateway.sip.port().to_string(),
        "-P".into(),
        free_port().to_string(),
        "-x".into(),
        "127.0.0.1".into(),
        gateway.sip.ip().to_string(),
    ]
}

/// The status line of the gateway's answer to a REGISTER for alice without credentials sent
/// from `from` over UDP, or `None` if nothing came back within `wait`.
fn register_status(gateway: &Gateway, from: [u8; 4], wait: Duration) -> Option<String> {
    let socket = UdpSocket::bind(addr(from)).expect("bind");
    socket.set_read_timeout(Some(wait)).expect("timeout");
    let local = socket.local_addr().expect("local");
    let register = format!(
        "REGISTER sip:{gw} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKprobe{port}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@landline.test>;tag=p{port}\r\n\
         To: <sip:alice@landline.test>\r\nCall-ID: probe-{port}@test\r\nCSeq: 1 REGISTER\r\n\
         Contact: <sip:alice@{local}>\r\nContent-Length: 0\r\n\r\n",
        gw = gateway.sip,
        port = local.port(),
    );
    socket
        .send_to(register.as_bytes(), gateway.sip)
        .expect("send");
    let mut buf = [0u8; 4096];
    let (n, _) = socket.recv_from(&mut buf).ok()?;
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .map(str::to_owned)
}

/// The legitimate softphone on 127.0.0.5 registers as alice, then calls out through the
/// carrier; both must succeed.
fn phone_registers_and_calls(gateway: &Gateway, carrier: &Sipp, when: &str) {
    let auth = ["-au", "alice", "-ap", PASSWORD];
    let mut register = Sipp::start("client_register", addr(PHONE), Some(gateway.sip), 1, &auth);
    let stats = register.finish();
    assert_calls(
        stats,
        1,
        &format!("the phone registering {when}"),
        gateway,
        &[&register],
    );
    let mut args = auth.to_vec();
    args.extend(["-s", "+15557654321"]);
    let mut call = Sipp::start("client_call", addr(PHONE), Some(gateway.sip), 1, &args);
    let stats = call.finish();
    assert_calls(
        stats,
        1,
        &format!("the phone calling {when}"),
        gateway,
        &[&call, carrier],
    );
}

#[test]
fn svmap_finds_the_gateway_and_svwar_finds_no_user() {
    let gateway = Gateway::start(&[]);
    let mut svmap = Scanner::start("svmap", &target(&gateway), &gateway.dir);
    let found = svmap.finish(Duration::from_secs(60));
    assert!(
        found.contains(&gateway.sip.to_string()) && found.contains("landline"),
        "svmap did not find the gateway:\n{found}"
    );

    // alice between accounts that do not exist; svwar's first request is a random one.
    let extensions = gateway.dir.join("extensions.txt");
    std::fs::write(&extensions, "100\nbob\n1000\nalice\nadmin\n2000\n").expect("extensions");
    for method in ["REGISTER", "OPTIONS", "INVITE"] {
        let mut args = vec![
            "-v".to_owned(),
            "--force".into(),
            "-m".into(),
            method.into(),
            "-d".into(),
            extensions.display().to_string(),
        ];
        args.extend(target(&gateway));
        let mut svwar = Scanner::start("svwar", &args, &gateway.dir);
        let report = svwar.finish(Duration::from_secs(90));
        assert!(
            report.contains("Ok SIP device found"),
            "{method}: svwar got no answer at all:\n{report}"
        );
        assert!(
            report.contains("found nothing") && !report.contains("exists"),
            "{method}: svwar told users apart:\n{report}"
        );
    }
    assert_eq!(
        gateway.options_status().as_deref(),
        Some("SIP/2.0 200 OK"),
        "the gateway still answers"
    );
    // Asking without credentials is no failed authentication: nobody is banned for it.
    assert_eq!(gateway.metric("landline_auth_failures_total"), 0.0);
    assert_eq!(gateway.metric("landline_auth_bans_total"), 0.0);
}

#[test]
fn svcrack_is_banned_while_other_clients_and_running_calls_go_on() {
    let (carrier_addr, gateway) = gateway_with_carrier();
    // Three calls reach the carrier: the long one, and the phone's during and after the attack.
    let mut carrier = Sipp::start(
        "carrier_answer",
        carrier_addr,
        None,
        3,
        &["-rtp_echo", "-timeout", "120s"],
    );

    // A call from the attacker's address, up before the attack and still up after it.
    let long_args = [
        "-au",
        "alice",
        "-ap",
        PASSWORD,
        "-s",
        "+15557654321",
        "-d",
        "40000",
        "-timeout",
        "120s",
    ];
    let mut long_call = Sipp::start(
        "client_call_long",
        addr(ATTACKER),
        Some(gateway.sip),
        1,
        &long_args,
    );
    assert!(
        wait_until(Duration::from_secs(20), || gateway
            .metric("landline_calls_active")
            >= 1.0)
        .is_some(),
        "the long call did not come up\n{}",
        long_call.diagnostics()
    );

    // svcrack with 40 wrong passwords (none is alice's).
    let words = gateway.dir.join("passwords.txt");
    let guesses: Vec<String> = (1..=40).map(|i| format!("guess-{i}")).collect();
    assert!(!guesses.iter().any(|g| g == PASSWORD));
    std::fs::write(&words, guesses.join("\n") + "\n").expect("word list");
    // It gives up after --maximumtime seconds without an answer: long enough for the phone's
    // calls below to happen while it still sends, on a slow machine too.
    let mut args = vec![
        "-v".to_owned(),
        "--maximumtime".into(),
        "15".into(),
        "-u".into(),
        "alice".into(),
        "-d".into(),
        words.display().to_string(),
    ];
    args.extend(target(&gateway));
    let started = Instant::now();
    let mut svcrack = Scanner::start("svcrack", &args, &gateway.dir);
    let banned_after = wait_until(Duration::from_secs(30), || {
        gateway.metric("landline_auth_bans_total") >= 1.0
    });
    assert!(
        banned_after.is_some(),
        "svcrack was not banned:\n{}\n{}",
        svcrack.output(),
        gateway.log()
    );

    // During the attack (svcrack still sending, for 15 s without answers before it gives up),
    // the phone on another address registers and calls.
    phone_registers_and_calls(&gateway, &carrier, "during the attack");
    assert!(
        svcrack.running(),
        "svcrack ended before the phone was done: not 'during' ({:?})",
        started.elapsed()
    );

    let report = svcrack.finish(Duration::from_secs(90));
    assert!(
        !report.contains("The password for"),
        "svcrack cracked it:\n{report}"
    );
    assert!(
        report.contains("since we last received a response - stopping"),
        "svcrack did not stop for lack of answers:\n{report}"
    );
    // Housekeeping copies the counters every 500 ms.
    assert!(
        wait_until(Duration::from_secs(5), || gateway
            .metric("landline_auth_refused_total")
            > 0.0)
        .is_some(),
        "no request of svcrack's was refused"
    );
    assert_eq!(
        gateway.metric("landline_auth_failures_total"),
        f64::from(THRESHOLD),
        "guesses past the threshold were never checked"
    );
    assert_eq!(gateway.metric("landline_auth_bans_total"), 1.0);
    let log = gateway.log();
    let banned = log
        .lines()
        .find(|l| l.contains("source banned after failed authentications"))
        .unwrap_or_else(|| panic!("no ban in the log:\n{log}"));
    assert!(
        banned.contains("source=127.0.0.1 ") && banned.contains("failures=10"),
        "{banned}"
    );

    // After the attack: the attacker's address is still banned (no answer), the phone's is not.
    assert_eq!(
        register_status(&gateway, ATTACKER, Duration::from_secs(2)),
        None,
        "the banned address was answered"
    );
    assert_eq!(
        register_status(&gateway, PHONE, Duration::from_secs(5)).as_deref(),
        Some("SIP/2.0 401 Unauthorized")
    );
    phone_registers_and_calls(&gateway, &carrier, "after the attack");

    // The call from the attacker's address was never disturbed: its BYE, sent from there
    // after the ban, ends it normally.
    assert!(
        gateway.metric("landline_calls_active") >= 1.0,
        "the long call ended before the attack was over ({:?})",
        started.elapsed()
    );
    let stats = long_call.finish();
    assert_calls(
        stats,
        1,
        "the call running through the attack",
        &gateway,
        &[&long_call, &carrier],
    );
    let stats = carrier.finish();
    assert_calls(stats, 3, "carrier", &gateway, &[&carrier]);
    let cdrs = gateway.wait_cdrs(3);
    assert_eq!(cdrs.len(), 3, "{cdrs:?}");
    assert!(cdrs.iter().all(|c| c["outcome"] == "answered"), "{cdrs:?}");
    gateway.assert_idle();
}

/// The same over TCP, with the threshold set in the configuration: SIPp on one connection,
/// every call a wrong password (one failure each), is banned at the third; its later calls get
/// no answer at all, while the same account from another address still gets its challenge.
#[test]
fn a_guesser_over_tcp_is_banned_at_the_configured_threshold() {
    let gateway = Gateway::start_with_env(&[], &[("LANDLINE__SIP__AUTH_FAILURES_BEFORE_BAN", "3")]);
    let guesser = addr([127, 0, 0, 6]);
    let args = [
        "-t",
        "t1",
        "-au",
        "alice",
        "-ap",
        "not-the-password",
        "-s",
        "+15557654321",
        "-r",
        "2",
        "-recv_timeout",
        "3000",
    ];
    let mut sipp = Sipp::start(
        "client_wrong_password",
        guesser,
        Some(gateway.sip),
        5,
        &args,
    );
    let stats = sipp.finish();
    assert!(
        stats.successful <= 3 && stats.failed >= 2 && stats.successful + stats.failed == 5,
        "{stats:?}: calls past the ban were answered\n{}",
        sipp.diagnostics()
    );
    assert!(
        wait_until(Duration::from_secs(5), || gateway
            .metric("landline_auth_refused_total")
            >= 2.0)
        .is_some(),
        "the banned calls' INVITEs were not refused"
    );
    assert_eq!(gateway.metric("landline_auth_failures_total"), 3.0);
    assert_eq!(gateway.metric("landline_auth_bans_total"), 1.0);
    assert!(
        gateway
            .log()
            .lines()
            .any(|l| l.contains("source banned") && l.contains("source=127.0.0.6 ")),
        "{}",
        gateway.log()
    );
    assert_eq!(
        register_status(&gateway, PHONE, Duration::from_secs(5)).as_deref(),
        Some("SIP/2.0 401 Unauthorized"),
        "another address is still served"
    );
}
