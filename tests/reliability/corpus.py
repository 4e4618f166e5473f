"""A corpus of hostile and broken requests, generated in code (no blobs in the repository).

`refused_cases()`: requests the service must refuse with the named 4xx status and error code
(a JSON body), storing nothing. `accepted_cases()`: odd but legitimate requests (palette and
alpha PNGs, EXIF-rotated photos, unicode file names, injection strings where any text is
allowed) that must be answered normally, with what was sent stored verbatim.

Each case names the token it is sent with (`role`) and, for the few that need them, ids the
test sets up first: the order `OTHER_ORDER` belonging to another artisan. `raw` cases are
whole HTTP requests written to a socket (bodies larger than they claim, header blocks no HTTP
client library would send); `{host}` and `{auth}` in them are filled in by the runner.

The cases live in modules named after what they break: corpus_photos.py (photo files),
corpus_requests.py (multipart bodies and form fields), corpus_raw.py (raw HTTP) and
corpus_api.py (the JSON API and query strings); corpus_case.py holds the `Case` type and the
helpers they share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from corpus_api import api_cases
from corpus_case import INJECTIONS, OTHER_ORDER, Case, upload
from corpus_photos import photo_cases
from corpus_raw import raw_cases
from corpus_requests import request_cases
from photo_samples import jpeg, jpeg_rotated_exif, pil_bytes

__all__ = ["OTHER_ORDER", "Accepted", "Case", "accepted_cases", "refused_cases"]


def refused_cases() -> list[Case]:
    cases = photo_cases() + request_cases() + raw_cases() + api_cases()
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), "case names must be unique"
    return cases


# -- accepted: unusual but legitimate -------------------------------------------------------------
@dataclass(frozen=True)
class Accepted:
    name: str
    case: Case
    # For uploads: the file name and media type the stored photo must have.
    filename: str | None = None
    media_type: str | None = None


def accepted_cases() -> list[Accepted]:
    def one(
        name: str,
        data: bytes,
        filename: str,
        ctype: str,
        media: str,
        stored_name: str | None = None,
        **kw: Any,
    ) -> Accepted:
        case = upload(name, 201, "", photos=[(filename, data, ctype)], piece_id="OK-1", **kw)
        return Accepted(name, case, stored_name or filename, media)

    out = [
        one("palette_png", pil_bytes("PNG", mode="P"), "a.png", "image/png", "image/png"),
        one("alpha_png", pil_bytes("PNG", mode="RGBA"), "a.png", "image/png", "image/png"),
        one("gray_alpha_png", pil_bytes("PNG", mode="LA"), "a.png", "image/png", "image/png"),
        one("exif_rotated_jpeg", jpeg_rotated_exif(), "IMG_1.JPG", "image/jpeg", "image/jpeg"),
        one("heic", pil_bytes("HEIF", quality=80), "IMG_2.HEIC", "image/heic", "image/heic"),
        one("unicode_filename", jpeg(), "kipande_cha_dhahabu_💍.jpg", "image/jpeg", "image/jpeg"),
        one("filename_sql", jpeg(), "'; DROP TABLE photos; --.jpg", "image/jpeg", "image/jpeg"),
        # The multipart parser keeps only the last path component (as browsers send it).
        one(
            "filename_windows_path",
            jpeg(),
            "C:\\Users\\x\\a.jpg",
            "image/jpeg",
            "image/jpeg",
            "a.jpg",
        ),
        one(
            "idempotency_key_sql",
            jpeg(321, 240),
            "a.jpg",
            "image/jpeg",
            "image/jpeg",
            headers={"Idempotency-Key": "'OR'1'='1'--"},
        ),
    ]
    for label, text in INJECTIONS.items():
        for param in ("design_id", "piece_id", "verdict", "status"):
            from urllib.parse import quote

            url = f"/api/v1/inspections?{param}={quote(text)}"
            name = f"filter_{param}_{label}"
            out.append(Accepted(name, Case(name, "GET", url, 200, "")))
    return out
