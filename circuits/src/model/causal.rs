//! Which input positions each output of a token model reads: the check that a language model is causal.
//!
//! A greedy generation of `n` tokens after a prompt of `p` is proven by **one** proof over the sequence `prompt,
//! t₁ … tₙ₋₁` padded to the context: output row `p − 1 + j` is the prediction that chose `tⱼ₊₁`. That is only the
//! generation if row `r` is computed from input positions `0..=r` alone, whatever the later positions (the
//! generated tokens and the padding) hold. [`QuantizedModel::causal_outputs`] establishes that on the layer graph
//! itself, element by element: each element's set of input positions is the union of what its sources read,
//! except where an operand is a constant 0 in every witness the circuit accepts (a masked softmax probability is
//! constrained to 0, so `A·V` does not read the values of masked positions). The sets only over-approximate, so a
//! model is never called causal wrongly; an operator this file does not know cannot be added without a rule here
//! (the `match` is exhaustive).

use serde::{Deserialize, Serialize};

use super::{Layer, Op, QuantizedModel, Source};

/// Largest number of position-set words (elements × words per element) of all tensors together: 2^27 words,
/// 1 GiB (the walk holds fewer at once, dropping each tensor after its last reader).
const MAX_SET_WORDS: usize = 1 << 27;

/// The outputs of a causal sequence model: `positions` rows of `row_len` (next-token logits), row `r` computed
/// from the token ids at positions `0..=r` only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CausalOutputs {
    /// Token positions of the input, and rows of the output.
    pub positions: usize,
    /// Outputs per row.
    pub row_len: usize,
}

/// For every element of one tensor, the input positions it reads and whether it is 0 in every accepted witness.
struct PositionSets {
    /// Words per element (`positions / 64`, rounded up).
    words: usize,
    /// `words` words of bits per element.
    bits: Vec<u64>,
    /// Whether the element is constrained to 0.
    zero: Vec<bool>,
}

impl PositionSets {
    fn empty(len: usize, words: usize) -> Self {
        Self {
            words,
            bits: vec![0; len * words],
            zero: vec![false; len],
        }
    }

    /// The set of element `i` (`None` past the tensor).
    fn set(&self, i: usize) -> Option<&[u64]> {
        self.bits.get(i * self.words..(i + 1) * self.words)
    }

    fn set_mut(&mut self, i: usize) -> &mut [u64] {
        let w = self.words;
        self.bits.get_mut(i * w..(i + 1) * w).unwrap_or(&mut [])
    }

    fn is_zero(&self, i: usize) -> bool {
        self.zero.get(i).copied().unwrap_or(false)
    }
}

/// `into |= from`.
fn union(into: &mut [u64], from: &[u64]) {
    for (a, b) in into.iter_mut().zip(from) {
        *a |= b;
    }
}

/// The set of all `positions` positions.
fn every_position(positions: usize) -> Vec<u64> {
    let mut set = vec![0u64; positions.div_ceil(64)];
    for p in 0..positions {
        set[p / 64] |= 1 << (p % 64);
    }
    set
}

/// The highest position in a set.
fn highest(set: &[u64]) -> Option<usize> {
    let (w, word) = set.iter().enumerate().rev().find(|(_, &word)| word != 0)?;
    Some(w * 64 + 63 - word.leading_zeros() as usize)
}

impl QuantizedModel {
    /// The model's outputs as rows of next-token logits, one row per input position, if each row `r` reads the
    /// token ids at positions `0..=r` only; otherwise what rules it out (not a token model, a batch, outputs that
    /// are not one row per position, or the first row that reads a later position).
    pub fn causal_outputs(&self) -> Result<CausalOutputs, String> {
        if self.input.vocab.is_none() {
            return Err("the model's input is not token ids".into());
        }
        // Every source must name an earlier tensor: a source the walk could not resolve would read no positions.
        self.validate().map_err(|e| format!("the model is invalid: {e}"))?;
        if self.batch() != 1 {
            return Err(format!("the model proves a batch of {} sequences", self.batch()));
        }
        let positions = self.input_len();
        let row_len = self
            .layers
            .last()
            .and_then(|l| l.output_shape.last().copied())
            .unwrap_or(0);
        let rows = self.output_len().checked_div(row_len).unwrap_or(0);
        if row_len == 0 || rows != positions || rows * row_len != self.output_len() {
            return Err(format!(
                "its {} outputs are not one row per input position ({positions} positions, rows of {row_len})",
                self.output_len()
            ));
        }
        let words = positions.div_ceil(64);
        let elements = (0..=self.layers.len()).fold(0usize, |n, t| n.saturating_add(self.tensor_len(t)));
        if elements.saturating_mul(words) > MAX_SET_WORDS {
            return Err(format!(
                "its tensors are too large to analyse ({elements} elements of {positions} positions)"
            ));
        }
        let output = self.output_position_sets(words);
        for (row, sets) in output.bits.chunks(row_len * words).enumerate() {
            let mut read = vec![0u64; words];
            for set in sets.chunks(words) {
                union(&mut read, set);
            }
            if let Some(q) = highest(&read).filter(|&q| q > row) {
                return Err(format!("its output row {row} reads the token at position {q}"));
            }
        }
        Ok(CausalOutputs { positions, row_len })
    }

    /// The position sets of the model's output, each tensor dropped once no later layer reads it.
    fn output_position_sets(&self, words: usize) -> PositionSets {
        let n = self.layers.len();
        let every = every_position(self.input_len());
        let mut last_read = vec![0usize; n + 1];
        for (l, layer) in self.layers.iter().enumerate() {
            for t in read_tensors(layer) {
                if let Some(slot) = last_read.get_mut(t) {
                    *slot = l;
                }
            }
        }
        let mut input = PositionSets::empty(self.input_len(), words);
        for i in 0..self.input_len() {
            input.set_mut(i)[i / 64] |= 1 << (i % 64);
        }
        let mut tensors: Vec<Option<PositionSets>> = Vec::with_capacity(n + 1);
        tensors.push(Some(input));
        for (l, layer) in self.layers.iter().enumerate() {
            let sets = layer_position_sets(layer, &tensors, &every);
            for (t, slot) in tensors.iter_mut().enumerate() {
                if last_read[t] <= l {
                    *slot = None;
                }
            }
            tensors.push(Some(sets));
        }
        tensors.pop().flatten().unwrap_or_else(|| PositionSets::empty(0, words))
    }
}

/// The tensors a layer reads.
fn read_tensors(layer: &Layer) -> Vec<usize> {
    let mut read: Vec<usize> = match &layer.op {
        Op::Linear(lin) => lin
            .groups
            .iter()
            .flat_map(|g| g.taps.iter().flatten())
            .map(|s| s.tensor)
            .collect(),
        Op::MaxPool(pool) => pool.windows.iter().flatten().map(|s| s.tensor).collect(),
        Op::Table(table) => vec![table.input],
        Op::Gather(sources) => sources.iter().map(|s| s.tensor).collect(),
        Op::Mul(mul) => mul.operands.iter().flatten().map(|s| s.tensor).collect(),
        Op::MatMul(mm) => mm.lhs.iter().chain(&mm.rhs).map(|s| s.tensor).collect(),
        Op::Softmax(sm) => vec![sm.input],
        Op::LayerNorm(norm) => vec![norm.input],
        Op::ArgMax(am) => vec![am.input],
        Op::Embedding(e) => e.ids.iter().map(|s| s.tensor).collect(),
    };
    read.sort_unstable();
    read.dedup();
    read
}

/// The position sets of one layer's outputs from those of the tensors before it (a tensor that is gone or a
/// source out of range reads nothing, which validation rules out).
fn layer_position_sets(layer: &Layer, tensors: &[Option<PositionSets>], every: &[u64]) -> PositionSets {
    let words = every.len();
    let mut out = PositionSets::empty(layer.output_len(), words);
    let tensor = |t: usize| tensors.get(t).and_then(Option::as_ref);
    // Fails closed: a source the walk cannot resolve (validation rules it out) reads every position.
    let set = |s: &Source| tensor(s.tensor).and_then(|sets| sets.set(s.index)).unwrap_or(every);
    let is_zero = |s: &Source| tensor(s.tensor).is_some_and(|sets| sets.is_zero(s.index));
    let mut scratch = vec![0u64; words];
    match &layer.op {
        Op::Linear(lin) => {
            for g in &lin.groups {
                scratch.fill(0);
                for s in g.taps.iter().flatten() {
                    union(&mut scratch, set(s));
                }
                for &(o, _) in &g.outputs {
                    union(out.set_mut(o), &scratch);
                }
            }
        }
        Op::MaxPool(pool) => {
            for (o, window) in pool.windows.iter().enumerate() {
                for s in window {
                    union(out.set_mut(o), set(s));
                }
            }
        }
        Op::Table(table) => {
            let zero_maps_to_zero = table.apply(0) == 0;
            for o in 0..out.zero.len() {
                let s = Source {
                    tensor: table.input,
                    index: o,
                };
                union(out.set_mut(o), set(&s));
                out.zero[o] = zero_maps_to_zero && is_zero(&s);
            }
        }
        Op::Gather(sources) => {
            for (o, s) in sources.iter().enumerate() {
                union(out.set_mut(o), set(s));
                out.zero[o] = is_zero(s);
            }
        }
        Op::Mul(mul) => {
            // No bias: a product with a 0 operand requantizes to 0.
            for (o, [a, b]) in mul.operands.iter().enumerate() {
                if is_zero(a) || is_zero(b) {
                    out.zero[o] = true;
                } else {
                    union(out.set_mut(o), set(a));
                    union(out.set_mut(o), set(b));
                }
            }
        }
        Op::MatMul(mm) => {
            let (m, n, p) = (mm.rows, mm.inner, mm.columns);
            let mut o = 0;
            for product in mm.each() {
                for i in 0..m {
                    for j in 0..p {
                        scratch.fill(0);
                        let mut all_zero = true;
                        for k in 0..n {
                            let (a, b) = (&product.lhs[i * n + k], &product.rhs[k * p + j]);
                            // A term with a 0 operand adds exactly 0, whatever the other operand holds.
                            if is_zero(a) || is_zero(b) {
                                continue;
                            }
                            all_zero = false;
                            union(&mut scratch, set(a));
                            union(&mut scratch, set(b));
                        }
                        union(out.set_mut(o), &scratch);
                        if let Some(z) = out.zero.get_mut(o) {
                            *z = all_zero;
                        }
                        o += 1;
                    }
                }
            }
        }
        Op::Softmax(sm) => {
            let n = sm.row_len.max(1);
            for (r, keep) in sm.keep.chunks(n).enumerate() {
                scratch.fill(0);
                for (j, &kept) in keep.iter().enumerate() {
                    if kept {
                        union(
                            &mut scratch,
                            set(&Source {
                                tensor: sm.input,
                                index: r * n + j,
                            }),
                        );
                    }
                }
                for (j, &kept) in keep.iter().enumerate() {
                    let o = r * n + j;
                    if kept {
                        union(out.set_mut(o), &scratch);
                    } else if let Some(z) = out.zero.get_mut(o) {
                        // The softmax chip constrains a masked probability to 0.
                        *z = true;
                    }
                }
            }
        }
        Op::LayerNorm(norm) => {
            // Every output reads its whole row (the sum and the variance).
            let n = norm.row_len.max(1);
            for r in 0..out.zero.len() / n {
                scratch.fill(0);
                for j in 0..n {
                    let index = r * n + j;
                    union(
                        &mut scratch,
                        set(&Source {
                            tensor: norm.input,
                            index,
                        }),
                    );
                }
                for j in 0..n {
                    union(out.set_mut(r * n + j), &scratch);
                }
            }
        }
        Op::ArgMax(am) => {
            let n = am.row_len.max(1);
            for r in 0..out.zero.len() {
                for j in 0..n {
                    union(
                        out.set_mut(r),
                        set(&Source {
                            tensor: am.input,
                            index: r * n + j,
                        }),
                    );
                }
            }
        }
        Op::Embedding(e) => {
            let width = e.width.max(1);
            for (p, id) in e.ids.iter().enumerate() {
                for j in 0..width {
                    union(out.set_mut(p * width + j), set(id));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        Activation, Embedding, InputQuantization, Kernel, Linear, LinearGroup, MatMul, Softmax, MODEL_FORMAT_VERSION,
    };

    const T: usize = 4;
    const V: usize = 3;

    fn layer(name: &str, shape: Vec<usize>, op: Op) -> Layer {
        Layer {
            name: name.into(),
            op_type: name.into(),
            output_shape: shape,
            output_scale: 0.1,
            op,
        }
    }

    fn at(tensor: usize, index: usize) -> Source {
        Source { tensor, index }
    }

    /// ids `[1, T]` → embedding of width 1 → scores `e·eᵀ` (`T × T`) → softmax keeping `keep` → `A·e` (`T × 1`)
    /// → a per-position head of `V` logits.
    fn attention(keep: impl Fn(usize, usize) -> bool) -> QuantizedModel {
        let embedding = Embedding {
            ids: (0..T).map(|p| at(0, p)).collect(),
            width: 1,
            table: vec![1, 2, 3],
        };
        let scores = MatMul {
            rows: T,
            inner: 1,
            columns: T,
            lhs: (0..T).map(|p| at(1, p)).collect(),
            rhs: (0..T).map(|p| at(1, p)).collect(),
            multiplier: 1 << 20,
            shift: 21,
            activation: Activation::Identity,
            output_bits: 8,
        };
        let softmax = Softmax {
            input: 2,
            row_len: T,
            keep: (0..T * T).map(|e| keep(e / T, e % T)).collect(),
            exp: vec![1; 256],
        };
        let mixed = MatMul {
            rows: T,
            inner: T,
            columns: 1,
            lhs: (0..T * T).map(|e| at(3, e)).collect(),
            rhs: (0..T).map(|p| at(1, p)).collect(),
            ..scores.clone()
        };
        let head = Linear {
            kernels: (0..V)
                .map(|v| Kernel {
                    weights: vec![v as i64 + 1],
                    bias: 0,
                    multiplier: 1 << 20,
                    shift: 21,
                })
                .collect(),
            groups: (0..T)
                .map(|p| LinearGroup {
                    taps: vec![Some(at(4, p))],
                    outputs: (0..V).map(|v| (p * V + v, v)).collect(),
                })
                .collect(),
            activation: Activation::Identity,
            output_bits: 8,
        };
        QuantizedModel {
            format_version: MODEL_FORMAT_VERSION,
            name: "attention".into(),
            input_shape: vec![1, T],
            input: InputQuantization::tokens(V),
            layers: vec![
                layer("wte", vec![T, 1], Op::Embedding(embedding)),
                layer("scores", vec![T, T], Op::MatMul(scores)),
                layer("softmax", vec![T, T], Op::Softmax(softmax)),
                layer("mix", vec![T, 1], Op::MatMul(mixed)),
                layer("head", vec![1, T, V], Op::Linear(head)),
            ],
        }
    }

    #[test]
    fn masked_attention_is_causal_and_unmasked_attention_is_not() {
        let causal = attention(|row, column| column <= row);
        assert_eq!(
            causal.causal_outputs(),
            Ok(CausalOutputs {
                positions: T,
                row_len: V
            })
        );
        // Without the mask, row 0 reads every position through the softmax's row sum and through `A·V`.
        let e = attention(|_, _| true).causal_outputs().unwrap_err();
        assert!(e.contains("row 0 reads the token at position 3"), "{e}");
        // A mask that lets row 1 see position 2 is caught at row 1.
        let e = attention(|row, column| column <= row || (row, column) == (1, 2))
            .causal_outputs()
            .unwrap_err();
        assert!(e.contains("row 1 reads the token at position 2"), "{e}");
    }

    #[test]
    fn a_masked_probability_only_hides_the_value_it_multiplies() {
        // `A·V` where V is the softmax output itself at a masked position still reads what the kept ones read.
        let mut model = attention(|row, column| column <= row);
        let Op::MatMul(mixed) = &mut model.layers[3].op else {
            unreachable!()
        };
        mixed.rhs = (0..T).map(|p| at(3, p * T + T - 1)).collect();
        // Row 0's only kept weight multiplies V[0] = A[0][T−1], masked (0): row 0 reads nothing, row 3 reads all.
        assert!(model.causal_outputs().is_ok());
        mixed_rhs_reads_row_3(&mut model);
        let e = model.causal_outputs().unwrap_err();
        assert!(e.contains("row 0 reads the token at position 3"), "{e}");
    }

    /// Makes `A·V` read, as every V row, the last row of the probabilities (which every position reaches).
    fn mixed_rhs_reads_row_3(model: &mut QuantizedModel) {
        let Op::MatMul(mixed) = &mut model.layers[3].op else {
            unreachable!()
        };
        mixed.rhs = (0..T).map(|_| at(3, (T - 1) * T)).collect();
    }

    #[test]
    fn models_that_are_not_one_row_per_position_are_refused() {
        let mut model = attention(|row, column| column <= row);
        model.input = InputQuantization::per_tensor(0.1);
        assert!(model.causal_outputs().unwrap_err().contains("not token ids"));
        let mut model = attention(|row, column| column <= row);
        model.layers[4].output_shape = vec![T * V];
        let e = model.causal_outputs().unwrap_err();
        assert!(e.contains("not one row per input position"), "{e}");
    }

    #[test]
    fn an_invalid_model_is_refused_before_it_is_walked() {
        // A source naming a later tensor would read no positions: validation refuses the model first.
        let mut model = attention(|row, column| column <= row);
        let Op::MatMul(scores) = &mut model.layers[1].op else {
            unreachable!()
        };
        scores.rhs[0] = at(5, 0);
        let e = model.causal_outputs().unwrap_err();
        assert!(e.contains("invalid"), "{e}");
    }

    #[test]
    fn a_source_the_walk_cannot_resolve_reads_every_position() {
        let model = attention(|row, column| column <= row);
        let input = model.output_position_sets(1);
        assert_eq!(input.bits.len(), T * V);
        // The head reads tensor 4, which is not there: each of its outputs reads all T positions.
        let tensors = [None, None, None, None, None];
        let every = every_position(T);
        let sets = layer_position_sets(&model.layers[4], &tensors, &every);
        assert!(sets.bits.iter().all(|&w| w == every[0]), "{:?}", sets.bits);
        assert_eq!(highest(&every_position(70)), Some(69));
    }

    #[test]
    fn position_sets_find_the_highest_position() {
        assert_eq!(highest(&[0, 0]), None);
        assert_eq!(highest(&[1, 0]), Some(0));
        assert_eq!(highest(&[u64::MAX, 1 << 5]), Some(69));
    }
}
