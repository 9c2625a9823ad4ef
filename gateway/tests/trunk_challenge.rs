//! `challenge_inbound`: a trunk whose calls must carry its account's digest credentials. SIPp
//! plays the carrier on 127.0.0.2: challenged (401), it answers with the account and the call
//! is admitted; with a wrong password, or a client's account, it never becomes a call.

mod common;

use std::net::SocketAddr;

use common::*;

fn gateway(carrier: SocketAddr) -> Gateway {
    Gateway::start_with_config(
        &format!(
            r#"
[[trunks]]
name = "carrier"
kind = "ip"
address = "{carrier}"
auth = {{ username = "carrier-account", password = "trunk-secret", challenge_inbound = true }}
probe_interval = "0s"

[[routes]]
prefix = ""
trunks = ["carrier"]
"#
        ),
        &[],
    )
}

fn carrier_calls(gateway: &Gateway, carrier: SocketAddr, scenario: &str, auth: [&str; 2]) -> Sipp {
    Sipp::start(
        scenario,
        carrier,
        Some(gateway.sip),
        1,
        &["-s", "+15551230001", "-au", auth[0], "-ap", auth[1]],
    )
}

#[test]
fn a_carrier_that_answers_the_challenge_with_its_account_is_admitted() {
    let carrier = SocketAddr::from(([127, 0, 0, 2], free_port()));
    let gateway = gateway(carrier);
    let mut trunk = carrier_calls(
        &gateway,
        carrier,
        "carrier_call_challenged",
        ["carrier-account", "trunk-secret"],
    );
    assert_calls(trunk.finish(), 1, "carrier", &gateway, &[&trunk]);
    let messages = trunk.messages();
    assert!(
        messages.contains("SIP/2.0 401 Unauthorized")
            && messages.contains("WWW-Authenticate: Digest"),
        "{messages}"
    );
    // Admitted: the call was set up and refused for want of a registration, as a call.
    let cdrs = gateway.wait_cdrs(1);
    assert_eq!(cdrs.len(), 1, "{cdrs:?}");
    assert_eq!(cdrs[0]["direction"], "inbound");
    assert_eq!(cdrs[0]["hangup_cause"], "not_registered", "{cdrs:?}");
    gateway.assert_idle();
}

#[test]
fn a_wrong_password_or_a_clients_account_from_the_carrier_never_becomes_a_call() {
    let carrier = SocketAddr::from(([127, 0, 0, 2], free_port()));
    let gateway = gateway(carrier);
    for auth in [["carrier-account", "guess"], ["alice", PASSWORD]] {
        let mut trunk = carrier_calls(&gateway, carrier, "carrier_call_challenged_refused", auth);
        assert_calls(trunk.finish(), 1, "carrier", &gateway, &[&trunk]);
    }
    assert!(gateway.cdrs().is_empty(), "{:?}", gateway.cdrs());
    assert_eq!(gateway.metric("landline_calls_finished_total"), 0.0);
    gateway.assert_idle();
}
