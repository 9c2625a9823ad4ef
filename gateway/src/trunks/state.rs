//! What the gateway knows about a trunk at run time: its resolved addresses, each up or down
//! (from OPTIONS probes), how many calls it carries, its registration.
//!
//! Probes go to every address of a trunk, and each address keeps its own up/down state with the
//! trunk's thresholds: a call skips an address known to be down instead of waiting out its
//! INVITE timeout there, and the trunk is up while any of its addresses is.

use std::net::SocketAddr;
use std::time::Instant;

use landline_sip::message::StatusCode;

use crate::config::TrunkConfig;

/// One of a trunk's addresses, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkAddress {
    /// The host as configured (a name or an IP literal): the Request-URI's host, and the
    /// name a TLS certificate is checked against unless `tls_server_name` is set.
    pub host: String,
    /// Where messages go.
    pub socket: SocketAddr,
}

/// Resolves a trunk's addresses, in order. Host names are resolved once, at start (A/AAAA
/// through the system resolver, the first answer); a name that does not resolve is left out,
/// logged, and the trunk is down when none does.
pub fn resolve(trunk: &TrunkConfig) -> Vec<TrunkAddress> {
    use std::net::ToSocketAddrs;
    trunk
        .addresses
        .iter()
        .filter_map(|address| {
            let socket = match address.ip() {
                Some(ip) => Some(SocketAddr::new(ip, address.port)),
                None => (address.host.as_str(), address.port)
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut addrs| addrs.next()),
            };
            if socket.is_none() {
                tracing::error!(trunk = %trunk.name.as_str(), host = %address.host, "trunk host name does not resolve; calls will skip this address");
            }
            Some(TrunkAddress {
                host: address.host.clone(),
                socket: socket?,
            })
        })
        .collect()
}

/// A trunk's live state next to its configuration.
#[derive(Debug)]
pub struct TrunkState {
    /// The trunk's configuration (replaced on reload; calls keep their own copy).
    pub config: TrunkConfig,
    addresses: Vec<AddressState>,
    up: bool,
    active_calls: u32,
    next_probe: Option<Instant>,
    registered: bool,
    /// Removed from the configuration by a reload: takes no new calls and is not probed, but
    /// its calls run on and still count here.
    retired: bool,
}

/// One address's probe state.
#[derive(Debug)]
struct AddressState {
    address: TrunkAddress,
    up: bool,
    answered_in_a_row: u32,
    failed_in_a_row: u32,
}

impl TrunkState {
    /// A trunk starts up, so calls can go out before the first probe answers; probes then
    /// take addresses down if the carrier does not answer there. `addresses` are the
    /// configured ones that resolved, in the configured order; with none the trunk is down.
    pub fn new(config: TrunkConfig, addresses: Vec<TrunkAddress>, now: Instant) -> Self {
        let next_probe = (!config.probe_interval.is_zero()).then_some(now);
        TrunkState {
            config,
            up: !addresses.is_empty(),
            addresses: addresses
                .into_iter()
                .map(|address| AddressState {
                    address,
                    up: true,
                    answered_in_a_row: 0,
                    failed_in_a_row: 0,
                })
                .collect(),
            active_calls: 0,
            next_probe,
            registered: false,
            retired: false,
        }
    }

    /// Takes `config` (a reload) where only per-call settings changed (the addresses and
    /// transport are the same): probe states and call counts go on; probing follows the new
    /// interval.
    pub fn reconfigure(&mut self, config: TrunkConfig, now: Instant) {
        if config.probe_interval != self.config.probe_interval {
            self.next_probe = (!config.probe_interval.is_zero()).then_some(now);
        }
        self.config = config;
    }

    /// A fresh state for a trunk whose addresses or transport a reload changed, counting the
    /// calls this one still carries.
    pub fn succeed(&self, config: TrunkConfig, addresses: Vec<TrunkAddress>, now: Instant) -> Self {
        let mut next = TrunkState::new(config, addresses, now);
        next.active_calls = self.active_calls;
        next
    }

    /// The trunk left the configuration: no new calls, probes or registration from now on.
    pub fn retire(&mut self) {
        self.retired = true;
        self.up = false;
        self.next_probe = None;
        self.registered = false;
    }

    /// Whether a reload removed the trunk.
    pub fn is_retired(&self) -> bool {
        self.retired
    }

    /// Whether new calls may be routed here: up, and under its call limit.
    pub fn can_take_call(&self) -> bool {
        self.up
            && self
                .config
                .max_calls
                .is_none_or(|max| self.active_calls < max)
    }

    /// Whether the probes say the trunk answers (at one address at least).
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Every resolved address, in the configured order.
    pub fn addresses(&self) -> impl Iterator<Item = &TrunkAddress> {
        self.addresses.iter().map(|a| &a.address)
    }

    /// Address `index`, if there is one.
    pub fn address(&self, index: usize) -> Option<&TrunkAddress> {
        self.addresses.get(index).map(|a| &a.address)
    }

    /// The first address after `after` (from the start when `None`) that the probes do not
    /// say is down: where a call tries next.
    pub fn next_address(&self, after: Option<usize>) -> Option<usize> {
        let start = after.map_or(0, |i| i + 1);
        (start..self.addresses.len()).find(|&i| self.addresses[i].up)
    }

    /// Counts a call starting on this trunk.
    pub fn call_started(&mut self) {
        self.active_calls += 1;
    }

    /// Counts a call on this trunk ending.
    pub fn call_ended(&mut self) {
        self.active_calls = self.active_calls.saturating_sub(1);
    }

    /// Calls on this trunk now.
    pub fn active_calls(&self) -> u32 {
        self.active_calls
    }

    /// Whether a probe is due at `now`; if so, the next one is scheduled.
    pub fn probe_due(&mut self, now: Instant) -> bool {
        match self.next_probe {
            Some(at) if at <= now => {
                self.next_probe = Some(now + self.config.probe_interval);
                true
            }
            _ => false,
        }
    }

    /// When the next probe is due, if probing is on.
    pub fn next_probe(&self) -> Option<Instant> {
        self.next_probe
    }

    /// Takes the outcome of a probe to address `index`; returns the trunk's new up/down state
    /// when it changed (an address going down or up does not always change it).
    ///
    /// Any final response means the carrier's SIP stack is alive, except 408 (our own timeout)
    /// and 5xx/6xx, which say it will not take calls.
    pub fn probe_result(&mut self, index: usize, status: StatusCode) -> Option<bool> {
        let (up_after, down_after) = (
            self.config.probe_up_after.max(1),
            self.config.probe_down_after.max(1),
        );
        let address = self.addresses.get_mut(index)?;
        let code = status.code();
        if code < 500 && code != 408 {
            address.answered_in_a_row += 1;
            address.failed_in_a_row = 0;
            if !address.up && address.answered_in_a_row >= up_after {
                address.up = true;
            }
        } else {
            address.failed_in_a_row += 1;
            address.answered_in_a_row = 0;
            if address.up && address.failed_in_a_row >= down_after {
                address.up = false;
            }
        }
        let up = self.addresses.iter().any(|a| a.up);
        if up == self.up {
            return None;
        }
        self.up = up;
        Some(up)
    }

    /// Whether the probes say address `index` answers.
    pub fn address_up(&self, index: usize) -> bool {
        self.addresses.get(index).is_some_and(|a| a.up)
    }

    /// Records the registration's state (registration trunks).
    pub fn set_registered(&mut self, registered: bool) {
        self.registered = registered;
    }

    /// Whether the registration is in force.
    pub fn is_registered(&self) -> bool {
        self.registered
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::config::Config;

    fn addresses(n: u8) -> Vec<TrunkAddress> {
        (1..=n)
            .map(|i| TrunkAddress {
                host: format!("192.0.2.{i}"),
                socket: SocketAddr::from(([192, 0, 2, i], 5060)),
            })
            .collect()
    }

    fn trunk() -> TrunkConfig {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf/landline.toml");
        let config =
            Config::load_layers(&path, None, Some(Default::default())).expect("shipped config");
        let mut trunk = config
            .trunks
            .into_iter()
            .next()
            .expect("the shipped example trunk");
        trunk.probe_interval = Duration::from_secs(10);
        trunk.probe_up_after = 2;
        trunk.probe_down_after = 3;
        trunk.max_calls = Some(2);
        trunk
    }

    fn status(code: u16) -> StatusCode {
        StatusCode::new(code).expect("valid status")
    }

    #[test]
    fn probes_take_a_trunk_down_and_bring_it_back() {
        let now = Instant::now();
        let mut state = TrunkState::new(trunk(), addresses(1), now);
        assert!(state.is_up() && state.probe_due(now) && !state.probe_due(now));
        assert_eq!(state.next_probe(), Some(now + Duration::from_secs(10)));
        assert_eq!(state.probe_result(0, status(408)), None);
        assert_eq!(state.probe_result(0, status(503)), None);
        assert_eq!(
            state.probe_result(0, status(200)),
            None,
            "an answer resets the count"
        );
        for _ in 0..2 {
            assert_eq!(state.probe_result(0, status(408)), None);
        }
        assert_eq!(state.probe_result(0, status(503)), Some(false));
        assert!(!state.can_take_call());
        // 404 or 405 still proves the carrier's stack is alive.
        assert_eq!(state.probe_result(0, status(405)), None);
        assert_eq!(state.probe_result(0, status(200)), Some(true));
        assert!(state.can_take_call());
    }

    #[test]
    fn the_call_limit_is_respected() {
        let mut state = TrunkState::new(trunk(), addresses(1), Instant::now());
        state.call_started();
        state.call_started();
        assert!(!state.can_take_call());
        state.call_ended();
        assert!(state.can_take_call());
        assert_eq!(state.active_calls(), 1);
    }

    #[test]
    fn a_reload_keeps_calls_counted_and_a_retired_trunk_takes_none() {
        let now = Instant::now();
        let mut state = TrunkState::new(trunk(), addresses(1), now);
        state.call_started();
        assert!(state.probe_due(now));
        // Only per-call settings: probe state goes on; a new interval restarts probing.
        let mut limited = trunk();
        limited.max_calls = Some(1);
        state.reconfigure(limited.clone(), now);
        assert!(
            !state.can_take_call(),
            "the new limit counts the running call"
        );
        assert!(
            !state.probe_due(now),
            "the same interval keeps the schedule"
        );
        limited.probe_interval = Duration::from_secs(5);
        state.reconfigure(limited.clone(), now);
        assert!(state.probe_due(now));
        // New addresses: a fresh state still counting the call.
        let moved = state.succeed(limited, addresses(2), now);
        assert_eq!(moved.active_calls(), 1);
        assert_eq!(moved.addresses().count(), 2);
        // Removed: no calls, no probes; its running call still ends here.
        let mut removed = moved;
        removed.retire();
        assert!(removed.is_retired() && !removed.can_take_call() && !removed.probe_due(now));
        removed.call_ended();
        assert_eq!(removed.active_calls(), 0);
    }

    #[test]
    fn each_address_is_probed_and_skipped_on_its_own() {
        let now = Instant::now();
        let mut state = TrunkState::new(trunk(), addresses(3), now);
        assert_eq!(state.next_address(None), Some(0));
        assert_eq!(state.next_address(Some(0)), Some(1));
        assert_eq!(state.next_address(Some(2)), None);
        // probe_down_after = 3: the first address goes down; the trunk stays up.
        for _ in 0..3 {
            assert_eq!(state.probe_result(0, status(408)), None);
        }
        assert!(!state.address_up(0) && state.address_up(1) && state.is_up());
        assert_eq!(state.next_address(None), Some(1), "a call skips it");
        for _ in 0..2 {
            assert_eq!(state.probe_result(1, status(503)), None);
            assert_eq!(state.probe_result(2, status(503)), None);
        }
        assert_eq!(state.probe_result(1, status(503)), None);
        assert_eq!(
            state.probe_result(2, status(503)),
            Some(false),
            "down when the last address is"
        );
        assert!(!state.can_take_call());
        assert_eq!(state.next_address(None), None);
        // probe_up_after = 2: one address back brings the trunk back.
        assert_eq!(state.probe_result(2, status(200)), None);
        assert_eq!(state.probe_result(2, status(200)), Some(true));
        assert_eq!(state.next_address(None), Some(2));
        assert_eq!(state.probe_result(7, status(200)), None, "no such address");
    }

    #[test]
    fn a_trunk_with_no_address_resolved_is_down() {
        let state = TrunkState::new(trunk(), Vec::new(), Instant::now());
        assert!(!state.is_up() && !state.can_take_call());
        assert_eq!(state.next_address(None), None);
    }
}
