//! A registration trunk against a real carrier-side stack: Kamailio 5.6
//! (`tests/kamailio/carrier_registrar.cfg`) as the carrier's registrar and proxy, SIPp behind
//! it as the PSTN.
//!
//! ```text
//!  softphone 127.0.0.1 ─┐                         ┌─ 127.0.0.2 far end (SIPp UAS): our calls out
//!  (SIPp, alice)        ├─ landline 127.0.0.1 ─── Kamailio 127.0.0.4
//!                       │  REGISTER (401), INVITE └─ 127.0.0.3 PSTN caller (SIPp UAC): DID calls
//!                       │  (407), DID calls in
//! ```
//!
//! The gateway registers as `carrier-account`; Kamailio grants 4 s whatever we ask (60 s), so
//! refreshes come every 2 s. DID calls reach us through Kamailio's location lookup (the
//! Request-URI is our Contact, the DID is in To); our calls out are challenged 407 and relayed
//! to the far end with a header naming the account that authenticated.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::kamailio::Kamailio;
use common::*;
use landline_codecs::G711Law;
use landline_codecs::rtp::RtpPacket;

const ACCOUNT: &str = "carrier-account";
const ACCOUNT_PASSWORD: &str = "trunk-secret";
const ALICE_DID: &str = "+15551230001";
/// Kamailio's `max_expires`: the registration it grants, whatever we ask.
const GRANTED_EXPIRES: Duration = Duration::from_secs(4);

/// The carrier (Kamailio and where it sends things) and the gateway registered to it.
struct Carrier {
    kamailio: Kamailio,
    /// The far end taking our calls out (SIPp UAS), on 127.0.0.2.
    terminator: SocketAddr,
    /// The PSTN caller (SIPp UAC), on 127.0.0.3.
    pstn: SocketAddr,
    gateway: Gateway,
}

impl Carrier {
    /// Kamailio first (so our first REGISTER finds it), then the gateway with one
    /// registration trunk to it (`trunk_extra`: further TOML keys of the trunk), registered.
    fn start(trunk_extra: &str) -> Carrier {
        let kamailio_addr = SocketAddr::from(([127, 0, 0, 4], free_port()));
        let terminator = SocketAddr::from(([127, 0, 0, 2], free_port()));
        let pstn = SocketAddr::from(([127, 0, 0, 3], free_port()));
        let kamailio = carrier_proxy(kamailio_addr, pstn, terminator);
        let gateway = Gateway::start_with_config(
            &format!(
                r#"
[[trunks]]
name = "carrier"
kind = "registration"
address = "{kamailio_addr}"
auth = {{ username = "{ACCOUNT}", password = "{ACCOUNT_PASSWORD}" }}
expires = "60s"
probe_interval = "1s"
probe_up_after = 1
probe_down_after = 2
{trunk_extra}

[[routes]]
prefix = ""
trunks = ["carrier"]
"#
            ),
            &[],
        );
        let carrier = Carrier {
            kamailio,
            terminator,
            pstn,
            gateway,
        };
        carrier.wait_registered(true, Duration::from_secs(20));
        carrier
    }

    fn registered(&self) -> bool {
        self.gateway.metric("landline_trunk_registered") == 1.0
    }

    fn trunk_up(&self) -> bool {
        self.gateway.metric("landline_trunk_up") == 1.0
    }

    /// Waits for the trunk's registration state to be `registered`; how long that took.
    fn wait_registered(&self, registered: bool, limit: Duration) -> Duration {
        wait_until(limit, || self.registered() == registered).unwrap_or_else(|| {
            panic!(
                "trunk registered is not {registered} after {limit:?}\n{}",
                self.diagnostics()
            )
        })
    }

    /// Kamailio's log and the tail of the gateway's, for failure messages.
    fn diagnostics(&self) -> String {
        let log = self.gateway.log();
        let tail = log.get(log.len().saturating_sub(6000)..).unwrap_or("");
        format!(
            "--- kamailio ---\n{}\n--- gateway log (tail) ---\n{tail}",
            self.kamailio.log()
        )
    }
}

/// Kamailio as the carrier's registrar and proxy on `addr`, taking DID calls from `pstn` and
/// sending the account's calls to `terminator`.
fn carrier_proxy(addr: SocketAddr, pstn: SocketAddr, terminator: SocketAddr) -> Kamailio {
    Kamailio::start(
        "carrier_registrar.cfg",
        addr,
        &[
            format!("PSTN_IP=\"{}\"", pstn.ip()),
            format!("TERMINATOR=\"sip:{terminator}\""),
            format!("ACCOUNT=\"{ACCOUNT}\""),
            format!("ACCOUNT_AOR=\"sip:{ACCOUNT}@{}\"", addr.ip()),
            format!("PASSWORD=\"{ACCOUNT_PASSWORD}\""),
            format!("MAX_EXPIRES={}", GRANTED_EXPIRES.as_secs()),
        ],
    )
}

fn socket_on(ip: [u8; 4]) -> UdpSocket {
    let socket = UdpSocket::bind(SocketAddr::from((ip, 0))).expect("media socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(2)))
        .expect("timeout");
    socket
}

fn port_of(socket: &UdpSocket) -> String {
    socket.local_addr().expect("addr").port().to_string()
}

/// The audio in G.711 RTP packets (PCMU or PCMA by payload type), other payloads left out.
fn decode(packets: &[Vec<u8>]) -> Vec<i16> {
    packets
        .iter()
        .filter_map(|p| RtpPacket::parse(p).ok())
        .filter_map(|p| {
            let law = match p.payload_type {
                0 => G711Law::Mu,
                8 => G711Law::A,
                _ => return None,
            };
            let mut pcm = vec![0i16; p.payload.len()];
            law.decode(p.payload, &mut pcm);
            Some(pcm)
        })
        .flatten()
        .collect()
}

#[test]
fn the_trunk_registers_through_the_challenge_and_refreshes_before_expiry() {
    let carrier = Carrier::start("");
    let kamailio = &carrier.kamailio;
    assert!(
        kamailio.count("REGISTER challenged (401)") >= 1,
        "the first REGISTER was challenged:\n{}",
        carrier.diagnostics()
    );
    let contact = format!(
        "registered {ACCOUNT} at <sip:landline@{}>",
        carrier.gateway.sip
    );
    assert!(
        kamailio.count(&contact) >= 1,
        "the binding is our Contact:\n{}",
        carrier.diagnostics()
    );
    // Kamailio granted 4 s of the 60 s we asked: the refreshes must come inside every 4 s
    // (and not in a loop), for 3 refreshes in a row.
    let mut last = Instant::now();
    let mut seen = kamailio.count("carrier: registered");
    let mut gaps = Vec::new();
    while gaps.len() < 3 {
        let waited = wait_until(Duration::from_secs(15), || {
            kamailio.count("carrier: registered") > seen
        });
        assert!(
            waited.is_some(),
            "no refresh within 15 s:\n{}",
            carrier.diagnostics()
        );
        let now = Instant::now();
        gaps.push(now - last);
        last = now;
        seen = kamailio.count("carrier: registered");
        assert!(carrier.registered(), "the trunk stays registered");
    }
    // The first gap is measured from an arbitrary point; the next ones are whole periods.
    for gap in &gaps[1..] {
        assert!(
            *gap < GRANTED_EXPIRES && *gap > Duration::from_millis(1000),
            "refreshes every {gaps:?}, granted {GRANTED_EXPIRES:?}"
        );
    }
    assert!(carrier.trunk_up(), "Kamailio answers the OPTIONS probes");
    carrier.gateway.assert_idle();
}

#[test]
fn a_did_call_through_the_carrier_rings_the_registered_softphone() {
    let carrier = Carrier::start("");
    let gateway = &carrier.gateway;
    // alice's softphone registers with the gateway, then answers with its media on a socket
    // the test owns.
    let phone = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut register = Sipp::start(
        "client_register",
        phone,
        Some(gateway.sip),
        1,
        &["-au", "alice", "-ap", PASSWORD],
    );
    assert_calls(register.finish(), 1, "register", gateway, &[&register]);
    let phone_media = socket_on([127, 0, 0, 1]);
    let mut softphone = Sipp::start(
        "client_answer_media",
        phone,
        None,
        1,
        &["-key", "rtp_port", &port_of(&phone_media)],
    );
    let pstn_media = socket_on([127, 0, 0, 3]);
    let mut pstn = Sipp::start(
        "pstn_call_did_media",
        carrier.pstn,
        Some(carrier.kamailio.addr),
        1,
        &["-s", ALICE_DID, "-key", "rtp_port", &port_of(&pstn_media)],
    );

    // Answered: 1 s of tone each way through the gateway (440 Hz from the PSTN, 1 kHz from
    // the softphone), while the PSTN caller waits to hang up.
    let trunk_leg = SocketAddr::from(([127, 0, 0, 1], pstn.answer_port()));
    let client_leg = wait_until(Duration::from_secs(10), || {
        offered_media(&softphone).is_some()
    })
    .and_then(|_| offered_media(&softphone))
    .expect("the gateway's INVITE reached the softphone");
    let (mut at_phone, mut at_pstn) = (Vec::new(), Vec::new());
    let mut buf = [0u8; 2048];
    for i in 0..50u16 {
        let ts = u32::from(i) * 160;
        pstn_media
            .send_to(&pcmu_tone(i, ts, 440.0), trunk_leg)
            .expect("send");
        phone_media
            .send_to(&pcmu_tone(i, ts, 1000.0), client_leg)
            .expect("send");
        let until = Instant::now() + Duration::from_millis(20);
        while Instant::now() < until {
            if let Ok((n, _)) = phone_media.recv_from(&mut buf) {
                at_phone.push(buf[..n].to_vec());
            }
            if let Ok((n, _)) = pstn_media.recv_from(&mut buf) {
                at_pstn.push(buf[..n].to_vec());
            }
        }
    }
    assert_calls(
        pstn.finish(),
        1,
        "PSTN caller",
        gateway,
        &[&pstn, &softphone],
    );
    assert_calls(
        softphone.finish(),
        1,
        "softphone",
        gateway,
        &[&pstn, &softphone],
    );

    let (heard_phone, heard_pstn) = (decode(&at_phone), decode(&at_pstn));
    assert!(
        heard_phone.len() >= 160 * 30 && heard_pstn.len() >= 160 * 30,
        "audio both ways: {} samples at the softphone, {} at the PSTN",
        heard_phone.len(),
        heard_pstn.len()
    );
    let phone_ratio = tone_ratio(&heard_phone, 440.0, 8000.0);
    let pstn_ratio = tone_ratio(&heard_pstn, 1000.0, 8000.0);
    assert!(
        phone_ratio > 0.5 && pstn_ratio > 0.5,
        "each side hears the other's tone: softphone {phone_ratio:.2}, PSTN {pstn_ratio:.2}"
    );

    // Kamailio retargeted the DID to our Contact; the gateway found the DID in To.
    let relayed = format!(
        "DID {ALICE_DID} called, relayed to sip:landline@{}",
        gateway.sip
    );
    assert!(
        carrier.kamailio.count(&relayed) == 1,
        "{}",
        carrier.diagnostics()
    );
    let cdrs = gateway.wait_cdrs(1);
    assert_eq!(cdrs.len(), 1, "{cdrs:?}");
    assert_eq!(cdrs[0]["direction"], "inbound");
    assert_eq!(cdrs[0]["outcome"], "answered", "{cdrs:?}");
    assert_eq!(cdrs[0]["to"], ALICE_DID);
    assert_eq!(cdrs[0]["trunk"], "carrier");
    assert_eq!(cdrs[0]["ended_by"], "trunk", "{cdrs:?}");
    gateway.assert_idle();
}

/// A call out from alice through the registration trunk, answered by `scenario` (a far end that
/// checks the caller-ID headers and fails the call if they are wrong).
fn call_out_checked_by(trunk_extra: &str, scenario: &str) -> Carrier {
    let carrier = Carrier::start(trunk_extra);
    let gateway = &carrier.gateway;
    let mut far_end = Sipp::start(scenario, carrier.terminator, None, 1, &["-rtp_echo"]);
    let mut client = Sipp::start(
        "client_call",
        SocketAddr::from(([127, 0, 0, 1], free_port())),
        Some(gateway.sip),
        1,
        &["-au", "alice", "-ap", PASSWORD, "-s", "+15557654321"],
    );
    let client_stats = client.finish();
    let far_stats = far_end.finish();
    let report = carrier.diagnostics();
    assert_calls(client_stats, 1, "client", gateway, &[&client, &far_end]);
    assert_calls(far_stats, 1, "far end", gateway, &[&client, &far_end]);
    // Kamailio challenged our INVITE and let it through only with the account's credentials.
    let kamailio = &carrier.kamailio;
    assert!(
        kamailio.count("INVITE challenged (407)") >= 1,
        "no 407 was sent:\n{report}"
    );
    assert_eq!(
        kamailio.count(&format!(
            "INVITE from {ACCOUNT} to +15557654321 authenticated"
        )),
        1,
        "{report}"
    );
    let cdrs = gateway.wait_cdrs(1);
    assert_eq!(cdrs.len(), 1, "{cdrs:?}");
    assert_eq!(cdrs[0]["outcome"], "answered", "{cdrs:?}");
    assert_eq!(cdrs[0]["trunk"], "carrier");
    gateway.assert_idle();
    carrier
}

#[test]
fn a_call_out_answers_the_407_and_asserts_the_callers_did() {
    call_out_checked_by("pai = true", "carrier_expects_pai");
}

#[test]
fn a_call_out_with_privacy_id_is_anonymous_but_asserted_to_the_carrier() {
    call_out_checked_by("privacy = \"id\"", "carrier_expects_privacy");
}

#[test]
fn when_the_carrier_vanishes_the_trunk_goes_down_and_registers_again_when_it_returns() {
    let mut carrier = Carrier::start("");
    assert!(carrier.trunk_up());
    carrier.kamailio.kill();
    // The next refresh (due within 2 s) times out (64 × T1 = 6.4 s here); the probes fail too.
    carrier.wait_registered(false, Duration::from_secs(30));
    let failed_at = Instant::now();
    assert!(
        wait_until(Duration::from_secs(30), || !carrier.trunk_up()).is_some(),
        "the probes take the trunk down:\n{}",
        carrier.diagnostics()
    );
    // The carrier returns, with no memory of our binding; the gateway retries after its
    // backoff (30 s for the first failure), challenged again, without a restart.
    carrier.kamailio.restart();
    carrier.wait_registered(true, Duration::from_secs(90));
    let retried_after = failed_at.elapsed();
    assert!(
        retried_after > Duration::from_secs(20),
        "registration retried after {retried_after:?}: no backoff"
    );
    let kamailio = &carrier.kamailio;
    assert!(
        kamailio.count("REGISTER challenged (401)") >= 1
            && kamailio.count(&format!("registered {ACCOUNT} at")) >= 1,
        "{}",
        carrier.diagnostics()
    );
    // One retry, not a storm: a REGISTER and its authenticated repeat, then refreshes.
    assert!(
        kamailio.count("REGISTER challenged (401)") <= 2,
        "{}",
        carrier.diagnostics()
    );
    assert!(
        wait_until(Duration::from_secs(10), || carrier.trunk_up()).is_some(),
        "the probes bring the trunk back up"
    );
    carrier.gateway.assert_idle();
}

#[test]
fn when_the_first_registrar_vanishes_the_trunk_registers_at_its_next_address_at_once() {
    // Two proxies of one carrier, each with its own location table; the trunk lists both.
    let pstn = SocketAddr::from(([127, 0, 0, 3], free_port()));
    let terminator = SocketAddr::from(([127, 0, 0, 2], free_port()));
    let mut primary = carrier_proxy(
        SocketAddr::from(([127, 0, 0, 4], free_port())),
        pstn,
        terminator,
    );
    let backup = carrier_proxy(
        SocketAddr::from(([127, 0, 0, 5], free_port())),
        pstn,
        terminator,
    );
    let gateway = Gateway::start_with_config(
        &format!(
            r#"
[[trunks]]
name = "carrier"
kind = "registration"
addresses = ["{}", "{}"]
auth = {{ username = "{ACCOUNT}", password = "{ACCOUNT_PASSWORD}" }}
expires = "60s"
probe_interval = "0s"

[[routes]]
prefix = ""
trunks = ["carrier"]
"#,
            primary.addr, backup.addr
        ),
        &[],
    );
    let registered_at = |kamailio: &Kamailio| kamailio.count(&format!("registered {ACCOUNT} at"));
    let report = |primary: &Kamailio| {
        format!(
            "--- primary ---\n{}\n--- backup ---\n{}\n--- gateway ---\n{}",
            primary.log(),
            backup.log(),
            gateway.log()
        )
    };
    assert!(
        wait_until(Duration::from_secs(20), || registered_at(&primary) >= 1).is_some(),
        "registered at the first address:\n{}",
        report(&primary)
    );
    assert_eq!(
        registered_at(&backup),
        0,
        "nothing at the backup while the first answers"
    );

    primary.kill();
    // The next refresh (within 2 s) times out after 64 × T1 = 6.4 s; the backup gets the
    // REGISTER at once, well before the 30 s a backoff would take.
    let moved = wait_until(Duration::from_secs(40), || registered_at(&backup) >= 1);
    let moved =
        moved.unwrap_or_else(|| panic!("never registered at the backup:\n{}", report(&primary)));
    assert!(
        moved < Duration::from_secs(20),
        "registered at the backup {moved:?} after the first vanished: it waited a backoff"
    );
    assert!(
        wait_until(Duration::from_secs(10), || gateway
            .metric("landline_trunk_registered")
            == 1.0)
        .is_some(),
        "the trunk reads registered again"
    );

    // The backup's DID calls reach us: alice's softphone answers one.
    let phone = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut register = Sipp::start(
        "client_register",
        phone,
        Some(gateway.sip),
        1,
        &["-au", "alice", "-ap", PASSWORD],
    );
    assert_calls(register.finish(), 1, "register", &gateway, &[&register]);
    let mut softphone = Sipp::start("client_answer", phone, None, 1, &[]);
    let pstn_media = socket_on([127, 0, 0, 3]);
    let mut caller = Sipp::start(
        "pstn_call_did_media",
        pstn,
        Some(backup.addr),
        1,
        &["-s", ALICE_DID, "-key", "rtp_port", &port_of(&pstn_media)],
    );
    assert_calls(
        caller.finish(),
        1,
        "PSTN caller",
        &gateway,
        &[&caller, &softphone],
    );
    assert_calls(
        softphone.finish(),
        1,
        "softphone",
        &gateway,
        &[&caller, &softphone],
    );
    assert_eq!(
        backup.count(&format!("DID {ALICE_DID} called, relayed to")),
        1
    );
    gateway.assert_idle();
}
