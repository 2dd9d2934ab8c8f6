"""Turns the raw results of scripts/bench.sh into a console summary and docs/benchmarks.md.

    python benchmarks/report.py RESULTS_DIR DOCS_FILE

RESULTS_DIR holds what bench.sh wrote: env.json, train-ours.jsonl (trainer's metrics.jsonl),
train-torch.jsonl, train-*.time (/usr/bin/time -v), serve-*.json, criterion.json. Missing parts
are reported as not measured. Ratios are ours divided by the reference; nothing here fails on
speed.
"""

import json
import re
import sys
from pathlib import Path


def read_jsonl(path: Path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def peak_rss_mib(path: Path):
    if not path.exists():
        return None
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", path.read_text())
    return int(m.group(1)) / 1024 if m else None


def training(results: Path, side: str, target: float):
    rows = read_jsonl(results / f"train-{side}.jsonl")
    epochs = [r for r in rows if "epoch" in r]
    if not epochs:
        return None
    elapsed, reached, wall = 0.0, None, None
    for e in epochs:
        elapsed += e["seconds"]
        if reached is None and e["test_accuracy"] >= target:
            reached, wall = elapsed, e.get("elapsed_seconds")
    return {
        "epochs": epochs,
        "mean_sps": sum(e["samples_per_second"] for e in epochs) / len(epochs),
        "to_target": reached,
        "wall_to_target": wall,
        "best_accuracy": max(e["test_accuracy"] for e in epochs),
        "peak_rss_mib": peak_rss_mib(results / f"train-{side}.time"),
    }


def fmt(value, digits=1, unit=""):
    return "n/a" if value is None else f"{value:,.{digits}f}{unit}"


def ratio(ours, reference):
    if ours is None or reference in (None, 0):
        return "n/a"
    return f"{ours / reference:.2f}x"


def training_section(results: Path, env: dict):
    target = 0.99
    ours, ref = training(results, "ours", target), training(results, "torch", target)
    lines = ["## Training", "", env.get("train_note", ""), ""]
    lines += ["| epoch | ours samples/s | ours test acc. | PyTorch samples/s | PyTorch test acc. |",
              "|---:|---:|---:|---:|---:|"]
    count = max(len(ours["epochs"]) if ours else 0, len(ref["epochs"]) if ref else 0)
    for i in range(count):
        cells = []
        for side in (ours, ref):
            e = side["epochs"][i] if side and i < len(side["epochs"]) else None
            cells += [fmt(e and e["samples_per_second"], 0),
                      fmt(e and 100 * e["test_accuracy"], 2, " %")]
        lines.append(f"| {i + 1} | " + " | ".join(cells) + " |")
    get = lambda side, key: side and side[key]  # noqa: E731
    lines += ["", "| | ours | PyTorch | ours / PyTorch |", "|---|---:|---:|---:|"]
    lines.append(f"| mean samples/s (higher is better) | {fmt(get(ours, 'mean_sps'), 0)} | "
                 f"{fmt(get(ref, 'mean_sps'), 0)} | "
                 f"{ratio(get(ours, 'mean_sps'), get(ref, 'mean_sps'))} |")
    lines.append(f"| training seconds to 99.0 % test accuracy (lower is better) | "
                 f"{fmt(get(ours, 'to_target'), 1, ' s')} | {fmt(get(ref, 'to_target'), 1, ' s')} | "
                 f"{ratio(get(ours, 'to_target'), get(ref, 'to_target'))} |")
    lines.append(f"| wall seconds to 99.0 %: data, steps and evaluations (lower is better) | "
                 f"{fmt(get(ours, 'wall_to_target'), 1, ' s')} | "
                 f"{fmt(get(ref, 'wall_to_target'), 1, ' s')} | "
                 f"{ratio(get(ours, 'wall_to_target'), get(ref, 'wall_to_target'))} |")
    lines.append(f"| best test accuracy | {fmt(ours and 100 * ours['best_accuracy'], 2, ' %')} | "
                 f"{fmt(ref and 100 * ref['best_accuracy'], 2, ' %')} | |")
    lines.append(f"| peak resident memory | {fmt(get(ours, 'peak_rss_mib'), 0, ' MiB')} | "
                 f"{fmt(get(ref, 'peak_rss_mib'), 0, ' MiB')} | "
                 f"{ratio(get(ours, 'peak_rss_mib'), get(ref, 'peak_rss_mib'))} |")
    return lines


def serving_section(results: Path, env: dict):
    sides = {}
    for side in ("ours", "torch"):
        path = results / f"serve-{side}.json"
        sides[side] = json.loads(path.read_text()) if path.exists() else None
    lines = ["## Serving", "", env.get("serve_note", ""), ""]
    lines += ["| concurrency | ours req/s | PyTorch req/s | ratio | ours p50 / p99 ms | "
              "PyTorch p50 / p99 ms | errors ours / PyTorch |", "|---:|---:|---:|---:|---|---|---|"]
    runs = lambda s: {r["concurrency"]: r for r in (s or {}).get("runs", [])}  # noqa: E731
    ours, ref = runs(sides["ours"]), runs(sides["torch"])
    for c in sorted(set(ours) | set(ref)):
        o, r = ours.get(c, {}), ref.get(c, {})
        lines.append(
            f"| {c} | {fmt(o.get('rps'), 0)} | {fmt(r.get('rps'), 0)} | "
            f"{ratio(o.get('rps'), r.get('rps'))} | {fmt(o.get('p50_ms'), 2)} / "
            f"{fmt(o.get('p99_ms'), 2)} | {fmt(r.get('p50_ms'), 2)} / {fmt(r.get('p99_ms'), 2)} | "
            f"{o.get('errors', 'n/a')} / {r.get('errors', 'n/a')} |")
    val = lambda s, k: (s or {}).get(k)  # noqa: E731
    lines += ["", "| | ours | PyTorch | ours / PyTorch |", "|---|---:|---:|---:|"]
    for key, label, unit in (("ready_seconds", "start to ready", " s"),
                             ("rss_mib", "resident memory after the load", " MiB"),
                             ("peak_rss_mib", "peak resident memory", " MiB")):
        o, r = val(sides["ours"], key), val(sides["torch"], key)
        lines.append(f"| {label} | {fmt(o, 2, unit)} | {fmt(r, 2, unit)} | {ratio(o, r)} |")
    return lines


def criterion_section(results: Path):
    path = results / "criterion.json"
    rows = json.loads(path.read_text()) if path.exists() else {}
    lines = ["## In process (criterion)", "", "| benchmark | mean |", "|---|---:|"]
    for name, ns in sorted(rows.items()):
        lines.append(f"| `{name}` | {ns / 1e6:.3f} ms |")
    if not rows:
        lines.append("| not measured | |")
    return lines


def targets_section(results: Path):
    """The performance targets, each with the figure measured against it."""
    ours, ref = training(results, "ours", 0.99), training(results, "torch", 0.99)
    serve = {}
    for side in ("ours", "torch"):
        path = results / f"serve-{side}.json"
        runs = json.loads(path.read_text())["runs"] if path.exists() else []
        serve[side] = {r["concurrency"]: r for r in runs}
    path = results / "criterion.json"
    crit = json.loads(path.read_text()) if path.exists() else {}
    path = results / "serve-ours.json"
    rss = json.loads(path.read_text()).get("peak_rss_mib") if path.exists() else None

    def row(label, measured, met):
        state = "n/a" if met is None else ("met" if met else "not met")
        return f"| {label} | {measured} | {state} |"

    sps = (ours and ref) and ours["mean_sps"] / ref["mean_sps"]
    to99 = ours and ours["wall_to_target"]
    o64, r64 = serve["ours"].get(64, {}), serve["torch"].get(64, {})
    rps = o64.get("rps") and r64.get("rps") and o64["rps"] / r64["rps"]
    p99 = o64.get("p99_ms")
    single = crit.get("inference/preprocess_and_forward/batch_1")
    single = single and single / 1e6
    check = lambda v, ok: None if v is None else ok(v)  # noqa: E731
    return [
        "## Targets", "", "| target | measured | |", "|---|---:|---|",
        row("training samples/s at least PyTorch's", fmt(sps, 2, "x"), check(sps, lambda v: v >= 1)),
        row("99.0 % in 60 s or less (wall time), default configuration", fmt(to99, 1, " s"),
            check(to99, lambda v: v <= 60)),
        row("serving at least 5x the reference's requests/s (concurrency 64)", fmt(rps, 2, "x"),
            check(rps, lambda v: v >= 5)),
        row("p99 at or under 10 ms at concurrency 64", fmt(p99, 2, " ms"),
            check(p99, lambda v: v <= 10)),
        row("ml-ui resident memory at or under 64 MiB (peak)", fmt(rss, 1, " MiB"),
            check(rss, lambda v: v <= 64)),
        row("preprocessing + inference of one image under 0.5 ms", fmt(single, 3, " ms"),
            check(single, lambda v: v < 0.5)),
    ]


def main():
    results, docs = Path(sys.argv[1]), Path(sys.argv[2])
    env = json.loads((results / "env.json").read_text())
    header = [
        "# Benchmarks",
        "",
        "This project against the Python stack users would otherwise pick (PyTorch for "
        "training, FastAPI + uvicorn + PyTorch for serving), on the same machine in one run. "
        "Regenerated by `scripts/bench.sh`; ratios are ours divided by the reference.",
        "",
    ]
    if env.get("under_load"):
        header += [f"**Measured under load:** {env['under_load']}", ""]
    header += [
        "## Machine and versions", "",
        f"- measured: {env.get('date')}, at commit {env.get('commit', 'unknown')}",
        f"- CPU: {env.get('cpu')}, {env.get('cores')} cores; memory {env.get('memory')}",
        f"- OS: {env.get('os')}",
        f"- Rust: {env.get('rustc')}; candle {env.get('candle')}",
        f"- Python: {env.get('python')}; torch {env.get('torch')}, fastapi "
        f"{env.get('fastapi')}, uvicorn {env.get('uvicorn')}",
        f"- load generator: {env.get('wrk')}",
        f"- threads: {env.get('threads')} on each side (RAYON_NUM_THREADS, torch.set_num_threads)",
        "", "## Commands", "", "```sh", *env.get("commands", []), "```", "",
    ]
    body = (training_section(results, env) + [""] + serving_section(results, env) + [""]
            + criterion_section(results) + [""] + targets_section(results) + [""])
    text = "\n".join(header + body)
    docs.parent.mkdir(parents=True, exist_ok=True)
    docs.write_text(text)
    sys.stdout.write("\n".join(body) + "\n")


if __name__ == "__main__":
    main()
