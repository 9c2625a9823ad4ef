//! SIP over TLS to a carrier: a real TLS peer, baresip, plays the carrier (auto-answer, TLS on
//! its SIP port + 1) with a certificate from a CA made for the test, and the gateway trusts that
//! CA through the trunk's `tls_ca`. A carrier whose certificate the gateway cannot verify, or an
//! address that refuses the connection, fails the call over to the next address and trunk at
//! once, never reaching the carrier.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// The number baresip answers as (its account's user), in the trunk's `e164_no_plus` format.
const CARRIER_NUMBER: &str = "15557654321";

/// A CA for one test: its certificate (PEM) and what signs with it.
struct TestCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let pem = params.self_signed(&key).expect("CA certificate").pem();
        TestCa {
            pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `names`, and its key, both PEM.
    fn server(&self, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().expect("server key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "carrier.test");
        let cert = params.signed_by(&key, &self.issuer).expect("signed");
        (cert.pem(), key.serialize_pem())
    }
}

/// baresip as a carrier on `ip`: answers every call to [`CARRIER_NUMBER`] after a ring, over
/// UDP/TCP on its port and TLS on the next one, with `cert` (PEM chain + key).
struct BaresipCarrier {
    child: Child,
    dir: PathBuf,
    tls: SocketAddr,
}

impl BaresipCarrier {
    fn start(ip: [u8; 4], cert_and_key: &str) -> BaresipCarrier {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "landline-tls-carrier-{}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("cert.pem"), cert_and_key).expect("cert");
        write_tone(&dir.join("tone.wav"));
        let address = SocketAddr::from((ip, port));
        let config = format!(
            "poll_method epoll\nsip_listen {address}\nsip_certificate {cert}\n\
             net_interface 127.0.0.1\naudio_player alsa,null\naudio_alert alsa,null\n\
             audio_source aufile,{tone}\nmodule_path /usr/lib/baresip/modules\n\
             module g711.so\nmodule alsa.so\nmodule aufile.so\n\
             module_app account.so\nmodule_app menu.so\n",
            cert = dir.join("cert.pem").display(),
            tone = dir.join("tone.wav").display(),
        );
        std::fs::write(dir.join("config"), config).expect("config");
        let account = format!(
            "<sip:{CARRIER_NUMBER}@{}>;regint=0;answermode=auto;audio_codecs=PCMU/8000/1\n",
            address.ip()
        );
        std::fs::write(dir.join("accounts"), account).expect("accounts");
        let log = std::fs::File::create(dir.join("baresip.log")).expect("log");
        let child = Command::new("baresip")
            .arg("-f")
            .arg(&dir)
            .args(["-t", "40"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run baresip ({e}): apt-get install baresip (scripts/test does)")
            });
        let tls = SocketAddr::from((ip, port + 1));
        let carrier = BaresipCarrier { child, dir, tls };
        carrier.wait_listening();
        carrier
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect_timeout(&self.tls, Duration::from_millis(200)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "baresip never listened for TLS on {}:\n{}",
            self.tls,
            self.log()
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("baresip.log")).unwrap_or_default()
    }
}

impl Drop for BaresipCarrier {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Ten seconds of a 440 Hz tone, 8 kHz mono, for baresip to send.
fn write_tone(path: &Path) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut wav = hound::WavWriter::create(path, spec).expect("wav");
    for n in 0..80_000 {
        let x = (2.0 * std::f64::consts::PI * 440.0 * f64::from(n) / 8000.0).sin();
        wav.write_sample((x * 8000.0) as i16).expect("sample");
    }
    wav.finalize().expect("wav");
}

/// A test directory with `ca.pem` holding `pem`.
fn ca_file(name: &str, pem: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "landline-tls-{}-{name}-{}.pem",
        std::process::id(),
        free_port()
    ));
    std::fs::write(&path, pem).expect("CA file");
    path
}

/// A TLS trunk's TOML.
fn tls_trunk(name: &str, addresses: &[SocketAddr], ca: &Path, allow: &str) -> String {
    let list: Vec<String> = addresses.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        r#"
[[trunks]]
name = "{name}"
kind = "ip"
addresses = [{}]
transport = "tls"
tls_ca = "{}"
tls_server_name = "carrier.test"
allow = ["{allow}"]
codecs = ["pcmu"]
number_format = "e164_no_plus"
probe_interval = "0s"
"#,
        list.join(", "),
        ca.display()
    )
}

fn client_dials(gateway: &Gateway, number: &str) -> Sipp {
    Sipp::start(
        "client_call",
        SocketAddr::from(([127, 0, 0, 1], free_port())),
        Some(gateway.sip),
        1,
        &["-au", "alice", "-ap", PASSWORD, "-s", number],
    )
}

fn tail(text: &str) -> &str {
    text.get(text.len().saturating_sub(6000)..).unwrap_or(text)
}

#[test]
fn calls_go_out_over_tls_to_a_carrier_signed_by_a_private_ca_on_one_connection() {
    let ca = TestCa::new("landline test CA");
    let (cert, key) = ca.server(&["carrier.test"]);
    let carrier = BaresipCarrier::start([127, 0, 0, 4], &(cert + &key));
    let trunks = tls_trunk(
        "carrier-tls",
        &[carrier.tls],
        &ca_file("ca", &ca.pem),
        "127.0.0.4",
    ) + "\n[[routes]]\nprefix = \"\"\ntrunks = [\"carrier-tls\"]\n";
    let gateway = Gateway::start_with_config(&trunks, &[]);
    // Two calls (SIPp starts them 100 ms apart): both go down the connection the first one
    // opened, the second's INVITE queued on it if it is still connecting.
    let mut client = Sipp::start(
        "client_call",
        SocketAddr::from(([127, 0, 0, 1], free_port())),
        Some(gateway.sip),
        2,
        &["-au", "alice", "-ap", PASSWORD, "-s", "+15557654321"],
    );
    let stats = client.finish();
    let carrier_log = carrier.log();
    if stats.successful != 2 || stats.failed != 0 {
        panic!(
            "client: {stats:?}\n{}\n--- baresip ---\n{carrier_log}\n--- gateway ---\n{}",
            client.diagnostics(),
            tail(&gateway.log())
        );
    }
    assert!(
        carrier_log.contains("Call established"),
        "the carrier answered over TLS:\n{carrier_log}"
    );
    let log = gateway.log();
    assert!(
        log.contains(&format!("destination={}", carrier.tls)),
        "the INVITE went to baresip's TLS port:\n{}",
        tail(&log)
    );
    assert!(!log.contains("transport failure"), "{}", tail(&log));
    let opened = log
        .matches(&format!(
            "SIP connection opened to={} transport=\"TLS\"",
            carrier.tls
        ))
        .count();
    assert_eq!(
        opened,
        1,
        "INVITE, ACK and BYE of both calls share one connection:\n{}",
        tail(&log)
    );
    assert_eq!(
        carrier_log.matches("Call established").count(),
        2,
        "{carrier_log}"
    );
    let cdrs = gateway.wait_cdrs(2);
    assert_eq!(cdrs.len(), 2, "{cdrs:?}");
    for cdr in &cdrs {
        assert_eq!(cdr["outcome"], "answered", "{cdrs:?}");
        assert_eq!(cdr["trunk"], "carrier-tls");
    }
    gateway.assert_idle();
}

#[test]
fn an_unverifiable_or_refusing_tls_carrier_fails_over_at_once() {
    // baresip's certificate is signed by a CA the trunk does not trust.
    let theirs = TestCa::new("the carrier's CA");
    let ours = TestCa::new("a CA the gateway was given");
    let (cert, key) = theirs.server(&["carrier.test"]);
    let carrier = BaresipCarrier::start([127, 0, 0, 4], &(cert + &key));
    // Nothing listens here: the connection is refused.
    let refusing = SocketAddr::from(([127, 0, 0, 5], free_port()));
    let backup = SocketAddr::from(([127, 0, 0, 2], free_port()));
    let trunks = tls_trunk(
        "carrier-tls",
        &[refusing, carrier.tls],
        &ca_file("wrong-ca", &ours.pem),
        "127.0.0.4",
    ) + &format!(
        r#"
[[trunks]]
name = "backup"
kind = "ip"
address = "{backup}"
codecs = ["pcmu"]
probe_interval = "0s"

[[routes]]
prefix = ""
trunks = ["carrier-tls", "backup"]
"#
    );
    let gateway = Gateway::start_with_config(&trunks, &[]);
    let mut answering = Sipp::start("carrier_answer", backup, None, 1, &["-rtp_echo"]);
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let mut client = client_dials(&gateway, "+15557654321");
    assert_calls(
        client.finish(),
        1,
        "client",
        &gateway,
        &[&client, &answering],
    );
    assert_calls(
        answering.finish(),
        1,
        "backup carrier",
        &gateway,
        &[&answering],
    );
    let log = gateway.log();
    // Both TLS addresses were tried, in order, and each failed as a transport failure: no
    // INVITE timeout (6.4 s with the tests' T1) was waited out.
    let refused = log
        .find(&format!(
            "cannot connect over TLS; requests there fail to={refusing}"
        ))
        .or_else(|| log.find(&format!("to={refusing} error=")));
    let unverified = log.find(&format!("to={}", carrier.tls));
    assert!(
        refused.is_some() && unverified.is_some() && refused < unverified,
        "{}",
        tail(&log)
    );
    assert!(
        log.contains("invalid peer certificate") || log.contains("UnknownIssuer"),
        "the certificate was refused:\n{}",
        tail(&log)
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "failover took {:?}",
        started.elapsed()
    );
    let carrier_log = carrier.log();
    assert!(
        !carrier_log.contains("Incoming call") && !carrier_log.contains("Call established"),
        "no INVITE may reach an unverified carrier:\n{carrier_log}"
    );
    let cdrs = gateway.wait_cdrs(1);
    assert_eq!(cdrs[0]["trunk"], "backup", "{cdrs:?}");
    assert_eq!(cdrs[0]["outcome"], "answered", "{cdrs:?}");
    gateway.assert_idle();
}

#[test]
fn a_tls_carrier_that_cannot_be_verified_and_no_other_route_gets_the_client_a_503() {
    let theirs = TestCa::new("the carrier's CA");
    let ours = TestCa::new("a CA the gateway was given");
    let (cert, key) = theirs.server(&["carrier.test"]);
    let carrier = BaresipCarrier::start([127, 0, 0, 4], &(cert + &key));
    let trunks = tls_trunk(
        "carrier-tls",
        &[carrier.tls],
        &ca_file("wrong-ca", &ours.pem),
        "127.0.0.4",
    ) + "\n[[routes]]\nprefix = \"\"\ntrunks = [\"carrier-tls\"]\n";
    let gateway = Gateway::start_with_config(&trunks, &[]);
    let started = Instant::now();
    let mut client = Sipp::start(
        "client_call_refused",
        SocketAddr::from(([127, 0, 0, 1], free_port())),
        Some(gateway.sip),
        1,
        &["-au", "alice", "-ap", PASSWORD, "-s", "+15557654321"],
    );
    assert_calls(client.finish(), 1, "client", &gateway, &[&client]);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        client.messages().contains("SIP/2.0 503"),
        "{}",
        client.messages()
    );
    let cdrs = gateway.wait_cdrs(1);
    assert_eq!(cdrs[0]["hangup_cause"], "transport_failure", "{cdrs:?}");
    assert_eq!(cdrs[0]["outcome"], "failed", "{cdrs:?}");
    assert!(!carrier.log().contains("Incoming call"));
    gateway.assert_idle();
}
