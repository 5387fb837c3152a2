"""report.html in a real browser: headless Chromium at a desktop's and a phone's width.

Skipped where no Chromium is installed (`apt-get install chromium`). The page gets a small script, in a
copy, that reports every element reaching past the window's width once the page has laid itself out.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

import report_fixtures as fx
from trainspeed.reporting.build import REPORT_HTML, write_report
from trainspeed.reporting.comparison import compare
from trainspeed.results import InferenceFigures, StartupCost

CHROMIUM = next((found for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
                 if (found := shutil.which(name))), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (apt-get install chromium)")

PHONE = (390, 844)
DESKTOP = (1280, 900)

# Chromium's window is at least 500 px wide, so the page is laid out in a frame of the width under test. The
# probe, in the frame's parent, lists every element of the page reaching past the frame's width and the page's
# own scroll width; an element inside an opened chart is meant to be larger than the window, and scrolls there.
FRAME = """<!DOCTYPE html><html><body style="margin:0">
<iframe id="frame" style="width:{width}px;height:{height}px;border:0" srcdoc="{page}"></iframe>
<script>
const frame = document.getElementById("frame");
frame.addEventListener("load", () => {{
  if ("{fragment}") frame.contentWindow.location.hash = "{fragment}";
  setTimeout(() => {{
    const page = frame.contentDocument, width = page.documentElement.clientWidth, wide = [];
    for (const element of page.body.querySelectorAll("*")) {{
      const box = element.getBoundingClientRect();
      // A box past the edge, or text spilling out of its box (a word too long for its cell).
      const spills = element.scrollWidth > element.clientWidth + 1 && element.clientWidth > 0
        && getComputedStyle(element).overflowX === "visible" && element.getBoundingClientRect().left
          + element.scrollWidth > width + 1;
      if (box.width && (box.right > width + 1 || spills) && !element.closest("figure:target"))
        wide.push(`${{element.tagName.toLowerCase()}}.${{element.className}}: ${{Math.round(box.right)}} px`);
    }}
    const figure = page.querySelector("figure:target"), image = figure && figure.querySelector("img");
    const probe = document.createElement("pre");
    probe.id = "probe";
    probe.textContent = JSON.stringify({{width, scroll: page.documentElement.scrollWidth, wide,
      opened: figure ? {{position: frame.contentWindow.getComputedStyle(figure).position,
                         image: image.getBoundingClientRect().width, natural: image.naturalWidth}} : null}});
    document.body.appendChild(probe);
  }}, 100);
}});
</script></body></html>"""


def _busy_run():
    """What a report can hold at its widest: a sweep, warnings, a failure, start-up and inference tables."""
    cases = [fx.case("cnn", "cpu", 37.6, batch=b, warnings=["the CPU frequency governor is powersave, so the "
                                                            "clock can drop under load"] if b == 32 else [])
             for b in (32, 256)]
    cases += [fx.case("cnn", "cuda:0", 4.0, batch=32), fx.case("cnn", "cuda:0", 1.1, batch=256, noisy=True,
                                                                steady_cv=0.07, steady_min_s=1.0, steady_max_s=1.2)]
    cases = [replace(case, startup=StartupCost(process_s=1.5, data_s=0.5, build_s=0.3, first_step_s=0.2,
                                               steady_step_s=0.01),
                     inference=InferenceFigures(latency_median_s=0.0006, latency_p95_s=0.0008, first_latency_s=0.01,
                                                latency_calls=200, images_per_s=7400.0, batch_size=1024,
                                                batch_calls=10, first_batch_s=0.2)) for case in cases]
    result = fx.run_result(cases, batch_sizes=(32, 256))
    result.cases.append(replace(fx.failed_run().cases[1], batch_size=256, device="cuda:1"))
    return compare([(None, result)])


def framed(page: Path, size: tuple[int, int], fragment: str = "") -> str:
    return FRAME.format(width=size[0], height=size[1], fragment=fragment, page=html.escape(page.read_text()))


def _render(page: Path, size: tuple[int, int], tmp_path: Path, fragment: str = "") -> dict:
    wrapper = tmp_path / f"framed-{size[0]}.html"
    wrapper.write_text(framed(page, size, fragment))
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--window-size={max(size[0], 500) + 20},{size[1]}", "--virtual-time-budget=5000",
                           "--dump-dom", wrapper.as_uri()], capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found, done.stderr[-2000:]
    return json.loads(html.unescape(found.group(1)))


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    single = tmp_path_factory.mktemp("busy")
    write_report(_busy_run(), single)
    machines = tmp_path_factory.mktemp("machines")
    laptop, server = fx.laptop_and_server()
    write_report(compare([("laptop", laptop), ("server", server)]), machines)
    return [single / REPORT_HTML, machines / REPORT_HTML]


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_nothing_reaches_past_the_window(pages, size, tmp_path):
    for page in pages:
        probe = _render(page, size, tmp_path)
        assert probe["width"] == size[0]
        # No sideways scrolling of the page, and no table or caption cut off at its edge.
        assert probe["scroll"] <= size[0] and probe["wide"] == [], (page, probe)


def test_a_tapped_chart_opens_at_full_size_over_the_page(pages, tmp_path):
    probe = _render(pages[0], PHONE, tmp_path, fragment="#chart-1")
    opened = probe["opened"]
    assert opened["position"] == "fixed"
    # Its own pixels and its border, scrolled rather than shrunk to the phone's width.
    assert opened["natural"] > PHONE[0] and opened["image"] >= opened["natural"]


def test_the_phone_shows_each_figure_beside_its_column_name(pages):
    page = pages[0].read_text()
    assert '<td class="number" data-label="steady s/epoch">37.60</td>' in page
    assert "@media (max-width: 700px)" in page and "content: attr(data-label)" in page
