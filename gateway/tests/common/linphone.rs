//! Linphone (`linphonec`, Debian's `linphone-cli`) driven headless as alice's softphone, and a
//! carrier's media played by the test: the harness of `tests/linphone_client.rs`, whose module
//! doc says how linphonec is driven and what was found on the way.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use landline_codecs::G711Law;
use landline_codecs::rtp::{RtpHeader, RtpPacket};
use landline_codecs::telephone_event::TelephoneEvent;

use super::{
    CARRIER_SSRC, Gateway, PASSWORD, Sipp, TestTrunk, free_port, pcmu_tone, tone_ratio, wait_until,
};

/// The tone Linphone's microphone plays.
pub const PHONE_HZ: f64 = 440.0;
/// The tone a carrier's media socket sends.
pub const CARRIER_HZ: f64 = 1000.0;
/// Alice's DID in the test gateway.
pub const ALICE_DID: &str = "+15551230001";
/// How long a step may take on a loaded 2-core CI machine.
pub const STEP: Duration = Duration::from_secs(30);

/// The codecs Linphone offers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Codecs {
    /// Opus first, then PCMU: the gateway transcodes.
    OpusFirst,
    /// PCMU alone: the gateway relays to a PCMU trunk.
    PcmuOnly,
}

/// How Linphone sends DTMF.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Dtmf {
    /// RFC 4733 telephone-event packets in the media (Linphone's default).
    Rfc4733,
    /// SIP INFO requests, `application/dtmf-relay` (`[sip] use_info=1`).
    SipInfo,
}

/// The SIP transport Linphone uses towards the gateway.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SipTransport {
    /// UDP only.
    Udp,
    /// TCP only: Linphone's UDP port is off.
    Tcp,
}

/// How one Linphone is set up.
#[derive(Clone, Copy)]
pub struct Setup {
    /// The codecs offered, in order.
    pub codecs: Codecs,
    /// How keys pressed are sent.
    pub dtmf: Dtmf,
    /// linphonec's `-a`: incoming calls answered at once.
    pub auto_answer: bool,
    /// The transport to the gateway.
    pub transport: SipTransport,
    /// The registration lifetime asked for, in seconds.
    pub expires: u32,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            codecs: Codecs::OpusFirst,
            dtmf: Dtmf::Rfc4733,
            auto_answer: false,
            transport: SipTransport::Udp,
            expires: 3600,
        }
    }
}

/// One linphonec process registered as alice; killed (and its directory removed) on drop.
pub struct Linphone {
    child: Child,
    stdin: ChildStdin,
    output: Arc<Mutex<String>>,
    home: PathBuf,
    setup: Setup,
}

impl Linphone {
    /// Starts linphonec for alice on `gateway` and waits until the gateway holds its
    /// registration.
    pub fn start(gateway: &Gateway, setup: Setup) -> Linphone {
        let sip_port = free_port();
        let home = std::env::temp_dir().join(format!(
            "landline-linphone-{}-{sip_port}",
            std::process::id()
        ));
        std::fs::create_dir_all(home.join(".local/share/linphone")).expect("linphone home");
        write_tone(&home.join("mic.wav"), PHONE_HZ);
        let rc = home.join("linphonerc");
        std::fs::write(&rc, rc_file(gateway, sip_port, setup)).expect("rc file");
        let mut cmd = Command::new("linphonec");
        cmd.arg("-c")
            .arg(&rc)
            .args(["-d", "6", "-l"])
            .arg(home.join("linphone.log"));
        if setup.auto_answer {
            cmd.arg("-a");
        }
        let stderr = std::fs::File::create(home.join("stderr.log")).expect("stderr file");
        let mut child = cmd
            .env("HOME", &home)
            .current_dir(&home)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run linphonec ({e}): apt-get install linphone-cli (scripts/test does)"
                )
            });
        let stdin = child.stdin.take().expect("linphonec stdin");
        let stdout = child.stdout.take().expect("linphonec stdout");
        let output = Arc::new(Mutex::new(String::new()));
        {
            let output = Arc::clone(&output);
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let mut out = output.lock().expect("output lock");
                    out.push_str(&line);
                    out.push('\n');
                }
            });
        }
        let mut phone = Linphone {
            child,
            stdin,
            output,
            home,
            setup,
        };
        phone.command("soundcard use files");
        let (mic, heard) = (phone.home.join("mic.wav"), phone.home.join("heard.wav"));
        phone.command(&format!("play {}", mic.display()));
        phone.command(&format!("record {}", heard.display()));
        let registered = wait_until(STEP, || gateway.metric("landline_registrations") >= 1.0);
        assert!(
            registered.is_some(),
            "Linphone did not register\n{}\n--- gateway ---\n{}",
            phone.diagnostics(),
            tail(&gateway.log(), 4000)
        );
        phone
    }

    /// Sends one command line to linphonec.
    pub fn command(&mut self, line: &str) {
        writeln!(self.stdin, "{line}")
            .and_then(|()| self.stdin.flush())
            .unwrap_or_else(|e| panic!("linphonec gone ({e})\n{}", self.diagnostics()));
    }

    /// What linphonec printed so far.
    pub fn output(&self) -> String {
        self.output.lock().expect("output lock").clone()
    }

    /// Waits (bounded) until linphonec has printed `needle`.
    pub fn wait_for(&self, needle: &str) -> bool {
        wait_until(STEP, || self.output().contains(needle)).is_some()
    }

    /// Asserts linphonec prints `needle`, with diagnostics when it does not.
    pub fn expect(&self, needle: &str, gateway: &Gateway, sides: &[&Sipp]) {
        if !self.wait_for(needle) {
            let mut report = format!("Linphone never printed {needle:?}\n{}", self.diagnostics());
            for side in sides {
                report.push_str(&side.diagnostics());
            }
            report.push_str("\n--- gateway (tail) ---\n");
            report.push_str(&tail(&gateway.log(), 6000));
            panic!("{report}");
        }
    }

    /// Hangs up and waits for the call to end on Linphone's side.
    pub fn hang_up(&mut self, gateway: &Gateway, sides: &[&Sipp]) {
        self.command("terminate");
        self.expect(" ended (", gateway, sides);
    }

    /// Waits (bounded) until Linphone has recorded `seconds` of what it hears in the call.
    /// The recorder appends mono 16-bit samples at the codec's rate as it goes (its header is
    /// all zeros until the call ends, so the rate comes from the codec asked for).
    pub fn wait_recorded(&self, seconds: u64) {
        let rate = match self.setup.codecs {
            Codecs::OpusFirst => 48_000,
            Codecs::PcmuOnly => 8000,
        };
        let path = self.home.join("heard.wav");
        let recorded = wait_until(STEP, || {
            std::fs::metadata(&path).is_ok_and(|m| m.len() >= 44 + rate * 2 * seconds)
        });
        assert!(
            recorded.is_some(),
            "Linphone did not record {seconds} s\n{}",
            self.diagnostics()
        );
    }

    /// What Linphone heard in its call (after it ended): mono samples and their rate.
    pub fn heard(&self) -> (Vec<i16>, u32) {
        let path = self.home.join("heard.wav");
        // The recorder writes the WAV header's sizes when it closes, just after the call ends.
        let mut last = (Vec::new(), 0);
        wait_until(Duration::from_secs(10), || {
            let Ok(reader) = hound::WavReader::open(&path) else {
                return false;
            };
            let spec = reader.spec();
            let channels = usize::from(spec.channels.max(1));
            let samples: Vec<i16> = reader
                .into_samples::<i16>()
                .filter_map(Result::ok)
                .collect();
            let mono: Vec<i16> = samples.chunks(channels).map(|frame| frame[0]).collect();
            let done = !mono.is_empty();
            last = (mono, spec.sample_rate);
            done
        });
        last
    }

    /// Linphone's output and the tail of its log, for failure messages.
    pub fn diagnostics(&self) -> String {
        let log = std::fs::read_to_string(self.home.join("linphone.log")).unwrap_or_default();
        format!(
            "--- linphonec output ---\n{}\n--- linphone log (tail) ---\n{}",
            self.output(),
            tail(&log, 8000)
        )
    }

    /// The SIP messages in Linphone's log (sent and received), for checks on what it saw.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.home.join("linphone.log")).unwrap_or_default()
    }

    /// Waits (bounded) until Linphone's log passes `check`: the log is written as it goes.
    pub fn log_shows(&self, check: impl Fn(&str) -> bool) -> bool {
        wait_until(STEP, || check(&self.log())).is_some()
    }

    /// Quits linphonec cleanly (it unregisters first) and waits for it to exit.
    pub fn quit(&mut self) -> bool {
        self.command("quit");
        wait_until(Duration::from_secs(15), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        })
        .is_some()
    }
}

impl Drop for Linphone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.home);
        }
    }
}

/// linphonec's configuration: alice's account on the gateway, the codecs and DTMF mode asked
/// for, no video, no echo canceller, no NAT traversal (`firewall_policy=0`), its ports fixed.
fn rc_file(gateway: &Gateway, sip_port: u16, setup: Setup) -> String {
    let rtp_port = free_port();
    // Port 0 turns a transport off.
    let (transport, udp_port, tcp_port) = match setup.transport {
        SipTransport::Udp => ("udp", sip_port, 0),
        SipTransport::Tcp => ("tcp", 0, sip_port),
    };
    let proxy = format!("<sip:{};transport={transport}>", gateway.sip);
    let route = format!("<sip:{};transport={transport};lr>", gateway.sip);
    let info = u8::from(setup.dtmf == Dtmf::SipInfo);
    let expires = setup.expires;
    let mut rc = format!(
        "[sip]\nsip_port={udp_port}\nsip_tcp_port={tcp_port}\nsip_tls_port=0\nuse_ipv6=0\n\
         default_proxy=0\nuse_info={info}\nuse_rfc2833={rfc2833}\n\
         [rtp]\naudio_rtp_port={rtp_port}\n\
         [net]\nfirewall_policy=0\n\
         [sound]\nechocancellation=0\n\
         [video]\nenabled=0\ndisplay=0\ncapture=0\n\
         [proxy_0]\nreg_proxy={proxy}\nreg_route={route}\n\
         reg_identity=\"Alice\" <sip:alice@landline.test>\nreg_expires={expires}\n\
         reg_sendregister=1\npublish=0\n\
         [auth_info_0]\nusername=alice\npasswd={PASSWORD}\nrealm=landline.test\n\
         domain=landline.test\n",
        rfc2833 = 1 - info,
    );
    let opus = setup.codecs == Codecs::OpusFirst;
    let table: [(&str, u32, u32, bool); 9] = [
        ("opus", 48_000, 2, opus),
        ("PCMU", 8000, 1, true),
        ("PCMA", 8000, 1, false),
        ("speex", 16_000, 1, false),
        ("speex", 8000, 1, false),
        ("speex", 32_000, 1, false),
        ("G729", 8000, 1, false),
        ("GSM", 8000, 1, false),
        ("G722", 8000, 1, false),
    ];
    for (i, (mime, rate, channels, enabled)) in table.iter().enumerate() {
        rc.push_str(&format!(
            "[audio_codec_{i}]\nmime={mime}\nrate={rate}\nchannels={channels}\nenabled={}\n",
            u8::from(*enabled)
        ));
    }
    rc
}

/// A 30 s, 8 kHz mono WAV of a sine at `hz`: longer than any call here.
fn write_tone(path: &std::path::Path, hz: f64) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut wav = hound::WavWriter::create(path, spec).expect("tone wav");
    for n in 0..8000 * 30 {
        let t = f64::from(n) / 8000.0;
        let sample = 8000.0 * (2.0 * std::f64::consts::PI * hz * t).sin();
        wav.write_sample(sample as i16).expect("tone sample");
    }
    wav.finalize().expect("tone wav");
}

/// The last `max` bytes of `text` (on a character boundary), for failure messages.
pub fn tail(text: &str, max: usize) -> String {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_owned()
}

/// The share of the energy of `pcm` (at `rate`) that is at `hz`, measured per 50 ms block and
/// weighted by each block's energy (a jitter buffer's adjustment or a digit spoils a block, not
/// the whole), and the signal's RMS level.
pub fn tone_share(pcm: &[i16], rate: u32, hz: f64) -> (f64, f64) {
    let block = (rate / 20) as usize;
    let (mut tone, mut total) = (0.0, 0.0);
    for chunk in pcm.chunks_exact(block.max(1)) {
        let energy: f64 = chunk.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        tone += tone_ratio(chunk, hz, f64::from(rate)) * energy;
        total += energy;
    }
    if total == 0.0 {
        return (0.0, 0.0);
    }
    (tone / total, (total / pcm.len() as f64).sqrt())
}

/// Asserts Linphone heard a steady tone at `hz` for at least 2 s after its first second.
pub fn assert_linphone_heard(phone: &Linphone, hz: f64, gateway: &Gateway) {
    let (pcm, rate) = phone.heard();
    let settled = pcm.get(rate as usize..).unwrap_or(&[]);
    let (share, rms) = tone_share(settled, rate, hz);
    eprintln!(
        "Linphone heard {:.1} s at {rate} Hz: {hz} Hz holds {share:.3} of the power, RMS {rms:.0}",
        pcm.len() as f64 / f64::from(rate.max(1))
    );
    assert!(
        settled.len() >= 2 * rate as usize && share > 0.8 && rms > 1000.0,
        "Linphone heard {} samples at {rate} Hz; {hz} Hz holds {share:.3} of the power, RMS \
         {rms:.0}\n{}\n--- gateway (tail) ---\n{}",
        pcm.len(),
        phone.diagnostics(),
        tail(&gateway.log(), 6000)
    );
}

/// A carrier's media, played by the test: a socket on 127.0.0.2 that sends a 20 ms PCMU
/// packet of a 1 kHz tone every 20 ms once it knows where to, and keeps the G.711 audio and
/// RFC 4733 events it receives.
pub struct CarrierMedia {
    socket: UdpSocket,
    sequence: u16,
    next_send: Instant,
    /// The G.711 audio received, decoded.
    pub pcm: Vec<i16>,
    /// The RFC 4733 reports received.
    pub events: Vec<TelephoneEvent>,
    /// A digit being sent in place of audio: its event code, first timestamp, reports sent.
    pressing: Option<(u8, u32, u16)>,
}

impl CarrierMedia {
    /// A carrier media socket on 127.0.0.2, silent until `run_until` knows where to talk.
    pub fn new() -> CarrierMedia {
        let socket = UdpSocket::bind("127.0.0.2:0").expect("carrier media socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(5)))
            .expect("timeout");
        CarrierMedia {
            socket,
            sequence: 0,
            next_send: Instant::now(),
            pcm: Vec::new(),
            events: Vec::new(),
            pressing: None,
        }
    }

    /// Sends `event` (RFC 4733, payload type 101) in place of the next 160 ms of audio: five
    /// reports of a growing duration, then three end reports.
    pub fn press(&mut self, event: u8) {
        self.pressing = Some((event, u32::from(self.sequence) * 160, 0));
    }

    /// Its port, for SIPp's `-key rtp_port`.
    pub fn port(&self) -> String {
        self.socket.local_addr().expect("addr").port().to_string()
    }

    /// Talks to `to` (once known) and listens until `done` holds or `limit` passes; whether
    /// `done` held.
    pub fn run_until(
        &mut self,
        limit: Duration,
        mut to: impl FnMut() -> Option<SocketAddr>,
        mut done: impl FnMut(&CarrierMedia) -> bool,
    ) -> bool {
        let deadline = Instant::now() + limit;
        let mut target = None;
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline {
            if done(self) {
                return true;
            }
            if target.is_none() {
                target = to();
                self.next_send = Instant::now();
            }
            if let Some(target) = target {
                while Instant::now() >= self.next_send {
                    let ts = u32::from(self.sequence) * 160;
                    let packet = match self.pressing {
                        Some(pressing) => self.event_packet(pressing),
                        None => pcmu_tone(self.sequence, ts, CARRIER_HZ),
                    };
                    let _ = self.socket.send_to(&packet, target);
                    self.sequence = self.sequence.wrapping_add(1);
                    self.next_send += Duration::from_millis(20);
                }
            }
            if let Ok((n, _)) = self.socket.recv_from(&mut buf) {
                self.keep(&buf[..n]);
            }
        }
        done(self)
    }

    /// The next report of the digit being pressed.
    fn event_packet(&mut self, (event, timestamp, sent): (u8, u32, u16)) -> Vec<u8> {
        let mut packet = vec![0u8; 16];
        RtpHeader {
            marker: sent == 0,
            payload_type: 101,
            sequence: self.sequence,
            timestamp,
            ssrc: CARRIER_SSRC,
        }
        .write(&mut packet);
        TelephoneEvent {
            event,
            end: sent >= 5,
            volume: 10,
            duration: 160 * (sent.min(5) + 1),
        }
        .write(&mut packet[12..]);
        self.pressing = (sent < 7).then_some((event, timestamp, sent + 1));
        packet
    }

    /// Keeps what a received datagram carries: PCMU audio, decoded, or an RFC 4733 report.
    fn keep(&mut self, datagram: &[u8]) {
        let Ok(rtp) = RtpPacket::parse(datagram) else {
            return;
        };
        match rtp.payload_type {
            0 => {
                let mut pcm = vec![0i16; rtp.payload.len()];
                G711Law::Mu.decode(rtp.payload, &mut pcm);
                self.pcm.extend_from_slice(&pcm);
            }
            101 => {
                if let Ok(event) = TelephoneEvent::parse(rtp.payload) {
                    self.events.push(event);
                }
            }
            _ => {}
        }
    }

    /// The digits received, one per event (the reports of one event collapse).
    pub fn digits(&self) -> String {
        let mut out = String::new();
        let mut last_end = true;
        for e in &self.events {
            if last_end && !e.end {
                out.extend(e.dtmf_char());
            }
            last_end = e.end;
        }
        out
    }

    /// Asserts the carrier heard Linphone's tone for at least 2 s after the first second.
    pub fn assert_heard_phone(&self, gateway: &Gateway) {
        let settled = self.pcm.get(8000..).unwrap_or(&[]);
        let (share, rms) = tone_share(settled, 8000, PHONE_HZ);
        eprintln!(
            "the carrier heard {:.1} s: {PHONE_HZ} Hz holds {share:.3} of the power, RMS {rms:.0}",
            self.pcm.len() as f64 / 8000.0
        );
        assert!(
            settled.len() >= 16_000 && share > 0.8 && rms > 1000.0,
            "the carrier heard {} samples; {PHONE_HZ} Hz holds {share:.3}, RMS {rms:.0}\n\
             --- gateway (tail) ---\n{}",
            self.pcm.len(),
            tail(&gateway.log(), 6000)
        );
    }
}

/// A carrier trunk on 127.0.0.2 (not probed): its SIPp address and its gateway config.
pub fn carrier() -> (SocketAddr, TestTrunk) {
    let addr = SocketAddr::from(([127, 0, 0, 2], free_port()));
    (
        addr,
        TestTrunk {
            name: "carrier",
            addr,
            probe: false,
        },
    )
}

/// The `m=audio` line of the gateway's 200 OK to Linphone's INVITE, from Linphone's log
/// (waited for: the log is written as Linphone goes).
pub fn answered_media_line(phone: &Linphone) -> String {
    let find = || {
        let log = phone.log();
        log.split("SIP/2.0 200 OK")
            .filter(|answer| answer.contains(" INVITE\n") || answer.contains(" INVITE\r\n"))
            .filter_map(|answer| answer.lines().find(|l| l.starts_with("m=audio")))
            .last()
            .map(str::to_owned)
    };
    wait_until(STEP, || find().is_some());
    find().unwrap_or_default()
}
