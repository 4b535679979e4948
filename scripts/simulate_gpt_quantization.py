#!/usr/bin/env python3
"""Where a quantized GPT loses its agreement with the float one: a fake-quantized numpy evaluation of a GPT-2
layout ONNX export (the shipped models/tiny-gpt by default), with each class of tensor rounded to its own grid.

    python3 scripts/simulate_gpt_quantization.py [MODEL_DIR] [CONFIG ...]

MODEL_DIR holds model.onnx, calibration.json and test.json (token ids). Weights of every MatMul by a constant are
rounded to 12 bits per output column; an activation of b bits is clamped to ±(2^(b−1) − 1) steps of its
calibrated maximum / (2^(b−1) − 1) (int8 ranges clipped to the factor in [0.30, 1] with the least squared error,
as `compile --clip-ranges` does); softmax probabilities are rounded to 1/127 or 1/32767. It prints the argmax
agreement per row with the float model on test.json for each configuration (all of them by default). This is a
model of zkinfer's quantization, not zkinfer: it reproduced compile's figures within about a point (94.59 % for
the all-int8 configuration against zkinfer's 93.84 %), which is what it is for — ranking where wider tensors pay
before building the chips for them (BENCHMARKS.md, "A 16-bit residual stream"). Needs numpy and onnx.
"""

import json
import sys
from math import erf
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

VERF = np.vectorize(erf)


def tensor_class(node):
    """The tensor class of a node's output, by the names torch.onnx gives nanoGPT's modules."""
    name = node.name
    if node.op_type == "LayerNormalization":
        return "ln"
    if node.op_type == "Softmax":
        return "probs"
    if node.output[0] == "logits":
        return "logits"
    for suffix, cls in [("c_attn/Add", "qkv"), ("attn/Mul", "scores"), ("attn/MatMul_1", "av"),
                        ("c_proj/Add", "proj"), ("c_fc/Add", "fc"), ("gelu/Mul_1", "gelu")]:
        if name.endswith(suffix):
            return cls
    if node.op_type == "Add" and (name == "/transformer/Add" or name.count("/") == 3):
        return "resid"
    return None


def quantize_weights(w, bits=12):
    top = np.abs(w).max(0, keepdims=True)
    top[top == 0] = 1
    step = top / (2 ** (bits - 1) - 1)
    return np.round(w / step) * step


class Gpt:
    def __init__(self, model_dir):
        self.model = onnx.load(str(model_dir / "model.onnx"))
        self.init = {t.name: numpy_helper.to_array(t) for t in self.model.graph.initializer}
        self.qinit = {k: quantize_weights(v) if k.endswith("weight_t") else v for k, v in self.init.items()}
        load = lambda f: np.array(json.load(open(model_dir / f))["input_data"])  # noqa: E731
        self.calibration, self.test = load("calibration.json"), load("test.json")

    def run(self, ids, rounders=None):
        """Logits of one window; `rounders[cls](name, value)` rounds each tensor of class cls."""
        env = dict(self.qinit if rounders else self.init, input_ids=ids.reshape(1, -1))
        for node in self.model.graph.node:
            a = [env[i] for i in node.input]
            at = {k.name: helper.get_attribute_value(k) for k in node.attribute}
            op = node.op_type
            if op == "Constant":
                out = numpy_helper.to_array(at["value"])
            elif op == "Gather":
                out = np.take(a[0], a[1], axis=at.get("axis", 0))
            elif op == "Equal":
                out = a[0] == a[1]
            elif op in ("Add", "Mul", "Div"):
                out = {"Add": np.add, "Mul": np.multiply, "Div": np.divide}[op](a[0], a[1])
            elif op == "MatMul":
                out = np.matmul(a[0], a[1])
            elif op == "LayerNormalization":
                mean = a[0].mean(-1, keepdims=True)
                var = ((a[0] - mean) ** 2).mean(-1, keepdims=True)
                normed = (a[0] - mean) / np.sqrt(var + np.float32(at["epsilon"]))
                if rounders and "ln" in rounders:
                    normed = rounders["ln"](node.name, normed)  # γ and β fold into the next layer
                env[node.output[0]] = normed * a[1] + a[2]
                continue
            elif op == "Split":
                outs = np.split(a[0], np.cumsum(a[1])[:-1], axis=at["axis"])
                env.update(zip(node.output, outs))
                continue
            elif op == "Reshape":
                out = a[0].reshape(a[1])
            elif op == "Transpose":
                out = a[0].transpose(at["perm"])
            elif op == "Where":
                out = np.where(a[0], a[1], a[2])
            elif op == "Softmax":
                keep = np.isfinite(a[0])
                top = np.where(keep, a[0], -1e30).max(-1, keepdims=True)
                e = np.where(keep, np.exp(a[0] - top), 0)
                out = e / e.sum(-1, keepdims=True)
            elif op == "Erf":
                out = VERF(a[0])
            else:
                raise ValueError(f"operator {op} is not simulated")
            cls = tensor_class(node)
            if rounders and cls in rounders:
                out = rounders[cls](node.name, out)
            env[node.output[0]] = out
        return env["logits"][0]


def clip_factor(values, bits):
    top, best = np.abs(values).max(), (np.inf, 1.0)
    lim = 2 ** (bits - 1) - 1
    for f in np.arange(0.30, 1.0001, 0.02):
        step = f * top / lim
        err = ((np.clip(np.round(values / step), -lim, lim) * step - values) ** 2).sum()
        best = min(best, (err, f))
    return best[1]


def agreement(gpt, float_argmax, samples, bits, prob_one=127, clip=True):
    scales = {}

    def rounder(cls):
        def round_(name, v):
            if cls == "probs":
                return np.round(v * prob_one) / prob_one
            b = bits[cls]
            if name not in scales:
                top = np.abs(samples[name]).max()
                if clip and b == 8 and cls != "logits":
                    top *= clip_factor(samples[name], b)
                scales[name] = top / (2 ** (b - 1) - 1)
            lim, keep = 2 ** (b - 1) - 1, np.isfinite(v)
            return np.where(keep, np.clip(np.round(np.where(keep, v, 0) / scales[name]), -lim, lim) * scales[name], v)
        return round_

    rounders = {cls: rounder(cls) for cls in bits}
    out = np.stack([gpt.run(x, rounders) for x in gpt.test])
    return (out.argmax(-1) == float_argmax).mean()


INT8 = dict(ln=8, qkv=8, scores=8, probs=8, av=8, proj=8, fc=8, gelu=8, resid=8, logits=16)
CONFIGS = {
    "int8": (INT8, {}),
    "qkv16": (dict(INT8, qkv=16), {}),
    "probs15": (INT8, dict(prob_one=32767)),
    "scores12": (dict(INT8, scores=12), {}),
    "attention-wide": (dict(INT8, qkv=16, scores=12, av=16), dict(prob_one=32767)),
    "residual16": (dict(INT8, resid=16, proj=16), {}),
    "residual16+attention-wide": (dict(INT8, resid=16, proj=16, qkv=16, scores=12, av=16), dict(prob_one=32767)),
    "all16-but-tables": (dict(INT8, resid=16, proj=16, qkv=16, av=16, ln=16, gelu=16), dict(prob_one=32767)),
}


def main():
    args = sys.argv[1:]
    model_dir = Path(args.pop(0)) if args and Path(args[0]).is_dir() else Path(__file__).parent.parent / "models/tiny-gpt"
    gpt = Gpt(model_dir)
    float_argmax = np.stack([gpt.run(x) for x in gpt.test]).argmax(-1)
    samples = {}

    def collect(name, v):
        samples.setdefault(name, []).append(v[np.isfinite(v)].ravel())
        return v

    for x in gpt.calibration:
        gpt.run(x, {cls: collect for cls in INT8})
    samples = {k: np.concatenate(v) for k, v in samples.items()}
    for name in args or CONFIGS:
        bits, options = CONFIGS[name]
        print(f"{name:28s} {100 * agreement(gpt, float_argmax, samples, bits, **options):.2f} %", flush=True)


if __name__ == "__main__":
    main()
