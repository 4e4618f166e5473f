"""Every reason the artisan can see, rendered by the page (words.js) in English and Kiswahili:
no check code, no raw measurement, nothing left in English; switching language re-renders
every reason on screen, design names included."""

from __future__ import annotations

import re
from typing import Any

import pytest
from live_server import LiveServer
from photo_samples import jpeg
from playwright.sync_api import Page, expect
from scripted_inspector import BANDS, ScriptedInspector
from web_helpers import HOOP, make_order, pick_piece, sign_in_app, snap

from qc_model.catalog import default_catalog_dir, load_catalog
from qc_model.messages import RETAKE_CODES, RETAKE_MESSAGES
from qc_model.reason_messages import DEFECT_PHRASES, PIECE_REASONS
from qc_model.taxonomy import DEFECT_LABELS

pytestmark = pytest.mark.browser
CODE = re.compile(r"\b[a-z]+_[a-z_]+\b")
RAW_NUMBER = re.compile(r"\d\.\d\d")


def _designs_by_type() -> dict[str, str]:
    out: dict[str, str] = {}
    for d in load_catalog(default_catalog_dir()).values():
        out.setdefault(d.piece_type, d.id)
    return out


def _verdict_cases() -> list[dict[str, Any]]:
    """(reason, result) pairs covering every code the verdict can store."""
    bands = {c: [b.t_low, b.t_high] for c, b in BANDS.items()}
    bands |= {c: [0.3, 0.8] for c in DEFECT_LABELS if c not in bands}
    cases: list[dict[str, Any]] = [{"code": c} for c in RETAKE_CODES]
    for label in DEFECT_LABELS:
        for score in (0.92, 0.55):
            cases.append({"code": label, "scores": {label: score}, "bands": bands})
    for measure in ("loop_length", "length", "width", "outer_diameter"):
        for off in (13.39, -13.39, 0.87, -0.87, 120.0):
            for outcome in ("fail", "borderline"):
                check = {"name": f"size_{measure}", "measured": 190 + off, "expected": 190.0}
                check["unit"] = "mm"
                code = f"size_{measure}_{outcome}"
                cases.append({"code": code, "checks": [check], "tag": f" {off:+}"})
    for name in ("finish_colour", "finish_palette", "pair_size", "pair_colour"):
        for outcome in ("fail", "borderline"):
            check = {"name": name, "measured": 7.31, "expected": 0.0, "unit": "ΔE00"}
            cases.append({"code": f"{name}_{outcome}", "checks": [check]})
    for unit in ("bead", "stone", "link"):
        for outcome in ("fail", "borderline"):
            check = {"name": "component_count", "measured": 33.0, "expected": 36.0, "unit": unit}
            cases.append({"code": f"component_count_{outcome}", "checks": [check]})
    cases += [{"code": c} for c in ("photos_disagree", "unusual_surface", "photo_reused")]
    cases += [{"code": "some_future_code"}]
    return cases


def _piece_reasons() -> list[str]:
    retakes = "; ".join(RETAKE_MESSAGES[c].en for c in ("blurry", "too_dark"))
    return [
        *PIECE_REASONS,
        f"retake needed: {retakes}",
        "rejected by QC: scratch, wrong_size",
        "rejected by QC",
    ]


def test_every_reason_code_in_both_languages_is_a_sentence_without_codes(
    live: LiveServer, phone: Page
) -> None:
    phone.goto(f"{live.url}/app")
    expect(phone.locator("body")).to_have_attribute("data-ready", "true")
    types = _designs_by_type()
    rendered = phone.evaluate(
        """async ([cases, designs, pieceReasons]) => {
          const w = await import('/static/words.js');
          await w.loadWords();
          const out = [];
          for (const c of cases) for (const design of designs) {
            const result = {spec_checks: c.checks || [],
                            thresholds: {bands: c.bands || {}}, verdict: {scores: c.scores || {}}};
            const row = {what: `${c.code}${c.tag || ''} on ${design}`};
            for (const lang of ['en', 'sw']) {
              row[lang] = w.reasonLine({code: c.code, text: 'x'}, result, design, lang);
            }
            out.push(row);
          }
          for (const r of pieceReasons) {
            out.push({what: r, en: w.pieceReason(r, 'en'), sw: w.pieceReason(r, 'sw')});
          }
          for (const d of designs) {
            out.push({what: d, en: w.designName(d, 'en'), sw: w.designName(d, 'sw')});
          }
          return out;
        }""",
        [_verdict_cases(), sorted(types.values()), _piece_reasons()],
    )
    assert len(rendered) >= len(_verdict_cases()) * len(types)
    for row in rendered:
        en, sw, what = row["en"], row["sw"], row["what"]
        assert en and sw, what
        assert en != sw, f"{what}: not translated: {sw!r}"
        for text in (en, sw):
            assert "{" not in text and "undefined" not in text and "null" not in text, (what, text)
            assert not CODE.search(text), (what, text)
            assert not RAW_NUMBER.search(text), (what, text)
    by_what = {r["what"]: r for r in rendered}
    # The numbers that help are kept, rounded: "about 13 mm too long".
    long = by_what[f"size_loop_length_fail +13.39 on {types['beaded_bracelet']}"]
    assert long["en"] == "The bracelet looks about 13 mm too long", long
    assert long["sw"] == "Urefu wa bangili unazidi kwa takriban mm 13", long
    short = by_what[f"size_outer_diameter_borderline +0.87 on {types['hoop_earring']}"]
    assert short["en"] == "The earring may be about 0.9 mm too big across", short
    assert "rangi" in by_what[f"finish_colour_fail on {types['ring']}"]["sw"].lower()
    rejected = by_what["rejected by QC: scratch, wrong_size"]
    assert rejected["sw"] == "Haikukubaliwa na QC: mkwaruzo, ukubwa si sahihi", rejected


def test_switching_language_re_renders_every_reason_on_screen(
    live: LiveServer, phone: Page, scripted: ScriptedInspector
) -> None:
    artisan_id, token = live.user("artisan", "Atieno")
    _, qc = live.user("qc", "Njeri")
    order = make_order(live, qc, artisan_id, [("W1", HOOP, 30000), ("W2", HOOP, 30000)])
    scripted.verdict = "retake"
    sign_in_app(phone, live, token)
    phone.get_by_label("Order", exact=True).select_option(order["id"])
    pick_piece(phone, "W1")
    photo = {"name": "w.jpg", "mimeType": "image/jpeg", "buffer": jpeg(1600, 1200)}
    phone.set_input_files("#photo", files=[photo])
    phone.get_by_role("button", name="Send photo").click()
    expect(phone.locator("#verdict")).to_have_text("Please take the photo again")
    # A second piece fails; its verdict is on screen, W1's retake reason only on its card.
    scripted.verdict = "fail"
    pick_piece(phone, "W2")
    phone.set_input_files("#photo", files=[photo])
    phone.get_by_role("button", name="Send photo").click()
    expect(phone.locator("#verdict")).to_have_text("Not accepted")
    scratch = DEFECT_PHRASES["scratch"]["fail"]
    expect(phone.locator("#reasons li")).to_have_text([scratch["en"]])
    w1 = phone.locator("#piece-cards [data-piece='W1']")
    expect(w1.locator(".card-why")).to_have_text(
        f"Take the photo again: {RETAKE_MESSAGES['blurry'].en}"
    )
    snap(phone, "artisan-fail-english")

    phone.get_by_role("button", name="Kiswahili").click()
    expect(phone.locator("#reasons li")).to_have_text([scratch["sw"]])
    expect(w1.locator(".card-why")).to_have_text(f"Piga picha tena: {RETAKE_MESSAGES['blurry'].sw}")
    expect(w1.locator(".card-name")).to_have_text("Hereni za duara za shaba, mm 30")
    expect(phone.locator("#piece-cards [data-piece='W2'] .card-state")).to_have_text("Inasubiri QC")
    snap(phone, "artisan-fail-kiswahili")
    visible = phone.locator("main").inner_text()
    for english in ("Take the photo again", "Brass hoop", "scratch", "Waiting for QC"):
        assert english not in visible, english
