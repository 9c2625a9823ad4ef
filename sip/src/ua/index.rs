//! A map that knows when each entry next needs `handle_timeout`, so the user agent touches only
//! the entries that changed or are due instead of scanning every call and transaction.
//!
//! Every mutable access marks the entry; [`Indexed::reindex`] recomputes the marked entries'
//! timers. Unmarked entries cannot have changed, so their indexed time stays right.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::time::Instant;

/// Something with timers.
pub(super) trait Timed {
    /// When it next needs a timeout, if ever.
    fn next_timer(&self) -> Option<Instant>;
    /// Whether it is finished and can be dropped.
    fn finished(&self) -> bool {
        false
    }
}

#[derive(Debug)]
pub(super) struct Indexed<K, V> {
    map: HashMap<K, V>,
    touched: Vec<K>,
    index: BTreeSet<(Instant, K)>,
    at: HashMap<K, Instant>,
}

impl<K: Clone + Eq + Hash + Ord, V: Timed> Indexed<K, V> {
    pub(super) fn new() -> Self {
        Self {
            map: HashMap::new(),
            touched: Vec::new(),
            index: BTreeSet::new(),
            at: HashMap::new(),
        }
    }

    pub(super) fn get(&self, k: &K) -> Option<&V> {
        self.map.get(k)
    }

    pub(super) fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        let v = self.map.get_mut(k)?;
        self.touched.push(k.clone());
        Some(v)
    }

    pub(super) fn insert(&mut self, k: K, v: V) {
        self.touched.push(k.clone());
        self.map.insert(k, v);
    }

    pub(super) fn remove(&mut self, k: &K) -> Option<V> {
        if let Some(t) = self.at.remove(k) {
            self.index.remove(&(t, k.clone()));
        }
        self.map.remove(k)
    }

    pub(super) fn contains_key(&self, k: &K) -> bool {
        self.map.contains_key(k)
    }

    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    /// The keys of the entries `f` picks.
    pub(super) fn keys_where(&self, f: impl Fn(&V) -> bool) -> Vec<K> {
        self.map
            .iter()
            .filter(|(_, v)| f(v))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Entries changed since the last [`Indexed::reindex`] (deduplicated).
    pub(super) fn touched(&mut self) -> Vec<K> {
        self.touched.sort();
        self.touched.dedup();
        self.touched.clone()
    }

    /// Entries whose timer is due at `now`, marked as changed (the caller is about to run them).
    pub(super) fn due(&mut self, now: Instant) -> Vec<K> {
        let mut due: Vec<K> = self
            .index
            .iter()
            .take_while(|(t, _)| *t <= now)
            .map(|(_, k)| k.clone())
            .collect();
        for k in &self.touched {
            if self
                .map
                .get(k)
                .and_then(Timed::next_timer)
                .is_some_and(|t| t <= now)
            {
                due.push(k.clone());
            }
        }
        due.sort();
        due.dedup();
        self.touched.extend(due.iter().cloned());
        due
    }

    /// Recomputes the timers of changed entries and drops finished ones.
    pub(super) fn reindex(&mut self) {
        for k in std::mem::take(&mut self.touched) {
            if let Some(t) = self.at.remove(&k) {
                self.index.remove(&(t, k.clone()));
            }
            let Some(v) = self.map.get(&k) else { continue };
            if v.finished() {
                self.map.remove(&k);
                continue;
            }
            if let Some(t) = v.next_timer() {
                self.index.insert((t, k.clone()));
                self.at.insert(k, t);
            }
        }
    }

    /// The earliest timer, counting entries changed but not yet reindexed.
    pub(super) fn next_timer(&self) -> Option<Instant> {
        let indexed = self.index.first().map(|(t, _)| *t);
        let pending = self
            .touched
            .iter()
            .filter_map(|k| self.map.get(k)?.next_timer())
            .min();
        indexed.into_iter().chain(pending).min()
    }
}
