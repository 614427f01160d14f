#!/usr/bin/env python3
"""Predicted data-parallel throughput of the paper's MLP and CNN at cluster scale.

Weak scaling: every rank keeps the per-rank batch it was measured with, so the global batch is
ranks x batch. One step costs the measured compute of one rank's batch, plus the gradient
all-reduce that cannot hide behind the backward pass:

  ring all-reduce of n bytes on p ranks:          2 (p - 1) alpha + 2 (p - 1) / p * n / beta
  Rabenseifner (reduce-scatter + allgather by
  recursive halving/doubling, what Open MPI's
  tuned all-reduce picks for these sizes):        2 log2(p) alpha + 2 (p - 1) / p * n / beta

paid once per bucket for the latency terms (the bandwidth term is the same however n is cut).
With overlap (runtime.overlap_allreduce), all but the last bucket's all-reduce runs under the
backward pass, up to the backward pass's length. Data reading is left out: in
`training.shuffle: blocks` a rank reads 1/p of the split per epoch, read ahead while the
previous epoch trains, so it shrinks with p and hides behind compute (read_stall_seconds).

Every input is a command-line option; the defaults are the figures measured on the 2-core AMD
EPYC VM (family 25 model 17) with `cgt bench` and `launch/bench-scaling` (see RESULTS.md,
"Scaling past one node"), and the network figures are typical ones for 10 GbE with TCP and for
100 Gb/s InfiniBand (HDR, verbs), not measured here.

  python3 bench/scaling_model.py                         # the table of RESULTS.md
  python3 bench/scaling_model.py --mlp-step-ms 3.3 --ranks 8 64 512 4096
"""
import argparse
import math

NETWORKS = {
    # name: (alpha seconds per message, beta bytes per second)
    "10 GbE (TCP)": (30e-6, 1.1e9),
    "100 Gb/s InfiniBand": (2e-6, 11.5e9),
}


def allreduce_seconds(n_bytes, ranks, alpha, beta, buckets, algorithm):
    if ranks == 1:
        return 0.0
    if algorithm == "ring":
        latency = 2 * (ranks - 1) * alpha
    else:
        latency = 2 * math.ceil(math.log2(ranks)) * alpha
    bandwidth = 2 * (ranks - 1) / ranks * n_bytes / beta
    return buckets * latency + bandwidth


def predict(step_s, backward_s, n_bytes, batch, ranks, alpha, beta, bucket_bytes, algorithm, overlap):
    buckets = max(1, math.ceil(n_bytes / bucket_bytes))
    reduce_s = allreduce_seconds(n_bytes, ranks, alpha, beta, buckets, algorithm)
    if overlap and buckets > 1:
        last = allreduce_seconds(n_bytes / buckets, ranks, alpha, beta, 1, algorithm)
        exposed = last + max(0.0, reduce_s - last - backward_s)
    else:
        exposed = reduce_s
    step = step_s + exposed
    return ranks * batch / step, step_s / step, exposed


def best_bucket(step_s, backward_s, n_bytes, batch, ranks, alpha, beta, algorithm):
    """The bucket size (KiB, powers of two) that maximises predicted throughput with overlap."""
    candidates = [2**k for k in range(4, 17)]  # 16 KiB .. 64 MiB
    return max(
        candidates,
        key=lambda kib: predict(step_s, backward_s, n_bytes, batch, ranks, alpha, beta, kib * 1024, algorithm, True)[0],
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mlp-step-ms", type=float, default=5.674, help="MLP step, batch 256, one rank")
    parser.add_argument("--mlp-backward-ms", type=float, default=3.307, help="its backward pass")
    parser.add_argument("--mlp-gradient-bytes", type=int, default=1_318_080)
    parser.add_argument("--cnn-step-ms", type=float, default=58.945, help="CNN step, batch 128, one rank")
    parser.add_argument("--cnn-backward-ms", type=float, default=38.859, help="its backward pass")
    parser.add_argument("--cnn-gradient-bytes", type=int, default=381_560)
    parser.add_argument("--bucket-kib", type=int, default=1024, help="runtime.bucket_kib")
    parser.add_argument("--algorithm", choices=["ring", "rabenseifner"], default="ring")
    parser.add_argument("--ranks", type=int, nargs="+", default=[8, 64, 512])
    args = parser.parse_args()

    models = [
        ("MLP", args.mlp_step_ms / 1e3, args.mlp_backward_ms / 1e3, args.mlp_gradient_bytes, 256),
        ("CNN", args.cnn_step_ms / 1e3, args.cnn_backward_ms / 1e3, args.cnn_gradient_bytes, 128),
    ]
    print(f"all-reduce: {args.algorithm}; blocking in buckets of {args.bucket_kib} KiB; weak scaling (per-rank batch fixed)")
    print()
    print("| model | network | ranks | samples/s, blocking | efficiency | samples/s, overlapped at the best bucket | efficiency | that bucket (KiB) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, step, backward, n_bytes, batch in models:
        for network, (alpha, beta) in NETWORKS.items():
            for ranks in args.ranks:
                blocking = predict(step, backward, n_bytes, batch, ranks, alpha, beta, args.bucket_kib * 1024,
                                   args.algorithm, False)
                bucket = best_bucket(step, backward, n_bytes, batch, ranks, alpha, beta, args.algorithm)
                overlapped = predict(step, backward, n_bytes, batch, ranks, alpha, beta, bucket * 1024,
                                     args.algorithm, True)
                print(f"| {name} | {network} | {ranks} | {blocking[0]:,.0f} | {blocking[1]:.3f} | "
                      f"{overlapped[0]:,.0f} | {overlapped[1]:.3f} | {bucket} |")


if __name__ == "__main__":
    main()
