#!/usr/bin/env python3
"""Builds the real-size vision models of issue #16 as a user would: onnx.helper graphs with fixed random weights.

    python3 scripts/make_vision_models.py OUT_DIR [--only NAME ...] [--samples N]

Writes OUT_DIR/<name>/{model.onnx, calibration.json, test.json, input.json} for

  lenet5          1x28x28 -> Conv 6@5x5 (pad 2) -> ReLU -> AveragePool 2 -> Conv 16@5x5 -> ReLU -> AveragePool 2
                  -> Flatten -> Gemm 400->120 -> ReLU -> Gemm 120->84 -> ReLU -> Gemm 84->10      (61,706 params)
  mlp784          784 -> Gemm 256 -> ReLU -> Gemm 128 -> ReLU -> Gemm 10                       (235,146 params)
  residual-block  3x32x32 -> Conv 16@3x3 -> ReLU -> (Conv 16 -> ReLU -> Conv 16) + skip -> ReLU
                  -> AveragePool 4 -> Flatten -> Gemm 1024->10
  cifar-cnn       3x32x32 -> [Conv 3x3 -> BatchNormalization -> ReLU] x4 (16, 16, 32, 64 channels) with MaxPool 2
                  after the second and the third -> GlobalAveragePool -> Flatten -> Gemm 64->10

Weights are He-initialised from a fixed seed (numpy's default_rng(seed)), so the files are the same on every run.
The inputs are smooth random images in [0, 1] (calibration and test sets from different seeds); "labels" of the test
set are the float model's own top-1 (a random model has no ground truth), so the accuracy report measures how often
the quantized model agrees with the float one. Needs numpy and onnx (models/requirements.txt).
"""

import argparse
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


class Graph:
    """Collects nodes and initializers and evaluates the float model in numpy as it goes (for the labels)."""

    def __init__(self, name, rng):
        self.name = name
        self.rng = rng
        self.nodes = []
        self.inits = []
        self.count = 0

    def fresh(self, prefix):
        self.count += 1
        return f"{prefix}_{self.count}"

    def const(self, prefix, array):
        name = self.fresh(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(array, dtype=np.float32), name))
        return name

    def node(self, op, inputs, prefix, **attrs):
        out = self.fresh(prefix)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def conv(self, x, cin, cout, kernel, pad):
        fan_in = cin * kernel * kernel
        w = self.rng.normal(0, np.sqrt(2.0 / fan_in), (cout, cin, kernel, kernel))
        b = self.rng.normal(0, 0.05, cout)
        return self.node(
            "Conv",
            [x, self.const("w", w), self.const("b", b)],
            "conv",
            kernel_shape=[kernel, kernel],
            pads=[pad] * 4,
            # Written out as torch.onnx.export writes them (some importers, EZKL's among them, need strides).
            strides=[1, 1],
            dilations=[1, 1],
            group=1,
        )

    def batch_norm(self, x, c):
        scale = self.rng.uniform(0.5, 1.5, c)
        bias = self.rng.normal(0, 0.1, c)
        mean = self.rng.normal(0, 0.1, c)
        var = self.rng.uniform(0.5, 2.0, c)
        return self.node(
            "BatchNormalization",
            [x, self.const("s", scale), self.const("bb", bias), self.const("m", mean), self.const("v", var)],
            "bn",
        )

    def gemm(self, x, fin, fout):
        w = self.rng.normal(0, np.sqrt(2.0 / fin), (fout, fin))
        b = self.rng.normal(0, 0.05, fout)
        return self.node("Gemm", [x, self.const("w", w), self.const("b", b)], "gemm", transB=1)

    def model(self, input_shape, output, output_len):
        inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, input_shape)
        out = helper.make_tensor_value_info(output, TensorProto.FLOAT, [1, output_len])
        graph = helper.make_graph(self.nodes, self.name, [inp], [out], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.producer_name = "zkinfer scripts/make_vision_models.py"
        onnx.checker.check_model(model)
        return model


def lenet5(rng):
    g = Graph("lenet5", rng)
    x = g.node("Relu", [g.conv("input", 1, 6, 5, 2)], "relu")
    x = g.node("AveragePool", [x], "pool", kernel_shape=[2, 2], strides=[2, 2])
    x = g.node("Relu", [g.conv(x, 6, 16, 5, 0)], "relu")
    x = g.node("AveragePool", [x], "pool", kernel_shape=[2, 2], strides=[2, 2])
    x = g.node("Flatten", [x], "flat")
    x = g.node("Relu", [g.gemm(x, 400, 120)], "relu")
    x = g.node("Relu", [g.gemm(x, 120, 84)], "relu")
    x = g.gemm(x, 84, 10)
    return g.model([1, 1, 28, 28], x, 10), (1, 28, 28)


def mlp784(rng):
    g = Graph("mlp784", rng)
    x = g.node("Relu", [g.gemm("input", 784, 256)], "relu")
    x = g.node("Relu", [g.gemm(x, 256, 128)], "relu")
    x = g.gemm(x, 128, 10)
    return g.model([1, 784], x, 10), (784,)


def residual_block(rng):
    g = Graph("residual_block", rng)
    stem = g.node("Relu", [g.conv("input", 3, 16, 3, 1)], "relu")
    y = g.node("Relu", [g.conv(stem, 16, 16, 3, 1)], "relu")
    y = g.conv(y, 16, 16, 3, 1)
    x = g.node("Relu", [g.node("Add", [stem, y], "add")], "relu")
    x = g.node("AveragePool", [x], "pool", kernel_shape=[4, 4], strides=[4, 4])
    x = g.node("Flatten", [x], "flat")
    x = g.gemm(x, 16 * 8 * 8, 10)
    return g.model([1, 3, 32, 32], x, 10), (3, 32, 32)


def cifar_cnn(rng):
    g = Graph("cifar_cnn", rng)
    x, cin = "input", 3
    for i, cout in enumerate([16, 16, 32, 64]):
        x = g.node("Relu", [g.batch_norm(g.conv(x, cin, cout, 3, 1), cout)], "relu")
        if i in (1, 2):
            x = g.node("MaxPool", [x], "maxpool", kernel_shape=[2, 2], strides=[2, 2])
        cin = cout
    x = g.node("GlobalAveragePool", [x], "gap")
    x = g.node("Flatten", [x], "flat")
    x = g.gemm(x, 64, 10)
    return g.model([1, 3, 32, 32], x, 10), (3, 32, 32)


def tanh_cnn(rng):
    g = Graph("tanh_cnn", rng)
    x, cin = "input", 3
    for i, cout in enumerate([16, 16, 32]):
        x = g.node("Tanh", [g.conv(x, cin, cout, 3, 1)], "tanh")
        if i == 1:
            x = g.node("MaxPool", [x], "maxpool", kernel_shape=[2, 2], strides=[2, 2])
        cin = cout
    x = g.node("GlobalAveragePool", [x], "gap")
    x = g.node("Flatten", [x], "flat")
    x = g.gemm(x, 32, 10)
    return g.model([1, 3, 32, 32], x, 10), (3, 32, 32)


MODELS = {
    "lenet5": lenet5,
    "mlp784": mlp784,
    "residual-block": residual_block,
    "cifar-cnn": cifar_cnn,
    "tanh-cnn": tanh_cnn,
}


def smooth_images(rng, count, shape):
    """Random images with some spatial structure (a coarse grid upsampled), values in [0, 1]."""
    if len(shape) == 1:
        return rng.uniform(0, 1, (count,) + shape).astype(np.float32)
    c, h, w = shape
    coarse = rng.uniform(0, 1, (count, c, (h + 3) // 4, (w + 3) // 4))
    fine = coarse.repeat(4, axis=2).repeat(4, axis=3)[:, :, :h, :w]
    noise = rng.uniform(-0.1, 0.1, fine.shape)
    return np.clip(fine + noise, 0, 1).astype(np.float32)


def float_outputs(model, samples):
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.stack([session.run(None, {"input": s[None]})[0][0] for s in samples])


def write_set(path, samples, labels):
    data = {"input_data": [[round(float(v), 6) for v in s.reshape(-1)] for s in samples]}
    if labels is not None:
        data["labels"] = [int(v) for v in labels]
    with open(path, "w") as f:
        json.dump(data, f)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--only", nargs="*", choices=sorted(MODELS), help="build only these models")
    parser.add_argument("--samples", type=int, default=32, help="calibration and test samples (default 32)")
    args = parser.parse_args()
    for name in args.only or MODELS:
        # Seeds follow the model's place in MODELS, so --only builds the same files as a full run.
        index = list(MODELS).index(name)
        rng = np.random.default_rng(1600 + index)
        model, shape = MODELS[name](rng)
        target = os.path.join(args.out_dir, name)
        os.makedirs(target, exist_ok=True)
        onnx.save(model, os.path.join(target, "model.onnx"))
        calibration = smooth_images(np.random.default_rng(2600 + index), args.samples, shape)
        test = smooth_images(np.random.default_rng(3600 + index), args.samples, shape)
        outputs = float_outputs(model, test)
        labels = None if outputs is None else outputs.argmax(axis=1)
        if labels is None:
            print(f"{name}: onnxruntime not installed, test.json has no labels", file=sys.stderr)
        write_set(os.path.join(target, "calibration.json"), calibration, None)
        write_set(os.path.join(target, "test.json"), test, labels)
        write_set(os.path.join(target, "input.json"), test[:1], None if labels is None else labels[:1])
        params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
        print(f"{name}: {params} parameters -> {target}")


if __name__ == "__main__":
    main()
