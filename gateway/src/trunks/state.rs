//! What the gateway knows about a trunk at run time: up or down (from OPTIONS probes), how many
//! calls it carries, its registration.

use std::time::Instant;

use landline_sip::message::StatusCode;

use crate::config::TrunkConfig;

/// A trunk's live state next to its configuration.
#[derive(Debug)]
pub struct TrunkState {
    /// The trunk's configuration (replaced on reload; calls keep their own copy).
    pub config: TrunkConfig,
    up: bool,
    answered_in_a_row: u32,
    failed_in_a_row: u32,
    active_calls: u32,
    next_probe: Option<Instant>,
    registered: bool,
}

impl TrunkState {
    /// A trunk starts up, so calls can go out before the first probe answers; probes then
    /// take it down if the carrier does not answer.
    pub fn new(config: TrunkConfig, now: Instant) -> Self {
        let next_probe = (!config.probe_interval.is_zero()).then_some(now);
        TrunkState {
            config,
            up: true,
            answered_in_a_row: 0,
            failed_in_a_row: 0,
            active_calls: 0,
            next_probe,
            registered: false,
        }
    }

    /// Whether new calls may be routed here: up, and under its call limit.
    pub fn can_take_call(&self) -> bool {
        self.up
            && self
                .config
                .max_calls
                .is_none_or(|max| self.active_calls < max)
    }

    /// Whether the probes say the trunk answers.
    pub fn is_up(&self) -> bool {
        self.up
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

    /// Takes a probe's outcome; returns the new up/down state when it changed.
    ///
    /// Any final response means the carrier's SIP stack is alive, except 408 (our own timeout)
    /// and 5xx/6xx, which say it will not take calls.
    pub fn probe_result(&mut self, status: StatusCode) -> Option<bool> {
        let code = status.code();
        let answered = code < 500 && code != 408;
        if answered {
            self.answered_in_a_row += 1;
            self.failed_in_a_row = 0;
            if !self.up && self.answered_in_a_row >= self.config.probe_up_after.max(1) {
                self.up = true;
                return Some(true);
            }
        } else {
            self.failed_in_a_row += 1;
            self.answered_in_a_row = 0;
            if self.up && self.failed_in_a_row >= self.config.probe_down_after.max(1) {
                self.up = false;
                return Some(false);
            }
        }
        None
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
        let mut state = TrunkState::new(trunk(), now);
        assert!(state.is_up() && state.probe_due(now) && !state.probe_due(now));
        assert_eq!(state.next_probe(), Some(now + Duration::from_secs(10)));
        assert_eq!(state.probe_result(status(408)), None);
        assert_eq!(state.probe_result(status(503)), None);
        assert_eq!(
            state.probe_result(status(200)),
            None,
            "an answer resets the count"
        );
        for _ in 0..2 {
            assert_eq!(state.probe_result(status(408)), None);
        }
        assert_eq!(state.probe_result(status(503)), Some(false));
        assert!(!state.can_take_call());
        // 404 or 405 still proves the carrier's stack is alive.
        assert_eq!(state.probe_result(status(405)), None);
        assert_eq!(state.probe_result(status(200)), Some(true));
        assert!(state.can_take_call());
    }

    #[test]
    fn the_call_limit_is_respected() {
        let mut state = TrunkState::new(trunk(), Instant::now());
        state.call_started();
        state.call_started();
        assert!(!state.can_take_call());
        state.call_ended();
        assert!(state.can_take_call());
        assert_eq!(state.active_calls(), 1);
    }
}
