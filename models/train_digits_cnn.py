"""Train two small convolutional nets on scikit-learn's 8x8 digits with JAX and
export them to ONNX by hand.

Both models take the digit image as ``[1, 1, 8, 8]`` (NCHW, float32, pixels/16)
and use the same data split as ``train_digits_mlp.py`` (imported from it).

``--model cnn``  writes ``models/digits-cnn/``::

    input [1,1,8,8] -> Conv(4, 3x3, pad 0) -> Relu -> Conv(8, 3x3, pad 0) -> Relu
                    -> Flatten -> Gemm(10) -> logits [1,10]

``--model resnet``  writes ``models/digits-resnet/``::

    input [1,1,8,8] -> Conv(8, 3x3, pad 1) -> BatchNormalization -> Relu -> h
    h + Sigmoid(Conv(8, 3x3, pad 1)(h)) -> Add -> AveragePool(2, stride 2)
                    -> Flatten -> Gemm(10) -> logits [1,10]

  BatchNormalization is trained in training mode (batch statistics, PyTorch's
  running-average update with momentum 0.1 and the unbiased running variance);
  the exported node carries the running statistics, as ``model.eval()`` uses.

``--model all`` (the default) does both.  Each directory gets:

* ``model.onnx``        the graph laid out the way ``torch.onnx.export`` writes
                        the equivalent ``nn.Module`` at opset 17 (node names like
                        ``/conv1/Conv``, weights OIHW, Gemm with ``transB=1``).
* ``calibration.json``  200 train samples (flattened 64 floats) + labels.
* ``test.json``         the whole test split (360 samples) + labels.
* ``input.json``        the first test sample, no label.
* ``metrics.json``      float accuracies and training settings.

Training is plain minibatch Adam with an L2 penalty (torch's ``Adam(...,
weight_decay=...)``) written out in JAX (no optax), float32, with a
fixed seed for the initial weights (``jax.random``) and for the minibatch
order (numpy ``default_rng``).  Every saved graph is checked against the JAX
eval-mode forward pass on all test samples, both with a small numpy
interpreter and (if installed) with onnxruntime.  On a given machine the
script is deterministic: running it again rewrites byte-identical files.

Usage (from the repository root):
    python3 -m venv models/.venv
    models/.venv/bin/pip install -r models/requirements.txt -r models/requirements-cnn.txt
    models/.venv/bin/python models/train_digits_cnn.py [--model cnn|resnet|all]
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
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
from jax import lax  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

# Same split, sample files and JSON layout as the MLP.
from train_digits_mlp import eval_onnx_runtime, load_data, write_json, write_samples  # noqa: E402

SEED = 0
CALIBRATION_SAMPLES = 200
OPSET = 17
IR_VERSION = 8
BN_EPS = 1e-5
BN_MOMENTUM = 0.1  # PyTorch convention; exported as ONNX momentum = 1 - 0.1

MODELS_DIR = Path(__file__).resolve().parent

# Per-model training settings.  Epoch counts are fixed (no early stopping on
# the test split).  weight_decay is an L2 penalty added to the gradient (torch
# Adam's ``weight_decay``; same strength as the MLP's ``alpha``).  It keeps the
# activation ranges small for int8 quantization: without it the Sigmoid input
# of the resnet spans about +-57 on the calibration set, with it about +-11.
CONFIG = {
    "cnn": dict(out_dir="digits-cnn", epochs=100, batch_size=32, lr=3e-3, weight_decay=1e-3),
    "resnet": dict(out_dir="digits-resnet", epochs=100, batch_size=32, lr=3e-3,
                   weight_decay=1e-3),
}

HIGHEST = lax.Precision.HIGHEST


# ------------------------------------------------------------------------ layers


def conv2d(x, w, b, pad):
    """NCHW x OIHW cross-correlation, stride 1: the semantics of ONNX Conv."""
    y = lax.conv_general_dilated(x, w, window_strides=(1, 1),
                                 padding=[(pad, pad), (pad, pad)],
                                 dimension_numbers=("NCHW", "OIHW", "NCHW"),
                                 precision=HIGHEST)
    return y + b[None, :, None, None]


def linear(x, w, b):
    """Gemm with transB=1: x @ w.T + b, w stored [out, in]."""
    return jnp.matmul(x, w.T, precision=HIGHEST) + b


def batch_norm(x, p, state, train):
    """BatchNormalization over (N, H, W).  Returns (y, new_state)."""
    if train:
        mean = x.mean(axis=(0, 2, 3))
        var = x.var(axis=(0, 2, 3))  # biased, used for normalising
        n = x.shape[0] * x.shape[2] * x.shape[3]
        state = {
            "running_mean": (1 - BN_MOMENTUM) * state["running_mean"] + BN_MOMENTUM * mean,
            "running_var": (1 - BN_MOMENTUM) * state["running_var"]
            + BN_MOMENTUM * var * (n / (n - 1)),
        }
    else:
        mean, var = state["running_mean"], state["running_var"]
    inv = p["weight"] / jnp.sqrt(var + BN_EPS)
    y = (x - mean[None, :, None, None]) * inv[None, :, None, None] + p["bias"][None, :, None, None]
    return y, state


def avg_pool_2x2(x):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))


# ------------------------------------------------------------------------ models


def _uniform(key, shape, fan_in):
    """PyTorch's default Conv2d/Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    for both weight (kaiming_uniform with a=sqrt(5)) and bias."""
    bound = 1.0 / np.sqrt(fan_in)
    return jax.random.uniform(key, shape, jnp.float32, -bound, bound)


def _conv_params(key, c_out, c_in, k=3):
    kw, kb = jax.random.split(key)
    fan_in = c_in * k * k
    return {"weight": _uniform(kw, (c_out, c_in, k, k), fan_in),
            "bias": _uniform(kb, (c_out,), fan_in)}


def _linear_params(key, n_out, n_in):
    kw, kb = jax.random.split(key)
    return {"weight": _uniform(kw, (n_out, n_in), n_in),
            "bias": _uniform(kb, (n_out,), n_in)}


def init_cnn(key):
    k1, k2, k3 = jax.random.split(key, 3)
    params = {"conv1": _conv_params(k1, 4, 1),
              "conv2": _conv_params(k2, 8, 4),
              "fc": _linear_params(k3, 10, 8 * 4 * 4)}
    return params, {}


def forward_cnn(params, state, x, train):
    del train
    h = jax.nn.relu(conv2d(x, params["conv1"]["weight"], params["conv1"]["bias"], 0))
    h = jax.nn.relu(conv2d(h, params["conv2"]["weight"], params["conv2"]["bias"], 0))
    h = h.reshape(h.shape[0], -1)
    return linear(h, params["fc"]["weight"], params["fc"]["bias"]), state


def init_resnet(key):
    k1, k2, k3 = jax.random.split(key, 3)
    params = {"conv1": _conv_params(k1, 8, 1),
              "bn1": {"weight": jnp.ones(8, jnp.float32), "bias": jnp.zeros(8, jnp.float32)},
              "block": {"conv": _conv_params(k2, 8, 8)},
              "fc": _linear_params(k3, 10, 8 * 4 * 4)}
    state = {"bn1": {"running_mean": jnp.zeros(8, jnp.float32),
                     "running_var": jnp.ones(8, jnp.float32)}}
    return params, state


def forward_resnet(params, state, x, train):
    h = conv2d(x, params["conv1"]["weight"], params["conv1"]["bias"], 1)
    h, bn_state = batch_norm(h, params["bn1"], state["bn1"], train)
    h = jax.nn.relu(h)
    branch = conv2d(h, params["block"]["conv"]["weight"], params["block"]["conv"]["bias"], 1)
    h = h + jax.nn.sigmoid(branch)
    h = avg_pool_2x2(h)
    h = h.reshape(h.shape[0], -1)
    return linear(h, params["fc"]["weight"], params["fc"]["bias"]), {"bn1": bn_state}


ARCH = {"cnn": (init_cnn, forward_cnn), "resnet": (init_resnet, forward_resnet)}


# ---------------------------------------------------------------------- training


def train(name, x_train, y_train):
    """Minibatch Adam (PyTorch's formula, betas 0.9/0.999, eps 1e-8, L2
    weight decay added to the gradient) on the mean cross-entropy.  Returns
    (params, state) as float32 numpy trees.

    In training mode BatchNormalization cancels the bias of the Conv before
    it, so ``conv1.bias`` of the resnet gets only the weight-decay gradient
    and ends near zero (|b| < 2e-5); the running mean absorbs it."""
    cfg = CONFIG[name]
    init, forward = ARCH[name]
    params, state = init(jax.random.key(SEED))
    b1, b2, eps, lr, wd = 0.9, 0.999, 1e-8, cfg["lr"], cfg["weight_decay"]

    def loss_fn(p, s, xb, yb):
        logits, s = forward(p, s, xb, True)
        logp = jax.nn.log_softmax(logits)
        return -jnp.take_along_axis(logp, yb[:, None], axis=1).mean(), s

    @jax.jit
    def step(p, s, m, v, t, xb, yb):
        (loss, s), g = jax.value_and_grad(loss_fn, has_aux=True)(p, s, xb, yb)
        g = jax.tree.map(lambda g_, p_: g_ + wd * p_, g, p)  # L2 penalty, as torch Adam
        m = jax.tree.map(lambda m_, g_: b1 * m_ + (1 - b1) * g_, m, g)
        v = jax.tree.map(lambda v_, g_: b2 * v_ + (1 - b2) * g_ * g_, v, g)
        c1, c2 = 1 - b1 ** t, 1 - b2 ** t
        p = jax.tree.map(lambda p_, m_, v_: p_ - lr * (m_ / c1) / (jnp.sqrt(v_ / c2) + eps),
                         p, m, v)
        return p, s, m, v, loss

    m = jax.tree.map(jnp.zeros_like, params)
    v = jax.tree.map(jnp.zeros_like, params)
    rng = np.random.default_rng(SEED)
    xs, ys = jnp.asarray(x_train), jnp.asarray(y_train, dtype=jnp.int32)
    n, bs, t = len(x_train), cfg["batch_size"], 0
    for epoch in range(cfg["epochs"]):
        order = rng.permutation(n)
        total = 0.0
        for i in range(0, n, bs):
            idx = order[i:i + bs]
            t += 1
            params, state, m, v, loss = step(params, state, m, v, jnp.float32(t),
                                             xs[idx], ys[idx])
            total += float(loss) * len(idx)
        if epoch % 10 == 9 or epoch == cfg["epochs"] - 1:
            print(f"[{name}] epoch {epoch + 1:3d}  train loss {total / n:.4f}")
    to_np = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731
    return jax.tree.map(to_np, params), jax.tree.map(to_np, state)


def predict(name, params, state, x):
    """Eval-mode logits (BatchNormalization uses the running statistics)."""
    forward = ARCH[name][1]
    logits, _ = jax.jit(lambda p, s, xb: forward(p, s, xb, False))(params, state, jnp.asarray(x))
    return np.asarray(logits, dtype=np.float32)


# ------------------------------------------------------------------- ONNX export


def _conv_node(name, x, w, b, out, pad):
    """Conv with every attribute torch.onnx.export writes at opset 17."""
    return helper.make_node("Conv", [x, w, b], [out], name=name,
                            dilations=[1, 1], group=1, kernel_shape=[3, 3],
                            pads=[pad, pad, pad, pad], strides=[1, 1])


def _gemm_node(name, x, w, b, out):
    return helper.make_node("Gemm", [x, w, b], [out], name=name,
                            alpha=1.0, beta=1.0, transB=1)


def _finish(name, nodes, inits):
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 8, 8])
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])
    model = helper.make_model(
        helper.make_graph(nodes, name, [inp], [out], inits),
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="zkinfer/models/train_digits_cnn.py",
        producer_version="1",
    )
    model.ir_version = IR_VERSION
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.checker.check_model(model, full_check=True)
    return model


def _inits(params, state):
    """Initializers named like a PyTorch state_dict ("conv1.weight", ...)."""
    flat = {}

    def walk(tree, prefix):
        for k, v in tree.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                flat[f"{prefix}{k}"] = np.ascontiguousarray(v, dtype=np.float32)

    walk(params, "")
    walk(state, "")
    return flat


def export_cnn(params, state):
    t = _inits(params, state)
    nodes = [
        _conv_node("/conv1/Conv", "input", "conv1.weight", "conv1.bias",
                   "/conv1/Conv_output_0", 0),
        helper.make_node("Relu", ["/conv1/Conv_output_0"], ["/relu1/Relu_output_0"],
                         name="/relu1/Relu"),
        _conv_node("/conv2/Conv", "/relu1/Relu_output_0", "conv2.weight", "conv2.bias",
                   "/conv2/Conv_output_0", 0),
        helper.make_node("Relu", ["/conv2/Conv_output_0"], ["/relu2/Relu_output_0"],
                         name="/relu2/Relu"),
        helper.make_node("Flatten", ["/relu2/Relu_output_0"], ["/flatten/Flatten_output_0"],
                         name="/flatten/Flatten", axis=1),
        _gemm_node("/fc/Gemm", "/flatten/Flatten_output_0", "fc.weight", "fc.bias", "logits"),
    ]
    order = ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "fc.weight", "fc.bias"]
    return _finish("digits_cnn", nodes, [numpy_helper.from_array(t[k], k) for k in order])


def export_resnet(params, state):
    t = _inits(params, state)
    nodes = [
        _conv_node("/conv1/Conv", "input", "conv1.weight", "conv1.bias",
                   "/conv1/Conv_output_0", 1),
        helper.make_node("BatchNormalization",
                         ["/conv1/Conv_output_0", "bn1.weight", "bn1.bias",
                          "bn1.running_mean", "bn1.running_var"],
                         ["/bn1/BatchNormalization_output_0"],
                         name="/bn1/BatchNormalization",
                         epsilon=BN_EPS, momentum=1.0 - BN_MOMENTUM),
        helper.make_node("Relu", ["/bn1/BatchNormalization_output_0"],
                         ["/relu1/Relu_output_0"], name="/relu1/Relu"),
        _conv_node("/block/conv/Conv", "/relu1/Relu_output_0", "block.conv.weight",
                   "block.conv.bias", "/block/conv/Conv_output_0", 1),
        helper.make_node("Sigmoid", ["/block/conv/Conv_output_0"],
                         ["/block/act/Sigmoid_output_0"], name="/block/act/Sigmoid"),
        helper.make_node("Add", ["/relu1/Relu_output_0", "/block/act/Sigmoid_output_0"],
                         ["/block/Add_output_0"], name="/block/Add"),
        helper.make_node("AveragePool", ["/block/Add_output_0"],
                         ["/pool/AveragePool_output_0"], name="/pool/AveragePool",
                         ceil_mode=0, count_include_pad=0, kernel_shape=[2, 2],
                         pads=[0, 0, 0, 0], strides=[2, 2]),
        helper.make_node("Flatten", ["/pool/AveragePool_output_0"],
                         ["/flatten/Flatten_output_0"], name="/flatten/Flatten", axis=1),
        _gemm_node("/fc/Gemm", "/flatten/Flatten_output_0", "fc.weight", "fc.bias", "logits"),
    ]
    order = ["conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias", "bn1.running_mean",
             "bn1.running_var", "block.conv.weight", "block.conv.bias", "fc.weight", "fc.bias"]
    return _finish("digits_resnet", nodes, [numpy_helper.from_array(t[k], k) for k in order])


EXPORT = {"cnn": export_cnn, "resnet": export_resnet}


# ------------------------------------------------------------- ONNX verification


def _np_conv(x, w, b, pads, strides):
    """ONNX Conv (group 1, no dilation) by im2col, float32."""
    top, left, bottom, right = pads
    x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    sh, sw = strides
    oh, ow = (h - kh) // sh + 1, (wd - kw) // sw + 1
    cols = np.empty((n, c, kh, kw, oh, ow), dtype=np.float32)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = x[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw]
    y = np.einsum("ockl,nckluv->nouv", w, cols)
    return y + b[None, :, None, None]


def eval_onnx_numpy(model, x):
    """Tiny interpreter for the op types used above (batch of 1 per sample)."""
    env0 = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    rows = []
    for sample in x:
        env = dict(env0, input=sample.reshape(1, 1, 8, 8))
        for node in model.graph.node:
            a = [env[i] for i in node.input]
            at = {k.name: helper.get_attribute_value(k) for k in node.attribute}
            op = node.op_type
            if op == "Conv":
                r = _np_conv(a[0], a[1], a[2], at["pads"], at["strides"])
            elif op == "BatchNormalization":
                scale, bias, mean, var = (v[None, :, None, None] for v in a[1:])
                r = (a[0] - mean) / np.sqrt(var + at["epsilon"]) * scale + bias
            elif op == "Relu":
                r = np.maximum(a[0], 0.0)
            elif op == "Sigmoid":
                r = 1.0 / (1.0 + np.exp(-a[0]))
            elif op == "Add":
                r = a[0] + a[1]
            elif op == "AveragePool":
                assert at["kernel_shape"] == at["strides"] == [2, 2] and not any(at["pads"])
                n, c, h, w = a[0].shape
                r = a[0].reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))
            elif op == "Flatten":
                r = a[0].reshape(int(np.prod(a[0].shape[:at["axis"]])), -1)
            elif op == "Gemm":
                assert at.get("transB", 0) == 1 and not at.get("transA", 0)
                r = at["alpha"] * (a[0] @ a[1].T) + at["beta"] * a[2]
            else:
                raise ValueError(f"unsupported op {op}")
            env[node.output[0]] = np.asarray(r, dtype=np.float32)
        rows.append(env["logits"][0])
    return np.stack(rows)


def describe(model):
    """One line per node: name, op, attributes, inputs (with shapes) -> output."""
    g = model.graph
    shapes = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        shapes[vi.name] = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    for t in g.initializer:
        shapes[t.name] = list(t.dims)
    fmt = lambda n: f"{n} {shapes.get(n, '?')}"  # noqa: E731
    lines = []
    for n in g.node:
        attrs = ", ".join(f"{a.name}={helper.get_attribute_value(a)}" for a in n.attribute)
        lines.append(f"  {n.name} ({n.op_type}{': ' + attrs if attrs else ''})\n"
                     f"      {', '.join(fmt(i) for i in n.input)} -> {fmt(n.output[0])}")
    return "\n".join(lines)


# -------------------------------------------------------------------------- main


def run(name, x_train, x_test, y_train, y_test):
    cfg = CONFIG[name]
    out_dir = MODELS_DIR / cfg["out_dir"]
    out_dir.mkdir(parents=True, exist_ok=True)
    img_train, img_test = x_train.reshape(-1, 1, 8, 8), x_test.reshape(-1, 1, 8, 8)

    params, state = train(name, img_train, y_train)
    ref = predict(name, params, state, img_test)
    train_acc = float((predict(name, params, state, img_train).argmax(1) == y_train).mean())
    test_acc = float((ref.argmax(1) == y_test).mean())
    print(f"[{name}] train_acc={train_acc:.4f} test_acc={test_acc:.4f} "
          f"({int(round(test_acc * len(y_test)))}/{len(y_test)})")

    model = EXPORT[name](params, state)
    path = out_dir / "model.onnx"
    onnx.save_model(model, str(path))
    saved = onnx.load(str(path))
    got = eval_onnx_numpy(saved, x_test)
    print(f"[{name}] numpy interpreter max |diff| = {np.abs(got - ref).max():.2e}")
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4)
    ort_out = eval_onnx_runtime(path, x_test, (1, 1, 8, 8))
    if ort_out is None:
        print(f"[{name}] onnxruntime not installed, skipped runtime check")
    else:
        ort_acc = float((ort_out.argmax(1) == y_test).mean())
        print(f"[{name}] onnxruntime max |diff| = {np.abs(ort_out - ref).max():.2e}, "
              f"test accuracy {ort_acc:.4f}")
        np.testing.assert_allclose(ort_out, ref, rtol=0, atol=1e-4)
        assert ort_acc == test_acc
    print(describe(saved))
    print(f"[{name}] logits of input.json: {np.array2string(ref[0], precision=4)} "
          f"(argmax {int(ref[0].argmax())}, label {int(y_test[0])})")

    write_samples(out_dir / "calibration.json",
                  x_train[:CALIBRATION_SAMPLES], y_train[:CALIBRATION_SAMPLES])
    write_samples(out_dir / "test.json", x_test, y_test)
    write_samples(out_dir / "input.json", x_test[:1])
    write_json(out_dir / "metrics.json", {
        "float_test_accuracy": round(test_acc, 6),
        "train_accuracy": round(train_acc, 6),
        "test_samples": int(len(x_test)),
        "epochs": cfg["epochs"],
        "batch_size": cfg["batch_size"],
        "learning_rate": cfg["lr"],
        "weight_decay": cfg["weight_decay"],
        "parameters": int(sum(v.size for v in jax.tree.leaves(params))),
        "seed": SEED,
    })
    print(f"[{name}] wrote {sorted(p.name for p in out_dir.iterdir())} to {out_dir}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=["cnn", "resnet", "all"], default="all")
    args = ap.parse_args()
    x_train, x_test, y_train, y_test = load_data()
    for name in (["cnn", "resnet"] if args.model == "all" else [args.model]):
        run(name, x_train, x_test, y_train, y_test)


if __name__ == "__main__":
    main()
