"""End to end, at small sizes: inspections -> QC decisions through the API -> exported reviews ->
kito retrain -> promotion gate -> promotion -> the running service answers with the new model;
and a challenger trained on shuffled labels is refused by the gate.

The champion learnt scratches only; artisans then send tarnished pieces too, QC labels them,
and the challenger that learns from those labels must beat the champion where it matters.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from registry_helpers import headers_for, wait_for
from retrain_data import DESIGN, hoop_photo, jpeg, make_dataset
from sqlalchemy import select
from typer.testing import CliRunner

from kito.cli import app as cli
from qc_model.manifest import Manifest
from serving.app import create_app
from serving.core.settings import Settings
from serving.db.models import AuditEntry, Inspection
from serving.registry import registry

FAST = ["preprocess.input_size=64", "epochs=6", "batch_size=8", "lr=0.01", "cache_views=2"]
GOOD, SCRATCH, TARNISH = (), ("scratch",), ("tarnish",)

# The SQLite run is the default suite's end-to-end test; the PostgreSQL one is marked slow.
pytestmark = pytest.mark.parametrize(
    "db_url",
    ["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.slow])],
    indirect=True,
)


def _cli(env: dict[str, str], *args: str) -> str:
    result = CliRunner().invoke(cli, list(args), env=env)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def _shuffled(src: Path, out: Path, splits: tuple[str, ...], seed: int) -> Path:
    """A copy of a data set whose labels are shuffled among the photos of `splits`."""
    shutil.copytree(src if src.is_dir() else src.parent, out)
    m = Manifest.read(out)
    idx = [i for i, r in enumerate(m.records) if r.split in splits]
    labels = [m.records[i].labels for i in idx]
    random.Random(seed).shuffle(labels)
    records = list(m.records)
    for i, lab in zip(idx, labels, strict=True):
        records[i] = records[i].model_copy(update={"labels": lab})
    Manifest(header=m.header, records=records).write(out / "manifest.jsonl")
    return out


@pytest.fixture
def env(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {
        "KITO_DATA_DIR": str(settings.data_dir),
        "KITO_DATABASE_URL": settings.db_url,
        "KITO_CATALOG_DIR": str(settings.catalog_dir),
        "KITO_CACHE_DIR": str(tmp_path / "crop-cache"),
    }
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return values


def test_reviews_retrain_gate_promote_and_a_worse_challenger_refused(
    settings: Settings, env: dict[str, str], tmp_path: Path
) -> None:
    from training.export import export_package
    from training.train import get_args_parser, main

    # The champion: trained on scratches only, registered with its checkpoint.
    base = make_dataset(tmp_path / "base", [GOOD, SCRATCH] * 18, seed=1)
    argv = ["--manifest", str(base), "--out", str(tmp_path / "run0")]
    for s in FAST:
        argv += ["--set", s]
    main(get_args_parser().parse_args(argv))
    champion_pkg = tmp_path / "hoops"
    export_package(tmp_path / "run0" / "best.pt", base, champion_pkg)
    holdout = make_dataset(tmp_path / "golden", [GOOD, SCRATCH, TARNISH] * 8, seed=2)
    assert "froze 24 photos" in _cli(env, "models", "holdout", "--from", str(holdout))
    ckpt = str(tmp_path / "run0" / "best.pt")
    out = _cli(env, "models", "register", str(champion_pkg), "--checkpoint", ckpt, "--promote")
    champion = out.split()[1]
    assert champion.startswith("hoops@hoops-") and "promoted to champion" in out

    service = create_app(
        settings.model_copy(
            update={"model_dir": champion_pkg, "registry_poll_s": 0.05, "audit_sample_rate": 1.0}
        )
    )
    with TestClient(service, raise_server_exceptions=False) as c:
        artisan, qc = headers_for(c, "artisan"), headers_for(c, "qc")
        truth: dict[str, tuple[str, ...]] = {}
        for i, labels in enumerate([GOOD, TARNISH, SCRATCH] * 10):
            piece = f"P{i:03d}"
            truth[piece] = labels
            r = c.post(
                "/api/v1/inspections",
                headers=artisan,
                data={"design_id": DESIGN, "piece_id": piece},
                files=[("photos", ("a.jpg", jpeg(hoop_photo(labels, 500 + i)), "image/jpeg"))],
            )
            assert r.status_code == 201 and r.json()["model_version"] == champion, r.json()
            assert r.json()["verdict"] != "retake", r.json()["result"]["gate"]

        # QC decides every queued piece through the API: the labels the challenger learns.
        items = c.get("/api/v1/reviews?limit=200", headers=qc).json()["data"]
        assert len(items) == 30
        for item in items:
            labels = list(truth[item["piece_id"]])
            body = {"decision": "reject" if labels else "approve", "labels": labels}
            d = c.post(f"/api/v1/reviews/{item['id']}/decision", headers=qc, json=body)
            assert d.status_code == 201, d.json()

        # Too few reviews for the setting: nothing happens.
        skipped = _cli(env, "retrain", "--base", str(base), "--min-reviews", "31")
        assert "30 pieces reviewed" in skipped and "waits for 31" in skipped

        run1 = tmp_path / "retrain1"
        out = _cli(
            env,
            "retrain",
            "--base",
            str(base),
            "--min-reviews",
            "30",
            "--out",
            str(run1),
            "--set",
            "epochs=12",
        )
        assert "fine-tuning from the champion's weights" in out
        assert "passed the promotion gate and is the champion" in out, out
        report = (run1 / "report" / "index.html").read_text()
        assert "promotion gate" in report and report.count("data:image/png;base64") >= 3

        with c.app.state.sessionmaker() as s:  # type: ignore[attr-defined]
            new = registry.in_state(s, "champion")
            assert new is not None and new.version != champion
            assert new.parent_version == champion and new.checkpoint_sha256
            assert set(new.dataset_versions) >= {"train", "reviewed", "holdout", "calibration"}
            assert new.metrics["gate"]["passed"] is True
            assert new.promoted_by == "kito retrain (gate passed)"
            challenger = new.version
        # The running service swaps to it between requests.
        wait_for(lambda: c.get("/readyz").json()["checks"]["model"]["version"] == challenger)
        r = c.post(
            "/api/v1/inspections",
            headers=artisan,
            data={"design_id": DESIGN, "piece_id": "P-after"},
            files=[("photos", ("a.jpg", jpeg(hoop_photo(TARNISH, 999)), "image/jpeg"))],
        )
        assert r.status_code == 201 and r.json()["model_version"] == challenger

        # A challenger trained on shuffled labels (judged on the true reviewed labels).
        bad_base = _shuffled(base, tmp_path / "shuffled-base", ("train", "val"), seed=3)
        bad_rev = _shuffled(run1 / "reviewed", tmp_path / "shuffled-rev", ("train", "val"), 4)
        run2 = tmp_path / "retrain2"
        out = _cli(
            env, "retrain", "--base", str(bad_base), "--reviews", str(bad_rev),
            "--init", "imagenet", "--out", str(run2),
        )  # fmt: skip
        assert "stays a candidate: the promotion gate failed" in out, out
        assert "holdout macro-F1" in out
        with c.app.state.sessionmaker() as s:  # type: ignore[attr-defined]
            assert registry.in_state(s, "champion").version == challenger  # type: ignore[union-attr]
            worse = registry.listing(s, "candidate")[0]
            assert worse.metrics["gate"]["passed"] is False and worse.parent_version == challenger
            promoted = [
                e.entity_id
                for e in s.scalars(select(AuditEntry).where(AuditEntry.action == "model.promote"))
            ]
            assert promoted == [champion, challenger]
            versions = set(s.scalars(select(Inspection.model_version)))
        assert versions == {champion, challenger}
        # An admin cannot promote it by accident either.
        admin = headers_for(c, "admin")
        refused: Any = c.post(f"/api/v1/models/{worse.version}/promote", headers=admin)
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "gate"
        r = c.post(
            "/api/v1/inspections",
            headers=artisan,
            data={"design_id": DESIGN, "piece_id": "P-last"},
            files=[("photos", ("a.jpg", jpeg(hoop_photo(GOOD, 1000)), "image/jpeg"))],
        )
        assert r.json()["model_version"] == challenger


def test_a_failed_retrain_leaves_the_champion_untouched(
    settings: Settings, env: dict[str, str], tmp_path: Path, tiny_packages: dict[str, Path]
) -> None:
    _cli(env, "models", "register", str(tiny_packages["A"]), "--promote")
    reviews = make_dataset(tmp_path / "reviewed", [GOOD, TARNISH] * 3, seed=7)
    base = make_dataset(tmp_path / "base", [GOOD, SCRATCH] * 3, seed=2)

    def retrain(out: str) -> Any:
        args = ["retrain", "--base", str(base), "--reviews", str(reviews), "--out", out]
        return CliRunner().invoke(cli, args, env=env)

    no_holdout = retrain(str(tmp_path / "r1"))
    assert no_holdout.exit_code == 2 and "no frozen holdout for taxonomy 1" in no_holdout.output
    # The base data shares photos with the holdout: training refuses before it starts.
    holdout = make_dataset(tmp_path / "golden", [GOOD, SCRATCH, TARNISH] * 2, seed=2)
    _cli(env, "models", "holdout", "--from", str(holdout))
    leak = retrain(str(tmp_path / "r2"))
    assert leak.exit_code == 2 and "belong to the frozen holdout" in leak.output, leak.output
    assert "[2/5] training the challenger" in leak.output  # progress up to the failure
    # No stored checkpoint, and a graph (a toy net) that gives no lite0 weights back: said so.
    assert "the champion has no checkpoint: " in leak.output and "convolutions" in leak.output
    listing = _cli(env, "models", "list")
    lines = [line for line in listing.splitlines()[1:] if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("tiny@tiny-1") and "champion" in lines[0]
