"""The QC desk in English and Kiswahili: its catalogue (qc-strings.js) is complete and
translated, every key the desk uses is in it, and a switch to Kiswahili leaves no English word
of the desk on screen (labels, buttons, hints, tables, queue cards, empty states, errors)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from live_server import LiveServer
from playwright.sync_api import Page, expect
from scripted_inspector import ScriptedInspector
from web_helpers import HOOP, clear_queue, make_order, sign_in_qc, snap, upload

from qc_model.catalog import default_catalog_dir, load_catalog
from qc_model.reason_messages import DEFECT_PHRASES
from qc_model.taxonomy import DEFECT_LABELS

pytestmark = pytest.mark.browser
WEB = Path(__file__).resolve().parents[3] / "serving" / "web"
PLACEHOLDER = re.compile(r"\{(\w+)\}")
WORD = re.compile(r"[A-Za-z]+")
DESIGN_ID = re.compile(r"\bKQ(-[A-Z0-9]+)+")

# Keys the desk builds from data (`qc.call.${call}` ...): every value the API can send.
DYNAMIC_KEYS = [
    *(f"qc.call.{c}" for c in ("pass", "review", "fail", "borderline", "retake", "none")),
    *(f"qc.reason.{r}" for r in ("fail", "review", "audit")),
    *(f"qc.done.{k}" for k in ("approve", "reject")),
    *(f"qc.decided.{k}" for k in ("approve", "reject")),
    *(f"qc.ago.{u}{one}" for u in ("s", "min", "h", "d") for one in ("", ".one")),
    *(f"qc.order.{s}" for s in ("open", "paid")),
    *(f"qc.payout.{s}" for s in ("pending", "delivered")),
    *(f"qc.unit.{u}" for u in ("bead", "stone", "link")),
    *(
        f"qc.check.{c}"
        for c in (
            *(f"size_{m}" for m in ("loop_length", "length", "width", "outer_diameter")),
            *("finish_colour", "finish_palette", "component_count", "pair_size", "pair_colour"),
        )
    ),
]

# The desk's texts as the reviewer sees them: visible text nodes (a select's options when the
# select is visible), hover and alternative texts, the tab's title. The language switch names
# each language in itself on purpose, so it is left out.
VISIBLE_TEXT = """() => {
  const seen = (e) => e.checkVisibility();
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const p = n.parentElement;
    if (!p || p.closest('.lang') || !n.textContent.trim()) continue;
    const shown = p.closest('option') ? seen(p.closest('select')) : seen(p);
    if (shown) out.push(n.textContent.trim());
  }
  for (const e of document.body.querySelectorAll('[title], [alt], [aria-label]')) {
    if (e.closest('.lang') || !seen(e)) continue;
    for (const a of ['title', 'alt', 'aria-label']) {
      if (e.getAttribute(a)) out.push(e.getAttribute(a));
    }
  }
  out.push(document.title);
  return out;
}"""


def _catalogue(page: Page) -> dict[str, dict[str, str]]:
    table: dict[str, dict[str, str]] = page.evaluate(
        "async () => (await import('/static/qc-strings.js')).QC_STRINGS"
    )
    return table


def _keys_used_by_the_desk() -> set[str]:
    html = (WEB / "qc.html").read_text()
    used = set(re.findall(r'data-i18n="(qc\.[\w.]+)"', html))
    used |= set(re.findall(r'data-i18n-attr="\w[\w-]*:(qc\.[\w.]+)"', html))
    for js in (WEB / "static").glob("qc*.js"):
        if not js.name.startswith("qc-strings"):  # where the keys are defined, not used
            used |= set(re.findall(r"'(qc\.[\w.]+)'", js.read_text()))
    return used | set(DYNAMIC_KEYS)


def test_the_desk_catalogue_has_every_key_in_both_languages_translated(
    live: LiveServer, desk: Page
) -> None:
    desk.goto(f"{live.url}/qc")
    expect(desk.locator("body")).to_have_attribute("data-ready", "true")
    table = _catalogue(desk)
    en, sw = table["en"], table["sw"]
    assert len(en) > 100
    assert set(en) == set(sw), set(en) ^ set(sw)
    for key in en:
        assert en[key].strip() and sw[key].strip(), key
        assert en[key] != sw[key], f"{key}: not translated: {sw[key]!r}"
        # A Kiswahili line may leave out a detail (the server's English message), never invent one.
        assert set(PLACEHOLDER.findall(sw[key])) <= set(PLACEHOLDER.findall(en[key])), key
    used = _keys_used_by_the_desk()
    assert len(used) > 80
    # A literal that begins dynamic keys (word('qc.payout', status)) is a prefix, not a key.
    missing = {k for k in used - set(en) if not any(d.startswith(f"{k}.") for d in DYNAMIC_KEYS)}
    assert not missing, f"keys the desk uses that the catalogue lacks: {missing}"
    assert not set(en) - used, f"keys nobody uses: {set(en) - used}"


def _english_words(table: dict[str, dict[str, str]]) -> set[str]:
    """Words of four letters or more that only the English desk shows: its catalogue, the defect
    classes, the designs' English names. Words the Kiswahili side uses too ("Kito") are left out."""
    texts = [PLACEHOLDER.sub(" ", s) for s in table["en"].values()]
    texts += [label.replace("_", " ") for label in DEFECT_LABELS]
    texts += [p["label"]["en"] for p in DEFECT_PHRASES.values()]
    designs = load_catalog(default_catalog_dir()).values()
    texts += [d.name_in("en") for d in designs]
    words = {w.lower() for text in texts for w in WORD.findall(text) if len(w) >= 4}
    swahili = " ".join(table["sw"].values()).lower()
    swahili += " ".join(p["label"]["sw"] for p in DEFECT_PHRASES.values()).lower()
    swahili += " ".join(d.name_in("sw") for d in designs).lower()  # names such as "Kazuri"
    return {w for w in words if w not in set(WORD.findall(swahili))}


def _english_on_screen(page: Page, english: set[str]) -> list[tuple[str, str]]:
    """(word, text) for each English word on screen; design codes (KQ-BBR-BONE-180) are codes."""
    texts: list[str] = page.evaluate(VISIBLE_TEXT)
    texts = [DESIGN_ID.sub(" ", t) for t in texts]
    return [(w, t) for t in texts for w in WORD.findall(t) if w.lower() in english]


def _item_with_everything(live: LiveServer, scripted: ScriptedInspector) -> tuple[str, Any]:
    """One open item the model was unsure of, a borderline size check and a heatmap, in an order."""
    _, qc = live.user("qc", "Njeri")
    clear_queue(live, qc)
    artisan_id, artisan = live.user("artisan", "Mwanaisha")
    order = make_order(live, qc, artisan_id, [("K1", HOOP, 2500)])
    scripted.verdict, scripted.size_off_mm = "review", 1.9
    upload(live, artisan, order["id"], "K1", HOOP)
    return qc, order


def test_switching_the_desk_to_kiswahili_leaves_no_english_on_screen(
    live: LiveServer, desk: Page, scripted: ScriptedInspector
) -> None:
    qc, order = _item_with_everything(live, scripted)
    sign_in_qc(desk, live, qc)
    expect(desk.locator(".queue-item")).to_have_count(1)
    expect(desk.locator("#order-line")).to_contain_text(f"Order {order['id']} is open")
    english = _english_words(_catalogue(desk))
    # The walk sees the desk's words: in English they are all over the screen.
    assert len({w for w, _ in _english_on_screen(desk, english)}) > 40

    desk.get_by_role("button", name="Kiswahili").click()
    expect(desk.locator("html")).to_have_attribute("lang", "sw")
    expect(desk.get_by_role("button", name="Kiswahili")).to_have_attribute("aria-pressed", "true")
    expect(desk.locator("#order-line")).to_contain_text(f"Oda {order['id']} bado iko wazi")
    expect(desk.locator(".queue-item .qi-meta")).to_contain_text("Kompyuta: haina uhakika")
    # Defect names from the reason catalogue; the value sent stays the taxonomy's class.
    expect(desk.get_by_label(DEFECT_PHRASES["scratch"]["label"]["sw"])).to_have_value("scratch")
    expect(desk.locator("#spec .call")).to_have_text("karibu na mpaka")
    assert _english_on_screen(desk, english) == []

    # The rule that a rejection names what is wrong, said in Kiswahili.
    desk.keyboard.press("r")
    expect(desk.locator("#decide-error")).to_contain_text("Kabla ya kukataa, chagua dosari")
    snap(desk, "qc-kiswahili")
    assert _english_on_screen(desk, english) == []
    # Switching back says it again in English, and keeps what was ticked.
    desk.get_by_label(DEFECT_PHRASES["bent"]["label"]["sw"]).check()
    desk.get_by_role("button", name="English").click()
    expect(desk.locator("#decide-error")).to_contain_text("To reject, tick the defects you see")
    expect(desk.get_by_label("bent", exact=True)).to_be_checked()

    # Remembered like the artisan page: a reload opens in Kiswahili again.
    desk.get_by_role("button", name="Kiswahili").click()
    desk.reload()
    expect(desk.locator("#desk")).to_be_visible()
    expect(desk.locator("html")).to_have_attribute("lang", "sw")
    expect(desk.locator(".queue-item")).to_have_count(1)
    # The empty states too.
    desk.locator("#f-reason").select_option("audit")
    expect(desk.locator("#queue-empty")).to_have_text("Hakuna kinachosubiri kwa machaguo haya.")
    expect(desk.locator("#item-empty")).to_be_visible()
    assert _english_on_screen(desk, english) == []

    # Deciding in Kiswahili, and the decision as the desk shows it afterwards.
    desk.locator("#f-reason").select_option("")
    expect(desk.locator(".queue-item")).to_have_count(1)
    desk.get_by_label(DEFECT_PHRASES["scratch"]["label"]["sw"]).check()
    desk.keyboard.press("a")
    status = desk.locator("#item-status")
    expect(status).to_contain_text(f"Umekubali K1. Oda {order['id']} imelipwa")
    desk.locator("#f-status").select_option("decided")
    desk.locator(".queue-item", has_text="K1").click()
    expect(desk.locator("#decision-line")).to_contain_text("Kimekubaliwa na Njeri")
    expect(desk.locator("#decision-labels")).to_have_text("Dosari: mkwaruzo")
    snap(desk, "qc-kiswahili-decided")
    assert _english_on_screen(desk, english) == []


def test_the_sign_in_form_and_its_error_in_kiswahili(live: LiveServer, desk: Page) -> None:
    desk.goto(f"{live.url}/qc")
    expect(desk.locator("body")).to_have_attribute("data-ready", "true")
    english = _english_words(_catalogue(desk))
    desk.get_by_role("button", name="Kiswahili").click()
    desk.get_by_label("Msimbo wako wa kuingia").fill("not-a-token")
    desk.get_by_role("button", name="Ingia").click()
    expect(desk.locator("#signin-error")).to_have_text("Msimbo huu haujulikani au umefutwa.")
    assert _english_on_screen(desk, english) == []
