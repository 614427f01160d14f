#!/usr/bin/env python3
"""The SoftCGT training step of `cgt bench` in PyTorch CPU, timed the same way.

The paper's MLP (200 features -> 5 x [Linear 256, BatchNorm1d, ReLU, Dropout 0.2], exits after
blocks 1, 3 and 5, 16 classes) or CNN (1x28x28 -> 3 x [Conv 3x3, BatchNorm2d, ReLU, MaxPool 2],
32/64/128 channels, a GlobalAveragePool -> Linear exit after each block, 10 classes); every exit
runs forward, SoftCGT's gates (Eq. 6-7, tau 0.9) weight the per-sample losses with the gates
held constant, the backward pass and Adam. Inputs are one fixed batch of normal values, as in
cgt's benchmark. Prints one JSON object: samples per second and what ran.

A benchmark dependency only: launch/bench-vs-pytorch installs torch into a git-ignored venv.
"""
import argparse
import json
import time

import torch
from torch import nn
import torch.nn.functional as F


class EarlyExitMLP(nn.Module):
    def __init__(self, inputs=200, width=256, depth=5, exits=(1, 3, 5), classes=16, dropout=0.2):
        super().__init__()
        sizes = [inputs] + [width] * depth
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(sizes[i], width), nn.BatchNorm1d(width), nn.ReLU(), nn.Dropout(dropout))
            for i in range(depth))
        self.exit_after = [e - 1 for e in exits]
        self.exits = nn.ModuleList(nn.Linear(width, classes) for _ in exits)

    def forward(self, x):
        outputs, heads = [], iter(self.exits)
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.exit_after:
                outputs.append(next(heads)(x))
        return outputs


class EarlyExitCNN(nn.Module):
    def __init__(self, channels=(32, 64, 128), classes=10):
        super().__init__()
        widths = [1] + list(channels)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(widths[i], widths[i + 1], 3, padding=1), nn.BatchNorm2d(widths[i + 1]),
                          nn.ReLU(), nn.MaxPool2d(2))
            for i in range(len(channels)))
        self.exits = nn.ModuleList(nn.Linear(c, classes) for c in channels)

    def forward(self, x):
        outputs = []
        for block, head in zip(self.blocks, self.exits):
            x = block(x)
            outputs.append(head(x.mean(dim=(2, 3))))
        return outputs


def softcgt_loss(logits, labels, tau=0.9):
    """Sum over exits of lambda_e * CE_e, mean over the batch; lambda_1 = 1 and
    lambda_e = prod_{e' < e} (1 - sigmoid(s_e' - tau)) with s the maximum probability."""
    total, gate = 0.0, torch.ones(labels.shape[0])
    for e, z in enumerate(logits):
        total = total + (gate * F.cross_entropy(z, labels, reduction="none")).mean()
        with torch.no_grad():
            score = F.softmax(z, dim=1).max(dim=1).values
            gate = gate * (1 - torch.sigmoid(score - tau))
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--channels-last", action="store_true", help="CNN tensors in NHWC (PyTorch's fast CPU layout)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    batch = args.batch or (128 if args.model == "cnn" else 256)
    if args.model == "mlp":
        model, x, classes = EarlyExitMLP(), torch.randn(batch, 200), 16
    else:
        model, x, classes = EarlyExitCNN(), torch.randn(batch, 1, 28, 28), 10
        if args.channels_last:
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, classes, (batch,))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()

    def step():
        optimizer.zero_grad(set_to_none=True)
        softcgt_loss(model(x), labels).backward()
        optimizer.step()

    for _ in range(max(3, args.steps // 5)):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = time.perf_counter() - start
    print(json.dumps({
        "model": args.model, "batch": batch, "steps": args.steps, "threads": torch.get_num_threads(),
        "channelsLast": args.channels_last, "samplesPerSecond": batch * args.steps / seconds,
        "torch": torch.__version__, "mkldnn": torch.backends.mkldnn.is_available(),
        "cpuCapability": torch.backends.cpu.get_cpu_capability(),
    }))


if __name__ == "__main__":
    main()
