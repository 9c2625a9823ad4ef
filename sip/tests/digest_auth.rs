//! Digest auth: client answers against our server, MD5 and SHA-256, nonce counts, replay,
//! stale nonces, wrong passwords.

mod common;

use std::time::Duration;

use common::Clock;
use landline_sip::auth::{
    Algorithm, AuthError, Challenge, Credentials, DigestClient, DigestServer,
};

fn creds(pw: &str) -> Credentials {
    Credentials {
        username: "alice".into(),
        password: pw.into(),
    }
}

fn lookup(user: &str) -> Option<String> {
    (user == "alice").then(|| "s3cret".to_owned())
}

#[test]
fn md5_and_sha256_round_trip_with_increasing_nc() {
    for alg in [Algorithm::Md5, Algorithm::Sha256] {
        let clock = Clock::new();
        let mut server = DigestServer::new("landline", alg, b"k", Duration::from_secs(300));
        let challenge = server.challenge(clock.now, false);
        let parsed = Challenge::parse(&challenge.to_string()).expect("own challenge parses");
        assert_eq!(parsed, challenge);
        let mut client = DigestClient::new(parsed, 42);
        for expected_nc in ["nc=00000001", "nc=00000002"] {
            let auth = client.authorize(&creds("s3cret"), "REGISTER", "sip:landline");
            assert!(auth.contains(expected_nc), "{auth}");
            assert_eq!(
                server.verify(clock.now, "REGISTER", &auth, lookup),
                Ok("alice".into())
            );
        }
    }
}

#[test]
fn replayed_nonce_count_is_refused() {
    let clock = Clock::new();
    let mut server = DigestServer::new("landline", Algorithm::Md5, b"k", Duration::from_secs(300));
    let mut client = DigestClient::new(server.challenge(clock.now, false), 1);
    let auth = client.authorize(&creds("s3cret"), "INVITE", "sip:bob@landline");
    assert!(server.verify(clock.now, "INVITE", &auth, lookup).is_ok());
    assert_eq!(
        server.verify(clock.now, "INVITE", &auth, lookup),
        Err(AuthError::Replay)
    );
}

#[test]
fn expired_nonce_is_stale_and_rechallenged_with_stale_true() {
    let mut clock = Clock::new();
    let mut server =
        DigestServer::new("landline", Algorithm::Sha256, b"k", Duration::from_secs(30));
    let mut client = DigestClient::new(server.challenge(clock.now, false), 1);
    let auth = client.authorize(&creds("s3cret"), "INVITE", "sip:bob@landline");
    clock.advance(Duration::from_secs(31));
    assert_eq!(
        server.verify(clock.now, "INVITE", &auth, lookup),
        Err(AuthError::Stale)
    );
    let again = server.challenge(clock.now, true);
    assert!(again.to_string().contains("stale=true"));
    assert!(Challenge::parse(&again.to_string()).expect("parses").stale);
}

#[test]
fn wrong_password_or_method_is_denied() {
    let clock = Clock::new();
    let mut server = DigestServer::new("landline", Algorithm::Md5, b"k", Duration::from_secs(300));
    let mut client = DigestClient::new(server.challenge(clock.now, false), 1);
    let bad = client.authorize(&creds("guess"), "INVITE", "sip:bob@landline");
    assert_eq!(
        server.verify(clock.now, "INVITE", &bad, lookup),
        Err(AuthError::Denied)
    );
    let good = client.authorize(&creds("s3cret"), "INVITE", "sip:bob@landline");
    assert_eq!(
        server.verify(clock.now, "BYE", &good, lookup),
        Err(AuthError::Denied)
    );
    assert!(
        server
            .verify(clock.now, "INVITE", "Basic YWxpY2U6", lookup)
            .is_err()
    );
}

#[test]
fn client_prefers_sha256_and_handles_no_qop() {
    let md5 = r#"Digest realm="r", nonce="n1", algorithm=MD5, qop="auth""#;
    let sha = r#"Digest realm="r", nonce="n2", algorithm=SHA-256, qop="auth""#;
    let best = Challenge::best([md5, sha].into_iter()).expect("one parses");
    assert_eq!(best.algorithm, Algorithm::Sha256);
    // RFC 2069 style (no qop): no nc/cnonce in the answer.
    let legacy = Challenge::parse(r#"Digest realm="r", nonce="n3""#).expect("parses");
    let auth = DigestClient::new(legacy, 0).authorize(&creds("x"), "INVITE", "sip:a@b");
    assert!(!auth.contains("nc=") && auth.contains("algorithm=MD5"));
    assert!(Challenge::parse(r#"Digest realm="r", nonce="n", algorithm=SHA-512-256"#).is_err());
}
