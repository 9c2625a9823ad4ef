//! A real softphone with Opus, baresip, as the client: it registers, calls the echo number and a
//! carrier that echoes (so its audio crosses both transcoding directions), and answers a call
//! to its DID. baresip plays a 440 Hz sine (`ausine`) and records what it hears (`sndfile`).

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// A baresip instance configured for alice on the gateway.
struct Baresip {
    dir: PathBuf,
}

impl Baresip {
    fn new(gateway: &Gateway) -> Baresip {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("landline-baresip-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config = format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{port}\nsip_trans_def udp\n\
             net_interface 127.0.0.1\naudio_player alsa,null\naudio_source ausine,440\n\
             audio_alert alsa,null\naudio_srate 8000-48000\n\
             module_path /usr/lib/baresip/modules\nmodule g711.so\nmodule opus.so\n\
             module alsa.so\nmodule ausine.so\nmodule sndfile.so\nsnd_path {}\n\
             module_app account.so\nmodule_app menu.so\n",
            dir.display()
        );
        std::fs::write(dir.join("config"), config).expect("config");
        let account = format!(
            "<sip:alice@{}>;auth_pass={PASSWORD};answermode=auto;audio_codecs=opus/48000/2;regint=300\n",
            gateway.sip
        );
        std::fs::write(dir.join("accounts"), account).expect("accounts");
        Baresip { dir }
    }

    /// Runs baresip for `seconds`, executing `commands` at start; returns its output.
    fn run(&self, commands: &[&str], seconds: u32) -> String {
        let mut cmd = Command::new("baresip");
        cmd.arg("-f")
            .arg(&self.dir)
            .args(["-t", &seconds.to_string()]);
        for c in commands {
            cmd.args(["-e", c]);
        }
        let output = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| {
            panic!("cannot run baresip ({e}): apt-get install baresip (scripts/test does)")
        });
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr)
    }

    /// What baresip heard: the decoded audio it recorded, as mono samples at 48 kHz.
    fn heard(&self) -> Vec<i16> {
        let Some(path) = wav_ending(&self.dir, "-dec.wav") else {
            return Vec::new();
        };
        let Ok(reader) = hound::WavReader::open(&path) else {
            return Vec::new();
        };
        let channels = usize::from(reader.spec().channels.max(1));
        let samples: Vec<i16> = reader
            .into_samples::<i16>()
            .filter_map(Result::ok)
            .collect();
        samples.chunks(channels).map(|frame| frame[0]).collect()
    }
}

fn wav_ending(dir: &Path, suffix: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(suffix))
}

/// Asserts baresip heard its own 440 Hz sine back, after the first 2 s (jitter buffers settle).
fn assert_heard_itself(phone: &Baresip, output: &str, gateway: &Gateway) {
    let heard = phone.heard();
    let settled = heard
        .get(96_000..heard.len().min(96_000 + 96_000))
        .unwrap_or(&[]);
    let ratio = tone_ratio(settled, 440.0, 48_000.0);
    assert!(
        settled.len() >= 48_000 && ratio > 0.9,
        "baresip heard {} samples, 440 Hz holding {ratio:.3} of the power\n--- baresip ---\n{output}\n--- gateway ---\n{}",
        heard.len(),
        gateway.log()
    );
}

#[test]
fn baresip_with_opus_hears_itself_on_the_echo_number() {
    let gateway = Gateway::start(&[]);
    let phone = Baresip::new(&gateway);
    let output = phone.run(&["/dial 600"], 7);
    assert!(output.contains("Call established"), "{output}");
    assert!(
        output.contains("Set audio encoder: opus"),
        "the softphone talks Opus:\n{output}"
    );
    assert_heard_itself(&phone, &output, &gateway);
    let cdrs = gateway.wait_cdrs(1);
    assert_eq!(cdrs[0]["to"], "600");
    assert_eq!(cdrs[0]["outcome"], "answered");
    gateway.assert_idle();
}

#[test]
fn baresip_calls_out_and_hears_itself_through_an_echoing_carrier() {
    let carrier = SocketAddr::from(([127, 0, 0, 2], free_port()));
    let gateway = Gateway::start(&[TestTrunk {
        name: "carrier",
        addr: carrier,
        probe: false,
    }]);
    let mut trunk = Sipp::start("carrier_answer", carrier, None, 1, &["-rtp_echo"]);
    std::thread::sleep(Duration::from_millis(300));
    let phone = Baresip::new(&gateway);
    let output = phone.run(&["/dial +15557654321"], 7);
    assert!(
        output.contains("Call established"),
        "{output}\n{}",
        trunk.diagnostics()
    );
    // Opus → PCMU to the carrier, which echoes PCMU → Opus back: both directions transcoded.
    assert_heard_itself(&phone, &output, &gateway);
    assert_calls(trunk.finish(), 1, "carrier", &gateway, &[&trunk]);
    let at_carrier = trunk.messages();
    assert!(at_carrier.contains("m=audio"), "{at_carrier}");
    assert!(
        !at_carrier.to_lowercase().contains("opus"),
        "the carrier is offered G.711 only"
    );
    gateway.assert_idle();
}

#[test]
fn a_carrier_call_to_the_did_rings_baresip_which_answers() {
    let carrier = SocketAddr::from(([127, 0, 0, 2], free_port()));
    let gateway = Gateway::start(&[TestTrunk {
        name: "carrier",
        addr: carrier,
        probe: false,
    }]);
    let phone = Baresip::new(&gateway);
    let phone_thread = {
        let dir = phone.dir.clone();
        std::thread::spawn(move || Baresip { dir }.run(&[], 6))
    };
    // Let baresip register before the carrier calls.
    std::thread::sleep(Duration::from_millis(1500));
    let mut trunk = Sipp::start(
        "carrier_call_did",
        carrier,
        Some(gateway.sip),
        1,
        &["-s", "+15551230001"],
    );
    assert_calls(trunk.finish(), 1, "carrier", &gateway, &[&trunk]);
    let output = phone_thread.join().expect("baresip thread");
    assert!(
        output.contains("Call established"),
        "baresip did not answer:\n{output}"
    );
    let cdrs = gateway.wait_cdrs(1);
    assert_eq!(cdrs[0]["direction"], "inbound");
    assert_eq!(cdrs[0]["outcome"], "answered");
    gateway.assert_idle();
}
