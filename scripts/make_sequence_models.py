#!/usr/bin/env python3
"""Builds the transformer-shaped models of issue #17 as a user would: onnx.helper graphs at opset 17 with fixed
random weights.

    python3 scripts/make_sequence_models.py OUT_DIR [--samples N]

Writes OUT_DIR/<name>/{model.onnx, calibration.json, test.json, input.json} for

  encoder-block   x [1, 16, 32] -> LayerNormalization -> one attention head (Q, K, V projections, Q·Kᵀ / √32,
                  Softmax, ·V, output projection) -> residual Add -> LayerNormalization -> MatMul 32->128 + bias ->
                  GELU (PyTorch's erf form) -> MatMul 128->32 + bias -> residual Add -> ReduceMean over the tokens
                  -> Gemm 32->10                                                              (12,906 params)

Weights are normal with standard deviation 1/√fan_in from a fixed seed (numpy's default_rng), so the files are the
same on every run. Inputs are standard normal token embeddings (calibration and test sets from different seeds);
the test set's "labels" are the float model's own top-1 (computed here in numpy), so the accuracy report measures
how often the quantized model agrees with the float one. Needs numpy, scipy and onnx (models/requirements.txt).
"""

import argparse
import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from scipy.special import erf

OPSET = 17
TOKENS, WIDTH, HIDDEN, CLASSES = 16, 32, 128, 10


def layer_norm(x, gamma, beta, eps=1e-5):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def encoder_block(rng):
    """The graph, its parameter count and a numpy forward pass."""
    def weight(fan_in, shape):
        return (rng.normal(0, 1, shape) / np.sqrt(fan_in)).astype(np.float32)

    p = {
        "g1": (1 + 0.1 * rng.normal(0, 1, WIDTH)).astype(np.float32),
        "b1": (0.1 * rng.normal(0, 1, WIDTH)).astype(np.float32),
        "wq": weight(WIDTH, (WIDTH, WIDTH)),
        "wk": weight(WIDTH, (WIDTH, WIDTH)),
        "wv": weight(WIDTH, (WIDTH, WIDTH)),
        "wo": weight(WIDTH, (WIDTH, WIDTH)),
        "g2": (1 + 0.1 * rng.normal(0, 1, WIDTH)).astype(np.float32),
        "b2": (0.1 * rng.normal(0, 1, WIDTH)).astype(np.float32),
        "w1": weight(WIDTH, (WIDTH, HIDDEN)),
        "c1": (0.1 * rng.normal(0, 1, HIDDEN)).astype(np.float32),
        "w2": weight(HIDDEN, (HIDDEN, WIDTH)),
        "c2": (0.1 * rng.normal(0, 1, WIDTH)).astype(np.float32),
        "wh": weight(WIDTH, (CLASSES, WIDTH)),
        "ch": (0.1 * rng.normal(0, 1, CLASSES)).astype(np.float32),
    }
    scalars = {
        "inv_sqrt": np.float32(1 / np.sqrt(WIDTH)),
        "sqrt2": np.float32(np.sqrt(2)),
        "one": np.float32(1),
        "half": np.float32(0.5),
    }
    n = helper.make_node
    nodes = [
        n("LayerNormalization", ["x", "g1", "b1"], ["n1"], name="ln1", axis=-1, epsilon=1e-5),
        n("MatMul", ["n1", "wq"], ["q"], name="q_proj"),
        n("MatMul", ["n1", "wk"], ["k"], name="k_proj"),
        n("MatMul", ["n1", "wv"], ["v"], name="v_proj"),
        n("Transpose", ["k"], ["kt"], name="k_t", perm=[0, 2, 1]),
        n("MatMul", ["q", "kt"], ["s"], name="scores"),
        n("Mul", ["s", "inv_sqrt"], ["s2"], name="scale"),
        n("Softmax", ["s2"], ["a"], name="weights", axis=-1),
        n("MatMul", ["a", "v"], ["o"], name="mix"),
        n("MatMul", ["o", "wo"], ["o2"], name="out_proj"),
        n("Add", ["x", "o2"], ["r1"], name="residual1"),
        n("LayerNormalization", ["r1", "g2", "b2"], ["n2"], name="ln2", axis=-1, epsilon=1e-5),
        n("MatMul", ["n2", "w1"], ["h1"], name="fc1"),
        n("Add", ["h1", "c1"], ["h2"], name="fc1_bias"),
        n("Div", ["h2", "sqrt2"], ["g_a"], name="gelu_div"),
        n("Erf", ["g_a"], ["g_b"], name="gelu_erf"),
        n("Add", ["g_b", "one"], ["g_c"], name="gelu_add"),
        n("Mul", ["h2", "g_c"], ["g_d"], name="gelu_mul"),
        n("Mul", ["g_d", "half"], ["g"], name="gelu_half"),
        n("MatMul", ["g", "w2"], ["h3"], name="fc2"),
        n("Add", ["h3", "c2"], ["h4"], name="fc2_bias"),
        n("Add", ["r1", "h4"], ["r2"], name="residual2"),
        n("ReduceMean", ["r2"], ["pooled"], name="pool", axes=[1], keepdims=0),
        n("Gemm", ["pooled", "wh", "ch"], ["y"], name="head", transB=1),
    ]
    inits = [numpy_helper.from_array(v, k) for k, v in p.items()]
    inits += [numpy_helper.from_array(np.array(v, dtype=np.float32), k) for k, v in scalars.items()]
    graph = helper.make_graph(
        nodes,
        "encoder-block",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, TOKENS, WIDTH])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, CLASSES])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    params = sum(v.size for v in p.values())

    def forward(x):
        n1 = layer_norm(x, p["g1"], p["b1"])
        q, k, v = n1 @ p["wq"], n1 @ p["wk"], n1 @ p["wv"]
        s = q @ k.transpose(0, 2, 1) / np.sqrt(WIDTH)
        a = np.exp(s - s.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        r1 = x + (a @ v) @ p["wo"]
        h = layer_norm(r1, p["g2"], p["b2"]) @ p["w1"] + p["c1"]
        g = 0.5 * h * (1 + erf(h / np.sqrt(2)))
        r2 = r1 + g @ p["w2"] + p["c2"]
        return r2.mean(1) @ p["wh"].T + p["ch"]

    return model, params, forward


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--samples", type=int, default=100)
    args = parser.parse_args()
    model, params, forward = encoder_block(np.random.default_rng(17))
    onnx.checker.check_model(model)
    out = os.path.join(args.out, "encoder-block")
    os.makedirs(out, exist_ok=True)
    onnx.save(model, os.path.join(out, "model.onnx"))

    def inputs(seed):
        return np.random.default_rng(seed).normal(0, 1, (args.samples, 1, TOKENS, WIDTH)).astype(np.float32)

    calibration, test = inputs(1), inputs(2)
    labels = [int(np.argmax(forward(x))) for x in test]
    rows = lambda a: [x.reshape(-1).tolist() for x in a]
    with open(os.path.join(out, "calibration.json"), "w") as f:
        json.dump({"input_data": rows(calibration)}, f)
    with open(os.path.join(out, "test.json"), "w") as f:
        json.dump({"input_data": rows(test), "labels": labels}, f)
    with open(os.path.join(out, "input.json"), "w") as f:
        json.dump({"input_data": rows(test[:1])}, f)
    print(f"encoder-block: {params} parameters -> {out}")


if __name__ == "__main__":
    main()
