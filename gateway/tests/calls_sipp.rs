//! Calls through the real gateway binary, with SIPp as carriers and as SIP clients.
//!
//! Carriers listen on 127.0.0.2 and 127.0.0.3 (Linux routes all of 127/8 to loopback), clients
//! on 127.0.0.1, so the gateway tells them apart by source address as it does in production.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::*;

fn carrier_addr(last: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, last], free_port()))
}

fn client_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

fn auth(password: &str) -> [&str; 4] {
    ["-au", "alice", "-ap", password]
}

/// A gateway with one IP trunk (no probes) at a carrier address on 127.0.0.2.
fn one_carrier() -> (SocketAddr, Gateway) {
    let carrier = carrier_addr(2);
    let gateway = Gateway::start(&[TestTrunk {
        name: "carrier",
        addr: carrier,
        probe: false,
    }]);
    (carrier, gateway)
}

/// A SIPp client, authenticated as alice, dialling `number` with `scenario`.
fn client_dials(gateway: &Gateway, scenario: &str, number: &str) -> Sipp {
    let mut args = auth(PASSWORD).to_vec();
    args.extend(["-s", number]);
    Sipp::start(scenario, client_addr(), Some(gateway.sip), 1, &args)
}

/// A softphone that registers as alice, then plays `scenario` (as UAS) on the port it
/// registered from, where the gateway sends its calls.
fn registered_softphone(gateway: &Gateway, scenario: &str) -> Sipp {
    let phone = client_addr();
    let mut register = Sipp::start(
        "client_register",
        phone,
        Some(gateway.sip),
        1,
        &auth(PASSWORD),
    );
    assert_calls(register.finish(), 1, "register", gateway, &[&register]);
    Sipp::start(scenario, phone, None, 1, &[])
}

#[test]
fn a_client_calls_out_through_the_trunk_and_hangs_up() {
    let (carrier, gateway) = one_carrier();
    let mut trunk = Sipp::start("carrier_answer", carrier, None, 1, &["-rtp_echo"]);
    std::thread::sleep(Duration::from_millis(300));
    let mut client = client_dials(&gateway, "client_call", "+15557654321");
    let client_stats = client.finish();
    assert_calls(client_stats, 1, "client", &gateway, &[&client, &trunk]);
    let trunk_stats = trunk.finish();
    assert_calls(trunk_stats, 1, "carrier", &gateway, &[&client, &trunk]);

    // The carrier saw our topology, not the client's: its own Call-ID and our addresses.
    let at_carrier = trunk.messages();
    assert!(
        at_carrier.contains("INVITE sip:+15557654321@127.0.0.2"),
        "{at_carrier}"
    );
    assert!(
        !at_carrier.contains(&client_stats_marker(&client)),
        "client Call-ID leaked"
    );
    assert!(
        at_carrier.contains("From: <sip:+15551230001@"),
        "caller ID is alice's DID"
    );

    let cdrs = gateway.wait_cdrs(1);
    assert_eq!(cdrs.len(), 1, "{cdrs:?}");
    assert_eq!(cdrs[0]["outcome"], "answered");
    assert_eq!(cdrs[0]["to"], "+15557654321");
    assert_eq!(cdrs[0]["trunk"], "carrier");
    assert!(cdrs[0]["billable_seconds"].as_f64().unwrap_or(0.0) > 0.5);
    gateway.assert_idle();
}

/// The client's Call-ID as SIPp writes it (`1-<pid>@127.0.0.1`), to check it never leaks.
fn client_stats_marker(client: &Sipp) -> String {
    client
        .messages()
        .lines()
        .find_map(|l| l.strip_prefix("Call-ID: "))
        .unwrap_or("no call id")
        .trim()
        .to_owned()
}

/// A softphone with "SRTP mandatory" offers audio only as RTP/SAVP with SDES keys: the
/// gateway cannot answer that in plain RTP, so it refuses with 488 and nothing reaches a trunk.
#[test]
fn an_srtp_only_offer_is_refused_with_488() {
    let (carrier, gateway) = one_carrier();
    let mut trunk = Sipp::start("carrier_answer", carrier, None, 1, &[]);
    let mut client = client_dials(&gateway, "client_call_srtp_only", "+15557654321");
    let stats = client.finish();
    assert_calls(stats, 1, "client (488 expected)", &gateway, &[&client]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !trunk.messages().contains("INVITE"),
        "an offer we cannot answer reached the carrier"
    );
    trunk.stop();
    gateway.assert_idle();
}

#[test]
fn a_wrong_password_never_reaches_a_trunk() {
    let (carrier, gateway) = one_carrier();
    let mut trunk = Sipp::start("carrier_answer", carrier, None, 1, &[]);
    let mut args = auth("not-the-password").to_vec();
    args.extend(["-s", "+15557654321"]);
    let mut client = Sipp::start(
        "client_wrong_password",
        client_addr(),
        Some(gateway.sip),
        1,
        &args,
    );
    let stats = client.finish();
    assert_calls(stats, 1, "client", &gateway, &[&client]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !trunk.messages().contains("INVITE"),
        "an unauthenticated call reached the carrier"
    );
    trunk.stop();
    gateway.assert_idle();
}

#[test]
fn a_503_from_the_first_trunk_fails_over_to_the_second() {
    let first = carrier_addr(2);
    let second = carrier_addr(3);
    let gateway = Gateway::start(&[
        TestTrunk {
            name: "first",
            addr: first,
            probe: false,
        },
        TestTrunk {
            name: "second",
            addr: second,
            probe: false,
        },
    ]);
    let mut refusing = Sipp::start("carrier_503", first, None, 1, &[]);
    let mut answering = Sipp::start("carrier_answer", second, None, 1, &["-rtp_echo"]);
    std::thread::sleep(Duration::from_millis(300));
    let mut args = auth(PASSWORD).to_vec();
    args.extend(["-s", "2125550187"]);
    let mut client = Sipp::start("client_call", client_addr(), Some(gateway.sip), 1, &args);
    let stats = client.finish();
    assert_calls(
        stats,
        1,
        "client",
        &gateway,
        &[&client, &refusing, &answering],
    );
    assert_calls(
        refusing.finish(),
        1,
        "first carrier",
        &gateway,
        &[&refusing],
    );
    assert_calls(
        answering.finish(),
        1,
        "second carrier",
        &gateway,
        &[&answering],
    );
    let cdrs = gateway.wait_cdrs(1);
    assert_eq!(cdrs[0]["trunk"], "second");
    assert_eq!(
        cdrs[0]["to"], "+12125550187",
        "a national number normalised with alice's country"
    );
    gateway.assert_idle();
}

#[test]
fn cancel_before_answer_reaches_the_carrier() {
    let (carrier, gateway) = one_carrier();
    let mut trunk = Sipp::start("carrier_ring_cancel", carrier, None, 1, &[]);
    std::thread::sleep(Duration::from_millis(300));
    let mut client = client_dials(&gateway, "client_cancel", "+15557654321");
    let stats = client.finish();
    assert_calls(stats, 1, "client", &gateway, &[&client, &trunk]);
    assert_calls(trunk.finish(), 1, "carrier", &gateway, &[&client, &trunk]);
    let cdrs = gateway.wait_cdrs(1);
    assert_eq!(cdrs[0]["outcome"], "cancelled");
    gateway.assert_idle();
}

/// The carrier calls alice's DID; `softphone` (registered, playing a UAS scenario) answers.
/// Both SIPp runs must succeed.
fn carrier_calls_alice(gateway: &Gateway, carrier: SocketAddr, softphone: &mut Sipp) {
    std::thread::sleep(Duration::from_millis(300));
    let mut trunk = Sipp::start(
        "carrier_call_did",
        carrier,
        Some(gateway.sip),
        1,
        &["-s", "+15551230001"],
    );
    assert_calls(trunk.finish(), 1, "carrier", gateway, &[&trunk, softphone]);
    assert_calls(
        softphone.finish(),
        1,
        "softphone",
        gateway,
        &[&trunk, softphone],
    );
}

#[test]
fn a_call_to_a_did_rings_the_registered_client() {
    let (carrier, gateway) = one_carrier();
    // The softphone registers, then answers on the port it registered from.
    let mut softphone = registered_softphone(&gateway, "client_answer");
    carrier_calls_alice(&gateway, carrier, &mut softphone);
    let cdrs = gateway.wait_cdrs(1);
    assert_eq!(cdrs[0]["direction"], "inbound");
    assert_eq!(cdrs[0]["user"], "alice");
    assert_eq!(cdrs[0]["outcome"], "answered");
    gateway.assert_idle();
}

/// A softphone behind NAT (its Contact names a private address): granted 120 s instead of the
/// hour it asked (its re-REGISTERs then keep the NAT open), and its DID call is sent to the
/// address its REGISTER came from, not to the private one.
#[test]
fn a_softphone_behind_nat_gets_a_short_registration_and_its_calls() {
    let (carrier, gateway) = one_carrier();
    let phone = client_addr();
    let mut register = Sipp::start(
        "client_register_behind_nat",
        phone,
        Some(gateway.sip),
        1,
        &auth(PASSWORD),
    );
    assert_calls(
        register.finish(),
        1,
        "register (120 s granted)",
        &gateway,
        &[&register],
    );
    let mut softphone = Sipp::start("client_answer", phone, None, 1, &[]);
    carrier_calls_alice(&gateway, carrier, &mut softphone);
    assert!(
        softphone
            .messages()
            .contains("INVITE sip:alice@192.168.1.20:5062"),
        "the registered contact is the Request-URI:\n{}",
        softphone.messages()
    );
    gateway.assert_idle();
}

#[test]
fn a_did_with_nobody_registered_gets_480() {
    let (carrier, gateway) = one_carrier();
    let mut trunk = Sipp::start(
        "carrier_call_unavailable",
        carrier,
        Some(gateway.sip),
        1,
        &["-s", "+15551230001"],
    );
    assert_calls(trunk.finish(), 1, "carrier", &gateway, &[&trunk]);
    gateway.assert_idle();
}

#[test]
fn malformed_sip_during_a_call_changes_nothing() {
    let (carrier, gateway) = one_carrier();
    let mut trunk = Sipp::start("carrier_answer", carrier, None, 1, &["-rtp_echo"]);
    std::thread::sleep(Duration::from_millis(300));
    let mut client = client_dials(&gateway, "client_call", "+15557654321");
    let attacker = UdpSocket::bind("127.0.0.1:0").expect("socket");
    let junk: [&[u8]; 6] = [
        b"INVITE sip:x SIP/2.0\r\n\r\n",
        b"SIP/2.0 200 OK\r\nVia: garbage\r\n\r\n",
        b"\x00\x01\x02\x03 not sip at all",
        b"BYE sip:alice@127.0.0.1 SIP/2.0\r\nContent-Length: 99999\r\n\r\n",
        &[0xFF; 1400],
        b"OPTIONS sip:a SIP/2.0\r\nVia: SIP/2.0/UDP [::1\r\n\r\n",
    ];
    for _ in 0..100 {
        for datagram in junk {
            let _ = attacker.send_to(datagram, gateway.sip);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_calls(client.finish(), 1, "client", &gateway, &[&client, &trunk]);
    assert_calls(trunk.finish(), 1, "carrier", &gateway, &[&client, &trunk]);
    gateway.assert_idle();
}

#[test]
fn twenty_concurrent_calls_all_complete_and_leave_nothing_behind() {
    let (carrier, gateway) = one_carrier();
    let mut trunk = Sipp::start("carrier_answer", carrier, None, 20, &["-rtp_echo"]);
    std::thread::sleep(Duration::from_millis(300));
    let mut args = auth(PASSWORD).to_vec();
    args.extend(["-s", "+15557654321", "-l", "20", "-r", "20"]);
    let mut client = Sipp::start("client_call", client_addr(), Some(gateway.sip), 20, &args);
    assert_calls(client.finish(), 20, "clients", &gateway, &[&client, &trunk]);
    assert_calls(trunk.finish(), 20, "carrier", &gateway, &[&client, &trunk]);
    let cdrs = gateway.wait_cdrs(20);
    assert_eq!(cdrs.len(), 20);
    assert!(cdrs.iter().all(|c| c["outcome"] == "answered"), "{cdrs:?}");
    gateway.assert_idle();
}

#[test]
fn the_carrier_hangs_up_and_the_client_gets_the_bye() {
    let (carrier, gateway) = one_carrier();
    let mut trunk = Sipp::start("carrier_answer_then_bye", carrier, None, 1, &[]);
    std::thread::sleep(Duration::from_millis(300));
    let mut client = client_dials(&gateway, "client_call_wait_bye", "+15557654321");
    assert_calls(trunk.finish(), 1, "carrier", &gateway, &[&client, &trunk]);
    assert_calls(client.finish(), 1, "client", &gateway, &[&client, &trunk]);
    let cdrs = gateway.wait_cdrs(1);
    assert_eq!(cdrs[0]["ended_by"], "trunk");
    gateway.assert_idle();
}

#[test]
fn a_call_without_media_is_ended_by_the_rtp_timeout() {
    let carrier = carrier_addr(2);
    let gateway = Gateway::start_with_env(
        &[TestTrunk {
            name: "carrier",
            addr: carrier,
            probe: false,
        }],
        &[("LANDLINE__MEDIA__RTP_TIMEOUT", "2s")],
    );
    // Neither SIPp side sends RTP; both wait for the gateway's BYE.
    let mut trunk = Sipp::start("carrier_answer", carrier, None, 1, &[]);
    std::thread::sleep(Duration::from_millis(300));
    let mut client = client_dials(&gateway, "client_call_wait_bye", "+15557654321");
    assert_calls(client.finish(), 1, "client", &gateway, &[&client, &trunk]);
    assert_calls(trunk.finish(), 1, "carrier", &gateway, &[&client, &trunk]);
    let cdrs = gateway.wait_cdrs(1);
    assert_eq!(cdrs[0]["ended_by"], "gateway");
    assert_eq!(cdrs[0]["hangup_cause"], "media_timeout");
    gateway.assert_idle();
}

#[test]
fn hold_and_unhold_from_the_client_are_passed_on_to_the_carrier() {
    let (carrier, gateway) = one_carrier();
    let mut trunk = Sipp::start("carrier_hold", carrier, None, 1, &["-rtp_echo"]);
    std::thread::sleep(Duration::from_millis(300));
    let mut client = client_dials(&gateway, "client_call_hold", "+15557654321");
    // Each side checks the direction it is shown (SIPp ereg check_it fails the call otherwise).
    assert_calls(client.finish(), 1, "client", &gateway, &[&client, &trunk]);
    assert_calls(trunk.finish(), 1, "carrier", &gateway, &[&client, &trunk]);
    gateway.assert_idle();
}

#[test]
fn a_carrier_refusal_reaches_the_client_with_its_reason() {
    let (carrier, gateway) = one_carrier();
    let mut trunk = Sipp::start("carrier_503", carrier, None, 1, &[]);
    std::thread::sleep(Duration::from_millis(300));
    let mut client = client_dials(&gateway, "client_call_refused", "+15557654321");
    assert_calls(client.finish(), 1, "client", &gateway, &[&client, &trunk]);
    assert_calls(trunk.finish(), 1, "carrier", &gateway, &[&client, &trunk]);
    let at_client = client.messages();
    assert!(
        at_client.contains("Reason: SIP;cause=503;text=\"Service Unavailable\""),
        "the carrier's cause is passed on (RFC 3326):\n{at_client}"
    );
    let cdrs = gateway.wait_cdrs(1);
    assert_eq!(cdrs[0]["hangup_cause"], "carrier_503");
    gateway.assert_idle();
}

#[test]
fn a_did_whose_registration_is_busy_gets_486() {
    let (carrier, gateway) = one_carrier();
    let mut softphone = registered_softphone(&gateway, "client_busy");
    std::thread::sleep(Duration::from_millis(300));
    let mut trunk = Sipp::start(
        "carrier_call_busy",
        carrier,
        Some(gateway.sip),
        1,
        &["-s", "+15551230001"],
    );
    assert_calls(
        trunk.finish(),
        1,
        "carrier",
        &gateway,
        &[&trunk, &softphone],
    );
    assert_calls(
        softphone.finish(),
        1,
        "softphone",
        &gateway,
        &[&trunk, &softphone],
    );
    let cdrs = gateway.wait_cdrs(1);
    assert_eq!(cdrs[0]["outcome"], "busy");
    gateway.assert_idle();
}
