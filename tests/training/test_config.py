"""training.config: options that lost their ablation are gone; an old config that still sets
them loads when it asks for today's behaviour, and is refused when it asks for the one that left."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from qc_model.errors import DataError
from training.config import REMOVED, TrainConfig, dump_config, load_config


def _write(path: Path, settings: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return path


def test_the_losing_options_are_not_settings_any_more(tmp_path: Path) -> None:
    assert {"pool", "pool_r", "cam_loss"} <= set(REMOVED)
    assert not set(REMOVED) & set(TrainConfig.model_fields)
    dump_config(TrainConfig(), tmp_path / "c.yaml")
    assert not set(REMOVED) & set(yaml.safe_load((tmp_path / "c.yaml").read_text()))


@pytest.mark.parametrize(
    "old", [{"pool": "avg"}, {"pool_r": 4.0}, {"cam_loss": 0.0}, {"cam_loss": 0}]
)
def test_an_old_config_asking_for_todays_behaviour_loads_with_a_warning(
    tmp_path: Path, old: dict[str, object]
) -> None:
    path = _write(tmp_path / "old.yaml", {"epochs": 3, **old})
    (key,) = old
    with pytest.warns(UserWarning, match=rf"old\.yaml: setting '{key}' was removed"):
        cfg = load_config(path)
    assert cfg == TrainConfig(epochs=3)


@pytest.mark.parametrize(
    ("old", "named"),
    [({"pool": "lse"}, "'pool: lse'"), ({"cam_loss": 1.0}, "'cam_loss: 1.0'")],
)
def test_an_old_config_asking_for_what_left_is_refused(
    tmp_path: Path, old: dict[str, object], named: str
) -> None:
    path = _write(tmp_path / "old.yaml", old)
    with pytest.raises(DataError, match=rf"old\.yaml: setting {named} was removed .*delete"):
        load_config(path)
    with pytest.raises(DataError, match=rf"config: setting {named} was removed"):
        load_config(None, [f"{k}={v}" for k, v in old.items()])
