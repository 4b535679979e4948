//! Batching: one model that runs `B` inputs at once, so that one proof covers `B` inferences.
//!
//! [`QuantizedModel::batched`] is a transformation of the IR, not a chip: every tensor of the batched model is the
//! concatenation of that tensor for the `B` samples (sample `b`'s element `i` of tensor `t` is element
//! `b·len(t) + i`), and every layer repeats its op once per sample with its sources moved into that sample's part.
//! A linear layer keeps its kernels and repeats its groups, so a dense layer (one group) becomes a matrix product
//! with `B` positions — which Freivalds' test checks in `B·(K + O) + O·K` rows instead of `B·O·K` multiplications —
//! and a convolution's positions grow `B`-fold while its weights are checked once. The batched model is an
//! ordinary model: validation, the native engine, the planner, the circuit and the verifier need nothing new, and
//! its verifying key (so its model id) differs from the single-sample model's.
//!
//! The batch is the leading dimension of a multi-dimensional input shape (`[B, …]`; an imported model has
//! `[1, …]`, or a vector or scalar shape, which is one sample) and of every layer's output shape. The input
//! commitment covers the `B` inputs together (one salt) and the request has one nonce: a batch is one request of
//! `B` inputs.

use super::{Embedding, Layer, LinearGroup, MatMul, MaxPool, Mul, Op, QuantizedModel, Softmax, Source, Table};

/// The largest batch [`QuantizedModel::batched`] builds.
pub const MAX_BATCH: usize = 1024;

/// Most sources (taps, window entries, operands, gathered elements) a batched model may hold: `2^28`, 4 GiB of
/// [`Source`]s, which no prover this size of model is built for could hold besides its keys.
pub const MAX_BATCHED_SOURCES: usize = 1 << 28;

/// Most tensor elements (the input and every layer's output, over the whole batch) a batched model may hold:
/// `2^28`, so that every element's index in its tensor fits with room to spare and the values (`i64`) take 2 GiB
/// at most.
pub const MAX_BATCHED_ELEMENTS: usize = 1 << 28;

impl QuantizedModel {
    /// Inputs proven together: the leading dimension of a multi-dimensional input shape (1 for an imported model).
    pub fn batch(&self) -> usize {
        batch_of_shape(&self.input_shape)
    }

    /// Number of input elements of one sample.
    pub fn sample_input_len(&self) -> usize {
        self.input_len() / self.batch().max(1)
    }

    /// Number of output elements of one sample.
    pub fn sample_output_len(&self) -> usize {
        self.output_len() / self.batch().max(1)
    }

    /// This model run on `batch` inputs at once (see the module documentation); `batch = 1` returns it unchanged.
    /// Refuses a batch outside `[1, MAX_BATCH]`, a model that does not validate or is already batched, and a batch
    /// whose model would hold more than [`MAX_BATCHED_SOURCES`] sources or [`MAX_BATCHED_ELEMENTS`] tensor elements.
    pub fn batched(&self, batch: usize) -> Result<QuantizedModel, String> {
        check_batch_size(batch)?;
        self.validate().map_err(|e| e.to_string())?;
        if self.batch() != 1 {
            return Err(format!(
                "the model already proves a batch of {}; batch the single-sample model instead",
                self.batch()
            ));
        }
        if batch == 1 {
            return Ok(self.clone());
        }
        let sources = self.layers.iter().map(|l| l.op.source_count()).sum::<usize>();
        if sources.saturating_mul(batch) > MAX_BATCHED_SOURCES {
            return Err(format!(
                "a batch of {batch} would hold {sources} × {batch} sources, more than {MAX_BATCHED_SOURCES}; give a \
                 smaller batch"
            ));
        }
        let lens: Vec<usize> = (0..=self.layers.len()).map(|t| self.tensor_len(t)).collect();
        let elements = (lens.iter())
            .try_fold(0usize, |sum, &len| sum.checked_add(len))
            .and_then(|n| n.checked_mul(batch));
        if elements.is_none_or(|n| n > MAX_BATCHED_ELEMENTS) {
            return Err(format!(
                "a batch of {batch} would hold more than {MAX_BATCHED_ELEMENTS} tensor elements; give a smaller batch"
            ));
        }
        let shift = |s: &Source, b: usize| Source {
            tensor: s.tensor,
            index: b * lens.get(s.tensor).copied().unwrap_or(0) + s.index,
        };
        let layers = (self.layers.iter().enumerate())
            .map(|(i, layer)| {
                let out_len = lens[i + 1];
                let op = match &layer.op {
                    Op::Linear(lin) => {
                        let groups = (0..batch)
                            .flat_map(|b| {
                                lin.groups.iter().map(move |g| LinearGroup {
                                    taps: g.taps.iter().map(|t| t.map(|s| shift(&s, b))).collect(),
                                    outputs: g.outputs.iter().map(|&(o, k)| (b * out_len + o, k)).collect(),
                                })
                            })
                            .collect();
                        Op::Linear(super::Linear { groups, ..lin.clone() })
                    }
                    Op::MaxPool(pool) => Op::MaxPool(MaxPool {
                        windows: (0..batch)
                            .flat_map(|b| {
                                pool.windows
                                    .iter()
                                    .map(move |w| w.iter().map(|s| shift(s, b)).collect())
                            })
                            .collect(),
                    }),
                    // Elementwise over its whole input tensor, which is batched already.
                    Op::Table(table) => Op::Table(Table { ..table.clone() }),
                    Op::Embedding(embedding) => Op::Embedding(Embedding {
                        ids: (0..batch)
                            .flat_map(|b| embedding.ids.iter().map(move |s| shift(s, b)))
                            .collect(),
                        ..embedding.clone()
                    }),
                    Op::Gather(sources) => Op::Gather(
                        (0..batch)
                            .flat_map(|b| sources.iter().map(move |s| shift(s, b)))
                            .collect(),
                    ),
                    Op::Mul(mul) => Op::Mul(Mul {
                        operands: (0..batch)
                            .flat_map(|b| mul.operands.iter().map(move |[x, y]| [shift(x, b), shift(y, b)]))
                            .collect(),
                        ..mul.clone()
                    }),
                    // Row by row over its whole input tensor, which is batched already.
                    Op::ArgMax(argmax) => Op::ArgMax(argmax.clone()),
                    Op::LayerNorm(norm) => Op::LayerNorm(norm.clone()),
                    // Elementwise over its whole input tensor's rows, which is batched already.
                    Op::Softmax(softmax) => Op::Softmax(Softmax {
                        keep: softmax.keep.repeat(batch),
                        ..softmax.clone()
                    }),
                    // More products: each sample's, one after another.
                    Op::MatMul(matmul) => Op::MatMul(MatMul {
                        lhs: (0..batch)
                            .flat_map(|b| matmul.lhs.iter().map(move |s| shift(s, b)))
                            .collect(),
                        rhs: (0..batch)
                            .flat_map(|b| matmul.rhs.iter().map(move |s| shift(s, b)))
                            .collect(),
                        ..matmul.clone()
                    }),
                };
                Layer {
                    output_shape: std::iter::once(batch)
                        .chain(layer.output_shape.iter().copied())
                        .collect(),
                    op,
                    ..layer.clone()
                }
            })
            .collect();
        // The batch leads: `[1, …]` becomes `[B, …]`, a vector `[n]` becomes `[B, n]` and a scalar `[B, 1]`.
        let sample_shape = match self.input_shape.len() {
            0 => &[1][..],
            1 => &self.input_shape[..],
            _ => &self.input_shape[1..],
        };
        Ok(QuantizedModel {
            input_shape: std::iter::once(batch).chain(sample_shape.iter().copied()).collect(),
            layers,
            ..self.clone()
        })
    }
}

impl Op {
    /// How many sources the op lists: taps, window entries, operands or gathered elements (a table reads its whole
    /// input tensor and lists none).
    pub fn source_count(&self) -> usize {
        match self {
            Op::Linear(lin) => lin.groups.iter().map(|g| g.taps.len()).sum(),
            Op::MaxPool(pool) => pool.windows.iter().map(Vec::len).sum(),
            Op::Table(_) => 0,
            Op::Gather(sources) => sources.len(),
            Op::Embedding(embedding) => embedding.ids.len(),
            Op::Mul(mul) => 2 * mul.operands.len(),
            Op::MatMul(matmul) => matmul.lhs.len() + matmul.rhs.len(),
            Op::Softmax(_) | Op::ArgMax(_) | Op::LayerNorm(_) => 0,
        }
    }
}

/// Refuses a batch size outside `[1, MAX_BATCH]`.
pub fn check_batch_size(batch: usize) -> Result<(), String> {
    match batch {
        1..=MAX_BATCH => Ok(()),
        _ => Err(format!("batch size {batch}; give 1 to {MAX_BATCH}")),
    }
}

/// The batch of an input shape: its leading dimension when it has more than one (a single-sample model's is 1).
pub fn batch_of_shape(shape: &[usize]) -> usize {
    match shape {
        [batch, _, ..] => *batch,
        _ => 1,
    }
}
