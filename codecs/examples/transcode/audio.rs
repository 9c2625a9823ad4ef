//! WAV in and out, and the band-limited resampler that brings any input rate to the rate the
//! far side's encoder runs at. The library has no resampler on purpose (libopus converts to and
//! from 8 kHz itself); this one only prepares test signals.

use std::f64::consts::PI;
use std::path::Path;

/// A mono signal, samples in [-1, 1].
pub(crate) struct Signal {
    pub(crate) rate: u32,
    pub(crate) samples: Vec<f64>,
}

/// Reads a mono WAV of any rate, integer (8–32 bit) or 32-bit float.
pub(crate) fn read_wav(path: &Path) -> Result<Signal, String> {
    let shown = path.display();
    let mut reader =
        hound::WavReader::open(path).map_err(|e| format!("cannot read {shown}: {}", reason(&e)))?;
    let spec = reader.spec();
    if spec.channels != 1 {
        return Err(format!(
            "{shown} has {} channels; give a mono file (e.g. `sox {shown} -c 1 mono.wav`)",
            spec.channels
        ));
    }
    let samples: Result<Vec<f64>, hound::Error> = match spec.sample_format {
        hound::SampleFormat::Float => reader.samples::<f32>().map(|s| s.map(f64::from)).collect(),
        hound::SampleFormat::Int => {
            let full_scale = f64::from(1u32 << (spec.bits_per_sample.clamp(1, 32) - 1));
            reader
                .samples::<i32>()
                .map(|s| s.map(|v| f64::from(v) / full_scale))
                .collect()
        }
    };
    let samples = samples.map_err(|e| format!("cannot read {shown}: {}", reason(&e)))?;
    if samples.is_empty() {
        return Err(format!("{shown} holds no samples"));
    }
    Ok(Signal {
        rate: spec.sample_rate,
        samples,
    })
}

/// Writes 16-bit mono PCM.
pub(crate) fn write_wav(path: &Path, rate: u32, samples: &[i16]) -> Result<(), String> {
    let shown = path.display();
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let fail = |e: hound::Error| format!("cannot write {shown}: {}", reason(&e));
    let mut writer = hound::WavWriter::create(path, spec).map_err(fail)?;
    for &sample in samples {
        writer.write_sample(sample).map_err(fail)?;
    }
    writer.finalize().map_err(fail)
}

/// Converts to 16-bit PCM, rounding and clipping.
pub(crate) fn to_i16(samples: &[f64]) -> Vec<i16> {
    samples
        .iter()
        .map(|&s| (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16)
        .collect()
}

/// Resamples by band-limited interpolation (J. O. Smith's method): each output sample is the
/// input convolved with a Kaiser-windowed sinc centred on its exact position, read from one
/// finely sampled table. Any ratio works, the filter is symmetric (no delay to undo), and the
/// stop band is deep enough (≈ −80 dB) that it never shows in a PESQ score.
pub(crate) fn resample(signal: &Signal, rate: u32) -> Vec<f64> {
    if signal.rate == rate {
        return signal.samples.clone();
    }
    let ratio = f64::from(rate) / f64::from(signal.rate);
    let kernel = Kernel::new();
    // Cutoff in input cycles per sample: below the lower of the two Nyquist rates, a little
    // under it so the transition band fits.
    let cutoff = ratio.min(1.0) * ROLLOFF;
    let half_width = ZERO_CROSSINGS as f64 / cutoff;
    let len = (signal.samples.len() as f64 * ratio).ceil() as usize;
    let input = &signal.samples;
    (0..len)
        .map(|n| {
            let centre = n as f64 / ratio;
            let first = (centre - half_width).ceil().max(0.0) as usize;
            let last = ((centre + half_width).floor() as usize).min(input.len() - 1);
            (first..=last)
                .map(|k| input[k] * kernel.at(cutoff * (centre - k as f64).abs()))
                .sum::<f64>()
                * cutoff
        })
        .collect()
}

/// Zero crossings of the sinc on each side: the filter's half length, in units of the cutoff.
const ZERO_CROSSINGS: usize = 24;
/// Table entries per zero crossing; linear interpolation between them.
const OVERSAMPLE: usize = 512;
/// Passband edge as a fraction of the Nyquist rate.
const ROLLOFF: f64 = 0.95;
/// Kaiser window shape: ≈ 80 dB of stop-band attenuation.
const KAISER_BETA: f64 = 8.0;

/// A windowed sinc sampled from 0 to `ZERO_CROSSINGS`.
struct Kernel {
    table: Vec<f64>,
}

impl Kernel {
    fn new() -> Self {
        let n = ZERO_CROSSINGS * OVERSAMPLE;
        let table = (0..=n + 1)
            .map(|i| {
                let x = i as f64 / OVERSAMPLE as f64;
                let sinc = if i == 0 {
                    1.0
                } else {
                    (PI * x).sin() / (PI * x)
                };
                let r = (x / ZERO_CROSSINGS as f64).min(1.0);
                let window = bessel_i0(KAISER_BETA * (1.0 - r * r).sqrt()) / bessel_i0(KAISER_BETA);
                sinc * window
            })
            .collect();
        Kernel { table }
    }

    /// The kernel at `x` zero crossings from its centre (`x >= 0`); zero beyond its end.
    fn at(&self, x: f64) -> f64 {
        let position = x * OVERSAMPLE as f64;
        let index = position as usize;
        if index >= ZERO_CROSSINGS * OVERSAMPLE {
            return 0.0;
        }
        let frac = position - index as f64;
        self.table[index] * (1.0 - frac) + self.table[index + 1] * frac
    }
}

/// The modified Bessel function of the first kind, order 0, by its power series.
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let half = x / 2.0;
    for k in 1..50 {
        term *= half / k as f64;
        sum += term * term;
        if term * term < sum * 1e-17 {
            break;
        }
    }
    sum
}

/// hound's errors, in words a user acts on.
fn reason(error: &hound::Error) -> String {
    match error {
        hound::Error::IoError(io) => io.to_string(),
        hound::Error::FormatError(what) => format!("not a WAV file we can read ({what})"),
        hound::Error::Unsupported => "an unsupported WAV encoding (use 16-bit PCM or float)".into(),
        other => other.to_string(),
    }
}
