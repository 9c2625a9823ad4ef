//! Measures the memory one call's media state takes: an [`OpusToG711`] plus a [`G711ToOpus`].
//!
//! Three views, printed as one table: the Rust structs' own size (`size_of`, the buffers inside
//! them), what the Rust allocator hands out while they are built (a counting global allocator),
//! and the whole heap as glibc's `mallinfo2` sees it, which includes libopus's encoder and
//! decoder states (C `malloc`, invisible to a Rust allocator). libopus's own
//! `opus_{en,de}coder_get_size` cross-checks the last. The [`Scratch`] the pipelines work in is
//! owned once per media shard, not per call, and is reported apart. It also counts allocations
//! during steady-state call steps, which must be zero.
//!
//! Then the same for a browser leg's WebRTC session (`landline::media::WebRtcSession`), which a
//! browser call holds besides its pipelines: the heap per session once connected, and after
//! ten seconds of packets both ways (DTLS and SRTP state in OpenSSL's C `malloc` included,
//! through `mallinfo2`), measured after dropping the str0m clients that drove the sessions; and
//! the allocations the gateway's side makes per packet in each direction.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use landline::media::WebRtcSession;
use landline_benches::fixtures::ClientAudio;
use landline_benches::webrtc::{Endpoints, Leg, LegWork};
use landline_benches::workloads::{CallStep, g711_to_opus_config, opus_to_g711_config};
use landline_benches::{Fixtures, Workload};
use landline_codecs::{G711ToOpus, OpusToG711, Scratch};

/// Calls built at once, so per-call figures average out allocator rounding.
const CALLS: usize = 100;

fn main() {
    let inline = size_of::<OpusToG711>() + size_of::<G711ToOpus>();
    let libopus = libopus_sizes();

    let mut calls = Vec::with_capacity(CALLS);
    let after_vec = (Counter::snapshot(), heap_in_use());
    for _ in 0..CALLS {
        let to_trunk = OpusToG711::new(&opus_to_g711_config()).expect("default config is valid");
        let to_client = G711ToOpus::new(&g711_to_opus_config()).expect("default config is valid");
        calls.push(Box::new((to_trunk, to_client)));
    }
    let after = (Counter::snapshot(), heap_in_use());
    let rust_heap = (after.0.live - after_vec.0.live) / CALLS;
    let whole_heap = (after.1 - after_vec.1) / CALLS;

    // Steady state: after warming up, a call step must not allocate at all.
    let mut call = CallStep::new(Fixtures::get(), ClientAudio::Browser);
    for _ in 0..50 {
        call.step();
    }
    let start = Counter::snapshot();
    const STEPS: u64 = 1_000;
    for _ in 0..STEPS {
        std::hint::black_box(call.step());
    }
    let allocations = Counter::snapshot().count - start.count;

    println!("| what | bytes per call |");
    println!("|---|---:|");
    println!(
        "| OpusToG711 + G711ToOpus, size_of (inline buffers) | {} + {} = {inline} |",
        size_of::<OpusToG711>(),
        size_of::<G711ToOpus>()
    );
    println!(
        "| Rust heap allocated while building them (boxed, so includes the above) | {rust_heap} |"
    );
    println!(
        "| libopus decoder + encoder, opus_*_get_size | {} |",
        libopus.0 + libopus.1
    );
    println!(
        "| whole heap in use per call (mallinfo2: Rust + libopus + malloc overhead) | {whole_heap} |"
    );
    println!();
    println!(
        "state per call: {:.1} KiB (target <= 64 KiB); libopus decoder {} B, encoder {} B",
        whole_heap as f64 / 1024.0,
        libopus.0,
        libopus.1
    );
    println!(
        "per shard, not per call: one Scratch, {} B (size_of)",
        size_of::<Scratch>()
    );
    println!("allocations during {STEPS} steady-state call steps: {allocations}");
    drop(calls);
    webrtc();
}

/// Browser sessions measured at once.
const SESSIONS: usize = 100;
/// Steps (20 ms, one packet each way) a session runs before its steady-state heap is read.
const SESSION_STEPS: usize = 500;
/// Steps over which a browser leg's allocations are counted.
const PACKET_STEPS: usize = 1_000;

/// The heap a gateway's WebRTC session holds, and what its packets allocate.
fn webrtc() {
    let fixtures = Fixtures::get();
    let mut endpoints = Endpoints::new();
    println!();
    println!("| browser session (gateway side) | bytes per session |");
    println!("|---|---:|");
    println!(
        "| size_of::<WebRtcSession>() (the str0m `Rtc` is boxed inside) | {} |",
        size_of::<WebRtcSession>()
    );
    for steps in [0, SESSION_STEPS] {
        let before = (Counter::snapshot(), heap_in_use());
        let mut legs: Vec<Leg> = (0..SESSIONS)
            .map(|_| Leg::on(&mut endpoints, fixtures, LegWork::Duplex))
            .collect();
        for leg in &mut legs {
            run(leg, steps);
        }
        let sessions: Vec<WebRtcSession> = legs.into_iter().map(Leg::into_session).collect();
        let after = (Counter::snapshot(), heap_in_use());
        let rust = (after.0.live as i64 - before.0.live as i64) / SESSIONS as i64;
        let whole = (after.1 as i64 - before.1 as i64) / SESSIONS as i64;
        let when = if steps == 0 {
            "connected, before any media".to_owned()
        } else {
            format!("after {} s of one packet each way per 20 ms", steps / 50)
        };
        println!("| {when}: Rust heap (counting allocator) | {rust} |");
        println!("| {when}: whole heap (mallinfo2: Rust + OpenSSL + malloc overhead) | {whole} |");
        drop(sessions);
    }
    println!();
    println!(
        "| gateway side, per 20 ms step (after 100 warm-up steps) | Rust allocations | bytes allocated |"
    );
    println!("|---|---:|---:|");
    for (work, what) in [
        (LegWork::In, "one Opus packet in (`receive` + `drain`)"),
        (LegWork::Out, "one Opus packet out (`write` + `drain`)"),
        (
            LegWork::Call,
            "call step with a browser leg (both, and the pipelines)",
        ),
    ] {
        let mut leg = Leg::on(&mut endpoints, fixtures, work);
        run(&mut leg, 100);
        let (mut count, mut bytes, mut done) = (0u64, 0u64, 0);
        while done < PACKET_STEPS {
            let n = leg.prepare(PACKET_STEPS - done);
            for _ in 0..n {
                let start = Counter::snapshot();
                std::hint::black_box(leg.step());
                let end = Counter::snapshot();
                count += end.count - start.count;
                bytes += end.allocated - start.allocated;
            }
            done += n;
        }
        println!(
            "| {what} | {:.2} | {:.0} |",
            count as f64 / PACKET_STEPS as f64,
            bytes as f64 / PACKET_STEPS as f64
        );
    }
}

/// Runs `steps` steps of a leg, preparing them as it asks.
fn run(leg: &mut Leg, steps: usize) {
    let mut done = 0;
    while done < steps {
        let n = leg.prepare(steps - done);
        for _ in 0..n {
            std::hint::black_box(leg.step());
        }
        done += n;
    }
}

/// Bytes libopus needs for a mono decoder and encoder, by its own account.
fn libopus_sizes() -> (usize, usize) {
    // SAFETY: pure functions of the channel count; 1 is valid.
    let (decoder, encoder) = unsafe {
        (
            audiopus::ffi::opus_decoder_get_size(1),
            audiopus::ffi::opus_encoder_get_size(1),
        )
    };
    (
        usize::try_from(decoder).unwrap_or(0),
        usize::try_from(encoder).unwrap_or(0),
    )
}

/// Bytes glibc's malloc has handed out and not yet taken back: small blocks plus mmapped ones.
fn heap_in_use() -> usize {
    // SAFETY: mallinfo2 (glibc >= 2.33) only reads the allocator's statistics.
    let info = unsafe { mallinfo2() };
    info.uordblks + info.hblkhd
}

/// glibc's `struct mallinfo2`.
#[repr(C)]
struct MallInfo2 {
    arena: usize,
    ordblks: usize,
    smblks: usize,
    hblks: usize,
    hblkhd: usize,
    usmblks: usize,
    fsmblks: usize,
    uordblks: usize,
    fordblks: usize,
    keepcost: usize,
}

unsafe extern "C" {
    fn mallinfo2() -> MallInfo2;
}

/// The system allocator, counting what passes through it.
struct Counter;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static COUNT: AtomicUsize = AtomicUsize::new(0);
static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

#[derive(Clone, Copy)]
struct Snapshot {
    live: usize,
    count: u64,
    /// Bytes ever allocated (not net of frees).
    allocated: u64,
}

impl Counter {
    fn snapshot() -> Snapshot {
        Snapshot {
            live: LIVE.load(Ordering::SeqCst),
            count: COUNT.load(Ordering::SeqCst) as u64,
            allocated: ALLOCATED.load(Ordering::SeqCst) as u64,
        }
    }
}

// SAFETY: defers to the system allocator; the counters do not affect what is returned.
unsafe impl GlobalAlloc for Counter {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::SeqCst);
        ALLOCATED.fetch_add(layout.size(), Ordering::SeqCst);
        COUNT.fetch_add(1, Ordering::SeqCst);
        // SAFETY: the caller upholds `alloc`'s contract, passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::SeqCst);
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
        ALLOCATED.fetch_add(new_size, Ordering::SeqCst);
        COUNT.fetch_add(1, Ordering::SeqCst);
        // SAFETY: as for `alloc` and `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counter = Counter;
