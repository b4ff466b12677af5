"""How long ``scenetune report`` takes on an experiment of N trials x E
epochs (Ray Tune's real file format, generated as in read_experiment.py),
split into its parts: Python imports, reading the logs, and the whole report
(tables, figures, importance, Markdown, HTML).

    .venv/bin/python benchmarks/report_time.py                  # 20 trials x 20 epochs
    .venv/bin/python benchmarks/report_time.py --trials 100 --epochs 50
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from read_experiment import clone, make_template  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "bench")
        clone(make_template(os.path.join(tmp, "template-root")), out, args.trials, args.epochs)

        started = time.perf_counter()
        from scenetune.analysis import load_experiment
        from scenetune.analysis.report import write_report
        imported = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load_experiment(out)
        read = time.perf_counter()
        write_report(out, os.path.join(tmp, "report"))
        done = time.perf_counter()
        figures = len(os.listdir(os.path.join(tmp, "report", "figures")))
    print(f"\nscenetune report on {args.trials} trials x {args.epochs} epochs, {os.cpu_count()} CPUs:\n")
    print("| step | seconds |")
    print("|---|---|")
    print(f"| import scenetune.analysis.report (pandas, sklearn, matplotlib, optuna) | {imported - started:.2f} |")
    print(f"| read the experiment (load_experiment) | {read - imported:.2f} |")
    print(f"| write the report ({figures} figures, tables, report.md, report.html) | {done - read:.2f} |")


if __name__ == "__main__":
    main()
