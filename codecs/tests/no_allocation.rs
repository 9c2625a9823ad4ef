//! The packet path never allocates: 10 000 packets each way, with loss, reordering, events,
//! comfort noise, SSRC changes and timer fills, after construction, with a counting global allocator.
//! The trunk's packets also go through two relays (same law, and µ-law to A-law).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use common::*;
use landline_codecs::telephone_event::TelephoneEvent;
use landline_codecs::{G711Law, G711ToOpus, OpusToG711, OutputStream, Relay, RelayConfig, Scratch};

struct CountingAllocator;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const PACKETS: usize = 10_000;

#[test]
fn ten_thousand_packets_each_way_allocate_nothing() {
    // Build every input datagram first: the senders allocate, the pipelines must not.
    let mut opus = OpusSender::new(1);
    let mut g711 = G711Sender::new(G711Law::Mu, 20);
    let mut to_trunk_input = Vec::with_capacity(PACKETS + 100);
    let mut to_client_input = Vec::with_capacity(PACKETS + 100);
    for i in 0..PACKETS {
        if i % 2500 == 2499 {
            // The client's stream restarts with a new SSRC.
            opus.ssrc += 1;
        }
        let packet = opus.next_packet();
        let trunk_packet = g711.next_packet();
        match i % 50 {
            // A loss every 50 packets, a swap, a duplicate, an event and comfort noise.
            7 => {}
            13 => {
                let next = opus.next_packet();
                to_trunk_input.push(next);
                to_trunk_input.push(packet);
                to_client_input.push(trunk_packet);
                continue;
            }
            21 => {
                to_trunk_input.push(packet.clone());
                to_trunk_input.push(packet);
            }
            30 => {
                let e = TelephoneEvent {
                    event: 1,
                    end: true,
                    volume: 5,
                    duration: 960,
                };
                let ts = opus.timestamp;
                to_trunk_input.push(opus.event_packet(e, ts, true));
                to_trunk_input.push(packet);
            }
            _ => to_trunk_input.push(packet),
        }
        if i % 50 == 40 {
            to_client_input.push(rtp(CN_PT, g711.sequence, g711.timestamp, g711.ssrc, &[50]));
            g711.sequence += 1;
        }
        if i % 50 != 7 {
            to_client_input.push(trunk_packet);
        }
    }
    let mut to_trunk = OpusToG711::new(&opus_to_g711_config(G711Law::Mu)).unwrap();
    let mut to_client = G711ToOpus::new(&g711_to_opus_config(G711Law::Mu)).unwrap();
    let relay_config = RelayConfig {
        audio: (0, 0),
        event_in: Some(101),
        event_out: Some(96),
        comfort_noise: Some((CN_PT, CN_PT)),
        clock_rate: 8000,
        output: OutputStream {
            ssrc: 3,
            first_sequence: 0,
            first_timestamp: 0,
        },
    };
    let mut relay = Relay::new(&relay_config);
    let mut mapped = Relay::between_laws(
        &RelayConfig {
            audio: (0, 8),
            ..relay_config
        },
        G711Law::Mu,
        G711Law::A,
    );
    mapped.accept_event_payload_type(100);
    let mut scratch = Scratch::new();
    let mut clock = Clock::new();
    let mut out_bytes = 0usize;

    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for (i, (a, b)) in to_trunk_input.iter().zip(&to_client_input).enumerate() {
        // Every 1000 packets the input stalls for 200 ms, so the timers fill.
        let step = if i % 1000 == 999 { 200 } else { 20 };
        let now = clock.advance_ms(step);
        to_trunk.handle_timeout(now, &mut scratch, |p| out_bytes += p.len());
        to_client.handle_timeout(now, &mut scratch, |p| out_bytes += p.len());
        to_trunk.push(now, a, &mut scratch, |p| out_bytes += p.len());
        to_client.push(now, b, &mut scratch, |p| out_bytes += p.len());
        relay.push(now, b, &mut scratch, |p| out_bytes += p.len());
        mapped.push(now, b, &mut scratch, |p| out_bytes += p.len());
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;

    assert_eq!(allocations, 0, "the packet path allocated");
    // The run exercised what it claims to.
    let (t, c) = (to_trunk.stats(), to_client.stats());
    assert!(t.packets_out >= PACKETS as u64 - 300 && c.packets_out >= PACKETS as u64 - 300);
    assert!(t.lost > 0 && t.recovered_samples > 0 && t.late > 0 && t.duplicates > 0);
    assert!(t.events_out > 0 && t.noise_samples + t.concealed_samples > 0 && t.restarts >= 3);
    assert!(c.comfort_noise_in > 0 && c.concealed_samples > 0);
    assert!(out_bytes > 0);
    let (r, m) = (relay.stats(), mapped.stats());
    assert!(r.packets_out >= PACKETS as u64 - 300 && m.packets_out == r.packets_out);
}
