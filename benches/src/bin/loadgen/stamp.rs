//! Kernel receive timestamps for the generator's sockets (`SO_TIMESTAMPNS`).
//!
//! The generator shares the machine's two cores with the gateway. Stamping a packet with the
//! clock after `recv_from` returns adds however long the receiving thread waited for a core to
//! the gateway's latency; the kernel's stamp is taken when the datagram reaches the socket,
//! which is where the gateway's part of the path ends. Stamps are `CLOCK_REALTIME`, turned
//! into nanoseconds since the run's `Instant` through an anchor taken once.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Asks the kernel to stamp every datagram `socket` receives.
pub(crate) fn enable(socket: &impl AsRawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid socket descriptor, and a c_int option value that outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Converts kernel stamps to nanoseconds since the run's start.
#[derive(Clone, Copy)]
pub(crate) struct Clock {
    /// The run's start, which stamps are counted from.
    pub(crate) start: Instant,
    /// `CLOCK_REALTIME` at `start`, in nanoseconds since the epoch.
    anchor: i128,
}

impl Clock {
    /// A clock for a run that starts at `start` (in the past or the future).
    pub(crate) fn new(start: Instant) -> Clock {
        let (wall, now) = (SystemTime::now(), Instant::now());
        let wall = wall
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        let since_start = if now >= start {
            (now - start).as_nanos() as i128
        } else {
            -((start - now).as_nanos() as i128)
        };
        Clock {
            start,
            anchor: wall - since_start,
        }
    }

    /// Nanoseconds since the start now.
    pub(crate) fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Nanoseconds since the start at the kernel's stamp, else now.
    pub(crate) fn at(&self, stamp: Option<libc::timespec>) -> u64 {
        match stamp {
            Some(ts) => {
                let ns = i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec);
                (ns - self.anchor).max(0) as u64
            }
            None => self.now(),
        }
    }
}

/// `recv_from` with the kernel's receive stamp (IPv4 sources only: the run is on loopback).
pub(crate) fn recv(
    socket: &impl AsRawFd,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr, Option<libc::timespec>)> {
    // SAFETY: all-zero is a valid sockaddr_in and msghdr.
    let mut addr: libc::sockaddr_in = unsafe { zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Room for one SCM_TIMESTAMPNS message, 8-byte aligned as cmsghdr needs.
    let mut control = [0u64; 8];
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_name = (&mut addr as *mut libc::sockaddr_in).cast();
    msg.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of::<[u64; 8]>();
    // SAFETY: every pointer in `msg` refers to a live local buffer of the stated length.
    let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut stamp = None;
    // SAFETY: the CMSG_* walk stays within `msg_controllen` bytes of `control`, as filled in
    // by the kernel; the payload is read unaligned.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                stamp = Some(std::ptr::read_unaligned(
                    libc::CMSG_DATA(cmsg).cast::<libc::timespec>(),
                ));
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    let source = SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)),
        u16::from_be(addr.sin_port),
    ));
    Ok((n as usize, source, stamp))
}
