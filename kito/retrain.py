"""`kito retrain`: from QC decisions to a new champion (docs/REGISTRY.md).

The one place that joins the registry (serving) and training, both imported inside the
functions so that `kito --help` and `kito serve` stay light. Steps: find the champion; count
the photos QC reviewed since it was built and stop if there are fewer than asked; export them;
train, export and judge a challenger (training.retrain); register it with its comparison;
promote it only if the promotion gate passed. Any failure before the registration leaves the
registry as it was: the champion is untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from qc_model.errors import DataError

Echo = Callable[[str], Any]


@dataclass(frozen=True)
class Outcome:
    status: Literal["skipped", "candidate", "champion"]
    message: str
    version: str | None = None
    report: Path | None = None
    wall_s: dict[str, float] | None = None  # per stage: merge, train, export, compare, report


def default_out() -> Path:
    return Path("runs") / f"retrain-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}"


def retrain(
    *,
    out: Path,
    base: Path | None = None,
    reviews: Path | None = None,
    config: Path | None = None,
    overrides: Sequence[str] = (),
    init: Literal["champion", "imagenet"] = "champion",
    min_reviews: int | None = None,
    promote: bool = True,
    echo: Echo = print,
) -> Outcome:
    from qc_model.promotion import points
    from serving.registry import registry
    from serving.registry.live_models import PackageLoader
    from serving.registry.model_store import fetch_checkpoint, unpack
    from serving.registry.registry_cli import open_registry
    from serving.review.export_reviews import count_reviewed_since, export_reviews
    from serving.store.stores import photo_store
    from training.retrain import RetrainPlan, run

    if out.exists() and any(out.iterdir()):
        raise DataError(f"{out}: already holds a run; choose a new --out")
    with open_registry() as (session, packages, settings):
        champion = registry.in_state(session, "champion")
        if champion is None:
            raise DataError(
                "the registry has no champion: start the service once, or "
                "kito models register PACKAGE --promote"
            )
        echo(f"champion {champion.version} (built {champion.built_at:%Y-%m-%d %H:%M} UTC)")
        if reviews is None:
            need = min_reviews if min_reviews is not None else settings.retrain_min_reviews
            n = count_reviewed_since(session, champion.built_at)
            if n < need:
                return Outcome(
                    "skipped",
                    f"{n} pieces reviewed since the champion was built; retraining waits for "
                    f"{need} (--min-reviews, KITO_RETRAIN_MIN_REVIEWS)",
                )
            photos = photo_store(settings)
            exported = export_reviews(session, photos, out / "reviewed", since=champion.built_at)
            echo(f"      {exported.summary()}")
            reviews = out / "reviewed"
        base = base or _previous_manifest(champion.metrics)
        if base is None:
            raise DataError(
                f"--base: the data {champion.version} was trained on is not recorded; name it"
            )
        champion_dir = unpack(
            packages, settings.model_cache_path, champion.sha256, champion.meta_sha256
        )
        checkpoint = None
        if init == "champion" and champion.checkpoint_sha256:
            checkpoint = fetch_checkpoint(
                packages, champion.checkpoint_sha256, out / "champion" / "checkpoint.pt"
            )
        plan = RetrainPlan(
            champion=champion_dir,
            champion_checkpoint=checkpoint,
            base=base,
            reviewed=reviews,
            holdout_root=settings.holdout_path,
            out=out,
            config=config,
            overrides=overrides,
            init=init,
        )
        parent = champion.version
        session.commit()  # no database transaction stays open through minutes of training
        result = run(plan, echo)
        comparison = result.comparison.metrics()
        metrics = {
            "gate": comparison["gate"],
            "holdout": comparison["holdout"]["challenger"],
            "reviewed": comparison["reviewed"]["challenger"],
            "comparison": comparison,
            "retrain": {
                "manifest": str(result.manifest.resolve()),
                "report": str(result.report.resolve()),
                "notes": result.notes,
                "wall_s": result.wall_s,
            },
        }
        row, _ = registry.register(
            session,
            packages,
            result.package,
            checkpoint=result.checkpoint,
            parent_version=parent,
            dataset_versions=result.dataset_versions,
            metrics=metrics,
        )
        gate = result.comparison.gate
        echo("      wall time: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.wall_s.items()))
        for check in gate.checks:
            echo(
                f"      {check.name}: champion {points(check.champion)} -> challenger "
                f"{points(check.challenger)} ({check.rule}): {'ok' if check.passed else 'FAILED'}"
            )
        if not gate.passed:
            why = "; ".join(gate.reasons)
            msg = f"{row.version} stays a candidate: the promotion gate failed: {why}"
            return Outcome("candidate", msg, row.version, result.report, result.wall_s)
        if not promote:
            msg = f"{row.version} passed the promotion gate; left a candidate (--no-promote)"
            return Outcome("candidate", msg, row.version, result.report, result.wall_s)
        now = registry.in_state(session, "champion")
        if now is None or now.version != parent:
            msg = (
                f"{row.version} passed the promotion gate against {parent}, but the champion is "
                f"now {now.version if now else 'none'}: left a candidate; compare it again"
            )
            return Outcome("candidate", msg, row.version, result.report, result.wall_s)
        loader = PackageLoader(
            packages,
            settings.model_cache_path,
            settings.threshold_overrides,
            settings.decode_long_side,
        )
        registry.promote(session, row.version, by="kito retrain (gate passed)", verify=loader)
        msg = f"{row.version} passed the promotion gate and is the champion"
        return Outcome("champion", msg, row.version, result.report, result.wall_s)


def _previous_manifest(metrics: dict[str, Any]) -> Path | None:
    """The training manifest of a champion that was itself made by `kito retrain`."""
    path = ((metrics or {}).get("retrain") or {}).get("manifest")
    return Path(path) if path and Path(path).is_file() else None


def freeze_holdout(source: Path, split: str | None) -> str:
    from qc_model.holdout import freeze, holdout_folder
    from serving.core.settings import load_settings

    root = load_settings().holdout_path
    m = freeze(source, root, split)
    folder = holdout_folder(root, m.header.taxonomy_version)
    v = m.header.taxonomy_version
    return f"froze {len(m.records)} photos as the holdout of taxonomy {v}: {folder}"
