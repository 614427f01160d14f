"""Reads a cgt checkpoint (HDF5) with h5py and NumPy alone: its tensors under PyTorch's
names, the architecture from its stored job, and the exit policy it is deployed with.

The layout is documented in hdf5_data/README.md, "Checkpoints".
"""
import re
import sys
from dataclasses import dataclass

import h5py
import numpy as np

BATCHNORM_EPSILON = 1e-5


def state_dict_from(path):
    """The README's loader, with NumPy arrays instead of torch tensors, and the file attributes."""
    state = {}
    with h5py.File(path, "r") as f:
        f["model"].visititems(lambda name, obj: state.__setitem__(name.replace("/", "."), np.asarray(obj[()]))
                              if isinstance(obj, h5py.Dataset) else None)
        attributes = dict(f.attrs)
        exit_classes = np.asarray(f["exit_classes"][()]) if "exit_classes" in f else None
    return state, attributes, exit_classes


def model_section_list(job, key):
    """A list of integers under `model:` in the job YAML cgt stores (block or flow style)."""
    model = re.search(r"^model:\n((?:[ \t]+.*\n?)*)", job, re.M)
    if model is None:
        sys.exit("cgt_checkpoint: the job attribute has no model section")
    body = model.group(1)
    flow = re.search(rf"^[ \t]+{key}:[ \t]*\[([^\]]*)\]", body, re.M)
    if flow:
        return [int(v) for v in flow.group(1).split(",") if v.strip()]
    block = re.search(rf"^([ \t]+){key}:[ \t]*\n((?:\1-[ \t]*\d+[ \t]*\n?)+)", body, re.M)
    if block is None:
        sys.exit(f"cgt_checkpoint: model.{key} not found in the job attribute")
    return [int(v) for v in re.findall(r"-\s*(\d+)", block.group(2))]


def boosts_exits(job):
    """Whether the stored job's method boosts its exits (`method.boosting: true`): exit e then
    answers with the sum of the logits of heads 0...e."""
    method = re.search(r"^method:\n((?:[ \t]+.*\n?)*)", job, re.M)
    return method is not None and re.search(r"^[ \t]+boosting:[ \t]*true\b", method.group(1), re.M) is not None


def cumulative(logits):
    """Boosted exits' answers: the running sum of the heads' logits, in exit order."""
    total, sums = None, []
    for z in logits:
        total = z if total is None else total + z
        sums.append(total)
    return sums


def text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class StoredModel:
    """What a checkpoint holds about the network and how it is deployed."""
    state: dict
    kind: str  # "mlp", "cnn" or "resnet"
    exits: list  # blocks after which the exits sit, 1-based
    blocks: int
    classes: int
    class_names: list
    feature_shape: list
    criterion: str
    thresholds: list
    fallback: str
    exit_classes: object  # ClassyNet's [exits, classes] 0/1 membership, or None
    attributes: dict
    boosted: bool = False  # exit e answers with the summed logits of heads 0...e

    @property
    def policy(self):
        return {"criterion": self.criterion, "thresholds": self.thresholds, "fallback": self.fallback}


def read(path):
    state, attributes, exit_classes = state_dict_from(path)
    if text(attributes.get("kind", "")) != "cgt-checkpoint":
        sys.exit(f"cgt_checkpoint: {path} is not a cgt checkpoint (kind {attributes.get('kind')!r})")
    job = text(attributes["job"])
    kind = re.search(r"^[ \t]+kind:[ \t]*(\w+)", job, re.M).group(1)
    return StoredModel(
        state={name: value for name, value in state.items() if value.dtype.kind == "f"},
        kind=kind, exits=model_section_list(job, "exits"),
        blocks=1 + max(int(name.split(".")[1]) for name in state if name.startswith("blocks.")),
        classes=int(attributes["num_classes"]),
        class_names=[text(n) for n in attributes["class_names"]],
        feature_shape=[int(v) for v in attributes["feature_shape"]],
        criterion=text(attributes.get("exit_criterion", "max_probability")),
        # Stored as float64 from float32: the shortest decimal of the float32 ("0.9").
        thresholds=[float(str(np.float32(v))) for v in attributes.get("exit_thresholds", [])],
        fallback=text(attributes.get("exit_fallback", "last")),
        exit_classes=exit_classes, attributes=attributes, boosted=boosts_exits(job))


def features(f, split, dtype=np.float32):
    """The features of `split` of an open cgt dataset file, as cgt trains on them.

    float32 features are stored normalised. uint8 ones (layout version 2) are the source's
    bytes: normalised here as cgt's reader does, (x - normalization_offset[c]) /
    normalization_scale[c] per channel c (the first feature axis) in float64, rounded to float32.
    """
    x = f[f"{split}/x"][()]
    if x.dtype == np.uint8:
        offset = np.asarray(f.attrs["normalization_offset"], dtype=np.float64)
        offset = offset.reshape(-1, *([1] * (x.ndim - 2)))
        scale = np.asarray(f.attrs["normalization_scale"], dtype=np.float64).reshape(offset.shape)
        x = ((x.astype(np.float64) - offset) / scale).astype(np.float32)
    return x.astype(dtype)


def write_predictions(path_or_none, labels, logits, classes):
    """The columns of `cgt eval`'s samples.csv that do not depend on the exit policy: sample,
    label, each exit's prediction and maximum softmax probability (-1 and 0 where a ClassyNet
    exit declines with its "other" output)."""
    import csv
    out = open(path_or_none, "w", newline="") if path_or_none else sys.stdout
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["sample", "label"] + [f"exit{e + 1}_{column}" for e in range(len(logits))
                                           for column in ("prediction", "max_probability")])
    probabilities = []
    for z in logits:
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        probabilities.append(p / p.sum(axis=1, keepdims=True))
    for i in range(len(labels)):
        row = [i, int(labels[i])]
        for p in probabilities:
            prediction = int(p[i].argmax())
            row += [-1, "0.0"] if prediction == classes else [prediction, repr(float(p[i].max()))]
        writer.writerow(row)
    if path_or_none:
        out.close()

