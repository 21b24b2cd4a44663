"""The run report page: written from a real small run, opened in headless Chromium, every system's clip plays."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from sag_bench.reporting.report_page import REPORT_NAME, write_report
from sag_bench.runner.run import run_experiment
from sag_bench.runner.spec import load_spec
from tests.conftest import build_dataset

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = os.environ.get("SAG_BENCH_REPORT_SCREENSHOT")  # where to save a screenshot of the page (optional)

SPEC = """
name = "report-small"
table = "table1"
seed = 3
batch_size = 2
[data]
name = "chorales"
dir = "{data}"
split = "test"
max_clips = 2
[evaluation]
embedders = ["dsp-spectral"]
coherence = true
bootstrap = 20
[rtf]
clips = 1
warmup = 0
[[systems]]
name = "groundtruth"
[[systems]]
name = "randsong"
"""
SYSTEMS = ["groundtruth", "randsong"]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report")
    data = build_dataset(root / "data", songs=4, clips_per_song=2, seconds=4.0)
    spec_path = root / "small.toml"
    spec_path.write_text(SPEC.format(data=data))
    result = run_experiment(load_spec(spec_path), root / "run")
    return write_report(result.store.root)


def test_report_is_offline_and_lists_every_system_and_clip(report):
    page = report.read_text()
    assert report.name == REPORT_NAME
    assert "http://" not in page and "https://" not in page and "<script" not in page
    metrics = pd.read_csv(report.parent / "metrics.csv").set_index("system")
    low, high = metrics.loc["randsong", ["ci_low", "ci_high"]]
    assert f"[{low:.1f}, {high:.1f}]" in page  # the CI of the table is the run's
    for clip in ("song1-0", "song1-1"):
        assert f'data-clip="{clip}"' in page and (report.parent / "report_files" / "vocals" / f"{clip}.wav").is_file()
        for system in SYSTEMS:
            assert f'src="generated/{system}/{clip}.wav"' in page and f'src="mixes/{system}/{clip}.wav"' in page
    assert page.count('<img class="plot"') == 3 and page.count('<img class="spec"') == 2 * (1 + len(SYSTEMS))


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not installed at /usr/bin/chromium")
def test_report_plays_each_system_in_chromium(report):
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--autoplay-policy=no-user-gesture-required"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(report.as_uri())
        fad = page.locator("table.fad tbody tr")
        assert fad.count() == len(SYSTEMS)
        assert [fad.nth(i).locator("td").first.inner_text() for i in range(len(SYSTEMS))] == SYSTEMS
        assert "[" in fad.nth(1).locator("td").nth(1).inner_text()  # score with its CI
        assert page.locator("table.rtf tbody tr").count() == 2 * len(SYSTEMS)  # end-to-end and model-only
        assert page.locator("table.coherence tbody tr").count() == len(SYSTEMS)
        assert all(page.locator("img.plot").nth(i).evaluate("i => i.naturalWidth") > 0 for i in range(3))
        for system in SYSTEMS + ["input"]:
            audio = page.locator(f'section[data-clip="song1-0"] audio[data-system="{system}"]').first
            audio.evaluate("a => { a.playbackRate = 4; return a.play(); }")
            page.wait_for_function("a => a.ended || a.currentTime > 0.5", arg=audio.element_handle(), timeout=20_000)
            assert audio.evaluate("a => a.error === null && a.duration > 3.9")
            audio.evaluate("a => a.pause()")
        if SCREENSHOT:
            page.screenshot(path=SCREENSHOT, full_page=True)
        browser.close()
