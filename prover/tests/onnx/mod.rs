//! A hand-written protobuf encoder for small ONNX models, shared by the integration tests.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A protobuf message being written (only the wire types ONNX needs).
#[derive(Default, Clone)]
pub struct Msg(pub Vec<u8>);

impl Msg {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn key(&mut self, field: u64, wire: u64) {
        self.varint(field << 3 | wire);
    }
    /// A varint field.
    pub fn int(mut self, field: u64, v: i64) -> Self {
        self.key(field, 0);
        self.varint(v as u64);
        self
    }
    /// A 32-bit float field.
    pub fn float(mut self, field: u64, v: f32) -> Self {
        self.key(field, 5);
        self.0.extend(v.to_le_bytes());
        self
    }
    /// A length-delimited field.
    pub fn bytes(mut self, field: u64, b: &[u8]) -> Self {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend(b);
        self
    }
    /// A string field.
    pub fn str(self, field: u64, s: &str) -> Self {
        self.bytes(field, s.as_bytes())
    }
    /// A sub-message field.
    pub fn msg(self, field: u64, m: Msg) -> Self {
        self.bytes(field, &m.0)
    }
}

/// ONNX `TensorProto` of f32 values (raw data).
pub fn tensor(name: &str, dims: &[i64], data: &[f32]) -> Msg {
    assert_eq!(dims.iter().product::<i64>() as usize, data.len(), "tensor {name}");
    let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    let m = dims.iter().fold(Msg::default(), |m, d| m.int(1, *d));
    m.int(2, 1).str(8, name).bytes(9, &raw)
}

/// ONNX `TensorProto` of booleans (a mask's condition): `data` nonzero is true.
pub fn tensor_bool(name: &str, dims: &[i64], data: &[f32]) -> Msg {
    assert_eq!(dims.iter().product::<i64>() as usize, data.len(), "tensor {name}");
    let raw: Vec<u8> = data.iter().map(|&v| u8::from(v != 0.0)).collect();
    let m = dims.iter().fold(Msg::default(), |m, d| m.int(1, *d));
    m.int(2, 9).str(8, name).bytes(9, &raw)
}

/// ONNX `TensorProto` of i64 values (a Reshape target).
pub fn tensor_i64(name: &str, data: &[i64]) -> Msg {
    let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    Msg::default()
        .int(1, data.len() as i64)
        .int(2, 7)
        .str(8, name)
        .bytes(9, &raw)
}

/// A scalar f32 constant (no dimensions).
pub fn scalar(name: &str, v: f32) -> Msg {
    Msg::default().int(2, 1).str(8, name).bytes(9, &v.to_le_bytes())
}

pub fn attr_int(name: &str, v: i64) -> Msg {
    Msg::default().str(1, name).int(3, v).int(20, 2)
}

pub fn attr_float(name: &str, v: f32) -> Msg {
    Msg::default().str(1, name).float(2, v).int(20, 1)
}

pub fn attr_ints(name: &str, v: &[i64]) -> Msg {
    v.iter()
        .fold(Msg::default().str(1, name), |m, x| m.int(8, *x))
        .int(20, 7)
}

pub fn attr_str(name: &str, v: &str) -> Msg {
    Msg::default().str(1, name).str(4, v).int(20, 3)
}

pub fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str], attrs: Vec<Msg>) -> Msg {
    let m = inputs.iter().fold(Msg::default(), |m, i| m.str(1, i));
    let m = outputs.iter().fold(m, |m, o| m.str(2, o));
    let m = m.str(3, name).str(4, op);
    attrs.into_iter().fold(m, |m, a| m.msg(5, a))
}

/// ONNX `ValueInfoProto` of a float tensor; a negative dimension becomes the symbolic `batch`.
pub fn value_info(name: &str, dims: &[i64]) -> Msg {
    typed_value_info(name, dims, 1)
}

/// [`value_info`] of a tensor of ONNX element type `elem` (1 FLOAT, 7 INT64).
fn typed_value_info(name: &str, dims: &[i64], elem: i64) -> Msg {
    let shape = dims.iter().fold(Msg::default(), |m, &d| {
        let dim = if d < 0 {
            Msg::default().str(2, "batch")
        } else {
            Msg::default().int(1, d)
        };
        m.msg(1, dim)
    });
    let tensor_type = Msg::default().int(1, elem).msg(2, shape);
    Msg::default().str(1, name).msg(2, Msg::default().msg(1, tensor_type))
}

/// A model with one input `x` of shape `input` and one output `y`, at `opset`.
pub fn model_at(opset: i64, nodes: Vec<Msg>, inits: Vec<Msg>, input: &[i64]) -> Vec<u8> {
    graph_model(opset, nodes, inits, value_info("x", input))
}

/// A model of `nodes` over the input `input` with one float output `y`, at `opset`.
fn graph_model(opset: i64, nodes: Vec<Msg>, inits: Vec<Msg>, input: Msg) -> Vec<u8> {
    let g = nodes
        .into_iter()
        .fold(Msg::default(), |g, n| g.msg(1, n))
        .str(2, "tiny");
    let g = inits.into_iter().fold(g, |g, t| g.msg(5, t));
    let output = Msg::default()
        .str(1, "y")
        .msg(2, Msg::default().msg(1, Msg::default().int(1, 1)));
    let g = g.msg(11, input).msg(12, output);
    let opset = Msg::default().str(1, "").int(2, opset);
    Msg::default().int(1, 8).msg(8, opset).msg(7, g).0
}

/// [`model_at`] opset 17.
pub fn model(nodes: Vec<Msg>, inits: Vec<Msg>, input: &[i64]) -> Vec<u8> {
    model_at(17, nodes, inits, input)
}

/// [`model`] whose input `x` holds int64 token ids.
pub fn token_model(nodes: Vec<Msg>, inits: Vec<Msg>, input: &[i64]) -> Vec<u8> {
    graph_model(17, nodes, inits, typed_value_info("x", input, 7))
}

/// Writes `bytes` to a fresh file (tests run in parallel: every call gets its own name).
pub fn write(name: &str, bytes: &[u8]) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("zkinfer-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{n}-{name}"));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// `n` random vectors of `len` values in `[-r, r)`.
pub fn random_inputs(seed: u64, n: usize, len: usize, r: f32) -> Vec<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| (0..len).map(|_| rng.gen_range(-r..r)).collect())
        .collect()
}

/// `n` random values in `[-r, r)`.
pub fn random_values(rng: &mut ChaCha8Rng, n: usize, r: f32) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-r..r)).collect()
}

/// Asserts `|a − b| ≤ tol · max(|a|, 1)` elementwise.
pub fn assert_close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= tol * x.abs().max(1.0), "{a:?} vs {b:?}");
    }
}

/// Imports the ONNX `bytes` (written as `NAME.onnx`) and checks the float graph against tract on five random inputs
/// of `input_len` values in `[-2, 2)`, to `tolerance`.
pub fn import_checked(name: &str, bytes: &[u8], input_len: usize, tolerance: f32) -> zkinfer_prover::FloatModel {
    let path = write(&format!("{name}.onnx"), bytes);
    let float = zkinfer_prover::import_onnx(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    let reference = zkinfer_prover::float_reference(&path).expect("tract");
    for x in random_inputs(3, 5, input_len, 2.0) {
        assert_close(&float.forward(&x).unwrap(), &reference.run(&x).unwrap(), tolerance);
    }
    float
}
