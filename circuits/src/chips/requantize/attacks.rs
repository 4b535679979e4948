//! The attacks the soundness tests mount on a requantization row (`test-hooks` feature only): each changes the
//! row's cells so that as many gates as possible still hold, leaving the one constraint that must object.

use ff::Field;
use halo2_proofs::halo2curves::bn256::Fr;

use crate::arith::Requantized;
use crate::assign::{RequantChange, RequantPart};
use crate::field;

/// The constants of one requantization row, for re-solving a forged row ([`RequantPart`]).
pub(super) struct Row {
    /// `acc · M + c`.
    pub(super) numerator: Fr,
    /// `2^s`.
    pub(super) two_s: Fr,
    /// The lower clamp bound.
    pub(super) lo: Fr,
    /// The upper clamp bound.
    pub(super) hi: Fr,
}

impl Row {
    /// The remainder that makes the division identity hold for `y`, `f`, `d`.
    fn remainder(&self, y: Fr, f: Fr, d: Fr) -> Fr {
        self.numerator - (y + (f + f - Fr::ONE) * d) * self.two_s
    }

    /// The slack and remainder for a forged `y` and flag `f` that keep the clamp gates and the division identity:
    /// with the flag the slack keeps the quotient `q` (`d = q − y`); without it, at the lower bound `d = y − q`,
    /// elsewhere `d = 0` and the remainder absorbs the difference.
    fn solve(&self, y: Fr, f: Fr, q: Fr) -> (Fr, Fr) {
        let d = if f == Fr::ONE {
            q - y
        } else if y == self.lo {
            y - q
        } else {
            Fr::ZERO
        };
        (d, self.remainder(y, f, d))
    }

    /// `(y, f, d)` for a quotient `q` given in the field: the honest clamp of a small one; an enormous one is
    /// absorbed into the slack below the lower bound (`y = lo`, `f = 0`, `d = lo − q`, which keeps the clamp gates).
    fn clamp_any(&self, q: Fr, clamp: impl Fn(i64) -> (Fr, Fr, Fr)) -> (Fr, Fr, Fr) {
        match field::to_i64(&q).filter(|q| q.unsigned_abs() < 1 << 62) {
            Some(q) => clamp(q),
            None => (self.lo, Fr::ZERO, self.lo - q),
        }
    }

    /// The row `(y, f, d, r)` with `part` changed by `delta` and the rest re-solved so that the division and clamp
    /// gates hold (the range checks are left to object); `q` is the honest quotient and `clamp` the honest
    /// `q ↦ (y, f, d)`.
    fn forge(&self, part: RequantPart, delta: i64, q: i64, clamp: impl Fn(i64) -> (Fr, Fr, Fr)) -> (Fr, Fr, Fr, Fr) {
        let (y, f, d) = clamp(q);
        let (qf, delta) = (field::from_i64(q), field::from_i64(delta));
        match part {
            RequantPart::Output => {
                let y = y + delta;
                let f = if y == self.hi { Fr::ONE } else { Fr::ZERO };
                let (d, r) = self.solve(y, f, qf);
                (y, f, d, r)
            }
            RequantPart::Quotient => {
                let (y, f, d) = self.clamp_any(qf + delta, clamp);
                (y, f, d, self.remainder(y, f, d))
            }
            RequantPart::Remainder => {
                let r = self.remainder(y, f, d) + delta;
                let q = (self.numerator - r) * self.two_s.invert().unwrap_or(Fr::ZERO);
                let (y, f, d) = self.clamp_any(q, clamp);
                (y, f, d, r)
            }
            RequantPart::Slack => {
                let d = d + delta;
                let y = if f == Fr::ZERO && d != Fr::ZERO { self.lo } else { y };
                (y, f, d, self.remainder(y, f, d))
            }
            RequantPart::Flag => {
                let f = Fr::ONE - f;
                let y = if f == Fr::ONE { self.hi } else { y };
                let (d, r) = self.solve(y, f, qf);
                (y, f, d, r)
            }
        }
    }
}

impl Row {
    /// The row `(y, f, d, r)` for an accumulator beyond `i64`: `r = 0`, the quotient solved in the field and
    /// absorbed into the slack below the lower bound (`y = lo`, `f = 0`, `d = lo − q`), which keeps the division
    /// and clamp gates; the range checks of `d` (and usually `r`'s neighbours) object.
    pub(super) fn beyond_i64(&self) -> (Fr, Fr, Fr, Fr) {
        let q = self.numerator * self.two_s.invert().unwrap_or(Fr::ZERO);
        (self.lo, Fr::ZERO, self.lo - q, Fr::ZERO)
    }

    /// The row `(y, f, d, r)` for `change`, from the honest requantization `honest` and the honest clamp.
    pub(super) fn mount(
        &self,
        change: RequantChange,
        honest: Requantized,
        clamp: impl Fn(i64) -> (Fr, Fr, Fr),
    ) -> (Fr, Fr, Fr, Fr) {
        match change {
            RequantChange::RemainderShift => {
                // q − 1 with r + 2^s: the division identity holds and q stays small; only r's range check can object.
                let (y, b, d) = clamp(honest.q - 1);
                (y, b, d, field::from_i64(honest.r) + self.two_s)
            }
            RequantChange::UnboundedQuotient => {
                // Keep y and r in range, solve the division identity for q in the field (an enormous quotient)
                // and absorb it into the clamp slack: d = (q − y) / (2b − 1) with b = 0.
                let (y, _, _) = clamp(honest.q);
                let r = field::from_i64(honest.r ^ 1);
                let q = (self.numerator - r) * self.two_s.invert().unwrap_or(Fr::ZERO);
                (y, Fr::ZERO, y - q, r)
            }
            RequantChange::ClampAtInt8 => (
                Fr::from(127),
                Fr::ONE,
                field::from_i64(honest.q - 127),
                field::from_i64(honest.r),
            ),
            RequantChange::Forge(part, delta) => self.forge(part, delta, honest.q, clamp),
        }
    }
}

/// The constants of a requantization row checked through the clamp table, for re-solving a forged one: the
/// quotient is a cell there and the flag is pinned to zero.
pub(super) struct TableRow {
    /// `acc · M + c`.
    pub(super) numerator: Fr,
    /// `2^s`.
    pub(super) two_s: Fr,
}

impl TableRow {
    /// The quotient that makes the division identity hold for the remainder `r`, in the field.
    fn quotient(&self, r: Fr) -> Fr {
        (self.numerator - r) * self.two_s.invert().unwrap_or(Fr::ZERO)
    }

    /// The clamp of a quotient given in the field: the honest one of a small integer, `fallback` otherwise.
    fn clamp_any(q: Fr, fallback: Fr, clamp: &impl Fn(i64) -> Fr) -> Fr {
        field::to_i64(&q)
            .filter(|q| q.unsigned_abs() < 1 << 62)
            .map_or(fallback, clamp)
    }

    /// The row `(q, y, r)` for `change` (honest without one), from the honest requantization and the honest clamp
    /// `q ↦ y`, re-solved so that the division gate holds: what must object is the clamp-table lookup or the
    /// remainder's range check. `beyond_i64`: the accumulator is no small integer (a forgery upstream), so the
    /// quotient is solved in the field with `r = 0`. A forged flag changes nothing (the gate pins it to zero and
    /// no re-solving can satisfy it; single-cell tampering covers it).
    pub(super) fn mount(
        &self,
        change: Option<RequantChange>,
        honest: Requantized,
        clamp: impl Fn(i64) -> Fr,
        beyond_i64: bool,
    ) -> (Fr, Fr, Fr) {
        let (q, y, r) = (field::from_i64(honest.q), clamp(honest.q), field::from_i64(honest.r));
        if beyond_i64 {
            return (self.quotient(Fr::ZERO), y, Fr::ZERO);
        }
        let Some(change) = change else {
            return (q, y, r);
        };
        let requotient = |q: Fr| (q, Self::clamp_any(q, y, &clamp), self.numerator - q * self.two_s);
        match change {
            RequantChange::RemainderShift => (q - Fr::ONE, clamp(honest.q - 1), r + self.two_s),
            RequantChange::UnboundedQuotient => {
                let r = field::from_i64(honest.r ^ 1);
                (self.quotient(r), y, r)
            }
            RequantChange::ClampAtInt8 => (q, Fr::from(127), r),
            RequantChange::Forge(part, delta) => {
                let delta = field::from_i64(delta);
                match part {
                    RequantPart::Output => (q, y + delta, r),
                    RequantPart::Quotient => requotient(q + delta),
                    RequantPart::Slack => (q + delta, y, self.numerator - (q + delta) * self.two_s),
                    RequantPart::Remainder => {
                        let q = self.quotient(r + delta);
                        (q, Self::clamp_any(q, y, &clamp), r + delta)
                    }
                    RequantPart::Flag => (q, y, r),
                }
            }
        }
    }
}
