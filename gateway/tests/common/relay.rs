//! A lossy UDP relay in front of the gateway's WebRTC ports, for tests whose client cannot drop
//! packets itself (a browser). `tc netem` is not available here (no `sch_netem`), so loss is
//! made in user space.
//!
//! The gateway is started with `media.webrtc_address` set to the relay's address: browsers send
//! there. The relay listens on every even port of the gateway's RTP range on that address (the
//! shards' WebRTC ports are among them) and forwards to the same port on the gateway's bind
//! address, from one upstream socket per browser address, so the gateway's answers come back
//! through it. It drops a share of the RTP going to the gateway, never STUN, DTLS or RTCP.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// A running relay; stops when dropped.
pub(crate) struct LossyRelay {
    stop: Arc<AtomicBool>,
    /// RTP packets towards the gateway, and how many of them were dropped.
    pub(crate) counts: Arc<(AtomicU64, AtomicU64)>,
    thread: Option<JoinHandle<()>>,
}

impl LossyRelay {
    /// Listens on `listen`:p for every even p in `ports`, forwarding to `gateway`:p, dropping
    /// `loss` (0 to 1) of the RTP towards the gateway.
    pub(crate) fn start(
        listen: IpAddr,
        gateway: IpAddr,
        ports: (u16, u16),
        loss: f64,
    ) -> LossyRelay {
        let mut fronts = Vec::new();
        for port in (ports.0..=ports.1).filter(|p| p % 2 == 0) {
            let socket = UdpSocket::bind((listen, port)).expect("relay port");
            socket.set_nonblocking(true).expect("non-blocking");
            fronts.push((socket, SocketAddr::new(gateway, port)));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
        let thread = std::thread::spawn({
            let (stop, counts) = (stop.clone(), counts.clone());
            move || relay(fronts, listen, loss, &stop, &counts)
        });
        LossyRelay {
            stop,
            counts,
            thread: Some(thread),
        }
    }

    /// RTP packets sent towards the gateway and the number dropped.
    pub(crate) fn rtp(&self) -> (u64, u64) {
        (
            self.counts.0.load(Ordering::Relaxed),
            self.counts.1.load(Ordering::Relaxed),
        )
    }
}

impl Drop for LossyRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One browser address's path through one front port.
struct Path {
    upstream: UdpSocket,
    front: usize,
    browser: SocketAddr,
}

fn relay(
    fronts: Vec<(UdpSocket, SocketAddr)>,
    listen: IpAddr,
    loss: f64,
    stop: &AtomicBool,
    counts: &(AtomicU64, AtomicU64),
) {
    let mut paths: Vec<Path> = Vec::new();
    let mut by_browser: HashMap<(usize, SocketAddr), usize> = HashMap::new();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        let mut idle = true;
        for (index, (front, gateway)) in fronts.iter().enumerate() {
            while let Ok((n, browser)) = front.recv_from(&mut buf) {
                idle = false;
                let path = *by_browser.entry((index, browser)).or_insert_with(|| {
                    let upstream = UdpSocket::bind((listen, 0)).expect("relay upstream");
                    upstream.set_nonblocking(true).expect("non-blocking");
                    paths.push(Path {
                        upstream,
                        front: index,
                        browser,
                    });
                    paths.len() - 1
                });
                if is_rtp(&buf[..n]) {
                    counts.0.fetch_add(1, Ordering::Relaxed);
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    if (rng % 10_000) as f64 / 10_000.0 < loss {
                        counts.1.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                }
                let _ = paths[path].upstream.send_to(&buf[..n], gateway);
            }
        }
        for path in &paths {
            while let Ok((n, _)) = path.upstream.recv_from(&mut buf) {
                idle = false;
                let _ = fronts[path.front].0.send_to(&buf[..n], path.browser);
            }
        }
        if idle {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
}

/// SRTP (not SRTCP, STUN or DTLS): RTP version 2, payload type outside RTCP's (RFC 5761).
fn is_rtp(datagram: &[u8]) -> bool {
    datagram.len() >= 12 && datagram[0] >> 6 == 2 && !(72..=76).contains(&(datagram[1] & 0x7F))
}
