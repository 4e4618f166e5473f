"""Tests for qc_model.network: real ImageNet weights, CAM consistency, freezing, checkpoints."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from qc_model.errors import DataError
from qc_model.network import build_model
from qc_model.preprocess import PreprocessConfig, preprocess


@pytest.fixture(autouse=True)
def _two_threads() -> None:
    torch.set_num_threads(2)


def test_bundled_imagenet_weights_are_real() -> None:
    from skimage.data import chelsea  # a tabby cat

    model = build_model(num_classes=1000, weights="imagenet").eval()
    bgr = cv2.cvtColor(chelsea(), cv2.COLOR_RGB2BGR)
    x, _ = preprocess(bgr, PreprocessConfig(crop="none"))
    with torch.no_grad():
        logits, cam = model(torch.from_numpy(x)[None])
    assert int(logits.argmax()) == 285  # ImageNet "Egyptian cat"
    assert cam.shape == (1, 1000, 7, 7)


def test_random_weights_do_not_know_cats() -> None:
    # Guards the test above against a model that says 285 whatever it is given.
    from skimage.data import chelsea

    torch.manual_seed(0)
    model = build_model(num_classes=1000, weights="none").eval()
    x, _ = preprocess(
        cv2.cvtColor(chelsea(), cv2.COLOR_RGB2BGR), PreprocessConfig(input_size=96, crop="none")
    )
    with torch.no_grad():
        logits, _ = model(torch.from_numpy(x)[None])
    assert int(logits.argmax()) != 285


def test_cam_mean_equals_logits_and_shapes() -> None:
    model = build_model(num_classes=4, weights="none").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        logits, cam = model(x)
    assert logits.shape == (2, 4) and cam.shape == (2, 4, 2, 2)
    torch.testing.assert_close(cam.mean(dim=(2, 3)), logits)


@pytest.mark.parametrize("blocks", [0, 3, 7])
def test_frozen_trunk_split_is_the_same_network(blocks: int) -> None:
    torch.manual_seed(0)
    model = build_model(num_classes=3, weights="none", freeze_blocks=blocks).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        whole, _ = model(x)
        split, _ = model.forward_head(model.forward_trunk(x))
    torch.testing.assert_close(whole, split)
    frozen = [p for p in model.parameters() if not p.requires_grad]
    assert len(frozen) == len(model.trunk_parameters())
    assert (len(frozen) > 0) == (blocks > 0)


def test_only_the_head_learns_and_trunk_bn_stays_fixed() -> None:
    model = build_model(num_classes=2, weights="none", freeze_blocks=4).train()
    bn_before = model.backbone.bn1.running_mean.clone()
    logits, _ = model(torch.randn(4, 3, 64, 64))
    logits.sum().backward()
    assert all(p.grad is None for p in model.trunk_parameters())
    assert model.classifier.weight.grad is not None
    torch.testing.assert_close(model.backbone.bn1.running_mean, bn_before)
    assert not model.backbone.bn1.training and model.backbone.bn2.training


def test_checkpoint_weights_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(1)
    src = build_model(num_classes=3, weights="none")
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": src.state_dict(), "epoch": 1}, path)
    same = build_model(num_classes=3, weights=path)
    for (k, a), b in zip(src.state_dict().items(), same.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=k)
    # Another class count: backbone carried over, classifier new.
    other = build_model(num_classes=5, weights=path)
    torch.testing.assert_close(other.backbone.conv_head.weight, src.backbone.conv_head.weight)
    assert other.classifier.weight.shape == (5, 1280)


def test_bad_arguments_are_clear(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown timm backbone"):
        build_model("not_a_net", num_classes=2)
    with pytest.raises(DataError, match="bundled only"):
        build_model("mobilenetv2_050", num_classes=2, weights="imagenet")
    with pytest.raises(DataError, match="EfficientNet-class"):
        build_model("resnet18", num_classes=2, weights="none")
    with pytest.raises(DataError, match="not found"):
        build_model(num_classes=2, weights=tmp_path / "nope.pt")
    with pytest.raises(DataError, match="freeze_blocks"):
        build_model(num_classes=2, weights="none", freeze_blocks=9)
    junk = tmp_path / "junk.pt"
    torch.save([1, 2], junk)
    with pytest.raises(DataError, match="not a checkpoint"):
        build_model(num_classes=2, weights=junk)


def test_other_timm_backbone_works() -> None:
    model = build_model("mobilenetv2_050", num_classes=2, weights="none").eval()
    with torch.no_grad():
        logits, cam = model(torch.from_numpy(np.zeros((1, 3, 64, 64), np.float32)))
    assert logits.shape == (1, 2) and cam.shape[:2] == (1, 2)


def test_dihedral_tta_is_invariant_to_flips_and_turns() -> None:
    torch.manual_seed(0)
    model = build_model(num_classes=3, weights="none", dihedral_tta=True).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        logits, cam = model(x)
        turned, turned_cam = model(torch.rot90(x.flip(-1), 1, dims=(-2, -1)))
    torch.testing.assert_close(turned, logits, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(turned_cam, torch.rot90(cam.flip(-1), 1, dims=(-2, -1)),
                               atol=1e-5, rtol=1e-4)  # fmt: skip
    torch.testing.assert_close(cam.mean(dim=(2, 3)), logits)
    # Without it the same network is not invariant (the test above could not pass by accident).
    model.dihedral_tta = False
    with torch.no_grad():
        one, _ = model(x)
        other, _ = model(torch.rot90(x.flip(-1), 1, dims=(-2, -1)))
    assert not torch.allclose(one, other, atol=1e-3)


def test_dihedral_tta_only_in_eval_and_square() -> None:
    model = build_model(num_classes=2, weights="none", freeze_blocks=4, dihedral_tta=True)
    x = torch.randn(2, 3, 64, 64)
    z = model.forward_trunk(x)
    model.train()
    logits, _ = model.forward_head(z)  # one view while learning
    assert logits.shape == (2, 2) and logits.requires_grad
    model.eval()
    with pytest.raises(DataError, match="square"):
        model(torch.randn(1, 3, 64, 96))
