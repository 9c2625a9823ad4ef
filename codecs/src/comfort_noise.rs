//! RFC 3389 comfort noise: the level carried in a CN payload, and a noise generator for it.
//!
//! Only the noise level is used; the optional spectral reflection coefficients are ignored, so the
//! generated noise is white at the signalled level.

use crate::Error;

/// The level a CN packet asks for, in -dBov (0 is full scale, 127 is the quietest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoiseLevel(u8);

impl NoiseLevel {
    /// A level low enough to be heard as silence, used when the far side signals none.
    pub const QUIET: NoiseLevel = NoiseLevel(70);

    /// A level in -dBov; values above 127 are clamped.
    pub fn new(minus_dbov: u8) -> Self {
        NoiseLevel(minus_dbov.min(127))
    }

    /// The level in -dBov.
    pub fn minus_dbov(self) -> u8 {
        self.0
    }

    /// Parses the level from a CN payload (its first byte; any spectral parameters follow).
    pub fn parse(payload: &[u8]) -> Result<Self, Error> {
        payload
            .first()
            .map(|&b| NoiseLevel::new(b & 0x7F))
            .ok_or(Error::BadComfortNoise)
    }

    /// Peak amplitude of uniform white noise with this RMS level relative to a full-scale sine.
    fn amplitude(self) -> i32 {
        // Full-scale sine RMS is 32767/√2; uniform noise in [-a, a] has RMS a/√3.
        let rms = 32767.0 / std::f64::consts::SQRT_2 * 10f64.powf(-f64::from(self.0) / 20.0);
        (rms * 3f64.sqrt()).round() as i32
    }
}

/// Generates white noise at a [`NoiseLevel`], deterministically and without allocation.
#[derive(Debug, Clone)]
pub struct NoiseGenerator {
    state: u32,
    amplitude: i32,
}

impl NoiseGenerator {
    /// A generator at `level`, seeded so two calls never produce correlated noise by accident.
    pub fn new(level: NoiseLevel, seed: u32) -> Self {
        NoiseGenerator {
            state: seed | 1,
            amplitude: level.amplitude(),
        }
    }

    /// Changes the level, as a new CN packet does.
    pub fn set_level(&mut self, level: NoiseLevel) {
        self.amplitude = level.amplitude();
    }

    /// Fills `out` with noise.
    pub fn fill(&mut self, out: &mut [i16]) {
        let span = 2 * self.amplitude + 1;
        for sample in out {
            // xorshift32: cheap, and good enough for noise nobody listens to closely.
            self.state ^= self.state << 13;
            self.state ^= self.state >> 17;
            self.state ^= self.state << 5;
            let value = (self.state % span as u32) as i32 - self.amplitude;
            *sample = value as i16;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_parses_and_clamps() {
        assert_eq!(NoiseLevel::parse(&[40, 1, 2]).unwrap().minus_dbov(), 40);
        assert_eq!(NoiseLevel::parse(&[0xFF]).unwrap().minus_dbov(), 127);
        assert_eq!(NoiseLevel::parse(&[]), Err(Error::BadComfortNoise));
    }

    #[test]
    fn noise_has_the_requested_level() {
        let mut generator = NoiseGenerator::new(NoiseLevel::new(30), 7);
        let mut buf = [0i16; 8000];
        generator.fill(&mut buf);
        let rms = (buf.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / 8000.0).sqrt();
        let dbov = 20.0 * (rms / (32767.0 / std::f64::consts::SQRT_2)).log10();
        assert!((dbov + 30.0).abs() < 0.5, "level {dbov:.2} dBov");
    }
}
