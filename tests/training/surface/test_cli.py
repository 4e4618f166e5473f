"""`kito surface train` and `kito surface attach`."""

from __future__ import annotations

from pathlib import Path

from qc_model.package import read_meta


def test_the_cli_trains_attaches_and_names_bad_input(
    synth: Path, tiny: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from kito.cli import app

    run = CliRunner()
    out = tmp_path / "cli-run"
    argv = ["surface", "train", "--manifest", str(synth / "manifest.jsonl"), "--out", str(out)]
    r = run.invoke(app, [*argv, "--steps", "2", "--batch", "2", "--patch", "64"])
    assert r.exit_code == 0, r.output
    assert "2 steps" in r.output and "val scratch" in r.output
    pkg = tmp_path / "cli-pkg"
    attach_argv = ["surface", "attach", "--package", str(tiny), "--calibration-manifest",
                   str(synth / "calib.jsonl")]  # fmt: skip
    r = run.invoke(app, [*attach_argv, "--surface", str(out / "surface.pt"), "--out", str(pkg),
                         "--fuse", "scratch"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "fused scratch" in r.output and read_meta(pkg).surface is not None
    r = run.invoke(app, [*attach_argv, "--surface", str(tmp_path / "nothing.pt"),
                         "--out", str(tmp_path / "x")])  # fmt: skip
    assert r.exit_code == 2 and "no such surface checkpoint" in r.output
    assert not (tmp_path / "x").exists()
    r = run.invoke(app, ["surface", "train", "--manifest", str(synth / "manifest.jsonl"),
                         "--out", str(tmp_path / "y"), "--arch", "wide"])  # fmt: skip
    assert r.exit_code == 2 and "choose one of s8, s8+s16" in r.output
    assert not (tmp_path / "y").exists()
