#!/usr/bin/env python3
"""A random-weight decoder-only GPT of shapes the shipped one does not have: 2 blocks, 4 heads, width 64,
context 48, vocabulary 80; exported as torch writes nanoGPT (int64 ids, Gather, LayerNormalization, fused qkv +
Split, Where(-inf) causal mask, erf GELU). Writes model.onnx, calibration.json, input.json into argv[1] (needs numpy and onnx).
Usage: python3 scripts/make_gpt_model.py OUT_DIR"""
import json, sys
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

T, D, H, V, L = 48, 64, 4, 80, 2
DH = D // H
rng = np.random.default_rng(7)
inits, nodes = [], []
def init(name, a):
    inits.append(numpy_helper.from_array(np.asarray(a), name)); return name
def w(name, shape, scale):
    return init(name, (rng.standard_normal(shape) * scale).astype(np.float32))
def n(op, ins, outs, **attrs):
    nodes.append(helper.make_node(op, ins, outs, name=f"{op}_{len(nodes)}", **attrs)); return outs[0]
init("wte", (rng.standard_normal((V, D)) * 0.5).astype(np.float32))
init("wpe", (rng.standard_normal((T, D)) * 0.2).astype(np.float32))
mask = np.tril(np.ones((T, T), dtype=bool)).reshape(1, 1, T, T)
init("mask", mask); init("neg_inf", np.array(-np.inf, dtype=np.float32))
init("inv_sqrt", np.array(1 / np.sqrt(DH), dtype=np.float32))
init("split", np.array([D, D, D], dtype=np.int64))
init("heads", np.array([1, T, H, DH], dtype=np.int64)); init("merge", np.array([1, T, D], dtype=np.int64))
init("half", np.array(0.5, dtype=np.float32)); init("one", np.array(1.0, dtype=np.float32))
init("sqrt2", np.array(np.sqrt(2.0), dtype=np.float32))
h = n("Add", [n("Gather", ["wte", "ids"], ["e"], axis=0), "wpe"], ["h0"])
def ln(x, tag):
    g = init(f"{tag}_g", (1 + 0.1 * rng.standard_normal(D)).astype(np.float32))
    b = init(f"{tag}_b", (0.1 * rng.standard_normal(D)).astype(np.float32))
    return n("LayerNormalization", [x, g, b], [f"{tag}_out"], axis=-1, epsilon=1e-5)
for l in range(L):
    p = f"b{l}"
    x = ln(h, f"{p}_ln1")
    qkv = n("Add", [n("MatMul", [x, w(f"{p}_wqkv", (D, 3 * D), 0.15)], [f"{p}_qkv0"]), w(f"{p}_bqkv", (3 * D,), 0.02)], [f"{p}_qkv"])
    q, k, v = f"{p}_q", f"{p}_k", f"{p}_v"
    n("Split", [qkv, "split"], [q, k, v], axis=-1)
    qh = n("Transpose", [n("Reshape", [q, "heads"], [f"{p}_q4"])], [f"{p}_qh"], perm=[0, 2, 1, 3])
    kh = n("Transpose", [n("Reshape", [k, "heads"], [f"{p}_k4"])], [f"{p}_kh"], perm=[0, 2, 3, 1])
    vh = n("Transpose", [n("Reshape", [v, "heads"], [f"{p}_v4"])], [f"{p}_vh"], perm=[0, 2, 1, 3])
    s = n("Mul", [n("MatMul", [qh, kh], [f"{p}_s0"]), "inv_sqrt"], [f"{p}_s"])
    a = n("Softmax", [n("Where", ["mask", s, "neg_inf"], [f"{p}_sm"])], [f"{p}_a"], axis=-1)
    o = n("Reshape", [n("Transpose", [n("MatMul", [a, vh], [f"{p}_o4"])], [f"{p}_ot"], perm=[0, 2, 1, 3]), "merge"], [f"{p}_o"])
    o = n("Add", [n("MatMul", [o, w(f"{p}_wo", (D, D), 0.12)], [f"{p}_proj0"]), w(f"{p}_bo", (D,), 0.02)], [f"{p}_proj"])
    h = n("Add", [h, o], [f"{p}_h1"])
    x = ln(h, f"{p}_ln2")
    f = n("Add", [n("MatMul", [x, w(f"{p}_w1", (D, 4 * D), 0.12)], [f"{p}_f0"]), w(f"{p}_b1", (4 * D,), 0.02)], [f"{p}_f"])
    erf = n("Erf", [n("Div", [f, "sqrt2"], [f"{p}_fd"])], [f"{p}_erf"])
    g = n("Mul", [n("Mul", [f, n("Add", [erf, "one"], [f"{p}_e1"])], [f"{p}_g0"]), "half"], [f"{p}_g"])
    m = n("Add", [n("MatMul", [g, w(f"{p}_w2", (4 * D, D), 0.06)], [f"{p}_m0"]), w(f"{p}_b2", (D,), 0.02)], [f"{p}_m"])
    h = n("Add", [h, m], [f"{p}_h2"])
logits = n("MatMul", [ln(h, "lnf"), w("lm_head", (D, V), 0.15)], ["logits"])
graph = helper.make_graph(nodes, "gpt-unshipped",
    [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, T])],
    [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, T, V])], inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
onnx.checker.check_model(model)
out = sys.argv[1]
onnx.save(model, f"{out}/model.onnx")
ids = lambda k: rng.integers(0, V, size=(k, T)).tolist()
json.dump({"input_data": ids(32)}, open(f"{out}/calibration.json", "w"))
json.dump({"input_data": ids(1)}, open(f"{out}/input.json", "w"))
print("params", sum(int(np.prod(i.dims)) for i in inits if i.data_type == TensorProto.FLOAT))
