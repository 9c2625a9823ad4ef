//! SDP parsing and RFC 3264 offer/answer: codec policy, telephone-event, hold directions, 488.

use std::net::IpAddr;

use landline_sip::sdp::{
    Codec, Direction, LocalMedia, NegotiationError, PreferenceOrder, Sdp, accept_answer, answer,
    build_offer,
};

const BROWSER_OFFER: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n\
c=IN IP4 192.0.2.7\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:63 red/48000/2\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:13 CN/8000\r\n\
a=rtpmap:110 telephone-event/48000\r\n\
a=rtpmap:126 telephone-event/8000\r\n\
a=ptime:20\r\n\
a=maxptime:120\r\n\
a=rtcp-mux\r\n\
a=sendrecv\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
a=rtpmap:96 VP8/90000\r\n";

/// The browser's offer as a softphone would send it: the same codecs over plain RTP.
fn plain_offer() -> Sdp {
    BROWSER_OFFER
        .replace("UDP/TLS/RTP/SAVPF 111", "RTP/AVP 111")
        .parse()
        .expect("offer")
}

fn local(codecs: Vec<Codec>, direction: Direction) -> LocalMedia {
    LocalMedia {
        addr: IpAddr::from([127, 0, 0, 1]),
        port: 40000,
        codecs,
        opus_fmtp: String::new(),
        telephone_event: true,
        ptime: 20,
        maxptime: Some(40),
        rtcp_mux: true,
        direction,
        session_id: 7,
        session_version: 1,
    }
}

#[test]
fn parses_and_reserialises_losslessly() {
    let sdp: Sdp = BROWSER_OFFER.parse().expect("offer parses");
    assert_eq!(sdp.media.len(), 2);
    let a = &sdp.media[0];
    assert_eq!(a.ptime, Some(20));
    assert_eq!(a.maxptime, Some(120));
    assert!(a.rtcp_mux);
    assert_eq!(a.fmtp(111), Some("minptime=10;useinbandfec=1"));
    let again: Sdp = sdp.to_string().parse().expect("reparses");
    assert_eq!(sdp, again);
}

#[test]
fn policy_picks_g711_over_opus_and_matching_telephone_event() {
    let offer = plain_offer();
    let l = local(vec![Codec::Pcmu, Codec::Opus], Direction::SendRecv);
    let (ans, neg) =
        answer(&offer, &l, &PreferenceOrder(vec![Codec::Pcmu, Codec::Opus])).expect("answer");
    assert_eq!((neg.codec, neg.pt), (Codec::Pcmu, 0));
    assert_eq!(
        neg.telephone_event,
        Some(126),
        "8 kHz telephone-event for PCMU"
    );
    assert_eq!(neg.remote.to_string(), "192.0.2.7:9");
    assert!(neg.rtcp_mux);
    assert_eq!(ans.media[0].formats, ["0", "126"]);
    assert_eq!(ans.media[1].port, 0, "video refused, m-line kept");
}

/// SRTP cannot be answered in plain RTP: an SDES-only or DTLS-only offer is refused, a
/// best-effort offer (SRTP line first, plain RTP after) gets its plain line answered, and an
/// AVPF line is answered in AVPF.
#[test]
fn only_plain_rtp_audio_is_answered() {
    let l = local(vec![Codec::Pcmu], Direction::SendRecv);
    let policy = PreferenceOrder(vec![Codec::Pcmu]);
    let sdes = "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
        m=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 \
        inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n";
    let offer: Sdp = sdes.parse().expect("offer");
    assert_eq!(
        answer(&offer, &l, &policy).err(),
        Some(NegotiationError::NoAudio)
    );
    let offer: Sdp = BROWSER_OFFER.parse().expect("offer");
    assert_eq!(
        answer(&offer, &l, &policy).err(),
        Some(NegotiationError::NoAudio)
    );

    let best_effort: Sdp = format!("{sdes}m=audio 4002 RTP/AVP 0\r\n")
        .parse()
        .expect("offer");
    let (ans, neg) = answer(&best_effort, &l, &policy).expect("the plain line is answered");
    assert_eq!(ans.media[0].port, 0, "the SRTP line refused, kept in place");
    assert_eq!(ans.media[1].proto, "RTP/AVP");
    assert_eq!(neg.remote.port(), 4002);

    let avpf: Sdp = sdes.replace("RTP/SAVP", "RTP/AVPF").parse().expect("offer");
    let (ans, _) = answer(&avpf, &l, &policy).expect("AVPF is plain RTP");
    assert_eq!(ans.media[0].proto, "RTP/AVPF");
}

#[test]
fn opus_keeps_fmtp_and_48k_telephone_event() {
    let offer = plain_offer();
    let l = local(vec![Codec::Opus, Codec::Pcmu], Direction::SendRecv);
    let (ans, neg) = answer(&offer, &l, &PreferenceOrder(vec![Codec::Opus])).expect("answer");
    assert_eq!(
        (neg.codec, neg.pt, neg.telephone_event),
        (Codec::Opus, 111, Some(110))
    );
    assert_eq!(ans.media[0].fmtp(111), Some("minptime=10;useinbandfec=1"));
    assert_eq!(ans.media[0].rtpmap(111).map(|r| r.channels), Some(2));
}

#[test]
fn hold_sendonly_is_answered_recvonly_and_inactive_stays_inactive() {
    let l = local(vec![Codec::Pcmu], Direction::SendRecv);
    for (offered, expected) in [
        (Direction::SendOnly, Direction::RecvOnly),
        (Direction::RecvOnly, Direction::SendOnly),
        (Direction::Inactive, Direction::Inactive),
        (Direction::SendRecv, Direction::SendRecv),
    ] {
        let mut holder = build_offer(&local(vec![Codec::Pcmu], offered));
        holder.media[0].direction = Some(offered);
        let (ans, neg) = answer(&holder, &l, &PreferenceOrder(vec![Codec::Pcmu])).expect("answer");
        assert_eq!(neg.direction, expected);
        assert_eq!(ans.direction_of(0), expected);
    }
}

#[test]
fn nothing_in_common_is_488() {
    let offer: Sdp = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
        m=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n"
        .parse()
        .expect("offer");
    let l = local(vec![Codec::Pcmu, Codec::Pcma], Direction::SendRecv);
    let err = answer(&offer, &l, &PreferenceOrder(vec![Codec::Pcmu])).unwrap_err();
    assert_eq!(err, NegotiationError::NoCodec);
    let no_audio: Sdp = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nm=video 4000 RTP/AVP 96\r\n"
        .parse()
        .expect("sdp");
    assert_eq!(
        answer(&no_audio, &l, &PreferenceOrder(vec![Codec::Pcmu])).unwrap_err(),
        NegotiationError::NoAudio
    );
}

#[test]
fn offerer_reads_the_answer() {
    let ours = local(vec![Codec::Pcma, Codec::Pcmu], Direction::SendOnly);
    let offer = build_offer(&ours);
    assert_eq!(offer.media[0].formats, ["8", "0", "101"]);
    let theirs = local(vec![Codec::Pcmu, Codec::Pcma], Direction::SendRecv);
    let (ans, _) = answer(&offer, &theirs, &PreferenceOrder(vec![Codec::Pcmu])).expect("answer");
    assert_eq!(ans.direction_of(0), Direction::RecvOnly);
    let neg = accept_answer(&offer, &ans).expect("accept");
    assert_eq!((neg.codec, neg.telephone_event), (Codec::Pcmu, Some(101)));
    assert_eq!(neg.direction, Direction::SendOnly);
}

#[test]
fn an_answer_naming_its_own_event_type_is_sent_with_and_ours_is_received_with() {
    let ours = local(vec![Codec::Pcmu, Codec::Pcma], Direction::SendRecv);
    let offer = build_offer(&ours);
    let ans: Sdp = "v=0\r\no=c 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
                    m=audio 7000 RTP/AVP 8 96\r\na=rtpmap:8 PCMA/8000\r\n\
                    a=rtpmap:96 telephone-event/8000\r\n"
        .parse()
        .expect("sdp");
    let neg = accept_answer(&offer, &ans).expect("accept");
    assert_eq!(neg.codec, Codec::Pcma);
    // RFC 3264 §6.1: we send with the answer's type, the carrier with our offer's.
    assert_eq!(
        (neg.telephone_event, neg.local_telephone_event),
        (Some(96), Some(101))
    );
    let without: Sdp = "v=0\r\no=c 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
                        m=audio 7000 RTP/AVP 0\r\n"
        .parse()
        .expect("sdp");
    let neg = accept_answer(&offer, &without).expect("accept");
    assert_eq!(
        (neg.telephone_event, neg.local_telephone_event),
        (None, None)
    );
}

#[test]
fn an_answer_mapping_our_codec_to_another_type_is_accepted_and_one_we_did_not_offer_is_not() {
    let ours = local(vec![Codec::Pcmu, Codec::Pcma], Direction::SendRecv);
    let offer = build_offer(&ours);
    let answer_with = |m: &str| -> Sdp {
        format!("v=0\r\no=c 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n{m}")
            .parse()
            .expect("sdp")
    };
    let dynamic = answer_with("m=audio 7000 RTP/AVP 96\r\na=rtpmap:96 PCMA/8000\r\n");
    let neg = accept_answer(&offer, &dynamic).expect("accept");
    assert_eq!((neg.codec, neg.pt), (Codec::Pcma, 96));
    let opus = answer_with("m=audio 7000 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n");
    assert_eq!(
        accept_answer(&offer, &opus).unwrap_err(),
        NegotiationError::BadAnswer
    );
}

#[test]
fn malformed_sdp_is_an_error_not_a_panic() {
    for bad in [
        "",
        "v=1\r\n",
        "v=0\r\no=x\r\ns=-\r\n",
        "v=0\r\nm=audio x RTP/AVP 0\r\n",
        "garbage",
    ] {
        assert!(bad.parse::<Sdp>().is_err(), "{bad:?}");
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn codecs() -> impl Strategy<Value = Vec<Codec>> {
        proptest::sample::subsequence(vec![Codec::Pcmu, Codec::Pcma, Codec::Opus], 1..=3)
            .prop_shuffle()
    }

    fn direction() -> impl Strategy<Value = Direction> {
        prop_oneof![
            Just(Direction::SendRecv),
            Just(Direction::SendOnly),
            Just(Direction::RecvOnly),
            Just(Direction::Inactive)
        ]
    }

    proptest! {
        /// Every offer we build parses back to itself, and answering it with any policy either
        /// picks a codec both sides listed or fails with NoCodec; the offerer accepts the answer.
        #[test]
        fn offers_round_trip_and_answers_are_consistent(
            ours in codecs(), theirs in codecs(), prefs in codecs(), d in direction(),
            te in any::<bool>(), mux in any::<bool>(), port in 1u16..,
        ) {
            let mut l = local(ours.clone(), d);
            (l.telephone_event, l.rtcp_mux, l.port) = (te, mux, port);
            let offer = build_offer(&l);
            let text = offer.to_string();
            let reparsed = text.parse::<Sdp>();
            prop_assert_eq!(reparsed.as_ref(), Ok(&offer));
            let them = local(theirs.clone(), Direction::SendRecv);
            match answer(&offer, &them, &PreferenceOrder(prefs.clone())) {
                Ok((ans, neg)) => {
                    prop_assert!(ours.contains(&neg.codec) && theirs.contains(&neg.codec) && prefs.contains(&neg.codec));
                    prop_assert_eq!(neg.direction, d.answer(Direction::SendRecv));
                    let back = accept_answer(&offer, &ans);
                    prop_assert_eq!(back.map(|n| n.codec), Ok(neg.codec));
                }
                Err(e) => {
                    prop_assert_eq!(e, NegotiationError::NoCodec);
                    prop_assert!(!ours.iter().any(|c| theirs.contains(c) && prefs.contains(c)));
                }
            }
        }

        #[test]
        fn arbitrary_text_never_panics(text in "(v=0|o=|m=audio|a=rtpmap:|a=fmtp:|c=IN IP4 |[ -~]|\r\n){0,80}") {
            if let Ok(sdp) = text.parse::<Sdp>() {
                let l = local(vec![Codec::Pcmu, Codec::Opus], Direction::SendRecv);
                let _ = answer(&sdp, &l, &PreferenceOrder(vec![Codec::Opus, Codec::Pcmu]));
                let _ = sdp.to_string().parse::<Sdp>();
            }
        }
    }
}
