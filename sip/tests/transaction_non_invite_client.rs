//! Non-INVITE client transaction timers E (capped at T2), F and K.

mod common;

use std::time::Duration;

use common::{BOB, Clock, addr, request, response};
use landline_sip::message::Transport;
use landline_sip::transaction::{ClientEvent, ClientTransaction, TimerConfig};

fn send_times(t: &mut ClientTransaction, clock: &mut Clock, until: Duration) -> Vec<u128> {
    let t0 = clock.now;
    let mut out = Vec::new();
    while let Some(at) = t.poll_timeout() {
        if at - t0 > until {
            break;
        }
        t.handle_timeout(clock.set(at));
        while t.poll_transmit().is_some() {
            out.push((clock.now - t0).as_millis());
        }
        if t.is_terminated() {
            break;
        }
    }
    out
}

#[test]
fn timer_e_caps_at_t2_and_timer_f_times_out() {
    let mut clock = Clock::new();
    let cfg = TimerConfig::default();
    let mut t = ClientTransaction::new(
        clock.now,
        request("OPTIONS", "z9hG4bKo"),
        addr(BOB),
        Transport::Udp,
        cfg,
    );
    assert!(t.poll_transmit().is_some());
    let times = send_times(&mut t, &mut clock, Duration::from_secs(40));
    assert_eq!(&times[..6], &[500, 1500, 3500, 7500, 11500, 15500]);
    assert_eq!(t.poll_event(), Some(ClientEvent::Timeout));
}

#[test]
fn proceeding_retransmits_every_t2() {
    let mut clock = Clock::new();
    let cfg = TimerConfig::default();
    let mut t = ClientTransaction::new(
        clock.now,
        request("BYE", "z9hG4bKb"),
        addr(BOB),
        Transport::Udp,
        cfg,
    );
    t.poll_transmit();
    let req = t.request().clone();
    t.handle_response(clock.now, response(&req, 100, "x"));
    let times = send_times(&mut t, &mut clock, Duration::from_secs(10));
    // Timer E was armed at T1 before the 100; after that it runs at T2.
    assert_eq!(times, vec![500, 4500, 8500]);
}

#[test]
fn final_response_enters_completed_for_t4_on_udp_and_zero_on_tcp() {
    for (transport, wait) in [
        (Transport::Udp, Duration::from_secs(5)),
        (Transport::Tcp, Duration::ZERO),
    ] {
        let clock = Clock::new();
        let mut t = ClientTransaction::new(
            clock.now,
            request("BYE", "z9hG4bKk"),
            addr(BOB),
            transport,
            TimerConfig::default(),
        );
        let req = t.request().clone();
        t.handle_response(clock.now, response(&req, 200, "x"));
        assert!(matches!(t.poll_event(), Some(ClientEvent::Final(_))));
        assert_eq!(t.poll_timeout(), Some(clock.now + wait), "timer K");
        t.handle_response(clock.now, response(&req, 200, "x"));
        assert_eq!(t.poll_event(), None, "retransmitted final absorbed");
    }
}

#[test]
fn configurable_t1_shrinks_every_timer() {
    let mut clock = Clock::new();
    let cfg = TimerConfig {
        t1: Duration::from_millis(50),
        t2: Duration::from_millis(400),
        t4: Duration::from_millis(500),
    };
    let mut t = ClientTransaction::new(
        clock.now,
        request("OPTIONS", "z9hG4bKc"),
        addr(BOB),
        Transport::Udp,
        cfg,
    );
    t.poll_transmit();
    let t0 = clock.now;
    send_times(&mut t, &mut clock, Duration::from_secs(10));
    assert_eq!(t.poll_event(), Some(ClientEvent::Timeout));
    assert_eq!(
        clock.now - t0,
        Duration::from_millis(3200),
        "timer F = 64*T1"
    );
}
