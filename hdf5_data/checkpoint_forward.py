#!/usr/bin/env python3
"""Recomputes a cgt checkpoint's early-exit network in NumPy, from the HDF5 files alone.

    python3 hdf5_data/checkpoint_forward.py CHECKPOINT DATA [--split test] [--out FILE.csv]

The parameters are read under the names and shapes of a PyTorch state_dict (Linear weight
[out, in], Conv2d weight [out, in, kh, kw], BatchNorm weight, bias, running_mean, running_var;
a ResNet's residual blocks as torchvision's BasicBlock: conv1, bn1, conv2, bn2, downsample.0,
downsample.1), the architecture from the checkpoint's `job` attribute, and every exit runs in inference mode:
BatchNorm with the stored running statistics, no dropout. One row per sample of the split, with
the columns of `cgt eval`'s samples.csv that do not depend on the exit policy: sample, label,
and each exit's prediction and maximum softmax probability. Compare with `cgt eval` of the
same checkpoint, which uses the stored statistics too (those its training's evaluation
re-estimated; `batchnorm_statistics` says which).

A ClassyNet head has one output more than there are classes, "other": where it wins, the
exit declines, written as prediction -1 and probability 0 as cgt does. With boosted exits
(`method.boosting` in the stored job) exit e answers with the sum of heads 0...e's logits.

Needs h5py and NumPy (Debian: python3-h5py); the checkpoint is read by python/cgt_checkpoint.py.
"""
import argparse
import os
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from cgt_checkpoint import BATCHNORM_EPSILON, cumulative, features, read, write_predictions  # noqa: E402


def linear(state, prefix, x):
    return x @ state[f"{prefix}.weight"].T + state[f"{prefix}.bias"]


def batch_norm(state, prefix, x):
    """Inference-mode BatchNorm over axis 1 (features or channels)."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean, var = state[f"{prefix}.running_mean"].reshape(shape), state[f"{prefix}.running_var"].reshape(shape)
    scale, shift = state[f"{prefix}.weight"].reshape(shape), state[f"{prefix}.bias"].reshape(shape)
    return (x - mean) / np.sqrt(var + BATCHNORM_EPSILON) * scale + shift


def conv2d(state, prefix, x):
    """Stride 1, zero padding k // 2: PyTorch's nn.Conv2d(in, out, k, padding=k // 2)."""
    weight, bias = state[f"{prefix}.weight"], state[f"{prefix}.bias"]
    k = weight.shape[-1]
    padded = np.pad(x, ((0, 0), (0, 0), (k // 2, k // 2), (k // 2, k // 2)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (k, k), axis=(2, 3))  # [N, C, H, W, k, k]
    return np.einsum("nchwij,ocij->nohw", windows, weight, optimize=True) + bias.reshape(1, -1, 1, 1)


def max_pool_2x2(x):
    n, c, h, w = x.shape
    x = x[:, :, : h // 2 * 2, : w // 2 * 2]
    return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def residual_block(state, prefix, x):
    """torchvision's BasicBlock without stride: ReLU(bn2(conv2(ReLU(bn1(conv1(x))))) + shortcut(x)),
    the shortcut a 1x1 convolution and BatchNorm ("downsample") where the channels change."""
    h = np.maximum(batch_norm(state, f"{prefix}.bn1", conv2d(state, f"{prefix}.conv1", x)), 0)
    h = batch_norm(state, f"{prefix}.bn2", conv2d(state, f"{prefix}.conv2", h))
    if f"{prefix}.downsample.0.weight" in state:
        x = batch_norm(state, f"{prefix}.downsample.1", conv2d(state, f"{prefix}.downsample.0", x))
    return np.maximum(h + x, 0)


def residual_indices(state, prefix):
    """The residual blocks of a ResNet stage, "<prefix>.0", "<prefix>.1", ..., in order."""
    parts = (name[len(prefix) + 1:].split(".")[0] for name in state if name.startswith(prefix + "."))
    return sorted({int(part) for part in parts if part.isdigit()})


def block(state, kind, index, x):
    prefix = f"blocks.{index}"
    if kind == "resnet":
        # Stage 0 starts with the stem Conv -> BatchNorm -> ReLU, every later one with a 2x2 max pool.
        if index == 0:
            x = np.maximum(batch_norm(state, f"{prefix}.bn", conv2d(state, f"{prefix}.conv", x)), 0)
        else:
            x = max_pool_2x2(x)
        for b in residual_indices(state, prefix):
            x = residual_block(state, f"{prefix}.{b}", x)
        return x
    if kind == "mlp":
        x = linear(state, f"{prefix}.linear", x)
        if f"{prefix}.bn.weight" in state:
            x = batch_norm(state, f"{prefix}.bn", x)
        return np.maximum(x, 0)  # dropout is the identity at inference
    x = conv2d(state, f"{prefix}.conv", x)
    if f"{prefix}.bn.weight" in state:
        x = batch_norm(state, f"{prefix}.bn", x)
    return max_pool_2x2(np.maximum(x, 0))


def head(state, kind, index, x):
    if kind in ("cnn", "resnet"):
        x = x.mean(axis=(2, 3))  # global average pooling
    return linear(state, f"exits.{index}.linear", x)


def exit_logits(state, kind, exits, blocks, x):
    """The logits of every exit, in exit order."""
    outputs = []
    for i in range(blocks):
        x = block(state, kind, i, x)
        if i + 1 in exits:
            outputs.append(head(state, kind, exits.index(i + 1), x))
    return outputs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("data")
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", help="CSV file (default: standard output)")
    args = parser.parse_args()

    model = read(args.checkpoint)
    state = {name: value.astype(np.float64) for name, value in model.state.items()}
    with h5py.File(args.data, "r") as f:
        x = features(f, args.split, np.float64)
        y = f[f"{args.split}/y"][()]
    logits = exit_logits(state, model.kind, model.exits, model.blocks, x)
    write_predictions(args.out, y, cumulative(logits) if model.boosted else logits, model.classes)


if __name__ == "__main__":
    main()
