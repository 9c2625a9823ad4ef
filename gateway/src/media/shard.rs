//! A media shard: one thread, one mio event loop, the calls it owns.
//!
//! The loop waits for sockets or the waker, reads every datagram that is ready and pushes it
//! through its call's pipeline straight to the other leg's socket, then runs the calls' timers
//! on a 5 ms tick. A panic inside one call's step is caught here and ends only that call.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use mio::{Events, Interest, Poll, Token};
use tokio::sync::mpsc;

use super::call::{Arrival, CallMedia, LocalCounters, MediaScratch};
use super::{Command, LegRole, MediaCallId, MediaEvent, PortPool, ShardCounters};

/// The token of the shard's waker; socket tokens are `slot * 2 + leg`.
pub(crate) const WAKER: Token = Token(usize::MAX);
/// How often call timers (fills, tones, media timeouts) are checked.
const TICK: Duration = Duration::from_millis(5);
/// The largest datagram read; RTP audio is far smaller, and a larger one is truncated and fails
/// to parse.
const RECV_BUFFER: usize = 2048;
/// Datagrams read from one socket per readiness event before moving on, for fairness.
const READ_BUDGET: usize = 64;

pub(crate) struct Shard {
    poll: Poll,
    commands: Arc<ArrayQueue<Command>>,
    events: mpsc::Sender<MediaEvent>,
    counters: Arc<ShardCounters>,
    ports: Arc<PortPool>,
    calls: Vec<Option<CallMedia>>,
    /// Lent to each call's pipelines in turn; boxed, being a few KiB. What a step that panicked
    /// left in it does no harm: pipelines do not read what they did not write in the same step.
    scratch: Box<MediaScratch>,
    free_slots: Vec<usize>,
    slot_of: HashMap<MediaCallId, usize>,
    local: LocalCounters,
    published: LocalCounters,
    next_tick: Option<Instant>,
    running: bool,
}

impl Shard {
    pub(crate) fn new(
        poll: Poll,
        commands: Arc<ArrayQueue<Command>>,
        events: mpsc::Sender<MediaEvent>,
        counters: Arc<ShardCounters>,
        ports: Arc<PortPool>,
    ) -> Self {
        Shard {
            poll,
            commands,
            events,
            counters,
            ports,
            calls: Vec::new(),
            scratch: Box::new(MediaScratch::new()),
            free_slots: Vec::new(),
            slot_of: HashMap::new(),
            local: LocalCounters::default(),
            published: LocalCounters::default(),
            next_tick: None,
            running: true,
        }
    }

    pub(crate) fn run(mut self) {
        let mut events = Events::with_capacity(256);
        let mut buffer = [0u8; RECV_BUFFER];
        while self.running {
            let timeout = self
                .next_tick
                .map(|t| t.saturating_duration_since(Instant::now()));
            if let Err(error) = self.poll.poll(&mut events, timeout) {
                if error.kind() != ErrorKind::Interrupted {
                    tracing::error!(%error, "media shard poll failed; shard stops");
                    break;
                }
            }
            let now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    WAKER => {}
                    Token(token) => self.read_socket(token, now, &mut buffer),
                }
            }
            self.drain_commands(now);
            if self.next_tick.is_some_and(|t| t <= now) {
                self.tick(now);
            }
        }
        for slot in 0..self.calls.len() {
            self.remove_slot(slot);
        }
    }

    fn read_socket(&mut self, token: usize, now: Instant, buffer: &mut [u8]) {
        let (slot, role) = (
            token / 2,
            if token % 2 == 0 {
                LegRole::Client
            } else {
                LegRole::Trunk
            },
        );
        for _ in 0..READ_BUDGET {
            let Some(call) = self.calls.get_mut(slot).and_then(Option::as_mut) else {
                return;
            };
            let Some(leg) = call.leg_mut(role) else {
                return;
            };
            let (len, source) = match leg.socket.recv_from(buffer) {
                Ok(received) => received,
                Err(error) if error.kind() == ErrorKind::WouldBlock => return,
                // ICMP errors from an earlier send surface here; they concern that send only.
                Err(_) => continue,
            };
            let (local, events) = (&mut self.local, &self.events);
            let (counters, scratch) = (&self.counters, &mut self.scratch);
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                let arrival = Arrival {
                    role,
                    source,
                    datagram: &buffer[..len],
                };
                call.on_datagram(now, arrival, scratch, local, &mut |e| {
                    send_event(events, counters, e)
                });
            }));
            if outcome.is_err() {
                self.fail_slot(slot);
                return;
            }
        }
    }

    fn tick(&mut self, now: Instant) {
        for slot in 0..self.calls.len() {
            let Some(call) = self.calls[slot].as_mut() else {
                continue;
            };
            let (local, events, counters) = (&mut self.local, &self.events, &self.counters);
            let scratch = &mut self.scratch;
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                call.on_tick(now, scratch, local, &mut |e| {
                    send_event(events, counters, e)
                });
            }));
            if outcome.is_err() {
                self.fail_slot(slot);
            }
        }
        self.publish();
        self.next_tick = (!self.slot_of.is_empty()).then(|| now + TICK);
    }

    fn drain_commands(&mut self, now: Instant) {
        while let Some(command) = self.commands.pop() {
            match command {
                Command::Add(spec) => self.add(*spec, now),
                Command::Remove(id) => {
                    if let Some(slot) = self.slot_of.get(&id).copied() {
                        let stats = self.calls[slot].as_ref().map(CallMedia::stats);
                        self.remove_slot(slot);
                        self.emit(MediaEvent::Removed(id, stats.unwrap_or_default()));
                    }
                }
                Command::SetRemote(id, role, remote) => {
                    if let Some(leg) = self.call_mut(id).and_then(|c| c.leg_mut(role)) {
                        leg.set_remote(remote);
                    }
                }
                Command::SetHold(id, role, on_hold) => {
                    if let Some(leg) = self.call_mut(id).and_then(|c| c.leg_mut(role)) {
                        leg.set_hold(on_hold, now);
                    }
                }
                Command::SendDigit(id, toward, digit, duration) => {
                    let slot = self.slot_of.get(&id).copied();
                    if let Some(call) = slot.and_then(|s| self.calls.get_mut(s)?.as_mut()) {
                        let scratch = &mut self.scratch;
                        call.send_digit(toward, now, digit, duration, scratch, &mut self.local);
                    }
                }
                Command::Shutdown => self.running = false,
            }
        }
    }

    fn add(&mut self, spec: super::CallSpec, now: Instant) {
        let id = spec.id;
        let mut call = match CallMedia::new(spec, now) {
            Ok(call) => call,
            Err(error) => {
                tracing::warn!(call = id.0, %error, "call media setup failed");
                self.emit(MediaEvent::Failed(id, "media setup failed"));
                return;
            }
        };
        let slot = self.free_slots.pop().unwrap_or_else(|| {
            self.calls.push(None);
            self.calls.len() - 1
        });
        let registry = self.poll.registry();
        let client =
            registry.register(&mut call.client.socket, Token(slot * 2), Interest::READABLE);
        let trunk = match call.trunk.as_mut() {
            Some(leg) => {
                registry.register(&mut leg.socket, Token(slot * 2 + 1), Interest::READABLE)
            }
            None => Ok(()),
        };
        if client.is_err() || trunk.is_err() {
            self.free_slots.push(slot);
            self.close(call);
            self.emit(MediaEvent::Failed(id, "cannot register media sockets"));
            return;
        }
        self.calls[slot] = Some(call);
        self.slot_of.insert(id, slot);
        self.counters.calls.fetch_add(1, Ordering::Relaxed);
        self.next_tick.get_or_insert(now);
    }

    fn fail_slot(&mut self, slot: usize) {
        if let Some(id) = self.calls.get(slot).and_then(Option::as_ref).map(|c| c.id) {
            tracing::error!(call = id.0, "panic in call media step; the call is ended");
            self.counters.panics.fetch_add(1, Ordering::Relaxed);
            self.remove_slot(slot);
            self.emit(MediaEvent::Failed(id, "internal error in media"));
        }
    }

    fn remove_slot(&mut self, slot: usize) {
        let Some(mut call) = self.calls.get_mut(slot).and_then(Option::take) else {
            return;
        };
        let registry = self.poll.registry();
        let _ = registry.deregister(&mut call.client.socket);
        if let Some(leg) = call.trunk.as_mut() {
            let _ = registry.deregister(&mut leg.socket);
        }
        self.slot_of.remove(&call.id);
        self.free_slots.push(slot);
        self.counters.calls.fetch_sub(1, Ordering::Relaxed);
        let stats = call.stats();
        let c = &self.counters;
        c.packets_lost
            .fetch_add(stats.client_lost + stats.trunk_lost, Ordering::Relaxed);
        c.samples_concealed
            .fetch_add(stats.concealed_samples, Ordering::Relaxed);
        self.close(call);
    }

    /// Closes a call's sockets, then gives their ports back, so they are free when handed out.
    fn close(&self, call: CallMedia) {
        let ports = [Some(call.client.port), call.trunk.as_ref().map(|l| l.port)];
        drop(call);
        for port in ports.into_iter().flatten() {
            self.ports.release(port);
        }
    }

    fn call_mut(&mut self, id: MediaCallId) -> Option<&mut CallMedia> {
        let slot = *self.slot_of.get(&id)?;
        self.calls.get_mut(slot)?.as_mut()
    }

    fn emit(&self, event: MediaEvent) {
        send_event(&self.events, &self.counters, event);
    }

    /// Adds what the packet path counted since the last tick to the shared atomics.
    fn publish(&mut self) {
        let (now, then) = (self.local, self.published);
        let c = &self.counters;
        c.packets_in
            .fetch_add(now.packets_in - then.packets_in, Ordering::Relaxed);
        c.packets_out
            .fetch_add(now.packets_out - then.packets_out, Ordering::Relaxed);
        c.packets_dropped.fetch_add(
            now.packets_dropped - then.packets_dropped,
            Ordering::Relaxed,
        );
        self.published = now;
    }
}

fn send_event(events: &mpsc::Sender<MediaEvent>, counters: &ShardCounters, event: MediaEvent) {
    if events.try_send(event).is_err() {
        counters.events_dropped.fetch_add(1, Ordering::Relaxed);
    }
}
