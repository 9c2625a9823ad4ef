//! How a call's end crosses the B2BUA: the `Reason` (RFC 3326) of a BYE or CANCEL on one leg
//! reaches the other leg, and the call record names both legs' SIP Call-IDs. SIPp plays the
//! client (127.0.0.1) and the carrier (127.0.0.2); each side's message log shows what it got.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;

fn one_carrier() -> (SocketAddr, Gateway) {
    let carrier = SocketAddr::from(([127, 0, 0, 2], free_port()));
    let gateway = Gateway::start(&[TestTrunk {
        name: "carrier",
        addr: carrier,
        probe: false,
    }]);
    (carrier, gateway)
}

fn client_dials(gateway: &Gateway, scenario: &str) -> Sipp {
    Sipp::start(
        scenario,
        SocketAddr::from(([127, 0, 0, 1], free_port())),
        Some(gateway.sip),
        1,
        &["-au", "alice", "-ap", PASSWORD, "-s", "+15557654321"],
    )
}

/// The requests of `method` a SIPp side received, each as its text, from its message log
/// (SIPp writes every message under a `received` or `sent` line).
fn received(side: &Sipp, method: &str) -> Vec<String> {
    side.messages()
        .split("----------------------------------------------")
        .filter(|block| block.contains("message received"))
        .filter_map(|block| {
            let start = block.find(&format!("{method} sip:"))?;
            Some(block[start..].to_owned())
        })
        .collect()
}

/// The Call-ID a SIPp side used or saw first.
fn call_id(side: &Sipp) -> String {
    side.messages()
        .lines()
        .find_map(|l| l.strip_prefix("Call-ID: "))
        .unwrap_or("none")
        .trim()
        .to_owned()
}

#[test]
fn the_clients_bye_reason_reaches_the_carrier_and_the_record_names_both_call_ids() {
    let (carrier, gateway) = one_carrier();
    let mut trunk = Sipp::start("carrier_answer", carrier, None, 1, &["-rtp_echo"]);
    std::thread::sleep(Duration::from_millis(300));
    let mut client = client_dials(&gateway, "client_call_bye_reason");
    assert_calls(client.finish(), 1, "client", &gateway, &[&client, &trunk]);
    assert_calls(trunk.finish(), 1, "carrier", &gateway, &[&client, &trunk]);
    let byes = received(&trunk, "BYE");
    assert_eq!(byes.len(), 1, "{}", trunk.messages());
    assert!(
        byes[0].contains("Reason: Q.850;cause=16;text=\"Normal call clearing\""),
        "the client's cause is passed on:\n{}",
        byes[0]
    );

    let cdrs = gateway.wait_cdrs(1);
    assert_eq!(cdrs.len(), 1, "{cdrs:?}");
    let (client_id, trunk_id) = (call_id(&client), call_id(&trunk));
    assert_eq!(cdrs[0]["client_call_id"], client_id.as_str(), "{cdrs:?}");
    assert_eq!(cdrs[0]["trunk_call_id"], trunk_id.as_str(), "{cdrs:?}");
    assert_ne!(client_id, trunk_id, "each leg has its own Call-ID");
    gateway.assert_idle();
}

#[test]
fn the_carriers_bye_reason_reaches_the_client() {
    let (carrier, gateway) = one_carrier();
    let mut trunk = Sipp::start("carrier_answer_then_bye_reason", carrier, None, 1, &[]);
    std::thread::sleep(Duration::from_millis(300));
    let mut client = client_dials(&gateway, "client_call_wait_bye");
    assert_calls(trunk.finish(), 1, "carrier", &gateway, &[&client, &trunk]);
    assert_calls(client.finish(), 1, "client", &gateway, &[&client, &trunk]);
    let byes = received(&client, "BYE");
    assert_eq!(byes.len(), 1, "{}", client.messages());
    assert!(
        byes[0].contains("Reason: Q.850;cause=16;text=\"Normal call clearing\""),
        "the carrier's cause is passed on:\n{}",
        byes[0]
    );
    let cdrs = gateway.wait_cdrs(1);
    assert_eq!(cdrs[0]["ended_by"], "trunk");
    assert_eq!(cdrs[0]["trunk_call_id"], call_id(&trunk).as_str());
    gateway.assert_idle();
}

#[test]
fn the_clients_cancel_reason_reaches_the_carrier() {
    let (carrier, gateway) = one_carrier();
    let mut trunk = Sipp::start("carrier_ring_cancel", carrier, None, 1, &[]);
    std::thread::sleep(Duration::from_millis(300));
    let mut client = client_dials(&gateway, "client_cancel_reason");
    assert_calls(client.finish(), 1, "client", &gateway, &[&client, &trunk]);
    assert_calls(trunk.finish(), 1, "carrier", &gateway, &[&client, &trunk]);
    let cancels = received(&trunk, "CANCEL");
    assert_eq!(cancels.len(), 1, "{}", trunk.messages());
    assert!(
        cancels[0].contains("Reason: Q.850;cause=31;text=\"Normal unspecified\""),
        "the client's cause is passed on:\n{}",
        cancels[0]
    );
    let cdrs = gateway.wait_cdrs(1);
    assert_eq!(cdrs[0]["outcome"], "cancelled");
    assert!(cdrs[0]["client_call_id"].is_string() && cdrs[0]["trunk_call_id"].is_string());
    gateway.assert_idle();
}

#[test]
fn a_bye_without_a_reason_is_passed_on_without_one() {
    let (carrier, gateway) = one_carrier();
    let mut trunk = Sipp::start("carrier_answer", carrier, None, 1, &["-rtp_echo"]);
    std::thread::sleep(Duration::from_millis(300));
    let mut client = client_dials(&gateway, "client_call");
    assert_calls(client.finish(), 1, "client", &gateway, &[&client, &trunk]);
    assert_calls(trunk.finish(), 1, "carrier", &gateway, &[&client, &trunk]);
    let byes = received(&trunk, "BYE");
    assert_eq!(byes.len(), 1, "{}", trunk.messages());
    assert!(!byes[0].contains("Reason:"), "{}", byes[0]);
    gateway.assert_idle();
}

/// The gateway ends a call itself when no RTP comes (neither SIPp side sends any): both BYEs
/// carry its own `Reason` (Q.850 41, "Media timeout"), checked by each SIPp scenario, which
/// fails the call without it; the record keeps it.
#[test]
fn a_media_timeout_hang_up_says_why_to_both_legs_and_in_the_record() {
    let carrier = SocketAddr::from(([127, 0, 0, 2], free_port()));
    let gateway = Gateway::start_with_env(
        &[TestTrunk {
            name: "carrier",
            addr: carrier,
            probe: false,
        }],
        &[("LANDLINE__MEDIA__RTP_TIMEOUT", "2s")],
    );
    let mut trunk = Sipp::start("carrier_answer_media_timeout", carrier, None, 1, &[]);
    std::thread::sleep(Duration::from_millis(300));
    let mut client = client_dials(&gateway, "client_call_media_timeout");
    assert_calls(client.finish(), 1, "client", &gateway, &[&client, &trunk]);
    assert_calls(trunk.finish(), 1, "carrier", &gateway, &[&client, &trunk]);
    for (side, who) in [(&client, "client"), (&trunk, "carrier")] {
        let byes = received(side, "BYE");
        assert_eq!(byes.len(), 1, "{who}: {}", side.messages());
        assert!(
            byes[0].contains("Reason: Q.850;cause=41;text=\"Media timeout\""),
            "{who}:\n{}",
            byes[0]
        );
    }
    let cdrs = gateway.wait_cdrs(1);
    assert_eq!(cdrs[0]["ended_by"], "gateway", "{cdrs:?}");
    assert_eq!(cdrs[0]["hangup_cause"], "media_timeout");
    assert_eq!(
        cdrs[0]["hangup_reason"],
        "Q.850;cause=41;text=\"Media timeout\""
    );
    gateway.assert_idle();
}
