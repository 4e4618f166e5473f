"""`kito retrain`, training side: merge the reviewed labels into the base data, train a
challenger from the champion's configuration (and weights), export it, compare it with the
champion on the frozen holdout and the reviewed batch, and run the promotion gate.

Files in, files out. Which champion, which reviews, and what the registry does with the result
belong to kito/retrain.py; nothing here touches the service database.
"""

from __future__ import annotations

import os
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml

from qc_model.errors import DataError
from qc_model.holdout import holdout_folder
from qc_model.manifest import Manifest, Record
from qc_model.package import PackageMeta, read_meta
from training.compare import Comparison
from training.config import REMOVED, drop_removed
from training.recipe import CPU_FREEZE_BLOCKS, trunk_on_this_host

Echo = Callable[[str], Any]


@dataclass
class RetrainPlan:
    champion: Path  # the champion's package folder
    champion_checkpoint: Path | None  # its checkpoint, when the registry has it
    base: Path  # the data the champion learnt from (manifest or folder)
    reviewed: Path  # a reviewed data set (kito data export-reviews)
    holdout_root: Path  # holdout folder; the taxonomy's frozen holdout is inside
    out: Path  # run folder
    config: Path | None = None  # a YAML to use instead of the champion's configuration
    overrides: Sequence[str] = ()
    init: Literal["champion", "imagenet"] = "champion"


@dataclass
class RetrainResult:
    package: Path
    checkpoint: Path
    manifest: Path
    comparison: Comparison
    report: Path
    dataset_versions: dict[str, str]
    notes: list[str]
    wall_s: dict[str, float] = field(default_factory=dict)


def combine(base: Path, reviewed: Path, out: Path) -> tuple[Manifest, int]:
    """One training manifest in `out`: the base data and the reviewed photos (their folders
    linked in), with QC's label replacing the base record of the same photo, and the base's test
    split folded into validation. Returns the manifest and how many base records QC's labels
    replaced."""
    b, r = Manifest.read(base), Manifest.read(reviewed)
    keys = ("task", "classes", "taxonomy_version")
    if any(getattr(b.header, k) != getattr(r.header, k) for k in keys):
        raise DataError(f"{reviewed}: task, classes or taxonomy differ from the base data {base}")
    out.mkdir(parents=True, exist_ok=True)
    for name, src in (("base", base), ("reviewed", reviewed)):
        link = out / name
        if not link.exists():
            os.symlink((src if src.is_dir() else src.parent).resolve(), link)
    relabelled = {x.sha256 for x in r.records}
    records: list[Record] = []
    dropped = 0
    for prefix, m in (("base", b), ("reviewed", r)):
        for rec in m.records:
            if prefix == "base" and rec.sha256 in relabelled:
                dropped += 1  # QC's decision wins over what the base data said
                continue
            records.append(
                rec.model_copy(
                    update={
                        "image": f"{prefix}/{rec.image}",
                        "masks": {k: f"{prefix}/{v}" for k, v in rec.masks.items()},
                        # The frozen holdout and the reviewed batch's test split judge the
                        # challenger; the base data's test split would go unused, so it adds to
                        # validation, where calibration and the hold thresholds are chosen.
                        "split": "val" if prefix == "base" and rec.split == "test" else rec.split,
                    }
                )
            )
    recipe = {
        "command": "kito retrain",
        "base": {"path": str(base), "version": b.header.version},
        "reviewed": {"path": str(reviewed), "version": r.header.version},
        "relabelled": dropped,
    }
    header = b.header.model_copy(update={"name": "retrain", "version": "", "recipe": recipe})
    try:
        merged = Manifest(header=header, records=records)
    except ValueError as exc:  # e.g. a record id in both sets
        raise DataError(f"cannot merge {base} and {reviewed}: {exc}") from None
    return merged.write(out / "manifest.jsonl"), dropped


def retrain_config(
    champion: PackageMeta, plan: RetrainPlan, path: Path, manifest: Path | None = None
) -> list[str]:
    """Write the challenger's training config to `path`; notes on what was changed and why.

    The champion's own config when it carries one (the recipe its data was given); otherwise
    the recipe `kito train` would choose for `manifest` (training.recipe)."""
    notes = []
    if plan.config is not None:
        cfg: dict[str, Any] = yaml.safe_load(plan.config.read_text(encoding="utf-8")) or {}
    else:
        cfg = dict(champion.training.get("config") or {})
        if not cfg and manifest is not None:
            from training.config import load_config
            from training.recipe import choose_recipe

            recipe = choose_recipe(manifest)
            cfg = load_config(recipe.config, recipe.overrides).model_dump(mode="json")
            notes.append(
                f"the champion carries no training config: recipe {recipe.config.name} "
                f"({'; '.join(recipe.reasons)})"
            )
        elif not cfg:
            notes.append("the champion carries no training config: using the defaults")
        gone = sorted(set(cfg) & set(REMOVED))
        if gone:  # the champion's full config: they were written, not chosen, so no warning
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                cfg = drop_removed(cfg, f"{champion.name}@{champion.version}'s training config")
            notes.append(f"settings that were removed left out: {', '.join(gone)}")
    if int(cfg.get("freeze_blocks", CPU_FREEZE_BLOCKS)) == 0:
        notes.extend(trunk_on_this_host(cfg, manifest))
    cfg["weights"] = "imagenet"
    if plan.init == "imagenet":
        notes.append("training from ImageNet weights (as asked)")
    elif plan.champion_checkpoint is not None:
        cfg["weights"] = str(plan.champion_checkpoint)
        notes.append("fine-tuning from the champion's weights")
    else:
        from training.package_weights import checkpoint_from_package

        try:
            recovered = checkpoint_from_package(plan.champion, path.parent / "champion-weights.pt")
        except DataError as exc:  # e.g. a graph that is not the recorded backbone's
            notes.append(f"training from ImageNet weights (the champion has no checkpoint: {exc})")
        else:
            cfg["weights"] = str(recovered)
            cfg["bn_stats"] = "frozen"  # the graph does not hold the running statistics
            how = "dequantized from its INT8" if champion.precision == "int8" else "from its ONNX"
            notes.append(
                f"fine-tuning from the champion's weights, recovered {how} graph (no stored "
                "checkpoint; BatchNorm statistics frozen)"
            )
    cfg.pop("cache_dir", None)  # the training host's path; this host uses its own cache
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return notes


@contextmanager
def _stage(wall: dict[str, float], name: str, echo: Echo, step: str) -> Any:
    echo(step)
    t0 = time.perf_counter()
    yield
    wall[name] = round(time.perf_counter() - t0, 2)


def _carry_surface(
    plan: RetrainPlan, plain: Path, package: Path, manifest: Path, echo: Echo
) -> str:
    """The champion's surface branch on the challenger, fusion and thresholds fitted again; the
    challenger goes without it when it helps no class on this validation split."""
    from training.surface import NoGainError, attach

    champion = read_meta(plan.champion)
    # Fitted as the champion's was: on every val photo, or on those the photo gate passes.
    judged = bool(champion.metrics.get("val", {}).get("judged_only", False))
    try:
        meta = attach(
            plain, plan.champion, manifest, package, name=champion.name,
            holdout=plan.holdout_root, judged_only=judged,
        )  # fmt: skip
        assert meta.surface is not None
        note = f"surface branch carried over, fused for {', '.join(meta.surface.fusion)}"
        shutil.rmtree(plain)
    except NoGainError as exc:
        plain.rename(package)
        note = f"surface branch left out: {exc}"
    echo(f"      {note}")
    return note


def _carry_anomaly(plan: RetrainPlan, package: Path, echo: Echo) -> str:
    """The champion's anomaly model on the challenger, each design's bank refreshed from the
    batch's accepted (good) photos of it (training.anomaly.update)."""
    from qc_model.anomaly import read_anomaly_meta
    from training.anomaly.update import branch_mismatch, update_designs

    if why := branch_mismatch(read_anomaly_meta(plan.champion), package):
        echo(f"      anomaly model left out: {why}")
        return f"anomaly model left out: {why}"
    staged_out = package.with_name(f".{package.name}-anomaly")
    _, added = update_designs(plan.champion, plan.reviewed, None, staged_out, base=package)
    shutil.rmtree(package)
    staged_out.rename(package)
    if added:
        done = ", ".join(f"{d} (+{n})" for d, n in sorted(added.items()))
        note = f"anomaly model carried over, banks refreshed with accepted photos: {done}"
    else:
        note = "anomaly model carried over unchanged: no accepted photo of a design it has"
    echo(f"      {note}")
    return note


def _refit_identity(champion: PackageMeta, package: Path, manifest: Path, echo: Echo) -> str:
    """Design references for the challenger's own network, from the merged data (its
    embeddings are not the champion's), with the champion's false-flag target."""
    from training.identity_fit import fit_identity

    old = champion.identity
    assert old is not None
    try:
        ref = fit_identity(
            package, manifest, package, splits=("train", "val", "test"),
            false_flag=old.false_flag, min_refs=old.min_refs,
        )  # fmt: skip
        note = f"design references fitted again: {sum(ref.references.values())} photos"
    except DataError as exc:
        note = f"design references NOT carried over: {exc}"
    echo(f"      {note}")
    return note


def run(plan: RetrainPlan, echo: Echo = print) -> RetrainResult:
    """Train, export and judge one challenger; raises (and registers nothing) on failure."""
    from training.compare import compare
    from training.compare_report import write_comparison_report
    from training.export import export_package
    from training.train import get_args_parser, main

    if any((plan.out / name).exists() for name in ("data", "run", "report")):
        raise DataError(f"{plan.out}: already holds a run; choose a new --out")
    champion = read_meta(plan.champion)
    holdout = holdout_folder(plan.holdout_root, champion.taxonomy_version)
    if not (holdout / "manifest.jsonl").is_file():
        raise DataError(
            f"no frozen holdout for taxonomy {champion.taxonomy_version} in {plan.holdout_root}:"
            " freeze one first (kito models holdout --from DATA --split test)"
        )
    wall: dict[str, float] = {}
    data = plan.out / "data"
    with _stage(wall, "merge", echo, "[1/5] merging reviewed labels into the base data"):
        merged, relabelled = combine(plan.base, plan.reviewed, data)
    counts = {s: len(merged.split(s)) for s in ("train", "val", "test")}
    echo(f"      {counts} photos, {relabelled} base photos relabelled by QC")
    cfg_path = plan.out / "retrain_config.yaml"
    notes = retrain_config(champion, plan, cfg_path, data / "manifest.jsonl")
    for note in notes:
        echo(f"      {note}")
    run_dir = plan.out / "run"
    argv = ["--config", str(cfg_path), "--manifest", str(data / "manifest.jsonl")]
    argv += ["--out", str(run_dir), "--holdout", str(plan.holdout_root)]
    for item in plan.overrides:
        argv += ["--set", item]
    with _stage(wall, "train", echo, "[2/5] training the challenger"):
        main(get_args_parser().parse_args(argv))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    package = plan.out / f"{champion.name}-{stamp}"
    checkpoint = run_dir / "best.pt"
    with _stage(wall, "export", echo, "[3/5] exporting the challenger (calibration, parity)"):
        plain = package.with_name(f".{package.name}-without-surface")
        export_package(
            checkpoint, data / "manifest.jsonl", plain if champion.surface else package,
            name=champion.name, holdout=plan.holdout_root,
        )  # fmt: skip
    if champion.surface:
        with _stage(wall, "surface", echo, "      carrying the champion's surface branch over"):
            notes.append(_carry_surface(plan, plain, package, data / "manifest.jsonl", echo))
    if champion.anomaly is not None:
        with _stage(wall, "anomaly", echo, "      refreshing the champion's anomaly banks"):
            notes.append(_carry_anomaly(plan, package, echo))
    if champion.identity is not None:
        with _stage(wall, "identity", echo, "      fitting the design references again"):
            notes.append(_refit_identity(champion, package, data / "manifest.jsonl", echo))
    with _stage(wall, "compare", echo, "[4/5] champion vs challenger: holdout, reviewed batch"):
        comparison = compare(plan.champion, package, holdout, plan.reviewed)
    with _stage(wall, "report", echo, "[5/5] writing the comparison report"):
        report = write_comparison_report(comparison, plan.out / "report")
    versions = {
        "train": merged.header.version,
        "reviewed": Manifest.read(plan.reviewed).header.version,
        "holdout": Manifest.read(holdout).header.version,
    }
    return RetrainResult(
        package, checkpoint, data / "manifest.jsonl", comparison, report, versions, notes, wall
    )
