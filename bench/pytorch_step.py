#!/usr/bin/env python3
"""The SoftCGT training step of `cgt bench` in PyTorch CPU, timed the same way.

The paper's MLP (200 features -> 5 x [Linear 256, BatchNorm1d, ReLU, Dropout 0.2], exits after
blocks 1, 3 and 5, 16 classes), its CNN (1x28x28 -> 3 x [Conv 3x3, BatchNorm2d, ReLU, MaxPool 2],
32/64/128 channels, a GlobalAveragePool -> Linear exit after each block, 10 classes) or cgt's
residual backbone (`--model resnet`, `ResNetArchitecture`'s defaults: a Conv 3x3 -> BatchNorm2d
-> ReLU stem of 16 channels, stages of 16/32/64 channels with one basic residual block each, a
2x2 max pool before every stage but the first, a GlobalAveragePool -> Linear exit after each
stage, 10 classes); every exit runs forward, SoftCGT's gates (Eq. 6-7, tau 0.9) weight the
per-sample losses with the gates held constant, the backward pass and Adam. Inputs are one fixed
batch of normal values, as in cgt's benchmark. Prints one JSON object: samples per second, what
ran, and what PyTorch dispatched to ("dispatch": ATen's CPU capability, and the instruction sets
and kernels oneDNN and MKL report for one more step run with their verbose output on).

A benchmark dependency only: launch/bench-vs-pytorch installs torch into a git-ignored venv.
"""
import argparse
import collections
import ctypes
import json
import os
import sys
import tempfile
import time

import torch
from torch import nn
import torch.nn.functional as F


class ExitsAfterBlocks(nn.Module):
    """Runs `self.blocks` in turn; after the blocks of `self.exit_after` (0-based), the next of
    `self.exits` reads the block's output. Returns every exit's logits."""

    def forward(self, x):
        outputs, heads = [], iter(self.exits)
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.exit_after:
                outputs.append(next(heads)(x))
        return outputs


class EarlyExitMLP(ExitsAfterBlocks):
    def __init__(self, inputs=200, width=256, depth=5, exits=(1, 3, 5), classes=16, dropout=0.2):
        super().__init__()
        sizes = [inputs] + [width] * depth
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(sizes[i], width), nn.BatchNorm1d(width), nn.ReLU(), nn.Dropout(dropout))
            for i in range(depth))
        self.exit_after = [e - 1 for e in exits]
        self.exits = nn.ModuleList(nn.Linear(width, classes) for _ in exits)


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


class GlobalAveragePool(nn.Module):
    """The mean of every channel's map: [N, C, H, W] -> [N, C]."""

    def forward(self, x):
        return x.mean(dim=(2, 3))


class BasicBlock(nn.Module):
    """cgt's `ResidualBlock`: torchvision's `BasicBlock` at stride 1 with `bias=True` convolutions.

    y = ReLU(BN2(conv2(ReLU(BN1(conv1(x))))) + shortcut(x)), the shortcut the identity when the
    channel count stays, else a 1x1 convolution (with a bias, as every cgt `Conv2D`) and a
    BatchNorm without a ReLU ("downsample.0", "downsample.1").
    """

    def __init__(self, inplanes, planes, kernel=3):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel, padding=kernel // 2, bias=True)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, kernel, padding=kernel // 2, bias=True)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = (
            nn.Sequential(nn.Conv2d(inplanes, planes, 1, bias=True), nn.BatchNorm2d(planes))
            if inplanes != planes else None)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class EarlyExitResNet(ExitsAfterBlocks):
    """The PyTorch twin of cgt's `ResNetArchitecture` (Sources/CGTModel/ResNet.swift), key for key:
    blocks.0 = {conv, bn, relu, "0": BasicBlock, ...}, blocks.s = {pool, "0": BasicBlock, ...}
    for s > 0, exits.e = {gap, linear}; so `blocks.1.0.conv1.weight` is torchvision's
    `layer2.0.conv1.weight`. H and W halve by the max pool before a stage, not by strides."""

    def __init__(self, in_channels=1, stem_channels=16, channels=(16, 32, 64), blocks_per_stage=1,
                 exits_after=(1, 2, 3), classes=10, kernel=3):
        super().__init__()
        stages, width = [], stem_channels
        for s, planes in enumerate(channels):
            if s == 0:
                layers = [("conv", nn.Conv2d(in_channels, stem_channels, kernel, padding=kernel // 2, bias=True)),
                          ("bn", nn.BatchNorm2d(stem_channels)), ("relu", nn.ReLU(inplace=True))]
            else:
                layers = [("pool", nn.MaxPool2d(2))]
            for b in range(blocks_per_stage):
                layers.append((str(b), BasicBlock(width, planes, kernel)))
                width = planes
            stages.append(nn.Sequential(collections.OrderedDict(layers)))
        self.blocks = nn.ModuleList(stages)
        self.exit_after = [e - 1 for e in exits_after]
        self.exits = nn.ModuleList(
            nn.Sequential(collections.OrderedDict([("gap", GlobalAveragePool()),
                                                   ("linear", nn.Linear(channels[e - 1], classes))]))
            for e in exits_after)


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


def dispatch_report(step):
    """Runs `step` once more with oneDNN's and MKL's verbose output on and reads it back from file
    descriptor 1: the instruction set each library says it dispatches to and the kernels it ran.
    ATen's own kernels (BatchNorm, ReLU, pooling, softmax, Adam) dispatch on `cpuCapability`."""
    report = {"aten": torch.backends.cpu.get_cpu_capability(), "onednnIsa": None, "onednnKernels": [],
              "mklIsa": None, "mklCalls": []}
    sys.stdout.flush()
    libc = ctypes.CDLL(None)
    saved = os.dup(1)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 1)
        try:
            with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON), \
                    torch.backends.mkl.verbose(torch.backends.mkl.VERBOSE_ON):
                step()
        except Exception as error:  # a build without verbose support: report what is known
            report["verboseError"] = str(error)
        finally:
            libc.fflush(None)
            os.dup2(saved, 1)
            os.close(saved)
        capture.seek(0)
        text = capture.read().decode(errors="replace")
    kernels, calls = set(), set()
    for line in text.splitlines():
        if line.startswith(("onednn_verbose", "dnnl_verbose")):
            fields = line.split(",")
            if "isa:" in line and "info" in fields:
                report["onednnIsa"] = line.split("isa:", 1)[1].strip()
            elif "exec" in fields:
                i = fields.index("exec")  # exec,cpu,<primitive>,<implementation>,<propagation>,...
                if len(fields) > i + 4:
                    kind, implementation, propagation = fields[i + 2:i + 5]
                    kernels.add(f"{kind} {implementation}" + ("" if propagation == "undef" else f" {propagation}"))
        elif line.startswith("MKL_VERBOSE"):
            rest = line[len("MKL_VERBOSE"):].strip()
            if rest.startswith(("oneMKL", "Intel(R) MKL", "Intel(R) oneAPI")):
                # "... for Intel(R) 64 architecture <code path>, Lnx ...": on Intel CPUs the code path
                # names an instruction set ("Intel(R) Advanced Vector Extensions 2 (Intel(R) AVX2)
                # enabled processors"); on others MKL says "Intel(R) Architecture processors" only.
                isa = rest.split(" architecture ", 1)[-1]
                report["mklIsa"] = isa.split(", Lnx", 1)[0].strip()
            elif "(" in rest:
                calls.add(rest.split("(", 1)[0])
    report["onednnKernels"], report["mklCalls"] = sorted(kernels), sorted(calls)
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=["mlp", "cnn", "resnet"], default="mlp")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--channels-last", action="store_true",
                        help="CNN and ResNet tensors in NHWC (PyTorch's fast CPU layout)")
    parser.add_argument("--no-dispatch", action="store_true",
                        help="skip the extra verbose step that reports what oneDNN and MKL ran")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    batch = args.batch or (256 if args.model == "mlp" else 128)
    if args.model == "mlp":
        model, x, classes = EarlyExitMLP(), torch.randn(batch, 200), 16
    else:
        model = EarlyExitCNN() if args.model == "cnn" else EarlyExitResNet()
        x, classes = torch.randn(batch, 1, 28, 28), 10
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
    dispatch = None if args.no_dispatch else dispatch_report(step)
    print(json.dumps({
        "model": args.model, "batch": batch, "steps": args.steps, "threads": torch.get_num_threads(),
        "channelsLast": args.channels_last, "samplesPerSecond": batch * args.steps / seconds,
        "torch": torch.__version__, "mkldnn": torch.backends.mkldnn.is_available(),
        "cpuCapability": torch.backends.cpu.get_cpu_capability(),
        "parameters": sum(p.numel() for p in model.parameters()), "dispatch": dispatch,
        "isaEnvironment": {k: os.environ[k] for k in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY",
                                                      "MKL_ENABLE_INSTRUCTIONS") if k in os.environ},
    }), flush=True)


if __name__ == "__main__":
    main()
