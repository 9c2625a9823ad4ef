//! SIGTERM drains: new work is refused (OPTIONS 503, so a load balancer moves away), the call
//! in progress finishes normally, and the process then exits 0 by itself.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn sigterm_lets_the_active_call_finish_then_exits() {
    let carrier = SocketAddr::from(([127, 0, 0, 2], free_port()));
    let mut gateway = Gateway::start(&[TestTrunk {
        name: "carrier",
        addr: carrier,
        probe: false,
    }]);
    assert_eq!(gateway.options_status().as_deref(), Some("SIP/2.0 200 OK"));
    let mut trunk = Sipp::start("carrier_answer", carrier, None, 1, &["-rtp_echo"]);
    std::thread::sleep(Duration::from_millis(300));
    let port = free_port().to_string();
    let args = [
        "-au",
        "alice",
        "-ap",
        PASSWORD,
        "-s",
        "+15557654321",
        "-key",
        "rtp_port",
        &port,
    ];
    let mut client = Sipp::start(
        "client_call_media",
        SocketAddr::from(([127, 0, 0, 1], free_port())),
        Some(gateway.sip),
        1,
        &args,
    );
    // Wait for the answer, then ask the gateway to stop while the call is up (6 s long).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !client.messages().contains("SIP/2.0 200 OK") {
        assert!(
            Instant::now() < deadline,
            "the call was never answered:\n{}",
            client.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    gateway.signal("TERM");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        gateway.options_status().as_deref(),
        Some("SIP/2.0 503 Service Unavailable"),
        "a draining gateway turns its load balancer away"
    );
    assert_calls(client.finish(), 1, "client", &gateway, &[&client, &trunk]);
    assert_calls(trunk.finish(), 1, "carrier", &gateway, &[&client, &trunk]);
    assert_eq!(
        gateway.wait_exit(Duration::from_secs(10)),
        Some(0),
        "{}",
        gateway.log()
    );
    let cdrs = gateway.cdrs();
    assert_eq!(cdrs.len(), 1);
    assert_eq!(cdrs[0]["outcome"], "answered");
}
