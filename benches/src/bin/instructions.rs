//! Runs one named workload for a number of 20 ms steps, for callgrind to count.
//!
//! `benches/callgrind.sh` runs this under `valgrind --tool=callgrind --collect-atstart=no
//! --toggle-collect=*measured_steps*`: only [`measured_steps`] and what it calls are counted, not
//! building the fixtures or warming up, so instructions ÷ steps is the cost of 20 ms of call.
//!
//! Workloads with a browser leg (`webrtc_*`, `call_full_duplex_webrtc`, `udp_send`) measure
//! only their gateway side: each of its calls runs in a `gateway_section`, which during the
//! counted steps (not while the workload is built or warmed up) goes through
//! `measured_section`, which callgrind counts by the same toggle mechanism
//! (`--toggle-collect=*measured_section*`); their steps run outside `measured_steps`. The client's work, done in between, is not counted.
//!
//! Usage: `instructions WORKLOAD [STEPS]`, or `instructions --list`, or `instructions --describe`.
//! Prints the workload and the number of steps counted.

use std::hint::black_box;
use std::process::ExitCode;

use landline_benches::{Fixtures, Workload, WorkloadName};

/// Steps run before counting starts, so the pipelines and codecs are in their steady state.
const WARM_UP: usize = 50;
/// Default: one lap of the fixtures, so every part of the utterance is counted once.
const DEFAULT_STEPS: usize = landline_benches::fixtures::PACKETS;
/// Default for session setup, one session per step (each costs milliseconds natively, and
/// callgrind runs the client's side too, uncounted).
const DEFAULT_SETUPS: usize = 20;
/// Warm-up for session setup.
const WARM_UP_SETUPS: usize = 3;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--list") => {
            for name in WorkloadName::ALL {
                println!("{}", name.as_str());
            }
            ExitCode::SUCCESS
        }
        Some("--describe") => {
            println!("{}", Fixtures::get().describe());
            ExitCode::SUCCESS
        }
        Some(name) => {
            let Some(workload) = WorkloadName::parse(name) else {
                eprintln!("unknown workload {name:?}; `--list` shows them");
                return ExitCode::FAILURE;
            };
            let setup = workload == WorkloadName::WebRtcSetup;
            let steps = match args.get(1).map(|s| s.parse::<usize>()) {
                None if setup => DEFAULT_SETUPS,
                None => DEFAULT_STEPS,
                Some(Ok(n)) if n > 0 => n,
                Some(_) => {
                    eprintln!("STEPS must be a positive integer");
                    return ExitCode::FAILURE;
                }
            };
            let mut workload = workload.build(Fixtures::get());
            run(
                workload.as_mut(),
                if setup { WARM_UP_SETUPS } else { WARM_UP },
                false,
            );
            black_box(run(workload.as_mut(), steps, true));
            println!("{name} {steps}");
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("usage: instructions WORKLOAD [STEPS] | --list | --describe");
            ExitCode::FAILURE
        }
    }
}

/// Runs `steps` steps, preparing them as the workload asks; with `count`, whole steps inside
/// [`measured_steps`], or only the workload's own sections if it has them.
fn run(workload: &mut dyn Workload, steps: usize, count: bool) -> usize {
    let (mut done, mut sum) = (0, 0usize);
    landline_benches::webrtc::count_sections(count && workload.sections());
    while done < steps {
        let n = workload.prepare(steps - done).clamp(1, steps - done);
        if count && !workload.sections() {
            sum = sum.wrapping_add(measured_steps(workload, n));
        } else {
            for _ in 0..n {
                sum = sum.wrapping_add(black_box(workload.step()));
            }
        }
        done += n;
    }
    landline_benches::webrtc::count_sections(false);
    sum
}

/// The counted region: `steps` steps of `workload`. Never inlined, so callgrind can find it.
#[inline(never)]
fn measured_steps(workload: &mut dyn Workload, steps: usize) -> usize {
    let mut sum = 0usize;
    for _ in 0..steps {
        sum = sum.wrapping_add(workload.step());
    }
    sum
}
