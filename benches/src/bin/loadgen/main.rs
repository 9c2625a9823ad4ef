//! Load run of the real gateway: N concurrent transcoded calls over loopback.
//!
//! Starts the release `landline` binary on a generated config (one user, one IP trunk at
//! 127.0.0.2), then plays both ends of N calls itself:
//!
//! - **Signalling** is plain SIP text over UDP, sequential call by call: the client leg is an
//!   INVITE offering only Opus (PT 111, `opus/48000/2`), challenged with a digest 401 and
//!   answered with `landline_sip::auth`; the carrier leg answers the gateway's INVITE with PCMU.
//!   So every call is transcoded Opus⇄PCMU. Doing it here rather than with SIPp means every
//!   call's media addresses on both legs are known exactly, with no log scraping.
//! - **Media** is generated here on two sockets, one per side (127.0.0.1 for every client leg,
//!   127.0.0.2 for every carrier leg): the client side sends the fixture's browser Opus, the
//!   carrier side 20 ms PCMU, each stream every 20 ms in real time, the 2N streams spread evenly
//!   over the 20 ms period (as independent phones would be, rather than in one burst). The
//!   gateway still has its own two sockets per call; only the generator shares its sockets, which
//!   is what lets two blocking threads receive everything with a precise timestamp. A call's
//!   packets are told apart by the gateway port they come from.
//! - **Measurement** over a steady-state window after a warm-up: the gateway's CPU
//!   (`/proc/<pid>/stat`), the machine's (`/proc/stat`) and our own, RSS from idle to N calls,
//!   and per-packet latency and loss in each direction.
//!
//! With `--webrtc`, each call's client leg is a browser's instead: a str0m session per call
//! (ICE, DTLS-SRTP, Opus; see `webrtc.rs`), its SDP offer sent in the same SIP INVITE over UDP,
//! so the gateway answers with its own WebRTC session on a shard's shared WebRTC port. The
//! carrier side is unchanged. Latency client → carrier is then from just before the encrypted
//! datagram's `send_to` (after the client's SRTP), carrier → client to the kernel's receive
//! stamp on the client's socket (before its SRTP), so both still cover only loopback and the
//! gateway. Every received packet is timed by the kernel's stamp (`SO_TIMESTAMPNS`, see
//! `stamp.rs`), not by when a generator thread got a core to read it.
//!
//! Latency matching: the gateway rewrites SSRC, sequence numbers and timestamps, and transcodes,
//! so nothing of ours survives in the packet. It does keep one 20 ms frame out per 20 ms frame
//! in, and its output timestamps advance by exactly one frame per frame. So, per call and
//! direction, the frame index of a received packet is `(timestamp - first timestamp received) /
//! frame ticks`, and frame `j` out is frame `j` we sent. The anchor (first out = first in) holds
//! because media on a call starts only after both legs are answered; a wrong anchor would show
//! as 20 ms or more on the first packet, which the run counts (`anchor?`, must be 0).
//! One thing moves the timeline: when input is late past the pipeline's hold time, the gateway
//! fills a frame on its timer (so the far end keeps getting 20 ms packets) and then shifts its
//! mapping by that frame when the late packet arrives. Output `j` is then input `j - 1`. The
//! matching follows it causally: a packet can never leave before its input was sent, so when
//! one seems to, that call's shift grows by one frame; an output matched to an input already
//! matched is the filled frame, counted apart and not as a latency. Normal latency is far below
//! the 20 ms a wrong shift would add or remove, so a wrong match cannot hide for long.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use landline_benches::Fixtures;
use landline_benches::fixtures::{OPUS_PAYLOAD_TYPE, PTIME};
use landline_sip::auth::{Challenge, Credentials, DigestClient};

mod stamp;
mod webrtc;

use stamp::Clock;

/// The test user's password (the config is generated, so any will do).
const PASSWORD: &str = "load-password";
/// RTP clock ticks per 20 ms frame: Opus runs a 48 kHz clock, G.711 8 kHz.
const OPUS_TICKS: u32 = 960;
const PCMU_TICKS: u32 = 160;
/// Receive buffers: at 200 calls each generator socket takes 10,000 packets a second, and the
/// kernel's default (212,992 B, about 200 datagrams) would drop on one late wake-up of ours.
const RECV_BUFFER: usize = 4 << 20;

/// Options from the command line.
struct Options {
    landline: PathBuf,
    calls: Vec<usize>,
    warmup: Duration,
    window: Duration,
    clk_tck: f64,
    keep: bool,
    webrtc: bool,
    narrowband: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: loadgen --landline PATH [--calls 50,100,200] [--warmup SECS] [--window SECS] \
         [--clk-tck HZ] [--keep] [--webrtc] [--narrowband]\n\
         Starts a fresh gateway for each N, sets up N transcoded calls, measures the window.\n\
         --webrtc: each client leg is a WebRTC session (ICE, DTLS-SRTP) instead of plain RTP.\n\
         --narrowband: clients send narrowband Opus, as Chromium does when our SDP asks for\n\
         maxplaybackrate=8000 (default: the browser's default fullband stream)."
    );
    std::process::exit(2)
}

fn options() -> Options {
    let mut o = Options {
        landline: PathBuf::new(),
        calls: vec![50],
        warmup: Duration::from_secs(5),
        window: Duration::from_secs(20),
        clk_tck: 100.0,
        keep: false,
        webrtc: false,
        narrowband: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--landline" => o.landline = value().into(),
            "--calls" => {
                o.calls = value()
                    .split(',')
                    .map(|n| n.parse().unwrap_or_else(|_| usage()))
                    .collect()
            }
            "--warmup" => {
                o.warmup = Duration::from_secs(value().parse().unwrap_or_else(|_| usage()))
            }
            "--window" => {
                o.window = Duration::from_secs(value().parse().unwrap_or_else(|_| usage()))
            }
            "--clk-tck" => o.clk_tck = value().parse().unwrap_or_else(|_| usage()),
            "--keep" => o.keep = true,
            "--webrtc" => o.webrtc = true,
            "--narrowband" => o.narrowband = true,
            _ => usage(),
        }
    }
    if o.landline.as_os_str().is_empty() || o.calls.iter().any(|&n| n == 0 || n > 2000) {
        usage();
    }
    o
}

/// The fixtures the run's clients send: the browser's default stream, or its narrowband one.
static RUN_FIXTURES: std::sync::OnceLock<Fixtures> = std::sync::OnceLock::new();

fn run_fixtures() -> &'static Fixtures {
    RUN_FIXTURES.get().unwrap_or_else(|| Fixtures::get())
}

fn main() {
    let o = options();
    // Built before any gateway runs (about a second of CPU), so no window pays for it.
    let mut fixtures = Fixtures::get().clone();
    if o.narrowband {
        fixtures.client_rtp = fixtures.client_rtp_narrowband.clone();
    }
    let _ = RUN_FIXTURES.set(fixtures);
    println!(
        "| N | setup s | gateway CPU % of a core per call | µs per call per 20 ms | machine busy % (all cores) | loadgen % of a core | client→carrier sent/recv/lost | carrier→client sent/recv/lost | latency c→t p50/p99/max ms | latency t→c p50/p99/max ms | anchor? | RSS idle→N MiB | KiB per call |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---|---|---|---|---:|---|---:|");
    for &n in &o.calls {
        match run(&o, n) {
            Ok(row) => println!("{row}"),
            Err(e) => {
                println!("| {n} | run failed: {e} |");
                std::process::exit(1);
            }
        }
    }
}

/// A free UDP port on `ip` (picked by the kernel).
fn free_port(ip: [u8; 4]) -> u16 {
    UdpSocket::bind(SocketAddr::from((ip, 0)))
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The gateway process; killed on drop, so no run leaves one behind.
struct Gateway {
    child: Child,
    rtp: (u16, u16),
    sip: SocketAddr,
    metrics: SocketAddr,
    dir: PathBuf,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    fn start(landline: &Path, trunk: SocketAddr, calls: usize) -> Result<Gateway, String> {
        let sip_port = free_port([127, 0, 0, 1]);
        let metrics_port = free_port([127, 0, 0, 1]);
        let dir =
            std::env::temp_dir().join(format!("landline-load-{}-{calls}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        // Two even ports per call (client and trunk leg); leave room. Below Linux's ephemeral
        // range (32768–60999), where the kernel picks the free SIP and HTTP ports above: a SIP
        // port inside the RTP range is a config error.
        let rtp_min = 20_000;
        let rtp_max = rtp_min + (calls as u32 * 8).max(400) as u16 - 1;
        let config = format!(
            r#"
[sip]
udp = "127.0.0.1:{sip_port}"
tcp = "127.0.0.1:{sip_port}"
domain = "landline.test"
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
rtp_timeout = "60s"
[cdr]
path = "{cdr}"
[log]
level = "info"
[[users]]
username = "alice"
password = "{PASSWORD}"
dids = ["+15551230001"]
country = "1"

[[trunks]]
name = "carrier"
kind = "ip"
address = "{trunk}"
codecs = ["pcmu", "pcma"]
probe_interval = "0s"

[[routes]]
prefix = ""
trunks = ["carrier"]
"#,
            http = free_port([127, 0, 0, 1]),
            https = free_port([127, 0, 0, 1]),
            cdr = dir.join("cdr.jsonl").display(),
        );
        let path = dir.join("landline.toml");
        std::fs::write(&path, config).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(dir.join("landline.log")).map_err(|e| e.to_string())?;
        let child = Command::new(landline)
            .args(["run", "--config"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", landline.display()))?;
        let gateway = Gateway {
            child,
            rtp: (rtp_min, rtp_max),
            sip: SocketAddr::from(([127, 0, 0, 1], sip_port)),
            metrics: SocketAddr::from(([127, 0, 0, 1], metrics_port)),
            dir,
        };
        gateway.wait_ready()?;
        Ok(gateway)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the gateway answers an OPTIONS.
    fn wait_ready(&self) -> Result<(), String> {
        let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .map_err(|e| e.to_string())?;
        let local = socket.local_addr().map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut attempt = 0;
        while Instant::now() < deadline {
            attempt += 1;
            let options = format!(
                "OPTIONS sip:{0} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKready{attempt}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:probe@{local}>;tag=p\r\nTo: <sip:{0}>\r\n\
                 Call-ID: ready-{attempt}@load\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
                self.sip
            );
            let _ = socket.send_to(options.as_bytes(), self.sip);
            let mut buf = [0u8; 2048];
            if let Ok((n, _)) = socket.recv_from(&mut buf) {
                if buf[..n].starts_with(b"SIP/2.0 200") {
                    return Ok(());
                }
            }
        }
        let log = std::fs::read_to_string(self.dir.join("landline.log")).unwrap_or_default();
        Err(format!(
            "gateway not ready after 20 s; log in {}: {}",
            self.dir.display(),
            log.lines().take(3).collect::<Vec<_>>().join(" / ")
        ))
    }

    /// Lines of the gateway's log that say something went wrong.
    fn problems(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("landline.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("panic"))
            .map(str::to_owned)
            .collect()
    }
}

/// A plain HTTP GET (the metrics endpoint), empty on any failure.
fn http_get(addr: SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: load\r\nConnection: close\r\n\r\n"
    );
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body);
    body
}

// ---------------------------------------------------------------------------------------------
// /proc readings

/// utime + stime of a process, in clock ticks (`/proc/<pid>/stat` fields 14 and 15).
fn cpu_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may contain spaces; fields are counted after its closing parenthesis.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // After ')' the first field is the state (field 3), so field 14 is index 11.
    field(11) + field(12)
}

/// Resident set size of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Idle jiffies of the whole machine (idle + iowait, `/proc/stat`), and steal: time the
/// hypervisor gave our virtual CPUs' cores to someone else. Only idle time is read:
/// on this VM the tick-sampled user and system fields lag far behind what processes were
/// charged (they showed 6 % busy while the gateway alone used 20 % of the machine), whereas idle
/// time is accounted exactly by the tickless kernel.
fn machine_idle_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let values: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    (idle, values.get(7).copied().unwrap_or(0))
}

/// CPU ticks of each thread of a process, by thread name (summed over threads of one name),
/// and the nanoseconds it spent runnable but waiting for a core (`schedstat`'s second field):
/// whether a thread that falls behind lacked work time or a core.
fn thread_ticks(pid: u32) -> Vec<(String, u64, u64)> {
    let mut out: Vec<(String, u64, u64)> = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let tid = task.file_name().to_string_lossy().into_owned();
        let stat =
            std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).unwrap_or_default();
        let name = match (stat.find('('), stat.rfind(')')) {
            (Some(a), Some(b)) if a < b => stat[a + 1..b].to_owned(),
            _ => continue,
        };
        let ticks = cpu_ticks(&format!("{pid}/task/{tid}"));
        let waited = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0);
        match out.iter_mut().find(|(n, _, _)| *n == name) {
            Some((_, t, w)) => {
                *t += ticks;
                *w += waited;
            }
            None => out.push((name, ticks, waited)),
        }
    }
    out
}

/// Bytes waiting in UDP receive queues (`/proc/net/udp`), in the gateway's RTP range and in
/// the generator's two media sockets: where a backlog builds when latency grows.
fn udp_backlog(rtp: (u16, u16), ours: [u16; 2]) -> (u64, u64) {
    let table = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    let (mut gateway, mut us) = (0, 0);
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(queues)) = (fields.get(1), fields.get(4)) else {
            continue;
        };
        let port = local
            .rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok());
        let rx = queues
            .rsplit(':')
            .next()
            .and_then(|q| u64::from_str_radix(q, 16).ok())
            .unwrap_or(0);
        match port {
            Some(p) if (rtp.0..=rtp.1).contains(&p) => gateway += rx,
            Some(p) if ours.contains(&p) => us += rx,
            _ => {}
        }
    }
    (gateway, us)
}

/// Everything read at one instant, so a window is the difference of two.
struct Sample {
    at: Instant,
    gateway: u64,
    us: u64,
    idle: (u64, u64),
    threads: Vec<(String, u64, u64)>,
}

fn sample(pid: u32) -> Sample {
    Sample {
        at: Instant::now(),
        gateway: cpu_ticks(&pid.to_string()),
        us: cpu_ticks("self"),
        idle: machine_idle_ticks(),
        threads: thread_ticks(pid),
    }
}

// ---------------------------------------------------------------------------------------------
// SIP: just enough text for one INVITE dialog per call on each side

/// A received SIP message, split into start line, headers and body.
struct Message<'a> {
    start: &'a str,
    headers: Vec<(&'a str, &'a str)>,
    body: &'a str,
}

impl<'a> Message<'a> {
    fn parse(text: &'a str) -> Option<Message<'a>> {
        let (head, body) = text.split_once("\r\n\r\n")?;
        let mut lines = head.split("\r\n");
        let start = lines.next()?;
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim(), v.trim()))
            .collect();
        Some(Message {
            start,
            headers,
            body,
        })
    }

    /// A header's first value; `compact` is its one-letter form (RFC 3261 §7.3.3).
    fn header(&self, name: &str, compact: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name) || n.eq_ignore_ascii_case(compact))
            .map(|(_, v)| *v)
    }

    fn all(&self, name: &str, compact: &str) -> Vec<&'a str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name) || n.eq_ignore_ascii_case(compact))
            .map(|(_, v)| *v)
            .collect()
    }

    /// The status code of a response.
    fn status(&self) -> Option<u16> {
        self.start.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
    }

    /// The method of a request.
    fn method(&self) -> Option<&'a str> {
        (!self.start.starts_with("SIP/2.0")).then(|| self.start.split(' ').next())?
    }

    /// The media address of the SDP body's audio stream.
    fn sdp_media(&self) -> Option<(SocketAddr, String)> {
        let ip = self
            .body
            .lines()
            .find_map(|l| l.trim().strip_prefix("c=IN IP4 "))?
            .trim();
        let m = self
            .body
            .lines()
            .find_map(|l| l.trim().strip_prefix("m=audio "))?;
        let port = m.split(' ').next()?.parse().ok()?;
        let formats = m.splitn(3, ' ').nth(2).unwrap_or("").to_owned();
        Some((SocketAddr::new(ip.parse().ok()?, port), formats))
    }
}

/// The URI inside a `Contact:` value.
fn contact_uri(value: &str) -> &str {
    match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if a < b => &value[a + 1..b],
        _ => value.split(';').next().unwrap_or(value),
    }
}

/// One client call as the client side sees it after setup.
struct ClientCall {
    call_id: String,
    from_tag: String,
    to: String,
    remote_target: String,
    /// Where the gateway wants this call's client-leg media.
    gateway_media: SocketAddr,
    /// The SDP answer (for a WebRTC offer, the gateway's session's).
    answer: String,
}

/// The client side of SIP: INVITEs with Opus only, digest-authenticated.
struct Client {
    socket: UdpSocket,
    local: SocketAddr,
    gateway: SocketAddr,
    media: SocketAddr,
    branch: u64,
}

impl Client {
    fn branch(&mut self) -> String {
        self.branch += 1;
        format!("z9hG4bKload{}x{}", std::process::id(), self.branch)
    }

    fn sdp(&self, version: u32) -> String {
        format!(
            "v=0\r\no=alice 1 {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP {OPUS_PAYLOAD_TYPE}\r\n\
             a=rtpmap:{OPUS_PAYLOAD_TYPE} opus/48000/2\r\n\
             a=fmtp:{OPUS_PAYLOAD_TYPE} minptime=10;useinbandfec=1\r\na=ptime:20\r\na=sendrecv\r\n",
            ip = self.media.ip(),
            port = self.media.port(),
        )
    }

    /// Waits for a response to `call_id` with CSeq `cseq`; answers stray retransmissions.
    fn response(&self, call_id: &str, cseq: &str, buf: &mut [u8]) -> Result<(u16, String), String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let Ok((n, _)) = self.socket.recv_from(buf) else {
                continue;
            };
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let Some(m) = Message::parse(&text) else {
                continue;
            };
            if m.header("Call-ID", "i") != Some(call_id) || m.header("CSeq", "") != Some(cseq) {
                continue;
            }
            if let Some(status) = m.status() {
                return Ok((status, text));
            }
        }
        Err(format!("no response to {cseq} of {call_id} within 5 s"))
    }

    fn send(&self, text: &str) -> Result<(), String> {
        self.socket
            .send_to(text.as_bytes(), self.gateway)
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// Sets up call `i` to a distinct number, so the carrier side can tell which call an
    /// INVITE belongs to.
    /// `offer` replaces the plain RTP offer (a WebRTC session's).
    fn call(
        &mut self,
        i: usize,
        offer: Option<&str>,
        buf: &mut [u8],
    ) -> Result<ClientCall, String> {
        let number = format!("+1555200{i:04}");
        let uri = format!("sip:{number}@{}", self.gateway);
        let call_id = format!("load-{i}-{}@127.0.0.1", std::process::id());
        let from_tag = format!("c{i}");
        let from = format!("<sip:alice@landline.test>;tag={from_tag}");
        let to = format!("<{uri}>");
        let local = self.local;
        let sdp = offer.map_or_else(|| self.sdp(1), str::to_owned);
        let invite = |branch: &str, cseq: u32, auth: &str| {
            format!(
                "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch}\r\n\
                 Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
                 CSeq: {cseq} INVITE\r\nContact: <sip:alice@{local}>\r\n{auth}\
                 Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                sdp.len()
            )
        };
        let branch = self.branch();
        self.send(&invite(&branch, 1, ""))?;
        let (status, text) = loop {
            let (status, text) = self.response(&call_id, "1 INVITE", buf)?;
            if status >= 200 {
                break (status, text);
            }
        };
        if status != 401 {
            return Err(format!("call {i}: first INVITE got {status}, not 401"));
        }
        let challenge = {
            let m = Message::parse(&text).ok_or("unparsable 401")?;
            let to_401 = m.header("To", "t").ok_or("401 without To")?.to_owned();
            self.send(&format!(
                "ACK {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch}\r\n\
                 Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to_401}\r\nCall-ID: {call_id}\r\n\
                 CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
            ))?;
            Challenge::best(m.all("WWW-Authenticate", "").into_iter())
                .ok_or("401 without a usable challenge")?
        };
        let credentials = Credentials {
            username: "alice".into(),
            password: PASSWORD.into(),
        };
        let authorization =
            DigestClient::new(challenge, 0x5eed ^ i as u64).authorize(&credentials, "INVITE", &uri);
        let branch = self.branch();
        self.send(&invite(
            &branch,
            2,
            &format!("Authorization: {authorization}\r\n"),
        ))?;
        let (status, text) = loop {
            let (status, text) = self.response(&call_id, "2 INVITE", buf)?;
            if status >= 200 {
                break (status, text);
            }
        };
        let m = Message::parse(&text).ok_or("unparsable final response")?;
        if status != 200 {
            return Err(format!("call {i}: authenticated INVITE got {}", m.start));
        }
        let to = m.header("To", "t").ok_or("200 without To")?.to_owned();
        let remote_target =
            contact_uri(m.header("Contact", "m").ok_or("200 without Contact")?).to_owned();
        let (gateway_media, formats) = m.sdp_media().ok_or("200 without SDP")?;
        if formats.split(' ').next() != Some(&OPUS_PAYLOAD_TYPE.to_string()) {
            return Err(format!(
                "call {i}: gateway answered formats {formats}, not Opus"
            ));
        }
        let branch = self.branch();
        self.send(&format!(
            "ACK {remote_target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch}\r\n\
             Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
             CSeq: 2 ACK\r\nContent-Length: 0\r\n\r\n"
        ))?;
        Ok(ClientCall {
            call_id,
            from_tag,
            to,
            remote_target,
            gateway_media,
            answer: m.body.to_owned(),
        })
    }

    /// Hangs up every call, one after another as the calls were set up, and counts the 200s
    /// to the BYEs. A BYE is retransmitted every 500 ms (up to 4 times) as RFC 3261's timer E
    /// would: sent all at once without retransmission, some of 200 BYEs were lost in a socket
    /// buffer and the count said nothing about the gateway.
    fn hang_up(&mut self, calls: &[ClientCall], buf: &mut [u8]) -> usize {
        let local = self.local;
        let mut ok = 0;
        for call in calls {
            let branch = self.branch();
            let bye = format!(
                "BYE {} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:alice@landline.test>;tag={}\r\nTo: {}\r\n\
                 Call-ID: {}\r\nCSeq: 3 BYE\r\nContent-Length: 0\r\n\r\n",
                call.remote_target, call.from_tag, call.to, call.call_id
            );
            'attempts: for _ in 0..5 {
                let _ = self.send(&bye);
                let deadline = Instant::now() + Duration::from_millis(500);
                while Instant::now() < deadline {
                    let Ok((n, _)) = self.socket.recv_from(buf) else {
                        continue;
                    };
                    let text = String::from_utf8_lossy(&buf[..n]);
                    let Some(m) = Message::parse(&text) else {
                        continue;
                    };
                    if m.status() == Some(200)
                        && m.header("CSeq", "") == Some("3 BYE")
                        && m.header("Call-ID", "i") == Some(call.call_id.as_str())
                    {
                        ok += 1;
                        break 'attempts;
                    }
                }
            }
        }
        ok
    }
}

/// What the carrier side learnt: for each call, where the gateway sends its trunk-leg media.
#[derive(Default)]
struct CarrierLog {
    media: HashMap<usize, SocketAddr>,
    invites: usize,
    byes: usize,
    other: Vec<String>,
}

/// The carrier: answers every INVITE with 200 OK and PCMU at `media`, and every BYE with 200.
fn carrier(
    socket: UdpSocket,
    media: SocketAddr,
    stop: Arc<AtomicBool>,
    log: Arc<std::sync::Mutex<CarrierLog>>,
) {
    let local = socket.local_addr().expect("carrier address");
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let Some(m) = Message::parse(&text) else {
            continue;
        };
        let Some(method) = m.method() else {
            continue;
        };
        let echo: String = ["Via", "From", "Call-ID", "CSeq", "Record-Route"]
            .iter()
            .flat_map(|h| {
                let compact = match *h {
                    "Via" => "v",
                    "From" => "f",
                    "Call-ID" => "i",
                    _ => "",
                };
                m.all(h, compact)
                    .into_iter()
                    .map(move |v| format!("{h}: {v}\r\n"))
            })
            .collect();
        let to = m.header("To", "t").unwrap_or("");
        let reply = match method {
            "INVITE" => {
                // The call index is the last four digits of the dialled number.
                let user = m.start.split(' ').nth(1).unwrap_or("");
                let digits: String = user
                    .split('@')
                    .next()
                    .unwrap_or("")
                    .chars()
                    .filter(char::is_ascii_digit)
                    .collect();
                let index = digits
                    .get(digits.len().saturating_sub(4)..)
                    .and_then(|d| d.parse::<usize>().ok());
                let mut log = log.lock().expect("carrier log");
                log.invites += 1;
                match (index, m.sdp_media()) {
                    (Some(index), Some((gateway_media, _))) => {
                        log.media.insert(index, gateway_media);
                    }
                    _ => log
                        .other
                        .push(format!("INVITE not understood: {}", m.start)),
                }
                let sdp = format!(
                    "v=0\r\no=carrier 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
                     m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\n",
                    ip = media.ip(),
                    port = media.port()
                );
                let tag = if to.contains("tag=") {
                    String::new()
                } else {
                    format!(";tag=k{}", index.unwrap_or(9999))
                };
                format!(
                    "SIP/2.0 200 OK\r\n{echo}To: {to}{tag}\r\nContact: <sip:carrier@{local}>\r\n\
                     Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                    sdp.len()
                )
            }
            "ACK" => continue,
            other => {
                let mut log = log.lock().expect("carrier log");
                if other == "BYE" {
                    log.byes += 1;
                } else {
                    log.other.push(m.start.to_owned());
                }
                format!("SIP/2.0 200 OK\r\n{echo}To: {to}\r\nContent-Length: 0\r\n\r\n")
            }
        };
        let _ = socket.send_to(reply.as_bytes(), from);
    }
}

// ---------------------------------------------------------------------------------------------
// Media

/// A packet as received: which call, its RTP timestamp and payload type, when (ns since the
/// media started).
#[derive(Clone, Copy)]
struct Received {
    call: u32,
    timestamp: u32,
    payload_type: u8,
    at: u64,
}

/// Receives on one generator socket until `stop`, telling calls apart by the gateway port the
/// packet comes from; a packet's arrival is the kernel's stamp (see `stamp.rs`).
fn receive(
    socket: UdpSocket,
    calls_by_port: Vec<u32>,
    clock: Clock,
    stop: Arc<AtomicBool>,
) -> (Vec<Received>, u64) {
    let mut out = Vec::with_capacity(1 << 20);
    let mut strays = 0;
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, from, stamp)) = stamp::recv(&socket, &mut buf) else {
            continue;
        };
        let at = clock.at(stamp);
        let call = calls_by_port[usize::from(from.port())];
        if n < 12 || call == u32::MAX {
            strays += 1;
            continue;
        }
        out.push(Received {
            call,
            timestamp: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
            payload_type: buf[1] & 0x7F,
            at,
        });
    }
    (out, strays)
}

/// One generated stream: a call's leg, its destination and its fixture.
struct Stream {
    call: usize,
    carrier_side: bool,
    to: SocketAddr,
}

/// Sends every stream every 20 ms until `until`, spread evenly over the period; returns each
/// stream's send times (ns since `start`), indexed by frame, and how late each send was against
/// its schedule (ns, sorted): the generator's own contribution to jitter.
fn send(
    client: Option<UdpSocket>,
    carrier: UdpSocket,
    streams: Vec<Stream>,
    fixtures: &Fixtures,
    start: Instant,
    until: Duration,
) -> (Vec<Vec<u64>>, Vec<u64>) {
    let n = streams.len() as u64;
    let period = PTIME.as_nanos() as u64;
    let phase = |s: u64| s * period / n;
    let mut times: Vec<Vec<u64>> = streams
        .iter()
        .map(|_| Vec::with_capacity((until.as_millis() / 20 + 1) as usize))
        .collect();
    let mut lateness = Vec::with_capacity(times.len() * times[0].capacity());
    let mut buf = [0u8; 2048];
    let end = until.as_nanos() as u64;
    // The next send in schedule order: frame `frame` of stream `s`.
    let (mut frame, mut s) = (0u64, 0u64);
    loop {
        let due = frame * period + phase(s);
        if due >= end {
            break;
        }
        let now = start.elapsed().as_nanos() as u64;
        if due > now {
            thread::sleep(Duration::from_nanos(due - now));
        }
        let stream = &streams[s as usize];
        let (packets, ticks, socket) = match (stream.carrier_side, &client) {
            (true, _) => (&fixtures.trunk_rtp, PCMU_TICKS, &carrier),
            (false, Some(client)) => (&fixtures.client_rtp, OPUS_TICKS, client),
            // Without a client socket the client legs are WebRTC sessions, sent elsewhere.
            (false, None) => {
                s += 1;
                if s == n {
                    s = 0;
                    frame += 1;
                }
                continue;
            }
        };
        let packet = &packets[frame as usize % packets.len()];
        let len = packet.len();
        buf[..len].copy_from_slice(packet);
        if frame > 0 {
            buf[1] &= 0x7F;
        }
        buf[2..4].copy_from_slice(&(frame as u16).to_be_bytes());
        buf[4..8].copy_from_slice(&((frame as u32).wrapping_mul(ticks)).to_be_bytes());
        buf[8..12].copy_from_slice(&(0x10_0000 + s as u32).to_be_bytes());
        let at = start.elapsed().as_nanos() as u64;
        times[s as usize].push(at);
        lateness.push(at.saturating_sub(due));
        let _ = socket.send_to(&buf[..len], stream.to);
        s += 1;
        if s == n {
            s = 0;
            frame += 1;
        }
    }
    lateness.sort_unstable();
    (times, lateness)
}

/// Loss and latency of one direction over the window.
#[derive(Default)]
struct Direction {
    sent: usize,
    received: usize,
    lost: usize,
    wrong_payload_type: usize,
    latencies: Vec<u64>,
    bad_anchor: usize,
    /// Packets that arrived before the frame they were matched to was sent (must be 0: the
    /// matching moves on a frame whenever that happens, see [`direction`]).
    early: usize,
    /// Times the matching moved a call's output timeline one frame ahead of its input.
    shifts: usize,
    /// Output packets matched to an input already matched: frames the gateway's timer filled.
    filled: usize,
}

/// Matches what arrived to what was sent: per call, frame `(ts - first ts) / ticks` out is
/// frame `j` in (see the module's documentation).
fn direction(
    sent: &[&Vec<u64>],
    received: &[Received],
    ticks: u32,
    payload_type: u8,
    window: (u64, u64),
) -> Direction {
    let mut d = Direction::default();
    let mut first: Vec<Option<u32>> = vec![None; sent.len()];
    let mut shift = vec![0usize; sent.len()];
    let mut got: Vec<Vec<bool>> = sent.iter().map(|t| vec![false; t.len()]).collect();
    for r in received {
        if r.payload_type != payload_type {
            d.wrong_payload_type += 1;
            continue;
        }
        let call = r.call as usize;
        let first_ts = *first[call].get_or_insert(r.timestamp);
        let out_frame = (r.timestamp.wrapping_sub(first_ts) / ticks) as usize;
        // A packet cannot leave before its input was sent: if it seems to, the gateway has
        // filled a frame on its timer since (input late) and its timeline now runs ahead of
        // ours by one more frame.
        let frame = loop {
            let frame = out_frame.wrapping_sub(shift[call]);
            match sent[call].get(frame) {
                Some(&at) if r.at < at && shift[call] < out_frame => {
                    shift[call] += 1;
                    d.shifts += 1;
                }
                _ => break frame,
            }
        };
        let Some(&sent_at) = sent[call].get(frame) else {
            continue;
        };
        if frame == 0 && r.at.saturating_sub(sent_at) >= PTIME.as_nanos() as u64 {
            d.bad_anchor += 1;
        }
        if std::mem::replace(&mut got[call][frame], true) {
            // The frame the timer filled; its input's own packet came (or comes) separately.
            d.filled += 1;
            continue;
        }
        if (window.0..window.1).contains(&sent_at) {
            d.received += 1;
            d.early += usize::from(r.at < sent_at);
            d.latencies.push(r.at.saturating_sub(sent_at));
        }
    }
    for (call, times) in sent.iter().enumerate() {
        for (frame, &at) in times.iter().enumerate() {
            if (window.0..window.1).contains(&at) {
                d.sent += 1;
                if !got[call][frame] {
                    d.lost += 1;
                }
            }
        }
    }
    d.latencies.sort_unstable();
    d
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1e6
}

fn media_socket(ip: [u8; 4]) -> Result<UdpSocket, String> {
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .map_err(|e| e.to_string())?;
    socket
        .set_recv_buffer_size(RECV_BUFFER)
        .map_err(|e| e.to_string())?;
    socket
        .bind(&SocketAddr::from((ip, 0)).into())
        .map_err(|e| e.to_string())?;
    let socket: UdpSocket = socket.into();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(|e| e.to_string())?;
    stamp::enable(&socket).map_err(|e| format!("SO_TIMESTAMPNS: {e}"))?;
    Ok(socket)
}

/// One load run at `n` calls on a fresh gateway; returns its table row.
fn run(o: &Options, n: usize) -> Result<String, String> {
    let carrier_sip = UdpSocket::bind("127.0.0.2:0").map_err(|e| e.to_string())?;
    carrier_sip
        .set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(|e| e.to_string())?;
    let trunk = carrier_sip.local_addr().map_err(|e| e.to_string())?;
    let gateway = Gateway::start(&o.landline, trunk, n)?;
    let pid = gateway.pid();
    thread::sleep(Duration::from_secs(1));
    let rss_idle = rss_kib(pid);

    let carrier_media = media_socket([127, 0, 0, 2])?;
    let trunk_media_port = carrier_media
        .local_addr()
        .map_err(|e| e.to_string())?
        .port();
    let client_media = media_socket([127, 0, 0, 1])?;
    let stop_sip = Arc::new(AtomicBool::new(false));
    let carrier_log = Arc::new(std::sync::Mutex::new(CarrierLog::default()));
    let carrier_thread = {
        let media = carrier_media.local_addr().map_err(|e| e.to_string())?;
        let (stop, log) = (stop_sip.clone(), carrier_log.clone());
        thread::spawn(move || carrier(carrier_sip, media, stop, log))
    };
    let client_sip = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    client_sip
        .set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(|e| e.to_string())?;
    let mut client = Client {
        local: client_sip.local_addr().map_err(|e| e.to_string())?,
        socket: client_sip,
        gateway: gateway.sip,
        media: client_media.local_addr().map_err(|e| e.to_string())?,
        branch: 0,
    };

    // Browser legs (`--webrtc`): a session and its offer per call, before any signalling.
    let mut web_clients = Vec::new();
    let mut offers = Vec::new();
    if o.webrtc {
        let cert = webrtc::certificate()?;
        for _ in 0..n {
            let (web, offer) = webrtc::WebClient::offer(&cert)?;
            web_clients.push(web);
            offers.push(offer);
        }
    }

    // Signalling: one call after another.
    let setup_start = Instant::now();
    let mut buf = vec![0u8; 65_536];
    let mut calls = Vec::with_capacity(n);
    let mut opus_pt = OPUS_PAYLOAD_TYPE;
    for i in 0..n {
        let call = client.call(i, offers.get(i).map(String::as_str), &mut buf)?;
        if let Some(web) = web_clients.get_mut(i) {
            opus_pt = web
                .accept_answer(&call.answer)
                .map_err(|e| format!("call {i}: the gateway's WebRTC answer: {e}"))?;
        }
        calls.push(call);
    }
    // ICE and DTLS of every browser leg, then the media start, from the sessions' thread.
    let length = o.warmup + o.window + Duration::from_millis(500);
    let progress = Arc::new(webrtc::Progress {
        connected: Default::default(),
        abort: AtomicBool::new(false),
    });
    let (web_thread, web_start) = if o.webrtc {
        let (started, start) = std::sync::mpsc::channel();
        let thread_progress = progress.clone();
        let clients = std::mem::take(&mut web_clients);
        let thread = thread::spawn(move || {
            webrtc::run(
                clients,
                run_fixtures(),
                Duration::from_secs(30),
                length,
                thread_progress,
                started,
            )
        });
        match start.recv_timeout(Duration::from_secs(40)) {
            Ok(start) => (Some(thread), Some(start)),
            Err(_) => {
                progress.abort.store(true, Ordering::Relaxed);
                let error = thread
                    .join()
                    .map_err(|_| "the WebRTC client thread panicked")?
                    .err()
                    .unwrap_or_default();
                return Err(format!(
                    "WebRTC sessions did not connect ({} of {n} did): {error}",
                    progress.connected.load(Ordering::Relaxed)
                ));
            }
        }
    } else {
        (None, None)
    };
    let setup = setup_start.elapsed();
    let trunk_media: Vec<SocketAddr> = {
        let log = carrier_log.lock().expect("carrier log");
        (0..n)
            .map(|i| {
                log.media
                    .get(&i)
                    .copied()
                    .ok_or(format!("call {i} never reached the carrier"))
            })
            .collect::<Result<_, _>>()?
    };

    // Media: both legs of every call, from now on.
    let mut client_ports = vec![u32::MAX; 65_536];
    let mut carrier_ports = vec![u32::MAX; 65_536];
    for (i, call) in calls.iter().enumerate() {
        client_ports[usize::from(call.gateway_media.port())] = i as u32;
        carrier_ports[usize::from(trunk_media[i].port())] = i as u32;
    }
    let streams: Vec<Stream> = (0..n)
        .flat_map(|i| {
            [
                Stream {
                    call: i,
                    carrier_side: false,
                    to: calls[i].gateway_media,
                },
                Stream {
                    call: i,
                    carrier_side: true,
                    to: trunk_media[i],
                },
            ]
        })
        .collect();
    let sides: Vec<bool> = streams.iter().map(|s| s.carrier_side).collect();
    debug_assert!(streams.iter().enumerate().all(|(s, st)| st.call == s / 2));
    let start = web_start.unwrap_or_else(Instant::now);
    let stop_media = Arc::new(AtomicBool::new(false));
    let receivers = [
        (client_media.try_clone(), client_ports),
        (carrier_media.try_clone(), carrier_ports),
    ]
    .map(|(socket, ports)| {
        let stop = stop_media.clone();
        let socket = socket.expect("socket clone");
        thread::spawn(move || receive(socket, ports, Clock::new(start), stop))
    });
    let plain_client = (!o.webrtc).then_some(client_media);
    let sender = thread::spawn(move || {
        send(
            plain_client,
            carrier_media,
            streams,
            run_fixtures(),
            start,
            length,
        )
    });

    let ours = [client.media.port(), trunk_media_port];
    thread::sleep((start + o.warmup).saturating_duration_since(Instant::now()));
    let before = sample(pid);
    // The receive backlogs, sampled every 100 ms over the window: (max, sum) for each side.
    let mut backlog = [(0u64, 0u64); 2];
    let mut backlog_samples = 0u64;
    while before.at.elapsed() < o.window {
        thread::sleep(Duration::from_millis(100));
        let (g, u) = udp_backlog(gateway.rtp, ours);
        for (b, v) in backlog.iter_mut().zip([g, u]) {
            b.0 = b.0.max(v);
            b.1 += v;
        }
        backlog_samples += 1;
    }
    let after = sample(pid);
    let rss_loaded = rss_kib(pid);
    let shard_metrics: Vec<String> = http_get(gateway.metrics, "/metrics")
        .lines()
        .filter(|l| l.starts_with("landline_shard_"))
        .map(str::to_owned)
        .collect();
    let (mut sent, lateness) = sender.join().map_err(|_| "sender panicked")?;
    thread::sleep(Duration::from_millis(300));
    stop_media.store(true, Ordering::Relaxed);
    let [mut to_client, to_carrier] = receivers.map(|r| r.join().expect("receiver panicked"));
    // With browser legs, the client side's sends and receptions are the sessions' thread's.
    let mut web_note = String::new();
    if let Some(thread) = web_thread {
        let measured = thread
            .join()
            .map_err(|_| "the WebRTC client thread panicked")??;
        for (call, times) in measured.sent.into_iter().enumerate() {
            sent[2 * call] = times;
        }
        to_client.0 = measured.received;
        web_note = format!(
            "  WebRTC client legs: {} sessions connected; their sends late p50/p99/max {:.3}/{:.3}/{:.3} ms (one thread: SRTP of every call's both directions)\n",
            measured.connected,
            percentile(&measured.lateness, 0.5),
            percentile(&measured.lateness, 0.99),
            percentile(&measured.lateness, 1.0),
        );
    }

    let hung_up = client.hang_up(&calls, &mut buf);
    thread::sleep(Duration::from_millis(300));
    stop_sip.store(true, Ordering::Relaxed);
    let _ = carrier_thread.join();
    let carrier_log = std::mem::take(&mut *carrier_log.lock().expect("carrier log"));
    let problems = gateway.problems();
    if !o.keep {
        drop(gateway);
    }

    // The figures.
    let window = (
        before.at.duration_since(start).as_nanos() as u64,
        after.at.duration_since(start).as_nanos() as u64,
    );
    let client_sent: Vec<&Vec<u64>> = sent
        .iter()
        .zip(&sides)
        .filter(|(_, c)| !**c)
        .map(|(t, _)| t)
        .collect();
    let carrier_sent: Vec<&Vec<u64>> = sent
        .iter()
        .zip(&sides)
        .filter(|(_, c)| **c)
        .map(|(t, _)| t)
        .collect();
    let up = direction(&client_sent, &to_carrier.0, PCMU_TICKS, 0, window);
    let down = direction(&carrier_sent, &to_client.0, OPUS_TICKS, opus_pt, window);
    let wall = after.at.duration_since(before.at).as_secs_f64();
    let gateway_cpu = (after.gateway - before.gateway) as f64 / o.clk_tck;
    let our_cpu = (after.us - before.us) as f64 / o.clk_tck;
    let per_call_core = gateway_cpu / wall / n as f64 * 100.0;
    let us_per_call_frame = gateway_cpu / (wall / PTIME.as_secs_f64()) / n as f64 * 1e6;
    let cores = thread::available_parallelism().map_or(1, |c| c.get()) as f64;
    let busy = (1.0 - (after.idle.0 - before.idle.0) as f64 / o.clk_tck / (wall * cores)) * 100.0;
    let steal = (after.idle.1 - before.idle.1) as f64 / o.clk_tck / (wall * cores) * 100.0;
    let threads: Vec<String> = after
        .threads
        .iter()
        .filter_map(|(name, t, w)| {
            let (t0, w0) = before
                .threads
                .iter()
                .find(|(n, _, _)| n == name)
                .map_or((0, 0), |(_, t, w)| (*t, *w));
            let share = (t - t0) as f64 / o.clk_tck / wall * 100.0;
            let waiting = w.saturating_sub(w0) as f64 / 1e9 / wall * 100.0;
            (share >= 0.5)
                .then(|| format!("{name} {share:.1} % (waited for a core {waiting:.1} %)"))
        })
        .collect();
    let lat = |d: &Direction| {
        format!(
            "{:.3} / {:.3} / {:.3}",
            percentile(&d.latencies, 0.5),
            percentile(&d.latencies, 0.99),
            percentile(&d.latencies, 1.0)
        )
    };
    let row = format!(
        "| {n} | {:.1} | {per_call_core:.3} | {us_per_call_frame:.1} | {busy:.0} | {:.0} | {} / {} / {} | {} / {} / {} | {} | {} | {} | {:.1} → {:.1} | {:.1} |",
        setup.as_secs_f64(),
        our_cpu / wall * 100.0,
        up.sent,
        up.received,
        up.lost,
        down.sent,
        down.received,
        down.lost,
        lat(&up),
        lat(&down),
        up.bad_anchor + down.bad_anchor,
        rss_idle as f64 / 1024.0,
        rss_loaded as f64 / 1024.0,
        (rss_loaded.saturating_sub(rss_idle)) as f64 / n as f64,
    );
    // What did not fit in the table, on stderr.
    let mut notes = String::new();
    let _ = writeln!(
        notes,
        "N={n}: window {wall:.2} s; gateway CPU {gateway_cpu:.2} s ({:.1} % of one core), loadgen {our_cpu:.2} s; \
         wrong payload type c→t {} t→c {}; matched before sent c→t {} t→c {}; timeline shifts c→t {} t→c {}; filled frames c→t {} t→c {}; strays {} / {}; BYE 200s {hung_up}/{n}; carrier saw {} INVITEs, {} BYEs; \
         other carrier requests {:?}; gateway WARN/ERROR lines {}",
        gateway_cpu / wall * 100.0,
        up.wrong_payload_type,
        down.wrong_payload_type,
        up.early,
        down.early,
        up.shifts,
        down.shifts,
        up.filled,
        down.filled,
        to_client.1,
        to_carrier.1,
        carrier_log.invites,
        carrier_log.byes,
        carrier_log.other,
        problems.len(),
    );
    let _ = writeln!(
        notes,
        "  UDP receive backlog (bytes, max/mean over 100 ms samples): gateway RTP sockets {}/{}, generator sockets {}/{}\n  steal {steal:.1} % of the machine; gateway threads over the window (% of one core): {}\n  sender lateness p50/p99/max {:.3}/{:.3}/{:.3} ms",
        backlog[0].0,
        backlog[0].1 / backlog_samples.max(1),
        backlog[1].0,
        backlog[1].1 / backlog_samples.max(1),
        threads.join(", "),
        percentile(&lateness, 0.5),
        percentile(&lateness, 0.99),
        percentile(&lateness, 1.0),
    );
    notes.push_str(&web_note);
    for line in &shard_metrics {
        let _ = writeln!(notes, "  {line}");
    }
    for line in problems.iter().take(5) {
        let _ = writeln!(notes, "  gateway: {line}");
    }
    eprint!("{notes}");
    Ok(row)
}
