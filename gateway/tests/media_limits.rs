//! The media plane's limits, end to end: when the RTP port range is used up, a new call is
//! refused with 503 and the calls in progress go on; the ports come back when they end.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Gateway, PASSWORD, Sipp, TestTrunk, free_port, rtp_range};

#[test]
fn a_call_beyond_the_rtp_port_range_gets_503_and_the_others_go_on() {
    // Six even ports: one WebRTC port for each of the two shards, and four for two calls.
    let (first, _) = rtp_range();
    let (min, max) = (first.to_string(), (first + 11).to_string());
    let carrier = SocketAddr::new([127, 0, 0, 2].into(), free_port());
    let gateway = Gateway::start_with_env(
        &[TestTrunk {
            name: "carrier",
            addr: carrier,
            probe: false,
        }],
        &[
            ("LANDLINE__MEDIA__RTP_PORT_MIN", &min),
            ("LANDLINE__MEDIA__RTP_PORT_MAX", &max),
        ],
    );
    assert_eq!(gateway.metric("landline_rtp_ports"), 4.0, "call ports");
    let mut trunk = Sipp::start("carrier_answer", carrier, None, 2, &["-rtp_echo"]);
    std::thread::sleep(Duration::from_millis(300));
    let client = SocketAddr::new([127, 0, 0, 1].into(), free_port());
    let mut clients = Sipp::start(
        "client_call",
        client,
        Some(gateway.sip),
        3,
        &[
            "-au",
            "alice",
            "-ap",
            PASSWORD,
            "-s",
            "+15557654321",
            "-r",
            "10",
            "-l",
            "3",
        ],
    );
    let client_stats = clients.finish();
    let trunk_stats = trunk.finish();
    assert_eq!(
        (client_stats.successful, client_stats.failed),
        (2, 1),
        "two calls fit, the third is refused\n{}",
        clients.diagnostics()
    );
    common::assert_calls(trunk_stats, 2, "carrier", &gateway, &[&trunk, &clients]);
    assert!(
        clients
            .messages()
            .contains("SIP/2.0 503 Service Unavailable"),
        "the refused call gets 503:\n{}",
        clients.messages()
    );
    let records = gateway.wait_cdrs(3);
    let refused: Vec<_> = records
        .iter()
        .filter(|r| r["hangup_cause"] == "rtp_ports_exhausted")
        .collect();
    assert_eq!(refused.len(), 1, "{records:?}");
    assert_eq!(refused[0]["sip_status"], 503);
    assert_eq!(
        records
            .iter()
            .filter(|r| r["outcome"] == "answered")
            .count(),
        2,
        "{records:?}"
    );
    gateway.assert_idle();
}
