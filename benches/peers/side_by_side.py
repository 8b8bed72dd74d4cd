"""gradus and every installed peer side by side, timed the same way, in alternating rounds.

    /tmp/peers/bin/python benches/peers/side_by_side.py            # 3 rounds of W1-W4
    /tmp/peers/bin/python benches/peers/side_by_side.py --quick    # a smoke test, tiny timers

Builds gradus's `steps` bench (`benches/steps.rs`), then runs each round as: for each workload,
gradus then each peer (`bench_*.py` beside this file), one process per run, every side with the
same warm-up steps, the same number of timed blocks and the same steps per block; the median
block counts. Before each run it reads the host's load (`/proc/loadavg`). With W1, W2 and W3 it
also times L1, L2 and L3, each step's matrix products alone through gradus's gemm path: the
steps per second of a step made only of its products. It prints a markdown table of the medians over the rounds, gradus's
ratio to the best peer, and every round's values with their loads, and writes the table to
`--out` (by default the file the book's Performance chapter includes). The raw runs go to
`target/side_by_side.json`; `--from-json` renders a table from such a file without running.

torch.compile and PyTensor take minutes to compile the 2,000-stage chain W4, so they run it at
`--slow-stages` (200) instead, in a row of its own where every side runs that shorter chain.
"""

import argparse
import datetime
import importlib.metadata
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import common as C  # the peers' thread limits, inherited by every run

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BOOK_TABLE = ROOT / "book/src/measured/side_by_side.md"
RAW = ROOT / "target/side_by_side.json"

# (warm-up steps, timed blocks, steps per block) per workload, the same for every side.
TIMERS = {"W1": (10, 20, 20), "W2": (10, 20, 20), "W3": (5, 15, 5), "W4": (5, 15, 5),
          "W5": (5, 20, 20), "W7": (5, 20, 10)}
QUICK_TIMER = (1, 3, 2)
# side: (module it needs, script and its flags, workloads it has)
PEERS = {
    "numpy": ("numpy", ["bench_numpy.py"], "W1 W2 W3 W4"),
    "torch": ("torch", ["bench_torch.py", "--no-compile"], "W1 W2 W3 W4 W5 W7"),
    "torch.compile": ("torch", ["bench_torch.py", "--no-eager"], "W1 W2 W3 W4"),
    "jax": ("jax", ["bench_jax.py"], "W1 W2 W3 W4 W5 W7"),
    "pytensor": ("pytensor", ["bench_pytensor.py"], "W1 W2 W3 W4"),
}
SLOW = ("torch.compile", "pytensor")  # minutes to compile the 2,000-stage chain
TITLES = {"gradus": "gradus", "numpy": "numpy", "torch": "PyTorch eager",
          "torch.compile": "torch.compile", "jax": "JAX jit", "pytensor": "PyTensor C"}
WORKLOADS = {"W1": "W1 RBM CD-1", "L1": "W1's five products alone (L1)", "W2": "W2 MLP",
             "L2": "W2's eight products alone (L2)", "W3": "W3 autoencoder",
             "L3": "W3's 23 products alone (L3)", "W4": "W4 chain", "W5": "W5 LSTM (gradus: Scan)",
             "W7": "W7 convnet"}


def args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, help="alternating rounds (default 3; --quick: 1)")
    p.add_argument("--workloads", default="W1,W2,W3,W4", help="of W1,W2,W3,W4,W5,W7")
    p.add_argument("--peers", help="of " + ",".join(PEERS) + " (default: those installed)")
    p.add_argument("--stages", type=int, help="W4's chain length (default 2000; --quick: 100)")
    p.add_argument("--slow-stages", type=int,
                   help="W4's length for " + " and ".join(SLOW) + " (default 200; --quick: 20;"
                   " 0 leaves them out of W4; equal to --stages puts them in its row)")
    p.add_argument("--out", help=f"the table's file (default {BOOK_TABLE.relative_to(ROOT)};"
                   " --quick: none); '' for none")
    p.add_argument("--quick", action="store_true", help="tiny timers and chains: a smoke test")
    p.add_argument("--timeout", type=float, default=1200, help="seconds one run may take")
    p.add_argument("--from-json", help="render the table of an earlier run's raw file")
    a = p.parse_args()
    a.rounds = a.rounds or (1 if a.quick else 3)
    a.stages = a.stages or (100 if a.quick else 2000)
    if a.slow_stages is None:
        a.slow_stages = 20 if a.quick else 200
    a.workloads = [w.strip().upper() for w in a.workloads.split(",")]
    for w in a.workloads:
        if w not in TIMERS:
            p.error(f"unknown workload {w}")
    installed = [s for s, (module, _, _) in PEERS.items() if importlib.util.find_spec(module)]
    a.peers = [s.strip() for s in a.peers.split(",")] if a.peers else installed
    for s in a.peers:
        if s not in PEERS:
            p.error(f"unknown peer {s}")
    return a


def build():
    """The path of the `steps` binary, built as `cargo bench` builds it."""
    out = subprocess.run(
        ["cargo", "bench", "-p", "gradus-bench", "--bench", "steps", "--no-run",
         "--message-format=json-render-diagnostics"],
        cwd=ROOT, stdout=subprocess.PIPE, check=True, text=True).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "steps" \
                and msg.get("executable"):
            return msg["executable"]
    sys.exit("side_by_side: cargo built no `steps` executable")


def load():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def plan(a):
    """Each round's runs in order: (row, workload, side, stages), a row being what the table
    shows on one line (W4 at the slow peers' length has its own)."""
    runs = []
    for w in a.workloads:
        sides = ["gradus"] + [s for s in a.peers if w in PEERS[s][2].split()]
        if w != "W4":
            for s in sides:
                runs.append((w, w, s, None))
                if w in ("W1", "W2", "W3") and s == "gradus":
                    lim = "L" + w[1:]
                    runs.append((lim, lim, s, None))  # right after gradus's step
            continue
        slow = [s for s in sides if s in SLOW]
        together = a.slow_stages == a.stages
        runs += [(f"W4@{a.stages}", w, s, a.stages) for s in sides if s not in slow or together]
        if slow and a.slow_stages and not together:
            runs += [(f"W4@{a.slow_stages}", w, s, a.slow_stages) for s in sides]
    return runs


def command(a, steps_bin, workload, side, stages):
    warmup, repeats, steps = QUICK_TIMER if a.quick else TIMERS[re.sub(r"^L", "W", workload)]
    timer = ["--warmup", str(warmup), "--repeats", str(repeats), "--steps", str(steps)]
    if side == "gradus":
        return [steps_bin, workload, *timer] + (["--stages", str(stages)] if stages else []), ROOT
    script = PEERS[side][1]
    return ([sys.executable, *script, "--workloads", workload, *timer, "--calls", str(steps),
             "--stages", str(stages or a.stages)], HERE)


def parse(workload, side, out):
    """(value, label, compile seconds) from a run's output: steps/s, or ms per call for W4."""
    if side == "gradus":
        name = r"W5 lstm sgd step \(scan\)" if workload == "W5" else rf"{workload} [^:]*"
        m = re.search(rf"^{name}: ([0-9.]+) ms(.*)$", out, re.M)
        if not m:
            return None
        ms = float(m.group(1))
        c = re.search(r"compile ([0-9.]+) ms", m.group(2))
        value = ms if workload == "W4" else 1e3 / ms
        return value, "gradus", float(c.group(1)) / 1e3 if c else None
    m = re.search(rf"^{workload} (.+?) ([0-9.]+) (steps/s|ms/call)(.*)$", out, re.M)
    if not m:
        return None
    c = re.search(r"\(compile ([0-9.]+) (m?s)\)", m.group(4))
    compile_s = float(c.group(1)) / (1e3 if c.group(2) == "ms" else 1) if c else None
    return float(m.group(2)), m.group(1), compile_s


def run_all(a):
    steps_bin = build()
    env = dict(os.environ, RAYON_NUM_THREADS=str(C.THREADS))
    records, runs = [], plan(a)
    for r in range(1, a.rounds + 1):
        for row, workload, side, stages in runs:
            cmd, cwd = command(a, steps_bin, workload, side, stages)
            before = load()
            clock = datetime.datetime.now(datetime.timezone.utc)
            t = time.perf_counter()
            try:
                p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                                   timeout=a.timeout)
                got = parse(workload, side, p.stdout) if p.returncode == 0 else None
                error = None if got else (p.stderr or p.stdout)[-2000:]
            except subprocess.TimeoutExpired:
                got, error = None, f"timed out after {a.timeout:.0f} s"
            rec = dict(round=r, row=row, workload=workload, side=side, stages=stages,
                       load=before, time=clock.strftime("%H:%M:%S"),
                       wall_s=round(time.perf_counter() - t, 1), value=None, label=None,
                       compile_s=None, error=error)
            if got:
                rec["value"], rec["label"], rec["compile_s"] = got
            records.append(rec)
            shown = "failed" if not got else f"{got[0]:.2f} {unit(row)}"
            print(f"round {r} {row} {side}: {shown} (load {before[0]:.2f}, {rec['wall_s']} s)",
                  file=sys.stderr, flush=True)
            if error:
                print(error, file=sys.stderr)
    return dict(started=records[0]["time"] if records else None,
                date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
                argv=sys.argv[1:], rounds=a.rounds, quick=a.quick, timers=timers(a),
                versions=versions(), cpu=cpu(), records=records)


def cpu():
    """The processor, as /proc/cpuinfo names it (sessions draw different machines, and the
    same build's speed differs between them): 'AMD EPYC (family 25, model 17), 2 cores'."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    field = lambda key: next((l.split(":", 1)[1].strip() for l in info.splitlines()
                              if l.split(":")[0].strip() == key), "?")
    return (f"{field('model name')} (family {field('cpu family')}, model {field('model')}), "
            f"{os.cpu_count()} cores")


def unit(row):
    return "ms/call" if row.startswith("W4") else "steps/s"


def timers(a):
    return {w: QUICK_TIMER if a.quick else TIMERS[w] for w in a.workloads}


def versions():
    out = {}
    for pkg in ("numpy", "torch", "jax", "jaxlib", "pytensor"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            pass
    rev = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT,
                         capture_output=True, text=True).stdout.strip()
    out["gradus"] = rev or "?"
    return out


def fmt(x, row):
    if x is None:
        return ""
    if row.startswith("W4"):
        return f"{x:.2f}" if x < 100 else f"{x:.0f}"
    return f"{x:.0f}" if x >= 100 else f"{x:.1f}"


def render(raw):
    recs = raw["records"]
    rows = list(dict.fromkeys(r["row"] for r in recs))
    sides = list(dict.fromkeys(r["side"] for r in recs))
    ok = [r for r in recs if r["value"] is not None]

    def values(row, side, key="value"):
        return [r[key] for r in ok if r["row"] == row and r["side"] == side
                and r[key] is not None]

    def median(row, side, key="value"):
        v = values(row, side, key)
        return statistics.median(v) if v else None

    loads = [r["load"][0] for r in recs]
    titles = dict(TITLES)
    labels = {r["label"] for r in ok if r["side"] == "pytensor"}
    if any(label.endswith("-noblas") for label in labels):
        titles["pytensor"] = "PyTensor C, no BLAS"
    if "pytensor-py" in labels or "pytensor-py-noblas" in labels:
        titles["pytensor"] = "PyTensor, Python"
    first, last = recs[0]["time"], recs[-1]["time"]
    ver = raw["versions"]
    lines = [
        f"Made by `{' '.join(['benches/peers/side_by_side.py', *raw['argv']])}` on {raw['date']}, "
        f"{first}–{last} UTC: {raw['rounds']} round{'s' * (raw['rounds'] > 1)}, each running "
        "every workload on gradus then on each peer, one process per run, 2 threads"
        + (f", on {raw['cpu']}" if raw.get("cpu") else "") + ". Every side "
        f"is timed alike, "
        f"{timer_text(raw['timers'])}. The host's 1-minute load before the runs: "
        f"{min(loads):.2f}–{max(loads):.2f}, median {statistics.median(loads):.2f}. "
        f"gradus {ver.get('gradus')}; "
        + ", ".join(f"{k} {v}" for k, v in ver.items() if k != "gradus") + ".",
        "",
        "| workload | " + " | ".join(titles[s] for s in sides)
        + " | gradus's speed / best peer's |",
        "| --- |" + " ---: |" * len(sides) + " --- |",
    ]
    for row in rows:
        w = row.split("@")[0]
        name = WORKLOADS.get(w, w)
        if w == "W4":
            name = f"W4 {int(row.split('@')[1]):,}-stage chain, ms per call"
        else:
            name += ", steps/s"
        cells, ran = [], {r["side"] for r in recs if r["row"] == row}
        for s in sides:
            m = median(row, s)
            cells.append(fmt(m, row) if m is not None else ("failed" if s in ran else ""))
        peers = {s: median(row, s) for s in sides if s != "gradus" and median(row, s)}
        g = median(row, "gradus")
        note = ""
        step = "W" + row[1:]
        if row.startswith("L") and g and median(step, "gradus"):
            shares = [w / lim for w, lim in zip(per_round(ok, step), per_round(ok, row))
                      if w and lim]
            note = f"{step} at {median(step, 'gradus') / g:.0%} of it"
            if len(shares) > 1:
                note += f" (rounds {min(shares):.0%}–{max(shares):.0%})"
        elif g and peers:
            best = (max if unit(row) == "steps/s" else min)(peers, key=peers.get)
            ratio = g / peers[best] if unit(row) == "steps/s" else peers[best] / g
            note = f"{ratio:.2f}× ({titles[best]})"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {note} |")
        if w == "W4":
            comp = [median(row, s, "compile_s") for s in sides]
            if any(c is not None for c in comp):
                lines.append(f"| W4 {int(row.split('@')[1]):,} stages: compile, s | "
                             + " | ".join("" if c is None else f"{c:.3g}" for c in comp)
                             + " | |")
    notes = []
    if "W1" in rows:
        notes.append("W1 is plain CD-1 on every side (`Rbm::trainer` with momentum and weight "
                     "decay 0, as the peers' step).")
    chains = sorted((int(row.split("@")[1]), row) for row in rows if row.startswith("W4@"))
    if chains:
        notes.append("W4's compile is gradus's build + grad + compile, JAX's trace and XLA "
                     "compile, torch.compile's first call (forward and backward), PyTensor's "
                     "build + grad + compile (its C cache makes later rounds warm).")
    if len(chains) > 1:
        (short, _), (_, longest) = chains[0], chains[-1]
        left_out = [s for s in sides if s in SLOW
                    and not any(r["side"] == s and r["row"] == longest for r in recs)]
        notes.append(" and ".join(titles[s] for s in left_out) + f" ran W4 at {short:,} stages "
                     "only (`--slow-stages`): compiling long chains takes them minutes.")
    labels = sorted({r["label"] for r in ok if r["side"] != "gradus"})
    if labels:
        notes.append("The peers named themselves: " + ", ".join(labels) + ".")
    if notes:
        lines += ["", " ".join(notes)]
    lines += ["", "Every round (the 1-minute load before the run in brackets):", "",
              "| round, workload | " + " | ".join(titles[s] for s in sides) + " |",
              "| --- |" + " ---: |" * len(sides)]
    for rnd in sorted({r["round"] for r in recs}):
        for row in rows:
            here = {r["side"]: r for r in recs if r["round"] == rnd and r["row"] == row}
            if not here:
                continue
            cells = []
            for s in sides:
                r = here.get(s)
                if r is None:
                    cells.append("")
                elif r["value"] is None:
                    cells.append(f"failed ({r['load'][0]:.2f})")
                else:
                    cells.append(f"{fmt(r['value'], row)} ({r['load'][0]:.2f})")
            start = min(r["time"] for r in here.values())
            lines.append(f"| {rnd}, {row} at {start} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def timer_text(timers):
    """'W1 (and L1), W2: 10 warm-up steps, then the median of 20 blocks of 20 steps; ...'."""
    groups = {}
    for w, t in timers.items():
        limit = {"W1": " (and L1)", "W2": " (and L2)", "W3": " (and L3)"}.get(w, "")
        groups.setdefault(tuple(t), []).append(w + limit)
    return "; ".join(
        ", ".join(ws) + f": {t[0]} warm-up step{'s' * (t[0] != 1)}, then the median of {t[1]} "
        f"blocks of {t[2]} "
        + ("calls" if ws == ["W4"] else "steps (W4: calls)" if "W4" in ws else "steps")
        for t, ws in groups.items())


def per_round(ok, row):
    by = {r["round"]: r["value"] for r in ok if r["row"] == row and r["side"] == "gradus"}
    return [by.get(n) for n in range(1, max(by, default=0) + 1)]


def main():
    a = args()
    if a.from_json:
        raw = json.loads(Path(a.from_json).read_text())
    else:
        raw = run_all(a)
        RAW.parent.mkdir(exist_ok=True)
        RAW.write_text(json.dumps(raw, indent=1))
    if a.out is None:
        a.out = "" if raw["quick"] else str(BOOK_TABLE)
    table = render(raw)
    print(table)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(table)
        print(f"side_by_side: wrote {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
