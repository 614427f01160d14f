#!/usr/bin/env python3
"""Writes the adversarial dataset and checkpoint files of cgt's untrusted-input tests.

Usage: make_corpus.py OUT_FOLDER [CHECKPOINT]

Every file is a small file that lies: it declares sizes it does not hold (chunked datasets
with nothing written cost nothing to make), counts that overflow, or values outside the
layout of hdf5_data/README.md. With CHECKPOINT (a real cgt checkpoint), also writes copies of
it that declare a huge tensor. The test runs cgt on each file and expects one clean line.
"""
import shutil
import sys

import h5py
import numpy as np

HUGE = 2**40


def layout(path, classes=3, feature_shape=(4,), train=16, test=8, names=True):
    f = h5py.File(path, "w")
    f.attrs["layout_version"] = 1
    f.attrs["num_classes"] = classes
    f.attrs["feature_shape"] = np.array(feature_shape, dtype=np.int64)
    if names:
        f.attrs["class_names"] = [f"c{i}" for i in range(classes)]
    rng = np.random.default_rng(0)
    for split, n in (("train", train), ("test", test)):
        if n is None:
            continue
        g = f.create_group(split)
        g["x"] = rng.normal(size=(n, *feature_shape)).astype(np.float32)
        g["y"] = (np.arange(n) % classes).astype(np.int32)
    return f


def huge_split(path, split):
    f = layout(path, **{split: None})
    g = f.create_group(split)
    g.create_dataset("x", shape=(HUGE, 4), dtype=np.float32, chunks=(1024, 4))
    g.create_dataset("y", shape=(HUGE,), dtype=np.int32, chunks=(1024,))
    f.close()


def huge_samples(path, side):
    """Four samples of side x side features each, declared and never written."""
    f = layout(path, train=None, test=None)
    f.attrs["feature_shape"] = np.array([side, side], dtype=np.int64)
    for split in ("train", "test"):
        g = f.create_group(split)
        g.create_dataset("x", shape=(4, side, side), dtype=np.float32, chunks=(1, 1, 1024))
        g["y"] = np.zeros(4, dtype=np.int32)
    f.close()


def main():
    out = sys.argv[1]
    huge_split(f"{out}/huge_train.h5", "train")
    huge_split(f"{out}/huge_test.h5", "test")

    # One sample larger than any machine, and a shape whose element count overflows 64 bits.
    huge_samples(f"{out}/huge_features.h5", 2**20)
    huge_samples(f"{out}/overflow_features.h5", 2**32)

    f = layout(f"{out}/many_classes.h5", names=False)
    f.attrs["num_classes"] = 10**9
    f.close()
    f = layout(f"{out}/max_classes.h5", names=False)
    f.attrs["num_classes"] = np.int64(2**63 - 1)
    f.close()

    f = layout(f"{out}/label_out_of_range.h5")
    f["train/y"][3] = 7
    f.close()
    f = layout(f"{out}/nan_feature.h5")
    x = f["train/x"][...]
    x[5, 2] = np.nan
    f["train/x"][...] = x
    f.close()
    f = layout(f"{out}/float64_features.h5", train=None)
    g = f.create_group("train")
    g["x"] = np.zeros((16, 4), dtype=np.float64)
    g["y"] = np.zeros(16, dtype=np.int32)
    f.close()
    # A deflate chunk whose bytes were damaged after writing: the structure is sound, the data is not.
    f = layout(f"{out}/corrupt_chunk.h5", train=None)
    g = f.create_group("train")
    g.create_dataset("x", data=np.arange(64 * 4, dtype=np.float32).reshape(64, 4), chunks=(16, 4), compression="gzip")
    g["y"] = np.zeros(64, dtype=np.int32)
    info = g["x"].id.get_chunk_info(1)
    f.close()
    with open(f"{out}/corrupt_chunk.h5", "r+b") as raw:
        raw.seek(info.byte_offset + 2)
        raw.write(b"\xff" * max(1, info.size - 4))

    # LZF ships with h5py but not with libhdf5: the reader needs a plugin it does not have.
    f = layout(f"{out}/lzf_features.h5", train=None)
    g = f.create_group("train")
    g.create_dataset("x", data=np.zeros((16, 4), dtype=np.float32), chunks=(8, 4), compression="lzf")
    g["y"] = np.zeros(16, dtype=np.int32)
    f.close()
    f = layout(f"{out}/no_test_split.h5", test=None)
    f.close()
    with open(f"{out}/not_hdf5.h5", "wb") as raw:
        raw.write(b"this is not an HDF5 file\n" * 10)
    with open(f"{out}/truncated.h5", "wb") as raw:
        with open(f"{out}/nan_feature.h5", "rb") as good:
            raw.write(good.read()[:700])

    # cgt prepare's inputs: .npy headers that overflow or lie, and a gzip bomb of IDX images
    # (300 MB of zeros in about 300 KB, its header announcing exactly that).
    import gzip
    import os
    import struct
    import zlib

    def npy(path, shape):
        header = "{'descr': '<f4', 'fortran_order': False, 'shape': %r, }" % (shape,)
        header = header + " " * (118 - len(header)) + "\n"
        with open(path, "wb") as raw:
            raw.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + b"\0" * 64)

    npy(f"{out}/overflow.npy", (2**62, 2**62))
    npy(f"{out}/huge.npy", (HUGE, 4))
    np.save(f"{out}/labels.npy", np.zeros(4, dtype=np.int64))
    bomb = f"{out}/idx_bomb"
    os.makedirs(bomb, exist_ok=True)
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [compressor.compress(struct.pack(">BBBB", 0, 0, 8, 3) + struct.pack(">III", 300, 1000, 1000))]
    zeros = b"\0" * 1_000_000
    parts += [compressor.compress(zeros) for _ in range(300)]
    parts.append(compressor.flush())
    with open(f"{bomb}/train-images-idx3-ubyte.gz", "wb") as raw:
        raw.write(b"".join(parts))
    small = struct.pack(">BBBB", 0, 0, 8, 3) + struct.pack(">III", 1, 28, 28) + b"\0" * 784
    labels = struct.pack(">BBBB", 0, 0, 8, 1) + struct.pack(">I", 1) + b"\0"
    for name, data in [("t10k-images-idx3-ubyte", small), ("train-labels-idx1-ubyte", labels), ("t10k-labels-idx1-ubyte", labels)]:
        with open(f"{bomb}/{name}.gz", "wb") as raw:
            raw.write(gzip.compress(data))

    if len(sys.argv) > 2:
        checkpoint = sys.argv[2]
        shutil.copy(checkpoint, f"{out}/checkpoint_huge_tensor.h5")
        with h5py.File(f"{out}/checkpoint_huge_tensor.h5", "a") as c:
            c["model"].create_dataset("huge", shape=(HUGE, 4), dtype=np.float32, chunks=(1024, 4))
        # A real parameter's name with a huge declared shape.
        shutil.copy(checkpoint, f"{out}/checkpoint_wrong_shape.h5")
        with h5py.File(f"{out}/checkpoint_wrong_shape.h5", "a") as c:
            names = []
            c["model"].visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) and obj.ndim == 2 else None)
            del c["model"][names[0]]
            c["model"].create_dataset(names[0], shape=(HUGE, 4), dtype=np.float32, chunks=(1024, 4))
        shutil.copy(checkpoint, f"{out}/checkpoint_bomb_job.h5")
        with h5py.File(f"{out}/checkpoint_bomb_job.h5", "a") as c:
            lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
            for i in range(1, 10):
                p, n = chr(96 + i), chr(97 + i)
                lines.append(f"{n}: &{n} [" + ",".join([f"*{p}"] * 9) + "]")
            c.attrs["job"] = "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
