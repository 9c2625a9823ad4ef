//! Several landline nodes behind a real SIP load balancer: Kamailio 5.6 with its `dispatcher`
//! module (`tests/kamailio/dispatcher.cfg`), as DESIGN.md's "Scale beyond one machine" has it.
//!
//! ```text
//!  PSTN caller (SIPp UAC) 127.0.0.3 ── Kamailio 127.0.0.4 ──┬── landline A 127.0.0.1:a ──┐
//!                                      round robin,         └── landline B 127.0.0.1:b ──┴─ alice's
//!                                      OPTIONS probes                       softphone (SIPp UAS),
//!                                                                           registered on both
//! ```
//!
//! Calls are spread over both nodes; a node told to stop (SIGTERM) keeps its call, answers the
//! balancer's probes 503, is taken out, and the next calls all go to the other node; it exits
//! once its call ends.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::kamailio::Kamailio;
use common::*;

const ALICE_DID: &str = "+15551230001";

/// A landline node whose trunk is the balancer (calls from its address are the carrier's).
fn node(balancer: SocketAddr) -> Gateway {
    Gateway::start_with_config(
        &format!(
            "\n[[trunks]]\nname = \"carrier\"\nkind = \"ip\"\naddress = \"{balancer}\"\n\
             codecs = [\"pcmu\"]\nprobe_interval = \"0s\"\n"
        ),
        &[],
    )
}

/// Waits for `condition`, or fails with `what` and the diagnostics.
fn wait_for(
    what: &str,
    limit: Duration,
    diagnostics: impl Fn() -> String,
    condition: impl Fn() -> bool,
) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}:\n{}", diagnostics());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `calls` PSTN calls to alice's DID through the balancer, one at a time, each `talk_ms` long.
fn pstn_calls(balancer: &Kamailio, calls: u64, talk_ms: u64) -> Sipp {
    Sipp::start(
        "pstn_call_via_proxy",
        SocketAddr::from(([127, 0, 0, 3], free_port())),
        Some(balancer.addr),
        calls,
        &["-s", ALICE_DID, "-l", "1", "-d", &talk_ms.to_string()],
    )
}

/// Calls a node has finished (answered ones, from its records).
fn answered(gateway: &Gateway) -> usize {
    gateway
        .cdrs()
        .iter()
        .filter(|c| c["outcome"] == "answered")
        .count()
}

#[test]
fn calls_are_spread_over_nodes_and_a_draining_node_is_taken_out() {
    let balancer_addr = SocketAddr::from(([127, 0, 0, 4], free_port()));
    let (a, b) = (node(balancer_addr), node(balancer_addr));
    let dir = std::env::temp_dir().join(format!("landline-lb-{}", balancer_addr.port()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let list = dir.join("dispatcher.list");
    std::fs::write(&list, format!("1 sip:{}\n1 sip:{}\n", a.sip, b.sip)).expect("list");
    let balancer = Kamailio::start(
        "dispatcher.cfg",
        balancer_addr,
        &[
            format!("DS_LIST=\"{}\"", list.display()),
            format!("PING_FROM=\"sip:balancer@{}\"", balancer_addr.ip()),
        ],
    );
    let (log_a, log_b) = (a.dir.join("landline.log"), b.dir.join("landline.log"));
    let diagnostics = || {
        let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
        format!(
            "--- balancer ---\n{}\n--- node A ---\n{}\n--- node B ---\n{}",
            balancer.run_log(),
            read(&log_a),
            read(&log_b)
        )
    };

    // alice's softphone registers on both nodes from one address, and answers whichever rings.
    let phone = SocketAddr::from(([127, 0, 0, 1], free_port()));
    for gateway in [&a, &b] {
        let mut register = Sipp::start(
            "client_register",
            phone,
            Some(gateway.sip),
            1,
            &["-au", "alice", "-ap", PASSWORD],
        );
        assert_calls(register.finish(), 1, "register", gateway, &[&register]);
    }
    let mut softphone = Sipp::start("client_answer", phone, None, 9, &[]);

    // Four calls, round robin: each node takes some.
    let mut first = pstn_calls(&balancer, 4, 300);
    let stats = first.finish();
    assert_calls(
        stats,
        4,
        "PSTN calls through the balancer",
        &a,
        &[&first, &softphone],
    );
    wait_for(
        "records of the first calls",
        Duration::from_secs(10),
        diagnostics,
        || answered(&a) + answered(&b) == 4,
    );
    let (on_a, on_b) = (answered(&a), answered(&b));
    assert!(
        on_a >= 1 && on_b >= 1,
        "calls spread over both nodes: A {on_a}, B {on_b}"
    );

    // A long call; the node carrying it is told to stop: it keeps the call, answers the
    // balancer's probes 503 and is taken out.
    let mut long = pstn_calls(&balancer, 1, 6000);
    wait_for(
        "the long call never started",
        Duration::from_secs(10),
        diagnostics,
        || a.metric("landline_calls_active") + b.metric("landline_calls_active") == 1.0,
    );
    let (mut draining, staying, before) = if a.metric("landline_calls_active") == 1.0 {
        (a, b, on_a)
    } else {
        (b, a, on_b)
    };
    draining.signal("TERM");
    wait_for(
        "the balancer never took the draining node out",
        Duration::from_secs(15),
        diagnostics,
        || balancer.count(&format!("node down sip:{}", draining.sip)) >= 1,
    );
    assert_eq!(
        draining.metric("landline_calls_active"),
        1.0,
        "the draining node still carries its call"
    );

    // The next calls all go to the other node.
    let mut next = pstn_calls(&balancer, 4, 200);
    let stats = next.finish();
    assert_calls(
        stats,
        4,
        "PSTN calls after the drain",
        &staying,
        &[&next, &softphone],
    );

    // The long call ends normally; the draining node exits cleanly once it is idle.
    let stats = long.finish();
    assert_calls(
        stats,
        1,
        "the call across the drain",
        &draining,
        &[&long, &softphone],
    );
    let exit = draining.wait_exit(Duration::from_secs(30));
    assert_eq!(
        exit,
        Some(0),
        "the draining node exits 0:\n{}",
        diagnostics()
    );
    wait_for(
        "records of every call",
        Duration::from_secs(10),
        diagnostics,
        || answered(&draining) + answered(&staying) == 9,
    );
    assert_eq!(
        answered(&draining),
        before + 1,
        "after its drain began the node took no new call:\n{}",
        diagnostics()
    );
    assert_calls(softphone.finish(), 9, "softphone", &staying, &[&softphone]);
    staying.assert_idle();
    let _ = std::fs::remove_dir_all(&dir);
}
