use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use super::*;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Writes `text` to a fresh temporary file.
fn file(text: &str) -> PathBuf {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path =
        std::env::temp_dir().join(format!("landline-config-{}-{n}.toml", std::process::id()));
    std::fs::write(&path, text).expect("temp dir is writable");
    path
}

fn load_env(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::load_layers(&file(text), None, Some(env))
}

fn load(text: &str) -> Result<Config, ConfigError> {
    load_env(text, &[])
}

/// The error for `text`, which must not load.
fn error(text: &str) -> ConfigError {
    match load(text) {
        Ok(_) => panic!("loaded, but should fail:\n{text}"),
        Err(e) => e,
    }
}

/// Asserts the error is about `key` and its message says each of `words`.
fn assert_error(text: &str, key: &str, words: &[&str]) {
    let e = error(text);
    let message = e.to_string();
    assert_eq!(e.key(), Some(key), "{message}");
    assert!(message.contains(".toml"), "names the file: {message}");
    for word in words {
        assert!(message.contains(word), "`{word}` missing from: {message}");
    }
}

fn shipped(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../conf")
        .join(name)
}

const TRUNK: &str = r#"
[[trunks]]
name = "carrier"
kind = "ip"
address = "127.0.0.1:5080"
"#;

#[test]
fn the_shipped_default_loads_cleanly() {
    let config = Config::load_layers(&shipped("landline.toml"), None, Some(HashMap::new()))
        .expect("conf/landline.toml is valid");
    assert_eq!(config.users.len(), 1);
    assert_eq!(config.users[0].username.as_str(), "alice");
    assert_eq!(config.users[0].dids[0].to_string(), "+15551230001");
    assert_eq!(config.trunks[0].addresses[0].to_string(), "127.0.0.2:5080");
    assert_eq!(config.routes[0].trunks[0].as_str(), "example");
    assert_eq!(config.numbers.echo.as_str(), "600");
    assert_eq!(config.media.public_address.to_string(), "127.0.0.1");
    assert!(config.sip.tls_listener().is_none());
    // The file documents the defaults: what it says is what an empty file gives.
    let empty = load("").expect("an empty file is valid");
    assert_eq!(config.sip, empty.sip);
    assert_eq!(config.http, empty.http);
    assert_eq!(config.metrics, empty.metrics);
    assert_eq!(config.media, empty.media);
    assert_eq!(config.opus, empty.opus);
    assert_eq!(config.numbers, empty.numbers);
    assert_eq!(config.cdr, empty.cdr);
    assert_eq!(config.log, empty.log);
    assert_eq!(
        config.opus.settings(),
        landline_codecs::OpusSettings::default()
    );
    assert!(config.summary().contains("1 users"));
}

#[test]
fn the_carrier_examples_load_over_the_default() {
    for example in ["ip-peered-carrier.toml", "registration-carrier.toml"] {
        let path = shipped("examples").join(example);
        let config =
            Config::load_layers(&shipped("landline.toml"), Some(&path), Some(HashMap::new()))
                .unwrap_or_else(|e| panic!("{example}: {e}"));
        assert!(
            config.trunks.iter().all(|t| t.name.as_str() != "example"),
            "{example}"
        );
        assert_eq!(config.users.len(), 1, "users come from the default");
    }
}

#[test]
fn a_later_file_overrides_key_by_key_and_replaces_lists() {
    let main = file(&format!(
        "[media]\nrtp_port_min = 30000\nrtp_port_max = 30999\n{TRUNK}"
    ));
    let system = file(
        "[media]\nrtp_port_max = 31999\n[[trunks]]\nname = \"other\"\nkind = \"ip\"\naddress = \"10.0.0.1:5060\"\n",
    );
    let config = Config::load_layers(&main, Some(&system), Some(HashMap::new())).expect("valid");
    assert_eq!(config.media.rtp_port_min, 30000);
    assert_eq!(config.media.rtp_port_max, 31999);
    assert_eq!(config.trunks.len(), 1);
    assert_eq!(config.trunks[0].name.as_str(), "other");
    assert_eq!(config.sources.len(), 2);
    // A missing system file is skipped.
    let absent = PathBuf::from("/nonexistent/landline.toml");
    assert!(Config::load_layers(&main, Some(&absent), Some(HashMap::new())).is_ok());
}

#[test]
fn environment_variables_override_files() {
    let config = load_env(
        "[media]\npublic_address = \"127.0.0.1\"\n",
        &[
            ("LANDLINE__MEDIA__PUBLIC_ADDRESS", "192.0.2.7"),
            ("LANDLINE__MEDIA__RTP_TIMEOUT", "10s"),
            ("LANDLINE__OPUS__COMPLEXITY", "5"),
            ("LANDLINE__OPUS__FEC", "false"),
            ("LANDLINE__NUMBERS__ECHO", "0600"),
            ("LANDLINE__CDR__PATH", "/tmp/x.jsonl"),
            ("OTHER__MEDIA__SHARDS", "9"),
        ],
    )
    .expect("valid");
    assert_eq!(config.media.public_address.to_string(), "192.0.2.7");
    assert_eq!(config.media.rtp_timeout, std::time::Duration::from_secs(10));
    assert_eq!(config.opus.complexity, 5);
    assert!(!config.opus.fec);
    assert_eq!(config.numbers.echo.as_str(), "0600", "leading zeros kept");
    assert_eq!(config.cdr.path, PathBuf::from("/tmp/x.jsonl"));
    assert_eq!(config.media.shards, 0);
}

#[test]
fn an_unknown_key_suggests_the_closest_one() {
    let e = error(&TRUNK.replace("address =", "adress ="));
    let message = e.to_string();
    assert!(matches!(e, ConfigError::UnknownKey { .. }), "{message}");
    assert_eq!(e.key(), Some("trunks[0].adress"));
    assert!(message.contains("did you mean `address`?"), "{message}");
    assert!(message.contains(".toml"), "{message}");

    assert_error(
        "[sip]\nupd = \"0.0.0.0:5060\"\n",
        "sip.upd",
        &["did you mean `udp`?"],
    );
    assert_error("[sipp]\n", "sipp", &["did you mean `sip`?"]);
    assert_error(
        "[media]\nfoo = 1\n",
        "media.foo",
        &["remove it", "`shards`"],
    );
}

#[test]
fn an_unknown_key_from_the_environment_names_the_variable() {
    let e = load_env("", &[("LANDLINE__SIP__UPD", "0.0.0.0:5070")]).unwrap_err();
    let message = e.to_string();
    assert!(
        message.starts_with("environment variable LANDLINE__SIP__UPD:"),
        "{message}"
    );
    assert!(message.contains("did you mean `udp`?"), "{message}");
}

#[test]
fn an_invalid_value_from_the_environment_names_the_variable() {
    let e = load_env("", &[("LANDLINE__MEDIA__RTP_PORT_MIN", "20001")]).unwrap_err();
    let message = e.to_string();
    assert!(
        message.contains("environment variable LANDLINE__MEDIA__RTP_PORT_MIN"),
        "{message}"
    );
    assert!(message.contains("odd"), "{message}");
}

#[test]
fn unreadable_and_malformed_files_are_named() {
    let missing = PathBuf::from("/nonexistent/landline.toml");
    let e = Config::load_layers(&missing, None, Some(HashMap::new())).unwrap_err();
    let message = e.to_string();
    assert!(matches!(e, ConfigError::Read { .. }));
    assert!(
        message.starts_with("/nonexistent/landline.toml:"),
        "{message}"
    );
    assert!(message.contains("--config"), "{message}");

    let e = error("[sip\nudp = 1\n");
    assert!(matches!(e, ConfigError::Read { .. }), "{e}");
    assert!(e.to_string().contains("TOML"), "{e}");
}

#[test]
fn wrong_types_and_syntaxes_say_what_to_write() {
    assert_error(
        "[media]\nrtp_port_min = \"abc\"\n",
        "media.rtp_port_min",
        &["expected"],
    );
    assert_error(
        "[media]\nrtp_timeout = \"30\"\n",
        "media.rtp_timeout",
        &["unit", "30s"],
    );
    assert_error("[sip]\nudp = \"localhost\"\n", "sip.udp", &["ip:port"]);
    assert_error(
        "[media]\npublic_address = \"1.2.3\"\n",
        "media.public_address",
        &["127.0.0.1"],
    );
    assert_error(
        "[log]\nformat = \"jsn\"\n",
        "log.format",
        &["did you mean `json`?"],
    );
    assert_error(
        &TRUNK.replace("\"ip\"", "\"ipp\""),
        "trunks[0].kind",
        &["did you mean `ip`?"],
    );
    assert_error(
        &format!("{TRUNK}codecs = [\"pcmu\", \"g729\"]\n"),
        "trunks[0].codecs[1]",
        &["`g729`", "`pcma`"],
    );
}

#[test]
fn missing_required_keys_are_named() {
    assert_error(
        "[[users]]\nusername = \"bob\"\ncountry = \"1\"\n",
        "users[0].password",
        &["missing key", "add `password"],
    );
    assert_error(
        "[[trunks]]\nname = \"t\"\nkind = \"ip\"\n",
        "trunks[0].address",
        &["host:port"],
    );
}

#[test]
fn numbers_and_names_are_checked() {
    let user = |did: &str| {
        format!(
            "[[users]]\nusername = \"bob\"\npassword = \"p\"\ncountry = \"44\"\ndids = [\"+442079460000\", \"{did}\"]\n"
        )
    };
    assert_error(&user("+4420"), "users[0].dids[1]", &["4 digits", "8 to 15"]);
    assert_error(
        &user("442079460001"),
        "users[0].dids[1]",
        &["start with `+`"],
    );
    assert_error(
        &user("+44 20 7946"),
        "users[0].dids[1]",
        &["other than digits"],
    );
    assert_error(
        "[[users]]\nusername = \"b o b\"\npassword = \"p\"\ncountry = \"1\"\n",
        "users[0].username",
        &["not a valid username"],
    );
    assert_error(
        "[[users]]\nusername = \"bob\"\npassword = \"p\"\ncountry = \"0\"\n",
        "users[0].country",
        &["dial code"],
    );
    assert_error(
        "[[users]]\nusername = \"bob\"\npassword = \"\"\ncountry = \"1\"\n",
        "users[0].password",
        &["empty"],
    );
    let two = "[[users]]\nusername = \"bob\"\npassword = \"p\"\ncountry = \"1\"\ndids = [\"+15551230001\"]\n";
    assert_error(
        &format!("{two}{two}"),
        "users[1].username",
        &["already a user"],
    );
    assert_error(
        &format!("{two}{}", two.replace("bob", "carol")),
        "users[1].dids[0]",
        &["already belongs to user `bob`"],
    );
}

#[test]
fn sip_transaction_cap_is_checked() {
    assert_error(
        "[sip]\nmax_transactions = 10\n",
        "sip.max_transactions",
        &["too few", "100000"],
    );
}

#[test]
fn the_nat_registration_cap_is_checked() {
    assert_error(
        "[sip]\nnat_register_expires = \"10s\"\n",
        "sip.nat_register_expires",
        &["outside 60s–1h", "0s"],
    );
    let off = load("[sip]\nnat_register_expires = \"0s\"\n").expect("0 turns it off");
    assert!(off.sip.nat_register_expires.is_zero());
}

#[test]
fn connection_caps_are_checked() {
    assert_error(
        "[sip]\nmax_connections = 0\n",
        "sip.max_connections",
        &["refuse every", "10000"],
    );
    assert_error(
        "[sip]\nmax_connections = 100\nmax_connections_per_source = 101\n",
        "sip.max_connections_per_source",
        &["outside 1–100", "NAT"],
    );
    let config =
        load("[sip]\nmax_connections = 50\nmax_connections_per_source = 5\n").expect("valid caps");
    assert_eq!(
        (
            config.sip.max_connections,
            config.sip.max_connections_per_source
        ),
        (50, 5)
    );
}

#[test]
fn auth_ban_settings_are_checked_and_reach_the_sip_stack() {
    assert_error(
        "[sip]\nauth_failures_before_ban = 1\n",
        "sip.auth_failures_before_ban",
        &["mistypes", "at least 3", "0 to turn banning off"],
    );
    assert_error(
        "[sip]\nauth_failure_window = \"0s\"\n",
        "sip.auth_failure_window",
        &["outside 1s–1h", "60s"],
    );
    assert_error(
        "[sip]\nauth_ban_time = \"2days\"\n",
        "sip.auth_ban_time",
        &["outside 1s–24h", "5m"],
    );
    let config =
        load("[sip]\nauth_failures_before_ban = 0\nauth_ban_time = \"1h\"\n").expect("valid");
    let policy = config.sip.ban_policy();
    assert_eq!(policy.failures, 0, "0 turns banning off");
    assert_eq!(policy.ban, std::time::Duration::from_secs(3600));
    let defaults = load("").expect("valid").sip.ban_policy();
    assert_eq!(
        (
            defaults.failures,
            defaults.window.as_secs(),
            defaults.ban.as_secs()
        ),
        (10, 60, 300)
    );
}

#[test]
fn media_settings_are_checked() {
    assert_error(
        "[media]\nrealtime_priority = 120\n",
        "media.realtime_priority",
        &["above 99", "1 to 99"],
    );
    assert_error(
        "[media]\nrtp_port_min = 20001\n",
        "media.rtp_port_min",
        &["odd", "20002"],
    );
    assert_error(
        "[media]\nrtp_port_min = 80\n",
        "media.rtp_port_min",
        &["privileged"],
    );
    assert_error(
        "[media]\nrtp_port_min = 30000\nrtp_port_max = 20000\n",
        "media.rtp_port_max",
        &["below"],
    );
    assert_error(
        "[media]\nrtp_port_min = 20000\nrtp_port_max = 20003\n",
        "media.rtp_port_max",
        &["too few"],
    );
    // Four call ports are enough for two calls, not with two shards' WebRTC ports as well.
    assert_error(
        "[media]\nrtp_port_min = 20000\nrtp_port_max = 20007\nshards = 2\n",
        "media.rtp_port_max",
        &["too few", "2 shards", "one per shard"],
    );
    assert_error(
        "[media]\npublic_address = \"0.0.0.0\"\n",
        "media.public_address",
        &["SDP"],
    );
    assert_error(
        "[media]\nrtp_timeout = \"100ms\"\n",
        "media.rtp_timeout",
        &["1s"],
    );
    assert_error("[opus]\ncomplexity = 11\n", "opus.complexity", &["over 10"]);
    assert_error("[opus]\nbitrate = 1000\n", "opus.bitrate", &["6000"]);
    assert_error(
        "[numbers]\ntone = \"600\"\n",
        "numbers.tone",
        &["echo number"],
    );
    assert_error("[numbers]\ntone_hz = 5000\n", "numbers.tone_hz", &["8 kHz"]);
    assert_error(
        "[numbers]\necho = \"6a\"\n",
        "numbers.echo",
        &["dial digits"],
    );
}

#[test]
fn listeners_certificates_and_logging_are_checked() {
    assert_error(
        "[sip]\ntls_cert = \"/etc/hostname\"\n",
        "sip.tls_key",
        &["missing key", "tls_key"],
    );
    assert_error(
        "[http]\ntls_cert = \"/nonexistent.pem\"\ntls_key = \"/nonexistent.pem\"\n",
        "http.tls_cert",
        &["not a readable file"],
    );
    assert_error(
        "[http]\nlisten = \"127.0.0.1:9090\"\n",
        "metrics.listen",
        &["also `http.listen`", "own port"],
    );
    assert_error(
        "[sip]\nudp = \"0.0.0.0:20000\"\n",
        "sip.udp",
        &["inside the RTP range"],
    );
    assert_error(
        "[metrics]\npath = \"metrics\"\n",
        "metrics.path",
        &["start it with `/`"],
    );
    assert_error(
        "[log]\nlevel = \"loud=[\"\n",
        "log.level",
        &["not a log filter"],
    );
    assert_error(
        "[cdr]\npath = \"/nonexistent/dir/cdr.jsonl\"\n",
        "cdr.path",
        &["does not exist"],
    );
    assert_error("[sip]\nt1 = \"5s\"\nt2 = \"1s\"\n", "sip.t2", &["t2 ≥ t1"]);
}

#[test]
fn trunks_are_checked() {
    assert_error(
        &format!("{TRUNK}addresses = [\"127.0.0.1:5081\"]\n"),
        "trunks[0].addresses",
        &["both"],
    );
    assert_error(
        &TRUNK.replace("127.0.0.1:5080", "sip.carrier.example:5060"),
        "trunks[0].allow",
        &["is a name", "signalling IPs"],
    );
    assert_error(
        &TRUNK.replace("127.0.0.1:5080", "127.0.0.1"),
        "trunks[0].address",
        &["no port"],
    );
    assert_error(
        &format!("{TRUNK}allow = [\"10.0.0.1/8\"]\n"),
        "trunks[0].allow[0]",
        &["did you mean `10.0.0.0/8`?"],
    );
    assert_error(
        &TRUNK.replace("\"ip\"", "\"registration\""),
        "trunks[0].auth",
        &["credentials"],
    );
    assert_error(
        &format!("{TRUNK}number_format = \"national\"\n"),
        "trunks[0].country",
        &["national"],
    );
    assert_error(
        &format!("{TRUNK}from_user = \"auth_username\"\n"),
        "trunks[0].auth",
        &["from_user"],
    );
    assert_error(
        &format!("{TRUNK}codecs = []\n"),
        "trunks[0].codecs",
        &["empty"],
    );
    assert_error(
        &format!("{TRUNK}max_calls = 0\n"),
        "trunks[0].max_calls",
        &["refuse"],
    );
    assert_error(
        &format!("{TRUNK}probe_down_after = 0\n"),
        "trunks[0].probe_interval",
        &["at least 1"],
    );
    assert_error(
        &format!("{TRUNK}{TRUNK}"),
        "trunks[1].name",
        &["already a trunk"],
    );
}

#[test]
fn routes_must_name_existing_trunks() {
    assert_error(
        &format!("{TRUNK}[[routes]]\nprefix = \"44\"\ntrunks = [\"carier\"]\n"),
        "routes[0].trunks[0]",
        &["no trunk is named `carier`", "did you mean `carrier`?"],
    );
    assert_error(
        &format!("{TRUNK}[[routes]]\nprefix = \"\"\ntrunks = []\n"),
        "routes[0].trunks",
        &["empty"],
    );
    let route = "[[routes]]\nprefix = \"+44\"\ntrunks = [\"carrier\"]\n";
    assert_error(
        &format!("{TRUNK}{route}{route}"),
        "routes[1].prefix",
        &["another route"],
    );
    let config = load(&format!("{TRUNK}{route}")).expect("valid");
    assert_eq!(
        config.routes[0].prefix.as_str(),
        "44",
        "a leading + is dropped"
    );
}

#[test]
fn ip_trunks_allow_their_addresses_by_default() {
    let config = load(&format!(
        "{}addresses = [\"192.0.2.1:5060\", \"[2001:db8::1]:5060\"]\n",
        TRUNK.replace("address = \"127.0.0.1:5080\"\n", "")
    ))
    .expect("valid");
    let trunk = &config.trunks[0];
    assert!(trunk.address.is_none());
    assert_eq!(trunk.addresses.len(), 2);
    assert!(trunk.allow[0].contains("192.0.2.1".parse().unwrap()));
    assert!(!trunk.allow[0].contains("192.0.2.2".parse().unwrap()));
    assert!(trunk.allow[1].contains("2001:db8::1".parse().unwrap()));
    assert_eq!(trunk.addresses[1].to_string(), "[2001:db8::1]:5060");
}

#[test]
fn cidr_ranges_match_their_addresses() {
    let net = Cidr::try_from("10.1.0.0/16".to_string()).unwrap();
    assert!(net.contains("10.1.255.3".parse().unwrap()));
    assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()));
    assert!(!net.contains("10.2.0.1".parse().unwrap()));
    let all = Cidr::try_from("0.0.0.0/0".to_string()).unwrap();
    assert!(all.contains("203.0.113.9".parse().unwrap()));
    let v6 = Cidr::try_from("2001:db8::/33".to_string()).unwrap();
    assert!(v6.contains("2001:db8:7fff::1".parse().unwrap()));
    assert!(!v6.contains("2001:db8:8000::1".parse().unwrap()));
}

#[test]
fn dialled_numbers_normalise_with_the_users_country() {
    let us = CountryCode::try_from("1".to_string()).unwrap();
    let uk = CountryCode::try_from("44".to_string()).unwrap();
    let e164 = |d: &str, c: &CountryCode| E164::from_dialled(d, c).map(|n| n.to_string());
    assert_eq!(e164("(555) 123-0002", &us).as_deref(), Some("+15551230002"));
    assert_eq!(e164("15551230002", &us).as_deref(), Some("+15551230002"));
    assert_eq!(
        e164("011442079460000", &us).as_deref(),
        Some("+442079460000")
    );
    assert_eq!(e164("020 7946 0000", &uk).as_deref(), Some("+442079460000"));
    assert_eq!(e164("0015551230002", &uk).as_deref(), Some("+15551230002"));
    assert_eq!(
        e164("+33 1 23 45 67 89", &uk).as_deref(),
        Some("+33123456789")
    );
    assert_eq!(e164("600", &uk), None);
    assert_eq!(e164("*67", &us), None);
}

#[test]
fn trunks_format_numbers_as_the_carrier_wants() {
    let config = load(&format!(
        "{TRUNK}number_format = \"national\"\ncountry = \"44\"\ntech_prefix = \"99\"\n"
    ))
    .expect("valid");
    let trunk = &config.trunks[0];
    let uk: E164 = "+442079460000".parse().unwrap();
    let us: E164 = "+15551230002".parse().unwrap();
    assert_eq!(trunk.format_number(&uk), "9902079460000");
    assert_eq!(trunk.format_number(&us), "990015551230002");
    let plain = load(TRUNK).expect("valid");
    assert_eq!(plain.trunks[0].format_number(&us), "+15551230002");
}

#[test]
fn websocket_settings_are_checked() {
    let config = load(
        "[http]\nallowed_origins = [\"https://phone.example.com\", \"http://127.0.0.1:8080\", \
         \"https://[::1]:8443\"]\nping_interval = \"10s\"\nidle_timeout = \"25s\"\n",
    )
    .expect("valid origins and timers");
    assert_eq!(config.http.allowed_origins.len(), 3);
    assert_eq!(config.http.idle_timeout, std::time::Duration::from_secs(25));
    let defaults = load("").expect("an empty file is valid");
    assert!(
        defaults.http.allowed_origins.is_empty(),
        "any origin by default"
    );
    for bad in [
        "https://phone.example.com/",
        "phone.example.com",
        "https://phone.example.com/dialer",
        "https://phone.example.com:99999",
        "ftp://phone.example.com",
        "https://",
        "https://[::1",
    ] {
        assert_error(
            &format!("[http]\nallowed_origins = [\"{bad}\"]\n"),
            "http.allowed_origins",
            &[bad, "not an origin", "https://phone.example.com"],
        );
    }
    assert_error(
        "[http]\nping_interval = \"30s\"\nidle_timeout = \"40s\"\n",
        "http.idle_timeout",
        &["twice ping_interval"],
    );
    assert_error(
        "[http]\nping_interval = \"0s\"\n",
        "http.idle_timeout",
        &["twice ping_interval"],
    );
    assert_error(
        "[http]\nws_path = \"/app.js\"\n",
        "http.ws_path",
        &["web dialer", "/ws"],
    );
}

#[test]
fn tls_trunk_settings_are_checked() {
    let ca = file(
        "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUYXkYdKsqq7l6pmvOmlcrcyJS9tkwCgYIKoZIzj0EAwIw\n\
         -----END CERTIFICATE-----\n",
    );
    let tls = |extra: &str| {
        format!(
            "[[trunks]]\nname = \"t\"\nkind = \"ip\"\naddresses = [\"127.0.0.1:5061\", \"127.0.0.2:5061\"]\n\
             transport = \"tls\"\n{extra}"
        )
    };
    // Public roots and the addresses' hosts by default; a private CA and a name when set.
    let config = load(&tls("")).expect("a TLS trunk needs no more");
    assert_eq!(config.trunks[0].tls_ca, None);
    assert_eq!(config.trunks[0].tls_name_for("127.0.0.2"), "127.0.0.2");
    let config = load(&tls(&format!(
        "tls_ca = \"{}\"\ntls_server_name = \"sip.carrier.example\"\n",
        ca.display()
    )))
    .expect("valid");
    assert_eq!(config.trunks[0].tls_ca.as_deref(), Some(ca.as_path()));
    assert_eq!(
        config.trunks[0].tls_name_for("127.0.0.2"),
        "sip.carrier.example"
    );
    assert_error(
        &tls("tls_ca = \"/nonexistent/ca.pem\"\n"),
        "trunks[0].tls_ca",
        &["cannot be read", "CA certificates"],
    );
    let empty = file("not a certificate\n");
    assert_error(
        &tls(&format!("tls_ca = \"{}\"\n", empty.display())),
        "trunks[0].tls_ca",
        &["no PEM certificate", "BEGIN CERTIFICATE"],
    );
    assert_error(
        &tls("tls_server_name = \"bad name!\"\n"),
        "trunks[0].tls_server_name",
        &["`bad name!`", "certificate"],
    );
    assert_error(
        &format!("{TRUNK}tls_server_name = \"sip.carrier.example\"\n"),
        "trunks[0].tls_server_name",
        &["transport is `udp`", "transport = \"tls\""],
    );
    assert_error(
        &format!(
            "{TRUNK}transport = \"tcp\"\ntls_ca = \"{}\"\n",
            ca.display()
        ),
        "trunks[0].tls_ca",
        &["transport is `tcp`"],
    );
}

#[test]
fn challenge_inbound_needs_the_addresses_it_challenges() {
    let auth = "auth = { username = \"gw\", password = \"p\", challenge_inbound = true }\n";
    let config = load(&format!("{TRUNK}{auth}")).expect("an IP trunk has its addresses");
    let trunk = &config.trunks[0];
    assert!(trunk.auth.as_ref().is_some_and(|a| a.challenge_inbound));
    assert_eq!(trunk.allow[0].to_string(), "127.0.0.1/32");
    assert_error(
        &format!(
            "[[trunks]]\nname = \"t\"\nkind = \"registration\"\naddress = \"sip.carrier.example:5060\"\n{auth}"
        ),
        "trunks[0].allow",
        &["challenge_inbound", "list the carrier's signalling IPs"],
    );
}

#[test]
fn a_reload_applies_accounts_and_routing_and_names_what_waits_for_a_restart() {
    let running = load(&format!("[numbers]\necho = \"600\"\n{TRUNK}")).expect("valid");
    let read = load(&format!(
        "[sip]\nudp = \"127.0.0.1:5099\"\n[media]\nshards = 3\n[numbers]\necho = \"700\"\n\
         [[users]]\nusername = \"bob\"\npassword = \"pw\"\ndids = [\"+15551230002\"]\n\
         country = \"1\"\n{TRUNK}\n[[routes]]\nprefix = \"1\"\ntrunks = [\"carrier\"]\n"
    ))
    .expect("valid");
    let (applied, restart_needed) = running.reloaded(read.clone());
    assert_eq!(restart_needed, ["sip", "media"]);
    assert_eq!(applied.sip, running.sip, "listeners stay as bound");
    assert_eq!(
        applied.media, running.media,
        "the media plane stays as built"
    );
    assert_eq!(applied.numbers.echo.as_str(), "700");
    assert_eq!(applied.users, read.users);
    assert_eq!(applied.routes, read.routes);
    assert_eq!(applied.trunks, read.trunks);
    // Reading the same file again changes nothing and needs no restart.
    let (same, nothing) = running.reloaded(running.clone());
    assert_eq!(same, running);
    assert!(nothing.is_empty());
}

#[test]
fn a_registration_trunk_trusts_calls_from_its_ip_addresses() {
    let auth = "auth = { username = \"gw\", password = \"p\" }\n";
    let config = load(&format!(
        "[[trunks]]\nname = \"t\"\nkind = \"registration\"\n\
         addresses = [\"192.0.2.7:5060\", \"sip.carrier.example:5060\"]\n{auth}"
    ))
    .expect("a registration trunk");
    let allow: Vec<String> = config.trunks[0]
        .allow
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(
        allow,
        ["192.0.2.7/32"],
        "the IP literal only: a name is not trusted"
    );
    let config = load(&format!(
        "[[trunks]]\nname = \"t\"\nkind = \"registration\"\naddress = \"192.0.2.7:5060\"\n\
         allow = [\"198.51.100.0/24\"]\n{auth}"
    ))
    .expect("a registration trunk");
    let allow: Vec<String> = config.trunks[0]
        .allow
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(
        allow,
        ["198.51.100.0/24"],
        "a configured allow is kept as it is"
    );
}
