//! In-process read caches for the hot authenticated paths (token checks, session
//! state, the account view). Used only when this process sees every write, as
//! with the embedded SQLite store.
//!
//! A fill races with an invalidation: a reader may load a row, a writer commit a
//! change and invalidate, and the reader then store what it loaded. Every fill
//! therefore carries a ticket taken before its read, and is dropped when its key
//! was invalidated (or the cache cleared) after that ticket.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// A ticket taken before reading the source of a value.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

struct Entry<V> {
    stamp: u64,
    value: Option<V>,
}

struct Inner<K, V> {
    map: HashMap<K, Entry<V>>,
    /// Fills with a ticket below this are refused (set when the map is cleared).
    floor: u64,
}

/// A bounded map whose fills lose to concurrent invalidations.
pub struct Cache<K, V> {
    inner: RwLock<Inner<K, V>>,
    clock: AtomicU64,
    capacity: usize,
    enabled: bool,
}

impl<K: Eq + Hash + Clone, V: Clone> Cache<K, V> {
    /// A cache of at most `capacity` entries; a disabled one never holds anything.
    pub fn new(capacity: usize, enabled: bool) -> Self {
        Self {
            inner: RwLock::new(Inner {
                map: HashMap::new(),
                floor: 0,
            }),
            clock: AtomicU64::new(1),
            capacity,
            enabled,
        }
    }

    /// The cached value, if any; looked up by any borrowed form of the key (a
    /// `&str` for `String` keys), so a hit allocates nothing.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.enabled {
            return None;
        }
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.map.get(key).and_then(|e| e.value.clone())
    }

    /// Take before reading the value's source.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.clock.load(Ordering::SeqCst))
    }

    /// Stores a value read after `ticket`, unless it was invalidated since.
    pub fn fill(&self, key: K, value: V, ticket: Ticket) {
        if !self.enabled {
            return;
        }
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if ticket.0 < inner.floor {
            return;
        }
        if inner.map.get(&key).is_some_and(|e| e.stamp > ticket.0) {
            return;
        }
        if inner.map.len() >= self.capacity {
            inner.map.clear();
            inner.floor = self.clock.fetch_add(1, Ordering::SeqCst) + 1;
            if ticket.0 < inner.floor {
                return;
            }
        }
        inner.map.insert(
            key,
            Entry {
                stamp: ticket.0,
                value: Some(value),
            },
        );
    }

    /// Drops the value of `key`; call after the change is committed.
    pub fn invalidate(&self, key: &K) {
        if !self.enabled {
            return;
        }
        let stamp = self.clock.fetch_add(1, Ordering::SeqCst) + 1;
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        inner.map.insert(key.clone(), Entry { stamp, value: None });
    }

    /// Drops every value; fills that began before are refused.
    pub fn clear(&self) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        inner.map.clear();
        inner.floor = self.clock.fetch_add(1, Ordering::SeqCst) + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_then_get() {
        let c = Cache::new(10, true);
        let t = c.ticket();
        c.fill(1, "a", t);
        assert_eq!(c.get(&1), Some("a"));
    }

    #[test]
    fn a_fill_that_raced_an_invalidation_is_dropped() {
        let c = Cache::new(10, true);
        let t = c.ticket(); // reader starts
        c.invalidate(&1); // writer commits and invalidates
        c.fill(1, "stale", t); // reader stores what it read before the commit
        assert_eq!(c.get(&1), None);
        let t = c.ticket();
        c.fill(1, "fresh", t);
        assert_eq!(c.get(&1), Some("fresh"));
    }

    #[test]
    fn clearing_refuses_older_fills() {
        let c = Cache::new(1, true);
        let t = c.ticket();
        c.fill(1, "a", c.ticket());
        c.fill(2, "b", c.ticket()); // overflows: the map is cleared
        c.fill(3, "stale", t);
        assert_eq!(c.get(&3), None);
    }

    #[test]
    fn clear_drops_values_and_refuses_fills_begun_before() {
        let c = Cache::new(10, true);
        c.fill(1, "a", c.ticket());
        let t = c.ticket();
        c.clear();
        assert_eq!(c.get(&1), None);
        c.fill(2, "stale", t);
        assert_eq!(c.get(&2), None);
        c.fill(2, "fresh", c.ticket());
        assert_eq!(c.get(&2), Some("fresh"));
    }

    #[test]
    fn stays_bounded() {
        let c = Cache::new(4, true);
        for i in 0..100 {
            let t = c.ticket();
            c.fill(i, i, t);
            assert!(c.inner.read().unwrap().map.len() <= 4);
        }
        // The fill that overflowed was dropped with the rest; later ones stick.
        let t = c.ticket();
        c.fill(100, 100, t);
        assert_eq!(c.get(&100), Some(100));
    }

    #[test]
    fn disabled_holds_nothing() {
        let c = Cache::new(4, false);
        c.fill(1, 1, c.ticket());
        assert_eq!(c.get(&1), None);
    }
}
