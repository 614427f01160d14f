#!/usr/bin/env python3
"""Alternates `cgt bench` and bench/pytorch_step.py per configuration and prints medians and ratios.

Run through launch/bench-vs-pytorch, which builds cgt and provides a Python with torch.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# name: (model, cores, batch, cgt steps, torch steps)
CONFIGS = {
    "mlp-1": ("mlp", 1, 256, 300, 300),
    "cnn-1": ("cnn", 1, 128, 40, 40),
    "mlp-2": ("mlp", 2, 512, 300, 300),
    "cnn-2": ("cnn", 2, 256, 30, 30),
}


def run_json(command, env=None):
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        sys.exit(f"{' '.join(command)} printed no JSON:\n{done.stdout}")
    return json.loads(lines[-1])


def cgt_run(cgt, model, cores, batch, steps):
    command = [cgt, "bench", "--model", model, "--batch", str(batch), "--steps", str(steps), "--json"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if cores > 1:
        command = ["mpirun", "-np", str(cores), "--bind-to", "core", "--map-by", "core", "-x", "OMP_NUM_THREADS"] + command
    return run_json(command, env)


def torch_run(python, model, cores, batch, steps):
    command = [python, os.path.join(HERE, "pytorch_step.py"), "--model", model, "--batch", str(batch),
               "--steps", str(steps), "--threads", str(cores)]
    if model == "cnn":
        command.append("--channels-last")
    return run_json(command, dict(os.environ, OMP_NUM_THREADS=str(cores)))


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return "unknown CPU"
    field = lambda key: next((l.split(":", 1)[1].strip() for l in info.splitlines() if l.startswith(key)), "?")
    return f"{field('model name')}, family {field('cpu family')} model {field('model')}, {os.cpu_count()} cores"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cgt", required=True)
    parser.add_argument("--torch-python", required=True)
    parser.add_argument("rounds", nargs="?", type=int, default=3)
    parser.add_argument("configs", nargs="*", default=list(CONFIGS))
    args = parser.parse_args()
    unknown = [c for c in args.configs if c not in CONFIGS]
    if unknown:
        sys.exit(f"unknown configuration {unknown[0]}; choose from {', '.join(CONFIGS)}")
    print(f"cpu: {cpu_name()}", flush=True)
    results = {name: {"cgt": [], "torch": []} for name in args.configs}
    details = {}
    for round_index in range(args.rounds):
        for name in args.configs:
            model, cores, batch, cgt_steps, torch_steps = CONFIGS[name]
            mine = cgt_run(args.cgt, model, cores, batch, cgt_steps)
            theirs = torch_run(args.torch_python, model, cores, batch, torch_steps)
            results[name]["cgt"].append(mine["samplesPerSecond"])
            results[name]["torch"].append(theirs["samplesPerSecond"])
            details.setdefault(name, (mine, theirs))
            print(f"round {round_index + 1} {name}: cgt {mine['samplesPerSecond']:.0f}, "
                  f"PyTorch {theirs['samplesPerSecond']:.0f} samples/s", flush=True)
    print()
    for name in args.configs:
        mine, theirs = details[name]
        if "engine" in mine:
            print(f"{name}: cgt {mine['engine']}; {mine['fmaPeakGFLOPs']:.0f} GFLOP/s FMA peak, "
                  f"step at {mine['peakFraction']:.2f} of it")
        else:
            print(f"{name}: cgt {mine['ranks']} ranks, scaling efficiency {mine['scalingEfficiency']:.3f}")
        print(f"{name}: PyTorch {theirs['torch']}, {theirs['threads']} thread(s), CPU capability {theirs['cpuCapability']}"
              f"{', channels_last' if theirs['channelsLast'] else ''}")
    print()
    print("| config | cgt samples/s | PyTorch samples/s | ratio |")
    print("|---|---|---|---|")
    for name in args.configs:
        model, cores, batch, _, _ = CONFIGS[name]
        ours, theirs = statistics.median(results[name]["cgt"]), statistics.median(results[name]["torch"])
        print(f"| {model.upper()}, batch {batch}, {cores} core{'s' if cores > 1 else ''} | {ours:,.0f} | {theirs:,.0f} | {ours / theirs:.2f} |")


if __name__ == "__main__":
    main()
