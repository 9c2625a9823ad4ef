//! Opus through libopus (the `audiopus` binding): an encoder and a decoder with the settings a
//! gateway needs, and nothing that allocates after construction.
//!
//! Towards a G.711 trunk everything runs at 8 kHz: libopus decodes any Opus stream straight to
//! 8 kHz and encodes narrowband SILK from 8 kHz input, so the media path needs no resampler.

use audiopus::coder::{Decoder, Encoder, GenericCtl};
use audiopus::packet::Packet;
use audiopus::{Application, Bitrate, Channels, MutSignals, SampleRate, Signal};

use crate::Error;

/// The longest Opus packet duration (RFC 6716: 120 ms), in samples at 8 kHz.
pub const MAX_FRAME_SAMPLES_8K: usize = 960;

/// The largest Opus packet we produce or accept (RFC 6716's limit for one frame is 1275 bytes;
/// a 120 ms packet of several frames stays under a UDP datagram).
pub const MAX_PACKET_LEN: usize = 1500;

/// How an Opus encoder is tuned: the knobs an operator sets in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusSettings {
    /// Target bitrate in bits per second (6 000–510 000).
    pub bitrate: u32,
    /// 0 (cheapest) to 10 (best quality per bit); 1 keeps a call under 40 µs per frame here.
    pub complexity: u8,
    /// Carry a low-bitrate copy of each frame in the next one, so a single loss can be recovered.
    pub inband_fec: bool,
    /// Expected packet loss in percent; libopus only spends bits on FEC when this is above zero.
    pub expected_loss_percent: u8,
    /// Discontinuous transmission: send almost nothing during silence.
    pub dtx: bool,
}

impl Default for OpusSettings {
    fn default() -> Self {
        OpusSettings {
            bitrate: 24_000,
            complexity: 1,
            inband_fec: true,
            expected_loss_percent: 5,
            dtx: false,
        }
    }
}

/// A mono Opus encoder, owned by one call's media path.
#[derive(Debug)]
pub struct OpusEncoder {
    inner: Encoder,
    frame_samples: usize,
}

impl OpusEncoder {
    /// An encoder for mono input at `sample_rate` Hz (8 000 or 48 000), in 20 ms frames.
    pub fn new(sample_rate: u32, settings: &OpusSettings) -> Result<Self, Error> {
        let rate = sample_rate_of(sample_rate)?;
        let mut inner = Encoder::new(rate, Channels::Mono, Application::Voip).map_err(setup)?;
        // complexity 0 is valid for libopus but rejected by the binding's checked setter.
        inner
            .set_encoder_ctl_request(
                audiopus::ffi::OPUS_SET_COMPLEXITY_REQUEST,
                i32::from(settings.complexity.min(10)),
            )
            .map_err(setup)?;
        let bitrate = i32::try_from(settings.bitrate).map_err(|_| Error::BadSetting("bitrate"))?;
        inner
            .set_bitrate(Bitrate::BitsPerSecond(bitrate))
            .map_err(setup)?;
        inner.set_inband_fec(settings.inband_fec).map_err(setup)?;
        inner
            .set_packet_loss_perc(settings.expected_loss_percent.min(100))
            .map_err(setup)?;
        inner.set_dtx(settings.dtx).map_err(setup)?;
        inner.set_signal(Signal::Voice).map_err(setup)?;
        Ok(OpusEncoder {
            inner,
            frame_samples: sample_rate as usize / 50,
        })
    }

    /// Samples in one 20 ms input frame at this encoder's rate.
    pub fn frame_samples(&self) -> usize {
        self.frame_samples
    }

    /// Encodes one 20 ms frame into `out` and returns the packet length.
    ///
    /// With DTX on, a length of 2 or less means "nothing worth sending".
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, Error> {
        self.inner.encode(pcm, out).map_err(Error::Opus)
    }
}

/// A mono Opus decoder, owned by one call's media path.
#[derive(Debug)]
pub struct OpusDecoder {
    inner: Decoder,
    rate: SampleRate,
}

impl OpusDecoder {
    /// A decoder producing mono output at `sample_rate` Hz (8 000 or 48 000).
    pub fn new(sample_rate: u32) -> Result<Self, Error> {
        let rate = sample_rate_of(sample_rate)?;
        let inner = Decoder::new(rate, Channels::Mono).map_err(setup)?;
        Ok(OpusDecoder { inner, rate })
    }

    /// How many samples `packet` decodes to at this decoder's rate, or an error for garbage.
    pub fn packet_samples(&self, packet: &[u8]) -> Result<usize, Error> {
        let packet = Packet::try_from(packet).map_err(Error::Opus)?;
        audiopus::packet::nb_samples(packet, self.rate).map_err(Error::Opus)
    }

    /// Decodes `packet` into `out` and returns the number of samples written.
    pub fn decode(&mut self, packet: &[u8], out: &mut [i16]) -> Result<usize, Error> {
        let packet = Packet::try_from(packet).map_err(Error::Opus)?;
        let signals = MutSignals::try_from(out).map_err(Error::Opus)?;
        self.inner
            .decode(Some(packet), signals, false)
            .map_err(Error::Opus)
    }

    /// Recovers the frame before `next_packet` from the redundancy (in-band FEC) it carries,
    /// filling all of `out`; libopus falls back to concealment if the packet carries none.
    ///
    /// `out.len()` must be the lost frame's duration, a multiple of 2.5 ms.
    pub fn decode_fec(&mut self, next_packet: &[u8], out: &mut [i16]) -> Result<usize, Error> {
        let packet = Packet::try_from(next_packet).map_err(Error::Opus)?;
        let signals = MutSignals::try_from(out).map_err(Error::Opus)?;
        self.inner
            .decode(Some(packet), signals, true)
            .map_err(Error::Opus)
    }

    /// Forgets the stream decoded so far, as for a new source, without reallocating.
    pub fn reset(&mut self) -> Result<(), Error> {
        self.inner.reset_state().map_err(Error::Opus)
    }

    /// Conceals a lost stretch (packet loss concealment), filling all of `out`.
    ///
    /// `out.len()` must be a multiple of 2.5 ms. After a DTX packet this yields comfort noise.
    pub fn conceal(&mut self, out: &mut [i16]) -> Result<usize, Error> {
        let signals = MutSignals::try_from(out).map_err(Error::Opus)?;
        self.inner.decode(None, signals, false).map_err(Error::Opus)
    }
}

fn sample_rate_of(hz: u32) -> Result<SampleRate, Error> {
    match hz {
        8_000 => Ok(SampleRate::Hz8000),
        48_000 => Ok(SampleRate::Hz48000),
        _ => Err(Error::BadSetting("sample rate (8000 or 48000)")),
    }
}

fn setup(error: audiopus::Error) -> Error {
    Error::OpusSetup(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(samples: usize, rate: f64, offset: usize) -> Vec<i16> {
        (0..samples)
            .map(|i| {
                let t = (i + offset) as f64 / rate;
                (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16
            })
            .collect()
    }

    #[test]
    fn narrowband_round_trip_keeps_a_tone() {
        let mut encoder = OpusEncoder::new(8000, &OpusSettings::default()).unwrap();
        let mut decoder = OpusDecoder::new(8000).unwrap();
        let mut packet = [0u8; MAX_PACKET_LEN];
        let mut out = [0i16; MAX_FRAME_SAMPLES_8K];
        let mut energy = 0.0;
        for frame in 0..25 {
            let pcm = tone(160, 8000.0, frame * 160);
            let len = encoder.encode(&pcm, &mut packet).unwrap();
            assert_eq!(decoder.packet_samples(&packet[..len]).unwrap(), 160);
            let n = decoder.decode(&packet[..len], &mut out).unwrap();
            assert_eq!(n, 160);
            if frame > 5 {
                energy += out[..n].iter().map(|&s| f64::from(s).powi(2)).sum::<f64>();
            }
        }
        let rms = (energy / (19.0 * 160.0)).sqrt();
        assert!(rms > 3000.0, "decoded tone rms {rms}");
    }

    #[test]
    fn fullband_packet_decodes_to_8k() {
        let mut encoder = OpusEncoder::new(48_000, &OpusSettings::default()).unwrap();
        let mut decoder = OpusDecoder::new(8000).unwrap();
        let mut packet = [0u8; MAX_PACKET_LEN];
        let mut out = [0i16; MAX_FRAME_SAMPLES_8K];
        let len = encoder
            .encode(&tone(960, 48_000.0, 0), &mut packet)
            .unwrap();
        assert_eq!(decoder.decode(&packet[..len], &mut out).unwrap(), 160);
        assert_eq!(decoder.conceal(&mut out[..160]).unwrap(), 160);
        assert_eq!(
            decoder.decode_fec(&packet[..len], &mut out[..160]).unwrap(),
            160
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut decoder = OpusDecoder::new(8000).unwrap();
        let mut out = [0i16; MAX_FRAME_SAMPLES_8K];
        assert!(decoder.packet_samples(&[]).is_err());
        // Code 3 (arbitrary frame count) with a zero frame count is invalid.
        assert!(decoder.decode(&[0x03, 0x00], &mut out).is_err());
    }

    #[test]
    fn rejects_unsupported_rate() {
        assert!(matches!(
            OpusDecoder::new(44_100),
            Err(Error::BadSetting(_))
        ));
    }
}
