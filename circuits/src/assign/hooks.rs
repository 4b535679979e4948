//! The assigner's test hooks (`test-hooks` feature): a tampered witness and the trace of the cells written.
//!
//! [`Tamper::Forge`] is the strongest form: up to [`MAX_FORGERIES`] cells changed at once, each re-solved locally
//! ([`Forgery`]): the chips compute every later cell from the forged values (running sums, Horner runs, rounds, the
//! max chain, range-check limbs and every later layer), and a forged requantization part re-solves the rest of its
//! row so that its division and clamp gates hold. What still objects is what the circuit relies on: a copy
//! constraint, a lookup, the public instance or a gate that no local choice can satisfy.
//!
//! [`trace_cells`] records the cells a synthesis writes (kind and value, in assignment order) for tests that check
//! the witness independently. Without a tamper and outside [`trace_cells`] the assigner writes exactly what the
//! chips computed.

use std::cell::RefCell;
use std::collections::HashMap;

use halo2_proofs::{circuit::Region, halo2curves::bn256::Fr};

use super::{Assigner, CellKind};

/// A change to make to an otherwise honest witness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tamper {
    /// Add `delta` to the `index`-th cell of `kind`.
    Cell {
        /// Kind of cell.
        kind: CellKind,
        /// Which one, in assignment order.
        index: usize,
        /// Amount added.
        delta: u64,
    },
    /// In the `index`-th requantization, use `r + 2^s` and `q − 1` (the division identity still holds).
    RemainderShift {
        /// Which requantization.
        index: usize,
    },
    /// In the `index`-th requantization, keep `r` in range but flip its low bit, solve the division identity
    /// for `q` in the field (an enormous quotient) and absorb it into the clamp slack `d`.
    UnboundedQuotient {
        /// Which requantization.
        index: usize,
    },
    /// In the `index`-th requantization, claim the int8 saturation `y = 127, b = 1, d = q − 127` (the division
    /// identity still holds): for a 16-bit output with `127 < q ≤ 32767` only the clamp's upper bound objects.
    ClampAtInt8 {
        /// Which requantization.
        index: usize,
    },
    /// Up to [`MAX_FORGERIES`] forgeries at once, each re-solved locally (see [`Forgery`]).
    Forge([Option<Forgery>; MAX_FORGERIES]),
}

/// Most forgeries one [`Tamper::Forge`] carries.
pub const MAX_FORGERIES: usize = 4;

impl Tamper {
    /// Mounts `forgeries` together; `None` if there are more than [`MAX_FORGERIES`].
    pub fn forge(forgeries: &[Forgery]) -> Option<Self> {
        if forgeries.len() > MAX_FORGERIES {
            return None;
        }
        let mut slots = [None; MAX_FORGERIES];
        for (slot, f) in slots.iter_mut().zip(forgeries) {
            *slot = Some(*f);
        }
        Some(Tamper::Forge(slots))
    }

    /// The forgeries of a [`Tamper::Forge`] (none for the other variants).
    pub fn forgeries(&self) -> impl Iterator<Item = &Forgery> {
        let slots: &[Option<Forgery>] = match self {
            Tamper::Forge(slots) => slots,
            _ => &[],
        };
        slots.iter().flatten()
    }
}

/// One change of a [`Tamper::Forge`], re-solved locally: the chips carry on from the forged value, so only the
/// constraints that read the forged cell itself (and cannot be satisfied by a local choice) object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forgery {
    /// Add `delta` to the `index`-th cell of `kind`. Everything computed from the cell afterwards uses the forged
    /// value: the next running sums of a multiply-accumulate pass, a packing or a Freivalds run, the next Poseidon
    /// rounds, the next limbs of a range check, the rest of a max chain and every later layer.
    Cell {
        /// Kind of cell.
        kind: CellKind,
        /// Which one, in assignment order.
        index: usize,
        /// Amount added (as a field element: a negative delta subtracts).
        delta: i64,
    },
    /// Change `part` of the `index`-th requantization by `delta` and re-solve the rest of its row (see
    /// [`RequantPart`]) so that the division and clamp gates hold; its range checks are computed from the forged
    /// cells.
    Requant {
        /// Which requantization, in assignment order.
        index: usize,
        /// What is changed.
        part: RequantPart,
        /// By how much.
        delta: i64,
    },
    /// In the `index`-th pairwise maximum, claim the smaller operand (the max gate `(m − a)(m − b) = 0` still
    /// holds; only the byte lookups object). Nothing changes where both operands are equal.
    PoolMin {
        /// Which pairwise maximum, in assignment order.
        index: usize,
    },
}

/// The part of a requantization row a [`Forgery::Requant`] changes; the other cells of the row are solved from it,
/// `r` always from the division identity `acc · M + c = (y + (2f − 1) · d) · 2^s + r` in the field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequantPart {
    /// `y + delta`; the flag is 1 exactly when the forged `y` is the upper bound, the slack is what keeps the
    /// honest quotient where the clamp gates allow it (`q − hi` with the flag, `lo − q` at the lower bound), else 0.
    Output,
    /// The quotient `q + delta` (not a cell): `y`, `f`, `d` are its clamp, `r` drops by `delta · 2^s`.
    Quotient,
    /// `r + delta`: the quotient is solved in the field; a small one is clamped, an enormous one is absorbed into
    /// the slack with `y = lo`, `f = 0` (the unbounded-quotient attack with its clamp gate satisfied).
    Remainder,
    /// `d + delta` with the same flag; `y` becomes the lower bound where the clamp gate needs it (`f = 0`, `d ≠ 0`).
    Slack,
    /// `1 − f` (the delta is ignored: a flag other than 0 or 1 fails the boolean gate whatever the rest of the
    /// row holds); `y` becomes the upper bound when the flag is 1, and the slack keeps the honest quotient with the
    /// flag, or is 0 without it.
    Flag,
}

/// What the requantization chip must do to the row it is about to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequantChange {
    /// [`Tamper::RemainderShift`].
    RemainderShift,
    /// [`Tamper::UnboundedQuotient`].
    UnboundedQuotient,
    /// [`Tamper::ClampAtInt8`].
    ClampAtInt8,
    /// A [`Forgery::Requant`] of this part by this amount.
    Forge(RequantPart, i64),
}

/// One advice cell as a traced synthesis wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TracedCell {
    /// Its kind.
    pub kind: CellKind,
    /// The value written.
    pub value: Fr,
}

thread_local! {
    static TRACE: RefCell<Option<Vec<TracedCell>>> = const { RefCell::new(None) };
}

/// Runs `f` with cell tracing on for this thread; returns its result and the cells, in assignment order, that the
/// last synthesis inside `f` wrote (each new [`Assigner`] restarts the trace, so with two phases it is the last
/// pass). A test facility: synthesis outside it records nothing.
pub fn trace_cells<T>(f: impl FnOnce() -> T) -> (T, Vec<TracedCell>) {
    let previous = TRACE.with(|t| t.replace(Some(Vec::new())));
    let result = f();
    let cells = TRACE.with(|t| t.replace(previous)).unwrap_or_default();
    (result, cells)
}

/// What the assigner tracks for the hooks: the tamper, cells by kind, requantizations, tracing.
pub(super) struct Hooks {
    tamper: Option<Tamper>,
    counters: HashMap<CellKind, usize>,
    requantizations: usize,
    tracing: bool,
}

impl Hooks {
    /// Hooks applying `tamper`, tracing when inside [`trace_cells`].
    pub(super) fn new(tamper: Option<Tamper>) -> Self {
        let tracing = TRACE.with(|t| t.borrow_mut().as_mut().map(Vec::clear).is_some());
        Self {
            tamper,
            counters: HashMap::new(),
            requantizations: 0,
            tracing,
        }
    }

    /// Counts a cell of `kind` and returns the value to write for it: `value`, changed by the tamper when it
    /// targets this cell; traces it.
    pub(super) fn advice(&mut self, kind: CellKind, value: Fr) -> Fr {
        let n = self.counters.entry(kind).or_insert(0);
        let index = *n;
        *n += 1;
        let value = match &self.tamper {
            None => value,
            Some(Tamper::Cell {
                kind: k,
                index: i,
                delta,
            }) if *k == kind && *i == index => value + Fr::from(*delta),
            Some(t @ Tamper::Forge(_)) => t.forgeries().fold(value, |v, f| match *f {
                Forgery::Cell {
                    kind: k,
                    index: i,
                    delta,
                } if k == kind && i == index => v + crate::field::from_i64(delta),
                _ => v,
            }),
            Some(_) => value,
        };
        if self.tracing {
            TRACE.with(|t| {
                if let Some(cells) = t.borrow_mut().as_mut() {
                    cells.push(TracedCell { kind, value });
                }
            });
        }
        value
    }
}

impl<'a, 'r> Assigner<'a, 'r> {
    /// Wraps a region, applying `tamper` to the cells it targets.
    pub fn tampered(region: &'a mut Region<'r, Fr>, tamper: Option<Tamper>) -> Self {
        Self {
            region,
            hooks: Hooks::new(tamper),
        }
    }

    /// Numbers the next requantization and returns the change to make to it, if any.
    pub fn next_requantization(&mut self) -> Option<RequantChange> {
        let hooks = &mut self.hooks;
        let index = hooks.requantizations;
        hooks.requantizations += 1;
        match hooks.tamper.as_ref()? {
            Tamper::RemainderShift { index: i } if *i == index => Some(RequantChange::RemainderShift),
            Tamper::UnboundedQuotient { index: i } if *i == index => Some(RequantChange::UnboundedQuotient),
            Tamper::ClampAtInt8 { index: i } if *i == index => Some(RequantChange::ClampAtInt8),
            t => t.forgeries().find_map(|f| match *f {
                Forgery::Requant { index: i, part, delta } if i == index => Some(RequantChange::Forge(part, delta)),
                _ => None,
            }),
        }
    }

    /// Whether the next pairwise maximum (the next [`CellKind::PoolMax`] cell) is to claim the smaller operand
    /// ([`Forgery::PoolMin`]).
    pub fn forges_pool_min(&self) -> bool {
        let Some(t) = &self.hooks.tamper else {
            return false;
        };
        let next = self.hooks.counters.get(&CellKind::PoolMax).copied().unwrap_or(0);
        t.forgeries()
            .any(|f| matches!(*f, Forgery::PoolMin { index } if index == next))
    }

    /// How many cells of each kind were assigned (the harness uses it to pick indices).
    pub fn counts(&self) -> &HashMap<CellKind, usize> {
        &self.hooks.counters
    }
}
