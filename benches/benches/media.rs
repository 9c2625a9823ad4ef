//! Time per 20 ms of call for every media workload: G.711, each pipeline direction, a
//! full-duplex call step, and bare libopus for comparison; and a browser leg's cost on the
//! gateway: session setup (per session), SRTP through the session each way, and the call step
//! with a browser leg.
//!
//! Each iteration is one packet of a continuous stream (see `landline_benches::workloads`), so
//! criterion's mean is the steady-state cost per 20 ms. Every workload is timed twice: group
//! `wall` by the wall clock, group `cpu` by the thread's CPU-time clock, which does not count
//! time the thread spent descheduled and so stays meaningful on a loaded machine (the issue's
//! target is CPU time per 20 ms). Run with `cargo bench -p landline-benches --bench media`
//! (`-- cpu/` or `-- wall/` for one group).
//!
//! Browser-leg workloads time only the gateway's side (see `landline_benches::webrtc`): the
//! per-packet ones time whole steps in batches of [`BATCH`], between which the str0m client
//! does its part untimed; session setup, where client and gateway alternate within a step,
//! adds up the time of the gateway's calls alone.

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use landline_benches::fixtures::ClientAudio;
use landline_benches::webrtc::{
    BATCH, Leg, LegWork, SectionClock, Setup, UdpSend, thread_cpu_nanos,
};
use landline_benches::workloads::{
    Bare, BareOpus, CallStep, G711Frame, PipelineStep, complexity_0,
};
use landline_benches::{Fixtures, Workload, WorkloadName};
use landline_codecs::G711Law;

fn wall(c: &mut Criterion) {
    eprintln!("{}", Fixtures::get().describe());
    media(c, "wall");
}

fn cpu(c: &mut Criterion<ThreadCpuTime>) {
    media(c, "cpu");
}

fn media<M: Timer>(c: &mut Criterion<M>, group: &str) {
    let f = Fixtures::get();
    let mut group = c.benchmark_group(group);
    let g = &mut group;
    let (browser, narrow) = (ClientAudio::Browser, ClientAudio::BrowserNarrowband);
    use WorkloadName as W;
    bench(g, W::G711Mu, G711Frame::new(G711Law::Mu, f));
    bench(g, W::G711A, G711Frame::new(G711Law::A, f));
    bench(g, W::OpusToG711, PipelineStep::opus_to_g711(f, browser));
    bench(g, W::G711ToOpus, PipelineStep::g711_to_opus(f));
    bench(g, W::Call, CallStep::new(f, browser));
    bench(g, W::LibopusDecode, BareOpus::new(f, browser, Bare::Decode));
    bench(g, W::LibopusEncode, BareOpus::new(f, browser, Bare::Encode));
    bench(g, W::Libopus, BareOpus::new(f, browser, Bare::DecodeEncode));
    bench(
        g,
        W::OpusToG711Narrowband,
        PipelineStep::opus_to_g711(f, narrow),
    );
    bench(g, W::CallNarrowband, CallStep::new(f, narrow));
    bench(
        g,
        W::LibopusDecodeNarrowband,
        BareOpus::new(f, narrow, Bare::Decode),
    );
    bench(
        g,
        W::LibopusNarrowband,
        BareOpus::new(f, narrow, Bare::DecodeEncode),
    );
    bench(g, W::LibopusEncodeComplexity0, complexity_0(f));
    prepared(g, W::WebRtcIn, Leg::new(f, LegWork::In));
    prepared(g, W::WebRtcOut, Leg::new(f, LegWork::Out));
    prepared(g, W::CallWebRtc, Leg::new(f, LegWork::Call));
    prepared(g, W::UdpSend, UdpSend::new(f));
    prepared(g, W::WebRtcSetup, Setup::new());
    group.finish();
}

/// Times a workload that prepares its steps (a browser leg): only the gateway's side, either
/// whole steps batch by batch, or the sum of its sections when the client works inside a step.
fn prepared<M: Timer, W: Workload>(
    group: &mut BenchmarkGroup<'_, M>,
    name: WorkloadName,
    mut workload: W,
) {
    M::CLOCK.install();
    group.bench_function(name.as_str(), |b| {
        b.iter_custom(|iters| {
            let (mut done, mut total) = (0u64, 0u64);
            SectionClock::take();
            while done < iters {
                let n = workload
                    .prepare(((iters - done) as usize).min(BATCH))
                    .max(1);
                let start = M::CLOCK.read();
                for _ in 0..n {
                    black_box(workload.step());
                }
                total += M::CLOCK.read() - start;
                done += n as u64;
            }
            let sections = SectionClock::take();
            M::value(if workload.far_end_in_step() {
                sections
            } else {
                total
            })
        })
    });
}

/// A criterion measurement whose clock the browser-leg benches can read themselves.
trait Timer: Measurement {
    /// The same clock, for [`SectionClock`].
    const CLOCK: SectionClock;
    /// A reading difference, in nanoseconds, as this measurement's value.
    fn value(nanos: u64) -> Self::Value;
}

impl Timer for WallTime {
    const CLOCK: SectionClock = SectionClock::Wall;
    fn value(nanos: u64) -> Duration {
        Duration::from_nanos(nanos)
    }
}

impl Timer for ThreadCpuTime {
    const CLOCK: SectionClock = SectionClock::ThreadCpu;
    fn value(nanos: u64) -> u64 {
        nanos
    }
}

/// Times one step of `workload`; generic so that the step is a direct, inlinable call.
fn bench<M: Measurement, W: Workload>(
    group: &mut BenchmarkGroup<'_, M>,
    name: WorkloadName,
    mut workload: W,
) {
    group.bench_function(name.as_str(), |b| b.iter(|| black_box(workload.step())));
}

/// CPU time consumed by the calling thread (`CLOCK_THREAD_CPUTIME_ID`), in nanoseconds.
struct ThreadCpuTime {
    /// Only lends its duration formatting.
    wall: WallTime,
}

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_nanos()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_nanos().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        self.wall.formatter()
    }
}

/// Short enough that the whole suite (both groups) takes about two minutes; each iteration walks
/// on through the fixture, so even a short run covers all of it many times over.
fn config<M: Measurement>(criterion: Criterion<M>) -> Criterion<M> {
    criterion
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .sample_size(50)
        .configure_from_args()
}

criterion_group! {
    name = wall_time;
    config = config(Criterion::default());
    targets = wall
}
criterion_group! {
    name = cpu_time;
    config = config(Criterion::default().with_measurement(ThreadCpuTime { wall: WallTime }));
    targets = cpu
}
criterion_main!(wall_time, cpu_time);
