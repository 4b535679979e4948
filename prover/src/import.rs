//! ONNX import: reads a float model with tract-onnx and turns a chain of supported nodes into dense layers.
//!
//! Supported: `Gemm` (alpha = beta = 1, transA = 0), `MatMul` by a constant followed by `Add` of a constant
//! bias, `Relu` fused into the dense layer before it, and the data moves `Flatten`, `Reshape`, `Identity`,
//! `Dropout` (a no-op at inference). Anything else is refused with an error naming the operator and the node.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tract_onnx::pb;
use tract_onnx::prelude::{Framework, Tensor, TractResult};

use crate::error::{ProverError, Result};

/// A fully connected layer in floats: `y = act(W·x + b)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FloatDense {
    /// Name of the ONNX node (`Gemm` or `MatMul`) the layer came from.
    pub name: String,
    /// Number of inputs.
    pub in_features: usize,
    /// Number of outputs.
    pub out_features: usize,
    /// Weights, row-major `[out_features][in_features]`.
    pub weights: Vec<f32>,
    /// Bias per output.
    pub bias: Vec<f32>,
    /// Whether a ReLU follows.
    pub relu: bool,
}

/// A float feed-forward model: the flattened input through a chain of dense layers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FloatModel {
    /// The ONNX graph name, or the file stem when the graph has none.
    pub name: String,
    /// Shape of the ONNX input tensor, batch dimension included (symbolic dimensions read as 1).
    pub input_shape: Vec<usize>,
    /// The layers, in order.
    pub layers: Vec<FloatDense>,
}

impl FloatDense {
    /// `act(W·x + b)`, accumulated in f64; `x` must hold `in_features` values.
    fn apply(&self, x: &[f32]) -> Vec<f32> {
        let rows = self.weights.chunks_exact(self.in_features.max(1));
        let dot = |(row, b): (&[f32], &f32)| {
            let acc = row.iter().zip(x).map(|(w, v)| *w as f64 * *v as f64);
            let y = (*b as f64 + acc.sum::<f64>()) as f32;
            if self.relu {
                y.max(0.0)
            } else {
                y
            }
        };
        rows.zip(&self.bias).map(dot).collect()
    }
}

impl FloatModel {
    /// Number of input elements.
    pub fn input_len(&self) -> usize {
        self.layers.first().map_or(0, |l| l.in_features)
    }

    /// Number of output elements.
    pub fn output_len(&self) -> usize {
        self.layers.last().map_or(0, |l| l.out_features)
    }

    /// Checks that there are layers, that they chain, and that their parameters have the right lengths.
    pub fn check(&self) -> Result<()> {
        if self.layers.is_empty() {
            return Err(ProverError::graph("the model has no dense layer (Gemm or MatMul)"));
        }
        let mut width = self.input_len();
        for l in &self.layers {
            let (n_in, n_out) = (l.in_features, l.out_features);
            if n_in != width || n_in == 0 || n_out == 0 {
                let reason = format!("layer `{}` takes {n_in} inputs, {width} arrive", l.name);
                return Err(ProverError::graph(reason));
            }
            if l.weights.len() != n_in * n_out || l.bias.len() != n_out {
                let reason = format!("layer `{}`: parameter lengths do not match its shape", l.name);
                return Err(ProverError::graph(reason));
            }
            width = n_out;
        }
        Ok(())
    }

    /// The output of every layer (after its activation) for one flattened input.
    pub fn forward_layers(&self, x: &[f32]) -> Result<Vec<Vec<f32>>> {
        self.check()?;
        let expected = self.input_len();
        if x.len() != expected {
            return Err(ProverError::WrongInputLength {
                expected,
                found: x.len(),
            });
        }
        let mut outs: Vec<Vec<f32>> = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let y = layer.apply(outs.last().map_or(x, Vec::as_slice));
            outs.push(y);
        }
        Ok(outs)
    }

    /// The model's output for one flattened input (f32 semantics of the imported layers).
    pub fn forward(&self, x: &[f32]) -> Result<Vec<f32>> {
        Ok(self.forward_layers(x)?.pop().unwrap_or_default())
    }
}

/// Runs `f`, turning a panic inside tract into an error message (a last resort: tract should return errors).
pub(crate) fn guarded<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        let msg = (p.downcast_ref::<&str>().map(|s| s.to_string()))
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        format!("the ONNX reader failed: {msg}")
    })
}

/// Fills in the path of a `MalformedOnnx` error raised while the path was not at hand.
pub(crate) fn at_path(path: &Path) -> impl Fn(ProverError) -> ProverError + '_ {
    move |e| match e {
        ProverError::MalformedOnnx { reason, .. } => ProverError::malformed(path, reason),
        e => e,
    }
}

/// A `MalformedOnnx` error whose path [`at_path`] fills in.
fn malformed(reason: impl Into<String>) -> ProverError {
    ProverError::malformed(PathBuf::new(), reason)
}

/// Reads and decodes the protobuf of an ONNX file; I/O failures are `Io`, undecodable bytes `MalformedOnnx`.
pub fn read_onnx_proto(path: impl AsRef<Path>) -> Result<pb::ModelProto> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| ProverError::io(path, e))?;
    let proto = guarded(|| tract_onnx::onnx().proto_model_for_read(&mut bytes.as_slice()))
        .map_err(|reason| ProverError::malformed(path, reason))?
        .map_err(|e| ProverError::malformed(path, format!("{e:#}")))?;
    if proto.graph.as_ref().is_none_or(|g| g.node.is_empty()) {
        return Err(ProverError::malformed(path, "no graph nodes"));
    }
    Ok(proto)
}

/// Imports the ONNX model at `path` into a [`FloatModel`].
pub fn import_onnx(path: impl AsRef<Path>) -> Result<FloatModel> {
    let path = path.as_ref();
    let proto = read_onnx_proto(path)?;
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    let dir = path.parent().and_then(Path::to_str);
    guarded(|| import_graph(&proto, &stem.unwrap_or_default(), dir))
        .map_err(malformed)
        .and_then(|r| r)
        .map_err(at_path(path))
}

/// The single data input of the graph (a graph input that is not an initializer) and its shape.
pub(crate) fn data_input(graph: &pb::GraphProto) -> Result<(String, Vec<usize>)> {
    let is_init = |name: &str| graph.initializer.iter().any(|t| t.name == name);
    let inputs: Vec<_> = graph.input.iter().filter(|i| !is_init(&i.name)).collect();
    let [input] = inputs.as_slice() else {
        let n = inputs.len();
        return Err(ProverError::graph(format!("the graph has {n} data inputs, not one")));
    };
    let bad = |what: &str| ProverError::graph(format!("input `{}` {what}", input.name));
    let Some(pb::type_proto::Value::TensorType(t)) = input.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return Err(bad("is not a tensor"));
    };
    if t.elem_type != pb::tensor_proto::DataType::Float as i32 {
        return Err(bad("must be float32"));
    }
    let shape = t.shape.as_ref().ok_or_else(|| bad("has no shape"))?;
    use pb::tensor_shape_proto::dimension::Value;
    let dim = |d: &pb::tensor_shape_proto::Dimension| match d.value {
        Some(Value::DimValue(v)) if v <= 0 => Err(bad(&format!("has dimension {v}"))),
        Some(Value::DimValue(v)) => Ok(v as usize),
        _ => Ok(1),
    };
    let dims = shape.dim.iter().map(dim).collect::<Result<Vec<usize>>>()?;
    Ok((input.name.clone(), dims))
}

/// `return Err(UnsupportedGraph)` with a formatted reason.
macro_rules! bail_graph {
    ($($arg:tt)+) => { return Err(ProverError::graph(format!($($arg)+))) };
}

type AttrType = pb::attribute_proto::AttributeType;

/// One node being imported, with its display label (its name, or `#<index>`).
struct Node<'a> {
    pb: &'a pb::NodeProto,
    label: String,
}

impl Node<'_> {
    fn op(&self) -> &str {
        &self.pb.op_type
    }

    fn attr(&self, name: &str) -> Option<&pb::AttributeProto> {
        self.pb.attribute.iter().find(|a| a.name == name)
    }

    fn bad_attr(&self, attr: &str, value: impl ToString) -> ProverError {
        let (op, node, attr) = (self.op().into(), self.label.clone(), attr.into());
        ProverError::UnsupportedAttribute {
            op,
            node,
            attr,
            value: value.to_string(),
        }
    }

    /// An attribute of type `ty` read by `get`, or `default` when absent.
    fn attr_or<T>(&self, name: &str, ty: AttrType, get: fn(&pb::AttributeProto) -> T, default: T) -> Result<T> {
        match self.attr(name) {
            None => Ok(default),
            Some(a) if a.r#type == ty as i32 => Ok(get(a)),
            Some(a) => Err(self.bad_attr(name, format!("a value of ONNX type {}", a.r#type))),
        }
    }

    fn int(&self, name: &str, default: i64) -> Result<i64> {
        self.attr_or(name, AttrType::Int, |a| a.i, default)
    }

    fn input(&self, i: usize) -> Result<&str> {
        let missing = || malformed(format!("node `{}` ({}) lacks input {i}", self.label, self.op()));
        let name = self.pb.input.get(i).filter(|s| !s.is_empty());
        name.map(String::as_str).ok_or_else(missing)
    }
}

/// The import state: constants seen so far, the running activation, and the layers built.
#[derive(Default)]
struct Walker {
    consts: HashMap<String, Tensor>,
    /// Name of the running activation.
    current: String,
    /// Its shape.
    shape: Vec<usize>,
    layers: Vec<FloatDense>,
    /// The running activation is the output of the last dense layer (possibly moved): a ReLU may fuse.
    layer_output: bool,
    /// A constant may still be added as bias (no data move or activation since the layer).
    bias_ok: bool,
}

fn import_graph(proto: &pb::ModelProto, fallback_name: &str, dir: Option<&str>) -> Result<FloatModel> {
    let graph = proto
        .graph
        .as_ref()
        .ok_or_else(|| malformed("the model holds no graph"))?;
    let (current, input_shape) = data_input(graph)?;
    let resolver = tract_onnx::data_resolver::default();
    let mut consts = HashMap::new();
    for init in &graph.initializer {
        let t = tract_onnx::tensor::load_tensor(&*resolver, init, dir)
            .map_err(|e| malformed(format!("initializer `{}`: {e:#}", init.name)))?;
        consts.insert(init.name.clone(), t);
    }
    let mut w = Walker::default();
    (w.consts, w.current, w.shape) = (consts, current, input_shape.clone());
    for (ix, pb) in graph.node.iter().enumerate() {
        let label = Some(pb.name.clone()).filter(|s| !s.is_empty());
        let label = label.unwrap_or_else(|| format!("#{ix}"));
        w.node(&Node { pb, label })?;
    }
    match graph.output.as_slice() {
        [out] if out.name == w.current => {}
        [out] => bail_graph!("graph output `{}` is not the layer chain's end", out.name),
        outs => bail_graph!("the graph has {} outputs; one is supported", outs.len()),
    }
    let name = if graph.name.is_empty() {
        fallback_name
    } else {
        &graph.name
    };
    let model = FloatModel {
        name: name.into(),
        input_shape,
        layers: w.layers,
    };
    model.check()?;
    Ok(model)
}

impl Walker {
    /// The constant named `name` as f32 values with its shape.
    fn constant(&self, name: &str, n: &Node) -> Result<(Vec<usize>, Vec<f32>)> {
        let Some(t) = self.consts.get(name) else {
            bail_graph!("node `{}`: `{name}` must be a constant", n.label)
        };
        let values = || -> TractResult<Vec<f32>> {
            let t = t.cast_to::<f32>()?;
            Ok(t.to_plain_array_view::<f32>()?.iter().copied().collect())
        };
        let values = values().map_err(|e| malformed(format!("constant `{name}`: {e:#}")))?;
        Ok((t.shape().to_vec(), values))
    }

    /// Checks that input `i` of the node is the running activation.
    fn expect_current(&self, n: &Node, i: usize) -> Result<()> {
        let name = n.input(i)?;
        if name != self.current {
            let (label, op, cur) = (&n.label, n.op(), &self.current);
            bail_graph!("node `{label}` ({op}) reads `{name}`, not `{cur}`; only a chain of layers is supported");
        }
        Ok(())
    }

    /// Makes the node's first output the running activation, of shape `shape`.
    fn advance(&mut self, n: &Node, shape: Vec<usize>) -> Result<()> {
        let missing = || malformed(format!("node `{}` ({}) has no output", n.label, n.op()));
        self.current = n.pb.output.first().cloned().ok_or_else(missing)?;
        self.shape = shape;
        Ok(())
    }

    fn node(&mut self, n: &Node) -> Result<()> {
        if !n.pb.domain.is_empty() && n.pb.domain != "ai.onnx" {
            let op = format!("{}.{}", n.pb.domain, n.op());
            return Err(ProverError::operator(op, &n.label));
        }
        match n.op() {
            "Constant" => self.constant_node(n),
            "Identity" | "Dropout" => {
                self.expect_current(n, 0)?;
                self.advance(n, self.shape.clone())
            }
            "Flatten" | "Reshape" => self.reshape(n),
            "Gemm" => self.gemm(n),
            "MatMul" => self.matmul(n),
            "Add" => self.add(n),
            "Relu" => {
                self.expect_current(n, 0)?;
                if !self.layer_output {
                    bail_graph!("Relu `{}` does not follow a Gemm or MatMul", n.label);
                }
                if let Some(layer) = self.layers.last_mut() {
                    layer.relu = true;
                }
                self.bias_ok = false;
                self.advance(n, self.shape.clone())
            }
            op => Err(ProverError::operator(op, &n.label)),
        }
    }

    /// Records a `Constant` node's value (Reshape targets, weights given as constants).
    fn constant_node(&mut self, n: &Node) -> Result<()> {
        let tensor = match (n.attr("value").and_then(|a| a.t.as_ref()), n.attr("value_ints")) {
            (Some(t), _) => tract_onnx::tensor::load_tensor(&*tract_onnx::data_resolver::default(), t, None)
                .map_err(|e| malformed(format!("constant `{}`: {e:#}", n.label)))?,
            (None, Some(a)) => tract_onnx::prelude::tensor1(&a.ints),
            (None, None) => {
                let given = n.pb.attribute.first().map_or("nothing".into(), |a| a.name.clone());
                return Err(n.bad_attr("value", format!("given as `{given}`")));
            }
        };
        let missing = || malformed(format!("constant `{}` has no output", n.label));
        self.consts
            .insert(n.pb.output.first().ok_or_else(missing)?.clone(), tensor);
        Ok(())
    }

    /// `Flatten` or `Reshape`: a data move, allowed when it keeps the number of elements.
    fn reshape(&mut self, n: &Node) -> Result<()> {
        self.expect_current(n, 0)?;
        let size: usize = self.shape.iter().product();
        let new_shape = if n.op() == "Flatten" {
            let rank = self.shape.len() as i64;
            let axis = n.int("axis", 1)?;
            let axis = if axis < 0 { axis + rank } else { axis };
            if !(0..=rank).contains(&axis) {
                return Err(n.bad_attr("axis", axis));
            }
            let outer: usize = self.shape[..axis as usize].iter().product();
            vec![outer, size / outer.max(1)]
        } else {
            let spec: Vec<i64> = match n.attr("shape") {
                Some(a) => a.ints.clone(),
                None => {
                    let (_, target) = self.constant(n.input(1)?, n)?;
                    target.iter().map(|v| *v as i64).collect()
                }
            };
            if n.int("allowzero", 0)? != 0 && spec.contains(&0) {
                return Err(n.bad_attr("allowzero", 1));
            }
            self.reshape_target(&spec, &n.label)?
        };
        if new_shape.iter().product::<usize>() != size {
            let (op, label, old) = (n.op(), &n.label, &self.shape);
            bail_graph!("{op} `{label}` turns shape {old:?} into {new_shape:?}");
        }
        self.bias_ok = false;
        self.advance(n, new_shape)
    }

    /// Resolves the `0` (copy) and `-1` (infer) entries of a Reshape target.
    fn reshape_target(&self, spec: &[i64], label: &str) -> Result<Vec<usize>> {
        let size: usize = self.shape.iter().product();
        let shape = &self.shape;
        let bad = || ProverError::graph(format!("Reshape `{label}` to {spec:?} misfits {shape:?}"));
        let mut out = Vec::with_capacity(spec.len());
        let mut infer = None;
        for (i, &d) in spec.iter().enumerate() {
            match d {
                0 => out.push(*self.shape.get(i).ok_or_else(bad)?),
                -1 if infer.is_none() => {
                    infer = Some(i);
                    out.push(1);
                }
                d if d > 0 => out.push(d as usize),
                _ => return Err(bad()),
            }
        }
        if let Some(i) = infer {
            let known: usize = out.iter().product();
            if known == 0 || !size.is_multiple_of(known) {
                return Err(bad());
            }
            out[i] = size / known;
        }
        Ok(out)
    }

    /// Appends a dense layer that reads the running activation, whose last dimension must be `in_features`.
    fn push_dense(&mut self, n: &Node, (k, m): (usize, usize), weights: Vec<f32>, bias: Vec<f32>) -> Result<()> {
        let (op, label, shape) = (n.op(), &n.label, &self.shape);
        if shape.last() != Some(&k) {
            bail_graph!("{op} `{label}` expects {k} features, its input has shape {shape:?}");
        }
        if shape.iter().product::<usize>() != k {
            bail_graph!("{op} `{label}`: only a batch of one sample is supported, input {shape:?}");
        }
        let mut shape = shape.clone();
        shape.pop();
        shape.push(m);
        let name = label.clone();
        let layer = FloatDense {
            name,
            in_features: k,
            out_features: m,
            weights,
            bias,
            relu: false,
        };
        self.layers.push(layer);
        (self.layer_output, self.bias_ok) = (true, true);
        self.advance(n, shape)
    }

    /// The 2-D constant weight at input 1: rows, columns, values.
    fn weight(&self, n: &Node) -> Result<(usize, usize, Vec<f32>)> {
        let name = n.input(1)?;
        match self.constant(name, n)? {
            (shape, w) if shape.len() == 2 => Ok((shape[0], shape[1], w)),
            (shape, _) => bail_graph!("`{}`: weight `{name}` has shape {shape:?}, not 2-D", n.label),
        }
    }

    fn gemm(&mut self, n: &Node) -> Result<()> {
        self.expect_current(n, 0)?;
        for name in ["alpha", "beta"] {
            let v = n.attr_or(name, AttrType::Float, |a| a.f, 1.0)?;
            if v != 1.0 {
                return Err(n.bad_attr(name, v));
            }
        }
        let (trans_a, trans_b) = (n.int("transA", 0)?, n.int("transB", 0)?);
        if trans_a != 0 {
            return Err(n.bad_attr("transA", trans_a));
        }
        if trans_b != 0 && trans_b != 1 {
            return Err(n.bad_attr("transB", trans_b));
        }
        if self.shape.len() != 2 {
            bail_graph!("Gemm `{}` needs a 2-D input, not {:?}", n.label, self.shape);
        }
        let (r, c, b) = self.weight(n)?;
        let (dims, w) = if trans_b == 1 {
            ((c, r), b)
        } else {
            ((r, c), transpose(&b, r, c))
        };
        let bias = match n.input(2) {
            Err(_) => vec![0.0; dims.1],
            Ok(c_name) => broadcast_bias(self.constant(c_name, n)?, dims.1, &n.label)?,
        };
        self.push_dense(n, dims, w, bias)
    }

    fn matmul(&mut self, n: &Node) -> Result<()> {
        self.expect_current(n, 0)?;
        let (r, c, b) = self.weight(n)?;
        self.push_dense(n, (r, c), transpose(&b, r, c), vec![0.0; c])
    }

    /// `Add` of a constant right after a dense layer: folded into its bias.
    fn add(&mut self, n: &Node) -> Result<()> {
        let data = if n.input(0)? == self.current { 0 } else { 1 };
        self.expect_current(n, data)?;
        if !self.bias_ok {
            let label = &n.label;
            bail_graph!("Add `{label}` is supported only as the bias right after a MatMul or Gemm");
        }
        let out_features = self.layers.last().map_or(0, |l| l.out_features);
        let constant = self.constant(n.input(1 - data)?, n)?;
        let bias = broadcast_bias(constant, out_features, &n.label)?;
        if let Some(layer) = self.layers.last_mut() {
            layer.bias.iter_mut().zip(bias).for_each(|(b, v)| *b += v);
        }
        self.advance(n, self.shape.clone())
    }
}

/// `[r][c]` row-major into `[c][r]` row-major.
fn transpose(m: &[f32], r: usize, c: usize) -> Vec<f32> {
    (0..c).flat_map(|j| (0..r).map(move |i| m[i * c + j])).collect()
}

/// A bias constant of `n` values, or one value broadcast to `n`.
fn broadcast_bias((shape, values): (Vec<usize>, Vec<f32>), n: usize, label: &str) -> Result<Vec<f32>> {
    match values.len() {
        1 => Ok(vec![values[0]; n]),
        len if len == n && shape.last() == Some(&n) => Ok(values),
        _ => bail_graph!("`{label}`: bias of shape {shape:?} does not broadcast to {n} outputs"),
    }
}
