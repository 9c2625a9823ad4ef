//! `transcode`: plays a WAV file through one direction of a call the way the far side would
//! send it, over a lossy leg, through the real pipeline, and writes what the other far side
//! would hear. Quality tests score its output with PESQ; people use it to listen.
//!
//! ```text
//! cargo run --release -p landline-codecs --example transcode -- \
//!     --direction to-trunk|to-client [--codec pcmu|pcma] [--loss PCT] [--seed N] IN.wav OUT.wav
//! ```
//!
//! - `to-trunk`: IN is resampled to 48 kHz and encoded as a browser would (Opus, 20 ms, FEC,
//!   complexity 9, 32 kb/s), sent as RTP through `OpusToG711`; the G.711 that comes out is
//!   decoded by RTP timestamp as a carrier would. OUT.wav is 8 kHz.
//! - `to-client`: IN is resampled to 8 kHz, sent as 20 ms G.711 RTP through `G711ToOpus`; the
//!   Opus that comes out is decoded as a browser would (48 kHz, FEC, PLC). OUT.wav is 48 kHz.
//!
//! Time is virtual: one `Instant` is read at the start and packets are 20 ms apart from it, so a
//! run takes as long as the computation. Exit status: 0 done, 1 a file or codec problem,
//! 2 bad arguments.

mod args;
mod audio;
mod network;
mod to_client;
mod to_trunk;

use std::process::ExitCode;
use std::time::Duration;

use landline_codecs::PipelineStats;

use args::{Args, Direction, HELP, Parsed, USAGE};
use network::{LossyLink, SplitMix};

/// The packet time of both far sides.
const FRAME_TIME: Duration = Duration::from_millis(20);
/// The fixed RTP header both far sides write.
const RTP_HEADER_LEN: usize = landline_codecs::rtp::RTP_HEADER_LEN;
/// What the browser's encoder expects when `--loss` is not given: it then keeps FEC on at a
/// level that covers ordinary Wi-Fi loss, as browsers do once they have seen some loss.
const DEFAULT_EXPECTED_LOSS: u8 = 10;

/// What one run produced: the far side's decoded audio, and the pipeline's counters.
struct Outcome {
    stats: PipelineStats,
    audio: Vec<i16>,
    rate: u32,
}

fn main() -> ExitCode {
    let args = match args::parse(std::env::args().skip(1)) {
        Ok(Parsed::Run(args)) => args,
        Ok(Parsed::Help) => {
            println!("{USAGE}\n{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("transcode: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("transcode: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Does the whole run and returns the summary line.
fn run(args: &Args) -> Result<String, String> {
    let input = audio::read_wav(&args.input)?;
    let mut link = LossyLink::new(args.loss_percent, args.seed);
    // Stream identities come from their own generator, so they never shift the loss pattern.
    let mut ids = SplitMix::new(args.seed ^ 0x05EE_D1D5);
    let outcome = match args.direction {
        Direction::ToTrunk => {
            let pcm = audio::to_i16(&audio::resample(&input, 48_000));
            let expected_loss = if args.loss_given {
                args.loss_percent.round() as u8
            } else {
                DEFAULT_EXPECTED_LOSS
            };
            let settings = to_trunk::browser_settings(expected_loss);
            to_trunk::run(&pcm, args.law, &settings, &mut link, &mut ids)?
        }
        Direction::ToClient => {
            let pcm = audio::to_i16(&audio::resample(&input, 8_000));
            let mut opus = landline_codecs::OpusSettings::default();
            if let Some(complexity) = args.complexity {
                opus.complexity = complexity;
            }
            to_client::run(&pcm, args.law, opus, &mut link, &mut ids)?
        }
    };
    audio::write_wav(&args.output, outcome.rate, &outcome.audio)?;
    Ok(summary(&outcome, &link))
}

/// The one line a person or a test reads. `concealed` counts 8 kHz samples the pipeline did not
/// decode from a packet: recovered from FEC, concealed by the codec, or comfort noise.
fn summary(outcome: &Outcome, link: &LossyLink) -> String {
    let s = &outcome.stats;
    let concealed = s.recovered_samples + s.concealed_samples + s.noise_samples;
    format!(
        "packets in {}, out {}, lost {}, concealed {} samples (fec {}, plc {}, noise {}); \
         sent {}, pipeline saw lost {} late {} errors {}; wrote {:.2} s at {} Hz",
        s.packets_in,
        s.packets_out,
        link.dropped,
        concealed,
        s.recovered_samples,
        s.concealed_samples,
        s.noise_samples,
        link.sent,
        s.lost,
        s.late,
        s.decode_errors + s.encode_errors + s.malformed + s.unexpected_payload_type,
        outcome.audio.len() as f64 / f64::from(outcome.rate),
        outcome.rate,
    )
}
