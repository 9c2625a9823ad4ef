//! Who a trunk is told is calling: the From of the trunk leg's INVITE and the identity headers,
//! from the trunk's `from_user`, `pai` and `privacy` (RFC 3325 asserted identity, RFC 3323
//! privacy).

use landline_sip::message::{Host, NameAddr, SipUri};

use crate::config::{E164, FromUser, Privacy, TrunkConfig};

/// The trunk leg's From and its extra identity headers for a call from `caller` (the calling
/// user's DID in E.164, or whatever the call's From was when it is not one), towards a trunk
/// address whose host is `host`.
///
/// - From: the DID in the trunk's number format, or the account name (`from_user`), at the
///   trunk's host. With `privacy = "id"` it is `"Anonymous" <sip:anonymous@anonymous.invalid>`
///   (RFC 3323 §4.1.1.3), so the callee's network learns nothing from it.
/// - `P-Asserted-Identity: <sip:+E164@host;user=phone>` when `pai` is set, and always with
///   `privacy = "id"`: the carrier must still know who calls (billing, emergency calls, the
///   number it withholds), and `Privacy: id` asks it to remove exactly this header before the
///   call leaves its trusted network (RFC 3325 §7, §9.3). A `Privacy: id` with no asserted
///   identity would leave the carrier nothing to withhold and no caller to bill.
/// - `Privacy: id` with `privacy = "id"`.
///
/// `None` for From when the host cannot be written in a URI (the caller ID is then the
/// user agent's default).
pub(super) fn caller_identity(
    trunk: &TrunkConfig,
    caller: &str,
    host: &Host,
) -> (Option<NameAddr>, Vec<(String, String)>) {
    let did = caller.parse::<E164>().ok();
    let private = trunk.privacy == Privacy::Id;
    let from = if private {
        Host::parse("anonymous.invalid").map(|h| {
            let mut from = NameAddr::new(SipUri::new(Some("anonymous"), h, None));
            from.display = Some("Anonymous".to_owned());
            from
        })
    } else {
        let user = match trunk.from_user {
            FromUser::AuthUsername => trunk
                .auth
                .as_ref()
                .map(|a| a.username.clone())
                .unwrap_or_default(),
            FromUser::Did => match &did {
                Some(did) => trunk.format_number(did),
                None => caller.to_owned(),
            },
        };
        Some(NameAddr::new(SipUri::new(Some(&user), host.clone(), None)))
    };
    let mut headers = Vec::new();
    if trunk.pai || private {
        if let Some(did) = &did {
            let mut uri = SipUri::new(Some(&did.to_string()), host.clone(), None);
            uri.params.set("user", Some("phone"));
            headers.push((
                "P-Asserted-Identity".to_owned(),
                NameAddr::new(uri).to_string(),
            ));
        }
    }
    if private {
        headers.push(("Privacy".to_owned(), "id".to_owned()));
    }
    (from, headers)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{Config, TrunkAuth};

    fn trunk() -> TrunkConfig {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf/landline.toml");
        let config =
            Config::load_layers(&path, None, Some(Default::default())).expect("shipped config");
        config
            .trunks
            .into_iter()
            .next()
            .expect("the shipped example trunk")
    }

    fn host() -> Host {
        Host::parse("sip.carrier.example").expect("host")
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn by_default_the_did_is_in_from_and_nothing_else_is_added() {
        let (from, headers) = caller_identity(&trunk(), "+15551230001", &host());
        assert_eq!(
            from.expect("from").to_string(),
            "<sip:+15551230001@sip.carrier.example>"
        );
        assert!(headers.is_empty(), "{headers:?}");
    }

    #[test]
    fn pai_asserts_the_did_next_to_the_account_in_from() {
        let mut trunk = trunk();
        trunk.pai = true;
        trunk.from_user = FromUser::AuthUsername;
        trunk.auth = Some(TrunkAuth {
            username: "acct-77".to_owned(),
            password: "p".to_owned(),
            realm: None,
            challenge_inbound: false,
        });
        let (from, headers) = caller_identity(&trunk, "+15551230001", &host());
        assert_eq!(
            from.expect("from").to_string(),
            "<sip:acct-77@sip.carrier.example>"
        );
        assert_eq!(
            header(&headers, "P-Asserted-Identity"),
            Some("<sip:+15551230001@sip.carrier.example;user=phone>")
        );
        assert_eq!(header(&headers, "Privacy"), None);
    }

    #[test]
    fn privacy_id_hides_from_but_still_asserts_the_did_to_the_carrier() {
        let mut trunk = trunk();
        trunk.privacy = Privacy::Id;
        let (from, headers) = caller_identity(&trunk, "+15551230001", &host());
        assert_eq!(
            from.expect("from").to_string(),
            "\"Anonymous\" <sip:anonymous@anonymous.invalid>"
        );
        assert_eq!(header(&headers, "Privacy"), Some("id"));
        assert_eq!(
            header(&headers, "P-Asserted-Identity"),
            Some("<sip:+15551230001@sip.carrier.example;user=phone>"),
            "pai = false, but the carrier must know whose number it withholds"
        );
    }

    #[test]
    fn a_caller_without_a_did_is_passed_as_it_is_and_not_asserted() {
        let mut trunk = trunk();
        trunk.pai = true;
        let (from, headers) = caller_identity(&trunk, "alice", &host());
        assert_eq!(
            from.expect("from").to_string(),
            "<sip:alice@sip.carrier.example>"
        );
        assert!(headers.is_empty(), "{headers:?}");
    }
}
