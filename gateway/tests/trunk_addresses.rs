//! A trunk with several `addresses`: a call tries them in order (503, 408, a timeout or a
//! transport failure moves it to the next), and OPTIONS probes mark each address up or down on
//! its own, so a call skips an address known to be down. SIPp plays the carrier's addresses on
//! 127.0.0.2 and 127.0.0.3.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;

fn client_dials(gateway: &Gateway) -> Sipp {
    Sipp::start(
        "client_call",
        SocketAddr::from(([127, 0, 0, 1], free_port())),
        Some(gateway.sip),
        1,
        &["-au", "alice", "-ap", PASSWORD, "-s", "+15557654321"],
    )
}

/// One trunk `carrier` at `addresses`, the only route.
fn one_trunk(addresses: &[SocketAddr], probe: &str) -> String {
    let list: Vec<String> = addresses.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        r#"
[[trunks]]
name = "carrier"
kind = "ip"
addresses = [{}]
codecs = ["pcmu", "pcma"]
{probe}

[[routes]]
prefix = ""
trunks = ["carrier"]
"#,
        list.join(", ")
    )
}

#[test]
fn a_503_at_the_first_address_moves_the_call_to_the_second() {
    let first = SocketAddr::from(([127, 0, 0, 2], free_port()));
    let second = SocketAddr::from(([127, 0, 0, 3], free_port()));
    let gateway =
        Gateway::start_with_config(&one_trunk(&[first, second], "probe_interval = \"0s\""), &[]);
    let mut refusing = Sipp::start("carrier_503", first, None, 1, &[]);
    let mut answering = Sipp::start("carrier_answer", second, None, 1, &["-rtp_echo"]);
    std::thread::sleep(Duration::from_millis(300));
    let mut client = client_dials(&gateway);
    assert_calls(
        client.finish(),
        1,
        "client",
        &gateway,
        &[&client, &refusing, &answering],
    );
    assert_calls(
        refusing.finish(),
        1,
        "first address",
        &gateway,
        &[&refusing],
    );
    assert_calls(
        answering.finish(),
        1,
        "second address",
        &gateway,
        &[&answering],
    );
    // The second address was asked as itself: its Request-URI names it.
    assert!(
        answering
            .messages()
            .contains(&format!("INVITE sip:+15557654321@{second}")),
        "{}",
        answering.messages()
    );
    let cdrs = gateway.wait_cdrs(1);
    assert_eq!(cdrs[0]["trunk"], "carrier");
    assert_eq!(cdrs[0]["outcome"], "answered", "{cdrs:?}");
    gateway.assert_idle();
}

#[test]
fn an_address_the_probes_took_down_is_skipped_and_the_trunk_stays_up() {
    // Nothing answers at the first address: its one lost probe (64 × T1 = 6.4 s here) takes
    // it down; the second answers its probes (SIPp -aa) and the call.
    let dead = SocketAddr::from(([127, 0, 0, 2], free_port()));
    let live = SocketAddr::from(([127, 0, 0, 3], free_port()));
    // SIPp counts each probe it answers as a call: let it take many, and stop it at the end.
    let mut answering = Sipp::start("carrier_answer", live, None, 1000, &["-rtp_echo"]);
    let gateway = Gateway::start_with_config(
        &one_trunk(
            &[dead, live],
            "probe_interval = \"1s\"\nprobe_up_after = 1\nprobe_down_after = 1",
        ),
        &[],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let marker = format!("address=Some({dead}) up=false");
    while !gateway.log().contains(&marker) {
        assert!(
            Instant::now() < deadline,
            "the dead address was never marked down:\n{}",
            gateway.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        gateway.metric("landline_trunk_up"),
        1.0,
        "one address answering keeps the trunk up"
    );
    let started = Instant::now();
    let mut client = client_dials(&gateway);
    assert_calls(
        client.finish(),
        1,
        "client",
        &gateway,
        &[&client, &answering],
    );
    answering.stop();
    let at_live = answering.messages();
    assert!(
        at_live.contains("INVITE sip:+15557654321@") && at_live.contains("BYE sip:"),
        "{at_live}"
    );
    // client_call talks for 1 s; an INVITE to the dead address would have cost 6.4 s more.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    let log = gateway.log();
    assert!(
        !log.contains(&format!(
            "INVITE to trunk call=2 trunk=carrier destination={dead}"
        )),
        "the call went to the dead address:\n{log}"
    );
    let cdrs = gateway.wait_cdrs(1);
    assert_eq!(cdrs[0]["outcome"], "answered", "{cdrs:?}");
    gateway.assert_idle();
}
