"""The artisan's reason catalogue: every phrase in English and Kiswahili, no code, no leftovers."""

from __future__ import annotations

import re

import pytest

from qc_model.catalog import default_catalog_dir, load_catalog
from qc_model.messages import LANGUAGES, RETAKE_CODES
from qc_model.reason_messages import PIECE_WORDS, page_words, phrases
from qc_model.taxonomy import DEFECT_LABELS

PLACEHOLDER = re.compile(r"\{(\w+)\}")
CODE = re.compile(r"\b[a-z]+_[a-z_]+\b")  # snake_case: a check or label code, not a word


@pytest.mark.parametrize("key", sorted(phrases()))
def test_every_phrase_has_both_languages_translated_and_no_code(key: str) -> None:
    phrase = phrases()[key]
    assert set(phrase) == set(LANGUAGES), key
    en, sw = phrase["en"].strip(), phrase["sw"].strip()
    assert en and sw, key
    # The same text in both is an untranslated phrase (no piece word or label is spelt alike).
    assert en != sw, f"{key}: Kiswahili is the English text"
    for text in (en, sw):
        assert not CODE.search(text), f"{key}: a code in {text!r}"
        assert not re.search(r"\d\.\d", text), f"{key}: a raw number in {text!r}"
    assert sorted(PLACEHOLDER.findall(en)) == sorted(PLACEHOLDER.findall(sw)), key


def test_every_reason_code_the_verdict_can_give_has_phrases() -> None:
    keys = set(phrases())
    for code in RETAKE_CODES:
        assert f"retake.{code}" in keys
    for label in DEFECT_LABELS:
        assert {f"defect.{label}.{lvl}" for lvl in ("fail", "review", "label")} <= keys
    for measure in ("loop_length", "length", "width", "outer_diameter"):
        for way in ("over", "under"):
            for outcome in ("fail", "borderline"):
                assert f"check.size_{measure}.{way}.{outcome}" in keys
    for check in ("finish", "component_count", "pair_size", "pair_colour"):
        for outcome in ("fail", "borderline"):
            assert f"check.{check}.{outcome}" in keys
    assert {"reason.photos_disagree", "reason.unknown", "check.size_unsure"} <= keys
    # Held for a person by the anomaly model or the fingerprints: said plainly, both languages.
    assert {"reason.unusual_surface", "reason.photo_reused"} <= keys
    assert {f"word.{t}" for t in PIECE_WORDS} <= keys


def test_page_words_are_per_language_tables() -> None:
    words = page_words()
    assert set(words) == set(LANGUAGES)
    assert words["en"].keys() == words["sw"].keys() == phrases().keys()


def test_every_design_in_the_catalog_has_a_kiswahili_name() -> None:
    for design in load_catalog(default_catalog_dir()).values():
        assert design.name_sw, f"{design.id} has no name_sw"
        assert design.name_in("sw") != design.name_in("en"), design.id
        assert design.name_in("en") == design.name
