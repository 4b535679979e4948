"""Train a tiny decoder-only character-level GPT with JAX and export it to ONNX
by hand.

The model is GPT-2 shaped (pre-LayerNorm), with nanoGPT's module names::

    input_ids [1,32] (int64)
      -> transformer.wte (Gather) + transformer.wpe (constant [32,64])      x [1,32,64]
      -> 2 x block:  x = x + attn(ln_1(x))      causal, 2 heads of 32, fused c_attn
                     x = x + mlp(ln_2(x))       c_fc 64->256, GELU (erf), c_proj 256->64
      -> ln_f -> lm_head (64 -> V, no bias) -> logits [1,32,V]

V = 97 characters: newline, the 95 printable ASCII characters (space to ``~``)
and one "unknown" id (96) that every other character maps to (curly quotes,
dashes, the ellipsis...; 0.12 % of the text).  114,560 parameters.

The text is the English prose of CPython's standard library module
``pydoc_data.topics`` (the ``topics`` dict behind ``help()``: the chapters of
the language reference), so nothing has to be downloaded.  It differs between
Python releases; the committed files were made with CPython 3.11.7, whose
text is 464,970 characters (sha256 recorded in ``metrics.json``; the script
warns when it sees another text).  The topics are concatenated in sorted key
order; the first 90 % of the characters are the train text and the last 10 %
the held-out text.

Outputs, in ``models/tiny-gpt/``:

* ``model.onnx``        the graph laid out the way ``torch.onnx.export`` writes
                        nanoGPT's ``GPT`` module (eval mode, opset 17, constant
                        folding on, static shapes), see ``export``.
* ``calibration.json``  64 windows of 32 token ids from the train text, evenly
                        spaced: ``{"input_data": [[32 ids], ...]}``.
* ``test.json``         100 non-overlapping windows of 32 ids from the held-out
                        text, evenly spaced, and ``labels``: each position's next
                        character (the window shifted by one).
* ``input.json``        the first test window alone.
* ``vocab.json``        ``{"chars": [V strings], "unknown": 96, "context": 32}``.
* ``metrics.json``      float held-out top-1 accuracy and perplexity, the
                        unigram baseline, the train loss curve, the settings and
                        the versions.

Training is Adam with decoupled weight decay (PyTorch's AdamW: betas
0.9/0.99, weight decay 0.1 on the matrices and embeddings, none on biases and
LayerNorm), global gradient-norm clipping at 1 and a linear warm-up then
cosine decay of the learning rate, written out in JAX (no optax), float32:
10,000 steps of 64 random 33-character windows of the train text (20.5M
predicted characters, about 49 passes over the train text).  The initial
weights come from ``jax.random.key(0)`` (nanoGPT's init: N(0, 0.02), c_proj
N(0, 0.02/sqrt(2 * layers)), zero biases), the windows from numpy
``default_rng(0)``.  The saved graph is checked against the JAX forward pass
on every test window, with a small numpy interpreter and (if installed) with
onnxruntime.  On a given machine the script is
deterministic: running it again rewrites byte-identical files.

Usage (from the repository root; five to seven minutes on one core):
    python3 -m venv models/.venv
    models/.venv/bin/pip install -r models/requirements.txt -r models/requirements-cnn.txt
    models/.venv/bin/python models/train_tiny_gpt.py
"""

import os

# Single-threaded BLAS/XLA, CPU only, so that the floating-point summation
# order (and hence the trained weights) does not depend on the core count.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
from jax import lax  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from pydoc_data.topics import topics  # noqa: E402
from scipy.special import erf  # noqa: E402

SEED = 0
OPSET = 17
IR_VERSION = 8

# Model.
CONTEXT = 32      # tokens per window (T); also the size of wpe
WIDTH = 64        # n_embd
HEADS = 2         # head width 32
LAYERS = 2
MLP = 256
LN_EPS = 1e-5

# Training.
STEPS = 10000
BATCH = 64        # windows of CONTEXT + 1 characters per step
LR = 3e-3
LR_MIN = 3e-4
WARMUP = 200
BETAS = (0.9, 0.99)
ADAM_EPS = 1e-8
CLIP = 1.0
WEIGHT_DECAY = 0.1  # decoupled (AdamW), on the matrices and embeddings only
LOG_EVERY = 500

# Data files.
CALIBRATION_WINDOWS = 64
TEST_WINDOWS = 100

# The text the committed files were made from (CPython 3.11.7's pydoc_data).
EXPECTED_TEXT_SHA256 = "37d06970fc926e60c16dff401e441b84752446a36b6b64516c229fdec77e992c"

OUT_DIR = Path(__file__).resolve().parent / "tiny-gpt"
HIGHEST = lax.Precision.HIGHEST

# --------------------------------------------------------------------------- data

# Newline, space .. '~', then the unknown id.
CHARS = ["\n"] + [chr(c) for c in range(32, 127)]
UNKNOWN = len(CHARS)
UNKNOWN_CHAR = "\ufffd"  # how vocab.json spells the unknown id
VOCAB = len(CHARS) + 1
STOI = {c: i for i, c in enumerate(CHARS)}


def load_text():
    """The topics concatenated in sorted key order, and its sha256."""
    text = "".join(topics[k] for k in sorted(topics))
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if digest != EXPECTED_TEXT_SHA256:
        print(f"WARNING: pydoc_data.topics of Python {platform.python_version()} is not the text "
              "the committed files were made from (CPython 3.11.7): every output will differ")
    return text, digest


def encode(text):
    return np.array([STOI.get(c, UNKNOWN) for c in text], dtype=np.int64)


def decode(ids):
    return "".join(CHARS[i] if i < len(CHARS) else UNKNOWN_CHAR for i in ids)


def split(ids):
    """First 90 % of the characters for training, last 10 % held out."""
    cut = len(ids) * 9 // 10
    return ids[:cut], ids[cut:]


def windows(ids, count):
    """`count` windows of CONTEXT + 1 ids at evenly spaced starts (the last one
    ends at the end of `ids`); non-overlapping when the ids are long enough."""
    last = len(ids) - (CONTEXT + 1)
    starts = [i * last // (count - 1) for i in range(count)]
    return np.stack([ids[s:s + CONTEXT + 1] for s in starts])


# -------------------------------------------------------------------------- model


def layer_norm(x, p):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / jnp.sqrt(var + LN_EPS) * p["weight"] + p["bias"]


def linear(x, p):
    """nn.Linear: x @ weight.T (+ bias), weight stored [out, in]."""
    y = jnp.matmul(x, p["weight"].T, precision=HIGHEST)
    return y + p["bias"] if "bias" in p else y


def causal_masked():
    """True above the diagonal: the positions masked out (nanoGPT's ``bias == 0``)."""
    return ~np.tril(np.ones((CONTEXT, CONTEXT), dtype=bool))


def attention(x, p):
    b, t, c = x.shape
    dh = c // HEADS
    q, k, v = jnp.split(linear(x, p["c_attn"]), 3, axis=2)
    heads = lambda a: a.reshape(b, t, HEADS, dh).transpose(0, 2, 1, 3)  # noqa: E731
    q, k, v = heads(q), heads(k), heads(v)
    s = jnp.matmul(q, k.transpose(0, 1, 3, 2), precision=HIGHEST) * np.float32(1 / math.sqrt(dh))
    s = jnp.where(causal_masked()[:t, :t], -jnp.inf, s)
    a = jax.nn.softmax(s, axis=-1)
    y = jnp.matmul(a, v, precision=HIGHEST).transpose(0, 2, 1, 3).reshape(b, t, c)
    return linear(y, p["c_proj"])


def gelu(x):
    """PyTorch's exact GELU, in the order its ONNX export computes it."""
    return x * (1 + lax.erf(x / np.float32(math.sqrt(2)))) * np.float32(0.5)


def forward(params, ids):
    """ids [B, T] -> logits [B, T, V]."""
    tr = params["transformer"]
    t = ids.shape[1]
    x = tr["wte"]["weight"][ids] + tr["wpe"]["weight"][:t]
    for blk in tr["h"]:
        x = x + attention(layer_norm(x, blk["ln_1"]), blk["attn"])
        x = x + linear(gelu(linear(layer_norm(x, blk["ln_2"]), blk["mlp"]["c_fc"])),
                       blk["mlp"]["c_proj"])
    return linear(layer_norm(x, tr["ln_f"]), params["lm_head"])


def init(key):
    """nanoGPT's init: N(0, 0.02) weights and embeddings, N(0, 0.02/sqrt(2L))
    for the c_proj weights (the residual branches' last layers), zero biases,
    LayerNorm weight 1 and bias 0."""
    keys = iter(jax.random.split(key, 3 + 4 * LAYERS))

    def normal(shape, std=0.02):
        return std * jax.random.normal(next(keys), shape, jnp.float32)

    def lin(n_out, n_in, std=0.02):
        return {"weight": normal((n_out, n_in), std), "bias": jnp.zeros(n_out, jnp.float32)}

    def ln():
        return {"weight": jnp.ones(WIDTH, jnp.float32), "bias": jnp.zeros(WIDTH, jnp.float32)}

    proj_std = 0.02 / math.sqrt(2 * LAYERS)
    wte, wpe = normal((VOCAB, WIDTH)), normal((CONTEXT, WIDTH))
    blocks = [{"ln_1": ln(),
               "attn": {"c_attn": lin(3 * WIDTH, WIDTH), "c_proj": lin(WIDTH, WIDTH, proj_std)},
               "ln_2": ln(),
               "mlp": {"c_fc": lin(MLP, WIDTH), "c_proj": lin(WIDTH, MLP, proj_std)}}
              for _ in range(LAYERS)]
    return {"transformer": {"wte": {"weight": wte}, "wpe": {"weight": wpe}, "h": blocks,
                            "ln_f": ln()},
            "lm_head": {"weight": normal((VOCAB, WIDTH))}}


def parameter_count(params):
    return int(sum(v.size for v in jax.tree.leaves(params)))


def nll(logits, targets):
    """Per-position negative log-likelihood (natural log)."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]


# ----------------------------------------------------------------------- training


def learning_rate(step, steps):
    """Linear warm-up over WARMUP steps, then cosine from LR down to LR_MIN."""
    if step < WARMUP:
        return LR * (step + 1) / WARMUP
    frac = (step - WARMUP) / max(1, steps - WARMUP)
    return LR_MIN + 0.5 * (LR - LR_MIN) * (1 + math.cos(math.pi * frac))


def train(train_ids, steps, held_x, held_y):
    """AdamW (PyTorch's formula) with global-norm gradient clipping on the mean
    next-character cross-entropy of random windows.  Returns (params as float32
    numpy, loss curve, seconds).  The curve also records the mean loss on the
    held-out windows `held_x`/`held_y` (only reported, never used to choose
    anything)."""
    params = init(jax.random.key(SEED))
    b1, b2 = BETAS

    def loss_fn(p, xb, yb):
        return nll(forward(p, xb), yb).mean()

    @jax.jit
    def step(p, m, v, t, lr, xb, yb):
        loss, g = jax.value_and_grad(loss_fn)(p, xb, yb)
        norm = jnp.sqrt(sum(jnp.sum(g_ * g_) for g_ in jax.tree.leaves(g)))
        g = jax.tree.map(lambda g_: g_ * jnp.minimum(1.0, CLIP / (norm + 1e-6)), g)
        m = jax.tree.map(lambda m_, g_: b1 * m_ + (1 - b1) * g_, m, g)
        v = jax.tree.map(lambda v_, g_: b2 * v_ + (1 - b2) * g_ * g_, v, g)
        c1, c2 = 1 - b1 ** t, 1 - b2 ** t
        p = jax.tree.map(lambda p_, m_, v_: p_ * (1 - lr * WEIGHT_DECAY * (p_.ndim == 2))
                         - lr * (m_ / c1) / (jnp.sqrt(v_ / c2) + ADAM_EPS), p, m, v)
        return p, m, v, loss

    held_loss = jax.jit(loss_fn)
    held_x, held_y = jnp.asarray(held_x, jnp.int32), jnp.asarray(held_y, jnp.int32)
    m = jax.tree.map(jnp.zeros_like, params)
    v = jax.tree.map(jnp.zeros_like, params)
    rng = np.random.default_rng(SEED)
    offsets = np.arange(CONTEXT + 1)
    data = train_ids.astype(np.int32)
    curve, total, start = [], 0.0, time.perf_counter()
    for i in range(steps):
        starts = rng.integers(0, len(data) - CONTEXT, size=BATCH)
        w = data[starts[:, None] + offsets]
        params, m, v, loss = step(params, m, v, jnp.float32(i + 1),
                                  jnp.float32(learning_rate(i, steps)), w[:, :-1], w[:, 1:])
        total += float(loss)
        if (i + 1) % LOG_EVERY == 0 or i + 1 == steps:
            n = (i % LOG_EVERY) + 1
            held = float(held_loss(params, held_x, held_y))
            curve.append({"step": i + 1, "mean_train_loss": round(total / n, 4),
                          "heldout_loss": round(held, 4)})
            print(f"step {i + 1:5d}  lr {learning_rate(i, steps):.2e}  "
                  f"mean train loss {total / n:.4f}  held-out loss {held:.4f}"
                  f"  ({time.perf_counter() - start:.0f} s)", flush=True)
            total = 0.0
    params = jax.tree.map(lambda a: np.asarray(a, dtype=np.float32), params)
    return params, curve, time.perf_counter() - start


def predict(params, x):
    """Float logits [N, T, V] of id windows [N, T], one window at a time (as
    the graph runs them)."""
    f = jax.jit(forward)
    return np.concatenate([np.asarray(f(params, jnp.asarray(row[None], jnp.int32)))
                           for row in x]).astype(np.float32)


def score(logits, labels):
    """(top-1 accuracy, perplexity, per-position top-1) over every position."""
    logits = logits.astype(np.float64)
    logp = logits - logits.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    nll_ = -np.take_along_axis(logp, labels[..., None], axis=-1)[..., 0]
    hit = logits.argmax(-1) == labels
    return float(hit.mean()), float(np.exp(nll_.mean())), hit.mean(0)


# -------------------------------------------------------------------- ONNX export


def _node(op, name, inputs, n_out=1, **attrs):
    """A node named and with outputs named the way torch.onnx.export names them."""
    outs = [f"{name}_output_{i}" for i in range(n_out)]
    return helper.make_node(op, inputs, outs, name=name, **attrs)


def _constant(name, value):
    return helper.make_node("Constant", [], [f"{name}_output_0"], name=name,
                            value=numpy_helper.from_array(value, ""))


def export(params):
    """The graph torch.onnx.export (opset 17, TorchScript exporter, constant
    folding, static shapes) writes for nanoGPT's GPT in eval mode:

    * nn.Linear on a 3-D input is MatMul by the constant-folded transposed
      weight (``*.weight_t``, stored [in, out]) then ``Add(bias, ...)`` (bias
      first, as torch's ``aten::linear`` symbolic writes it);
    * ``wpe(arange(T))`` is folded into a [32, 64] constant (equal to
      ``transformer.wpe.weight`` since T is the block size);
    * ``c_attn(x).split(64, dim=2)`` is Split with the sizes as a Constant;
      ``view`` is Reshape by a Constant shape; ``transpose(1, 2)`` and, for k,
      the following ``transpose(-2, -1)`` (fused by torch's peephole pass into
      one Transpose with perm [0, 2, 3, 1]);
    * ``masked_fill(bias == 0, -inf)`` is ``Where(mask, -inf, scores)`` with the
      folded bool mask [1, 1, 32, 32] (true above the diagonal) as an
      initializer and -inf as a Constant;
    * scalars (1/sqrt(32), sqrt(2), 1, 0.5) are Constant nodes, F.gelu is
      Div -> Erf -> Add -> Mul -> Mul, LayerNorm is LayerNormalization."""
    tr = params["transformer"]
    inits, nodes = [], []

    def init_(name, value):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def lin(scope, p, x):
        w = init_(f"{scope[1:].replace('/', '.')}.weight_t", p["weight"].T)
        nodes.append(_node("MatMul", f"{scope}/MatMul", [x, w]))
        y = f"{scope}/MatMul_output_0"
        if "bias" in p:
            b = init_(f"{scope[1:].replace('/', '.')}.bias", p["bias"])
            nodes.append(_node("Add", f"{scope}/Add", [b, y]))
            y = f"{scope}/Add_output_0"
        return y

    def ln(scope, p, x):
        dotted = scope[1:].replace("/", ".")
        w, b = init_(f"{dotted}.weight", p["weight"]), init_(f"{dotted}.bias", p["bias"])
        nodes.append(_node("LayerNormalization", f"{scope}/LayerNormalization", [x, w, b],
                           axis=-1, epsilon=LN_EPS))
        return f"{scope}/LayerNormalization_output_0"

    wte = init_("transformer.wte.weight", tr["wte"]["weight"])
    nodes.append(_node("Gather", "/transformer/wte/Gather", [wte, "input_ids"]))
    wpe = init_("transformer.wpe.weight", tr["wpe"]["weight"][:CONTEXT])
    nodes.append(_node("Add", "/transformer/Add", ["/transformer/wte/Gather_output_0", wpe]))
    x = "/transformer/Add_output_0"
    dh = WIDTH // HEADS
    heads_shape = np.array([1, CONTEXT, HEADS, dh], dtype=np.int64)
    for i, blk in enumerate(tr["h"]):
        s = f"/transformer/h.{i}"
        a = f"{s}/attn"
        h = ln(f"{s}/ln_1", blk["ln_1"], x)
        qkv = lin(f"{a}/c_attn", blk["attn"]["c_attn"], h)
        nodes.append(_constant(f"{a}/Constant", np.array([WIDTH] * 3, dtype=np.int64)))
        nodes.append(_node("Split", f"{a}/Split", [qkv, f"{a}/Constant_output_0"], n_out=3,
                           axis=2))
        q, k, v = (f"{a}/Split_output_{j}" for j in range(3))
        # k.view(...).transpose(1, 2), then q and v; k's transpose(-2, -1) fused in later.
        nodes.append(_constant(f"{a}/Constant_1", heads_shape))
        nodes.append(_node("Reshape", f"{a}/Reshape", [k, f"{a}/Constant_1_output_0"]))
        nodes.append(_constant(f"{a}/Constant_2", heads_shape))
        nodes.append(_node("Reshape", f"{a}/Reshape_1", [q, f"{a}/Constant_2_output_0"]))
        nodes.append(_node("Transpose", f"{a}/Transpose", [f"{a}/Reshape_1_output_0"],
                           perm=[0, 2, 1, 3]))
        nodes.append(_constant(f"{a}/Constant_3", heads_shape))
        nodes.append(_node("Reshape", f"{a}/Reshape_2", [v, f"{a}/Constant_3_output_0"]))
        nodes.append(_node("Transpose", f"{a}/Transpose_1", [f"{a}/Reshape_2_output_0"],
                           perm=[0, 2, 1, 3]))
        nodes.append(_node("Transpose", f"{a}/Transpose_2", [f"{a}/Reshape_output_0"],
                           perm=[0, 2, 3, 1]))
        nodes.append(_node("MatMul", f"{a}/MatMul",
                           [f"{a}/Transpose_output_0", f"{a}/Transpose_2_output_0"]))
        nodes.append(_constant(f"{a}/Constant_4", np.array(1 / math.sqrt(dh), dtype=np.float32)))
        nodes.append(_node("Mul", f"{a}/Mul", [f"{a}/MatMul_output_0", f"{a}/Constant_4_output_0"]))
        mask = init_(f"{a}/Equal_output_0", causal_masked()[None, None])
        nodes.append(_constant(f"{a}/Constant_5", np.array(-np.inf, dtype=np.float32)))
        nodes.append(_node("Where", f"{a}/Where",
                           [mask, f"{a}/Constant_5_output_0", f"{a}/Mul_output_0"]))
        nodes.append(_node("Softmax", f"{a}/Softmax", [f"{a}/Where_output_0"], axis=-1))
        nodes.append(_node("MatMul", f"{a}/MatMul_1",
                           [f"{a}/Softmax_output_0", f"{a}/Transpose_1_output_0"]))
        nodes.append(_node("Transpose", f"{a}/Transpose_3", [f"{a}/MatMul_1_output_0"],
                           perm=[0, 2, 1, 3]))
        nodes.append(_constant(f"{a}/Constant_6",
                               np.array([1, CONTEXT, WIDTH], dtype=np.int64)))
        nodes.append(_node("Reshape", f"{a}/Reshape_3",
                           [f"{a}/Transpose_3_output_0", f"{a}/Constant_6_output_0"]))
        y = lin(f"{a}/c_proj", blk["attn"]["c_proj"], f"{a}/Reshape_3_output_0")
        nodes.append(_node("Add", f"{s}/Add", [x, y]))
        x = f"{s}/Add_output_0"

        m, g = f"{s}/mlp", f"{s}/mlp/gelu"
        h = lin(f"{m}/c_fc", blk["mlp"]["c_fc"], ln(f"{s}/ln_2", blk["ln_2"], x))
        nodes.append(_constant(f"{g}/Constant", np.array(math.sqrt(2), dtype=np.float32)))
        nodes.append(_node("Div", f"{g}/Div", [h, f"{g}/Constant_output_0"]))
        nodes.append(_node("Erf", f"{g}/Erf", [f"{g}/Div_output_0"]))
        nodes.append(_constant(f"{g}/Constant_1", np.array(1.0, dtype=np.float32)))
        nodes.append(_node("Add", f"{g}/Add", [f"{g}/Erf_output_0", f"{g}/Constant_1_output_0"]))
        nodes.append(_node("Mul", f"{g}/Mul", [h, f"{g}/Add_output_0"]))
        nodes.append(_constant(f"{g}/Constant_2", np.array(0.5, dtype=np.float32)))
        nodes.append(_node("Mul", f"{g}/Mul_1", [f"{g}/Mul_output_0", f"{g}/Constant_2_output_0"]))
        y = lin(f"{m}/c_proj", blk["mlp"]["c_proj"], f"{g}/Mul_1_output_0")
        nodes.append(_node("Add", f"{s}/Add_1", [x, y]))
        x = f"{s}/Add_1_output_0"

    h = ln("/transformer/ln_f", tr["ln_f"], x)
    lin("/lm_head", params["lm_head"], h)
    nodes[-1].output[0] = "logits"

    inp = helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, CONTEXT])
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, CONTEXT, VOCAB])
    model = helper.make_model(
        helper.make_graph(nodes, "tiny_gpt", [inp], [out], inits),
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="zkinfer/models/train_tiny_gpt.py",
        producer_version="1",
    )
    model.ir_version = IR_VERSION
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.checker.check_model(model, full_check=True)
    return model


# ------------------------------------------------------------ ONNX verification


def eval_onnx_numpy(model, x):
    """Tiny float32 interpreter for the op types above, one window at a time."""
    env0 = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    rows = []
    for sample in x:
        env = dict(env0, input_ids=np.asarray(sample, dtype=np.int64).reshape(1, CONTEXT))
        for node in model.graph.node:
            a = [env[i] for i in node.input]
            at = {k.name: helper.get_attribute_value(k) for k in node.attribute}
            op = node.op_type
            if op == "Constant":
                r = [numpy_helper.to_array(at["value"])]
            elif op == "Gather":
                r = [np.take(a[0], a[1], axis=at.get("axis", 0))]
            elif op == "Add":
                r = [a[0] + a[1]]
            elif op == "Mul":
                r = [a[0] * a[1]]
            elif op == "Div":
                r = [a[0] / a[1]]
            elif op == "MatMul":
                r = [np.matmul(a[0], a[1])]
            elif op == "LayerNormalization":
                assert at["axis"] == -1
                mean = a[0].mean(-1, keepdims=True)
                var = ((a[0] - mean) ** 2).mean(-1, keepdims=True)
                r = [(a[0] - mean) / np.sqrt(var + np.float32(at["epsilon"])) * a[1] + a[2]]
            elif op == "Split":
                bounds = np.cumsum(a[1])[:-1]
                r = np.split(a[0], bounds, axis=at["axis"])
            elif op == "Reshape":
                r = [a[0].reshape(a[1])]
            elif op == "Transpose":
                r = [a[0].transpose(at["perm"])]
            elif op == "Where":
                r = [np.where(a[0], a[1], a[2])]
            elif op == "Softmax":
                assert at["axis"] == -1
                e = np.exp(a[0] - a[0].max(-1, keepdims=True))
                r = [e / e.sum(-1, keepdims=True)]
            elif op == "Erf":
                r = [erf(a[0])]
            else:
                raise ValueError(f"unsupported op {op}")
            for name, value in zip(node.output, r):
                value = np.asarray(value)
                env[name] = value.astype(np.float32) if value.dtype.kind == "f" else value
        rows.append(env["logits"][0])
    return np.stack(rows)


def eval_onnx_runtime(path, x):
    """Logits from onnxruntime, or None if it is not installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return np.concatenate([
        sess.run(["logits"], {"input_ids": np.asarray(s, np.int64).reshape(1, CONTEXT)})[0]
        for s in x])


def describe(model):
    """One line per node: name, op, attributes, inputs (with shapes) -> outputs."""
    g = model.graph
    shapes = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        shapes[vi.name] = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    for t in g.initializer:
        shapes[t.name] = list(t.dims)
    fmt = lambda n: f"{n} {shapes.get(n, '?')}"  # noqa: E731
    lines = []
    for n in g.node:
        if n.op_type == "Constant":
            v = numpy_helper.to_array(n.attribute[0].t)
            lines.append(f"  {n.name} (Constant {v.dtype} {v.tolist()})")
            continue
        attrs = ", ".join(f"{a.name}={helper.get_attribute_value(a)}" for a in n.attribute)
        lines.append(f"  {n.name} ({n.op_type}{': ' + attrs if attrs else ''})\n"
                     f"      {', '.join(fmt(i) for i in n.input)} -> "
                     f"{', '.join(fmt(o) for o in n.output)}")
    return "\n".join(lines)


# --------------------------------------------------------------------- file output


def write_json(path, obj):
    path.write_text(json.dumps(obj, indent=1) + "\n")


def write_ids(path, x, labels=None):
    """{"input_data": [[ids], ...]} (+ "labels"), one window per line."""
    rows = lambda a: ",\n  ".join(json.dumps([int(v) for v in r]) for r in a)  # noqa: E731
    text = '{"input_data": [\n  ' + rows(x) + "\n]"
    if labels is not None:
        text += ',\n"labels": [\n  ' + rows(labels) + "\n]"
    path.write_text(text + "}\n")


# -------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=STEPS,
                    help="training steps (default %(default)s; fewer only for a smoke test)")
    ap.add_argument("--out", type=Path, default=OUT_DIR)
    args = ap.parse_args()
    out_dir = args.out
    out_dir.mkdir(parents=True, exist_ok=True)

    text, digest = load_text()
    ids = encode(text)
    train_ids, held_ids = split(ids)
    print(f"text: {len(text)} chars from {len(topics)} topics (Python "
          f"{platform.python_version()}), train {len(train_ids)}, held-out {len(held_ids)}, "
          f"unknown {int((ids == UNKNOWN).sum())}, V = {VOCAB}")

    test = windows(held_ids, TEST_WINDOWS)
    test_x, test_y = test[:, :-1], test[:, 1:]
    calib_x = windows(train_ids, CALIBRATION_WINDOWS)[:, :-1]
    # All non-overlapping windows of the held-out text, for a steadier figure.
    n_all = (len(held_ids) - 1) // CONTEXT
    all_x = held_ids[:n_all * CONTEXT].reshape(n_all, CONTEXT)
    all_y = held_ids[1:n_all * CONTEXT + 1].reshape(n_all, CONTEXT)

    params, curve, seconds = train(train_ids, args.steps, all_x, all_y)
    n_params = parameter_count(params)
    print(f"trained {n_params} parameters in {seconds:.0f} s")

    ref = predict(params, test_x)
    acc, ppl, by_pos = score(ref, test_y)
    all_acc, all_ppl, _ = score(predict(params, all_x), all_y)
    counts = np.bincount(train_ids, minlength=VOCAB)
    top = int(counts.argmax())
    unigram_acc = float((test_y == top).mean())  # always the most frequent train char
    # Perplexity of the add-one smoothed train character frequencies.
    unigram_ppl = float(np.exp(-np.log((counts + 1) / (counts.sum() + VOCAB))[test_y].mean()))
    print(f"held-out test.json: top-1 {acc:.4f}, perplexity {ppl:.3f} "
          f"(unigram: top-1 {unigram_acc:.4f} always {CHARS[top]!r}, "
          f"perplexity {unigram_ppl:.2f}); "
          f"all {n_all} held-out windows: top-1 {all_acc:.4f}, perplexity {all_ppl:.3f}")

    model = export(params)
    path = out_dir / "model.onnx"
    onnx.save_model(model, str(path))
    saved = onnx.load(str(path))
    got = eval_onnx_numpy(saved, test_x)
    print(f"numpy interpreter max |diff| = {np.abs(got - ref).max():.2e}")
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4)
    ort_out = eval_onnx_runtime(path, test_x)
    if ort_out is None:
        print("onnxruntime not installed, skipped runtime check")
    else:
        ort_acc, ort_ppl, _ = score(ort_out, test_y)
        print(f"onnxruntime max |diff| = {np.abs(ort_out - ref).max():.2e}, "
              f"top-1 {ort_acc:.4f}, perplexity {ort_ppl:.3f}")
        np.testing.assert_allclose(ort_out, ref, rtol=0, atol=1e-4)
        assert ort_acc == acc
    print(describe(saved))
    print("op types:", " ".join(n.op_type for n in saved.graph.node if n.op_type != "Constant"))
    prompt = test_x[0]
    print(f"input.json: {decode(prompt)!r} -> greedy next chars "
          f"{decode(ref[0].argmax(-1))!r}")
    calib_logits = predict(params, calib_x)
    print(f"logits range on calibration.json: [{calib_logits.min():.2f}, {calib_logits.max():.2f}]")

    write_ids(out_dir / "calibration.json", calib_x)
    write_ids(out_dir / "test.json", test_x, test_y)
    write_ids(out_dir / "input.json", test_x[:1])
    write_json(out_dir / "vocab.json", {"chars": CHARS + [UNKNOWN_CHAR], "unknown": UNKNOWN,
                                        "context": CONTEXT})
    write_json(out_dir / "metrics.json", {
        "float_test_top1": round(acc, 6),
        "float_test_perplexity": round(ppl, 4),
        "test_positions": int(test_y.size),
        "float_test_top1_by_position": [round(float(a), 4) for a in by_pos],
        "float_heldout_all_windows_top1": round(all_acc, 6),
        "float_heldout_all_windows_perplexity": round(all_ppl, 4),
        "heldout_all_windows": int(n_all),
        "unigram_test_top1": round(unigram_acc, 6),
        "unigram_test_perplexity": round(unigram_ppl, 4),
        "unigram_top_char": CHARS[top],
        "train_loss_curve": curve,
        "parameters": n_params,
        "vocab_size": VOCAB,
        "context": CONTEXT,
        "width": WIDTH,
        "heads": HEADS,
        "layers": LAYERS,
        "mlp_width": MLP,
        "steps": args.steps,
        "batch_windows": BATCH,
        "learning_rate": LR,
        "learning_rate_min": LR_MIN,
        "warmup_steps": WARMUP,
        "adam_betas": list(BETAS),
        "grad_clip_norm": CLIP,
        "weight_decay": WEIGHT_DECAY,
        "seed": SEED,
        "text": "pydoc_data.topics, sorted keys, concatenated",
        "text_chars": len(text),
        "text_sha256": digest,
        "train_chars": int(len(train_ids)),
        "heldout_chars": int(len(held_ids)),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "numpy": np.__version__,
    })
    print(f"wrote {sorted(p.name for p in out_dir.iterdir())} to {out_dir}")


if __name__ == "__main__":
    main()
