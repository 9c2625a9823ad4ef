//! The RTP port range: a lock-free pool of even ports shared by call setup (which takes) and the
//! media shards (which give back when a call ends).

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_queue::ArrayQueue;

use super::MediaError;

/// Free even RTP ports (RTCP would use the odd one above, per RFC 3550).
#[derive(Debug)]
pub struct PortPool {
    free: ArrayQueue<u16>,
    /// Ports calls can use: the range, less those reserved for good (shards' WebRTC ports).
    capacity: AtomicUsize,
}

impl PortPool {
    /// A pool over `first..=last`; only even ports are used.
    pub fn new(first: u16, last: u16) -> Self {
        let ports: Vec<u16> = (first..=last).filter(|p| p % 2 == 0).collect();
        let free = ArrayQueue::new(ports.len().max(1));
        for port in &ports {
            // Cannot fail: the queue was sized for exactly these ports.
            let _ = free.push(*port);
        }
        PortPool {
            free,
            capacity: AtomicUsize::new(ports.len()),
        }
    }

    /// Binds a UDP socket on a free port of `ip`, non-blocking, ready for a shard.
    ///
    /// Ports another process holds are skipped and put back at the end of the queue.
    pub fn bind(&self, ip: IpAddr) -> Result<UdpSocket, MediaError> {
        for _ in 0..self.capacity() {
            let port = self.free.pop().ok_or(MediaError::PortsExhausted)?;
            match UdpSocket::bind(SocketAddr::new(ip, port)) {
                Ok(socket) => {
                    socket.set_nonblocking(true).map_err(MediaError::Socket)?;
                    return Ok(socket);
                }
                Err(_) => {
                    let _ = self.free.push(port);
                }
            }
        }
        Err(MediaError::PortsExhausted)
    }

    /// Binds a socket on a port that leaves the pool for the life of the process (a shard's
    /// WebRTC port), so it is not counted as a port in use by calls.
    ///
    /// Such a port carries every browser call of its shard (thousands of packets a second), so
    /// its buffers are enlarged: the kernel's default would hold a few milliseconds of it. The
    /// kernel caps the sizes at `net.core.rmem_max`/`wmem_max`.
    pub fn reserve(&self, ip: IpAddr) -> Result<UdpSocket, MediaError> {
        const SHARED_PORT_BUFFER: usize = 4 << 20;
        let socket = self.bind(ip)?;
        let sock = socket2::SockRef::from(&socket);
        for (what, result) in [
            ("receive", sock.set_recv_buffer_size(SHARED_PORT_BUFFER)),
            ("send", sock.set_send_buffer_size(SHARED_PORT_BUFFER)),
        ] {
            if let Err(error) = result {
                tracing::warn!(%error, "cannot enlarge a WebRTC port's {what} buffer");
            }
        }
        self.capacity.fetch_sub(1, Ordering::Relaxed);
        Ok(socket)
    }

    /// Returns the port of a socket that is being closed.
    pub fn release(&self, port: u16) {
        // Cannot overflow: only ports taken from this pool come back.
        let _ = self.free.push(port);
    }

    /// Ports currently free.
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// Ports in the range.
    pub fn capacity(&self) -> usize {
        self.capacity.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_even_ports_until_exhausted_then_recycles() {
        let pool = PortPool::new(41_000, 41_005);
        assert_eq!(pool.capacity(), 3);
        let ip = IpAddr::from([127, 0, 0, 1]);
        let sockets: Vec<_> = (0..3).map(|_| pool.bind(ip).unwrap()).collect();
        assert!(
            sockets
                .iter()
                .all(|s| s.local_addr().unwrap().port() % 2 == 0)
        );
        assert!(matches!(pool.bind(ip), Err(MediaError::PortsExhausted)));
        let port = sockets[0].local_addr().unwrap().port();
        drop(sockets);
        pool.release(port);
        assert_eq!(pool.bind(ip).unwrap().local_addr().unwrap().port(), port);
    }
}
