#!/usr/bin/env python3
"""Builds the tiny ONNX models landwatch's tests and bench use, whose output is known exactly.

Usage (needs the `onnx` and `numpy` packages, e.g. in a virtual environment outside the repository):

    python3 -m venv /tmp/onnx-venv && /tmp/onnx-venv/bin/pip install onnx numpy
    /tmp/onnx-venv/bin/python scripts/make_test_models.py fixtures/models

Every "absdiff" model computes, per pixel, from the normalised before (a) and after (b) images
of C = 3 channels:

    d = mean over c of |a_c - b_c|
    z = GAIN * (d - OFFSET)
    change probability = sigmoid(z)

with GAIN = 8 and OFFSET = 0.5, in four shapes of output and input:

- absdiff_pair.onnx:     inputs t1, t2 [1, 3, H, W]; output prob [1, 1, H, W] = sigmoid(z)
- absdiff_stacked.onnx:  input x [1, 6, H, W] (before channels, then after); output prob
- absdiff_logit.onnx:    inputs t1, t2; output logit [1, 1, H, W] = z
- absdiff_softmax2.onnx: inputs t1, t2; output scores [1, 2, H, W] = (-z/2, z/2), so that the
                         softmax's channel 1 is sigmoid(z)
- absdiff_fixed64.onnx:  like absdiff_pair, but with a fixed 64 x 64 input (to test tile checks)

H and W are dynamic except in absdiff_fixed64. The tests recompute the function in Rust
(tests/integration/onnx.rs) and compare.

convnet_bench.onnx is a small convolutional network with fixed pseudo-random weights
(concatenate the dates, 3x3 conv 6->16, ReLU, 3x3 conv 16->16, ReLU, 1x1 conv 16->1, sigmoid) on
fixed 256 x 256 tiles, so that the bench (benches/onnx.rs) measures work of a realistic kind; its
output is not meaningful.

The script is deterministic: running it again writes byte-identical files.
"""

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

GAIN = 8.0
OFFSET = 0.5
OPSET = 17
CHANNELS = 3


def const(name, value):
    return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)


def tensor(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def absdiff_nodes(a, b):
    """Nodes computing z = GAIN * (mean_c |a - b| - OFFSET) into the tensor "z"."""
    return [
        helper.make_node("Sub", [a, b], ["diff"], name="diff"),
        helper.make_node("Abs", ["diff"], ["absdiff"], name="absdiff"),
        helper.make_node("ReduceMean", ["absdiff"], ["d"], name="d", axes=[1], keepdims=1),
        helper.make_node("Sub", ["d", "offset"], ["centred"], name="centred"),
        helper.make_node("Mul", ["centred", "gain"], ["z"], name="z"),
    ]


def save(model, out_dir, name):
    model.producer_name = "landwatch scripts/make_test_models.py"
    model.producer_version = "1"
    onnx.checker.check_model(model, full_check=True)
    path = os.path.join(out_dir, name)
    onnx.save(model, path)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def make_model(graph):
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8
    )


def pair_model(out_dir, name, tail, output, out_channels, size=("H", "W")):
    h, w = size
    inputs = [tensor("t1", [1, CHANNELS, h, w]), tensor("t2", [1, CHANNELS, h, w])]
    graph = helper.make_graph(
        absdiff_nodes("t1", "t2") + tail,
        name.removesuffix(".onnx"),
        inputs,
        [tensor(output, [1, out_channels, h, w])],
        initializer=[const("gain", GAIN), const("offset", OFFSET), const("minus_half", -0.5), const("half", 0.5)],
    )
    save(make_model(graph), out_dir, name)


def stacked_model(out_dir):
    starts_a = numpy_helper.from_array(np.array([0], dtype=np.int64), "starts_a")
    ends_a = numpy_helper.from_array(np.array([CHANNELS], dtype=np.int64), "ends_a")
    starts_b = numpy_helper.from_array(np.array([CHANNELS], dtype=np.int64), "starts_b")
    ends_b = numpy_helper.from_array(np.array([2 * CHANNELS], dtype=np.int64), "ends_b")
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
    nodes = [
        helper.make_node("Slice", ["x", "starts_a", "ends_a", "axes"], ["a"], name="a"),
        helper.make_node("Slice", ["x", "starts_b", "ends_b", "axes"], ["b"], name="b"),
    ]
    nodes += absdiff_nodes("a", "b")
    nodes.append(helper.make_node("Sigmoid", ["z"], ["prob"], name="prob"))
    graph = helper.make_graph(
        nodes,
        "absdiff_stacked",
        [tensor("x", [1, 2 * CHANNELS, "H", "W"])],
        [tensor("prob", [1, 1, "H", "W"])],
        initializer=[const("gain", GAIN), const("offset", OFFSET), starts_a, ends_a, starts_b, ends_b, axes],
    )
    save(make_model(graph), out_dir, "absdiff_stacked.onnx")


def convnet_model(out_dir):
    rng = np.random.default_rng(20240607)
    hidden = 16
    w1 = rng.normal(0, 0.2, (hidden, 2 * CHANNELS, 3, 3)).astype(np.float32)
    b1 = rng.normal(0, 0.1, (hidden,)).astype(np.float32)
    w2 = rng.normal(0, 0.1, (hidden, hidden, 3, 3)).astype(np.float32)
    b2 = rng.normal(0, 0.1, (hidden,)).astype(np.float32)
    w3 = rng.normal(0, 0.3, (1, hidden, 1, 1)).astype(np.float32)
    b3 = np.zeros((1,), dtype=np.float32)
    inits = [numpy_helper.from_array(v, n) for n, v in
             [("w1", w1), ("b1", b1), ("w2", w2), ("b2", b2), ("w3", w3), ("b3", b3)]]
    nodes = [
        helper.make_node("Concat", ["t1", "t2"], ["x"], name="x", axis=1),
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="c1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="r1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="c2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="r2"),
        helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"], name="c3"),
        helper.make_node("Sigmoid", ["c3"], ["prob"], name="prob"),
    ]
    size = 256
    graph = helper.make_graph(
        nodes,
        "convnet_bench",
        [tensor("t1", [1, CHANNELS, size, size]), tensor("t2", [1, CHANNELS, size, size])],
        [tensor("prob", [1, 1, size, size])],
        initializer=inits,
    )
    save(make_model(graph), out_dir, "convnet_bench.onnx")


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "fixtures/models"
    os.makedirs(out_dir, exist_ok=True)
    sigmoid = [helper.make_node("Sigmoid", ["z"], ["prob"], name="prob")]
    pair_model(out_dir, "absdiff_pair.onnx", sigmoid, "prob", 1)
    pair_model(out_dir, "absdiff_fixed64.onnx", sigmoid, "prob", 1, size=(64, 64))
    pair_model(
        out_dir, "absdiff_logit.onnx",
        [helper.make_node("Identity", ["z"], ["logit"], name="logit")], "logit", 1,
    )
    pair_model(
        out_dir, "absdiff_softmax2.onnx",
        [
            helper.make_node("Mul", ["z", "minus_half"], ["no_change"], name="no_change"),
            helper.make_node("Mul", ["z", "half"], ["change"], name="change"),
            helper.make_node("Concat", ["no_change", "change"], ["scores"], name="scores", axis=1),
        ],
        "scores", 2,
    )
    stacked_model(out_dir)
    convnet_model(out_dir)


if __name__ == "__main__":
    main()
