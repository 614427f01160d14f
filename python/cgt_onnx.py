#!/usr/bin/env python3
"""Exports a cgt checkpoint as an ONNX model, and runs one under onnxruntime.

    python python/cgt_onnx.py export CHECKPOINT --out model.onnx
    python python/cgt_onnx.py run model.onnx DATA [--split test] [--out predictions.csv]

The model takes `x` ([N] + feature_shape, float32) and returns every exit's logits, in exit
order (`exit1_logits`, ...), computed as cgt computes them at inference: BatchNorm with the
checkpoint's stored statistics (the ones its evaluation measured), no dropout. The exit policy
travels as metadata (`cgt_exit_policy`: criterion, thresholds, fallback, as JSON), with the
class names, ClassyNet's exit classes and the checkpoint's provenance; applying it is a few
lines on the outputs (see README.md, "PyTorch and ONNX"). `run` writes the columns of
`cgt eval`'s samples.csv that do not depend on the policy, as hdf5_data/checkpoint_forward.py does.

Needs h5py, NumPy and onnx; `run` needs onnxruntime (launch/setup installs them into .venv/).
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cgt_checkpoint import BATCHNORM_EPSILON, features, read, text, write_predictions  # noqa: E402

OPSET = 17


def export(checkpoint, out):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = read(checkpoint)
    state = {name: value.astype(np.float32) for name, value in model.state.items()}
    initializers, nodes = [], []

    def constant(name):
        initializers.append(numpy_helper.from_array(state[name], name))
        return name

    def node(op, inputs, name, **attributes):
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attributes))
        return name

    def batch_norm(prefix, x):
        if f"{prefix}.weight" not in state:
            return x
        return node("BatchNormalization", [x] + [constant(f"{prefix}.{p}") for p in
                                                 ("weight", "bias", "running_mean", "running_var")],
                    f"{prefix}", epsilon=BATCHNORM_EPSILON)

    def linear(prefix, x):
        return node("Gemm", [x, constant(f"{prefix}.weight"), constant(f"{prefix}.bias")], prefix, transB=1)

    def conv(prefix, x):
        k = state[f"{prefix}.weight"].shape[-1]
        return node("Conv", [x, constant(f"{prefix}.weight"), constant(f"{prefix}.bias")], prefix,
                    kernel_shape=[k, k], pads=[k // 2] * 4)

    def residual_block(prefix, x):
        """torchvision's BasicBlock without stride; the shortcut projects where the channels change."""
        h = node("Relu", [batch_norm(f"{prefix}.bn1", conv(f"{prefix}.conv1", x))], f"{prefix}.relu1")
        h = batch_norm(f"{prefix}.bn2", conv(f"{prefix}.conv2", h))
        if f"{prefix}.downsample.0.weight" in state:
            x = batch_norm(f"{prefix}.downsample.1", conv(f"{prefix}.downsample.0", x))
        return node("Relu", [node("Add", [h, x], f"{prefix}.add")], f"{prefix}.relu")

    x = "x"
    if model.kind == "mlp" and len(model.feature_shape) > 1:
        x = node("Flatten", [x], "flatten", axis=1)
    outputs = []
    previous = None  # the last exit's logits, for boosted exits
    for i in range(model.blocks):
        prefix = f"blocks.{i}"
        if model.kind == "mlp":
            x = linear(f"{prefix}.linear", x)
            x = node("Relu", [batch_norm(f"{prefix}.bn", x)], f"{prefix}.relu")
        elif model.kind == "resnet":
            # The stem in stage 0, a 2x2 max pool before every later stage, then its residual blocks.
            if i == 0:
                x = node("Relu", [batch_norm(f"{prefix}.bn", conv(f"{prefix}.conv", x))], f"{prefix}.relu")
            else:
                x = node("MaxPool", [x], f"{prefix}.pool", kernel_shape=[2, 2], strides=[2, 2])
            b = 0
            while f"{prefix}.{b}.conv1.weight" in state:
                x = residual_block(f"{prefix}.{b}", x)
                b += 1
        else:
            x = conv(f"{prefix}.conv", x)
            x = node("Relu", [batch_norm(f"{prefix}.bn", x)], f"{prefix}.relu")
            x = node("MaxPool", [x], f"{prefix}.pool", kernel_shape=[2, 2], strides=[2, 2])
        if i + 1 in model.exits:
            e = model.exits.index(i + 1)
            h = x
            if model.kind != "mlp":
                h = node("Flatten", [node("GlobalAveragePool", [h], f"exits.{e}.pool")], f"exits.{e}.flatten", axis=1)
            logits = linear(f"exits.{e}.linear", h)
            if model.boosted and previous is not None:
                # Boosted exits answer with the running sum of the heads' logits.
                logits = node("Add", [previous, logits], f"exits.{e}.boosted")
            previous = logits
            outputs.append(node("Identity", [logits], f"exit{e + 1}_logits"))

    widths = [state[f"exits.{e}.linear.bias"].shape[0] for e in range(len(outputs))]
    graph = helper.make_graph(
        nodes, "cgt_early_exit",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N"] + model.feature_shape)],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", w]) for name, w in zip(outputs, widths)],
        initializers)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                   producer_name="cgt", producer_version=text(model.attributes.get("cgt_version", "")))
    onnx_model.ir_version = 8
    metadata = {
        "cgt_exit_policy": json.dumps(model.policy),
        "cgt_class_names": json.dumps(model.class_names),
        "cgt_exit_classes": json.dumps(model.exit_classes.tolist() if model.exit_classes is not None else None),
        "cgt_epoch": str(int(model.attributes["epoch"])),
        "cgt_batchnorm_statistics": text(model.attributes.get("batchnorm_statistics", "training")),
        "cgt_data_sha256": text(model.attributes.get("data_sha256", "")),
        "cgt_checkpoint": os.path.abspath(checkpoint),
    }
    helper.set_model_props(onnx_model, metadata)
    onnx.checker.check_model(onnx_model)
    # Written whole or not at all, as cgt writes its own files.
    temporary = f"{out}.tmp-{os.getpid()}"
    with open(temporary, "wb") as f:
        f.write(onnx_model.SerializeToString())
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, out)
    print(f"wrote {out}: {len(outputs)} exits, opset {OPSET}, policy {metadata['cgt_exit_policy']}")


def run(model_path, data, split, out):
    import h5py
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    with h5py.File(data, "r") as f:
        x = features(f, split)
        y = f[f"{split}/y"][()]
    logits = session.run(None, {"x": x})
    classes = len(json.loads(session.get_modelmeta().custom_metadata_map["cgt_class_names"]))
    write_predictions(out, y, [z.astype(np.float64) for z in logits], classes)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    e = commands.add_parser("export", help="write CHECKPOINT as an ONNX model")
    e.add_argument("checkpoint")
    e.add_argument("--out", required=True)
    r = commands.add_parser("run", help="run an exported model under onnxruntime on a split of DATA")
    r.add_argument("model")
    r.add_argument("data")
    r.add_argument("--split", default="test")
    r.add_argument("--out", help="CSV file (default: standard output)")
    args = parser.parse_args()
    if args.command == "export":
        export(args.checkpoint, args.out)
    else:
        run(args.model, args.data, args.split, args.out)


if __name__ == "__main__":
    main()
