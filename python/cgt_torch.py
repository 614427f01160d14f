"""A cgt checkpoint as a PyTorch nn.Module, with its exit policy.

    import sys; sys.path.insert(0, "python")
    from cgt_torch import load
    model = load("runs/demo/checkpoints/last.h5")   # eval mode, float32
    logits = model(x)                                # every exit's logits, in exit order
    prediction, exit_index = model.early_exit(x)     # the stored policy: first confident exit answers

The network is rebuilt from the checkpoint's job (MLP or CNN, with or without BatchNorm, or
ResNet with torchvision's BasicBlock names; a ClassyNet exit's extra "other" output declines) and its tensors are loaded under their own
names with `load_state_dict(strict=True)`, so a checkpoint that does not fit fails loudly.
Fine-tune it like any module; `save_state_dict` writes a state_dict back into a copy of a
cgt checkpoint, for `cgt train --resume` or `cgt eval` (README.md, "PyTorch and ONNX").

Imports only h5py, NumPy and torch.
"""
import math
import os
import shutil
import sys
from collections import OrderedDict

import h5py
import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cgt_checkpoint import BATCHNORM_EPSILON, read  # noqa: E402


class MLPBlock(nn.Module):
    def __init__(self, n_in, n_out, batchnorm):
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)
        self.bn = nn.BatchNorm1d(n_out, eps=BATCHNORM_EPSILON) if batchnorm else None
        self.relu = nn.ReLU()

    def forward(self, x):
        x = self.linear(x)
        return self.relu(self.bn(x) if self.bn is not None else x)


class CNNBlock(nn.Module):
    def __init__(self, c_in, c_out, kernel, batchnorm):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2)
        self.bn = nn.BatchNorm2d(c_out, eps=BATCHNORM_EPSILON) if batchnorm else None
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        x = self.conv(x)
        return self.pool(self.relu(self.bn(x) if self.bn is not None else x))


class BasicBlock(nn.Module):
    """torchvision's BasicBlock without stride, with biased convolutions as cgt's (BatchNorm
    cancels them): ReLU(bn2(conv2(ReLU(bn1(conv1(x))))) + shortcut(x)), the shortcut a 1x1
    convolution and BatchNorm (`downsample`) where the channels change."""

    def __init__(self, c_in, c_out, kernel, projects):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2)
        self.bn1 = nn.BatchNorm2d(c_out, eps=BATCHNORM_EPSILON)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, kernel, padding=kernel // 2)
        self.bn2 = nn.BatchNorm2d(c_out, eps=BATCHNORM_EPSILON)
        self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1), nn.BatchNorm2d(c_out, eps=BATCHNORM_EPSILON)) \
            if projects else None

    def forward(self, x):
        h = self.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return self.relu(h + (self.downsample(x) if self.downsample is not None else x))


def resnet_stage(state, i):
    """Stage i of cgt's ResNet: the stem (stage 0) or a 2x2 max pool, then residual blocks "0", "1", ..."""
    prefix = f"blocks.{i}"
    layers = OrderedDict()
    if i == 0:
        out, c_in, k, _ = state[f"{prefix}.conv.weight"].shape
        layers.update(conv=nn.Conv2d(c_in, out, k, padding=k // 2), bn=nn.BatchNorm2d(out, eps=BATCHNORM_EPSILON),
                      relu=nn.ReLU())
    else:
        layers["pool"] = nn.MaxPool2d(2)
    b = 0
    while f"{prefix}.{b}.conv1.weight" in state:
        out, c_in, k, _ = state[f"{prefix}.{b}.conv1.weight"].shape
        layers[str(b)] = BasicBlock(c_in, out, k, f"{prefix}.{b}.downsample.0.weight" in state)
        b += 1
    return nn.Sequential(layers)


class Exit(nn.Module):
    def __init__(self, n_in, outputs, pooled):
        super().__init__()
        self.pooled = pooled
        self.linear = nn.Linear(n_in, outputs)

    def forward(self, x):
        return self.linear(x.mean(dim=(2, 3)) if self.pooled else x.flatten(1))


class EarlyExitNetwork(nn.Module):
    """cgt's early-exit network: `blocks`, and `exits` after the blocks `exit_after` names."""

    def __init__(self, stored):
        super().__init__()
        state, kind = stored.state, stored.kind
        blocks = []
        for i in range(stored.blocks):
            batchnorm = f"blocks.{i}.bn.weight" in state
            if kind == "mlp":
                out, n_in = state[f"blocks.{i}.linear.weight"].shape
                blocks.append(MLPBlock(n_in, out, batchnorm))
            elif kind == "resnet":
                blocks.append(resnet_stage(state, i))
            else:
                out, c_in, k, _ = state[f"blocks.{i}.conv.weight"].shape
                blocks.append(CNNBlock(c_in, out, k, batchnorm))
        self.blocks = nn.ModuleList(blocks)
        self.exits = nn.ModuleList(
            Exit(state[f"exits.{e}.linear.weight"].shape[1], state[f"exits.{e}.linear.weight"].shape[0], kind != "mlp")
            for e in range(len(stored.exits)))
        self.exit_after = [e - 1 for e in stored.exits]
        self.boosted = stored.boosted  # exit e answers with the summed logits of heads 0...e
        self.flatten_input = kind == "mlp"
        self.classes = stored.classes
        self.class_names = stored.class_names
        self.policy = stored.policy
        self.exit_classes = None if stored.exit_classes is None else torch.tensor(stored.exit_classes, dtype=torch.bool)

    def forward(self, x):
        """Every exit's logits, in exit order."""
        if self.flatten_input:
            x = x.flatten(1)
        outputs = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.exit_after:
                logits = self.exits[self.exit_after.index(i)](x)
                outputs.append(logits + outputs[-1] if self.boosted and outputs else logits)
        return outputs

    @torch.no_grad()
    def early_exit(self, x):
        """The stored exit policy per sample: (prediction, index of the exit that answered).

        The first exit whose confidence reaches its threshold answers; a ClassyNet exit whose
        "other" output wins declines. When none answers, `fallback` decides: the last exit,
        or the most confident one. Confidence is the policy's criterion of cgt eval: the
        maximum probability, 1 - H(p) / log C, or the top-1 minus top-2 probability.
        """
        criterion, thresholds, fallback = self.policy["criterion"], self.policy["thresholds"], self.policy["fallback"]
        n = x.shape[0]
        prediction = torch.full((n,), -1, dtype=torch.long)
        answered_by = torch.full((n,), -1, dtype=torch.long)
        best = torch.full((n,), -math.inf, dtype=torch.float64)
        best_prediction = torch.zeros(n, dtype=torch.long)
        best_exit = torch.zeros(n, dtype=torch.long)
        for e, logits in enumerate(self.forward(x)):
            p = torch.softmax(logits.double(), dim=1)  # every output, ClassyNet's "other" included, as cgt scores
            top = p.max(dim=1)
            declines = top.indices == self.classes
            if criterion == "entropy":
                h = -(p * torch.log(p.clamp_min(1e-300))).sum(dim=1)
                score = (1 - h / math.log(self.classes)).clamp_min(0)
            elif criterion == "margin":
                two = p.topk(2, dim=1).values
                score = two[:, 0] - two[:, 1]
            else:
                score = top.values
            score = torch.where(declines, torch.zeros_like(score), score)
            guess = top.indices
            fires = (answered_by < 0) & ~declines & (score >= thresholds[e])
            prediction[fires], answered_by[fires] = guess[fires], e
            better = ~declines & (score > best)
            best[better], best_prediction[better], best_exit[better] = score[better], guess[better], e
            if e == len(self.exits) - 1:
                rest = answered_by < 0
                if fallback == "most_confident":
                    prediction[rest], answered_by[rest] = best_prediction[rest], best_exit[rest]
                else:
                    prediction[rest], answered_by[rest] = guess[rest], e
        return prediction, answered_by


def load(checkpoint):
    """The checkpoint's network in eval mode, its tensors loaded strictly."""
    stored = read(checkpoint)
    model = EarlyExitNetwork(stored)
    state = {name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in stored.state.items()}
    with h5py.File(checkpoint, "r") as f:
        f["model"].visititems(lambda name, obj: state.__setitem__(name.replace("/", "."), torch.tensor(obj[()]))
                              if isinstance(obj, h5py.Dataset) and obj.dtype.kind == "i" else None)
    model.load_state_dict(state, strict=True)
    return model.eval()


def save_state_dict(state_dict, template, out):
    """Writes `state_dict` (this module's names and shapes) into a copy of the cgt checkpoint
    `template` at `out`: training resumes from it with `cgt train --resume` (put it in the run
    folder's checkpoints/), `cgt eval` evaluates it. Its optimizer state and training
    statistics are the template's; the BatchNorm statistics written are used for resuming too
    (the template's `/training_buffers` are dropped)."""
    temporary = f"{out}.tmp-{os.getpid()}"
    shutil.copyfile(template, temporary)
    with h5py.File(temporary, "r+") as f:
        for name, tensor in state_dict.items():
            path = "model/" + name.replace(".", "/")
            if path not in f:
                raise KeyError(f"{template}: /{path} is not a tensor of the checkpoint's network")
            values = tensor.detach().cpu().numpy()
            if f[path].shape != values.shape:
                raise ValueError(f"/{path}: shape {values.shape}, the checkpoint has {f[path].shape}")
            f[path][...] = values.astype(f[path].dtype)
        # The written statistics are the model's and training's alike now.
        if "training_buffers" in f:
            del f["training_buffers"]
        f.attrs["batchnorm_statistics"] = "training"
    os.replace(temporary, out)
