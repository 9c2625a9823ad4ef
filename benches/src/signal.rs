//! A deterministic, speech-like test signal.
//!
//! Codec cost depends on what is coded: silence is cheap for SILK, a pure tone is unusually
//! predictable, white noise unusually hard. Benches therefore run on something shaped like speech:
//! phrases of syllables, each a voiced vowel (harmonics of a glottal pitch that moves along an
//! intonation contour, shaped by three formants and a -6 dB/octave tilt) often preceded by a
//! fricative (high-passed noise), with pauses between words and phrases and a faint noise floor
//! as a real microphone has. It is generated rather than read from a recording so that the figures
//! are reproducible on any machine, with nothing to install.

use std::f64::consts::TAU;

/// Generates `seconds` of speech-like signal at `rate` Hz (8 000 or 48 000), from `seed`.
///
/// The same seed gives the same utterance at every rate; the bandwidth follows the rate
/// (telephone band at 8 kHz, up to 7 kHz at 48 kHz, as a browser microphone delivers).
pub fn speech(rate: u32, seconds: f64, seed: u64) -> Vec<i16> {
    let total = (f64::from(rate) * seconds) as usize;
    let segments = script(seconds, seed);
    let mut synth = Synth::new(rate, seed);
    let mut out = Vec::with_capacity(total);
    for segment in &segments {
        synth.render(segment, total, &mut out);
        if out.len() >= total {
            break;
        }
    }
    out.resize(total, 0);
    out
}

/// Vowel formants (F1, F2, F3) in Hz: /a/, /e/, /i/, /o/, /u/.
const VOWELS: [[f64; 3]; 5] = [
    [730.0, 1090.0, 2440.0],
    [530.0, 1840.0, 2480.0],
    [270.0, 2290.0, 3010.0],
    [570.0, 840.0, 2410.0],
    [300.0, 870.0, 2240.0],
];
/// Formant bandwidths and relative levels.
const FORMANT_WIDTH: [f64; 3] = [90.0, 110.0, 170.0];
const FORMANT_LEVEL: [f64; 3] = [1.0, 0.6, 0.3];
/// RMS of a voiced syllable at its peak: about -21 dBFS, a normal speaking level.
const VOICED_RMS: f64 = 2900.0;
/// RMS of a fricative at its peak.
const FRICATIVE_RMS: f64 = 700.0;
/// RMS of the noise floor.
const FLOOR_RMS: f64 = 12.0;
/// Most harmonics synthesised (a 100 Hz voice up to 7 kHz).
const MAX_HARMONICS: usize = 72;

/// One stretch of the utterance.
enum Segment {
    /// A vowel: formants, pitch at start and end, duration in seconds.
    Voiced {
        formants: [f64; 3],
        f0: (f64, f64),
        duration: f64,
    },
    /// A fricative consonant of this duration.
    Fricative { duration: f64 },
    /// Silence (noise floor only) of this duration.
    Pause { duration: f64 },
}

/// Lays out phrases of syllables with pauses, with an intonation that declines over a phrase.
fn script(seconds: f64, seed: u64) -> Vec<Segment> {
    let mut rng = Rng::new(seed ^ 0x5EED_0F5E_EC40_0001);
    let mut segments = Vec::new();
    let mut t = 0.0;
    while t < seconds {
        let phrase = rng.range(1.4, 3.0);
        let mut in_phrase = 0.0;
        // Pitch falls from about 185 Hz to 115 Hz over a phrase (declination).
        let (high, low) = (rng.range(170.0, 200.0), rng.range(105.0, 125.0));
        while in_phrase < phrase {
            if rng.next() < 0.4 {
                let duration = rng.range(0.05, 0.11);
                segments.push(Segment::Fricative { duration });
                in_phrase += duration;
            }
            let duration = rng.range(0.11, 0.26);
            let pitch = |x: f64| high + (low - high) * (x / phrase).min(1.0);
            let accent = rng.range(0.95, 1.12);
            let f0 = (
                pitch(in_phrase) * accent,
                pitch(in_phrase + duration) / accent,
            );
            let formants = VOWELS[(rng.next() * VOWELS.len() as f64) as usize % VOWELS.len()];
            segments.push(Segment::Voiced {
                formants,
                f0,
                duration,
            });
            in_phrase += duration;
            let gap = rng.range(0.02, 0.08);
            segments.push(Segment::Pause { duration: gap });
            in_phrase += gap;
        }
        let pause = rng.range(0.25, 0.6);
        segments.push(Segment::Pause { duration: pause });
        t += in_phrase + pause;
    }
    segments
}

/// Oscillator and noise state carried across segments, so the waveform stays continuous.
struct Synth {
    rate: f64,
    max_frequency: f64,
    /// Phase of the fundamental, in radians.
    phase: f64,
    rng: Rng,
    previous_noise: f64,
    amplitudes: [f64; MAX_HARMONICS + 1],
}

impl Synth {
    fn new(rate: u32, seed: u64) -> Self {
        let rate = f64::from(rate);
        Synth {
            rate,
            max_frequency: (0.45 * rate).min(7_000.0),
            phase: 0.0,
            rng: Rng::new(seed),
            previous_noise: 0.0,
            amplitudes: [0.0; MAX_HARMONICS + 1],
        }
    }

    fn render(&mut self, segment: &Segment, total: usize, out: &mut Vec<i16>) {
        let duration = match segment {
            Segment::Voiced { duration, .. }
            | Segment::Fricative { duration }
            | Segment::Pause { duration } => *duration,
        };
        let samples = ((duration * self.rate) as usize).min(total.saturating_sub(out.len()));
        // Harmonic amplitudes are recomputed each millisecond as the pitch moves.
        let block = (self.rate / 1000.0) as usize;
        let mut harmonics = 0;
        for i in 0..samples {
            let x = i as f64 / samples as f64;
            let envelope = envelope(x, duration);
            let mut value = FLOOR_RMS * self.noise();
            match segment {
                Segment::Voiced { formants, f0, .. } => {
                    let f0 = f0.0 + (f0.1 - f0.0) * x;
                    if i % block == 0 {
                        harmonics = self.shape(f0, formants);
                    }
                    self.phase = (self.phase + TAU * f0 / self.rate) % TAU;
                    value += VOICED_RMS * envelope * self.harmonic_sum(harmonics);
                }
                Segment::Fricative { .. } => {
                    // First difference of white noise: energy rising towards high frequencies.
                    let white = self.noise();
                    let hiss = (white - self.previous_noise) / std::f64::consts::SQRT_2;
                    self.previous_noise = white;
                    value += FRICATIVE_RMS * envelope * hiss;
                }
                Segment::Pause { .. } => {}
            }
            out.push(value.round().clamp(-32_768.0, 32_767.0) as i16);
        }
    }

    /// Sets the harmonic amplitudes for pitch `f0` (normalised to unit RMS); returns how many.
    fn shape(&mut self, f0: f64, formants: &[f64; 3]) -> usize {
        let count = ((self.max_frequency / f0) as usize).clamp(1, MAX_HARMONICS);
        let mut power = 0.0;
        for k in 1..=count {
            let f = k as f64 * f0;
            let resonance: f64 = (0..3)
                .map(|j| {
                    let detune = (f - formants[j]) / FORMANT_WIDTH[j];
                    FORMANT_LEVEL[j] / (1.0 + detune * detune)
                })
                .sum();
            let tilt = 300.0 / f.max(300.0);
            let a = (resonance + 0.02) * tilt;
            self.amplitudes[k] = a;
            power += a * a / 2.0;
        }
        let norm = 1.0 / power.sqrt();
        for a in &mut self.amplitudes[1..=count] {
            *a *= norm;
        }
        count
    }

    /// Σ a_k·sin(kθ), with sin(kθ) from the Chebyshev recurrence (one sin and cos per sample).
    fn harmonic_sum(&self, count: usize) -> f64 {
        let (sin, cos) = self.phase.sin_cos();
        let twice_cos = 2.0 * cos;
        let (mut previous, mut current) = (0.0, sin);
        let mut sum = self.amplitudes[1] * current;
        for k in 2..=count {
            let next = twice_cos * current - previous;
            previous = current;
            current = next;
            sum += self.amplitudes[k] * current;
        }
        sum
    }

    /// Roughly Gaussian noise of unit RMS (sum of uniforms).
    fn noise(&mut self) -> f64 {
        let sum: f64 = (0..4).map(|_| self.rng.next()).sum();
        (sum - 2.0) * 3.0_f64.sqrt()
    }
}

/// A raised-cosine attack (up to 25 ms) and release (up to 45 ms) over a segment; `x` in [0, 1).
fn envelope(x: f64, duration: f64) -> f64 {
    let attack = (0.025 / duration).min(0.4);
    let release = (0.045 / duration).min(0.4);
    let ramp = |y: f64| 0.5 - 0.5 * (std::f64::consts::PI * y).cos();
    if x < attack {
        ramp(x / attack)
    } else if x > 1.0 - release {
        ramp((1.0 - x) / release)
    } else {
        1.0
    }
}

/// xorshift64*: small, fast and the same everywhere.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    /// Uniform in [0, 1).
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn range(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rms(samples: &[i16]) -> f64 {
        let power: f64 = samples.iter().map(|&s| f64::from(s).powi(2)).sum();
        (power / samples.len() as f64).sqrt()
    }

    #[test]
    fn has_speech_level_and_pauses() {
        let signal = speech(8_000, 10.0, 1);
        assert_eq!(signal.len(), 80_000);
        let frames: Vec<f64> = signal.chunks(160).map(rms).collect();
        let loud = frames.iter().filter(|&&r| r > 1_000.0).count();
        let quiet = frames.iter().filter(|&&r| r < 50.0).count();
        // Mostly talking, with real pauses: both kinds of frame in good numbers.
        assert!(
            loud > 200 && quiet > 50,
            "loud {loud}, quiet {quiet} of {}",
            frames.len()
        );
        assert!(frames.iter().all(|&r| r < 12_000.0));
    }

    #[test]
    fn is_deterministic_and_rate_independent_in_length() {
        assert_eq!(speech(48_000, 0.5, 7), speech(48_000, 0.5, 7));
        assert_eq!(
            speech(48_000, 1.0, 7).len(),
            6 * speech(8_000, 1.0, 7).len()
        );
    }
}
