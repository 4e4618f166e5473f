"""The web pages as files and headers: served at /app and /qc with a strict CSP and nosniff,
assets under /static, no inline script or HTML-from-strings anywhere; the taxonomy endpoint
the QC page labels with. (The pages' behaviour is tested in a browser: tests/serving/web.)"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from qc_model.taxonomy import DEFECT_DESCRIPTIONS, DEFECT_LABELS, SPEC_DEFECTS, TAXONOMY_VERSION
from serving.core.headers import CSP
from serving.web.routes import WEB_DIR

STATIC = WEB_DIR / "static"
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@sqlite_only
@pytest.mark.parametrize("path", ["/app", "/qc"])
def test_pages_are_served_with_a_strict_policy(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["content-security-policy"] == CSP
    assert "script-src 'self'" in CSP and "unsafe" not in CSP
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["cache-control"] == "no-cache"


@sqlite_only
def test_assets_have_their_types_and_the_policy(client: TestClient) -> None:
    js = client.get("/static/app.js")
    assert js.status_code == 200
    assert js.headers["content-type"].split(";")[0] in {"text/javascript", "application/javascript"}
    assert js.headers["x-content-type-options"] == "nosniff"
    assert js.headers["content-security-policy"] == CSP
    css = client.get("/static/base.css")
    assert css.headers["content-type"].startswith("text/css")
    for bad in ("/static/../routers/web.py", "/static/%2e%2e/routers/web.py", "/static/nope.js"):
        r = client.get(bad)
        assert r.status_code == 404, bad
        assert "def " not in r.text


@sqlite_only
def test_api_gets_nosniff_and_docs_keep_their_inline_script(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in r.headers
    docs = client.get("/docs")
    assert docs.status_code == 200 and "content-security-policy" not in docs.headers


def test_taxonomy_lists_every_defect_label(client: TestClient, make_user) -> None:
    _, headers = make_user("qc", "Njeri")
    r = client.get("/api/v1/taxonomy", headers=headers)
    assert r.status_code == 200
    body = r.json()
    assert body["version"] == TAXONOMY_VERSION
    assert [d["name"] for d in body["defects"]] == list(DEFECT_LABELS)
    for d in body["defects"]:
        assert d["description"] == DEFECT_DESCRIPTIONS[d["name"]]
        assert d["kind"] == ("spec" if d["name"] in SPEC_DEFECTS else "visual")
    assert client.get("/api/v1/taxonomy").status_code == 401


# ---- the files themselves -------------------------------------------------------------------

HTML = sorted(WEB_DIR.glob("*.html"))
JS = sorted(STATIC.glob("*.js"))


def test_pages_and_assets_exist() -> None:
    assert {p.name for p in HTML} == {"app.html", "qc.html"}
    assert {"app.js", "qc.js", "api.js", "dom.js", "i18n.js", "photo.js"} <= {p.name for p in JS}


@pytest.mark.parametrize("page", HTML, ids=lambda p: p.name)
def test_html_has_no_inline_script_style_or_handlers(page) -> None:
    html = page.read_text()
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, flags=re.S)
    assert scripts, "the page loads its module"
    for attrs, body in scripts:
        assert body.strip() == "" and 'type="module"' in attrs and 'src="/static/' in attrs
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler"
    assert not re.search(r"\sstyle\s*=", html), "inline style (the CSP refuses it)"
    assert "javascript:" not in html
    for ref in re.findall(r'(?:src|href)="/static/([^"]+)"', html):
        assert (STATIC / ref).is_file(), ref


def test_the_script_check_covers_every_script_the_pages_load() -> None:
    # The sink check below is parametrised over the JS glob: were the glob empty (a moved
    # folder), it would check nothing. Every script a page loads, and every module those import,
    # must be among the modules it checks.
    checked = {p.name for p in JS}
    loaded = {
        ref for page in HTML for ref in re.findall(r'src="/static/([^"]+\.js)"', page.read_text())
    }
    assert loaded, "the pages load no script from /static/"
    seen: set[str] = set()
    while loaded:
        name = loaded.pop()
        seen.add(name)
        assert name in checked, f"{name} is loaded but not checked"
        loaded |= set(re.findall(r"from '\./([\w.]+)'", (STATIC / name).read_text())) - seen
    assert {"app.js", "qc.js", "dom.js"} <= seen


@pytest.mark.parametrize("module", JS, ids=lambda p: p.name)
def test_scripts_never_turn_strings_into_html_or_code(module) -> None:
    # Comments may name the sinks (to say why they are not used); the code may not.
    code = re.sub(r"/\*.*?\*/", "", module.read_text(), flags=re.S)
    code = re.sub(r"(^|\s)//.*$", "", code, flags=re.M)
    for sink in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        "setAttribute('style'",
        'setAttribute("style"',
    ):
        assert sink not in code, f"{module.name} uses {sink}"
    for imported in re.findall(r"from '\./([\w.]+)'", code):
        assert (STATIC / imported).is_file(), f"{module.name} imports missing {imported}"


def test_every_artisan_string_has_both_languages() -> None:
    source = (STATIC / "i18n.js").read_text()
    en_block, sw_block = source.split("\n  sw: {", 1)
    key = re.compile(r"^\s+'([^']+)':", re.M)
    en, sw = key.findall(en_block), key.findall(sw_block)
    assert en and set(en) == set(sw)
    used = set(re.findall(r"\bt\(\s*'([\w.]+)'", (STATIC / "app.js").read_text()))
    used |= set(re.findall(r'data-i18n="([\w.]+)"', (WEB_DIR / "app.html").read_text()))
    assert used <= set(en), sorted(used - set(en))
