//! An independent checker of the circuit's witness. It re-derives every layer of a model from its input with plain
//! integer arithmetic written apart from `zkinfer_circuits::arith` and `model` (its own requantization in `i128`
//! with an explicit floor division, its own clamp, maximum and table lookup, its own output bounds), predicts every
//! cell the circuit assigns for the input, the packing, the multiply-accumulate passes, the requantizations, the
//! pools and the tables, and compares the prediction with the cells a traced synthesis wrote.

use std::collections::HashMap;

use zkinfer_circuits::assign::{CellKind, TracedCell};
use zkinfer_circuits::chips::clamp_table::covers;
use zkinfer_circuits::chips::fusion::Fusion;
use zkinfer_circuits::model::{Activation, Op, QuantizedModel};
use zkinfer_circuits::{CircuitParams, Fr, Witness};

/// `⌊a / b⌋` for `b > 0`: Rust's `/` truncates towards zero, so a negative inexact quotient is one too high.
pub fn floor_div(a: i128, b: i128) -> i128 {
    assert!(b > 0);
    let q = a / b;
    if a % b != 0 && a < 0 {
        q - 1
    } else {
        q
    }
}

/// `v` limited to `[lo, hi]`.
pub fn clamp(v: i128, lo: i128, hi: i128) -> i128 {
    if v < lo {
        lo
    } else if v > hi {
        hi
    } else {
        v
    }
}

/// The pieces of one requantization: quotient, remainder, output, flag (clamped high), slack `|q − y|`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pieces {
    /// `⌊(acc · M + 2^(s−1)) / 2^s⌋`.
    pub q: i128,
    /// The remainder of that division, in `[0, 2^s)`.
    pub r: i128,
    /// The clamped output.
    pub y: i128,
    /// 1 when clamped at the upper bound.
    pub f: i128,
    /// `|q − y|`.
    pub d: i128,
}

/// Rounds `acc · m / 2^s` half up and clamps it to `[lo, hi]`.
pub fn requantize(acc: i128, m: i128, s: u32, lo: i128, hi: i128) -> Pieces {
    let divisor = 1i128 << s;
    let numerator = acc * m + divisor / 2;
    let q = floor_div(numerator, divisor);
    let r = numerator - q * divisor;
    assert!((0..divisor).contains(&r), "remainder {r} outside [0, 2^{s})");
    let y = clamp(q, lo, hi);
    Pieces {
        q,
        r,
        y,
        f: i128::from(q > hi),
        d: (q - y).abs(),
    }
}

/// Pushes a requantization row's cells after its accumulator: remainder, output (the clamped value, or the
/// activation of it where a table layer is fused in: `activation`), then the flag and slack, or, through the
/// clamp table (whose use is the layout's choice, [`covers`]), a zero flag and the quotient.
fn push_requantization(
    push: &mut impl FnMut(CellKind, Fr),
    p: &Pieces,
    through_table: bool,
    activation: Option<&[i8]>,
) {
    push(CellKind::Remainder, fr(p.r));
    let output = match activation {
        Some(values) => i128::from(values[(p.y + 128) as usize]),
        None => p.y,
    };
    push(CellKind::Output, fr(output));
    if through_table {
        push(CellKind::ClampFlag, fr(0));
        push(CellKind::Quotient, fr(p.q));
    } else {
        push(CellKind::ClampFlag, fr(p.f));
        push(CellKind::ClampSlack, fr(p.d));
    }
}

/// The bounds of a requantizing layer's outputs: `[−2^(bits−1), 2^(bits−1) − 1]`, or from 0 with a fused ReLU.
pub fn bounds(bits: u32, activation: Activation) -> (i128, i128) {
    let hi = (1i128 << (bits - 1)) - 1;
    let lo = if activation == Activation::Relu { 0 } else { -hi - 1 };
    (lo, hi)
}

/// The field element of a signed integer, without the crate's conversion.
pub fn fr(v: i128) -> Fr {
    let magnitude = v.unsigned_abs();
    let f =
        Fr::from((magnitude >> 64) as u64) * Fr::from(1u64 << 32) * Fr::from(1u64 << 32) + Fr::from(magnitude as u64);
    if v < 0 {
        -f
    } else {
        f
    }
}

/// What the checker derives for one input: every tensor and, for each cell kind it predicts, the cells in
/// assignment order.
pub struct Derived {
    /// Every tensor, the input first, the outputs last.
    pub tensors: Vec<Vec<i128>>,
    /// Predicted cells by kind.
    pub cells: HashMap<CellKind, Vec<Fr>>,
}

/// int8 inputs per packed field element (radix 256), and 16-bit token ids per element (radix 2^16).
const PACK: usize = 31;
const PACK_TOKENS: usize = 15;

/// Derives every layer of `model` on `witness` as the circuit with layout `params` assigns it.
pub fn derive(model: &QuantizedModel, params: &CircuitParams, witness: &Witness) -> Derived {
    let mut cells: HashMap<CellKind, Vec<Fr>> = HashMap::new();
    let mut push = |kind: CellKind, v: Fr| cells.entry(kind).or_default().push(v);
    let input: Vec<i128> = witness.input.iter().map(|&x| i128::from(x)).collect();
    let tokens = model.input.vocab;
    for &x in &input {
        match tokens {
            Some(vocab) => assert!((0..vocab as i128).contains(&x), "token id {x} outside [0, {vocab})"),
            None => assert!((-128..=127).contains(&x), "input {x} is not int8"),
        }
    }
    let (pack, radix) = match tokens {
        Some(_) => (PACK_TOKENS, Fr::from(1u64 << 16)),
        None => (PACK, Fr::from(256u64)),
    };
    let lanes = params.mac_lanes.max(1);
    let per_row = params.mac_taps.max(1);
    // The packing pass: per chunk, the inputs from the last to the first, a running sum in base 256 (2^16 for
    // token ids) in lane 0 and zeros in the other lanes; then the sponge copies each chunk's sum after the salt.
    let mut packed = Vec::new();
    for chunk in input.chunks(pack) {
        let mut sum = Fr::from(0u64);
        for &x in chunk.iter().rev() {
            push(CellKind::Input, fr(x));
            sum = sum * radix + fr(x);
            push(CellKind::PackedInput, sum);
            for _ in 1..lanes {
                push(CellKind::ProductSum, Fr::from(0u64));
            }
        }
        packed.push(sum);
    }
    push(CellKind::Salt, witness.salt);
    for p in packed {
        push(CellKind::PackedInput, p);
    }

    // Which table layers the layout fuses into the requantization before them (the layout's choice, like
    // `covers`); the fused activation's values are read from the table layer itself.
    let fusion = Fusion::of(model, params);
    let fused_into = |producer: usize| -> Option<&[i8]> {
        fusion.of_producer(producer)?;
        let table = model.layers.iter().enumerate().find_map(|(j, l)| match &l.op {
            Op::Table(t) if t.input == producer + 1 && fusion.fuses_table(j) => Some(t),
            _ => None,
        });
        Some(table.expect("a fused producer feeds a fused table").values.as_slice())
    };
    let mut tensors = vec![input];
    for (i, layer) in model.layers.iter().enumerate() {
        // The activation a fused table layer applies to this layer's requantized outputs, looked up once per layer.
        let activation = fused_into(i);
        let get = |tensors: &[Vec<i128>], tensor: usize, index: usize| tensors[tensor][index];
        let mut out = vec![0i128; layer.output_len()];
        match &layer.op {
            Op::Linear(linear) => {
                let (lo, hi) = bounds(linear.output_bits, linear.activation);
                for group in &linear.groups {
                    let taps: Vec<Option<i128>> = group
                        .taps
                        .iter()
                        .map(|t| t.map(|s| get(&tensors, s.tensor, s.index)))
                        .collect();
                    if !params.uses_freivalds(i) {
                        // Rows of `per_row` present taps (a last row's leftover slots are padding cells, which
                        // are checked to be zero apart).
                        let present: Vec<(usize, i128)> =
                            taps.iter().enumerate().filter_map(|(t, x)| x.map(|x| (t, x))).collect();
                        for pass in group.outputs.chunks(lanes) {
                            let mut sums = vec![0i128; lanes];
                            for row in present.chunks(per_row) {
                                for &(_, x) in row {
                                    push(CellKind::LayerInput, fr(x));
                                }
                                for (lane, sum) in sums.iter_mut().enumerate() {
                                    for &(t, x) in row {
                                        let w = pass.get(lane).map_or(0, |&(_, k)| linear.kernels[k].weights[t]);
                                        *sum += i128::from(w) * x;
                                    }
                                    push(CellKind::ProductSum, fr(*sum));
                                }
                            }
                        }
                    }
                    for &(o, k) in &group.outputs {
                        let kernel = &linear.kernels[k];
                        let acc: i128 = taps
                            .iter()
                            .zip(&kernel.weights)
                            .filter_map(|(x, &w)| x.map(|x| x * i128::from(w)))
                            .sum();
                        let p = requantize(
                            acc + i128::from(kernel.bias),
                            i128::from(kernel.multiplier),
                            kernel.shift,
                            lo,
                            hi,
                        );
                        push(CellKind::RequantAccumulator, fr(acc));
                        let rescale = kernel.rescale_for(model.input_bits(linear));
                        let through_table = covers(params.clamp_bits, &rescale, linear.output_range());
                        push_requantization(&mut push, &p, through_table, activation);
                        out[o] = p.y;
                    }
                }
            }
            Op::MaxPool(pool) => {
                for (o, window) in pool.windows.iter().enumerate() {
                    let mut max = get(&tensors, window[0].tensor, window[0].index);
                    for s in &window[1..] {
                        let next = get(&tensors, s.tensor, s.index);
                        push(CellKind::PoolInput, fr(max));
                        push(CellKind::PoolInput, fr(next));
                        if next > max {
                            max = next;
                        }
                        push(CellKind::PoolMax, fr(max));
                    }
                    out[o] = max;
                }
            }
            Op::Table(table) => {
                for (o, &x) in tensors[table.input].iter().enumerate() {
                    assert!((-128..=127).contains(&x), "table input {x} is not int8");
                    let y = i128::from(table.values[(x + 128) as usize]);
                    if !fusion.fuses_table(i) {
                        push(CellKind::TableInput, fr(x));
                        push(CellKind::TableOutput, fr(y));
                    }
                    out[o] = y;
                }
            }
            Op::Gather(sources) => {
                for (o, s) in sources.iter().enumerate() {
                    out[o] = get(&tensors, s.tensor, s.index);
                }
            }
            Op::Embedding(embedding) => {
                let width = embedding.width;
                for (p, s) in embedding.ids.iter().enumerate() {
                    let id = get(&tensors, s.tensor, s.index);
                    for j in 0..width {
                        let y = i128::from(embedding.table[id as usize * width + j]);
                        push(CellKind::EmbeddingId, fr(id));
                        push(CellKind::EmbeddingOutput, fr(y));
                        out[p * width + j] = y;
                    }
                }
            }
            Op::ArgMax(argmax) => {
                // Rows in layout order (reversed for ties to the last); the chosen one is the first maximum there.
                let n = argmax.row_len;
                for (row, x) in tensors[argmax.input].chunks(n).enumerate() {
                    let mut order: Vec<usize> = (0..n).collect();
                    if argmax.select_last_index {
                        order.reverse();
                    }
                    let max = *x.iter().max().expect("a row");
                    let chosen = order.iter().position(|&j| x[j] == max).expect("a maximum");
                    let (mut f, mut i) = (0i128, 0i128);
                    for (k, &j) in order.iter().enumerate() {
                        let o = i128::from(k == chosen);
                        f += o;
                        i += j as i128 * o;
                        push(CellKind::ArgMaxInput, fr(x[j]));
                        push(CellKind::ArgMaxMax, fr(max));
                        push(CellKind::ArgMaxChoice, fr(o));
                        push(CellKind::ArgMaxChoice, fr(f));
                        push(CellKind::ArgMaxIndex, fr(i));
                        push(CellKind::ArgMaxGap, fr((1 - f) * (max - x[j] - 1)));
                    }
                    out[row] = i;
                }
            }
            Op::Softmax(softmax) => {
                // Its own arithmetic: the table read at `d + 255`, the division as a floor of integers.
                let n = softmax.row_len;
                for (row, (x, keep)) in tensors[softmax.input].chunks(n).zip(softmax.keep.chunks(n)).enumerate() {
                    let kept: Vec<i128> = x.iter().zip(keep).filter(|(_, &k)| k).map(|(&v, _)| v).collect();
                    let mut max = kept[0];
                    for &next in &kept[1..] {
                        push(CellKind::PoolInput, fr(max));
                        push(CellKind::PoolInput, fr(next));
                        max = max.max(next);
                        push(CellKind::PoolMax, fr(max));
                    }
                    let mut exps = Vec::with_capacity(n);
                    let mut sum = 0i128;
                    for (&v, &k) in x.iter().zip(keep) {
                        let e = if k {
                            let d = v - max;
                            assert!((-255..=0).contains(&d), "softmax difference {d}");
                            push(CellKind::SoftmaxInput, fr(v));
                            push(CellKind::SoftmaxInput, fr(max));
                            let e = i128::from(softmax.exp[(d + 255) as usize]);
                            push(CellKind::SoftmaxExp, fr(e));
                            e
                        } else {
                            0
                        };
                        sum += e;
                        exps.push(e);
                        push(CellKind::SoftmaxSum, fr(sum));
                    }
                    for (j, &e) in exps.iter().enumerate() {
                        let numerator = 254 * e + sum;
                        let p = floor_div(numerator, 2 * sum);
                        let r = numerator - 2 * sum * p;
                        push(CellKind::SoftmaxSum, fr(sum));
                        push(CellKind::Output, fr(p));
                        push(CellKind::Remainder, fr(r));
                        push(CellKind::SoftmaxBound, fr(2 * sum - 1 - r));
                        out[row * n + j] = p;
                    }
                }
            }
            Op::LayerNorm(norm) => {
                // Its own arithmetic: the root by bisection on `q²·V ≤ 2^(2F)` over `[0, 2^B)`.
                let (lo, hi) = bounds(norm.output_bits, norm.activation);
                let n = norm.row_len;
                let through_table = covers(params.clamp_bits, &norm.rescale(), norm.output_range());
                let pow = 1i128 << (2 * norm.root_shift);
                for (row, x) in tensors[norm.input].chunks(n).enumerate() {
                    let mut sum = 0i128;
                    for &v in x {
                        push(CellKind::NormInput, fr(v));
                        sum += v;
                        push(CellKind::NormSum, fr(sum));
                    }
                    let mut squares = i128::from(norm.epsilon);
                    let mut centred = Vec::with_capacity(n);
                    for &v in x {
                        push(CellKind::NormSum, fr(sum));
                        let c = n as i128 * v - sum;
                        push(CellKind::NormCentred, fr(c));
                        squares += c * c;
                        push(CellKind::NormSquares, fr(squares - i128::from(norm.epsilon)));
                        centred.push(c);
                    }
                    let (mut q, mut above) = (0i128, 1i128 << norm.root_bits);
                    while above - q > 1 {
                        let mid = (q + above) / 2;
                        if mid * mid * squares <= pow {
                            q = mid;
                        } else {
                            above = mid;
                        }
                    }
                    assert!(
                        (q + 1) * (q + 1) * squares > pow,
                        "the root {q} is not below 2^{}",
                        norm.root_bits
                    );
                    push(CellKind::NormRoot, fr(q));
                    push(CellKind::NormSlack, fr(pow - q * q * squares));
                    push(CellKind::NormSlack, fr((q + 1) * (q + 1) * squares - pow - 1));
                    for &c in &centred {
                        push(CellKind::NormRoot, fr(q));
                        push(CellKind::NormProduct, fr(c * q));
                    }
                    for (j, &c) in centred.iter().enumerate() {
                        let pieces = requantize(c * q, i128::from(norm.multiplier), norm.shift, lo, hi);
                        push(CellKind::RequantAccumulator, fr(c * q));
                        push_requantization(&mut push, &pieces, through_table, activation);
                        out[row * n + j] = pieces.y;
                    }
                }
            }
            Op::MatMul(matmul) => {
                let (lo, hi) = bounds(matmul.output_bits, matmul.activation);
                let (m, n, p) = (matmul.rows, matmul.inner, matmul.columns);
                let through_table = covers(params.clamp_bits, &matmul.rescale(), matmul.output_range());
                let products = matmul.lhs.chunks(m * n).zip(matmul.rhs.chunks(n * p));
                for (b, (a_sources, b_sources)) in products.enumerate() {
                    let value = |s: &zkinfer_circuits::model::Source| get(&tensors, s.tensor, s.index);
                    for i in 0..m {
                        for j in 0..p {
                            let acc: i128 = (0..n)
                                .map(|k| value(&a_sources[i * n + k]) * value(&b_sources[k * p + j]))
                                .sum();
                            let pieces = requantize(acc, i128::from(matmul.multiplier), matmul.shift, lo, hi);
                            push(CellKind::RequantAccumulator, fr(acc));
                            push_requantization(&mut push, &pieces, through_table, activation);
                            out[(b * m + i) * p + j] = pieces.y;
                        }
                    }
                }
            }
            Op::Mul(mul) => {
                let (lo, hi) = bounds(mul.output_bits, mul.activation);
                for (o, [a, b]) in mul.operands.iter().enumerate() {
                    let (x, y) = (get(&tensors, a.tensor, a.index), get(&tensors, b.tensor, b.index));
                    push(CellKind::MulOperand, fr(x));
                    push(CellKind::MulOperand, fr(y));
                    push(CellKind::MulProduct, fr(x * y));
                    let p = requantize(x * y, i128::from(mul.multiplier), mul.shift, lo, hi);
                    push(CellKind::RequantAccumulator, fr(x * y));
                    let through_table = covers(params.clamp_bits, &mul.rescale(), mul.output_range());
                    push_requantization(&mut push, &p, through_table, activation);
                    out[o] = p.y;
                }
            }
        }
        tensors.push(out);
    }
    // The outputs packed for the instance column: per run of 15, from the last, a running sum in base 2^16 in lane 0
    // (a copy of each output beside it) and zeros in the other lanes.
    let outputs: Vec<i128> = tensors.last().cloned().unwrap_or_default();
    for chunk in outputs.chunks(15) {
        let mut sum = Fr::from(0u64);
        for &y in chunk.iter().rev() {
            push(CellKind::OutputCopy, fr(y));
            sum = sum * Fr::from(1u64 << 16) + fr(y);
            push(CellKind::PackedOutput, sum);
            for _ in 1..lanes {
                push(CellKind::ProductSum, Fr::from(0u64));
            }
        }
    }
    push(CellKind::Nonce, witness.nonce);
    Derived { tensors, cells }
}

impl Derived {
    /// The model's outputs.
    pub fn outputs(&self) -> &[i128] {
        self.tensors.last().map(Vec::as_slice).unwrap_or_default()
    }

    /// The outputs as field elements (the instance column holds them packed).
    pub fn output_fields(&self) -> Vec<Fr> {
        self.outputs().iter().map(|&y| fr(y)).collect()
    }

    /// Differences between the prediction and the cells a synthesis wrote (`trace`), one line each (at most a few
    /// per kind); empty when every predicted kind matches cell for cell and every padding cell is zero.
    pub fn mismatches(&self, trace: &[TracedCell]) -> Vec<String> {
        let mut written: HashMap<CellKind, Vec<Fr>> = HashMap::new();
        for c in trace {
            written.entry(c.kind).or_default().push(c.value);
        }
        let mut problems = Vec::new();
        let mut kinds: Vec<_> = self.cells.keys().copied().collect();
        kinds.sort_by_key(|k| format!("{k:?}"));
        for kind in kinds {
            let expected = &self.cells[&kind];
            let got = written.get(&kind).map(Vec::as_slice).unwrap_or_default();
            if expected.len() != got.len() {
                problems.push(format!(
                    "{kind:?}: {} cells predicted, {} written",
                    expected.len(),
                    got.len()
                ));
                continue;
            }
            let wrong: Vec<usize> = (0..got.len()).filter(|&i| expected[i] != got[i]).collect();
            for &i in wrong.iter().take(3) {
                problems.push(format!(
                    "{kind:?} #{i}: predicted {:?}, written {:?}",
                    expected[i], got[i]
                ));
            }
            if wrong.len() > 3 {
                problems.push(format!("{kind:?}: {} cells differ in all", wrong.len()));
            }
        }
        let zero = Fr::from(0u64);
        let padding = written.get(&CellKind::Padding).map(Vec::as_slice).unwrap_or_default();
        if padding.iter().any(|v| *v != zero) {
            problems.push("a padding cell is not zero".into());
        }
        problems
    }
}
