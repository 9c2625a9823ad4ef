//! ITU-T G.711 µ-law (PCMU) and A-law (PCMA).
//!
//! Encoding follows the ITU-T G.191 reference implementation bit for bit: the 16-bit input is
//! truncated to 14 (µ-law) or 13 (A-law) bits, and negative samples use the one's complement, so
//! the quantiser is symmetric about -½ LSB. Decoding uses 256-entry tables built at compile time.
//! Encoding is branch-light arithmetic; a 64 KiB lookup table would cost more in cache misses on a
//! shard that runs hundreds of calls than it saves in instructions.

/// Which G.711 companding law a stream uses; it follows from the RTP payload type (0 or 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum G711Law {
    /// µ-law, RTP static payload type 0 (PCMU): North America and Japan.
    Mu,
    /// A-law, RTP static payload type 8 (PCMA): most of the rest of the world.
    A,
}

impl G711Law {
    /// The static RTP payload type assigned by RFC 3551.
    pub const fn payload_type(self) -> u8 {
        match self {
            G711Law::Mu => 0,
            G711Law::A => 8,
        }
    }

    /// The law for a static payload type, if it is one of G.711's.
    pub const fn from_payload_type(pt: u8) -> Option<Self> {
        match pt {
            0 => Some(G711Law::Mu),
            8 => Some(G711Law::A),
            _ => None,
        }
    }

    /// The code that decodes to zero: what a silent frame is filled with.
    pub const fn silence(self) -> u8 {
        match self {
            G711Law::Mu => 0xFF,
            G711Law::A => 0xD5,
        }
    }

    /// Encodes `pcm` into `out` (one byte per sample); both must have the same length.
    pub fn encode(self, pcm: &[i16], out: &mut [u8]) {
        match self {
            G711Law::Mu => ulaw_encode(pcm, out),
            G711Law::A => alaw_encode(pcm, out),
        }
    }

    /// Decodes `codes` into `out` (one sample per byte); both must have the same length.
    pub fn decode(self, codes: &[u8], out: &mut [i16]) {
        match self {
            G711Law::Mu => ulaw_decode(codes, out),
            G711Law::A => alaw_decode(codes, out),
        }
    }
}

/// Encodes one 16-bit linear sample to µ-law.
#[inline]
pub const fn linear_to_ulaw(sample: i16) -> u8 {
    // One's complement of negatives, then 14 significant bits plus the µ-law bias of 33.
    let magnitude = if sample < 0 { !sample } else { sample };
    let mut biased = ((magnitude >> 2) as u16) + 33;
    if biased > 0x1FFF {
        biased = 0x1FFF;
    }
    // Segment 1..=8 is the position of the highest set bit above bit 5.
    let segment = 16 - (biased >> 6).leading_zeros() as u16 + 1;
    let high = (8 - segment) << 4;
    let low = 0x0F - ((biased >> segment) & 0x0F);
    let code = (high | low) as u8;
    if sample >= 0 { code | 0x80 } else { code }
}

/// Encodes one 16-bit linear sample to A-law.
#[inline]
pub const fn linear_to_alaw(sample: i16) -> u8 {
    // One's complement of negatives, then the 12-bit magnitude of the 13 significant bits.
    let mut magnitude = (if sample < 0 { !sample } else { sample } >> 4) as u16;
    if magnitude > 15 {
        // Exponent 1..=7: how far the magnitude must shift to fit in 5 bits (with its leading 1).
        let exponent = 16 - (magnitude >> 4).leading_zeros() as u16;
        magnitude = ((magnitude >> (exponent - 1)) - 16) + (exponent << 4);
    }
    let code = if sample >= 0 {
        magnitude as u8 | 0x80
    } else {
        magnitude as u8
    };
    code ^ 0x55
}

/// Decodes one µ-law code to a 16-bit linear sample.
#[inline]
pub const fn ulaw_to_linear(code: u8) -> i16 {
    ULAW_TO_LINEAR[code as usize]
}

/// Decodes one A-law code to a 16-bit linear sample.
#[inline]
pub const fn alaw_to_linear(code: u8) -> i16 {
    ALAW_TO_LINEAR[code as usize]
}

/// Encodes a slice to µ-law; `out` must be as long as `pcm`.
pub fn ulaw_encode(pcm: &[i16], out: &mut [u8]) {
    debug_assert_eq!(pcm.len(), out.len());
    for (code, &sample) in out.iter_mut().zip(pcm) {
        *code = linear_to_ulaw(sample);
    }
}

/// Encodes a slice to A-law; `out` must be as long as `pcm`.
pub fn alaw_encode(pcm: &[i16], out: &mut [u8]) {
    debug_assert_eq!(pcm.len(), out.len());
    for (code, &sample) in out.iter_mut().zip(pcm) {
        *code = linear_to_alaw(sample);
    }
}

/// Decodes a µ-law slice; `out` must be as long as `codes`.
pub fn ulaw_decode(codes: &[u8], out: &mut [i16]) {
    debug_assert_eq!(codes.len(), out.len());
    for (sample, &code) in out.iter_mut().zip(codes) {
        *sample = ULAW_TO_LINEAR[code as usize];
    }
}

/// Decodes an A-law slice; `out` must be as long as `codes`.
pub fn alaw_decode(codes: &[u8], out: &mut [i16]) {
    debug_assert_eq!(codes.len(), out.len());
    for (sample, &code) in out.iter_mut().zip(codes) {
        *sample = ALAW_TO_LINEAR[code as usize];
    }
}

const ULAW_TO_LINEAR: [i16; 256] = {
    let mut table = [0i16; 256];
    let mut code = 0;
    while code < 256 {
        let inverted = !(code as u8);
        let segment = ((inverted >> 4) & 0x07) as i16;
        let mantissa = (inverted & 0x0F) as i16;
        // Reconstruct the 14-bit biased magnitude at the middle of the step, remove the bias.
        let magnitude = (((mantissa << 3) + 0x84) << segment) - 0x84;
        table[code] = if inverted & 0x80 != 0 {
            -magnitude
        } else {
            magnitude
        };
        code += 1;
    }
    table
};

const ALAW_TO_LINEAR: [i16; 256] = {
    let mut table = [0i16; 256];
    let mut code = 0;
    while code < 256 {
        let toggled = (code as u8) ^ 0x55;
        let segment = ((toggled >> 4) & 0x07) as i16;
        let mantissa = (toggled & 0x0F) as i16;
        let magnitude = match segment {
            0 => (mantissa << 4) + 8,
            _ => ((mantissa << 4) + 0x108) << (segment - 1),
        };
        table[code] = if toggled & 0x80 != 0 {
            magnitude
        } else {
            -magnitude
        };
        code += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_codes_decode_to_zero() {
        assert_eq!(ulaw_to_linear(G711Law::Mu.silence()), 0);
        // A-law has no zero level: its smallest magnitude is ±8.
        assert_eq!(alaw_to_linear(G711Law::A.silence()), 8);
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_alaw(0), 0xD5);
    }

    #[test]
    fn encode_of_decode_is_identity_except_negative_zero() {
        for code in 0..=255u8 {
            let u = linear_to_ulaw(ulaw_to_linear(code));
            // 0x7F is µ-law's "negative zero"; it decodes to 0, which encodes as 0xFF.
            if code != 0x7F {
                assert_eq!(u, code, "µ-law code {code:#04x}");
            }
            assert_eq!(
                linear_to_alaw(alaw_to_linear(code)),
                code,
                "A-law code {code:#04x}"
            );
        }
    }

    #[test]
    fn extremes_saturate() {
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
    }
}
