"""Time a full `dermaudit report` run and append the result to benchmarks/RESULTS.md.

Usage (from the project folder, after `make setup`):

    .venv/bin/python benchmarks/time_report.py --params params/default.yaml
    .venv/bin/python benchmarks/time_report.py --params params/cpu-real.yaml \
        --data-root ../shared/data/ham10000-small

Each run starts from an empty output folder (default: a fresh folder under /tmp), so the
image cache, the synthetic data and the model are built from scratch. The record contains
the command and the machine (CPU count and model, memory, torch version and device). It also
contains the wall time of each chapter, the peak resident memory of the largest process (the
CLI or a chapter kernel), and the clean balanced accuracy and macro AUROC of the run.
"""

import argparse
import datetime
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

PROJECT_DIR = Path(__file__).resolve().parents[1]
RESULTS = PROJECT_DIR / "benchmarks" / "RESULTS.md"


def machine_description():
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        match = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        cpu = match.group(1).strip() if match else cpu
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU only"
    return (f"{os.cpu_count()} CPUs ({cpu}), {memory_gib:.0f} GiB RAM, torch {torch.__version__}, {device}, "
            f"Python {platform.python_version()}")


def chapter_times(log_text):
    return dict(re.findall(r"chapter (\w+) finished in (\d+) s", log_text))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", required=True)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--output-dir", default=None, help="empty output folder (default: a new temp folder)")
    args = parser.parse_args()

    output_dir = Path(args.output_dir or tempfile.mkdtemp(prefix="dermaudit-bench-"))
    command = [sys.executable, "-m", "dermaudit", "report", "--params", args.params, "--output-dir", str(output_dir)]
    if args.data_root:
        command += ["--data-root", args.data_root]

    start = time.perf_counter()
    completed = subprocess.run(command, cwd=PROJECT_DIR, capture_output=True, text=True,
                               env=dict(os.environ, HF_HUB_OFFLINE="1"))
    wall = time.perf_counter() - start
    sys.stderr.write(completed.stderr[-4000:])
    if completed.returncode != 0:
        sys.exit(f"the run failed with exit status {completed.returncode}; see the log above")

    peak_rss_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    clean = json.loads((output_dir / "eval" / "clean_metrics.json").read_text())["overall"]
    times = chapter_times(completed.stderr)
    command_text = " ".join(["dermaudit report", "--params", args.params] + (["--data-root", args.data_root] if args.data_root else []))
    entry = (
        f"\n## {datetime.date.today().isoformat()}: `{command_text}`\n\n"
        f"- Machine: {machine_description()}\n"
        f"- Wall time: {wall:.0f} s in all (training {times.get('training', '?')} s, robustness "
        f"{times.get('robustness', '?')} s, calibration {times.get('calibration', '?')} s, cases "
        f"{times.get('cases', '?')} s; the rest is kernel start-up and rendering)\n"
        f"- Peak resident memory of one child process: {peak_rss_gib:.1f} GiB\n"
        f"- Clean test balanced accuracy {clean['balanced_accuracy']['value']:.3f} "
        f"[{clean['balanced_accuracy']['ci_low']:.3f}, {clean['balanced_accuracy']['ci_high']:.3f}], "
        f"macro AUROC {clean['macro_auroc']['value']:.3f} "
        f"[{clean['macro_auroc']['ci_low']:.3f}, {clean['macro_auroc']['ci_high']:.3f}]\n"
    )
    if not RESULTS.is_file():
        RESULTS.write_text("# Benchmark results\n\nRecords appended by `benchmarks/time_report.py`, newest last.\n")
    with RESULTS.open("a", encoding="utf-8") as f:
        f.write(entry)
    print(entry)


if __name__ == "__main__":
    main()
