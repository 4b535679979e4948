//! The validator's replay cache: which (model id, nonce) pairs it has already accepted.
//!
//! A proof binds its request nonce, so a miner cannot reuse a proof for another request, but it can send the same
//! bundle twice (to be paid twice, or to answer a new request with an old proof when the client reuses a nonce).
//! A validator that records every accepted pair rejects the second copy with [`VerifyError::Replay`].
//!
//! Memory is bounded: the cache holds at most `capacity` pairs (about 200 bytes each, the pair stored twice plus
//! the hash table's overhead) and, when full, forgets the oldest accepted pair first. A pair older than the last
//! `capacity` acceptances is therefore accepted again; size the cache to cover the window in which replays matter
//! (for example the requests of the last hour), and have clients draw nonces at random so that an honest nonce
//! never repeats. The cache is thread-safe (one mutex around the table; every operation is O(1)).

use std::collections::{HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};

use crate::bundle::{field_to_hex, ProofBundle};
use zkinfer_circuits::Fr;

use crate::error::VerifyError;
use crate::generation::{verify_generation, GenerationBundle, VerifiedGeneration};
use crate::key::VerifierKey;
use crate::verify::{verify_bundle, Expectations, Verified};

/// A (model id, nonce) pair as the cache stores it: the model id and the canonical nonce bytes of a bundle.
type Pair = ([u8; 32], [u8; 32]);

/// Accepted (model id, nonce) pairs, at most `capacity` of them, oldest forgotten first. Thread-safe.
#[derive(Debug)]
pub struct ReplayCache {
    capacity: usize,
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    set: HashSet<Pair>,
    order: VecDeque<Pair>,
}

impl Default for ReplayCache {
    /// A cache of [`ReplayCache::DEFAULT_CAPACITY`] pairs.
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

impl ReplayCache {
    /// Default capacity: 100 000 pairs, about 20 MB.
    pub const DEFAULT_CAPACITY: usize = 100_000;

    /// An empty cache remembering up to `capacity` pairs (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            seen: Mutex::new(Seen::default()),
        }
    }

    /// How many pairs the cache remembers at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many pairs it remembers now.
    pub fn len(&self) -> usize {
        self.lock().order.len()
    }

    /// Whether it remembers no pair.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the pair (`model_id`, `nonce`) was accepted (and not yet forgotten).
    pub fn contains(&self, model_id: &[u8; 32], nonce: &[u8; 32]) -> bool {
        self.lock().set.contains(&(*model_id, *nonce))
    }

    /// Records the pair as accepted: `true` if it is new, `false` if it was already there (a replay; nothing
    /// changes). When the cache is full the oldest pair is forgotten to make room.
    pub fn insert(&self, model_id: &[u8; 32], nonce: &[u8; 32]) -> bool {
        let pair = (*model_id, *nonce);
        let mut seen = self.lock();
        if !seen.set.insert(pair) {
            return false;
        }
        seen.order.push_back(pair);
        while seen.order.len() > self.capacity {
            if let Some(oldest) = seen.order.pop_front() {
                seen.set.remove(&oldest);
            }
        }
        true
    }

    /// Forgets every pair.
    pub fn clear(&self) {
        let mut seen = self.lock();
        seen.set.clear();
        seen.order.clear();
    }

    /// Records the pair of an accepted `bundle` checked against `key`: the replay error if it was already
    /// accepted.
    pub(crate) fn consume(&self, key: &VerifierKey, bundle: &ProofBundle) -> Result<(), VerifyError> {
        if self.insert(&key.model_id(), &bundle.nonce) {
            Ok(())
        } else {
            Err(replay_error(key, bundle))
        }
    }

    /// The replay error if the pair of `bundle` under `key` was already accepted.
    pub(crate) fn refuse_seen(&self, key: &VerifierKey, bundle: &ProofBundle) -> Result<(), VerifyError> {
        if self.contains(&key.model_id(), &bundle.nonce) {
            Err(replay_error(key, bundle))
        } else {
            Ok(())
        }
    }

    /// The table, also after a panic elsewhere while it was locked (every update leaves it consistent).
    fn lock(&self) -> MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn replay_error(key: &VerifierKey, bundle: &ProofBundle) -> VerifyError {
    let nonce = bundle
        .public_inputs()
        .map(|public| field_to_hex(&public.nonce))
        .unwrap_or_else(|_| hex::encode(bundle.nonce));
    VerifyError::Replay {
        model_id: hex::encode(key.model_id()),
        nonce,
    }
}

/// [`verify_bundle`], then records the bundle's (model id, nonce) in `cache`: a bundle whose pair was already
/// accepted is rejected with [`VerifyError::Replay`], and a rejected bundle records nothing.
pub fn verify_fresh(
    key: &VerifierKey,
    bundle: &ProofBundle,
    expect: &Expectations,
    cache: &ReplayCache,
) -> Result<Verified, VerifyError> {
    cache.refuse_seen(key, bundle)?;
    let verified = verify_bundle(key, bundle, expect)?;
    cache.consume(key, bundle)?;
    Ok(verified)
}

/// [`verify_generation`], then records the bundle's (model id, nonce) in `cache`, as [`verify_fresh`] does.
pub fn verify_generation_fresh(
    key: &VerifierKey,
    generation: &GenerationBundle,
    prompt: &[i64],
    salt: Fr,
    expect: &Expectations,
    cache: &ReplayCache,
) -> Result<VerifiedGeneration, VerifyError> {
    cache.refuse_seen(key, &generation.bundle)?;
    let verified = verify_generation(key, generation, prompt, salt, expect)?;
    cache.consume(key, &generation.bundle)?;
    Ok(verified)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(model: u8, nonce: u8) -> ([u8; 32], [u8; 32]) {
        ([model; 32], [nonce; 32])
    }

    #[test]
    fn second_insert_is_a_replay() {
        let cache = ReplayCache::new(4);
        let (m, n) = pair(1, 2);
        assert!(!cache.contains(&m, &n));
        assert!(cache.insert(&m, &n));
        assert!(cache.contains(&m, &n));
        assert!(!cache.insert(&m, &n));
        // Same nonce, other model: another pair.
        let (m2, _) = pair(3, 0);
        assert!(cache.insert(&m2, &n));
        assert_eq!(cache.len(), 2);
        cache.clear();
        assert!(cache.is_empty());
        assert!(cache.insert(&m, &n));
    }

    #[test]
    fn oldest_pair_is_forgotten_first() {
        let cache = ReplayCache::new(3);
        for nonce in 0..3 {
            let (m, n) = pair(7, nonce);
            assert!(cache.insert(&m, &n));
        }
        // A replay does not refresh or duplicate the entry.
        let (m, n1) = pair(7, 1);
        assert!(!cache.insert(&m, &n1));
        assert_eq!(cache.len(), 3);
        let (_, n3) = pair(7, 3);
        assert!(cache.insert(&m, &n3));
        assert_eq!(cache.len(), 3);
        let (_, n0) = pair(7, 0);
        assert!(!cache.contains(&m, &n0), "the oldest pair is evicted");
        for nonce in 1..4 {
            let (_, n) = pair(7, nonce);
            assert!(cache.contains(&m, &n));
        }
        assert_eq!(ReplayCache::new(0).capacity(), 1);
    }

    #[test]
    fn concurrent_inserts_accept_each_pair_once() {
        let cache = ReplayCache::new(1000);
        let accepted: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        (0..100u8)
                            .filter(|&nonce| {
                                let (m, n) = pair(9, nonce);
                                cache.insert(&m, &n)
                            })
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
        });
        assert_eq!(accepted, 100);
        assert_eq!(cache.len(), 100);
    }
}
