//! A second real softphone stack, Linphone (liblinphone 5.1 through Debian's `linphonec`, package
//! `linphone-cli`), as the client: it registers with digest auth, calls the echo number and
//! carriers (Opus transcoded both ways, and PCMU relayed), sends DTMF both ways Linphone knows
//! (RFC 4733 and SIP INFO), and auto-answers a carrier's call to its DID. Linphone plays a
//! 440 Hz WAV as its microphone and records what it hears to a WAV; a carrier's media is a
//! socket the test owns (1 kHz PCMU out, G.711 and RFC 4733 in), or SIPp's `-rtp_echo`.
//!
//! How linphonec is driven headless (found on Debian 12, liblinphone 5.1.65):
//! - Commands go to its standard input, one per line, from a pipe (no terminal needed); its
//!   answers and call events come on standard output (`Call 1 with sip:... connected.`,
//!   `... ended (...)`). `linphonecsh` is not used: its daemon socket is `/tmp/linphonec-<uid>`,
//!   one per user, so two instances (parallel tests) would share it.
//! - `HOME` is a fresh directory per instance, and `$HOME/.local/share/linphone/` must exist:
//!   without it the database cannot be opened and the core stays in `LinphoneGlobalStartup`
//!   forever, never binding its SIP port (calls fail with "No listening point").
//! - The account goes in the rc file (`-c`): `[proxy_0]` with `reg_proxy` and `reg_route` (the
//!   `register` command sets no route, so INVITEs to `sip:600@domain` go to the domain's DNS),
//!   `[auth_info_0]` with the realm, `[sip] default_proxy=0`.
//! - Codecs are `[audio_codec_N]` sections in preference order; codecs not listed are added
//!   with their defaults (speex, G.729 and PCMA enabled), so each unwanted one is listed
//!   disabled.
//! - The sound card: `soundcard use files` then `play <wav>` (the microphone; the WAV here is
//!   longer than any call, whether it loops was not checked) and `record <wav>` (what is
//!   heard, mono at the codec's rate: 48 kHz for Opus, 8 kHz for PCMU). The WAV header stays
//!   all zeros until the call ends (size the recording by the file's length), and a `resume`
//!   after `pause` truncates the file and records again. The local feedback tone of a key
//!   pressed is mixed into the recording. There is no sound card on the machine; ALSA's
//!   errors in the log are harmless.
//! - DTMF: a line of digits typed during a call sends them, by RFC 4733 (`telephone-event`)
//!   unless `[sip] use_info=1` and `use_rfc2833=0` (SIP INFO, `application/dtmf-relay`, and then
//!   no telephone-event in its offers). linphonec's main loop stalls about 1 s after each
//!   digit: digits go out 1 s apart, and a SIP answer arriving meanwhile waits.
//! - `-a` answers incoming calls at once; without it `terminate` declines a ringing call (603)
//!   and cancels a ringing call out. `pause` / `resume` send re-INVITEs `sendonly` /
//!   `sendrecv`.
//! - `[sip] sip_port=0` with `sip_tcp_port=P` and `transport=tcp` in the proxy URIs gives SIP
//!   over TCP only.
//! - `[sip] use_ipv6=0`: the machine has an IPv6 address (fd00::2) that liblinphone logs as
//!   its media address candidate (its SDP said 127.0.0.1 anyway, the proxy being on IPv4).
//! - Linphone puts its cached digest credentials on in-dialog requests (INFO) and refreshes
//!   its registration reusing the nonce (nc=2); asked less than the gateway's 60 s minimum, it
//!   takes the 423's `Min-Expires`.
//! - `-d 6 -l file` logs every SIP message (kept in the instance's directory for failures;
//!   the directory is removed when the test passes). The log is written as Linphone goes:
//!   checks on it wait for what they look for.
//! - Its RTP opens with a 20-byte STUN packet (no STUN server configured), then Opus in
//!   narrowband as our answer's `maxplaybackrate=8000` asks.
//! - `quit` unregisters (REGISTER with `Expires: 0`) before exiting.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::linphone::*;
use common::*;

// --- tests ------------------------------------------------------------------------------------

#[test]
fn linphone_registers_with_digest_auth_and_unregisters_on_quit() {
    let gateway = Gateway::start(&[]);
    let mut phone = Linphone::start(&gateway, Setup::default());
    assert_eq!(gateway.metric("landline_registrations"), 1.0);
    phone.command("status register");
    phone.expect("registered, identity=", &gateway, &[]);
    assert!(
        phone.log_shows(|log| {
            log.contains("SIP/2.0 401 Unauthorized") && log.contains("Authorization:")
        }),
        "Linphone registered without being challenged:\n{}",
        phone.diagnostics()
    );
    assert!(
        phone.quit(),
        "linphonec did not quit\n{}",
        phone.diagnostics()
    );
    assert!(
        wait_until(STEP, || gateway.metric("landline_registrations") == 0.0).is_some(),
        "the binding outlived Linphone's quit\n{}",
        tail(&gateway.log(), 4000)
    );
    gateway.assert_idle();
}

/// Asked for less than the registrar's minimum (60 s), Linphone gets 423 with `Min-Expires`
/// and registers again with 60 s, which the gateway grants.
#[test]
fn linphone_asking_too_short_a_registration_retries_with_min_expires() {
    let gateway = Gateway::start(&[]);
    let phone = Linphone::start(
        &gateway,
        Setup {
            expires: 20,
            ..Setup::default()
        },
    );
    // The log is written as Linphone goes; wait for the lines rather than race them.
    let seen = wait_until(STEP, || {
        let log = phone.log();
        log.contains("SIP/2.0 423 ")
            && log.contains("Min-Expires: 60")
            && log.contains(";expires=60")
    });
    assert!(
        seen.is_some(),
        "no 423 with Min-Expires, then a 60 s binding, in Linphone's log\n{}",
        phone.diagnostics()
    );
    assert_eq!(gateway.metric("landline_registrations"), 1.0);
    gateway.assert_idle();
}

#[test]
fn linphone_with_opus_hears_itself_on_the_echo_number() {
    let gateway = Gateway::start(&[]);
    let mut phone = Linphone::start(&gateway, Setup::default());
    phone.command("call 600");
    phone.expect("connected.", &gateway, &[]);
    let answer = answered_media_line(&phone);
    assert!(
        answer.starts_with("m=audio ") && answer.contains(" RTP/AVP 96"),
        "the gateway's answer: {answer:?}"
    );
    assert!(
        phone.log_shows(|log| log.contains("a=rtpmap:96 opus/48000/2")),
        "Linphone offered Opus first"
    );
    // Long enough for 2 s of settled audio after the first second, with margin.
    phone.wait_recorded(5);
    phone.hang_up(&gateway, &[]);
    assert_linphone_heard(&phone, PHONE_HZ, &gateway);
    // Linphone honours our answer's `maxplaybackrate=8000`: narrowband Opus is a quarter of
    // the decoding work of fullband.
    let log = gateway.log();
    assert!(
        log.lines().any(|l| l.contains("first Opus packet")
            && l.contains("role=Client")
            && l.contains("bandwidth=\"narrowband\"")),
        "Linphone's Opus is not narrowband:\n{}",
        tail(&log, 4000)
    );
    let cdrs = gateway.wait_cdrs(1);
    assert_eq!(cdrs.first().map(|c| &c["to"]), Some(&"600".into()));
    assert_eq!(cdrs[0]["outcome"], "answered");
    gateway.assert_idle();
}

#[test]
fn linphone_calls_out_and_hears_itself_through_an_echoing_carrier() {
    let (carrier_addr, trunk) = carrier();
    let gateway = Gateway::start(&[trunk]);
    let mut trunk = Sipp::start("carrier_answer", carrier_addr, None, 1, &["-rtp_echo"]);
    let mut phone = Linphone::start(&gateway, Setup::default());
    phone.command("call +15557654321");
    phone.expect("connected.", &gateway, &[&trunk]);
    phone.wait_recorded(5);
    phone.hang_up(&gateway, &[&trunk]);
    // Opus → PCMU to the carrier, which echoes PCMU → Opus back: both directions transcoded.
    assert_linphone_heard(&phone, PHONE_HZ, &gateway);
    assert_calls(trunk.finish(), 1, "carrier", &gateway, &[&trunk]);
    let at_carrier = trunk.messages();
    assert!(at_carrier.contains("m=audio"), "{at_carrier}");
    assert!(
        !at_carrier.to_lowercase().contains("opus"),
        "the carrier is offered G.711 only"
    );
    let cdrs = gateway.wait_cdrs(1);
    assert_eq!(
        cdrs.first().map(|c| &c["outcome"]),
        Some(&"answered".into())
    );
    gateway.assert_idle();
}

/// Linphone's default DTMF (RFC 4733 on Opus) reaches a PCMU carrier as RFC 4733, and a tone
/// crosses each way, told apart by frequency (440 Hz from Linphone, 1 kHz from the carrier).
#[test]
fn linphone_opus_call_out_carries_audio_both_ways_and_rfc4733_digits() {
    call_out_with_digits(Codecs::OpusFirst, Dtmf::Rfc4733);
}

/// A PCMU-only Linphone (relayed, no transcoding) pressing keys by SIP INFO: the carrier gets
/// RFC 4733 and the INFOs stay with the gateway.
#[test]
fn linphone_pcmu_call_out_with_sip_info_digits_reaches_the_carrier_as_rfc4733() {
    call_out_with_digits(Codecs::PcmuOnly, Dtmf::SipInfo);
}

/// Opus with SIP INFO: transcoded, the client offering no telephone-event.
#[test]
fn linphone_opus_call_out_with_sip_info_digits_reaches_the_carrier_as_rfc4733() {
    call_out_with_digits(Codecs::OpusFirst, Dtmf::SipInfo);
}

/// PCMU with RFC 4733: relayed, Linphone's events passed on in the trunk's payload type.
#[test]
fn linphone_pcmu_call_out_relays_rfc4733_digits_to_the_carrier() {
    call_out_with_digits(Codecs::PcmuOnly, Dtmf::Rfc4733);
}

fn call_out_with_digits(codecs: Codecs, dtmf: Dtmf) {
    let (carrier_addr, trunk) = carrier();
    let gateway = Gateway::start(&[trunk]);
    let mut media = CarrierMedia::new();
    let mut trunk = Sipp::start(
        "carrier_answer_media",
        carrier_addr,
        None,
        1,
        &["-key", "rtp_port", &media.port()],
    );
    let mut phone = Linphone::start(
        &gateway,
        Setup {
            codecs,
            dtmf,
            ..Setup::default()
        },
    );
    phone.command("call +15557654321");
    phone.expect("connected.", &gateway, &[&trunk]);
    let answer = answered_media_line(&phone);
    let expected = match codecs {
        Codecs::OpusFirst => " RTP/AVP 96",
        Codecs::PcmuOnly => " RTP/AVP 0",
    };
    assert!(
        answer.contains(expected),
        "the gateway's answer: {answer:?}"
    );

    // 3 s of audio both ways, then one digit at a time, each waited for at the carrier.
    let to = || offered_media(&trunk);
    media.run_until(STEP, to, |m| m.pcm.len() >= 3 * 8000);
    let mut sent = String::new();
    for digit in ["1", "5", "9", "#"] {
        phone.command(digit);
        sent.push_str(digit);
        let arrived = media.run_until(STEP, || offered_media(&trunk), |m| m.digits() == sent);
        assert!(
            arrived,
            "the carrier got digits {:?} after {sent:?} was pressed: {:?}\n{}\n{}",
            media.digits(),
            media.events,
            phone.diagnostics(),
            trunk.diagnostics()
        );
    }
    // A last second of audio after the digits.
    let until = Instant::now() + Duration::from_secs(1);
    media.run_until(STEP, || offered_media(&trunk), |_| Instant::now() >= until);
    phone.hang_up(&gateway, &[&trunk]);
    assert_calls(trunk.finish(), 1, "carrier", &gateway, &[&trunk]);

    media.assert_heard_phone(&gateway);
    assert_linphone_heard(&phone, CARRIER_HZ, &gateway);
    let infos = phone.log().matches("INFO sip:").count();
    match dtmf {
        Dtmf::SipInfo => assert!(
            phone.log_shows(|log| {
                log.matches("INFO sip:").count() >= 4 && log.contains("application/dtmf-relay")
            }),
            "Linphone sent {infos} INFO requests"
        ),
        Dtmf::Rfc4733 => assert_eq!(infos, 0, "Linphone sent INFO requests"),
    }
    assert!(
        !trunk.messages().contains("INFO sip:"),
        "an INFO reached the carrier:\n{}",
        trunk.messages()
    );
    let cdrs = gateway.wait_cdrs(1);
    assert_eq!(
        cdrs.first().map(|c| &c["outcome"]),
        Some(&"answered".into())
    );
    gateway.assert_idle();
}

#[test]
fn a_carrier_call_to_the_did_rings_linphone_which_answers_and_talks() {
    let (carrier_addr, trunk) = carrier();
    let gateway = Gateway::start(&[trunk]);
    let phone = Linphone::start(
        &gateway,
        Setup {
            auto_answer: true,
            ..Setup::default()
        },
    );
    let mut media = CarrierMedia::new();
    let mut trunk = Sipp::start(
        "carrier_call_did_media",
        carrier_addr,
        Some(gateway.sip),
        1,
        &["-s", ALICE_DID, "-key", "rtp_port", &media.port()],
    );
    phone.expect("Receiving new incoming call from", &gateway, &[&trunk]);
    phone.expect("connected.", &gateway, &[&trunk]);
    let gateway_trunk_leg = SocketAddr::from(([127, 0, 0, 1], trunk.answer_port()));
    // 2 s of talk, then the carrier presses 7 (RFC 4733 at 8 kHz, carried to Linphone's Opus
    // stream as telephone-event/48000), and talks on until it hangs up (its scenario: 6 s
    // after the answer).
    let until = Instant::now() + Duration::from_secs(2);
    media.run_until(
        STEP,
        || Some(gateway_trunk_leg),
        |_| Instant::now() >= until,
    );
    media.press(7);
    media.run_until(
        Duration::from_secs(40),
        || Some(gateway_trunk_leg),
        |_| phone.output().contains(" ended ("),
    );
    phone.expect(" ended (", &gateway, &[&trunk]);
    assert_calls(trunk.finish(), 1, "carrier", &gateway, &[&trunk]);
    let output = phone.output();
    assert_eq!(
        output.matches("Receiving tone ").count(),
        1,
        "Linphone heard the carrier's digit once:\n{output}"
    );
    assert!(output.contains("Receiving tone 7 from"), "{output}");
    media.assert_heard_phone(&gateway);
    assert_linphone_heard(&phone, CARRIER_HZ, &gateway);
    let cdrs = gateway.wait_cdrs(1);
    assert_eq!(
        cdrs.first().map(|c| &c["direction"]),
        Some(&"inbound".into())
    );
    assert_eq!(cdrs[0]["outcome"], "answered");
    gateway.assert_idle();
}

/// Linphone's hold (`pause`: a re-INVITE with `a=sendonly`) and unhold (`resume`) reach the
/// carrier as re-INVITEs (its scenario fails unless they say `sendonly`, then `sendrecv`), and
/// the echoed audio comes back after the resume.
#[test]
fn linphone_pauses_and_resumes_a_call_out_and_the_carrier_is_told() {
    let (carrier_addr, trunk) = carrier();
    let gateway = Gateway::start(&[trunk]);
    let mut trunk = Sipp::start("carrier_hold", carrier_addr, None, 1, &["-rtp_echo"]);
    let mut phone = Linphone::start(&gateway, Setup::default());
    phone.command("call +15557654321");
    phone.expect("connected.", &gateway, &[&trunk]);
    phone.command("pause");
    phone.expect("is now paused.", &gateway, &[&trunk]);
    let reinvites =
        |n: usize| wait_until(STEP, || trunk.messages().matches("X-Seen:").count() >= n).is_some();
    assert!(
        reinvites(1),
        "no hold reached the carrier\n{}",
        trunk.diagnostics()
    );
    phone.command("resume");
    assert!(
        reinvites(2),
        "no unhold reached the carrier\n{}",
        trunk.diagnostics()
    );
    let resumed = wait_until(STEP, || {
        phone.output().matches("Media streams established").count() >= 2
    });
    assert!(resumed.is_some(), "{}", phone.diagnostics());
    // Linphone restarts its recording on the resume (the file is truncated, so its size
    // cannot be waited on until the restart is seen): 5 s of the call after it.
    std::thread::sleep(Duration::from_secs(5));
    phone.hang_up(&gateway, &[&trunk]);
    assert_calls(trunk.finish(), 1, "carrier", &gateway, &[&trunk]);
    assert_linphone_heard(&phone, PHONE_HZ, &gateway);
    let cdrs = gateway.wait_cdrs(1);
    assert_eq!(
        cdrs.first().map(|c| &c["outcome"]),
        Some(&"answered".into())
    );
    gateway.assert_idle();
}

/// Linphone over SIP/TCP: it registers, hears itself on the echo number, and a carrier's call
/// to its DID comes down its connection; Linphone answers and hangs up itself, and its BYE
/// reaches the carrier.
#[test]
fn linphone_over_tcp_calls_and_answers_down_its_connection() {
    let (carrier_addr, trunk) = carrier();
    let gateway = Gateway::start(&[trunk]);
    let mut phone = Linphone::start(
        &gateway,
        Setup {
            transport: SipTransport::Tcp,
            auto_answer: true,
            ..Setup::default()
        },
    );
    phone.command("call 600");
    phone.expect("connected.", &gateway, &[]);
    phone.wait_recorded(4);
    phone.hang_up(&gateway, &[]);
    assert_linphone_heard(&phone, PHONE_HZ, &gateway);
    assert!(
        phone.log_shows(|log| log.contains("Via: SIP/2.0/TCP")),
        "Linphone did not talk TCP\n{}",
        phone.diagnostics()
    );

    let mut trunk = Sipp::start(
        "browser_carrier_call_did_wait_bye",
        carrier_addr,
        Some(gateway.sip),
        1,
        &["-s", ALICE_DID],
    );
    let answered = wait_until(STEP, || phone.output().matches("connected.").count() >= 2);
    assert!(
        answered.is_some(),
        "Linphone did not answer the DID call\n{}\n{}",
        phone.diagnostics(),
        trunk.diagnostics()
    );
    phone.command("terminate");
    let ended = wait_until(STEP, || phone.output().matches(" ended (").count() >= 2);
    assert!(ended.is_some(), "{}", phone.diagnostics());
    assert_calls(trunk.finish(), 1, "carrier", &gateway, &[&trunk]);
    let cdrs = gateway.wait_cdrs(2);
    assert_eq!(cdrs.len(), 2, "{cdrs:?}");
    assert_eq!(cdrs[1]["direction"], "inbound");
    assert_eq!(cdrs[1]["outcome"], "answered");
    gateway.assert_idle();
}

/// A carrier's call to the DID rings Linphone (no auto-answer), which declines it: Linphone's
/// 603 reaches the carrier as 603 after its 180, and the CDR records the 603.
#[test]
fn linphone_declines_a_carrier_call_and_the_carrier_gets_603() {
    let (carrier_addr, trunk) = carrier();
    let gateway = Gateway::start(&[trunk]);
    let mut phone = Linphone::start(&gateway, Setup::default());
    let mut trunk = Sipp::start(
        "carrier_call_declined_603",
        carrier_addr,
        Some(gateway.sip),
        1,
        &["-s", ALICE_DID],
    );
    phone.expect("Receiving new incoming call from", &gateway, &[&trunk]);
    phone.command("terminate");
    phone.expect(" ended (", &gateway, &[&trunk]);
    assert_calls(trunk.finish(), 1, "carrier", &gateway, &[&trunk]);
    let cdrs = gateway.wait_cdrs(1);
    assert_eq!(
        cdrs.first().map(|c| &c["direction"]),
        Some(&"inbound".into())
    );
    assert_eq!(cdrs[0]["sip_status"], 603, "{}", cdrs[0]);
    assert_eq!(cdrs[0]["hangup_cause"], "client_603", "{}", cdrs[0]);
    assert_ne!(cdrs[0]["outcome"], "answered", "{}", cdrs[0]);
    gateway.assert_idle();
}

/// Linphone gives up on a call the carrier is ringing: its CANCEL reaches the carrier as one,
/// the carrier's 487 ends Linphone's call, and the CDR says cancelled.
#[test]
fn linphone_cancels_a_ringing_call_out() {
    let (carrier_addr, trunk) = carrier();
    let gateway = Gateway::start(&[trunk]);
    let mut trunk = Sipp::start("carrier_ring_cancel", carrier_addr, None, 1, &[]);
    let mut phone = Linphone::start(&gateway, Setup::default());
    phone.command("call +15557654321");
    phone.expect("ringing.", &gateway, &[&trunk]);
    phone.command("terminate");
    phone.expect(" ended (", &gateway, &[&trunk]);
    assert_calls(trunk.finish(), 1, "carrier", &gateway, &[&trunk]);
    let cdrs = gateway.wait_cdrs(1);
    assert_eq!(
        cdrs.first().map(|c| &c["outcome"]),
        Some(&"cancelled".into()),
        "{cdrs:?}"
    );
    gateway.assert_idle();
}

/// Linphone refreshes a 60 s registration before it expires (at ~54 s, reusing its digest
/// nonce or answering a new challenge), and the binding lives on past its first lifetime.
/// (Named to sort first: the test harness starts tests in name order, and this, the longest,
/// then runs beside the others rather than after them.)
#[test]
fn a_60_s_registration_is_refreshed_by_linphone_before_it_expires() {
    let gateway = Gateway::start(&[]);
    let phone = Linphone::start(
        &gateway,
        Setup {
            expires: 60,
            ..Setup::default()
        },
    );
    let registered = Instant::now();
    let refreshed = wait_until(Duration::from_secs(90), || {
        phone.log().matches("Register refresher [200]").count() >= 2
    });
    assert!(
        refreshed.is_some(),
        "Linphone did not refresh its registration\n{}\n--- gateway ---\n{}",
        phone.diagnostics(),
        tail(&gateway.log(), 4000)
    );
    // Past the first binding's 60 s (and a housekeeping round of the gauge, which counts
    // only live bindings), the refreshed one holds: nothing to wait on but the clock.
    std::thread::sleep(Duration::from_secs(63).saturating_sub(registered.elapsed()));
    assert_eq!(gateway.metric("landline_registrations"), 1.0);
    let log = phone.log();
    eprintln!(
        "Linphone sent {} REGISTERs and got {} challenges",
        log.matches("REGISTER sip:").count(),
        log.matches("SIP/2.0 401 ").count()
    );
    assert!(
        !log.contains("LinphoneRegistrationFailed"),
        "{}",
        phone.diagnostics()
    );
    gateway.assert_idle();
}

/// A carrier's early media (183 with SDP, 2.5 s of its tone, then 200 with the same SDP):
/// Linphone plays it as early media, goes on to the answer, and hears the carrier's tone; the
/// carrier hears Linphone once answered.
#[test]
fn linphone_hears_a_carriers_early_media_then_the_answered_call() {
    let (carrier_addr, trunk) = carrier();
    let gateway = Gateway::start(&[trunk]);
    let mut media = CarrierMedia::new();
    let mut trunk = Sipp::start(
        "carrier_early_media",
        carrier_addr,
        None,
        1,
        &["-key", "rtp_port", &media.port()],
    );
    let mut phone = Linphone::start(&gateway, Setup::default());
    phone.command("call +15557654321");
    let answered = media.run_until(
        STEP,
        || offered_media(&trunk),
        |_| phone.output().contains("connected."),
    );
    assert!(answered, "{}\n{}", phone.diagnostics(), trunk.diagnostics());
    assert!(
        phone.output().contains("early media."),
        "Linphone did not take the 183 as early media\n{}",
        phone.diagnostics()
    );
    let until = Instant::now() + Duration::from_secs(4);
    media.run_until(STEP, || offered_media(&trunk), |_| Instant::now() >= until);
    phone.hang_up(&gateway, &[&trunk]);
    assert_calls(trunk.finish(), 1, "carrier", &gateway, &[&trunk]);
    assert_linphone_heard(&phone, CARRIER_HZ, &gateway);
    // Its recording began with the early media: 2.5 s before the answer, then 4 s.
    let (pcm, rate) = phone.heard();
    assert!(
        pcm.len() >= 5 * rate as usize,
        "Linphone recorded {} samples at {rate} Hz: no early media before the answer",
        pcm.len()
    );
    media.assert_heard_phone(&gateway);
    gateway.assert_idle();
}

/// A carrier holds and unholds a DID call Linphone answered (re-INVITEs `sendonly`, then
/// `sendrecv`; its scenario fails unless the gateway answers `recvonly`, then `sendrecv`): the
/// gateway passes both on to Linphone, which reports the call paused by the far end, and its
/// tone, echoed by the carrier, comes back after the unhold.
#[test]
fn a_carrier_holds_and_unholds_a_call_linphone_answered() {
    let (carrier_addr, trunk) = carrier();
    let gateway = Gateway::start(&[trunk]);
    let phone = Linphone::start(
        &gateway,
        Setup {
            auto_answer: true,
            ..Setup::default()
        },
    );
    let mut trunk = Sipp::start(
        "browser_carrier_call_did_hold",
        carrier_addr,
        Some(gateway.sip),
        1,
        &["-s", ALICE_DID, "-rtp_echo"],
    );
    phone.expect("connected.", &gateway, &[&trunk]);
    phone.expect("has been paused by", &gateway, &[&trunk]);
    phone.expect(" ended (", &gateway, &[&trunk]);
    assert_calls(trunk.finish(), 1, "carrier", &gateway, &[&trunk]);
    assert!(
        phone.log_shows(|log| log.matches("a=sendonly").count() >= 1),
        "{}",
        phone.diagnostics()
    );
    assert_linphone_heard(&phone, PHONE_HZ, &gateway);
    // The recording runs through the hold: its last seconds (the unhold came 6.5 s before
    // the carrier's BYE) must hold the echoed tone.
    let (pcm, rate) = phone.heard();
    let samples_per_s = rate as usize;
    let end = pcm.len().saturating_sub(samples_per_s / 2);
    let last = pcm
        .get(end.saturating_sub(3 * samples_per_s)..end)
        .unwrap_or(&[]);
    let (share, rms) = tone_share(last, rate, PHONE_HZ);
    assert!(
        last.len() == 3 * samples_per_s && share > 0.8 && rms > 1000.0,
        "after the unhold Linphone heard {PHONE_HZ} Hz at {share:.2}, RMS {rms:.0}"
    );
    let cdrs = gateway.wait_cdrs(1);
    assert_eq!(
        cdrs.first().map(|c| &c["outcome"]),
        Some(&"answered".into())
    );
    gateway.assert_idle();
}
