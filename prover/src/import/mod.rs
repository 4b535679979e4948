//! ONNX import: reads a float model with tract-onnx's protobuf reader and turns its nodes into a [`FloatModel`]
//! (a graph over flat NCHW tensors, batch of one), tracking shapes itself.
//!
//! Supported operators (default domain): `Gemm`, `MatMul` (+ `Add` of a constant bias; applied to every row of a
//! `[1, T, F]` sequence), `Conv` (2-D, group 1 or depthwise), `BatchNormalization` (folded into the Conv/Gemm
//! before it), `Relu` (fused into the linear layer before it when it is that layer's only reader), `LeakyRelu`,
//! `Clip`, `Sigmoid`, `Tanh`, `HardSwish`, `Gelu` (the opset-20 op and PyTorch's `Div → Erf → Add → Mul → Mul`
//! export), `MaxPool`, `AveragePool`, `GlobalAveragePool`, `ReduceMean`, `Add` of two tensors, `Concat`, `Flatten`,
//! `Reshape`, `Transpose`, `Slice`, `Split`, `Identity`, `Dropout` (inference) and `Constant`. Anything else is
//! refused with an error naming the operator and the node.

mod activation;
mod affine;
mod fold;
mod gather;
mod linear;
mod norm;
mod norm_pattern;
mod operators;
mod pool;
mod product;
mod shape;
mod softmax;

use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use tract_onnx::pb;
use tract_onnx::prelude::{Framework, Tensor, TractResult};

pub use crate::graph::{ActFn, Conv, Dense, FloatModel, FloatNode, FloatOp, FloatTensorId, Pool, PoolKind, Window2d};
pub use operators::supported_operators;

use crate::error::{ProverError, Result};

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
    decode_onnx_proto(&bytes).map_err(at_path(path))
}

/// Decodes the protobuf of an ONNX model held in memory; undecodable bytes are `MalformedOnnx` (with an empty
/// path, which [`at_path`] fills in).
fn decode_onnx_proto(bytes: &[u8]) -> Result<pb::ModelProto> {
    let proto = guarded(|| tract_onnx::onnx().proto_model_for_read(&mut &bytes[..]))
        .map_err(malformed)?
        .map_err(|e| malformed(format!("{e:#}")))?;
    if proto.graph.as_ref().is_none_or(|g| g.node.is_empty()) {
        return Err(malformed("no graph nodes"));
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

/// Imports an ONNX model held in memory, as [`import_onnx`] does a file: `name` names the model when its graph
/// has no name and labels error messages. Tensors stored in external data files are refused (there is no
/// directory to read them from).
pub fn import_onnx_bytes(bytes: &[u8], name: &str) -> Result<FloatModel> {
    let label = Path::new(name);
    let proto = decode_onnx_proto(bytes).map_err(at_path(label))?;
    guarded(|| import_graph(&proto, name, None))
        .map_err(malformed)
        .and_then(|r| r)
        .map_err(at_path(label))
}

/// What the graph's data input holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InputKind {
    /// float32 values.
    Float,
    /// Integer token ids (int64 or int32), which only an embedding (`Gather` of a constant table) may read.
    Tokens {
        /// Whether the ids are int32 (int64 otherwise).
        int32: bool,
    },
}

/// The single data input of the graph (a graph input that is not an initializer): its name, shape and kind.
pub(crate) fn data_input(graph: &pb::GraphProto) -> Result<(String, Vec<usize>, InputKind)> {
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
    use pb::tensor_proto::DataType;
    let kind = match t.elem_type {
        e if e == DataType::Float as i32 => InputKind::Float,
        e if e == DataType::Int64 as i32 => InputKind::Tokens { int32: false },
        e if e == DataType::Int32 as i32 => InputKind::Tokens { int32: true },
        _ => {
            return Err(bad(
                "must be float32, or int64/int32 token ids read by an embedding (Gather)",
            ))
        }
    };
    let shape = t.shape.as_ref().ok_or_else(|| bad("has no shape"))?;
    use pb::tensor_shape_proto::dimension::Value;
    let dim = |d: &pb::tensor_shape_proto::Dimension| match d.value {
        Some(Value::DimValue(v)) if v <= 0 => Err(bad(&format!("has dimension {v}"))),
        Some(Value::DimValue(v)) => Ok(v as usize),
        _ => Ok(1),
    };
    let dims = shape.dim.iter().map(dim).collect::<Result<Vec<usize>>>()?;
    Ok((input.name.clone(), dims, kind))
}

/// `return Err(UnsupportedGraph)` with a formatted reason.
macro_rules! bail_graph {
    ($($arg:tt)+) => { return Err($crate::error::ProverError::graph(format!($($arg)+))) };
}
pub(crate) use bail_graph;

type AttrType = pb::attribute_proto::AttributeType;

/// One node being imported, with its display label (its name, or its position, operator and output).
pub(crate) struct Node<'a> {
    pb: &'a pb::NodeProto,
    /// Position in the graph's node list.
    ix: usize,
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
    fn attr_or<T>(&self, name: &str, ty: AttrType, get: impl Fn(&pb::AttributeProto) -> T, default: T) -> Result<T> {
        match self.attr(name) {
            None => Ok(default),
            Some(a) if a.r#type == ty as i32 => Ok(get(a)),
            Some(a) => Err(self.bad_attr(name, format!("a value of ONNX type {}", a.r#type))),
        }
    }

    fn int(&self, name: &str, default: i64) -> Result<i64> {
        self.attr_or(name, AttrType::Int, |a| a.i, default)
    }

    fn float(&self, name: &str, default: f32) -> Result<f32> {
        self.attr_or(name, AttrType::Float, |a| a.f, default)
    }

    fn ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        self.attr_or(name, AttrType::Ints, |a| Some(a.ints.clone()), None)
    }

    fn string(&self, name: &str, default: &str) -> Result<String> {
        let get = |a: &pb::AttributeProto| String::from_utf8_lossy(&a.s).into_owned();
        self.attr_or(name, AttrType::String, get, default.to_string())
    }

    /// Refuses an integer attribute whose value is not `allowed` (absent reads as `default`).
    fn expect_int(&self, name: &str, default: i64, allowed: &[i64]) -> Result<i64> {
        let v = self.int(name, default)?;
        if allowed.contains(&v) {
            Ok(v)
        } else {
            Err(self.bad_attr(name, v))
        }
    }

    fn input(&self, i: usize) -> Result<&str> {
        let missing = || malformed(format!("node `{}` ({}) lacks input {i}", self.label, self.op()));
        self.opt_input(i).ok_or_else(missing)
    }

    /// Input `i`, or `None` when it is absent or the empty name (an omitted optional input).
    fn opt_input(&self, i: usize) -> Option<&str> {
        self.pb.input.get(i).map(String::as_str).filter(|s| !s.is_empty())
    }

    fn output(&self) -> Result<&str> {
        let missing = || malformed(format!("node `{}` ({}) has no output", self.label, self.op()));
        self.pb
            .output
            .first()
            .map(String::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(missing)
    }
}

/// The import state: constants, the tensor each value name stands for, remaining readers, nodes built.
struct Walker<'g> {
    graph: &'g pb::GraphProto,
    consts: HashMap<String, Tensor>,
    /// Value name → float tensor.
    names: HashMap<String, FloatTensorId>,
    /// ONNX shape of each float tensor (batch included).
    shapes: Vec<Vec<usize>>,
    /// Number of readers of each float tensor still to come or fused (graph outputs count as readers).
    uses: Vec<usize>,
    /// Readers of each value name in the ONNX graph (node inputs and graph outputs).
    name_uses: HashMap<String, usize>,
    /// Node indices reading each value name.
    readers: HashMap<String, Vec<usize>>,
    /// Nodes already consumed by a fused pattern.
    skip: HashSet<usize>,
    nodes: Vec<FloatNode>,
    /// Values that are a tensor with a mask applied (`Add` of −∞, `Where`), which only `Softmax` may read: the
    /// tensor and whether each of its elements is kept.
    masks: HashMap<String, (FloatTensorId, Vec<bool>)>,
    /// The default domain's opset version (`Softmax`'s default axis depends on it).
    opset: i64,
    /// What the data input (tensor 0) holds.
    input_kind: InputKind,
}

fn import_graph(proto: &pb::ModelProto, fallback_name: &str, dir: Option<&str>) -> Result<FloatModel> {
    let graph = proto
        .graph
        .as_ref()
        .ok_or_else(|| malformed("the model holds no graph"))?;
    let (input, input_shape, input_kind) = data_input(graph)?;
    if input_shape.len() > 1 && input_shape[0] != 1 {
        bail_graph!(
            "input `{input}` has batch size {}; only a batch of one sample is supported",
            input_shape[0]
        );
    }
    let mut consts = HashMap::new();
    for init in &graph.initializer {
        let t = load_tensor(init, dir).map_err(|e| malformed(format!("initializer `{}`: {e}", init.name)))?;
        consts.insert(init.name.clone(), t);
    }
    let mut w = Walker {
        graph,
        consts,
        names: HashMap::new(),
        shapes: vec![input_shape.clone()],
        uses: vec![0],
        name_uses: HashMap::new(),
        readers: HashMap::new(),
        skip: HashSet::new(),
        nodes: vec![],
        masks: HashMap::new(),
        opset: (proto.opset_import.iter())
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map_or(1, |o| o.version),
        input_kind,
    };
    for (ix, node) in graph.node.iter().enumerate() {
        for name in node.input.iter().filter(|s| !s.is_empty()) {
            *w.name_uses.entry(name.clone()).or_default() += 1;
            w.readers.entry(name.clone()).or_default().push(ix);
        }
    }
    for out in &graph.output {
        *w.name_uses.entry(out.name.clone()).or_default() += 1;
    }
    w.bind(&input, 0);
    // Constants first: they read nothing, and a pattern that looks ahead (GELU's erf form) may read one that the
    // exporter wrote after the pattern's first node.
    for (ix, pb) in graph.node.iter().enumerate() {
        if pb.op_type == "Constant" && (pb.domain.is_empty() || pb.domain == "ai.onnx") {
            w.constant_node(&Node {
                pb,
                ix,
                label: label(pb, ix),
            })?;
            w.skip.insert(ix);
        }
    }
    for (ix, pb) in graph.node.iter().enumerate() {
        if w.skip.contains(&ix) {
            continue;
        }
        w.node(&Node {
            pb,
            ix,
            label: label(pb, ix),
        })?;
    }
    let output = match graph.output.as_slice() {
        [out] => &out.name,
        outs => bail_graph!("the graph has {} outputs; one is supported", outs.len()),
    };
    match w.names.get(output) {
        Some(&t) if t > 0 && t == w.nodes.len() => {}
        Some(_) => bail_graph!("graph output `{output}` is not computed by the last node"),
        None => bail_graph!("graph output `{output}` is not computed by any node"),
    }
    if let Some(t) = (1..w.nodes.len()).find(|&t| w.uses[t] == 0) {
        bail_graph!(
            "the output of node `{}` is never used; remove it from the graph",
            w.nodes[t - 1].name
        );
    }
    let model = FloatModel {
        name: String::new(),
        input_shape: input_shape.clone(),
        nodes: w.nodes,
    };
    if input_kind != InputKind::Float && model.token_vocab().is_none() {
        bail_graph!(
            "input `{input}` holds integers, which zkinfer reads only as token ids of an embedding (Gather of a \
             constant table by the input); give a float32 input otherwise"
        );
    }
    let name = if graph.name.is_empty() {
        fallback_name
    } else {
        &graph.name
    };
    let model = fold::fold_affines(norm_pattern::recognise_layer_norms(FloatModel {
        name: name.into(),
        ..model
    }));
    model.check()?;
    Ok(model)
}

/// A tensor of the model (an initializer or a constant's value; external data is read from `dir`). String tensors
/// are refused first: tract panics on those stored as raw bytes, and no supported operator reads strings.
fn load_tensor(t: &pb::TensorProto, dir: Option<&str>) -> std::result::Result<Tensor, String> {
    if t.data_type == pb::tensor_proto::DataType::String as i32 {
        return Err("a tensor of strings; only numeric tensors are supported".into());
    }
    tract_onnx::tensor::load_tensor(&*tract_onnx::data_resolver::default(), t, dir).map_err(|e| format!("{e:#}"))
}

/// The node's name; for a node without one, its position, operator and first output (`#3 Sub -> x_centered`), so
/// that an error points at it in a graph viewer.
fn label(pb: &pb::NodeProto, ix: usize) -> String {
    if !pb.name.is_empty() {
        return pb.name.clone();
    }
    match pb.output.first().filter(|o| !o.is_empty()) {
        Some(out) => format!("#{ix} {} -> {out}", pb.op_type),
        None => format!("#{ix} {}", pb.op_type),
    }
}

/// A layer about to be appended.
struct NewNode {
    op_type: String,
    inputs: Vec<FloatTensorId>,
    shape: Vec<usize>,
    op: FloatOp,
}

impl Walker<'_> {
    fn node(&mut self, n: &Node) -> Result<()> {
        if !n.pb.domain.is_empty() && n.pb.domain != "ai.onnx" {
            let op = format!("{}.{}", n.pb.domain, n.op());
            return Err(ProverError::operator(op, &n.label));
        }
        match operators::OPERATORS.iter().find(|o| o.op == n.op()) {
            Some(operator) => (operator.read)(self, n),
            None => Err(ProverError::operator(n.op(), &n.label)),
        }
    }

    /// Makes `name` stand for tensor `t`, counting its readers as readers of `t`.
    fn bind(&mut self, name: &str, t: FloatTensorId) {
        self.names.insert(name.to_string(), t);
        self.uses[t] += self.name_uses.get(name).copied().unwrap_or(0);
    }

    /// Appends a node and binds its (first) output name to the new tensor.
    fn push(&mut self, n: &Node, new: NewNode) -> Result<FloatTensorId> {
        let output = n.output()?.to_string();
        self.push_as(&output, n, new)
    }

    /// Appends a node built from `n` whose output is the value `output`.
    fn push_as(&mut self, output: &str, n: &Node, new: NewNode) -> Result<FloatTensorId> {
        let output = output.to_string();
        if self.names.contains_key(&output) || self.consts.contains_key(&output) {
            return Err(malformed(format!("value `{output}` is defined twice")));
        }
        self.nodes.push(FloatNode {
            name: n.label.clone(),
            op_type: new.op_type,
            inputs: new.inputs,
            output_shape: new.shape,
            op: new.op,
            relu: false,
        });
        self.shapes.push(self.nodes[self.nodes.len() - 1].output_shape.clone());
        self.uses.push(0);
        let t = self.nodes.len();
        self.bind(&output, t);
        Ok(t)
    }

    /// Makes the node's output another name of the tensor `t` it read (a no-op node, fused or folded away).
    fn rebind(&mut self, n: &Node, t: FloatTensorId) -> Result<()> {
        let output = n.output()?.to_string();
        self.uses[t] = self.uses[t].saturating_sub(1);
        self.bind(&output, t);
        Ok(())
    }

    /// The tensor named by input `i` (not a constant).
    fn tensor(&self, n: &Node, i: usize) -> Result<FloatTensorId> {
        let name = n.input(i)?;
        match self.names.get(name) {
            Some(&t) => Ok(t),
            None if self.masks.contains_key(name) => {
                bail_graph!(
                    "node `{}` ({}) reads `{name}`, a tensor with a mask applied (Add of −∞, or Where), which only \
                     Softmax may read",
                    n.label,
                    n.op()
                )
            }
            None if self.consts.contains_key(name) => {
                bail_graph!(
                    "node `{}` ({}): input `{name}` is a constant; only data inputs are supported there",
                    n.label,
                    n.op()
                )
            }
            None => Err(malformed(format!(
                "node `{}` reads `{name}`, which no earlier node computes",
                n.label
            ))),
        }
    }

    /// Shape of tensor `t`.
    fn shape(&self, t: FloatTensorId) -> &[usize] {
        &self.shapes[t]
    }

    /// Whether `name` is a constant.
    fn is_const(&self, name: &str) -> bool {
        self.consts.contains_key(name)
    }

    /// The constant named `name` as f32 values with its shape.
    fn constant(&self, name: &str, n: &Node) -> Result<(Vec<usize>, Vec<f32>)> {
        let Some(t) = self.consts.get(name) else {
            bail_graph!("node `{}` ({}): `{name}` must be a constant", n.label, n.op())
        };
        let values = || -> TractResult<Vec<f32>> {
            let t = t.cast_to::<f32>()?;
            Ok(t.to_plain_array_view::<f32>()?.iter().copied().collect())
        };
        let values = values().map_err(|e| malformed(format!("constant `{name}`: {e:#}")))?;
        Ok((t.shape().to_vec(), values))
    }

    /// The node that computed tensor `t` when it is a Dense or Conv layer without a fused ReLU whose only reader is
    /// the current node: the candidate for folding a BatchNormalization or a bias, or fusing a ReLU.
    fn foldable_linear(&self, t: FloatTensorId) -> Option<usize> {
        let node = self.nodes.get(t.checked_sub(1)?)?;
        let linear = matches!(node.op, FloatOp::Dense(_) | FloatOp::Conv(_));
        (linear && !node.relu && self.uses[t] == 1).then_some(t - 1)
    }

    /// Records a `Constant` node's value (Reshape targets, weights given as constants).
    fn constant_node(&mut self, n: &Node) -> Result<()> {
        let bad = |e: String| malformed(format!("constant `{}`: {e}", n.label));
        let tensor = if let Some(t) = n.attr("value").and_then(|a| a.t.as_ref()) {
            load_tensor(t, None).map_err(bad)?
        } else if let Some(a) = n.attr("value_ints") {
            tract_onnx::prelude::tensor1(&a.ints)
        } else if let Some(a) = n.attr("value_floats") {
            tract_onnx::prelude::tensor1(&a.floats)
        } else if let Some(a) = n.attr("value_int") {
            tract_onnx::prelude::tensor0(a.i)
        } else if let Some(a) = n.attr("value_float") {
            tract_onnx::prelude::tensor0(a.f)
        } else {
            let given = n.pb.attribute.first().map_or("nothing".into(), |a| a.name.clone());
            return Err(n.bad_attr("value", format!("given as `{given}`")));
        };
        self.consts.insert(n.output()?.to_string(), tensor);
        Ok(())
    }

    /// `Identity`: another name for its input.
    fn alias(&mut self, n: &Node) -> Result<()> {
        let t = self.tensor(n, 0)?;
        self.rebind(n, t)
    }

    /// `Dropout` at inference: the identity; its mask output must be unused and training mode off.
    fn dropout(&mut self, n: &Node) -> Result<()> {
        if let Some(mode) = n.opt_input(2) {
            let (_, v) = self.constant(mode, n)?;
            if v.iter().any(|&m| m != 0.0) {
                return Err(n.bad_attr("training_mode", "true"));
            }
        }
        if let Some(mask) = n.pb.output.get(1).filter(|s| !s.is_empty()) {
            if self.name_uses.get(mask).is_some_and(|&u| u > 0) {
                bail_graph!(
                    "Dropout `{}`: its mask output `{mask}` is used; only inference is supported",
                    n.label
                );
            }
        }
        self.alias(n)
    }
}

/// The four `pads` of a 2-D window op (`[top, left, bottom, right]`), default zero, refusing negative values.
pub(crate) fn pads_2d(n: &Node) -> Result<[usize; 4]> {
    match n.ints("pads")? {
        None => Ok([0; 4]),
        Some(p) if p.len() == 4 && p.iter().all(|&v| v >= 0) => Ok([p[0], p[1], p[2], p[3]].map(|v| v as usize)),
        Some(p) => Err(n.bad_attr("pads", format!("{p:?}"))),
    }
}

/// A 2-D integer attribute pair (`strides`, `kernel_shape`) of positive values, or `default` when absent.
pub(crate) fn pair(n: &Node, name: &str, default: Option<[usize; 2]>) -> Result<[usize; 2]> {
    match (n.ints(name)?, default) {
        (Some(v), _) if v.len() == 2 && v.iter().all(|&d| d > 0) => Ok([v[0] as usize, v[1] as usize]),
        (Some(v), _) => Err(n.bad_attr(name, format!("{v:?}"))),
        (None, Some(d)) => Ok(d),
        (None, None) => Err(malformed(format!(
            "node `{}` ({}) lacks attribute `{name}`",
            n.label,
            n.op()
        ))),
    }
}

/// Refuses `auto_pad` other than NOTSET and dilations other than 1.
pub(crate) fn plain_window(n: &Node) -> Result<()> {
    let auto_pad = n.string("auto_pad", "NOTSET")?;
    if auto_pad != "NOTSET" {
        return Err(n.bad_attr("auto_pad", auto_pad));
    }
    if let Some(d) = n.ints("dilations")?.filter(|d| d.iter().any(|&v| v != 1)) {
        return Err(n.bad_attr("dilations", format!("{d:?}")));
    }
    Ok(())
}

/// The `[1, C, H, W]` shape of tensor `t`, or an error naming the node.
pub(crate) fn nchw(shape: &[usize], n: &Node) -> Result<[usize; 3]> {
    match shape {
        [1, c, h, w] => Ok([*c, *h, *w]),
        s => bail_graph!("{} `{}` needs a [1, C, H, W] input, not {s:?}", n.op(), n.label),
    }
}
