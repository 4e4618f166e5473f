"""The onnxruntime inferencer: inputs of every kind, batching, errors, and no torch import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

# The package builder lives beside this file (tests have no __init__, pytest puts the folder on
# sys.path); one copy of it keeps both test modules building the same package.
from test_package import CLASSES, SIZE, make_package, photo

from qc_model.errors import DataError
from qc_model.inference import Inferencer
from qc_model.preprocess import preprocess


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("inf")
    make_package(root / "tiny", root / "photos")
    return root / "tiny"


@pytest.fixture(scope="module")
def inferencer(package: Path) -> Inferencer:
    return Inferencer(package, threads=1, batch_size=3)


def test_path_bytes_and_array_agree(inferencer: Inferencer, tmp_path: Path) -> None:
    img = photo(7)
    path = tmp_path / "x.png"
    cv2.imwrite(str(path), img)
    by_path, by_bytes, by_array = inferencer.predict([path, path.read_bytes(), img])
    assert list(by_path.probs) == CLASSES
    for other in (by_bytes, by_array):
        assert other.probs == pytest.approx(by_path.probs, abs=1e-6)
        assert other.crop_box == by_path.crop_box
    assert by_path.heatmaps.shape[0] == len(CLASSES)
    assert by_path.heatmaps.min() >= 0.0 and by_path.heatmaps.max() <= 1.0
    assert set(by_path.timings_ms) == {"preprocess", "inference"}
    # A single image (not a list) gives a list of one.
    assert len(inferencer.predict(str(path))) == 1


def test_matches_the_session_on_preprocessed_input(inferencer: Inferencer) -> None:
    images = [photo(i) for i in range(7)]  # more than one batch of 3
    preds = inferencer.predict(images)
    assert len(preds) == 7
    cfg = inferencer.meta.preprocess
    x = np.stack([preprocess(im, cfg)[0] for im in images])
    probs, _ = inferencer.run(x)
    got = np.array([list(p.probs.values()) for p in preds])
    np.testing.assert_allclose(got, probs, atol=1e-6)
    # Different photos really give different scores (the model is not a constant).
    assert np.ptp(got, axis=0).max() > 1e-4


def test_gray_and_bgra_arrays_are_accepted(inferencer: Inferencer) -> None:
    img = photo(3)
    bgra = cv2.cvtColor(img, cv2.COLOR_BGR2BGRA)
    assert inferencer.predict(bgra)[0].probs == pytest.approx(inferencer.predict(img)[0].probs)
    assert len(inferencer.predict(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))) == 1


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (Path("/nonexistent/photo.jpg"), "not found"),
        (b"definitely not an image", "could not be decoded"),
        (np.zeros((8, 8, 3), np.float32), "uint8"),
        (np.zeros((8, 8, 2), np.uint8), "must be"),
        (42, "expected a path"),
        ([], "no images"),
    ],
)
def test_bad_input_is_a_clear_data_error(inferencer: Inferencer, bad: object, message: str) -> None:
    with pytest.raises(DataError, match=message):
        inferencer.predict(bad)  # type: ignore[arg-type]


def test_inference_never_imports_torch(package: Path, tmp_path: Path) -> None:
    img = tmp_path / "p.png"
    cv2.imwrite(str(img), photo(1))
    code = (
        "import sys\n"
        "from qc_model.inference import Inferencer\n"
        f"p = Inferencer({str(package)!r}).predict({str(img)!r})[0]\n"
        f"assert len(p.probs) == {len(CLASSES)}\n"
        f"assert p.heatmaps.shape[1:] == ({SIZE // 4}, {SIZE // 4})\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
