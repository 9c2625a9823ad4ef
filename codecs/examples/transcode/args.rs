//! Command-line parsing, by hand: the example has no dependencies beyond the crate's own
//! dev-dependencies, and five flags do not need a parser crate.

use std::path::PathBuf;

use landline_codecs::G711Law;

/// The one-line usage shown with every argument error and by `--help`.
pub(crate) const USAGE: &str = "usage: transcode --direction to-trunk|to-client [--codec pcmu|pcma] \
[--loss PCT] [--seed N] [--complexity N] IN.wav OUT.wav";

/// `--help`: the usage line and what each choice means.
pub(crate) const HELP: &str = "
Plays IN.wav (mono, any rate, integer or float) through one direction of a call, as the far
side would send it, over a leg that drops packets at random, through the real pipeline, and
writes what the other side would hear.

  --direction to-trunk   browser Opus (48 kHz, 20 ms, FEC, complexity 9, 32 kb/s) -> OpusToG711
                         -> carrier's G.711 decoder; OUT.wav is 8 kHz
  --direction to-client  carrier G.711 (20 ms) -> G711ToOpus -> browser's Opus decoder (FEC,
                         PLC); OUT.wav is 48 kHz
  --codec pcmu|pcma      the trunk's G.711 law (default pcmu)
  --loss PCT             random packet loss on the far side's leg, 0-100 (default 0); the
                         browser's encoder expects this much loss (10 % when not given)
  --seed N               loss pattern and stream identities (default 1)
  --complexity N         to-client: the gateway's Opus encoder complexity, 0-10 (default: the
                         gateway's default, opus.complexity)

Prints one line: packets in (reached the pipeline), out (sent by it), lost (dropped on the
leg), concealed (8 kHz samples the pipeline filled: FEC, PLC or comfort noise).
Exit status: 0 done, 1 a file or codec problem, 2 bad arguments.";

/// Which leg the audio travels: it decides the far side's encoder and what OUT.wav is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// A browser's Opus through `OpusToG711`, heard by a carrier (OUT.wav at 8 kHz).
    ToTrunk,
    /// A carrier's G.711 through `G711ToOpus`, heard by a browser (OUT.wav at 48 kHz).
    ToClient,
}

/// Everything one run needs, parsed and checked.
#[derive(Debug, Clone)]
pub(crate) struct Args {
    pub(crate) direction: Direction,
    pub(crate) law: G711Law,
    /// Packet loss on the far side's leg, in percent (0–100).
    pub(crate) loss_percent: f64,
    /// Whether `--loss` was given: the browser's encoder is told the loss it will see, else 10 %.
    pub(crate) loss_given: bool,
    pub(crate) seed: u64,
    /// The gateway's Opus encoder complexity towards the client, if not the default.
    pub(crate) complexity: Option<u8>,
    pub(crate) input: PathBuf,
    pub(crate) output: PathBuf,
}

/// What parsing found: a run to do, or a request for help.
#[derive(Debug)]
pub(crate) enum Parsed {
    Run(Args),
    Help,
}

/// Parses the arguments after the program name; the error is a sentence for the user.
pub(crate) fn parse(mut argv: impl Iterator<Item = String>) -> Result<Parsed, String> {
    let mut direction = None;
    let mut law = G711Law::Mu;
    let mut loss = None;
    let mut seed = 1;
    let mut complexity = None;
    let mut positional = Vec::new();
    while let Some(arg) = argv.next() {
        // Accept both `--flag value` and `--flag=value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| argv.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--direction" => {
                direction = Some(match value("--direction")?.as_str() {
                    "to-trunk" => Direction::ToTrunk,
                    "to-client" => Direction::ToClient,
                    other => {
                        return Err(format!(
                            "--direction must be to-trunk or to-client, not {other:?}"
                        ));
                    }
                });
            }
            "--codec" => {
                law = match value("--codec")?.to_ascii_lowercase().as_str() {
                    "pcmu" => G711Law::Mu,
                    "pcma" => G711Law::A,
                    other => return Err(format!("--codec must be pcmu or pcma, not {other:?}")),
                };
            }
            "--loss" => {
                let text = value("--loss")?;
                let pct: f64 = text
                    .trim_end_matches('%')
                    .parse()
                    .map_err(|_| format!("--loss must be a number of percent, not {text:?}"))?;
                if !(0.0..=100.0).contains(&pct) {
                    return Err(format!("--loss must be between 0 and 100, not {text}"));
                }
                loss = Some(pct);
            }
            "--seed" => {
                let text = value("--seed")?;
                seed = text
                    .parse()
                    .map_err(|_| format!("--seed must be a non-negative integer, not {text:?}"))?;
            }
            "--complexity" => {
                let text = value("--complexity")?;
                complexity = Some(
                    text.parse::<u8>()
                        .ok()
                        .filter(|c| *c <= 10)
                        .ok_or_else(|| format!("--complexity must be 0 to 10, not {text:?}"))?,
                );
            }
            _ if flag.starts_with('-') && flag.len() > 1 => {
                return Err(format!("unknown option {arg:?}"));
            }
            _ => positional.push(PathBuf::from(arg)),
        }
    }
    let direction = direction.ok_or("--direction is required")?;
    let [input, output]: [PathBuf; 2] = positional.try_into().map_err(|extra: Vec<PathBuf>| {
        format!(
            "expected IN.wav and OUT.wav, got {} file argument(s)",
            extra.len()
        )
    })?;
    Ok(Parsed::Run(Args {
        direction,
        law,
        loss_percent: loss.unwrap_or(0.0),
        loss_given: loss.is_some(),
        seed,
        complexity,
        input,
        output,
    }))
}
