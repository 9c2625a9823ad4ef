//! A lossy network leg: decides, reproducibly from a seed, which packets never arrive.

/// splitmix64: a tiny, well-distributed generator, so the example needs no `rand`.
pub(crate) struct SplitMix(u64);

impl SplitMix {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1), from the top 53 bits.
    fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Drops packets independently at a fixed rate (Bernoulli loss), like the random loss a
/// congested Wi-Fi or mobile link shows; seeded so a test run is repeatable.
pub(crate) struct LossyLink {
    rng: SplitMix,
    loss: f64,
    pub(crate) sent: u64,
    pub(crate) dropped: u64,
}

impl LossyLink {
    pub(crate) fn new(loss_percent: f64, seed: u64) -> Self {
        LossyLink {
            rng: SplitMix::new(seed),
            loss: loss_percent / 100.0,
            sent: 0,
            dropped: 0,
        }
    }

    /// Whether the next packet is lost. Draws even at 0 % so that, for one seed, the packets
    /// lost at 5 % are also lost at 10 %: loss rates compare on the same pattern.
    pub(crate) fn drops_next(&mut self) -> bool {
        self.sent += 1;
        let drop = self.rng.next_unit() < self.loss;
        self.dropped += u64::from(drop);
        drop
    }
}
