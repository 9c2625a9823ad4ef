//! One admission gate for every TCP connection, SIP over TCP/TLS and HTTP/WebSocket alike: a
//! cap over all of them, and a cap per source address. A flood on one port cannot take the
//! descriptors the others need, and one host opening connections cannot take the slots of
//! every other client. A connection is counted from its accept (before any TLS handshake)
//! until its last task ends, through the [`Admission`] it holds.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use dashmap::DashMap;

/// The connection caps and what is open under them.
#[derive(Debug)]
pub(crate) struct ConnectionGate {
    open: AtomicUsize,
    max: usize,
    /// Open connections by source address; an address leaves the map with its last one.
    by_source: DashMap<IpAddr, usize>,
    max_per_source: usize,
    /// Refusals since the last one logged, and when that was (ms since `started`).
    refused: AtomicUsize,
    last_logged_ms: AtomicU64,
    started: Instant,
}

/// At most one log line about refused connections per this many milliseconds.
const REFUSAL_LOG_PERIOD_MS: u64 = 10_000;

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Every slot is taken.
    Full,
    /// This source holds its share.
    SourceFull,
}

impl Refused {
    /// For the log line.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Refused::Full => "connection limit reached (sip.max_connections)",
            Refused::SourceFull => {
                "this address holds its share of connections (sip.max_connections_per_source)"
            }
        }
    }
}

/// A connection's place under the caps, given back when dropped.
#[derive(Debug)]
pub(crate) struct Admission {
    gate: Arc<ConnectionGate>,
    source: Option<IpAddr>,
}

impl ConnectionGate {
    /// A gate admitting `max` connections, `max_per_source` of them from one address.
    pub(crate) fn new(max: usize, max_per_source: usize) -> Arc<ConnectionGate> {
        Arc::new(ConnectionGate {
            open: AtomicUsize::new(0),
            max,
            by_source: DashMap::new(),
            max_per_source,
            refused: AtomicUsize::new(0),
            last_logged_ms: AtomicU64::new(0),
            started: Instant::now(),
        })
    }

    /// Logs a refused connection, at most one line per 10 s however many there are (a flood
    /// must not flood the log too).
    pub(crate) fn log_refusal(&self, peer: SocketAddr, transport: &str, why: Refused) {
        let refused = self.refused.fetch_add(1, Ordering::AcqRel) + 1;
        let now_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_logged_ms.load(Ordering::Acquire);
        let due = last == 0 || now_ms.saturating_sub(last) >= REFUSAL_LOG_PERIOD_MS;
        if due
            && self
                .last_logged_ms
                .compare_exchange(last, now_ms.max(1), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            let refused = self.refused.swap(0, Ordering::AcqRel).max(refused.min(1));
            tracing::warn!(%peer, transport, refused, "connection refused: {}", why.as_str());
        }
    }

    /// Admits a connection from `source` (`None`: one we open ourselves, under the total cap
    /// only).
    pub(crate) fn admit(self: &Arc<Self>, source: Option<IpAddr>) -> Result<Admission, Refused> {
        if self.open.fetch_add(1, Ordering::AcqRel) >= self.max {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::Full);
        }
        if let Some(ip) = source {
            // The entry's shard lock is held only for this increment.
            let mut count = self.by_source.entry(ip).or_insert(0);
            if *count >= self.max_per_source {
                drop(count);
                self.open.fetch_sub(1, Ordering::AcqRel);
                return Err(Refused::SourceFull);
            }
            *count += 1;
        }
        Ok(Admission {
            gate: self.clone(),
            source,
        })
    }

    /// Connections open now.
    pub(crate) fn count(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(ip) = self.source {
            self.gate.by_source.remove_if_mut(&ip, |_, count| {
                *count = count.saturating_sub(1);
                *count == 0
            });
        }
        self.gate.open.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_per_source_and_in_total_and_slots_come_back() {
        let gate = ConnectionGate::new(5, 2);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let a1 = gate.admit(Some(a)).expect("first");
        let _a2 = gate.admit(Some(a)).expect("second");
        assert_eq!(gate.admit(Some(a)).unwrap_err(), Refused::SourceFull);
        let _b1 = gate.admit(Some(b)).expect("another address");
        let _b2 = gate.admit(Some(b)).expect("another address");
        let _ours = gate.admit(None).expect("our own, total cap only");
        assert_eq!(gate.count(), 5);
        assert_eq!(
            gate.admit(Some("192.0.2.3".parse().unwrap())).unwrap_err(),
            Refused::Full
        );
        drop(a1);
        assert_eq!(gate.count(), 4);
        let _a3 = gate.admit(Some(a)).expect("a slot came back");
        assert_eq!(gate.admit(None).unwrap_err(), Refused::Full);
    }

    #[test]
    fn an_address_leaves_the_map_with_its_last_connection() {
        let gate = ConnectionGate::new(10, 10);
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let admissions: Vec<_> = (0..3)
            .map(|_| gate.admit(Some(ip)).expect("admitted"))
            .collect();
        assert_eq!(gate.by_source.get(&ip).map(|c| *c), Some(3));
        drop(admissions);
        assert!(gate.by_source.is_empty());
        assert_eq!(gate.count(), 0);
    }
}
