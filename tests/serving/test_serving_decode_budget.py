"""Issue 28, case 5: decoded pixels are bounded per request and per process. PNGs are reduced
right after decoding; a decode that could never fit the process budget is refused before any
pixel is allocated (413 `decode_budget`). Peak RSS of the real server under six 64 MP PNGs:
bench/bench_decode_memory.py."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from upload_helpers import counts, post

from qc_model.decode import MB, DecodeBudget, DecodeError, DecodeLimits, decode_photo


def _png(w: int, h: int) -> bytes:
    img = np.full((h, w, 3), 180, np.uint8)
    cv2.circle(img, (w // 2, h // 2), min(w, h) // 4, (40, 90, 160), -1)
    return bytes(cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 9])[1])


def test_a_png_is_kept_reduced_like_a_jpeg() -> None:
    data = _png(4000, 3000)
    limits = DecodeLimits(target_long_side=1000, reduce_lossless=True)
    photo = decode_photo(data, limits=limits)
    assert photo.size == (1000, 750) and photo.scale == 4
    assert photo.original_size == (4000, 3000)
    full = decode_photo(data, limits=DecodeLimits(target_long_side=1000))
    assert full.size == (4000, 3000) and full.scale == 1  # training's decode is unchanged


def test_a_decode_that_can_never_fit_is_refused_before_decoding() -> None:
    budget = DecodeBudget(32 * MB)
    with pytest.raises(DecodeError) as exc:
        decode_photo(_png(4000, 3000), budget=budget)  # 72 MB at its peak
    assert (exc.value.status, exc.value.code) == (413, "decode_budget")
    assert budget.used == 0
    decode_photo(_png(2000, 1500), budget=budget)  # 18 MB fits
    assert budget.used == 0  # given back after the decode


def test_decodes_wait_for_room_in_the_process_budget() -> None:
    budget = DecodeBudget(20 * MB, wait_s=5)
    finished: list[int] = []
    most = [0]
    real_hold = budget.hold

    @contextmanager
    def watched(nbytes: int):  # type: ignore[no-untyped-def]
        with real_hold(nbytes):
            most[0] = max(most[0], budget.used)
            yield

    budget.hold = watched  # type: ignore[method-assign]
    data = _png(2000, 1500)  # 18 MB at its peak (OpenCV's PNG decode): two never fit at once

    def decode() -> None:
        decode_photo(data, budget=budget)
        finished.append(1)

    threads = [threading.Thread(target=decode) for _ in range(2)]
    with real_hold(6 * MB):  # someone else's decode holds room: both wait for it
        for t in threads:
            t.start()
        time.sleep(0.3)
        assert finished == [] and budget.used == 6 * MB
    for t in threads:
        t.join(10)
    assert finished == [1, 1] and budget.used == 0
    assert most[0] == 2000 * 1500 * 6  # one decode at a time, never both
    waited = DecodeBudget(20 * MB, wait_s=0.1)
    with waited.hold(6 * MB), pytest.raises(DecodeError) as exc:
        decode_photo(data, budget=waited)
    assert (exc.value.status, exc.value.code) == (503, "decode_busy")


def test_an_upload_over_the_request_budget_is_413_and_stores_nothing(
    make_client, make_user
) -> None:
    client: TestClient = make_client(request_decode_budget_mb=8, decode_long_side=4096)
    _, headers = make_user()
    photos = [(f"{i}.png", _png(2400, 1800 + i), "image/png") for i in range(2)]  # 13 MB each
    r = post(client, headers, photos)
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "decode_budget" and r.json()["error"]["field"] == "photos.0"
    assert counts(client) == (0, 0, 0)


def test_large_pngs_are_accepted_reduced(client: TestClient, make_user, inspector) -> None:
    _, headers = make_user()
    photos = [(f"{i}.png", _png(4000, 3000 + i), "image/png") for i in range(3)]
    r = post(client, headers, photos)
    assert r.status_code == 201, r.text
    sizes = inspector.calls[-1][0]
    assert all(max(p.size) < 2100 for p in sizes)  # reduced to the decode target, not 4000
    assert [p["width"] for p in r.json()["photos"]] == [4000] * 3  # as uploaded
