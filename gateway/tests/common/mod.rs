//! Harness for the gateway's end-to-end tests: the real `landline` binary on a generated
//! config, and SIPp playing carriers and clients, all on loopback.
#![allow(dead_code, unreachable_pub)]

pub mod kamailio;
pub mod linphone;

use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// The password every test user has.
pub const PASSWORD: &str = "test-password";

/// A port free for UDP and TCP on 127.0.0.1, 127.0.0.2 and 127.0.0.3, for a listener a test
/// hands to the gateway or SIPp. Ports come from 10000–19999, outside Linux's ephemeral range
/// (32768–60999): a port the kernel picked and we released could be handed to any socket's
/// implicit bind before the gateway binds it (CI saw "Address already in use"). Each call
/// takes a block of four (the port returned is the first, even one): SIPp's `-mp` port also
/// binds the next three for RTCP and video. A counter per process, started at a point set by
/// the process id, keeps parallel tests and test binaries apart; a block something else holds
/// is skipped.
pub fn free_port() -> u16 {
    use std::net::TcpListener;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    const BASE: u16 = 10_000;
    const BLOCKS: u16 = 2_500;
    let start = (std::process::id() % 50) as u16 * 50;
    for _ in 0..BLOCKS {
        let block = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % BLOCKS;
        let port = BASE + block * 4;
        let free = (port..port + 4).all(|p| {
            ["127.0.0.1", "127.0.0.2", "127.0.0.3"].iter().all(|host| {
                UdpSocket::bind((*host, p)).is_ok() && TcpListener::bind((*host, p)).is_ok()
            })
        });
        if free {
            return port;
        }
    }
    panic!(
        "no free block of four ports in {BASE}..{}",
        BASE + BLOCKS * 4
    );
}

/// A distinct block of 200 RTP ports per gateway, so parallel tests never share ports. The
/// blocks lie in 20000–31999, above `free_port`'s block and below Linux's ephemeral range
/// (32768–60999): the gateway refuses a SIP port inside its RTP range.
pub fn rtp_range() -> (u16, u16) {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let block = NEXT.fetch_add(1, Ordering::Relaxed);
    let process = (std::process::id() % 29) as u16;
    let base = 20_000 + (process * 400 + block * 200) % 12_000;
    (base, base + 199)
}

/// A trunk in a test config.
pub struct TestTrunk {
    pub name: &'static str,
    pub addr: SocketAddr,
    pub probe: bool,
}

/// A running gateway; killed on drop.
pub struct Gateway {
    child: Child,
    pub sip: SocketAddr,
    pub metrics: SocketAddr,
    /// The web dialer and SIP over WebSocket (`ws://{http}/ws`).
    pub http: SocketAddr,
    pub dir: PathBuf,
}

impl Gateway {
    /// Starts the gateway with one user `alice` (DID +15551230001) and `trunks`, routed in
    /// that order for every number.
    pub fn start(trunks: &[TestTrunk]) -> Gateway {
        Gateway::start_with_env(trunks, &[])
    }

    /// [`Gateway::start`] with `LANDLINE__…` overrides in its environment.
    pub fn start_with_env(trunks: &[TestTrunk], env: &[(&str, &str)]) -> Gateway {
        let mut toml = String::new();
        for trunk in trunks {
            toml.push_str(&format!(
                r#"
[[trunks]]
name = "{}"
kind = "ip"
address = "{}"
codecs = ["pcmu", "pcma"]
probe_interval = "{}"
probe_up_after = 1
probe_down_after = 2
"#,
                trunk.name,
                trunk.addr,
                if trunk.probe { "1s" } else { "0s" },
            ));
        }
        if !trunks.is_empty() {
            let names: Vec<String> = trunks.iter().map(|t| format!("\"{}\"", t.name)).collect();
            toml.push_str(&format!(
                "\n[[routes]]\nprefix = \"\"\ntrunks = [{}]\n",
                names.join(", ")
            ));
        }
        Gateway::start_with_config(&toml, env)
    }

    /// The gateway with one user `alice` (DID +15551230001) and `trunks_and_routes`, TOML
    /// appended to the test config as it is (`[[trunks]]` and `[[routes]]` tables).
    pub fn start_with_config(trunks_and_routes: &str, env: &[(&str, &str)]) -> Gateway {
        // A listener port taken between `free_port` and the gateway's bind (by a process
        // outside this test) is retried on fresh ports rather than failing the test.
        for _ in 0..3 {
            match Gateway::try_start(trunks_and_routes, env) {
                Ok(gateway) => return gateway,
                Err(log) if log.contains("Address already in use") => continue,
                Err(log) => panic!("gateway did not become ready:\n{log}"),
            }
        }
        panic!("gateway could not bind its listeners in three attempts")
    }

    /// One start on fresh ports: the gateway once it answers, else its log.
    fn try_start(trunks_and_routes: &str, env: &[(&str, &str)]) -> Result<Gateway, String> {
        let sip_port = free_port();
        let metrics_port = free_port();
        let http_port = free_port();
        let dir =
            std::env::temp_dir().join(format!("landline-gw-{}-{sip_port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let (rtp_min, rtp_max) = rtp_range();
        let mut config = format!(
            r#"
[sip]
udp = "127.0.0.1:{sip_port}"
tcp = "127.0.0.1:{sip_port}"
domain = "landline.test"
# Short timers keep the failure tests fast (a lost probe fails after 64 × T1).
t1 = "100ms"
[http]
listen = "127.0.0.1:{http}"
secure_listen = "127.0.0.1:{https}"
[metrics]
listen = "127.0.0.1:{metrics_port}"
[media]
public_address = "127.0.0.1"
bind_address = "127.0.0.1"
rtp_port_min = {rtp_min}
rtp_port_max = {rtp_max}
shards = 2
rtp_timeout = "10s"
[cdr]
path = "{cdr}"
[log]
level = "debug"
[[users]]
username = "alice"
password = "{PASSWORD}"
dids = ["+15551230001"]
country = "1"
"#,
            http = http_port,
            https = free_port(),
            cdr = dir.join("cdr.jsonl").display(),
        );
        config.push_str(trunks_and_routes);
        let path = dir.join("landline.toml");
        std::fs::write(&path, config).expect("write config");
        let log = std::fs::File::create(dir.join("landline.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_landline"))
            .args(["run", "--config"])
            .arg(&path)
            .env("RUST_LOG", "debug")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start landline");
        let mut gateway = Gateway {
            child,
            sip: SocketAddr::from(([127, 0, 0, 1], sip_port)),
            metrics: SocketAddr::from(([127, 0, 0, 1], metrics_port)),
            http: SocketAddr::from(([127, 0, 0, 1], http_port)),
            dir,
        };
        gateway.wait_ready()?;
        Ok(gateway)
    }

    /// Waits until the gateway answers an OPTIONS on its SIP port; its log if it exits or
    /// does not answer within 20 s.
    fn wait_ready(&mut self) -> Result<(), String> {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("probe socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let deadline = Instant::now() + Duration::from_secs(20);
        let local = socket.local_addr().expect("local addr");
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Err(self.log());
            }
            let options = format!(
                "OPTIONS sip:{0} SIP/2.0\r\nVia: SIP/2.0/UDP {1};branch=z9hG4bKready{2}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:probe@{1}>;tag=p\r\nTo: <sip:{0}>\r\n\
                 Call-ID: ready-{2}@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
                self.sip,
                local,
                Instant::now().elapsed().as_nanos()
            );
            let _ = socket.send_to(options.as_bytes(), self.sip);
            let mut buf = [0u8; 2048];
            if let Ok((n, _)) = socket.recv_from(&mut buf) {
                if buf[..n].starts_with(b"SIP/2.0 200") {
                    return Ok(());
                }
            }
        }
        Err(self.log())
    }

    /// The gateway's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends the gateway a signal (`TERM`, `INT`...).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits (bounded) for the gateway to exit; its exit code, or `None` if it is still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// The status line of the gateway's answer to an OPTIONS, or `None` without one.
    pub fn options_status(&self) -> Option<String> {
        options_status(self.sip)
    }

    /// The gateway's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("landline.log")).unwrap_or_default()
    }

    /// The call records written so far, one JSON object per line.
    pub fn cdrs(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.join("cdr.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits until `n` call records are written (calls end asynchronously).
    pub fn wait_cdrs(&self, n: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let cdrs = self.cdrs();
            if cdrs.len() >= n || Instant::now() > deadline {
                return cdrs;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One metric's value (summed over its labels) from the Prometheus endpoint.
    ///
    /// Panics when the endpoint does not answer or does not have the metric: a check that
    /// reads nothing must not pass.
    pub fn metric(&self, name: &str) -> f64 {
        let text = http_get(self.metrics, "/metrics");
        let values: Vec<f64> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| l.split(['{', ' ']).next() == Some(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .collect();
        assert!(
            !values.is_empty(),
            "metric {name} not served by {}:\n{text}",
            self.metrics
        );
        values.iter().sum()
    }

    /// Asserts nothing is left over: no active call, no RTP port in use, no WebSocket open.
    pub fn assert_idle(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let calls = self.metric("landline_calls_active");
            let ports = self.metric("landline_rtp_ports_in_use");
            let shard_calls = self.metric("landline_shard_calls");
            let websockets = self.metric("landline_websocket_connections");
            if calls == 0.0 && ports == 0.0 && shard_calls == 0.0 && websockets == 0.0 {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "gateway not idle: calls {calls}, shard calls {shard_calls}, ports {ports}, \
                     websockets {websockets}\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status line of `target`'s answer to an OPTIONS sent from 127.0.0.1 over UDP (waiting
/// half a second), or `None` without one.
pub fn options_status(target: SocketAddr) -> Option<String> {
    let socket = UdpSocket::bind("127.0.0.1:0").ok()?;
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .ok()?;
    let local = socket.local_addr().ok()?;
    let options = format!(
        "OPTIONS sip:{0} SIP/2.0\r\nVia: SIP/2.0/UDP {1};branch=z9hG4bKopt{2}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@{1}>;tag=p\r\nTo: <sip:{0}>\r\n\
         Call-ID: opt-{2}@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        target,
        local,
        local.port()
    );
    socket.send_to(options.as_bytes(), target).ok()?;
    let mut buf = [0u8; 2048];
    let (n, _) = socket.recv_from(&mut buf).ok()?;
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .map(str::to_owned)
}

/// Polls `condition` every 100 ms until it holds; how long that took, or `None` after `limit`.
/// Tests wait for what they expect rather than sleeping a fixed time.
pub fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if condition() {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn http_get(addr: SocketAddr, path: &str) -> String {
    use std::io::Write;
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    );
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body);
    body
}

/// SIPp's verdict from its statistics CSV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub successful: u64,
    pub failed: u64,
}

/// A SIPp process playing one side.
pub struct Sipp {
    child: Child,
    dir: PathBuf,
    name: String,
}

impl Sipp {
    /// Starts SIPp on `local` with `scenario` (from `gateway/tests/sipp/`), for `calls` calls;
    /// `target` makes it a UAC. `extra` are further arguments (`-au`, `-rtp_echo`...).
    pub fn start(
        scenario: &str,
        local: SocketAddr,
        target: Option<SocketAddr>,
        calls: u64,
        extra: &[&str],
    ) -> Sipp {
        let dir = std::env::temp_dir().join(format!(
            "landline-sipp-{}-{}-{}",
            std::process::id(),
            local.port(),
            scenario
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let xml = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/sipp")
            .join(format!("{scenario}.xml"));
        let mut cmd = Command::new("sipp");
        if let Some(target) = target {
            cmd.arg(target.to_string());
        }
        let ip = local.ip().to_string();
        cmd.arg("-sf")
            .arg(&xml)
            .args([
                "-i",
                &ip,
                "-p",
                &local.port().to_string(),
                "-m",
                &calls.to_string(),
            ])
            .args(["-mi", &ip, "-mp", &free_port().to_string()])
            .args([
                "-trace_stat",
                "-fd",
                "1",
                "-trace_err",
                "-trace_msg",
                "-nostdin",
            ])
            .args(["-timeout", "30s", "-timeout_error", "-aa"])
            .arg("-stf")
            .arg(dir.join("stat.csv"))
            .arg("-error_file")
            .arg(dir.join("err.log"))
            .arg("-message_file")
            .arg(dir.join("msg.log"))
            .args(extra)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot run sipp ({e}): install it with `apt-get install sip-tester` (scripts/test does)")
        });
        Sipp {
            child,
            dir,
            name: scenario.to_owned(),
        }
    }

    /// Waits for SIPp to finish (bounded) and returns its statistics.
    pub fn finish(&mut self) -> Stats {
        let deadline = Instant::now() + Duration::from_secs(40);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let csv = std::fs::read_to_string(self.dir.join("stat.csv")).unwrap_or_default();
        parse_stats(&csv).unwrap_or(Stats {
            successful: 0,
            failed: u64::MAX,
        })
    }

    /// Stops SIPp now (a side that should have received nothing).
    pub fn stop(&mut self) -> Stats {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let csv = std::fs::read_to_string(self.dir.join("stat.csv")).unwrap_or_default();
        parse_stats(&csv).unwrap_or(Stats {
            successful: 0,
            failed: 0,
        })
    }

    /// SIPp's error log and the tail of its message trace, for failure messages.
    pub fn diagnostics(&self) -> String {
        let err = std::fs::read_to_string(self.dir.join("err.log")).unwrap_or_default();
        let msgs = std::fs::read_to_string(self.dir.join("msg.log")).unwrap_or_default();
        let start = msgs.len().saturating_sub(4000);
        let tail = msgs.get(start..).unwrap_or("");
        format!(
            "--- sipp {} errors ---\n{err}\n--- sipp {} messages (tail) ---\n{tail}",
            self.name, self.name
        )
    }

    /// The messages SIPp received and sent.
    pub fn messages(&self) -> String {
        std::fs::read_to_string(self.dir.join("msg.log")).unwrap_or_default()
    }
}

/// A test that fails half-way leaves no SIPp behind.
impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
    })
}

/// Asserts a SIPp side completed exactly `calls` calls, with diagnostics from everyone.
pub fn assert_calls(stats: Stats, calls: u64, who: &str, gateway: &Gateway, sides: &[&Sipp]) {
    if stats
        != (Stats {
            successful: calls,
            failed: 0,
        })
    {
        let mut report = format!("{who}: SIPp reports {stats:?}, expected {calls} successful\n");
        for side in sides {
            report.push_str(&side.diagnostics());
            report.push('\n');
        }
        let log = gateway.log();
        let start = log.len().saturating_sub(6000);
        report.push_str("--- gateway log (tail) ---\n");
        report.push_str(log.get(start..).unwrap_or(""));
        panic!("{report}");
    }
}

/// Fraction of a signal's power at `hz` (Goertzel), 0 to 1: how the tests hear a tone.
pub fn tone_ratio(pcm: &[i16], hz: f64, rate: f64) -> f64 {
    let coeff = 2.0 * (2.0 * std::f64::consts::PI * hz / rate).cos();
    let (mut s1, mut s2, mut total) = (0.0f64, 0.0f64, 0.0f64);
    for &x in pcm {
        let x = f64::from(x);
        total += x * x;
        let s0 = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    if total == 0.0 {
        return 0.0;
    }
    2.0 * (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (total * pcm.len() as f64)
}

impl Sipp {
    /// The gateway's media port from the 200 OK this SIPp client received (from its message
    /// log), waiting for it (bounded).
    pub fn answer_port(&self) -> u16 {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let log = self.messages();
            if let Some(answer) = log.find("SIP/2.0 200 OK").map(|i| &log[i..]) {
                if let Some(port) = answer
                    .lines()
                    .find_map(|l| l.strip_prefix("m=audio "))
                    .and_then(|rest| rest.split(' ').next())
                    .and_then(|p| p.parse().ok())
                {
                    return port;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "no 200 OK with SDP reached the client:\n{}",
            self.diagnostics()
        );
    }
}

/// The SSRC of the carrier streams the tests generate.
pub const CARRIER_SSRC: u32 = 0xC11E;

/// One 20 ms PCMU packet of a `hz` tone, as a carrier sends it (timestamp in 8 kHz samples).
pub fn pcmu_tone(sequence: u16, timestamp: u32, hz: f64) -> Vec<u8> {
    use landline_codecs::G711Law;
    use landline_codecs::rtp::RtpHeader;

    let pcm: Vec<i16> = (0..160u32)
        .map(|n| {
            let t = f64::from(timestamp + n) / 8000.0;
            (8000.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16
        })
        .collect();
    let mut packet = vec![0u8; 12 + 160];
    RtpHeader {
        marker: sequence == 0,
        payload_type: 0,
        sequence,
        timestamp,
        ssrc: CARRIER_SSRC,
    }
    .write(&mut packet);
    G711Law::Mu.encode(&pcm, &mut packet[12..]);
    packet
}

/// The media address in the gateway's INVITE to a SIPp carrier (from SIPp's message log), if
/// that INVITE has arrived.
pub fn offered_media(trunk: &Sipp) -> Option<SocketAddr> {
    let log = trunk.messages();
    let invite = &log[log.find("INVITE sip:")?..];
    let ip = invite.lines().find_map(|l| l.strip_prefix("c=IN IP4 "))?;
    let port = invite
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))?
        .split(' ')
        .next()?;
    format!("{}:{}", ip.trim(), port).parse().ok()
}
