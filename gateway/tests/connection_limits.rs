//! One host opening connections cannot take every slot: past `sip.max_connections_per_source`
//! its new connections (SIP over TCP, HTTP) are closed at once, while its open ones go on and
//! other hosts are served; a slot comes back when a connection closes.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;

/// A TCP connection to `to` from the loopback address `from`.
fn connect(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket
        .bind(&SocketAddr::new(IpAddr::V4(from), 0).into())
        .expect("bind a loopback source");
    socket.connect(&to.into()).expect("connect");
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    stream
}

/// Sends an OPTIONS over `stream`; the status line of the answer, or `None` when the gateway
/// closed the connection instead.
fn options(stream: &mut TcpStream, gateway: SocketAddr) -> Option<String> {
    let local = stream.local_addr().expect("local");
    let branch = Instant::now().elapsed().as_nanos();
    let request = format!(
        "OPTIONS sip:{gateway} SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bKlim{branch}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@{local}>;tag=l\r\nTo: <sip:{gateway}>\r\n\
         Call-ID: limit-{branch}-{local}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return None;
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 2048];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .map(str::to_owned)
}

/// An HTTP GET of the dialer page from `from`: whether it was answered 200.
fn page_served(from: Ipv4Addr, http: SocketAddr) -> bool {
    let mut stream = connect(from, http);
    let _ = stream.write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

#[test]
fn one_host_gets_its_share_of_connections_and_others_are_served() {
    let gateway =
        Gateway::start_with_env(&[], &[("LANDLINE__SIP__MAX_CONNECTIONS_PER_SOURCE", "4")]);
    let greedy = Ipv4Addr::new(127, 0, 0, 1);
    let other = Ipv4Addr::new(127, 0, 0, 9);

    let mut held: Vec<TcpStream> = (0..4).map(|_| connect(greedy, gateway.sip)).collect();
    for stream in &mut held {
        assert_eq!(
            options(stream, gateway.sip).as_deref(),
            Some("SIP/2.0 200 OK"),
            "connections within the share are served"
        );
    }
    let mut refused = connect(greedy, gateway.sip);
    assert_eq!(
        options(&mut refused, gateway.sip),
        None,
        "one over the share is closed"
    );
    assert!(
        !page_served(greedy, gateway.http),
        "the share covers HTTP too"
    );

    let mut elsewhere = connect(other, gateway.sip);
    assert_eq!(
        options(&mut elsewhere, gateway.sip).as_deref(),
        Some("SIP/2.0 200 OK"),
        "another host is served"
    );
    assert!(page_served(other, gateway.http));
    assert_eq!(
        options(&mut held[0], gateway.sip).as_deref(),
        Some("SIP/2.0 200 OK"),
        "open connections go on"
    );

    // A closed connection gives its slot back.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut again = connect(greedy, gateway.sip);
        if options(&mut again, gateway.sip).as_deref() == Some("SIP/2.0 200 OK") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slot never came back:\n{}",
            gateway.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        gateway.log().contains("max_connections_per_source"),
        "the refusal is logged with the key to raise:\n{}",
        gateway.log()
    );
}
