"""A real browser (headless Chromium through Playwright) completes a whole session, reloading midway."""

from __future__ import annotations

import sqlite3
from importlib import resources
from pathlib import Path

import pytest

from sag_bench.listening_test.build import build_study
from tests.listen_server_helpers import LOOPBACK, free_port, start_server, stop_server
from sag_bench.listening_test.server import completion_code
from sag_bench.listening_test.study import Study, read_secret
from tests.listen_synthetic import make_synthetic_run

CHROMIUM = Path("/usr/bin/chromium")
# Real playback to the end, four times faster, so the test stays short.
FAST_PLAYBACK = """
const play = HTMLMediaElement.prototype.play;
HTMLMediaElement.prototype.play = function () { this.playbackRate = 4; return play.call(this); };
"""

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not installed at /usr/bin/chromium")


@pytest.fixture
def small_study(tmp_path):
    """2 systems x 2 clips of 1 s (a third clip is held out for the gold items); one anchor and one trap; mp3 as in
    a real study. 6 items per rater."""
    preset = resources.files("sag_bench.listening_test").joinpath("presets", "fastsag_mos.toml").read_text()
    preset = preset.replace("anchors = 2", "anchors = 1").replace("references = 1", "references = 0")
    (tmp_path / "preset.toml").write_text(preset)
    make_synthetic_run(tmp_path / "run", ["groundtruth", "fastsag"], clips=3, seconds=1.0)
    build_study(tmp_path / "run", tmp_path / "study", per_rater=2, seed=3, preset_path=tmp_path / "preset.toml")
    return tmp_path / "study"


def _rate_current_item(page, score: int, comment: str = "", refused_comment: str = "") -> str:
    """Play the clip to the end, rate it and wait for the next page; returns the prompt that was shown.

    With ``refused_comment`` (a JavaScript string literal), that comment is sent first: the form must show the
    server's refusal, keep the item, and save it once the comment is corrected."""
    page.wait_for_selector("#page-trial:not([hidden])", timeout=10_000)
    assert page.locator("#scale input").first.is_disabled()  # no rating before the clip has been heard
    page.click("#trial-play")
    page.wait_for_selector("#scale:not([disabled])", timeout=15_000)
    prompt = page.inner_text("#prompt")
    score = 2 if "Attention check" in prompt else score
    before = page.inner_text("#progress-text")
    page.check(f"#scale input[value='{score}']")
    if refused_comment:
        page.evaluate(f"document.getElementById('comment').value = {refused_comment}")
        page.click("#submit")
        page.wait_for_function("() => document.getElementById('status').textContent.includes('not accepted')",
                               timeout=10_000)
        assert page.inner_text("#progress-text") == before and page.is_visible("#page-trial")
    if comment or refused_comment:
        page.fill("#comment", comment)
    page.click("#submit")
    page.wait_for_function("t => { const p = document.getElementById('progress-text');"
                           " return p.offsetParent === null || p.textContent !== t; }", arg=before, timeout=10_000)
    return prompt


def test_headless_chromium_completes_a_session_with_a_reload_midway(small_study, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    study = Study.open(small_study)
    answers = [t["answer"] for t in study.spec["headphone_check"]["trials"]]
    port = free_port()
    server = start_server(small_study, port, tmp_path / "server.log")
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM),
                                        args=["--autoplay-policy=no-user-gesture-required"])
            page = browser.new_page()
            page.add_init_script(FAST_PLAYBACK)
            page.goto(f"http://{LOOPBACK}:{port}/?PROLIFIC_PID=browser-test")
            page.wait_for_selector("#duration:not([hidden])", timeout=10_000)
            assert page.locator("#duration").inner_text().startswith("The test takes about ")
            assert page.locator("#start").is_disabled()
            page.check("#consent")
            page.click("#start")
            page.click("#volume-play")
            page.click("#volume-done")
            for answer in answers:
                page.click("#hp-play")
                page.wait_for_selector(f"#hp-choices button[data-answer='{answer}']:not([disabled])", timeout=15_000)
                page.click(f"#hp-choices button[data-answer='{answer}']")
            prompts = [_rate_current_item(page, 5 - k, comment="in tune" if k == 0 else "",
                                          refused_comment="'bad \\ud800'" if k == 0 else "") for k in range(3)]
            assert page.inner_text("#progress-text") == "Clip 4 of 6"
            page.reload()  # resume: same rater, next unanswered clip, no welcome page
            page.wait_for_selector("#page-trial:not([hidden])", timeout=10_000)
            assert page.inner_text("#progress-text") == "Clip 4 of 6"
            prompts += [_rate_current_item(page, 4) for _ in range(3)]
            page.wait_for_selector("#page-done:not([hidden])", timeout=10_000)
            code = page.inner_text("#code")
            browser.close()
    finally:
        stop_server(server)
    with sqlite3.connect(small_study / "ratings.sqlite") as db:
        raters = db.execute("SELECT id, external_id, headphone_correct, headphone_total, completed FROM raters").fetchall()
        ratings = db.execute("SELECT item_id, score, comment, plays FROM ratings ORDER BY position").fetchall()
    assert len(raters) == 1
    rater_id, external_id, correct, total, completed = raters[0]
    assert external_id == "browser-test" and (correct, total) == (3, 3) and completed is not None
    assert code == completion_code(read_secret(small_study), rater_id)
    assert len(ratings) == 6 and all(plays >= 1 for *_, plays in ratings)
    by_item = {item: score for item, score, *_ in ratings}
    trap = next(item for item in study.items.values() if item.kind == "trap")
    assert by_item[trap.id] == 2 and sum("Attention check" in p for p in prompts) == 1
    assert [c for _, _, c, _ in ratings].count("in tune") == 1
    print(f"\nbrowser session: {len(ratings)} ratings stored, headphone check {correct}/{total}, code {code}")


def test_a_saved_session_the_server_refuses_is_never_dropped_silently(small_study, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    key = "sag-bench-session/" + Study.open(small_study).spec["study_id"]
    port = free_port()
    server = start_server(small_study, port, tmp_path / "server.log")
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM))
            page = browser.new_page()
            page.goto(f"http://{LOOPBACK}:{port}/")
            page.wait_for_selector("#page-welcome:not([hidden])", timeout=10_000)
            saved = '{"rater_id": "gone-rater", "token": "t", "pending": {"item_id": "i1", "score": 3}}'
            page.evaluate("([k, v]) => localStorage.setItem(k, v)", [key, saved])
            page.reload()
            page.wait_for_selector("#problem:not([hidden])", timeout=10_000)
            assert "does not accept" in page.inner_text("#problem-text")
            assert page.evaluate("k => localStorage.getItem(k)", key) == saved  # kept while the rater decides
            page.click("#problem-actions button:has-text('Start a new session')")
            page.wait_for_selector("#page-welcome:not([hidden])", timeout=10_000)
            kept = page.evaluate("() => Object.keys(localStorage).filter(k => k.includes('/set-aside/'))"
                                 ".map(k => localStorage.getItem(k))")
            assert kept == [saved] and page.evaluate("k => localStorage.getItem(k)", key) is None
            browser.close()
    finally:
        stop_server(server)
