"""`make bench`: runs every benchmark script in this folder and writes BENCHMARKS.md.

Every `benchmarks/*.py` except this file and `_*.py` helpers is a benchmark. Each runs as
`python benchmarks/<name>.py [--quick]` in its own process; each writes its own
`results/<name>.md` (and some `results/<name>.json`). This runner records what ran (command,
exit code, seconds, machine) in `results/run_all.json` and assembles `BENCHMARKS.md` at the
repository root: the published anchors beside tfkd's measured figures, then every result file.

    python benchmarks/run_all.py                 # full mode, for the record (long)
    python benchmarks/run_all.py --quick         # CI: every script small; record left untouched
    python benchmarks/run_all.py --only mnist_distill methods
    python benchmarks/run_all.py --collect       # rebuild BENCHMARKS.md from results/ only

`--quick` runs each script with `--quick` (scripts without it are skipped) in a copy of this
folder, so the recorded results and BENCHMARKS.md stay as they were; its own summary goes to
`results/quick/`.
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
SELF = pathlib.Path(__file__).name


def discover(folder=HERE):
    """Benchmark scripts of `folder`, sorted: `*.py` but helpers (`_*.py`) and this runner."""
    return sorted(p for p in folder.glob("*.py") if not p.name.startswith("_") and p.name != SELF)


def supports_quick(script):
    return '"--quick"' in script.read_text()


def run_script(script, quick, timeout, cwd):
    """Runs one script; returns its record (command, exit code, seconds, last output lines)."""
    command = [sys.executable, str(script)] + (["--quick"] if quick else [])
    shown = "python benchmarks/" + script.name + (" --quick" if quick else "")
    print(f"[bench] {shown}", flush=True)
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        code, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as error:
        code, output = "timeout", str(error.stdout or "")
    seconds = time.perf_counter() - start
    print(f"        exit {code} after {seconds:.0f} s", flush=True)
    tail = [line for line in output.splitlines() if line.strip()][-15:]
    return {"script": script.name, "command": shown, "exit": code, "seconds": round(seconds, 1),
            "output_tail": tail}


def machine():
    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="every script with --quick")
    parser.add_argument("--only", nargs="+", help="names of the scripts to run (no .py)")
    parser.add_argument("--collect", action="store_true", help="run nothing, rebuild the page")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per script")
    args = parser.parse_args(argv)

    scripts = discover()
    if args.only:
        unknown = set(args.only) - {s.stem for s in scripts}
        if unknown:
            parser.error(f"unknown benchmarks {sorted(unknown)}; known: "
                         f"{[s.stem for s in scripts]}")
        scripts = [s for s in scripts if s.stem in args.only]
    records = [] if args.collect else run_all(scripts, args.quick, args.timeout)
    if args.quick:
        return 0 if all(r["exit"] == 0 for r in records) else 1
    if records:
        write_records(records)
    text = benchmarks_page(HERE / "results")
    (ROOT / "BENCHMARKS.md").write_text(text)
    print(f"[bench] wrote {ROOT / 'BENCHMARKS.md'}")
    return 0 if all(r["exit"] == 0 for r in records) else 1


def run_all(scripts, quick, timeout):
    if not quick:
        return [run_script(s, False, timeout, ROOT) for s in scripts]
    # A copy of benchmarks/ so that quick runs never overwrite the recorded results.
    with tempfile.TemporaryDirectory(prefix="tfkd-bench-") as scratch:
        copy = pathlib.Path(scratch) / "benchmarks"
        shutil.copytree(HERE, copy, ignore=shutil.ignore_patterns("__pycache__"))
        records = []
        for script in scripts:
            if supports_quick(script):
                records.append(run_script(copy / script.name, True, timeout, ROOT))
            else:
                records.append({"script": script.name, "command": None, "exit": 0,
                                "seconds": 0.0, "output_tail": ["skipped: no --quick mode"]})
    out = HERE / "results" / "quick"
    out.mkdir(parents=True, exist_ok=True)
    (out / "run_all.json").write_text(json.dumps(_run_record(records, True), indent=2) + "\n")
    for r in records:
        print(f"[bench] {r['script']}: exit {r['exit']}, {r['seconds']:.0f} s")
    return records


def _run_record(records, quick):
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "quick": quick, "machine": machine(), "runs": records}


def write_records(records):
    """Merges this run's records into results/run_all.json (scripts not rerun keep theirs)."""
    path = HERE / "results" / "run_all.json"
    previous = json.loads(path.read_text()) if path.exists() else {"runs": []}
    kept = {r["script"]: r for r in previous.get("runs", [])}
    kept.update({r["script"]: r for r in records})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_run_record(sorted(kept.values(), key=lambda r: r["script"]),
                                           False), indent=2) + "\n")


# ------------------------------------------------------------------------------- BENCHMARKS.md

def benchmarks_page(results):
    """BENCHMARKS.md: anchors against measured figures, then every results/<name>.md."""
    if str(HERE) not in sys.path:  # imported from elsewhere (tests): find the helper beside us
        sys.path.insert(0, str(HERE))
    from _anchors import anchors_table

    runs = _load_json(results / "run_all.json") or {"runs": []}
    by_script = {r["script"]: r for r in runs["runs"]}
    info = runs.get("machine") or machine()
    lines = [
        "# tfkd benchmarks",
        "",
        "Every figure README quotes, as measured by the scripts in `benchmarks/`, beside its "
        "published anchor. Regenerate with `make bench` (all scripts, full mode, long) or "
        "`python benchmarks/run_all.py --only NAME`; `--collect` rebuilds this page from "
        "`benchmarks/results/`.",
        "",
        f"Machine: {info['cpus']} CPUs, {info['processor']}, {info['platform']}, Python "
        f"{info['python']}. Times were measured while other work shared the machine unless a "
        "section says otherwise: sizes and accuracies are exact, times are noisy.",
        "",
        "## Published anchors and tfkd's figures",
        "",
    ]
    lines += anchors_table(results)
    lines += ["", "## Every benchmark", ""]
    for md in sorted(results.glob("*.md")):
        name = md.stem
        record = by_script.get(f"{name}.py")
        lines.append(f"### {name}")
        lines.append("")
        if record:
            lines.append(f"Command: `{record['command']}` (exit {record['exit']}, "
                         f"{record['seconds']:.0f} s; run {runs.get('date', '?')}).")
        else:
            lines.append(f"Command: `python benchmarks/{name}.py` (result as committed).")
        lines.append("")
        lines += [_demote(line) for line in md.read_text().strip().splitlines()]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _demote(line):
    return "###" + line if line.startswith("#") else line


def _load_json(path):
    try:
        return json.loads(pathlib.Path(path).read_text())
    except (OSError, ValueError):
        return None


if __name__ == "__main__":
    sys.exit(main())
