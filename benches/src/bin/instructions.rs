//! Runs one named workload for a number of 20 ms steps, for callgrind to count.
//!
//! `benches/callgrind.sh` runs this under `valgrind --tool=callgrind --collect-atstart=no
//! --toggle-collect=*measured_steps*`: only [`measured_steps`] and what it calls are counted, not
//! building the fixtures or warming up, so instructions ÷ steps is the cost of 20 ms of call.
//!
//! Usage: `instructions WORKLOAD [STEPS]`, or `instructions --list`, or `instructions --describe`.

use std::hint::black_box;
use std::process::ExitCode;

use landline_benches::{Fixtures, Workload, WorkloadName};

/// Steps run before counting starts, so the pipelines and codecs are in their steady state.
const WARM_UP: usize = 50;
/// Default: one lap of the fixtures, so every part of the utterance is counted once.
const DEFAULT_STEPS: usize = landline_benches::fixtures::PACKETS;

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
            let steps = match args.get(1).map(|s| s.parse::<usize>()) {
                None => DEFAULT_STEPS,
                Some(Ok(n)) if n > 0 => n,
                Some(_) => {
                    eprintln!("STEPS must be a positive integer");
                    return ExitCode::FAILURE;
                }
            };
            let mut workload = workload.build(Fixtures::get());
            for _ in 0..WARM_UP {
                black_box(workload.step());
            }
            black_box(measured_steps(workload.as_mut(), steps));
            println!("{name} {steps}");
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("usage: instructions WORKLOAD [STEPS] | --list | --describe");
            ExitCode::FAILURE
        }
    }
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
