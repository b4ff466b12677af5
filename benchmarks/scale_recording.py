"""The paired recording of warm start's scale scenario (issue 25: "32 px to 64 px").

    .venv/bin/python benchmarks/scale_recording.py    # records benchmarks/fixtures/scale-recorded (run it alone)

The same 48 configurations of the basic CNN (Optuna's random sampler, seed
0, over search_efficiency's space less ``image_size``), each trained for 8
epochs with no early stopping, once at image_size 32 (``px32/``) and once at
64 (``px64/``), on the same synthetic scenes drawn at 64 px: the seed
report's Table 1 as a series, where the second sweep trains at a larger
scale what the first tried at a small one. ``benchmarks/warm_start.py``
replays its scenario 2 (an earlier sweep at 32 px, a new one at 64) on it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from search_efficiency import SPEC, record  # noqa: E402

SCALE_RECORDED = os.path.join(HERE, "fixtures", "scale-recorded")
SIZES = (32, 64)


def scale_spec(image_size: int) -> dict:
    """search_efficiency's recorded spec with image_size fixed, not searched."""
    space = {k: v for k, v in SPEC["space"].items() if k != "image_size"}
    return dict(SPEC, name=f"scale-recorded-{image_size}px", space=space,
                fixed=dict(SPEC["fixed"], image_size=image_size))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fixture", default=SCALE_RECORDED, help="where the recording is kept")
    parser.add_argument("--trials", type=int, default=48, help="configurations, each recorded at both sizes")
    parser.add_argument("--epochs", type=int, default=8, help="epochs of every recorded trial")
    args = parser.parse_args()
    if args.trials < 1 or args.epochs < 1:
        parser.error("--trials and --epochs: at least 1")

    import ray

    ray.init(address="local", include_dashboard=False, logging_level="ERROR")
    try:
        with tempfile.TemporaryDirectory() as workdir:  # one synthetic data set for both sizes
            for size in SIZES:
                print(f"recording {args.trials} trials at image_size {size}", file=sys.stderr, flush=True)
                record(workdir, os.path.join(args.fixture, f"px{size}"), args.trials, args.epochs, per_class=200,
                       spec=scale_spec(size), image_px=max(SIZES))
    finally:
        ray.shutdown()
    print(f"recorded: {os.path.relpath(args.fixture)}/px{SIZES[0]} and px{SIZES[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
