//! G.711 checked bit for bit against an independent implementation: sox.
//!
//! - Decoding: all 256 codes of each law equal sox's expansion.
//! - Encoding: every non-negative 16-bit input that is exact at the law's resolution (14 bits
//!   for µ-law, 13 for A-law) equals sox's code; the bits below that resolution are truncated,
//!   as ITU-T G.191 does; and a negative input x encodes as the sign-flipped code of the one's
//!   complement -x-1, G.191's definition of the negative half. Together that fixes all 65 536
//!   inputs. (sox rounds the low bits and breaks µ-law's negative ties the other way, which is
//!   why it is compared only where both definitions agree.)
//!
//! Needs `sox` on the PATH; the project's test script installs it.

use std::path::PathBuf;
use std::process::Command;

use landline_codecs::g711::{alaw_to_linear, linear_to_alaw, linear_to_ulaw, ulaw_to_linear};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("landline-g711-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

fn sox(args: &[&str]) {
    let status = Command::new("sox").args(args).status().unwrap_or_else(|e| {
        panic!("cannot run sox ({e}): install it (apt-get install sox) or run scripts/test")
    });
    assert!(status.success(), "sox {args:?} failed");
}

/// sox's encoding of every 16-bit linear value, in order from -32768 to 32767.
fn sox_encode_all(encoding: &str) -> Vec<u8> {
    let input = scratch(&format!("all-{encoding}.s16"));
    let output = scratch(&format!("all.{encoding}"));
    let bytes: Vec<u8> = (i16::MIN..=i16::MAX)
        .flat_map(|s| s.to_le_bytes())
        .collect();
    std::fs::write(&input, bytes).expect("write input");
    let (i, o) = (input.to_str().unwrap(), output.to_str().unwrap());
    // -D: no dither, so sox quantises deterministically.
    sox(&[
        "-V1", "-D", "-t", "raw", "-e", "signed", "-b", "16", "-r", "8000", "-c", "1", i, "-t",
        "raw", "-e", encoding, "-b", "8", o,
    ]);
    std::fs::read(&output).expect("read sox output")
}

/// sox's decoding of every code 0..=255.
fn sox_decode_all(encoding: &str) -> Vec<i16> {
    let input = scratch(&format!("codes.{encoding}"));
    let output = scratch(&format!("codes-{encoding}.s16"));
    std::fs::write(&input, (0..=255u8).collect::<Vec<_>>()).expect("write codes");
    let (i, o) = (input.to_str().unwrap(), output.to_str().unwrap());
    sox(&[
        "-t", "raw", "-e", encoding, "-b", "8", "-r", "8000", "-c", "1", i, "-t", "raw", "-e",
        "signed", "-b", "16", o,
    ]);
    std::fs::read(&output)
        .expect("read sox output")
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

fn check_law(encoding: &str, resolution_bits: u32, encode: fn(i16) -> u8, decode: fn(u8) -> i16) {
    let reference = sox_decode_all(encoding);
    for code in 0..=255u8 {
        assert_eq!(
            decode(code),
            reference[usize::from(code)],
            "{encoding} decode {code:#04x}"
        );
    }

    let reference = sox_encode_all(encoding);
    let step = 1i32 << (16 - resolution_bits);
    for x in 0..=i32::from(i16::MAX) {
        let sample = x as i16;
        let aligned = (x & !(step - 1)) as i16;
        assert_eq!(
            encode(sample),
            encode(aligned),
            "{encoding}: {x} truncates to {aligned}"
        );
        if x % step == 0 && x <= i32::from(i16::MAX) - step {
            let expected = reference[(x + 32768) as usize];
            assert_eq!(encode(sample), expected, "{encoding} encode {x}");
        }
    }
    for x in i32::from(i16::MIN)..0 {
        let mirrored = (-x - 1) as i16;
        assert_eq!(
            encode(x as i16),
            encode(mirrored) & 0x7F,
            "{encoding}: {x} is the negative of {mirrored}"
        );
    }
}

#[test]
fn mu_law_matches_sox_and_g191() {
    check_law("u-law", 14, linear_to_ulaw, ulaw_to_linear);
}

#[test]
fn a_law_matches_sox_and_g191() {
    check_law("a-law", 13, linear_to_alaw, alaw_to_linear);
}
