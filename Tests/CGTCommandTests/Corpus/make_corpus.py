#!/usr/bin/env python3
"""Writes the adversarial dataset and checkpoint files of cgt's untrusted-input tests.

Usage: make_corpus.py OUT_FOLDER [CHECKPOINT]
       make_corpus.py --other-tools OUT_FOLDER
       make_corpus.py --huge-chunks OUT_FOLDER

Every file is a small file that lies: it declares sizes it does not hold (chunked datasets
with nothing written cost nothing to make), counts that overflow, or values outside the
layout of hdf5_data/README.md. With CHECKPOINT (a real cgt checkpoint), also writes copies of
it that declare a huge tensor. The test runs cgt on each file and expects one clean line.
"""
import gzip
import io
import os
import shutil
import struct
import sys
import zipfile

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


def other_tools(out):
    """Files as other tools write them: compressed with filters libhdf5 does not build in, and
    a virtual dataset in the newest file format.

    lzf_features.h5 is a good file (h5py's LZF, which Debian's hdf5-plugin-lzf decodes for
    libhdf5); the others are refused with what to do: bzip2 chunks (filter 307, Debian's
    hdf5-filter-plugin), a filter id nobody registered, and a virtual dataset."""
    f = layout(f"{out}/lzf_features.h5", train=None, test=None)
    rng = np.random.default_rng(1)
    for split, n in (("train", 96), ("test", 48)):
        y = (np.arange(n) % 3).astype(np.int32)
        x = (rng.normal(size=(n, 4)) + 2 * y[:, None]).astype(np.float32)
        g = f.create_group(split)
        g.create_dataset("x", data=x, chunks=(32, 4), compression="lzf", shuffle=True)
        g.create_dataset("y", data=y, chunks=(32,), compression="lzf")
    f.close()

    def filtered(name, filter_id, values):
        """/train/x in chunks compressed with bzip2 and written raw, under `filter_id` (optional
        in the pipeline, so h5py can declare a filter this libhdf5 lacks)."""
        import bz2

        f = layout(f"{out}/{name}.h5", train=None)
        g = f.create_group("train")
        x = np.arange(16 * 4, dtype=np.float32).reshape(16, 4)
        plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        plist.set_chunk((8, 4))
        plist.set_filter(filter_id, h5py.h5z.FLAG_OPTIONAL, values)
        space = h5py.h5s.create_simple((16, 4))
        dataset = h5py.h5d.create(g.id, b"x", h5py.h5t.IEEE_F32LE, space, dcpl=plist)
        for row in (0, 8):
            dataset.write_direct_chunk((row, 0), bz2.compress(x[row : row + 8].tobytes(), 9), filter_mask=0)
        g["y"] = (np.arange(16) % 3).astype(np.int32)
        f.close()

    filtered("bzip2_features", 307, (9,))
    filtered("unregistered_filter", 32099, ())

    # A virtual dataset in the file format h5py writes with libver="latest".
    source = layout(f"{out}/vds_source.h5")
    source.close()
    f = h5py.File(f"{out}/virtual_latest.h5", "w", libver="latest")
    plain = layout(f"{out}/vds_plain.h5")
    for key, value in plain.attrs.items():
        f.attrs[key] = value
    plain.copy("test", f)
    plain.close()
    virtual = h5py.VirtualLayout(shape=(16, 4), dtype=np.float32)
    virtual[:] = h5py.VirtualSource(f"{out}/vds_source.h5", "/train/x", shape=(16, 4))
    g = f.create_group("train")
    g.create_virtual_dataset("x", virtual)
    g["y"] = (np.arange(16) % 3).astype(np.int32)
    f.close()


def huge_chunks(out):
    """Good data in chunks far larger than the data: libhdf5 decompresses a chunk whole, into a
    buffer of the chunk's declared size, however few rows the file holds.

    written_chunk.h5 holds 64 rows of /train/x in one gzip chunk of 2^22 rows (64 MiB once
    decompressed, 64 KiB stored); declared_chunk.h5 declares chunks of 2^27 rows (2 GiB) and
    writes none. Both are extendible (maxshape None), which lets a chunk outgrow the data."""
    for name, rows, write in (("written_chunk", 2**22, True), ("declared_chunk", 2**27, False)):
        f = layout(f"{out}/{name}.h5", train=None)
        g = f.create_group("train")
        x = g.create_dataset(
            "x", shape=(64, 4), maxshape=(None, 4), chunks=(rows, 4), dtype=np.float32, compression="gzip")
        if write:
            x[:] = np.random.default_rng(2).normal(size=(64, 4)).astype(np.float32)
        g["y"] = (np.arange(64) % 3).astype(np.int32)
        f.close()


def main():
    if sys.argv[1] == "--other-tools":
        other_tools(sys.argv[2])
        return
    if sys.argv[1] == "--huge-chunks":
        huge_chunks(sys.argv[2])
        return
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

    f = layout(f"{out}/no_test_split.h5", test=None)
    f.close()
    with open(f"{out}/not_hdf5.h5", "wb") as raw:
        raw.write(b"this is not an HDF5 file\n" * 10)
    with open(f"{out}/truncated.h5", "wb") as raw:
        with open(f"{out}/nan_feature.h5", "rb") as good:
            raw.write(good.read()[:700])

    # cgt prepare's inputs: .npy headers that overflow or lie, and a gzip bomb of IDX images
    # (300 MB of zeros in about 300 KB, its header announcing exactly that).
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

    lying_layouts(out)
    raw_inputs(out)

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


def lying_layouts(out):
    """Dataset files whose structure contradicts the layout, each in one way (one line each)."""
    def made(name, **kw):
        return layout(f"{out}/{name}.h5", **kw)

    def split(name, x, y, **kw):
        f = made(name, train=None, **kw)
        g = f.create_group("train")
        g["x"] = x
        if y is not None:
            g["y"] = y
        return f, g

    f = made("names_mismatch"); f.attrs["class_names"] = ["a", "b"]; f.close()
    f = made("shape_mismatch"); f.attrs["feature_shape"] = np.array([5], dtype=np.int64); f.close()
    split("y_float32", np.zeros((16, 4), np.float32), np.zeros(16, np.float32))[0].close()
    split("y_two_axes", np.zeros((16, 4), np.float32), np.zeros((16, 2), np.int32))[0].close()
    split("y_int64", np.zeros((16, 4), np.float32), np.zeros(16, np.int64))[0].close()
    split("x_int8", np.zeros((16, 4), np.int8), np.zeros(16, np.int32))[0].close()
    split("rows_mismatch", np.zeros((16, 4), np.float32), np.zeros(15, np.int32))[0].close()
    split("scalar_x", np.float32(1), np.zeros(16, np.int32))[0].close()
    split("empty_train", np.zeros((0, 4), np.float32), np.zeros(0, np.int32))[0].close()
    f, g = split("x_is_group", np.zeros(1), None); del g["x"]; g.create_group("x"); g["y"] = np.zeros(16, np.int32); f.close()
    f, g = split("missing_y", np.zeros((16, 4), np.float32), None); f.close()
    f = made("version_99"); f.attrs["layout_version"] = 99; f.close()
    f = made("version_3"); f.attrs["layout_version"] = 3; f.close()
    # uint8 features (layout version 2) need the normalisation the reader applies, and a version that allows them.
    def byte_split(name, version, attributes, dtype=np.uint8):
        f, g = split(name, np.arange(64).reshape(16, 4).astype(dtype), np.zeros(16, np.int32))
        f.attrs["layout_version"] = version
        for key, value in attributes.items():
            f.attrs[key] = value
        f.close()
    unit = {"normalization_offset": np.zeros(4), "normalization_scale": np.ones(4)}
    byte_split("uint8_no_normalization", 2, {})
    byte_split("uint8_version_1", 1, unit)
    byte_split("uint8_zero_scale", 2, {"normalization_offset": np.zeros(4), "normalization_scale": np.zeros(4)})
    byte_split("uint8_short_offset", 2, {"normalization_offset": np.zeros(3), "normalization_scale": np.ones(4)})
    byte_split("int16_version_2", 2, unit, dtype=np.int16)
    f = made("no_version"); del f.attrs["layout_version"]; f.close()
    for name, count in (("one_class", 1), ("zero_classes", 0), ("negative_classes", -5)):
        f = made(name, names=False); f.attrs["num_classes"] = count; f.close()
    f = made("zero_feature"); f.attrs["feature_shape"] = np.array([0], dtype=np.int64); f.close()
    f = made("negative_feature"); f.attrs["feature_shape"] = np.array([-4], dtype=np.int64); f.close()
    f = made("text_feature_shape"); f.attrs["feature_shape"] = "4"; f.close()
    f = made("integer_names"); f.attrs["class_names"] = np.array([1, 2, 3]); f.close()
    f = made("long_name"); f.attrs["class_names"] = ["a" * 1_000_000, "b", "c"]; f.close()
    f = made("control_name"); f.attrs["class_names"] = ["a\x1b[31m", "b", "c"]; f.close()
    f = made("validation_shape")
    g = f.create_group("validation"); g["x"] = np.zeros((8, 5), np.float32); g["y"] = np.zeros(8, np.int32); f.close()
    f = made("negative_label"); f["train/y"][2] = -1; f.close()
    f = made("inf_feature")
    x = f["train/x"][...]; x[1, 1] = np.inf; f["train/x"][...] = x; f.close()
    # Data kept outside the file: an external link, raw external storage, a virtual dataset.
    f = made("good"); f.close()
    f, g = split("external_link", h5py.ExternalLink(f"{out}/good.h5", "/train/x"), np.zeros(16, np.int32)); f.close()
    f, g = split("soft_link_loop", h5py.SoftLink("/train/x"), np.zeros(16, np.int32)); f.close()
    f = made("external_storage", train=None); g = f.create_group("train")
    g.create_dataset("x", shape=(16, 4), dtype=np.float32, external=[("/etc/passwd", 0, 256)])
    g["y"] = np.zeros(16, np.int32); f.close()
    f = made("virtual_dataset", train=None); g = f.create_group("train")
    virtual = h5py.VirtualLayout(shape=(16, 4), dtype=np.float32)
    virtual[:] = h5py.VirtualSource(f"{out}/good.h5", "/train/x", shape=(16, 4))
    g.create_virtual_dataset("x", virtual); g["y"] = np.zeros(16, np.int32); f.close()
    # An attribute of 300,001 values (dense attribute storage needs the newest file format).
    source = made("many_dimensions_source")
    f = h5py.File(f"{out}/many_dimensions.h5", "w", libver="latest")
    for key in ("train", "test"):
        source.copy(key, f)
    for key, value in source.attrs.items():
        f.attrs[key] = value
    f.attrs["feature_shape"] = np.array([4] + [1] * 300000, dtype=np.int64)
    f.close(); source.close()
    os.mkfifo(f"{out}/pipe.h5")
    # Links that leave the file indirectly: a soft link to an external link, a split that is a
    # link into a pipe (opening it would block forever).
    f, g = split("link_chain", h5py.SoftLink("/elsewhere"), np.zeros(16, np.int32))
    f["elsewhere"] = h5py.ExternalLink(f"{out}/good.h5", "/train/x"); f.close()
    f = made("split_into_pipe", train=None); f["train"] = h5py.ExternalLink(f"{out}/pipe.h5", "/train"); f.close()


def raw_inputs(out):
    """cgt prepare's inputs, each wrong in one way: CSV, .npy, .npz, cubes, IDX, class-name lists."""
    def text(name, data):
        with open(f"{out}/{name}", "wb") as raw:
            raw.write(data if isinstance(data, bytes) else data.encode())

    rows = "".join(f"{i % 3},{i * 0.1},{i * 0.2}\n" for i in range(30))
    text("good.csv", "label,a,b\n" + rows)
    text("ragged.csv", "label,a,b\n0,1,2\n1,3\n2,4,5\n")
    text("not_a_number.csv", "label,a,b\n0,1,2\n1,abc,3\n2,4,5\n")
    text("nan.csv", "label,a,b\n0,1,2\n1,nan,3\n2,4,5\n")
    text("beyond_float32.csv", "label,a\n0,1e999\n1,2\n")
    text("empty.csv", "")
    text("header_only.csv", "label,a,b\n")
    text("no_label_column.csv", "x,a,b\n0,1,2\n")
    text("duplicate_column.csv", "label,a,a\n0,1,2\n1,2,3\n")
    text("long_field.csv", "label,a\n0," + "1" * 2_000_000 + "\n")
    text("binary.csv", b"\x00\xff\xfe" * 1000)
    text("open_quote.csv", 'label,a,b\n0,"1,2\n1,3,4\n')
    text("bad_utf8_label.csv", b"label,a\n\xff\xfe,1\n\xc3,2\n")
    text("control_label.csv", "label,a\n\x1b[31m,1\nb,2\n\x1b[31m,3\nb,4\n")

    rng = np.random.default_rng(0)
    np.save(f"{out}/x.npy", rng.random((30, 4)).astype(np.float32))
    np.save(f"{out}/y.npy", (np.arange(30) % 3).astype(np.int64))
    np.save(f"{out}/x_nan.npy", np.full((30, 4), np.nan, dtype=np.float32))
    np.save(f"{out}/x_object.npy", np.array([None] * 30, dtype=object), allow_pickle=True)
    np.save(f"{out}/x_complex.npy", np.zeros((30, 4), dtype=np.complex64))
    np.save(f"{out}/x_scalar.npy", np.float32(3))
    np.save(f"{out}/x_nine_dimensions.npy", np.zeros((30,) + (1,) * 9, dtype=np.float32))
    np.save(f"{out}/x_text.npy", np.array(["a"] * 30))
    np.save(f"{out}/y_fraction.npy", (np.arange(30) % 3 + 0.5).astype(np.float32))
    y = (np.arange(30) % 3).astype(np.float32); y[4] = np.nan
    np.save(f"{out}/y_nan.npy", y)
    np.save(f"{out}/y_two_columns.npy", (np.arange(60) % 3).reshape(30, 2).astype(np.int64))
    np.save(f"{out}/y_short.npy", (np.arange(20) % 3).astype(np.int64))
    good = open(f"{out}/x.npy", "rb").read()
    text("x_truncated.npy", good[:200])
    text("x_bad_magic.npy", b"\x93NUMPX" + good[6:])

    def npy_header(name, header, version=1, length=None, tail=b"\0" * 480):
        header = header + b" " * (16 - (len(header) + 11) % 16) + b"\n"
        size = struct.pack("<H" if version == 1 else "<I", len(header) if length is None else length)
        text(name, b"\x93NUMPY" + bytes([version, 0]) + size + header + tail)

    npy_header("x_long_header.npy", b"{'descr': '<f4', 'fortran_order': False, 'shape': (30, 4), " + b"A" * 70000 + b"}", 2)
    text("x_header_length_lie.npy", b"\x93NUMPY\x02\x00" + struct.pack("<I", 2**31) + b"{}")
    npy_header("x_code_in_header.npy", b"{'descr': __import__('os').system('touch PWNED'), 'fortran_order': False, 'shape': (30, 4), }")
    npy_header("x_negative_shape.npy", b"{'descr': '<f4', 'fortran_order': False, 'shape': (-30, 4), }")
    npy_header("x_deep_shape.npy", b"{'descr': '<f4', 'fortran_order': False, 'shape': " + b"(" * 5000 + b")" * 5000 + b", }", 2)

    np.savez(f"{out}/good.npz", x=rng.random((30, 4)).astype(np.float32), y=(np.arange(30) % 3).astype(np.int64))
    text("not_zip.npz", b"PK\x03\x04garbage" * 100)
    text("truncated.npz", open(f"{out}/good.npz", "rb").read()[:300])
    members = {"x.npy": good, "y.npy": open(f"{out}/y.npy", "rb").read()}

    def archive(name, compression, names=None, patch=None):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression) as z:
            for member, data in members.items():
                z.writestr((names or {}).get(member, member), data)
        data = bytearray(buffer.getvalue())
        if patch:
            patch(data)
        text(name, bytes(data))

    def lie_about_size(data):
        central = data.find(b"PK\x01\x02")
        struct.pack_into("<I", data, central + 24, 0xFFFFFFF0)

    archive("lying_sizes.npz", zipfile.ZIP_STORED, patch=lie_about_size)
    archive("bzip2.npz", zipfile.ZIP_BZIP2)
    archive("path_in_name.npz", zipfile.ZIP_STORED, names={"x.npy": "../x.npy"})
    # A member whose header announces 1.6 GB and whose 40 MB of zeros deflate to 40 KB.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (100000000, 4), }"
        header = header + b" " * (118 - len(header)) + b"\n"
        z.writestr("x.npy", b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + b"\0" * 40_000_000)
        z.writestr("y.npy", members["y.npy"])
    text("deflate_bomb.npz", buffer.getvalue())

    np.save(f"{out}/cube.npy", rng.integers(0, 1000, size=(10, 10, 5)).astype(np.uint16))
    np.save(f"{out}/ground_truth.npy", rng.integers(1, 4, size=(10, 10)).astype(np.uint8))
    np.save(f"{out}/ground_truth_9x10.npy", rng.integers(0, 4, size=(9, 10)).astype(np.uint8))
    np.save(f"{out}/ground_truth_unlabelled.npy", np.zeros((10, 10), dtype=np.uint8))
    np.save(f"{out}/cube_2d.npy", rng.random((10, 10)).astype(np.float32))
    text("two_names.txt", "a\nb\n")
    text("control_names.txt", "a\nb\x1b[31m\nc\n")
    text("duplicate_names.txt", "a\nb\na\n")

    image = lambda n: struct.pack(">BBBB", 0, 0, 8, 3) + struct.pack(">III", n, 28, 28) + bytes(784 * n)
    label = lambda n, value=0: struct.pack(">BBBB", 0, 0, 8, 1) + struct.pack(">I", n) + bytes([value]) * n
    for folder, files in {
        "idx_bad_magic": (b"\x01\x02\x03\x04" + image(4)[4:], label(4), image(2), label(2)),
        "idx_count_mismatch": (image(4), label(3), image(2), label(2)),
        "idx_truncated": (image(4)[:1000], label(4), image(2), label(2)),
        "idx_label_200": (image(4), label(4, 200), image(2), label(2)),
    }.items():
        os.makedirs(f"{out}/{folder}", exist_ok=True)
        for name, data in zip(IDX_NAMES, files):
            text(f"{folder}/{name}.gz", gzip.compress(data))
    os.makedirs(f"{out}/idx_not_gzip", exist_ok=True)
    for name in IDX_NAMES:
        text(f"idx_not_gzip/{name}.gz", b"\x1f\x8b\x08\x00garbagegarbage")


IDX_NAMES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


if __name__ == "__main__":
    main()
