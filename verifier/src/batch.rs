//! Batch verification: many bundles, one pairing check per chain of proofs instead of one per proof.
//!
//! # How
//! halo2's KZG verifier reduces a proof to a pair of G1 multi-scalar multiplications `(L, R)` (a `DualMSM`) that
//! is valid iff `e(L, s·G2) · e(R, −G2) = 1`. [`verify_batch`] checks each bundle's public inputs as
//! [`verify_bundle`](crate::verify_bundle) does, then runs halo2's transcript work (reading the proof, evaluating
//! the constraints at the challenge point, the SHPLONK reduction) for all proofs in parallel on rayon's pool. Each
//! proof's `(L, R)` is folded into an accumulator with halo2's `AccumulatorStrategy`, which multiplies the
//! accumulator by a fresh random scalar from `OsRng` before adding the next proof. An accumulator (a *chain*)
//! takes up to [`CHAIN_LEN`] proofs; then its two MSMs are evaluated at once (one Pippenger multiexp each
//! instead of one small one per proof) and checked with a single pairing. Chains are only formed among keys that
//! share the SRS points the pairing uses (`G2`, `s·G2`); keys of different models with one SRS mix freely.
//!
//! # Soundness
//! A chain of proofs `1..n` that arrived in this order accumulates `Σ c_i·(L_i, R_i)` with `c_n = 1` and
//! `c_i = r_{i+1}·…·r_n`, the `r_j` drawn from `OsRng` after every proof is fixed. Writing `T_i = e(L_i, s·G2) ·
//! e(R_i, −G2) = g^{t_i}` in the order-`p` target group, the chain passes iff `Σ c_i·t_i = 0 (mod p)`. If `k` is
//! the last proof with `t_k ≠ 0`, the sum is `(r_{k+1}·…·r_n)·(t_k + r_k·S)` with `S` independent of `r_k`: it
//! vanishes only if some `r_j = 0` or `r_k = −t_k/S`, probability at most `n/p < 2^-245`. The scalars must be
//! unpredictable and independent: with fixed or forger-computable coefficients (all ones, or a hash of the
//! proofs), two false proofs could carry errors that cancel (`t_1 = −t_2`) and pass together.
//!
//! # Chains, not one accumulator
//! halo2-axiom 0.5.3 keeps a proof's `DualMSM` inside its `GuardKZG`/`AccumulatorStrategy` with no accessor, so two
//! accumulators cannot be merged; a proof can only be added to an accumulator, which rescales all of it (a cost
//! linear in its size). One accumulator for a whole batch would cost a quadratic number of scalar multiplications;
//! chains of [`CHAIN_LEN`] proofs balance that against one pairing check per chain. Each thread folds into a chain
//! of its own, so an SRS group of `n` proofs takes at most `⌈n / CHAIN_LEN⌉` plus one pairing per thread. The same
//! opacity keeps the MSMs as halo2 builds them: the verifying key's fixed and permutation commitments appear once
//! per proof, although one term per key would do.
//!
//! # Cost
//! On 2 vCPUs, a proof of the digits MLP costs about 1.5 ms of CPU in a batch of 256 against 4 ms verified alone:
//! half of it is the accumulated multiexp (61 bases per proof, 32 of them the key's fixed and permutation
//! commitments), most of the rest halo2's transcript work (a square root for each of the 26 G1 points read, the
//! constraint evaluation, the SHPLONK reduction). A chain that fails costs a further one-by-one check of its
//! proofs, about 1.4 times what checking them one by one from the start would have cost; one false proof in a batch
//! thus slows down the honest proofs that share its chain, so a validator that batches proofs from several miners
//! can keep each miner's proofs in batches of their own.
//!
//! # When the batch fails
//! If a chain's pairing check fails, its proofs are verified again one by one, which names the false ones; the
//! others are accepted. A proof that fails on its own (unreadable, trailing bytes, wrong public inputs) is
//! rejected with its own error and never enters a chain.

use std::io::Cursor;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::{Mutex, MutexGuard};

use halo2_proofs::{
    halo2curves::bn256::Bn256,
    plonk::{verify_proof, Error as PlonkError},
    poly::{
        commitment::Verifier,
        kzg::{
            commitment::{KZGCommitmentScheme, ParamsKZG},
            msm::DualMSM,
            multiopen::VerifierSHPLONK,
            strategy::{AccumulatorStrategy, GuardKZG},
        },
        VerificationStrategy,
    },
};
use rayon::prelude::*;
use zkinfer_circuits::Fr;

use crate::bundle::ProofBundle;
use crate::error::VerifyError;
use crate::key::VerifierKey;
use crate::replay::ReplayCache;
use crate::transcript::CanonicalRead;
use crate::verify::{check_proof, check_public, outcome_to_result, Expectations, Verified};

/// Most proofs folded into one accumulator before it is checked with its own pairing.
pub const CHAIN_LEN: usize = 64;

/// One bundle of a batch, with the key and the caller's expectations to check it against.
#[derive(Clone, Debug)]
pub struct BatchItem<'a> {
    /// The verifying key of the model the bundle claims.
    pub key: &'a VerifierKey,
    /// The bundle.
    pub bundle: &'a ProofBundle,
    /// What the caller insists on (model id, input commitment, nonce).
    pub expect: Expectations,
}

/// What [`verify_batch`] decided for each item, and how much work it took.
#[derive(Debug)]
pub struct BatchReport {
    /// One verdict per item, in the order of the items.
    pub results: Vec<Result<Verified, VerifyError>>,
    /// Pairing checks run over accumulated chains of proofs.
    pub pairing_checks: usize,
    /// Proofs verified again one by one because their chain failed.
    pub rechecked: usize,
}

impl BatchReport {
    /// Number of items.
    pub fn len(&self) -> usize {
        self.results.len()
    }

    /// Whether the batch had no items.
    pub fn is_empty(&self) -> bool {
        self.results.is_empty()
    }

    /// Whether every item was accepted (also for an empty batch).
    pub fn all_accepted(&self) -> bool {
        self.results.iter().all(Result::is_ok)
    }

    /// Indices of the accepted items.
    pub fn accepted(&self) -> Vec<usize> {
        (0..self.results.len()).filter(|&i| self.results[i].is_ok()).collect()
    }

    /// The rejected items: index and reason.
    pub fn rejected(&self) -> Vec<(usize, &VerifyError)> {
        self.results
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().err().map(|e| (i, e)))
            .collect()
    }

    /// Every item's outputs if all were accepted, else [`VerifyError::BatchRejected`] naming the first rejected.
    pub fn into_result(self) -> Result<Vec<Verified>, VerifyError> {
        let total = self.results.len();
        let rejected = self.results.iter().filter(|r| r.is_err()).count();
        let mut verified = Vec::with_capacity(total);
        for (first, result) in self.results.into_iter().enumerate() {
            match result {
                Ok(v) => verified.push(v),
                Err(e) => {
                    return Err(VerifyError::BatchRejected {
                        rejected,
                        total,
                        first,
                        reason: e.to_string(),
                    })
                }
            }
        }
        Ok(verified)
    }
}

/// Verifies every item as [`verify_bundle`](crate::verify_bundle) would, with the proofs checked together (see
/// the module documentation); the report names each rejected item and why.
///
/// The transcript work runs on a rayon pool of at least 8 threads (a process-wide pool made on the first call when
/// rayon's global pool is smaller); the final multiexps and pairings on the caller's pool.
///
/// With a `replay` cache, an item whose (model id, nonce) the cache already holds is rejected as a replay, and
/// each accepted item's pair is recorded, in item order: of two accepted items with the same pair, the second is
/// a replay. Without one, no replay check is made.
pub fn verify_batch(items: &[BatchItem<'_>], replay: Option<&ReplayCache>) -> BatchReport {
    // Public inputs and expectations first; a bundle refused there never reaches the proof check.
    let mut results: Vec<Result<Vec<Fr>, VerifyError>> = items
        .iter()
        .map(|item| {
            let instance = check_public(item.key, item.bundle, &item.expect)?;
            if let Some(cache) = replay {
                cache.refuse_seen(item.key, item.bundle)?;
            }
            Ok(instance)
        })
        .collect();

    let pools = Pools::for_items(items, &results);
    // The transcript work of every proof, in parallel; a proof that fails it is rejected with its own error.
    let staged: Vec<Option<VerifyError>> = in_staging_pool(|| {
        items
            .par_iter()
            .zip(results.par_iter())
            .enumerate()
            .map(|(index, (item, instance))| {
                let instance = instance.as_ref().ok()?;
                let pool = pools.pool_of(index)?;
                stage(item, instance, Relay::new(pool, index)).err()
            })
            .collect()
    });
    for (result, error) in results.iter_mut().zip(staged) {
        if let (Ok(_), Some(error)) = (&*result, error) {
            *result = Err(error);
        }
    }

    // One pairing per chain; the proofs of a failed chain are checked again one by one.
    let (confirmed, pairing_checks) = check_chains(pools.into_chains(), items.len());
    let recheck: Vec<usize> = (0..items.len())
        .filter(|&i| results[i].is_ok() && !confirmed[i])
        .collect();
    let rechecked: Vec<(usize, Result<(), VerifyError>)> = recheck
        .par_iter()
        .map(|&i| {
            let outcome = match &results[i] {
                Ok(instance) => check_proof(items[i].key, instance, &items[i].bundle.proof),
                Err(_) => Ok(()),
            };
            (i, outcome)
        })
        .collect();
    for (i, outcome) in rechecked {
        if let Err(e) = outcome {
            results[i] = Err(e);
        }
    }

    let results = items
        .iter()
        .zip(results)
        .map(|(item, result)| {
            result?;
            if let Some(cache) = replay {
                cache.consume(item.key, item.bundle)?;
            }
            Ok(Verified::of(item.key, item.bundle))
        })
        .collect();
    BatchReport {
        results,
        pairing_checks,
        rechecked: recheck.len(),
    }
}

/// Runs the pairing check of every chain; returns which items a passing chain vouches for, and how many chains
/// were checked.
fn check_chains(chains: Vec<Chain<'_>>, items: usize) -> (Vec<bool>, usize) {
    let pairing_checks = chains.iter().filter(|c| c.acc.is_some()).count();
    let verdicts: Vec<(Vec<usize>, bool)> = chains
        .into_par_iter()
        .map(|chain| {
            let passed = chain.acc.is_some_and(|acc| {
                catch_unwind(AssertUnwindSafe(|| {
                    <AccumulatorStrategy<'_, Bn256> as VerificationStrategy<
                        '_,
                        KZGCommitmentScheme<Bn256>,
                        VerifierSHPLONK<'_, Bn256>,
                    >>::finalize(acc)
                }))
                .unwrap_or(false)
            });
            (chain.members, passed)
        })
        .collect();
    let mut confirmed = vec![false; items];
    for (members, passed) in verdicts {
        for index in members {
            if let Some(slot) = confirmed.get_mut(index) {
                *slot = passed;
            }
        }
    }
    (confirmed, pairing_checks)
}

/// Threads of the pool the transcript work runs on, at least.
const STAGING_THREADS: usize = 8;

/// Runs `work` on a rayon pool of at least [`STAGING_THREADS`] threads (rayon's global pool if it is that large).
///
/// halo2-axiom's `eval_polynomial` (called by the SHPLONK verifier for every commitment) splits even a polynomial
/// of two or three coefficients into one chunk per pool thread, and multiplies each chunk by `point^start`
/// computed with 256 squarings, unless the pool has more than twice as many threads as coefficients. On a pool
/// of 2 threads that is half a millisecond per proof of the digits MLP; on 8 threads the evaluation is a plain
/// Horner loop. The extra threads only time-share the cores.
fn in_staging_pool<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    static POOL: std::sync::OnceLock<Option<rayon::ThreadPool>> = std::sync::OnceLock::new();
    let pool = POOL.get_or_init(|| {
        if rayon::current_num_threads() >= STAGING_THREADS {
            return None;
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(STAGING_THREADS)
            .thread_name(|i| format!("zkinfer-batch-{i}"))
            .build()
            .ok()
    });
    match pool {
        Some(pool) => pool.install(work),
        None => work(),
    }
}

/// Runs halo2's verifier on `item`'s proof up to the accumulation, which `relay` does; every byte must be read.
fn stage<'p>(item: &BatchItem<'p>, instance: &[Fr], relay: Relay<'_, 'p>) -> Result<(), VerifyError> {
    let proof = &item.bundle.proof[..];
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut cursor = Cursor::new(proof);
        let mut transcript = CanonicalRead::new(&mut cursor);
        let result = verify_proof::<KZGCommitmentScheme<Bn256>, VerifierSHPLONK<'_, Bn256>, _, _, _>(
            item.key.srs(),
            item.key.vk(),
            relay,
            &[&[instance]],
            &mut transcript,
        );
        (result, cursor.position() as usize)
    }));
    outcome_to_result(outcome, proof.len())
}

/// An accumulator and the items folded into it. `acc` is `None` once a failed fold has consumed it; its members
/// are then checked one by one.
struct Chain<'p> {
    acc: Option<AccumulatorStrategy<'p, Bn256>>,
    members: Vec<usize>,
}

/// The chains of the keys that share one SRS (the same `G2` and `s·G2`).
struct Pool<'p> {
    params: &'p ParamsKZG<Bn256>,
    /// Chains with room for more proofs, not in use.
    open: Mutex<Vec<Chain<'p>>>,
    /// Full or broken chains.
    closed: Mutex<Vec<Chain<'p>>>,
}

fn lock<'a, T>(mutex: &'a Mutex<T>) -> MutexGuard<'a, T> {
    // Only pushes and pops run under these locks: a poisoned list is still consistent.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<'p> Pool<'p> {
    /// A chain to fold the next proof into: an open one, or a new one.
    fn take(&self) -> Chain<'p> {
        lock(&self.open).pop().unwrap_or_else(|| Chain {
            acc: Some(AccumulatorStrategy::new(self.params)),
            members: Vec::new(),
        })
    }

    /// Returns a chain after use: open again while it has room, closed when full or broken.
    fn give_back(&self, chain: Chain<'p>) {
        if chain.acc.is_some() && chain.members.len() < CHAIN_LEN {
            lock(&self.open).push(chain);
        } else {
            lock(&self.closed).push(chain);
        }
    }
}

/// One pool per distinct SRS among the items, and which pool each item's proof goes to.
struct Pools<'p> {
    pools: Vec<Pool<'p>>,
    of_item: Vec<Option<usize>>,
}

impl<'p> Pools<'p> {
    fn for_items(items: &'p [BatchItem<'p>], results: &[Result<Vec<Fr>, VerifyError>]) -> Self {
        let mut pools: Vec<Pool<'p>> = Vec::new();
        let of_item = items
            .iter()
            .zip(results)
            .map(|(item, result)| {
                result.as_ref().ok()?;
                let srs = item.key.srs();
                let same = |p: &Pool<'p>| p.params.g2() == srs.g2() && p.params.s_g2() == srs.s_g2();
                Some(pools.iter().position(same).unwrap_or_else(|| {
                    pools.push(Pool {
                        params: srs,
                        open: Mutex::new(Vec::new()),
                        closed: Mutex::new(Vec::new()),
                    });
                    pools.len() - 1
                }))
            })
            .collect();
        Self { pools, of_item }
    }

    fn pool_of(&self, index: usize) -> Option<&Pool<'p>> {
        self.pools.get(self.of_item.get(index).copied().flatten()?)
    }

    /// Every chain that received at least one proof.
    fn into_chains(self) -> Vec<Chain<'p>> {
        let mut chains = Vec::new();
        for pool in self.pools {
            for list in [pool.open, pool.closed] {
                chains.extend(list.into_inner().unwrap_or_else(|p| p.into_inner()));
            }
        }
        chains.retain(|c| !c.members.is_empty());
        chains
    }
}

/// The verification strategy handed to halo2 for one proof of a batch: it folds the proof's MSMs into a chain of
/// its pool instead of checking them. Made by halo2 itself (`new`), it checks the proof alone, like
/// `SingleStrategy`.
struct Relay<'a, 'p> {
    params: &'p ParamsKZG<Bn256>,
    target: Option<(&'a Pool<'p>, usize)>,
}

impl<'a, 'p> Relay<'a, 'p> {
    fn new(pool: &'a Pool<'p>, index: usize) -> Self {
        Self {
            params: pool.params,
            target: Some((pool, index)),
        }
    }
}

impl<'p, V> VerificationStrategy<'p, KZGCommitmentScheme<Bn256>, V> for Relay<'_, 'p>
where
    V: Verifier<'p, KZGCommitmentScheme<Bn256>, MSMAccumulator = DualMSM<'p, Bn256>, Guard = GuardKZG<'p, Bn256>>,
{
    type Output = ();

    fn new(params: &'p ParamsKZG<Bn256>) -> Self {
        Self { params, target: None }
    }

    fn process(
        self,
        f: impl FnOnce(DualMSM<'p, Bn256>) -> Result<GuardKZG<'p, Bn256>, PlonkError>,
    ) -> Result<(), PlonkError> {
        type Strategy<'p> = AccumulatorStrategy<'p, Bn256>;
        let Some((pool, index)) = self.target else {
            let acc = <Strategy<'p> as VerificationStrategy<'p, _, V>>::process(Strategy::new(self.params), f)?;
            return if <Strategy<'p> as VerificationStrategy<'p, _, V>>::finalize(acc) {
                Ok(())
            } else {
                Err(PlonkError::ConstraintSystemFailure)
            };
        };
        let mut chain = pool.take();
        let acc = chain.acc.take().unwrap_or_else(|| Strategy::new(self.params));
        // The fold scales the accumulator by a fresh random scalar, then adds this proof's MSMs.
        let folded = catch_unwind(AssertUnwindSafe(|| {
            <Strategy<'p> as VerificationStrategy<'p, _, V>>::process(acc, f)
        }));
        let outcome = match folded {
            Ok(Ok(acc)) => {
                chain.acc = Some(acc);
                chain.members.push(index);
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(panic) => {
                pool.give_back(chain);
                resume_unwind(panic)
            }
        };
        pool.give_back(chain);
        outcome
    }

    fn finalize(self) -> bool {
        // A relay holds no accumulator: its pool's chains are finalized by `verify_batch`.
        false
    }
}
