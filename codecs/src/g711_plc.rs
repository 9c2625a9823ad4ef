//! Packet loss concealment for G.711, in the spirit of ITU-T G.711 Appendix I: repeat the last
//! pitch period of the decoded speech, fade it out over 60 ms, and cross-fade back into the next
//! good frame so a loss is heard as a smear, not a click.

/// Shortest pitch period searched (200 Hz at 8 kHz).
const MIN_PITCH: usize = 40;
/// Longest pitch period searched (66 Hz at 8 kHz).
const MAX_PITCH: usize = 120;
/// Samples correlated to find the pitch.
const CORRELATION_WINDOW: usize = 160;
/// Decoded history kept: enough to correlate the window at the longest lag.
const HISTORY: usize = CORRELATION_WINDOW + MAX_PITCH;
/// Concealment plays at full level for 10 ms...
const FULL_LEVEL: usize = 80;
/// ...then fades to silence over the next 50 ms.
const FADE: usize = 400;
/// Length of the cross-fade into the first good frame after a loss.
const OVERLAP: usize = 32;

/// Concealment state for one G.711 input stream.
#[derive(Debug, Clone)]
pub struct G711Concealer {
    history: [i16; HISTORY],
    pitch: usize,
    /// Position within the repeated pitch period.
    phase: usize,
    /// Samples concealed in the current run of loss.
    erased: usize,
}

impl Default for G711Concealer {
    fn default() -> Self {
        G711Concealer {
            history: [0; HISTORY],
            pitch: MIN_PITCH,
            phase: 0,
            erased: 0,
        }
    }
}

impl G711Concealer {
    /// Takes a correctly received stretch, smoothing its start if it follows a concealment.
    pub fn receive(&mut self, pcm: &mut [i16]) {
        if self.erased > 0 {
            let overlap = pcm.len().min(OVERLAP);
            for (i, sample) in pcm[..overlap].iter_mut().enumerate() {
                let concealed = f32::from(self.next_concealed_sample());
                let weight = (i + 1) as f32 / (overlap + 1) as f32;
                *sample = (concealed * (1.0 - weight) + f32::from(*sample) * weight) as i16;
            }
            self.erased = 0;
        }
        self.remember(pcm);
    }

    /// Fills `out` with a continuation of the signal before the loss.
    pub fn conceal(&mut self, out: &mut [i16]) {
        if self.erased == 0 {
            self.pitch = self.estimate_pitch();
            self.phase = 0;
        }
        for sample in out.iter_mut() {
            *sample = self.next_concealed_sample();
            self.erased += 1;
        }
        // History stays as it was before the loss: the period keeps repeating from there.
    }

    /// Forgets the signal, as for a new stream.
    pub fn reset(&mut self) {
        *self = G711Concealer::default();
    }

    fn next_concealed_sample(&mut self) -> i16 {
        let period_start = HISTORY - self.pitch;
        let value = f32::from(self.history[period_start + self.phase]);
        self.phase = (self.phase + 1) % self.pitch;
        let gain = if self.erased < FULL_LEVEL {
            1.0
        } else {
            1.0 - ((self.erased - FULL_LEVEL) as f32 / FADE as f32).min(1.0)
        };
        (value * gain) as i16
    }

    fn remember(&mut self, pcm: &[i16]) {
        if pcm.len() >= HISTORY {
            self.history.copy_from_slice(&pcm[pcm.len() - HISTORY..]);
        } else {
            self.history.copy_within(pcm.len().., 0);
            self.history[HISTORY - pcm.len()..].copy_from_slice(pcm);
        }
    }

    /// The lag with the highest normalised correlation between the newest window and the past.
    fn estimate_pitch(&self) -> usize {
        let window = &self.history[HISTORY - CORRELATION_WINDOW..];
        let mut best = (MIN_PITCH, f32::MIN);
        for lag in MIN_PITCH..=MAX_PITCH {
            let past = &self.history[HISTORY - CORRELATION_WINDOW - lag..HISTORY - lag];
            let (mut cross, mut energy) = (0f32, 1f32);
            for (&a, &b) in window.iter().zip(past) {
                cross += f32::from(a) * f32::from(b);
                energy += f32::from(b) * f32::from(b);
            }
            let score = cross / energy.sqrt();
            if score > best.1 {
                best = (lag, score);
            }
        }
        best.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(period: usize, len: usize) -> Vec<i16> {
        (0..len)
            .map(|i| {
                (10000.0 * (2.0 * std::f32::consts::PI * i as f32 / period as f32).sin()) as i16
            })
            .collect()
    }

    #[test]
    fn finds_the_pitch_of_a_periodic_signal() {
        let mut plc = G711Concealer::default();
        plc.receive(&mut sine(80, 400));
        assert_eq!(plc.estimate_pitch(), 80);
    }

    #[test]
    fn continues_then_fades_to_silence() {
        let mut plc = G711Concealer::default();
        let mut signal = sine(80, 480);
        plc.receive(&mut signal[..400]);
        let mut out = [0i16; 80];
        plc.conceal(&mut out);
        // The first concealed 10 ms continue the sine where it stopped.
        for (a, b) in out.iter().zip(&signal[400..480]) {
            assert!((a - b).abs() < 200, "{a} vs {b}");
        }
        let mut rest = [0i16; 480];
        plc.conceal(&mut rest);
        assert!(rest[400..].iter().all(|&s| s == 0), "silent after 60 ms");
    }
}
