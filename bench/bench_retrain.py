"""Wall time of `kito retrain` end to end, stage by stage, with the challenger's accuracy.

    python bench/bench_retrain.py --work /tmp/kito-retrain --base 500 --reviewed 100 --holdout 100
    python bench/bench_retrain.py --work /tmp/kito-retrain ... --set preprocess.input_size=160

Makes (once, kept in --work) synthetic base, "reviewed" and holdout sets with `kito data synth`,
a registry in --work whose champion is the bundled package, and a frozen holdout; then times one
`kito retrain` (the same code as the command; --reviews given, so no database export) and prints
one markdown row (docs/BENCHMARKS.md, "Retraining"). Wall and CPU seconds both: CPU time barely
depends on other jobs sharing the cores. The crop cache lives in --work: a second run with the
same preprocessing finds the crops made by the first (as a retrain finds the champion's).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _synth(out: Path, count: int, seed: int, workers: int) -> None:
    if (out / "manifest.jsonl").is_file():
        return
    cmd = [sys.executable, "-m", "kito", "data", "synth", "--out", str(out), "--count", str(count)]
    cmd += ["--seed", str(seed), "--workers", str(workers)]
    subprocess.run(cmd, check=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--base", type=int, default=500)
    p.add_argument("--reviewed", type=int, default=100)
    p.add_argument(
        "--reviewed-seed",
        type=int,
        default=1,
        help="another seed: a batch of new photos (the base's trunk features are then on disk)",
    )
    p.add_argument("--holdout", type=int, default=100)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--init", default="champion", choices=["champion", "imagenet"])
    p.add_argument("--tag", default="default")
    args = p.parse_args()

    work = args.work.resolve()
    os.environ.update(
        KITO_DATA_DIR=str(work / "data"),
        KITO_CACHE_DIR=str(work / "crop-cache"),
        KITO_HOLDOUT_DIR=str(work / "data" / "holdout"),
    )
    os.environ.pop("KITO_DATABASE_URL", None)
    _synth(work / "base", args.base, 0, args.workers)
    reviewed = work / ("reviewed" if args.reviewed_seed == 1 else f"reviewed-s{args.reviewed_seed}")
    _synth(reviewed, args.reviewed, args.reviewed_seed, args.workers)
    _synth(work / "golden", args.holdout, 2, args.workers)

    from kito.retrain import freeze_holdout, retrain
    from serving.core.settings import REPO_ROOT
    from serving.registry.registry_cli import list_models, register_package

    if not (work / "data" / "holdout").exists():
        print(freeze_holdout(work / "golden", None))
    if not list_models("champion"):
        print(register_package(REPO_ROOT / "models" / "default", None, promote=True))

    out = work / f"run-{args.tag}-{int(time.time())}"
    t0, c0 = time.perf_counter(), _cpu()
    outcome = retrain(
        out=out,
        base=work / "base",
        reviews=reviewed,
        overrides=args.set,
        init=args.init,
        promote=False,
        echo=print,
    )
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    print(outcome.message)
    import json

    from serving.registry.registry_cli import open_registry

    with open_registry() as (session, _, _):
        from serving.registry import registry

        row = registry.get(session, outcome.version or "")
        comp = row.metrics["comparison"]
    h = comp["holdout"]
    stages = outcome.wall_s or {}
    load = os.getloadavg()[0]
    print(json.dumps({"wall_s": wall, "cpu_s": cpu, "stages": stages}, indent=1))
    print(
        "| tag | base+reviewed photos | settings | wall s | CPU s | train s | export s | "
        "compare s | holdout macro-F1 champion / challenger | any-defect recall | load |"
    )
    print(
        f"| {args.tag} | {args.base}+{args.reviewed} | {' '.join(args.set) or 'champion config'} "
        f"| {wall:.0f} | {cpu:.0f} | {stages.get('train', 0):.0f} | {stages.get('export', 0):.0f} "
        f"| {stages.get('compare', 0):.0f} | {h['champion']['macro_f1']:.3f} / "
        f"{h['challenger']['macro_f1']:.3f} | {h['champion']['any_defect']['recall']:.3f} / "
        f"{h['challenger']['any_defect']['recall']:.3f} | {load:.1f} |"
    )


if __name__ == "__main__":
    main()
