use super::*;
use crate::error::ProverError;
use zkinfer_circuits::arith::requantize;
use zkinfer_circuits::model::{
    Activation, Kernel, Linear, LinearGroup, MaxPool, Source, Table, TensorId, MODEL_FORMAT_VERSION,
};

fn src(tensor: TensorId, index: usize) -> Source {
    Source { tensor, index }
}

fn kernel(weights: Vec<i64>, bias: i64) -> Kernel {
    // M / 2^s = 1/2.
    Kernel {
        weights,
        bias,
        multiplier: 1 << 15,
        shift: 16,
    }
}

fn layer(name: &str, shape: Vec<usize>, op: Op) -> Layer {
    Layer {
        name: name.into(),
        op_type: name.into(),
        output_shape: shape,
        output_scale: 1.0,
        op,
    }
}

/// Input of 3, then one layer of each kind, with hand-checkable numbers.
fn tiny() -> QuantizedModel {
    let a = Linear {
        kernels: vec![kernel(vec![1, 2, 3], 10), kernel(vec![-1, -2, -3], 0)],
        groups: vec![LinearGroup {
            taps: (0..3).map(|i| Some(src(0, i))).collect(),
            outputs: vec![(0, 0), (1, 1)],
        }],
        activation: Activation::Relu,
        output_bits: 8,
    };
    let b = Linear {
        kernels: vec![kernel(vec![127, 5, -1], 0), kernel(vec![-11], 0)],
        groups: vec![
            LinearGroup {
                taps: vec![Some(src(1, 0)), None, Some(src(0, 2))],
                outputs: vec![(0, 0)],
            },
            LinearGroup {
                taps: vec![Some(src(0, 0))],
                outputs: vec![(1, 1)],
            },
        ],
        activation: Activation::Identity,
        output_bits: 8,
    };
    let c = MaxPool {
        windows: vec![vec![src(2, 0), src(2, 1)], vec![src(1, 1), src(2, 1)]],
    };
    let d = Table {
        input: 2,
        function: "half".into(),
        values: (-128i64..128).map(|q| q.div_euclid(2) as i8).collect(),
    };
    QuantizedModel {
        format_version: MODEL_FORMAT_VERSION,
        name: "tiny".into(),
        input_shape: vec![1, 3],
        input: zkinfer_circuits::model::InputQuantization::per_tensor(1.0),
        layers: vec![
            layer("a", vec![2], Op::Linear(a)),
            layer("b", vec![2], Op::Linear(b)),
            layer("c", vec![2], Op::MaxPool(c)),
            layer("d", vec![2], Op::Table(d)),
            layer("e", vec![3], Op::Gather(vec![src(4, 1), src(3, 0), src(0, 1)])),
        ],
    }
}

#[test]
fn hand_computed_example() {
    let m = tiny();
    m.validate().unwrap();
    // a: acc = [10 + 1 + 4 + 9, -14] = [24, -14]; ×1/2 → [12, 0 (ReLU)].
    // b: acc = [127·12 + 0 (padding) − 3, −11] = [1521, −11] → [760.5 → 127 (clamp), −5.5 → −5].
    // c: [max(127, −5), max(0, −5)] = [127, 0]. d: [⌊127/2⌋, ⌊−5/2⌋] = [63, −3]. e: [d[1], c[0], x[1]].
    let trace = infer_trace(&m, &[1, 2, 3]).unwrap();
    assert_eq!(trace[0].accumulators, vec![24, -14]);
    assert_eq!(trace[0].outputs, vec![12, 0]);
    assert_eq!(trace[1].accumulators, vec![1521, -11]);
    assert_eq!(trace[1].outputs, vec![127, -5]);
    assert_eq!(
        (trace[2].accumulators.len(), trace[2].outputs.as_slice()),
        (0, &[127, 0][..])
    );
    assert_eq!(trace[3].outputs, vec![63, -3]);
    assert_eq!(infer(&m, &[1, 2, 3]).unwrap(), vec![-3, 127, 2]);
}

/// The textbook definition, one multiply-add at a time, straight from the IR's documentation: an oracle written
/// apart from `Layer::eval` (which the engine runs), so that a mistake in the one is caught by the other.
fn naive(model: &QuantizedModel, x: &[i64]) -> Vec<i64> {
    let mut t: Vec<Vec<i64>> = vec![x.to_vec()];
    for l in &model.layers {
        let get = |s: &Source| t[s.tensor][s.index];
        let y = match &l.op {
            Op::Linear(lin) => {
                let mut y = vec![i64::MIN; l.output_len()];
                for g in &lin.groups {
                    for &(o, k) in &g.outputs {
                        let kernel = &lin.kernels[k];
                        let mut acc = kernel.bias;
                        for (w, tap) in kernel.weights.iter().zip(&g.taps) {
                            acc += w * tap.as_ref().map_or(0, get);
                        }
                        let (lo, hi) = match (lin.activation, lin.output_bits) {
                            (Activation::Relu, bits) => (0, (1 << (bits - 1)) - 1),
                            (Activation::Identity, bits) => (-(1 << (bits - 1)), (1 << (bits - 1)) - 1),
                        };
                        y[o] = requantize(acc, kernel.multiplier, kernel.shift, lo, hi).y;
                    }
                }
                y
            }
            Op::MaxPool(p) => p.windows.iter().map(|w| w.iter().map(get).max().unwrap()).collect(),
            Op::Table(tb) => t[tb.input]
                .iter()
                .map(|&v| tb.values[(v + 128) as usize] as i64)
                .collect(),
            Op::Gather(s) => s.iter().map(get).collect(),
            Op::Embedding(e) => (e.ids.iter())
                .flat_map(|s| (0..e.width).map(move |j| (s, j)))
                .map(|(s, j)| e.table[get(s) as usize * e.width + j] as i64)
                .collect(),
            Op::Mul(m) => m
                .operands
                .iter()
                .map(|[a, b]| {
                    let (lo, hi) = match m.activation {
                        Activation::Relu => (0, 127),
                        Activation::Identity => (-128, 127),
                    };
                    requantize(get(a) * get(b), m.multiplier, m.shift, lo, hi).y
                })
                .collect(),
            Op::ArgMax(am) => t[am.input]
                .chunks(am.row_len)
                .map(|row| {
                    let max = *row.iter().max().unwrap();
                    let at: Vec<usize> = (0..row.len()).filter(|&i| row[i] == max).collect();
                    (if am.select_last_index { at[at.len() - 1] } else { at[0] }) as i64
                })
                .collect(),
            Op::Softmax(sm) => {
                // Row by row: the kept maximum, the table at d + 255, round(127·e/S) half up as a floor.
                let mut y = Vec::new();
                for (x, keep) in t[sm.input].chunks(sm.row_len).zip(sm.keep.chunks(sm.row_len)) {
                    let max = x.iter().zip(keep).filter(|(_, &k)| k).map(|(&v, _)| v).max().unwrap();
                    let e: Vec<i64> = (x.iter().zip(keep))
                        .map(|(&v, &k)| if k { sm.exp[(v - max + 255) as usize] } else { 0 })
                        .collect();
                    let sum: i64 = e.iter().sum();
                    y.extend(e.iter().map(|&e| (254 * e + sum) / (2 * sum)));
                }
                y
            }
            Op::LayerNorm(norm) => {
                // Row by row: centred n·x − Σx, V = Σc² + E, the root from a float guess corrected to the largest q
                // with q²·V ≤ 2^(2F), then c·q requantized.
                let (lo, hi) = match (norm.activation, norm.output_bits) {
                    (Activation::Relu, bits) => (0, (1 << (bits - 1)) - 1),
                    (Activation::Identity, bits) => (-(1 << (bits - 1)), (1 << (bits - 1)) - 1),
                };
                let pow = 1i128 << (2 * norm.root_shift);
                let mut y = Vec::new();
                for x in t[norm.input].chunks(norm.row_len) {
                    let n = x.len() as i64;
                    let sum: i64 = x.iter().sum();
                    let c: Vec<i64> = x.iter().map(|&v| n * v - sum).collect();
                    let v = c.iter().map(|&c| (c * c) as i128).sum::<i128>() + norm.epsilon as i128;
                    let mut q = (pow as f64).sqrt() as i128 / (v as f64).sqrt() as i128;
                    while q * q * v > pow {
                        q -= 1;
                    }
                    while (q + 1) * (q + 1) * v <= pow {
                        q += 1;
                    }
                    y.extend(
                        c.iter()
                            .map(|&c| requantize(c * q as i64, norm.multiplier, norm.shift, lo, hi).y),
                    );
                }
                y
            }
            Op::MatMul(m) => {
                let (lo, hi) = match m.activation {
                    Activation::Relu => (0, 127),
                    Activation::Identity => (-128, 127),
                };
                let (rows, inner, columns) = (m.rows, m.inner, m.columns);
                let mut y = Vec::new();
                for (a, b) in m.lhs.chunks(rows * inner).zip(m.rhs.chunks(inner * columns)) {
                    for i in 0..rows {
                        for j in 0..columns {
                            let acc: i64 = (0..inner)
                                .map(|k| get(&a[i * inner + k]) * get(&b[k * columns + j]))
                                .sum();
                            y.push(requantize(acc, m.multiplier, m.shift, lo, hi).y);
                        }
                    }
                }
                y
            }
        };
        assert!(
            y.iter().all(|v| (-128..=127).contains(v)),
            "layer {} leaves int8",
            l.name
        );
        t.push(y);
    }
    t.pop().unwrap()
}

#[test]
fn matches_the_naive_definition_and_batches_agree() {
    let models = [
        crate::quantize::tests::random_model(7),
        crate::quantize::tests::random_cnn(8),
        crate::quantize::tests::random_attention(9),
        crate::quantize::tests::random_norm(10),
    ];
    for (float, calib) in models {
        let q = crate::quantize::quantize(&float, &calib).unwrap();
        let inputs: Vec<Vec<i64>> = calib
            .iter()
            .map(|x| crate::quantize::quantize_input(&q, x).unwrap())
            .collect();
        let batch = infer_batch(&q, &inputs).unwrap();
        assert_eq!(batch.len(), inputs.len());
        for (x, y) in inputs.iter().zip(&batch) {
            assert_eq!(*y, naive(&q, x));
            assert_eq!(infer_trace(&q, x).unwrap().last().unwrap().outputs, *y);
        }
    }
}

#[test]
fn bad_inputs_are_errors() {
    let m = tiny();
    assert!(matches!(
        infer(&m, &[1, 2]),
        Err(ProverError::WrongInputLength { expected: 3, found: 2 })
    ));
    assert!(matches!(
        infer(&m, &[1, 200, 3]),
        Err(ProverError::InputOutOfRange {
            index: 1,
            value: 200,
            lo: -128,
            hi: 127
        })
    ));
    assert!(infer_batch(&m, &[vec![1, 2, 3], vec![0; 4]]).is_err());
    let mut broken = m.clone();
    let Op::Linear(lin) = &mut broken.layers[1].op else {
        unreachable!()
    };
    lin.kernels[0].shift = 49;
    assert!(matches!(infer(&broken, &[1, 2, 3]), Err(ProverError::InvalidModel(_))));
    let mut broken = m.clone();
    let Op::Gather(sources) = &mut broken.layers[4].op else {
        unreachable!()
    };
    sources[0] = src(5, 0);
    assert!(
        IntegerEngine::new(&broken).is_err(),
        "a layer may not read its own output"
    );
}
