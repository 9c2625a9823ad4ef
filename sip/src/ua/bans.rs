//! Failed digest authentications counted per source address, so a password cracker gets a
//! handful of guesses and then silence, instead of a fresh challenge for every guess forever.
//!
//! Sans-IO like the rest of the crate: time is an argument. [`AuthBans`] only counts and
//! answers "is this source banned"; [`super::Authenticator`] decides what counts as a failure
//! (credentials that did not verify, never a first request without credentials, a stale nonce
//! or a replay) and which sources are exempt (trusted and credential-required carrier ranges).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

/// When a source is banned and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BanPolicy {
    /// Failed authentications within `window` that ban a source; 0 turns banning off.
    pub failures: u32,
    /// The window failures are counted in (a fixed window starting at a source's first
    /// failure, restarted once it has passed).
    pub window: Duration,
    /// The first ban's length. A source banned again before `MAX_BAN_FACTOR` times this has
    /// passed since its previous ban ended gets twice its previous ban, up to that factor.
    pub ban: Duration,
    /// Sources remembered at once; beyond it, the one whose last failure is oldest is
    /// forgotten, so a flood from many addresses costs bounded memory.
    pub max_sources: usize,
}

/// The longest ban, in multiples of [`BanPolicy::ban`]; also how long after its last ban's end
/// a source's repeat count is kept.
pub const MAX_BAN_FACTOR: u32 = 16;

impl Default for BanPolicy {
    /// 10 failures in 60 s ban for 5 minutes; 10,000 sources remembered (under 2 MB).
    fn default() -> Self {
        Self {
            failures: 10,
            window: Duration::from_secs(60),
            ban: Duration::from_secs(300),
            max_sources: 10_000,
        }
    }
}

impl BanPolicy {
    /// No source is ever banned.
    pub fn off() -> Self {
        Self {
            failures: 0,
            ..Self::default()
        }
    }
}

/// A ban just imposed, for the application to log and count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ban {
    /// The banned source: an IPv4 address, or an IPv6 /64 network (its first address).
    pub source: IpAddr,
    /// How long it lasts.
    pub duration: Duration,
    /// The failures that earned it.
    pub failures: u32,
}

/// Running totals, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BanStats {
    /// Failed authentications counted (from sources that can be banned).
    pub failures: u64,
    /// Bans imposed.
    pub bans: u64,
    /// Requests refused (dropped) because their source was banned.
    pub refused: u64,
}

/// Failure counts and bans per source address.
#[derive(Debug)]
pub struct AuthBans {
    policy: BanPolicy,
    sources: HashMap<IpAddr, Source>,
    /// Sources by last failure, oldest first; an entry whose stamp is no longer its source's
    /// is stale and skipped (touching a source pushes a new entry rather than moving one).
    order: VecDeque<(IpAddr, u64)>,
    next_stamp: u64,
    stats: BanStats,
}

#[derive(Debug, Clone, Copy)]
struct Source {
    window_start: Instant,
    failures: u32,
    banned_until: Option<Instant>,
    /// The last ban's length, kept for doubling while the source is remembered.
    last_ban: Option<Duration>,
    stamp: u64,
}

impl AuthBans {
    /// Counts by `policy`.
    pub fn new(policy: BanPolicy) -> Self {
        Self {
            policy,
            sources: HashMap::new(),
            order: VecDeque::new(),
            next_stamp: 0,
            stats: BanStats::default(),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> BanPolicy {
        self.policy
    }

    /// Changes the policy; counts and bans running go on under the new numbers.
    pub fn set_policy(&mut self, policy: BanPolicy) {
        self.policy = policy;
        self.evict_to(policy.max_sources);
    }

    /// Whether `ip` is banned at `now`; a banned answer is counted as a refused request.
    pub fn is_banned(&mut self, now: Instant, ip: IpAddr) -> bool {
        if self.policy.failures == 0 {
            return false;
        }
        let banned = self
            .sources
            .get(&key(ip))
            .and_then(|s| s.banned_until)
            .is_some_and(|until| now < until);
        if banned {
            self.stats.refused += 1;
        }
        banned
    }

    /// Counts one failed authentication from `ip`; the ban it earns, if it is the one that
    /// reaches the threshold.
    pub fn record_failure(&mut self, now: Instant, ip: IpAddr) -> Option<Ban> {
        let policy = self.policy;
        if policy.failures == 0 || policy.max_sources == 0 {
            return None;
        }
        self.stats.failures += 1;
        let ip = key(ip);
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        if !self.sources.contains_key(&ip) {
            self.evict_to(policy.max_sources - 1);
        }
        let source = self.sources.entry(ip).or_insert(Source {
            window_start: now,
            failures: 0,
            banned_until: None,
            last_ban: None,
            stamp,
        });
        source.stamp = stamp;
        if now.saturating_duration_since(source.window_start) >= policy.window {
            source.window_start = now;
            source.failures = 0;
        }
        source.failures += 1;
        let mut ban = None;
        if source.failures >= policy.failures {
            let longest = policy.ban.saturating_mul(MAX_BAN_FACTOR);
            // A repeat offender (banned before, and not clean for the longest ban since)
            // gets twice its last ban.
            let repeat = match (source.last_ban, source.banned_until) {
                (Some(last), Some(ended)) if now.saturating_duration_since(ended) < longest => {
                    Some(last)
                }
                _ => None,
            };
            let duration = repeat.map_or(policy.ban, |last| last.saturating_mul(2).min(longest));
            // A policy of absurd length (beyond what `Instant` holds) bans for a day instead.
            let until = now
                .checked_add(duration)
                .or_else(|| now.checked_add(Duration::from_secs(86_400)));
            source.banned_until = until;
            source.last_ban = Some(duration);
            ban = Some(Ban {
                source: ip,
                duration,
                failures: source.failures,
            });
            source.failures = 0;
            source.window_start = now;
            self.stats.bans += 1;
        }
        self.order.push_back((ip, stamp));
        if self.order.len() > 2 * self.sources.len() + 64 {
            self.compact();
        }
        ban
    }

    /// The running totals.
    pub fn stats(&self) -> BanStats {
        self.stats
    }

    /// Sources remembered now.
    pub fn tracked(&self) -> usize {
        self.sources.len()
    }

    /// Forgets the sources whose last failure is oldest until at most `max` are left.
    fn evict_to(&mut self, max: usize) {
        while self.sources.len() > max {
            let Some((ip, stamp)) = self.order.pop_front() else {
                // Unreachable while every source has an entry in `order`; never loop on it.
                self.sources.clear();
                return;
            };
            if self.sources.get(&ip).is_some_and(|s| s.stamp == stamp) {
                self.sources.remove(&ip);
            }
        }
    }

    /// Drops stale entries from `order`, keeping it within twice the sources.
    fn compact(&mut self) {
        let sources = &self.sources;
        self.order
            .retain(|(ip, stamp)| sources.get(ip).is_some_and(|s| s.stamp == *stamp));
    }
}

/// What a source is counted as: an IPv4 address (an IPv4-mapped IPv6 one as IPv4), or an
/// IPv6 /64, since one host or subscriber usually holds a whole /64 and could otherwise
/// step to a fresh address for every guess.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let network = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(network))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ATTACKER: [u8; 4] = [203, 0, 113, 9];
    const NEIGHBOUR: [u8; 4] = [203, 0, 113, 10];

    fn ip(octets: [u8; 4]) -> IpAddr {
        IpAddr::from(octets)
    }

    fn policy() -> BanPolicy {
        BanPolicy {
            failures: 3,
            window: Duration::from_secs(60),
            ban: Duration::from_secs(300),
            max_sources: 100,
        }
    }

    /// `n` failures one second apart from `from`; the bans they earned.
    fn fail(bans: &mut AuthBans, now: &mut Instant, from: IpAddr, n: u32) -> Vec<Ban> {
        (0..n)
            .filter_map(|_| {
                *now += Duration::from_secs(1);
                bans.record_failure(*now, from)
            })
            .collect()
    }

    #[test]
    fn the_threshold_failure_bans_for_the_ban_time_and_the_ban_ends() {
        let mut bans = AuthBans::new(policy());
        let mut now = Instant::now();
        assert!(fail(&mut bans, &mut now, ip(ATTACKER), 2).is_empty());
        assert!(
            !bans.is_banned(now, ip(ATTACKER)),
            "two failures are allowed"
        );
        let earned = fail(&mut bans, &mut now, ip(ATTACKER), 1);
        assert_eq!(
            earned,
            vec![Ban {
                source: ip(ATTACKER),
                duration: Duration::from_secs(300),
                failures: 3
            }]
        );
        let banned_at = now;
        assert!(bans.is_banned(now, ip(ATTACKER)));
        assert!(!bans.is_banned(now, ip(NEIGHBOUR)), "another source is not");
        assert!(bans.is_banned(banned_at + Duration::from_secs(299), ip(ATTACKER)));
        assert!(!bans.is_banned(banned_at + Duration::from_secs(300), ip(ATTACKER)));
        assert_eq!(
            bans.stats(),
            BanStats {
                failures: 3,
                bans: 1,
                refused: 2
            }
        );
    }

    #[test]
    fn failures_spread_wider_than_the_window_never_ban() {
        let mut bans = AuthBans::new(policy());
        let mut now = Instant::now();
        for _ in 0..20 {
            now += Duration::from_secs(31);
            assert_eq!(bans.record_failure(now, ip(ATTACKER)), None);
        }
        assert!(!bans.is_banned(now, ip(ATTACKER)));
    }

    #[test]
    fn repeat_bans_double_up_to_the_cap_and_a_clean_spell_starts_over() {
        let mut bans = AuthBans::new(policy());
        let mut now = Instant::now();
        let mut lengths = Vec::new();
        for _ in 0..7 {
            let ban = fail(&mut bans, &mut now, ip(ATTACKER), 3);
            let ban = ban.first().copied().expect("banned");
            lengths.push(ban.duration.as_secs() / 300);
            now += ban.duration; // the ban runs out, the cracker comes back at once
        }
        assert_eq!(lengths, [1, 2, 4, 8, 16, 16, 16]);
        // Clean for longer than the longest ban: the next ban is a first one again.
        now += Duration::from_secs(300) * MAX_BAN_FACTOR;
        let ban = fail(&mut bans, &mut now, ip(ATTACKER), 3);
        assert_eq!(ban[0].duration, Duration::from_secs(300));
    }

    #[test]
    fn an_absurd_ban_time_does_not_overflow() {
        let mut bans = AuthBans::new(BanPolicy {
            ban: Duration::MAX,
            ..policy()
        });
        let mut now = Instant::now();
        assert_eq!(fail(&mut bans, &mut now, ip(ATTACKER), 3).len(), 1);
        assert!(bans.is_banned(now, ip(ATTACKER)));
    }

    #[test]
    fn off_counts_nothing_and_bans_nobody() {
        let mut bans = AuthBans::new(BanPolicy::off());
        let mut now = Instant::now();
        assert!(fail(&mut bans, &mut now, ip(ATTACKER), 1000).is_empty());
        assert!(!bans.is_banned(now, ip(ATTACKER)));
        assert_eq!(bans.tracked(), 0);
    }

    /// Memory is bounded: past `max_sources`, the source whose last failure is oldest goes,
    /// while one that keeps failing stays remembered (and banned).
    #[test]
    fn sources_are_capped_and_the_oldest_forgotten() {
        let mut bans = AuthBans::new(BanPolicy {
            max_sources: 50,
            ..policy()
        });
        let mut now = Instant::now();
        assert_eq!(fail(&mut bans, &mut now, ip(ATTACKER), 3).len(), 1);
        fail(&mut bans, &mut now, ip(NEIGHBOUR), 1);
        for i in 0..10_000u32 {
            let [_, a, b, c] = i.to_be_bytes();
            let spray = IpAddr::from([10, a, b, c]);
            now += Duration::from_millis(1);
            bans.record_failure(now, spray);
            if i % 40 == 0 {
                // The neighbour keeps failing now and then: it stays the most recent.
                bans.record_failure(now, ip(NEIGHBOUR));
            }
            assert!(bans.tracked() <= 50);
            assert!(bans.order.len() <= 2 * 50 + 64 + 1);
        }
        assert_eq!(bans.tracked(), 50);
        assert!(
            !bans.is_banned(now, ip(ATTACKER)),
            "the attacker's entry was the oldest and went"
        );
        assert!(bans.sources.contains_key(&ip(NEIGHBOUR)));
    }

    #[test]
    fn ipv6_sources_count_per_64_and_mapped_ipv4_as_ipv4() {
        let mut bans = AuthBans::new(policy());
        let mut now = Instant::now();
        for host in 1..=3u16 {
            now += Duration::from_secs(1);
            let v6 = IpAddr::from([0x2001, 0xdb8, 0, 7, 0, 0, 0, host]);
            bans.record_failure(now, v6);
        }
        assert!(bans.is_banned(now, "2001:db8:0:7:ffff::1".parse().expect("v6")));
        assert!(!bans.is_banned(now, "2001:db8:0:8::1".parse().expect("v6")));
        fail(
            &mut bans,
            &mut now,
            "::ffff:198.51.100.4".parse().expect("v6"),
            3,
        );
        assert!(bans.is_banned(now, "198.51.100.4".parse().expect("v4")));
    }
}
