"""Train small MLPs on scikit-learn's bundled tabular data sets and export them to ONNX by hand.

The models take RAW (unscaled) features, the way users export a
``StandardScaler`` + MLP pipeline: the scaler is either written as graph nodes
in front of the MLP or folded into the first layer.  The data sets are
bundled with scikit-learn (no download): ``load_breast_cancer`` (30 features,
2 classes), ``load_wine`` (13 features from 0.13 to 1680, 3 classes) and
``load_diabetes(scaled=False)`` (10 features, real-valued target).  Every split
is ``train_test_split(test_size=0.3, random_state=0)``, stratified for the
classifiers.

Outputs, in ``models/cancer-mlp/`` (shipped model):

* ``model.onnx``         Sub -> Div -> Gemm -> Relu -> Gemm -> Relu -> Gemm.
                         Input ``input`` [1, 30] raw features; the scaler is the
                         Sub (mean [30]) and Div (scale [30]) nodes, which are left
                         UNNAMED on purpose (the importer's messages for unnamed
                         nodes are tested with them).  Output ``logits`` [1, 2].
* ``calibration.json``   200 train samples, EZKL ``input.json`` layout + labels.
* ``test.json``          the whole test split (171 samples) + labels.
* ``input.json``         the first test sample, no label.
* ``metrics.json``       float accuracies and training settings.

and in ``tests/tabular/`` (test fixtures; each directory has ``model.onnx``,
``calibration.json`` with up to 200 train samples and ``test.json`` with the
whole test split):

* ``wine-gemm/``            scaler folded into the first Gemm: Gemm -> Relu -> Gemm.
* ``cancer-matmul/``        the cancer model, scaler folded into the first layer,
                            as MatMul -> Add -> Relu -> MatMul -> Add -> Relu ->
                            MatMul -> Add (weights stored [in, out]).
* ``diabetes-regression/``  Sub -> Div -> Gemm -> Relu -> Gemm, output [1, 1] in
                            the target's units; the JSON files carry
                            ``"targets": [[float], ...]`` instead of ``"labels"``.
* ``wine-normalize-mul/``   the wine model with the scaler as Sub (mean) -> Mul
                            (1 / scale) in front of the unfolded Gemm -> Relu -> Gemm.
* ``metrics.json``          each fixture's float test accuracy, or R^2 and MAE.

sklearn's binary ``MLPClassifier`` has one output unit z with
P(class 1) = sigmoid(z).  The graphs emit two logits [-z/2, z/2] (last layer's
weight columns [-w, w] / 2, bias [-b, b] / 2), so argmax is sklearn's
prediction and softmax is ``predict_proba``.  The regressor is trained on a
standardized target (``TransformedTargetRegressor``); the inverse transform is
folded into its last Gemm.

Every graph passes ``onnx.checker`` (full check) and strict shape inference,
and a small numpy interpreter of the saved file must reproduce sklearn's
``predict_proba`` / ``predict`` on the test split (max |diff| < 1e-4) and its
predicted classes.  If onnxruntime is importable, the .onnx files are also run
with it.  The script is deterministic: running it again rewrites
byte-identical files.

Usage (from the repository root):
    python3 -m venv models/.venv
    models/.venv/bin/pip install -r models/requirements.txt
    models/.venv/bin/python models/train_tabular.py
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
from sklearn.compose import TransformedTargetRegressor  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine  # noqa: E402
from sklearn.metrics import mean_absolute_error, r2_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier, MLPRegressor  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

SEED = 0
TEST_SIZE = 0.3
CANCER_HIDDEN = (32, 16)
WINE_HIDDEN = (16,)
DIABETES_HIDDEN = (32,)
CLASSIFIER_ALPHA = 1e-3  # L2 penalty (as in train_digits_mlp.py)
# 309 training rows: weaker penalties overfit (test R^2 0.17 at alpha=1e-3, 0.33
# at 1.0); at 10.0 the MLP beats a plain linear regression (0.39) on this split.
DIABETES_ALPHA = 10.0
MAX_ITER = 5000  # adam converges (tol=1e-4) well before this; checked below
CALIBRATION_SAMPLES = 200
TOLERANCE = 1e-4  # max |ONNX - sklearn| on the test split
OPSET = 17
IR_VERSION = 8

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_DIR = ROOT / "models" / "cancer-mlp"
FIXTURES_DIR = ROOT / "tests" / "tabular"


# --------------------------------------------------------------------------- data


def load_data(loader, classification):
    """Raw features rounded to float32 (the values the JSON files hold), split 70/30.

    Returns float32 x and the labels (int) or targets (float32)."""
    x, y = loader(return_X_y=True)
    x = x.astype(np.float32)
    if classification:
        return train_test_split(x, y, test_size=TEST_SIZE, random_state=SEED, stratify=y)
    return train_test_split(x, y.astype(np.float32), test_size=TEST_SIZE, random_state=SEED)


def f64(x):
    """sklearn is fitted and evaluated in float64 on the float32 values."""
    return np.asarray(x, dtype=np.float64)


# ------------------------------------------------------------------------ training


def _check_converged(mlp):
    if mlp.n_iter_ >= MAX_ITER:
        raise RuntimeError(f"{type(mlp).__name__} did not converge; raise MAX_ITER")


def train_classifier(x_train, y_train, hidden):
    pipe = Pipeline([
        ("scaler", StandardScaler()),
        ("mlp", MLPClassifier(hidden_layer_sizes=hidden, activation="relu", solver="adam",
                              alpha=CLASSIFIER_ALPHA, max_iter=MAX_ITER, random_state=SEED)),
    ])
    pipe.fit(f64(x_train), y_train)
    _check_converged(pipe.named_steps["mlp"])
    return pipe


def train_regressor(x_train, y_train, hidden):
    pipe = Pipeline([
        ("scaler", StandardScaler()),
        ("mlp", MLPRegressor(hidden_layer_sizes=hidden, activation="relu", solver="adam",
                             alpha=DIABETES_ALPHA, max_iter=MAX_ITER, early_stopping=False,
                             random_state=SEED)),
    ])
    reg = TransformedTargetRegressor(regressor=pipe, transformer=StandardScaler())
    reg.fit(f64(x_train), f64(y_train))
    _check_converged(reg.regressor_.named_steps["mlp"])
    return reg


# ------------------------------------------------- float64 parameters of the pipeline


def scaler_params(scaler):
    return np.asarray(scaler.mean_, np.float64), np.asarray(scaler.scale_, np.float64)


def mlp_layers(mlp):
    """[(W [in, out], b [out]), ...] in float64, sklearn's layout.

    A binary classifier's single output unit z becomes two logits [-z/2, z/2]."""
    layers = [(f64(w), f64(b)) for w, b in zip(mlp.coefs_, mlp.intercepts_)]
    if isinstance(mlp, MLPClassifier) and len(mlp.classes_) == 2:
        w, b = layers[-1]
        layers[-1] = (np.concatenate([-w, w], axis=1) / 2, np.concatenate([-b, b]) / 2)
    return layers


def fold_scaler(layers, mean, scale):
    """relu((x - mean) / scale @ W + b) == relu(x @ W' + b') with W' = W / scale[:, None],
    b' = b - mean @ W'."""
    (w, b), rest = layers[0], layers[1:]
    w_folded = w / scale[:, None]
    return [(w_folded, b - mean @ w_folded)] + rest


def unstandardize_output(layers, target_scaler):
    """Fold y = z * scale + mean (the target scaler's inverse) into the last layer."""
    (w, b), rest = layers[-1], layers[:-1]
    t_mean, t_scale = scaler_params(target_scaler)
    return rest + [(w * t_scale, b * t_scale + t_mean)]


def numpy_forward(x, layers):
    """float64 reference: relu(... relu(x @ W1 + b1) ...) @ Wn + bn."""
    h = f64(x)
    for i, (w, b) in enumerate(layers):
        h = h @ w + b
        if i < len(layers) - 1:
            h = np.maximum(h, 0.0)
    return h


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# ----------------------------------------------------------------------- ONNX export

# Scaler written as graph nodes in front of the MLP:
#   ("div", mean, scale)      Sub(input, scaler.mean) -> Div(., scaler.scale)
#   ("mul", mean, inv_scale)  Sub(input, scaler.mean) -> Mul(., scaler.inv_scale)
# or None when the scaler is folded into the first layer.


def _f32(a):
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))


def _scaler_nodes(scaler, named):
    """Sub then Div/Mul; returns (nodes, initializers, output tensor name)."""
    kind, mean, factor = scaler
    op = {"div": "Div", "mul": "Mul"}[kind]
    factor_name = {"div": "scaler.scale", "mul": "scaler.inv_scale"}[kind]
    inits = [numpy_helper.from_array(_f32(mean), "scaler.mean"),
             numpy_helper.from_array(_f32(factor), factor_name)]
    sub_out, op_out = "/scaler/Sub_output_0", f"/scaler/{op}_output_0"
    nodes = [
        helper.make_node("Sub", ["input", "scaler.mean"], [sub_out],
                         name="/scaler/Sub" if named else ""),
        helper.make_node(op, [sub_out, factor_name], [op_out],
                         name=f"/scaler/{op}" if named else ""),
    ]
    return nodes, inits, op_out


def _finish(graph, n_in, n_out, out_name):
    graph.input.extend([helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, n_in])])
    graph.output.extend([helper.make_tensor_value_info(out_name, TensorProto.FLOAT, [1, n_out])])
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="zkinfer/models/train_tabular.py",
        producer_version="1",
    )
    model.ir_version = IR_VERSION
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.checker.check_model(model, full_check=True)
    return model


def export(graph_name, layers, out_name, style, scaler=None, scaler_named=True):
    """style "gemm": PyTorch-style Gemm with weights stored [out, in] and transB=1.
    style "matmul": MatMul (weights stored [in, out]) followed by Add (bias)."""
    nodes, inits, cur = [], [], "input"
    if scaler is not None:
        nodes, inits, cur = _scaler_nodes(scaler, scaler_named)
    for i, (w, b) in enumerate(layers, start=1):
        last = i == len(layers)
        out = out_name if last else None
        if style == "gemm":
            inits += [numpy_helper.from_array(_f32(w.T), f"fc{i}.weight"),
                      numpy_helper.from_array(_f32(b), f"fc{i}.bias")]
            out = out or f"/fc{i}/Gemm_output_0"
            nodes.append(helper.make_node(
                "Gemm", [cur, f"fc{i}.weight", f"fc{i}.bias"], [out], name=f"/fc{i}/Gemm",
                alpha=1.0, beta=1.0, transB=1))
        elif style == "matmul":
            inits += [numpy_helper.from_array(_f32(w), f"fc{i}.weight_t"),
                      numpy_helper.from_array(_f32(b), f"fc{i}.bias")]
            mm = f"/fc{i}/MatMul_output_0"
            nodes.append(helper.make_node("MatMul", [cur, f"fc{i}.weight_t"], [mm],
                                          name=f"/fc{i}/MatMul"))
            out = out or f"/fc{i}/Add_output_0"
            nodes.append(helper.make_node("Add", [mm, f"fc{i}.bias"], [out], name=f"/fc{i}/Add"))
        else:
            raise ValueError(style)
        cur = out
        if not last:
            cur = f"/relu{i}/Relu_output_0"
            nodes.append(helper.make_node("Relu", [out], [cur], name=f"/relu{i}/Relu"))
    graph = helper.make_graph(nodes, graph_name, [], [], inits)
    return _finish(graph, layers[0][0].shape[0], layers[-1][0].shape[1], out_name)


# ---------------------------------------------------------------- ONNX verification


def eval_onnx_numpy(model, x):
    """Tiny float32 interpreter for the op types used above, one sample at a time
    (the graphs have a fixed batch of 1)."""
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    out_name = model.graph.output[0].name
    rows = []
    for sample in x:
        env = dict(init)
        env["input"] = _f32(sample).reshape(1, -1)
        for node in model.graph.node:
            a = [env[i] for i in node.input]
            attrs = {at.name: helper.get_attribute_value(at) for at in node.attribute}
            if node.op_type == "Gemm":
                aa = a[0].T if attrs.get("transA", 0) else a[0]
                bb = a[1].T if attrs.get("transB", 0) else a[1]
                r = np.float32(attrs.get("alpha", 1.0)) * (aa @ bb) \
                    + np.float32(attrs.get("beta", 1.0)) * a[2]
            elif node.op_type == "MatMul":
                r = a[0] @ a[1]
            elif node.op_type == "Add":
                r = a[0] + a[1]
            elif node.op_type == "Sub":
                r = a[0] - a[1]
            elif node.op_type == "Mul":
                r = a[0] * a[1]
            elif node.op_type == "Div":
                r = a[0] / a[1]
            elif node.op_type == "Relu":
                r = np.maximum(a[0], np.float32(0.0))
            else:
                raise ValueError(f"unsupported op {node.op_type}")
            assert r.dtype == np.float32, node.op_type
            env[node.output[0]] = r
        rows.append(env[out_name][0])
    return np.stack(rows)


def eval_onnx_runtime(path, x):
    """Run the file with onnxruntime, or return None if it is not installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    out_name = sess.get_outputs()[0].name
    return np.concatenate([sess.run([out_name], {"input": _f32(s).reshape(1, -1)})[0]
                           for s in x])


def check_graph(path, x, expected, classes=None):
    """Run the saved file on `x` and compare with sklearn.

    Classifiers: `expected` is predict_proba and `classes` predict; the softmax of
    the ONNX logits must match the probabilities and their argmax the classes.
    Regressor: `expected` is predict, compared with the ONNX output directly."""
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    results = {"numpy": eval_onnx_numpy(model, x), "onnxruntime": eval_onnx_runtime(path, x)}
    for engine, out in results.items():
        if out is None:
            print(f"  {path.name}: onnxruntime not installed, skipped runtime check")
            continue
        if classes is None:
            got = f64(out[:, 0])
        else:
            got = softmax(f64(out))
            if not (out.argmax(axis=1) == classes).all():
                raise AssertionError(f"{path}: {engine} argmax differs from predict")
        diff = float(np.abs(got - expected).max())
        if diff >= TOLERANCE:
            raise AssertionError(f"{path}: {engine} max |diff| {diff:.2e} >= {TOLERANCE}")
        print(f"  {engine}: max |diff| vs sklearn = {diff:.2e}")
    return results["numpy"]


# ---------------------------------------------------------------------- file output


def write_json(path, obj):
    path.write_text(json.dumps(obj, indent=1) + "\n")


def write_samples(path, x, labels=None, targets=None):
    """EZKL input.json layout: {"input_data": [[floats], ...]} (+ "labels" or "targets").

    One sample per line.  Each value is float() of the float32, which prints the
    float32 exactly (as the shortest float64 repr), so parsing it back gives the
    same float32."""
    rows = [json.dumps([float(v) for v in row]) for row in _f32(x)]
    text = '{"input_data": [\n  ' + ",\n  ".join(rows) + "\n]"
    if labels is not None:
        text += ',\n"labels": ' + json.dumps([int(v) for v in labels])
    if targets is not None:
        text += ',\n"targets": [\n  ' + ",\n  ".join(
            json.dumps([float(v)]) for v in _f32(targets)) + "\n]"
    path.write_text(text + "}\n")


def describe(model):
    g = model.graph
    dims = lambda vi: [d.dim_value for d in vi.type.tensor_type.shape.dim]  # noqa: E731
    lines = [f"  input  {vi.name} {dims(vi)}" for vi in g.input]
    lines += [f"  init   {t.name} {list(t.dims)}" for t in g.initializer]
    lines += [f"  node   {n.name or '(unnamed)'} ({n.op_type}) {list(n.input)} -> {list(n.output)}"
              for n in g.node]
    lines += [f"  output {vi.name} {dims(vi)}" for vi in g.output]
    return "\n".join(lines)


def save(model, directory, expected, x_test, classes=None):
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "model.onnx"
    onnx.save_model(model, str(path))
    print(f"{path.relative_to(ROOT)}:")
    print(describe(model))
    return check_graph(path, x_test, expected, classes)


def write_split(directory, x_train, x_test, y_train, y_test, regression=False):
    key = "targets" if regression else "labels"
    write_samples(directory / "calibration.json", x_train[:CALIBRATION_SAMPLES],
                  **{key: y_train[:CALIBRATION_SAMPLES]})
    write_samples(directory / "test.json", x_test, **{key: y_test})


def _ranges(layers):
    return {f"fc{i}": [round(float(min(w.min(), b.min())), 4), round(float(max(w.max(), b.max())), 4)]
            for i, (w, b) in enumerate(layers, start=1)}


# ----------------------------------------------------------------------------- main


def cancer(fixtures):
    x_train, x_test, y_train, y_test = load_data(load_breast_cancer, classification=True)
    pipe = train_classifier(x_train, y_train, CANCER_HIDDEN)
    mlp = pipe.named_steps["mlp"]
    train_acc = float(pipe.score(f64(x_train), y_train))
    test_acc = float(pipe.score(f64(x_test), y_test))
    print(f"cancer: epochs={mlp.n_iter_} train_acc={train_acc:.4f} test_acc={test_acc:.4f} "
          f"({len(x_train)} train, {len(x_test)} test)")

    mean, scale = scaler_params(pipe.named_steps["scaler"])
    layers = mlp_layers(mlp)
    proba, pred = pipe.predict_proba(f64(x_test)), pipe.predict(f64(x_test))
    ref = numpy_forward((f64(x_test) - mean) / scale, layers)
    np.testing.assert_allclose(softmax(ref), proba, rtol=0, atol=1e-9)
    assert (ref.argmax(axis=1) == pred).all()

    # Shipped model: scaler as unnamed Sub and Div nodes.
    logits = save(export("cancer_mlp", layers, "logits", "gemm", ("div", mean, scale),
                         scaler_named=False),
                  SHIPPED_DIR, proba, x_test, pred)
    write_split(SHIPPED_DIR, x_train, x_test, y_train, y_test)
    write_samples(SHIPPED_DIR / "input.json", x_test[:1])
    write_json(SHIPPED_DIR / "metrics.json", {
        "float_test_accuracy": round(test_acc, 6),
        "train_accuracy": round(train_acc, 6),
        "test_samples": int(len(x_test)),
        "train_samples": int(len(x_train)),
        "hidden": list(CANCER_HIDDEN),
        "alpha": CLASSIFIER_ALPHA,
        "epochs": int(mlp.n_iter_),
        "test_size": TEST_SIZE,
        "seed": SEED,
    })
    print(f"  input.json label {int(y_test[0])}, logits {np.round(logits[0], 4).tolist()}")
    print(f"  weight/bias ranges {_ranges(layers)}")

    # Fixture: scaler folded into the first layer, MatMul + Add.
    folded = fold_scaler(layers, mean, scale)
    print(f"  folded weight/bias ranges {_ranges(folded)}")
    d = FIXTURES_DIR / "cancer-matmul"
    save(export("cancer_mlp_matmul", folded, "logits", "matmul"), d, proba, x_test, pred)
    write_split(d, x_train, x_test, y_train, y_test)
    fixtures["cancer-matmul"] = {"float_test_accuracy": round(test_acc, 6),
                                 "test_samples": int(len(x_test))}


def wine(fixtures):
    x_train, x_test, y_train, y_test = load_data(load_wine, classification=True)
    pipe = train_classifier(x_train, y_train, WINE_HIDDEN)
    mlp = pipe.named_steps["mlp"]
    test_acc = float(pipe.score(f64(x_test), y_test))
    print(f"wine: epochs={mlp.n_iter_} train_acc={pipe.score(f64(x_train), y_train):.4f} "
          f"test_acc={test_acc:.4f} ({len(x_train)} train, {len(x_test)} test)")

    mean, scale = scaler_params(pipe.named_steps["scaler"])
    layers = mlp_layers(mlp)
    proba, pred = pipe.predict_proba(f64(x_test)), pipe.predict(f64(x_test))
    np.testing.assert_allclose(softmax(numpy_forward((f64(x_test) - mean) / scale, layers)),
                               proba, rtol=0, atol=1e-9)

    folded = fold_scaler(layers, mean, scale)
    print(f"  folded weight/bias ranges {_ranges(folded)}")
    variants = {
        "wine-gemm": export("wine_mlp_folded", folded, "logits", "gemm"),
        "wine-normalize-mul": export("wine_mlp_normalize_mul", layers, "logits", "gemm",
                                     ("mul", mean, 1.0 / scale)),
    }
    for name, model in variants.items():
        d = FIXTURES_DIR / name
        save(model, d, proba, x_test, pred)
        write_split(d, x_train, x_test, y_train, y_test)
        fixtures[name] = {"float_test_accuracy": round(test_acc, 6),
                          "test_samples": int(len(x_test))}


def diabetes(fixtures):
    loader = lambda **kw: load_diabetes(scaled=False, **kw)  # noqa: E731
    x_train, x_test, y_train, y_test = load_data(loader, classification=False)
    reg = train_regressor(x_train, y_train, DIABETES_HIDDEN)
    pipe = reg.regressor_
    mlp = pipe.named_steps["mlp"]
    pred = reg.predict(f64(x_test))
    r2 = float(r2_score(y_test, pred))
    mae = float(mean_absolute_error(y_test, pred))
    train_r2 = float(r2_score(y_train, reg.predict(f64(x_train))))
    print(f"diabetes: epochs={mlp.n_iter_} train_r2={train_r2:.4f} test_r2={r2:.4f} "
          f"test_mae={mae:.4f} ({len(x_train)} train, {len(x_test)} test)")

    mean, scale = scaler_params(pipe.named_steps["scaler"])
    layers = unstandardize_output(mlp_layers(mlp), reg.transformer_)
    np.testing.assert_allclose(numpy_forward((f64(x_test) - mean) / scale, layers)[:, 0],
                               pred, rtol=1e-12, atol=1e-9)
    print(f"  weight/bias ranges {_ranges(layers)}")

    d = FIXTURES_DIR / "diabetes-regression"
    out = save(export("diabetes_mlp", layers, "output", "gemm", ("div", mean, scale)),
               d, pred, x_test)
    assert abs(float(r2_score(y_test, f64(out[:, 0]))) - r2) < 1e-6
    write_split(d, x_train, x_test, y_train, y_test, regression=True)
    fixtures["diabetes-regression"] = {
        "float_test_r2": round(r2, 6),
        "float_test_mae": round(mae, 6),
        "train_r2": round(train_r2, 6),
        "test_samples": int(len(x_test)),
    }


def main():
    fixtures = {}
    cancer(fixtures)
    wine(fixtures)
    diabetes(fixtures)
    FIXTURES_DIR.mkdir(parents=True, exist_ok=True)
    write_json(FIXTURES_DIR / "metrics.json", dict(sorted(fixtures.items())))
    print(f"wrote {SHIPPED_DIR.relative_to(ROOT)}/ and {FIXTURES_DIR.relative_to(ROOT)}/")


if __name__ == "__main__":
    main()
