//! A blocking std-socket shell around the sans-IO [`UserAgent`], for interop tests against real
//! peers: UDP and TCP on 127.0.0.1, real time, bounded by a deadline, with optional loss.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use landline_sip::message::{Limits, StreamFramer, Transport};
use landline_sip::transaction::Transmit;
use landline_sip::ua::{Config, Event, UserAgent};

/// Decides whether to lose a datagram: (`outgoing`, first line) → drop?
pub type Loss = Box<dyn FnMut(bool, &str) -> bool>;

/// Sockets plus the user agent.
pub struct Shell {
    pub ua: UserAgent,
    pub addr: SocketAddr,
    udp: UdpSocket,
    listener: TcpListener,
    conns: HashMap<SocketAddr, (TcpStream, StreamFramer)>,
    pub loss: Loss,
    /// First lines sent ("> ") and received ("< "), for failure messages.
    pub log: Vec<String>,
}

impl Shell {
    /// Binds UDP and TCP on the same free loopback port.
    pub fn bind(tweak: impl Fn(&mut Config)) -> Self {
        for _ in 0..50 {
            let Ok(udp) = UdpSocket::bind("127.0.0.1:0") else {
                continue;
            };
            let Ok(addr) = udp.local_addr() else { continue };
            let Ok(listener) = TcpListener::bind(addr) else {
                continue;
            };
            udp.set_nonblocking(true).expect("nonblocking udp");
            listener.set_nonblocking(true).expect("nonblocking tcp");
            let mut config = Config::new(addr, u64::from(addr.port()) * 7919);
            tweak(&mut config);
            return Self {
                ua: UserAgent::new(config),
                addr,
                udp,
                listener,
                conns: HashMap::new(),
                loss: Box::new(|_, _| false),
                log: Vec::new(),
            };
        }
        panic!("no free loopback port");
    }

    /// Runs the I/O loop, handing each event to `on_event`, until it returns true or `limit`.
    pub fn run(
        &mut self,
        limit: Duration,
        mut on_event: impl FnMut(&mut UserAgent, Instant, Event) -> bool,
    ) -> bool {
        let deadline = Instant::now() + limit;
        let mut buf = vec![0u8; 65_535];
        while Instant::now() < deadline {
            let now = Instant::now();
            let mut busy = false;
            // UDP in.
            while let Ok((n, src)) = self.udp.recv_from(&mut buf) {
                busy = true;
                let line = first_line(&buf[..n]);
                if (self.loss)(false, &line) {
                    self.log.push(format!("< (lost) {line}"));
                    continue;
                }
                self.log.push(format!("< {line}"));
                self.ua.handle_receive(now, src, Transport::Udp, &buf[..n]);
            }
            // TCP accept and read.
            while let Ok((s, peer)) = self.listener.accept() {
                s.set_nonblocking(true).expect("nonblocking stream");
                self.conns
                    .insert(peer, (s, StreamFramer::new(Limits::default())));
            }
            let mut frames = Vec::new();
            let mut dead = Vec::new();
            for (peer, (s, framer)) in &mut self.conns {
                match s.read(&mut buf) {
                    Ok(0) => dead.push(*peer),
                    Ok(n) => {
                        framer.push(&buf[..n]);
                        loop {
                            match framer.next_frame() {
                                Ok(Some(f)) => frames.push((*peer, f)),
                                Ok(None) => break,
                                Err(_) => {
                                    dead.push(*peer);
                                    break;
                                }
                            }
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => dead.push(*peer),
                }
            }
            for p in dead {
                self.conns.remove(&p);
            }
            for (peer, f) in frames {
                busy = true;
                self.log.push(format!("< {}", first_line(&f)));
                self.ua.handle_receive(now, peer, Transport::Tcp, &f);
            }
            if self.ua.poll_timeout().is_some_and(|t| t <= now) {
                self.ua.handle_timeout(now);
            }
            while let Some(t) = self.ua.poll_transmit() {
                busy = true;
                self.send(t);
            }
            while let Some(e) = self.ua.poll_event() {
                self.log
                    .push(format!("event {e:?}").chars().take(120).collect());
                if on_event(&mut self.ua, Instant::now(), e) {
                    // Flush what the final command produced before returning.
                    while let Some(t) = self.ua.poll_transmit() {
                        self.send(t);
                    }
                    return true;
                }
            }
            if !busy {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        false
    }

    /// Keeps the loop going (answering retransmissions, sending ACKs) for `d`.
    pub fn linger(&mut self, d: Duration) {
        self.run(d, |_, _, _| false);
    }

    fn send(&mut self, t: Transmit) {
        let line = first_line(&t.data);
        if (self.loss)(true, &line) {
            self.log.push(format!("> (lost) {line}"));
            return;
        }
        self.log.push(format!("> {line}"));
        match t.transport {
            Transport::Udp => {
                let _ = self.udp.send_to(&t.data, t.destination);
            }
            _ => {
                if let std::collections::hash_map::Entry::Vacant(slot) =
                    self.conns.entry(t.destination)
                {
                    let Ok(s) = TcpStream::connect_timeout(&t.destination, Duration::from_secs(2))
                    else {
                        return;
                    };
                    s.set_nonblocking(true).expect("nonblocking stream");
                    slot.insert((s, StreamFramer::new(Limits::default())));
                }
                if let Some((s, _)) = self.conns.get_mut(&t.destination) {
                    let _ = s.set_nonblocking(false);
                    let _ = s.write_all(&t.data);
                    let _ = s.set_nonblocking(true);
                }
            }
        }
    }
}

pub fn first_line(data: &[u8]) -> String {
    String::from_utf8_lossy(data)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}
