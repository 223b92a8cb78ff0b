//! A small time-to-live cache for what a warm Lambda should not fetch per request (key
//! secrets, program configurations), so a rotated secret or a new program version is seen
//! within the TTL without a redeploy.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct TtlCache<V> {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<String, (Instant, V)>>,
}

impl<V: Clone> TtlCache<V> {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, key: &str) -> Option<V> {
        let entries = self.entries.lock().expect("cache lock");
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    pub fn put(&self, key: &str, value: V) {
        let mut entries = self.entries.lock().expect("cache lock");
        if entries.len() >= self.capacity {
            // Bounded memory under a flood of distinct keys: drop what has expired, and if
            // that is not enough, start over.
            entries.retain(|_, (at, _)| at.elapsed() < self.ttl);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key.to_owned(), (Instant::now(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_memory_is_bounded() {
        let cache = TtlCache::new(Duration::from_millis(0), 2);
        cache.put("a", 1);
        assert_eq!(cache.get("a"), None);
        let cache = TtlCache::new(Duration::from_secs(60), 2);
        cache.put("a", 1);
        cache.put("b", 2);
        cache.put("c", 3);
        assert_eq!(cache.get("c"), Some(3));
        assert!(cache.entries.lock().unwrap().len() <= 2);
    }
}
