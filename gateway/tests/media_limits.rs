//! The media plane's limits, end to end: when the RTP port range is used up, a new call is
//! refused with 503 and the calls in progress go on; the ports come back when they end. And
//! `media.realtime_priority` puts the shard threads, and only them, under SCHED_RR.

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

/// Each thread of `pid` by name, with its scheduling policy and real-time priority
/// (`/proc/<pid>/task/<tid>/stat` fields 41 and 40; the name in parentheses may hold spaces).
fn thread_policies(pid: u32) -> Vec<(String, u32, u32)> {
    let mut threads = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return threads;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_string();
        // Fields after the name start at field 3 (state); priority is 40, policy 41.
        let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let field = |n: usize| {
            rest.get(n - 3)
                .and_then(|v| v.parse().ok())
                .unwrap_or(u32::MAX)
        };
        threads.push((name, field(41), field(40)));
    }
    threads
}

#[test]
fn realtime_priority_puts_the_shards_and_only_them_under_sched_rr() {
    const SCHED_RR: u32 = 2;
    let gateway = Gateway::start_with_env(&[], &[("LANDLINE__MEDIA__REALTIME_PRIORITY", "7")]);
    let threads = thread_policies(gateway.pid());
    let shards: Vec<_> = threads
        .iter()
        .filter(|t| t.0.starts_with("media-"))
        .collect();
    assert_eq!(shards.len(), 2, "two shard threads: {threads:?}");
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    });
    if root {
        for (name, policy, priority) in &shards {
            assert_eq!((*policy, *priority), (SCHED_RR, 7), "{name} in {threads:?}");
        }
    } else {
        // Without the right to it, each shard says how to grant it and runs on.
        let log = gateway.log();
        assert!(
            log.contains("LimitRTPRIO=7"),
            "no warning naming the fix:\n{log}"
        );
    }
    let others: Vec<_> = threads
        .iter()
        .filter(|t| !t.0.starts_with("media-"))
        .collect();
    assert!(!others.is_empty());
    for (name, policy, _) in &others {
        assert_eq!(*policy, 0, "{name} should stay SCHED_OTHER: {threads:?}");
    }
    gateway.assert_idle();
}
