//! SIGHUP reloads the configuration while calls run: changed passwords, new users, trunks and
//! routes apply to the next call; a call in progress on a trunk the reload removed goes on to
//! its normal end; a broken file is refused and the running configuration stays.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;

fn at(last: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, last], free_port()))
}

fn trunk(name: &str, addr: SocketAddr) -> String {
    format!(
        "\n[[trunks]]\nname = \"{name}\"\nkind = \"ip\"\naddress = \"{addr}\"\n\
         codecs = [\"pcmu\"]\nprobe_interval = \"0s\"\n"
    )
}

fn route(trunk: &str) -> String {
    format!("\n[[routes]]\nprefix = \"\"\ntrunks = [\"{trunk}\"]\n")
}

/// Waits until `metric` reaches `value`.
fn wait_metric(gateway: &Gateway, metric: &str, value: f64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while gateway.metric(metric) < value {
        assert!(
            Instant::now() < deadline,
            "{metric} never reached {value}:\n{}",
            gateway.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Rewrites the gateway's configuration file with `edit` and sends SIGHUP.
fn reload(gateway: &Gateway, edit: impl FnOnce(String) -> String) {
    let path = gateway.dir.join("landline.toml");
    let text = std::fs::read_to_string(&path).expect("config file");
    std::fs::write(&path, edit(text)).expect("write config");
    gateway.signal("HUP");
}

fn dial(gateway: &Gateway, scenario: &str, user: &str, password: &str, extra: &[&str]) -> Sipp {
    let mut args = vec!["-au", user, "-ap", password, "-s", "+15557654321"];
    args.extend(extra);
    Sipp::start(scenario, at(1), Some(gateway.sip), 1, &args)
}

#[test]
fn a_reload_applies_to_new_calls_and_leaves_running_ones_alone() {
    let (first, second) = (at(2), at(3));
    let gateway = Gateway::start_with_config(&(trunk("first", first) + &route("first")), &[]);
    let mut first_carrier = Sipp::start("carrier_answer", first, None, 1, &["-rtp_echo"]);
    let mut second_carrier = Sipp::start("carrier_answer", second, None, 1, &["-rtp_echo"]);
    std::thread::sleep(Duration::from_millis(300));

    // A call through the first trunk, still talking when the reload comes.
    let mut long_call = dial(
        &gateway,
        "client_call_long",
        "alice",
        PASSWORD,
        &["-d", "4000"],
    );
    wait_metric(&gateway, "landline_calls_active", 1.0);

    // Alice's password changes, bob is added, the first trunk is replaced by the second.
    reload(&gateway, |text| {
        let text = text.replace(PASSWORD, "a-new-password");
        let start = text.find("\n[[trunks]]").expect("trunk in the config");
        format!(
            "{}\n[[users]]\nusername = \"bob\"\npassword = \"bobs-password\"\n\
             dids = [\"+15551230002\"]\ncountry = \"1\"\n{}{}",
            &text[..start],
            trunk("second", second),
            route("second")
        )
    });
    wait_metric(&gateway, "landline_config_reloads_total", 1.0);
    assert!(
        gateway.log().contains("configuration reloaded"),
        "{}",
        gateway.log()
    );

    // The running call ends normally through the trunk that is gone from the configuration.
    let stats = long_call.finish();
    assert_calls(
        stats,
        1,
        "the call running across the reload",
        &gateway,
        &[&long_call, &first_carrier],
    );
    let stats = first_carrier.finish();
    assert_calls(
        stats,
        1,
        "the removed trunk's carrier",
        &gateway,
        &[&first_carrier],
    );

    // Alice's old password no longer works; nothing reaches a carrier.
    let mut refused = dial(&gateway, "client_wrong_password", "alice", PASSWORD, &[]);
    let stats = refused.finish();
    assert_calls(
        stats,
        1,
        "alice with her old password",
        &gateway,
        &[&refused],
    );

    // Bob, new in the file, calls out; the new route sends him to the second trunk.
    let mut bob = dial(&gateway, "client_call", "bob", "bobs-password", &[]);
    let stats = bob.finish();
    assert_calls(stats, 1, "bob's call", &gateway, &[&bob, &second_carrier]);
    let stats = second_carrier.finish();
    assert_calls(
        stats,
        1,
        "the new trunk's carrier",
        &gateway,
        &[&second_carrier],
    );
    assert!(
        second_carrier
            .messages()
            .contains("From: <sip:+15551230002@"),
        "bob's DID is his caller ID:\n{}",
        second_carrier.messages()
    );
    let cdrs = gateway.wait_cdrs(2);
    let trunks: Vec<_> = cdrs.iter().map(|c| c["trunk"].clone()).collect();
    assert_eq!(trunks, ["first", "second"], "{cdrs:?}");
    assert_eq!(
        gateway.metric("landline_trunk_up"),
        1.0,
        "second up, first retired"
    );
    gateway.assert_idle();
}

#[test]
fn a_broken_file_is_refused_and_the_running_configuration_stays() {
    let carrier = at(2);
    let gateway = Gateway::start_with_config(&(trunk("carrier", carrier) + &route("carrier")), &[]);
    let mut trunk_side = Sipp::start("carrier_answer", carrier, None, 1, &["-rtp_echo"]);
    std::thread::sleep(Duration::from_millis(300));

    // A route to a trunk that does not exist: the whole file is refused.
    reload(&gateway, |text| {
        text.replace("trunks = [\"carrier\"]", "trunks = [\"no-such-trunk\"]")
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    while !gateway.log().contains("reload refused") {
        assert!(
            Instant::now() < deadline,
            "no refusal logged:\n{}",
            gateway.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        gateway.log().contains("no-such-trunk"),
        "the refusal names the problem:\n{}",
        gateway.log()
    );
    assert_eq!(gateway.metric("landline_config_reloads_total"), 1.0);

    // A listener change is valid but waits for a restart; the rest applies.
    reload(&gateway, |text| {
        text.replace("trunks = [\"no-such-trunk\"]", "trunks = [\"carrier\"]")
            .replace("shards = 2", "shards = 3")
    });
    wait_metric(&gateway, "landline_config_reloads_total", 2.0);
    assert!(
        gateway
            .log()
            .contains("running values stay until a restart"),
        "{}",
        gateway.log()
    );

    // Calls still go out as before.
    let mut client = dial(&gateway, "client_call", "alice", PASSWORD, &[]);
    let stats = client.finish();
    assert_calls(
        stats,
        1,
        "a call after the refused reload",
        &gateway,
        &[&client, &trunk_side],
    );
    let stats = trunk_side.finish();
    assert_calls(stats, 1, "carrier", &gateway, &[&trunk_side]);
    gateway.assert_idle();
}
