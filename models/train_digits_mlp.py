"""Train a small MLP on scikit-learn's 8x8 digits and export it to ONNX by hand.

The model is 64 -> 32 -> ReLU -> 10, trained with sklearn's MLPClassifier on
``load_digits`` (bundled with scikit-learn, no download), pixels scaled to [0, 1].

Outputs, in ``models/digits-mlp/``:

* ``model.onnx``         Flatten -> Gemm -> Relu -> Gemm, laid out the way
                         ``torch.onnx.export`` writes an ``nn.Sequential`` MLP
                         (weights stored [out, in], ``transB=1``).
* ``model-matmul.onnx``  the same weights as Flatten -> MatMul -> Add -> Relu
                         -> MatMul -> Add (weights stored [in, out]).
* ``calibration.json``   200 train samples, EZKL ``input.json`` layout + labels.
* ``test.json``          the whole test split (360 samples) + labels.
* ``input.json``         the first test sample, no label.
* ``metrics.json``       float accuracies and training settings.

Both ONNX graphs are checked against a numpy forward pass of sklearn's
coefficients (and against ``predict_proba``); if onnxruntime is importable,
the .onnx files are also run with it.  The script is deterministic: running
it again rewrites byte-identical files.

Usage (from the repository root):
    python3 -m venv models/.venv
    models/.venv/bin/pip install -r models/requirements.txt
    models/.venv/bin/python models/train_digits_mlp.py
"""

import os

# Single-threaded BLAS so the floating-point summation order, and hence the
# trained weights, do not depend on the machine's core count.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402

SEED = 0
HIDDEN = 32
ALPHA = 1e-3  # L2 penalty
MAX_ITER = 1000  # adam converges (tol=1e-4) at ~460 epochs with these settings
CALIBRATION_SAMPLES = 200
OPSET = 17
IR_VERSION = 8

OUT_DIR = Path(__file__).resolve().parent / "digits-mlp"


# --------------------------------------------------------------------------- data


def load_data():
    """Digits scaled to [0, 1] (values are k/16, exact in float32), split 80/20."""
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    return train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)


# ------------------------------------------------------------------------ training


def train(x_train, y_train):
    clf = MLPClassifier(
        hidden_layer_sizes=(HIDDEN,),
        activation="relu",
        solver="adam",
        alpha=ALPHA,
        max_iter=MAX_ITER,
        random_state=SEED,
    )
    clf.fit(x_train, y_train)
    if clf.n_iter_ >= MAX_ITER:
        raise RuntimeError("MLP did not converge; raise MAX_ITER")
    return clf


def weights(clf):
    """float32 (W1 [64,32], b1 [32], W2 [32,10], b2 [10]), sklearn's [in, out] layout."""
    w1, w2 = (np.asarray(w, dtype=np.float32) for w in clf.coefs_)
    b1, b2 = (np.asarray(b, dtype=np.float32) for b in clf.intercepts_)
    return w1, b1, w2, b2


def numpy_logits(x, w1, b1, w2, b2):
    """Reference forward pass: relu(x @ W1 + b1) @ W2 + b2."""
    return np.maximum(x @ w1 + b1, 0.0) @ w2 + b2


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# ----------------------------------------------------------------------- ONNX export


def _io(n_in, n_out):
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, n_in])
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, n_out])
    return inp, out


def _finish(graph):
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="zkinfer/models/train_digits_mlp.py",
        producer_version="1",
    )
    model.ir_version = IR_VERSION
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.checker.check_model(model, full_check=True)
    return model


def export_gemm(w1, b1, w2, b2):
    """PyTorch-style export: Gemm with weights stored [out, in] and transB=1."""
    n_in, n_out = w1.shape[0], w2.shape[1]
    inits = [
        numpy_helper.from_array(np.ascontiguousarray(w1.T), "fc1.weight"),
        numpy_helper.from_array(b1, "fc1.bias"),
        numpy_helper.from_array(np.ascontiguousarray(w2.T), "fc2.weight"),
        numpy_helper.from_array(b2, "fc2.bias"),
    ]
    gemm = dict(alpha=1.0, beta=1.0, transB=1)
    nodes = [
        helper.make_node("Flatten", ["input"], ["/flatten/Flatten_output_0"],
                         name="/flatten/Flatten", axis=1),
        helper.make_node("Gemm", ["/flatten/Flatten_output_0", "fc1.weight", "fc1.bias"],
                         ["/fc1/Gemm_output_0"], name="/fc1/Gemm", **gemm),
        helper.make_node("Relu", ["/fc1/Gemm_output_0"], ["/relu/Relu_output_0"],
                         name="/relu/Relu"),
        helper.make_node("Gemm", ["/relu/Relu_output_0", "fc2.weight", "fc2.bias"],
                         ["logits"], name="/fc2/Gemm", **gemm),
    ]
    inp, out = _io(n_in, n_out)
    return _finish(helper.make_graph(nodes, "digits_mlp", [inp], [out], inits))


def export_matmul(w1, b1, w2, b2):
    """Same weights as MatMul (weights stored [in, out]) followed by Add (bias)."""
    n_in, n_out = w1.shape[0], w2.shape[1]
    inits = [
        numpy_helper.from_array(w1, "fc1.weight_t"),
        numpy_helper.from_array(b1, "fc1.bias"),
        numpy_helper.from_array(w2, "fc2.weight_t"),
        numpy_helper.from_array(b2, "fc2.bias"),
    ]
    nodes = [
        helper.make_node("Flatten", ["input"], ["/flatten/Flatten_output_0"],
                         name="/flatten/Flatten", axis=1),
        helper.make_node("MatMul", ["/flatten/Flatten_output_0", "fc1.weight_t"],
                         ["/fc1/MatMul_output_0"], name="/fc1/MatMul"),
        helper.make_node("Add", ["/fc1/MatMul_output_0", "fc1.bias"],
                         ["/fc1/Add_output_0"], name="/fc1/Add"),
        helper.make_node("Relu", ["/fc1/Add_output_0"], ["/relu/Relu_output_0"],
                         name="/relu/Relu"),
        helper.make_node("MatMul", ["/relu/Relu_output_0", "fc2.weight_t"],
                         ["/fc2/MatMul_output_0"], name="/fc2/MatMul"),
        helper.make_node("Add", ["/fc2/MatMul_output_0", "fc2.bias"],
                         ["logits"], name="/fc2/Add"),
    ]
    inp, out = _io(n_in, n_out)
    return _finish(helper.make_graph(nodes, "digits_mlp_matmul", [inp], [out], inits))


# ---------------------------------------------------------------- ONNX verification


def _initializers(model):
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def eval_onnx_numpy(model, x):
    """Tiny interpreter for the six op types used above, one sample at a time
    (the graphs have a fixed batch of 1)."""
    env = _initializers(model)
    rows = []
    for sample in x:
        env["input"] = sample.reshape(1, -1)
        for node in model.graph.node:
            a = [env[i] for i in node.input]
            attrs = {at.name: helper.get_attribute_value(at) for at in node.attribute}
            if node.op_type == "Flatten":
                axis = attrs.get("axis", 1)
                r = a[0].reshape(int(np.prod(a[0].shape[:axis])), -1)
            elif node.op_type == "Gemm":
                aa = a[0].T if attrs.get("transA", 0) else a[0]
                bb = a[1].T if attrs.get("transB", 0) else a[1]
                r = attrs.get("alpha", 1.0) * (aa @ bb) + attrs.get("beta", 1.0) * a[2]
            elif node.op_type == "MatMul":
                r = a[0] @ a[1]
            elif node.op_type == "Add":
                r = a[0] + a[1]
            elif node.op_type == "Relu":
                r = np.maximum(a[0], 0.0)
            else:
                raise ValueError(f"unsupported op {node.op_type}")
            env[node.output[0]] = r.astype(np.float32)
        rows.append(env["logits"][0])
    return np.stack(rows)


def eval_onnx_runtime(path, x, input_shape=(1, -1)):
    """Run the file with onnxruntime (each row reshaped to `input_shape`), or return None if it is not installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(["logits"], {"input": s.reshape(input_shape)})[0] for s in x])


# ---------------------------------------------------------------------- file output


def write_json(path, obj):
    path.write_text(json.dumps(obj, indent=1) + "\n")


def write_samples(path, x, labels=None):
    """EZKL input.json layout: {"input_data": [[64 floats], ...]} (+ "labels").

    One sample per line; values are k/16 so float() of the float32 is exact
    and prints in at most 6 significant digits."""
    rows = [json.dumps([float(v) for v in row]) for row in x]
    text = '{"input_data": [\n  ' + ",\n  ".join(rows) + "\n]"
    if labels is not None:
        text += ',\n"labels": ' + json.dumps([int(v) for v in labels])
    path.write_text(text + "}\n")


def describe(model):
    g = model.graph
    dims = lambda vi: [d.dim_value for d in vi.type.tensor_type.shape.dim]  # noqa: E731
    lines = [f"  input  {vi.name} {dims(vi)}" for vi in g.input]
    lines += [f"  init   {t.name} {list(t.dims)}" for t in g.initializer]
    lines += [f"  node   {n.name} ({n.op_type}) {list(n.input)} -> {list(n.output)}"
              for n in g.node]
    lines += [f"  output {vi.name} {dims(vi)}" for vi in g.output]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main


def main():
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    x_train, x_test, y_train, y_test = load_data()
    clf = train(x_train, y_train)
    train_acc = float(clf.score(x_train, y_train))
    test_acc = float(clf.score(x_test, y_test))
    print(f"epochs={clf.n_iter_} train_acc={train_acc:.4f} test_acc={test_acc:.4f}")

    w1, b1, w2, b2 = weights(clf)
    ref = numpy_logits(x_test, w1, b1, w2, b2)
    # sklearn's predict_proba is softmax of exactly these logits.
    np.testing.assert_allclose(softmax(ref), clf.predict_proba(x_test), rtol=0, atol=1e-5)
    assert (ref.argmax(axis=1) == clf.predict(x_test)).all()

    models = {
        "model.onnx": export_gemm(w1, b1, w2, b2),
        "model-matmul.onnx": export_matmul(w1, b1, w2, b2),
    }
    for name, model in models.items():
        path = OUT_DIR / name
        onnx.save_model(model, str(path))
        got = eval_onnx_numpy(onnx.load(str(path)), x_test)
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
        ort_out = eval_onnx_runtime(path, x_test)
        if ort_out is None:
            print(f"{name}: onnxruntime not installed, skipped runtime check")
        else:
            np.testing.assert_allclose(ort_out, ref, rtol=1e-5, atol=1e-5)
            print(f"{name}: onnxruntime max |diff| = {np.abs(ort_out - ref).max():.2e}")
        print(f"{name}: numpy max |diff| = {np.abs(got - ref).max():.2e}")
        print(describe(model))

    write_samples(OUT_DIR / "calibration.json",
                  x_train[:CALIBRATION_SAMPLES], y_train[:CALIBRATION_SAMPLES])
    write_samples(OUT_DIR / "test.json", x_test, y_test)
    write_samples(OUT_DIR / "input.json", x_test[:1])
    write_json(OUT_DIR / "metrics.json", {
        "float_test_accuracy": round(test_acc, 6),
        "train_accuracy": round(train_acc, 6),
        "test_samples": int(len(x_test)),
        "hidden": HIDDEN,
        "seed": SEED,
    })
    print(f"wrote {sorted(p.name for p in OUT_DIR.iterdir())} to {OUT_DIR}")


if __name__ == "__main__":
    main()
