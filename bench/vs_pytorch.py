#!/usr/bin/env python3
"""Alternates `cgt bench` and bench/pytorch_step.py per configuration and prints medians and ratios.

Run through launch/bench-vs-pytorch, which builds cgt and provides a Python with torch.

`--isa avx2` restricts both sides to AVX2: cgt's oneDNN with ONEDNN_MAX_CPU_ISA=AVX2; PyTorch's
bundled oneDNN the same, its own kernels with ATEN_CPU_CAPABILITY=avx2 and its MKL (the Linear
layers' sgemm) with MKL_ENABLE_INSTRUCTIONS=AVX2. The summary reports what each library says it
ran, not what was asked for; launch/bench-vs-pytorch builds cgt's own kernels (BatchNorm, ReLU,
pooling, softmax, Adam) with CGT_CPU=x86-64-v3 for it, which the summary checks.
"""
import argparse
import json
import os
import re
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
    "resnet-1": ("resnet", 1, 128, 40, 40),
    "resnet-2": ("resnet", 2, 256, 30, 30),
}
# What runs without naming configurations (the README's table).
DEFAULT_CONFIGS = ["mlp-1", "cnn-1", "resnet-1", "mlp-2", "cnn-2", "resnet-2"]
LABELS = {"mlp": "MLP", "cnn": "CNN", "resnet": "ResNet"}

# --isa: the environment of each side. "native" leaves the environment as it is.
ISA_ENVIRONMENTS = {
    "native": {"cgt": {}, "torch": {}},
    "avx2": {
        "cgt": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
        "torch": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    },
}
ISA_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS")


def run_json(command, env=None):
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        sys.exit(f"{' '.join(command)} printed no JSON:\n{done.stdout}")
    return json.loads(lines[-1])


def cgt_run(cgt, model, cores, batch, steps, isa_env):
    command = [cgt, "bench", "--model", model, "--batch", str(batch), "--steps", str(steps), "--json"]
    env = dict(os.environ, OMP_NUM_THREADS="1", **isa_env)
    if cores > 1:
        forwarded = ["OMP_NUM_THREADS"] + [k for k in ISA_VARIABLES if k in env]
        command = (["mpirun", "-np", str(cores), "--bind-to", "core", "--map-by", "core"]
                   + [a for k in forwarded for a in ("-x", k)] + command)
    return run_json(command, env)


def torch_run(python, model, cores, batch, steps, isa_env):
    command = [python, os.path.join(HERE, "pytorch_step.py"), "--model", model, "--batch", str(batch),
               "--steps", str(steps), "--threads", str(cores)]
    if model in ("cnn", "resnet"):
        command.append("--channels-last")
    return run_json(command, dict(os.environ, OMP_NUM_THREADS=str(cores), **isa_env))


def cpu_info():
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return "unknown CPU", set()
    field = lambda key: next((l.split(":", 1)[1].strip() for l in info.splitlines() if l.startswith(key)), "?")
    flags = set(field("flags").split())
    return f"{field('model name')}, family {field('cpu family')} model {field('model')}, {os.cpu_count()} cores", flags


def cgt_dispatch(result):
    """What cgt's JSON says ran: oneDNN's level (`dnnl_get_effective_cpu_isa`), its convolution
    implementations, and the vector units cgt's own kernels were compiled for."""
    implementations = set()
    for line in result.get("convolutions", []):
        implementations.update(m.strip() for m in
                               re.findall(r"(?<!no )(?:forward|backward weights|backward data) ([^,(]+)",
                                                         line.split(": ", 1)[-1]))
    parts = [result["engine"]]
    if implementations:
        parts.append("convolutions " + ", ".join(sorted(implementations)))
    parts.append(f"matrix products dnnl_sgemm; own kernels compiled for {result['kernelTarget']}")
    return "; ".join(parts)


def torch_dispatch(result):
    d = result.get("dispatch") or {}
    parts = [f"ATen kernels {d.get('aten', result['cpuCapability'])}"]
    if d.get("onednnIsa") or d.get("onednnKernels"):
        kernels = ", ".join(k for k in d.get("onednnKernels", []) if not k.startswith("reorder "))
        parts.append(f"oneDNN {d.get('onednnIsa') or 'ISA not reported'}" + (f" ({kernels})" if kernels else ""))
    elif d and not d.get("verboseError"):
        parts.append("no oneDNN primitive ran")
    if d.get("mklIsa") or d.get("mklCalls"):
        calls = ", ".join(d.get("mklCalls", []))
        mkl = d.get("mklIsa") or ""
        if not re.search(r"SSE|AVX|Vector Extensions", mkl):
            mkl = f"instruction set not named (its header says \"{mkl or 'nothing'}\")"
        parts.append(f"MKL {mkl}" + (f" ({calls})" if calls else ""))
    if d.get("verboseError"):
        parts.append(f"verbose output unavailable: {d['verboseError']}")
    return "; ".join(parts)


def avx512_in_use(text):
    """Whether a dispatch description names an AVX-512 level (oneDNN's avx512_*, ATen's avx512,
    MKL's "AVX-512") or AMX."""
    return re.search(r"avx.?512|amx", text, re.IGNORECASE) is not None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cgt", required=True)
    parser.add_argument("--torch-python", required=True)
    parser.add_argument("--isa", choices=list(ISA_ENVIRONMENTS), default="native",
                        help="native: as the environment is; avx2: both sides restricted to AVX2 (see above)")
    parser.add_argument("rounds", nargs="?", type=int, default=3)
    parser.add_argument("configs", nargs="*", default=DEFAULT_CONFIGS)
    args = parser.parse_args()
    unknown = [c for c in args.configs if c not in CONFIGS]
    if unknown:
        sys.exit(f"unknown configuration {unknown[0]}; choose from {', '.join(CONFIGS)}")
    cgt_env, torch_env = ISA_ENVIRONMENTS[args.isa]["cgt"], ISA_ENVIRONMENTS[args.isa]["torch"]
    cpu, flags = cpu_info()
    print(f"cpu: {cpu}", flush=True)
    results = {name: {"cgt": [], "torch": []} for name in args.configs}
    details = {}
    for round_index in range(args.rounds):
        for name in args.configs:
            model, cores, batch, cgt_steps, torch_steps = CONFIGS[name]
            mine = cgt_run(args.cgt, model, cores, batch, cgt_steps, cgt_env)
            theirs = torch_run(args.torch_python, model, cores, batch, torch_steps, torch_env)
            results[name]["cgt"].append(mine["samplesPerSecond"])
            results[name]["torch"].append(theirs["samplesPerSecond"])
            details.setdefault(name, (mine, theirs))
            print(f"round {round_index + 1} {name}: cgt {mine['samplesPerSecond']:.0f}, "
                  f"PyTorch {theirs['samplesPerSecond']:.0f} samples/s", flush=True)
    # Several ranks report scaling only: one rank at the per-rank batch, under the same
    # environment, says what they dispatched to (after the timed rounds, so it disturbs none).
    probes = {}
    for name in args.configs:
        model, cores, batch, _, _ = CONFIGS[name]
        if cores > 1 and (model, batch // cores) not in probes:
            probes[(model, batch // cores)] = cgt_run(args.cgt, model, 1, batch // cores, 1, cgt_env)
    print()
    print(f"cpu: {cpu}; AVX-512F {'present' if 'avx512f' in flags else 'absent'}, "
          f"AVX2 {'present' if 'avx2' in flags else 'absent'}")
    inherited = {k: os.environ[k] for k in ISA_VARIABLES if k in os.environ}
    if args.isa == "native":
        print("instruction sets: unrestricted" + (f" except by the environment's {inherited}" if inherited else ""))
    else:
        print(f"instruction sets: restricted to {args.isa}: cgt with "
              + ", ".join(f"{k}={v}" for k, v in cgt_env.items()) + "; PyTorch with "
              + ", ".join(f"{k}={v}" for k, v in torch_env.items()))
    notes = []
    for name in args.configs:
        mine, theirs = details[name]
        model, cores, batch, _, _ = CONFIGS[name]
        single = mine if "engine" in mine else probes[(model, batch // cores)]
        cgt_text, torch_text = cgt_dispatch(single), torch_dispatch(theirs)
        if "engine" in mine:
            lanes = "16-lane AVX-512" if "AVX-512F" in mine["kernelTarget"] else "8-lane AVX2"
            print(f"{name}: cgt {cgt_text}; {mine['fmaPeakGFLOPs']:.0f} GFLOP/s FMA peak ({lanes} FMAs, "
                  f"compiled in, whatever --isa), step at {mine['peakFraction']:.2f} of it")
        else:
            print(f"{name}: cgt {mine['ranks']} ranks, scaling efficiency {mine['scalingEfficiency']:.3f}; "
                  f"each rank (one rank at batch {batch // cores}, same environment): {cgt_text}")
        print(f"{name}: PyTorch {theirs['torch']}, {theirs['threads']} thread(s), {torch_text}"
              f"{', channels_last' if theirs['channelsLast'] else ''}")
        if args.isa != "native":
            engine_isa = single["engine"].split(", ")[1] if ", " in single["engine"] else single["engine"]
            if avx512_in_use(engine_isa) or avx512_in_use(", ".join(re.findall(r"convolutions [^;]*", cgt_text))):
                notes.append(f"{name}: cgt's oneDNN did not honour the restriction ({engine_isa})")
            if avx512_in_use(torch_text):
                notes.append(f"{name}: part of PyTorch still dispatched to AVX-512: {torch_text}")
            if "AVX-512" in single["kernelTarget"]:
                notes.append("cgt's own kernels (BatchNorm, ReLU, add, pooling, softmax and gates, Adam) were compiled "
                             f"for {single['kernelTarget']} and ran as built: ONEDNN_MAX_CPU_ISA restricts oneDNN "
                             "only (launch/bench-vs-pytorch --isa avx2 builds them with CGT_CPU=x86-64-v3)")
    for note in dict.fromkeys(notes):
        print(f"note: {note}")
    print()
    isa = "" if args.isa == "native" else f", {args.isa}"
    print("| config | cgt samples/s | PyTorch samples/s | ratio |")
    print("|---|---|---|---|")
    for name in args.configs:
        model, cores, batch, _, _ = CONFIGS[name]
        ours, theirs = statistics.median(results[name]["cgt"]), statistics.median(results[name]["torch"])
        print(f"| {LABELS[model]}, batch {batch}, {cores} core{'s' if cores > 1 else ''}{isa} | {ours:,.0f} | "
              f"{theirs:,.0f} | {ours / theirs:.2f} |")


if __name__ == "__main__":
    main()
