#!/usr/bin/env python3
"""Pictures of ebus-bench results (its --json / --json-out files, schema
ebus-bench/2) with matplotlib (Debian: python3-matplotlib).

    scripts/plot.py RESULTS.json [MORE.json ...] [--out DIR]

Writes into DIR (default: the first file's directory):
  throughput.png   events per second per throughput scenario, ebus and each
                   peer (median, with the min..max of the runs)
  latency-NAME.png the latency CDF of each latency scenario (pingpong,
                   latency, idle), one line per system, log time axis
  scaling.png      with several files: ebus's events per second in each
                   throughput scenario, file by file (say, one file per
                   executor count or machine), beside the raw ring's
Prints the paths it wrote.
"""
import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SCHEMA = "ebus-bench/2"
THROUGHPUT = ["throughput", "fanout", "multi", "by-name"]


def load(path):
    header, rows = None, []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            obj = json.loads(line)
            if obj.get("schema") != SCHEMA:
                sys.exit(f"{path}:{n}: schema {obj.get('schema')!r}, this script reads {SCHEMA}")
            if obj.get("kind") == "header":
                header = obj
            elif "skipped" not in obj:
                rows.append(obj)
    if header is None:
        sys.exit(f"{path}: no header line (ebus-bench --json or --json-out writes one)")
    return header, rows


def machine_line(header):
    m = header["machine"]
    return (f"{m['cpu_model']}, {m['cpus_allowed']} CPUs, Linux {m['kernel']}; "
            f"ebus {header['ebus_version']}, {header['time_utc']}")


def plot_throughput(header, rows, out):
    scen = [s for s in THROUGHPUT if any(r["scenario"] == s for r in rows)]
    if not scen:
        return None
    systems = []
    for r in rows:
        if r["scenario"] in scen and r["system"] not in systems:
            systems.append(r["system"])
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / len(systems)
    for k, sysname in enumerate(systems):
        xs, ys, lo, hi = [], [], [], []
        for i, s in enumerate(scen):
            r = next((r for r in rows if r["scenario"] == s and r["system"] == sysname), None)
            if not r or r["events_per_s"] is None:
                continue
            xs.append(i + (k - (len(systems) - 1) / 2) * width)
            med = r["events_per_s"] / 1e6
            ys.append(med)
            lo.append(med - r["min_events_per_s"] / 1e6)
            hi.append(r["max_events_per_s"] / 1e6 - med)
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=sysname)
    ax.set_xticks(range(len(scen)), scen)
    ax.set_ylabel("million events per second (median; bars: min..max)")
    ax.set_title("Throughput by scenario\n" + machine_line(header), fontsize=9)
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = os.path.join(out, "throughput.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def cdf(hist):
    """Points of the empirical CDF at each bucket's upper bound."""
    total = sum(c for _, _, c in hist)
    xs, ys, run = [], [], 0
    for lo, hi, c in hist:
        if not xs:
            xs.append(max(lo, 1))
            ys.append(0.0)
        run += c
        xs.append(max(hi, 1))
        ys.append(run / total)
    return xs, ys


def plot_latency(header, rows, out):
    paths = []
    for s in sorted({r["scenario"] for r in rows if "latency_hist_ns" in r}):
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for r in rows:
            if r["scenario"] == s and r.get("latency_hist_ns"):
                xs, ys = cdf(r["latency_hist_ns"])
                ax.step(xs, ys, where="post",
                        label=f"{r['system']} (p50 {r['p50_ns']} ns, p99.9 {r['p999_ns']} ns)")
        ax.set_xscale("log")
        ax.set_xlabel("latency, ns (log scale; quarter-octave buckets)")
        ax.set_ylabel("fraction of events at or below")
        ax.set_ylim(0, 1.01)
        ax.set_title(f"Latency CDF: {s}\n" + machine_line(header), fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="lower right")
        fig.tight_layout()
        path = os.path.join(out, f"latency-{s}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def plot_scaling(files, out):
    labels = [os.path.splitext(os.path.basename(p))[0] for p, _, _ in files]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for s in THROUGHPUT:
        for sysname, style in (("ebus", "-o"), ("ck_ring", "--x")):
            ys = []
            for _, _, rows in files:
                r = next((r for r in rows if r["scenario"] == s and r["system"] == sysname), None)
                ys.append(r["events_per_s"] / 1e6 if r and r["events_per_s"] else float("nan"))
            if any(y == y for y in ys):
                ax.plot(labels, ys, style, label=f"{s}: {sysname}")
    ax.set_ylabel("million events per second (median)")
    ax.set_xlabel("result file")
    ax.set_title("Scaling across runs\n" + machine_line(files[0][1]), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(out, "scaling.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--out")
    a = ap.parse_args()
    files = [(p, *load(p)) for p in a.files]
    out = a.out or os.path.dirname(os.path.abspath(a.files[0]))
    os.makedirs(out, exist_ok=True)
    header, rows = files[0][1], files[0][2]
    written = []
    p = plot_throughput(header, rows, out)
    if p:
        written.append(p)
    written += plot_latency(header, rows, out)
    if len(files) > 1:
        written.append(plot_scaling(files, out))
    for p in written:
        print(p)
    if not written:
        sys.exit("nothing to plot (no throughput or latency scenario in the file)")


if __name__ == "__main__":
    main()
