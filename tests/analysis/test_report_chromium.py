"""report.html in a real headless Chromium (Debian's ``chromium``): the page
renders its tables and its embedded figures, and the screenshot is not blank.

The session fixture installs Chromium with apt-get when it is missing (as
root; CI runs as root); if that is impossible the test fails, saying why.
"""

import os
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from scenetune.cli import main

pytestmark = pytest.mark.slow

INSTALL = ("apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive "
           "apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium")


@pytest.fixture(scope="session")
def chromium():
    path = shutil.which("chromium")
    if path:
        return path
    if os.geteuid() != 0:
        pytest.fail(f"chromium is not installed and installing it needs root: run `{INSTALL}` as root")
    done = subprocess.run(INSTALL, shell=True, capture_output=True, text=True, timeout=1800)
    path = shutil.which("chromium")
    if done.returncode or not path:
        pytest.fail(f"could not install chromium ({INSTALL}): {done.stderr[-1500:]}")
    return path


def run_chromium(chromium, tmp_path, *args):
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=True)


class Page(HTMLParser):
    """Tables (rows of cell texts) and image sources of a rendered DOM."""

    def __init__(self):
        super().__init__()
        self.tables, self.images, self.cell = [], [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = ""
        elif tag == "img":
            self.images.append(dict(attrs).get("src", ""))

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.tables[-1][-1].append(self.cell.strip())
            self.cell = None


def test_report_html_renders_tables_and_figures_in_chromium(chromium, known_experiment, tmp_path):
    out = tmp_path / "report"
    assert main(["report", known_experiment, "--out", str(out)]) == 0
    page_url = (out / "report.html").as_uri()

    dom = run_chromium(chromium, tmp_path, "--dump-dom", page_url).stdout
    page = Page()
    page.feed(dom)
    table1 = next(t for t in page.tables if t and t[0][:2] == ["image_size", "best_val_accuracy"])
    assert [row[:4] for row in table1[1:]] == [["50", "0.44", "", "99"], ["150", "0.75", "", "386"],
                                                ["224", "0.79", "", "746"]]
    table3 = next(t for t in page.tables if t and t[0][0] == "class")
    assert [row[0] for row in table3[-3:]] == ["accuracy", "macro avg", "weighted avg"]
    assert len(page.images) == 6 and all(src.startswith("data:image/png;base64,") for src in page.images)

    shot = tmp_path / "page.png"
    run_chromium(chromium, tmp_path, f"--screenshot={shot}", "--window-size=1280,4000", page_url)
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int16)
    assert pixels.shape[:2] == (4000, 1280)
    assert pixels.std() > 20, "the screenshot is blank"
    # The figures' orange (#E69F00: validation curves, the best trial, the Pareto front) appears nowhere in
    # the page's own styles, so finding it means the embedded images were decoded and drawn.
    orange = (np.abs(pixels - np.array([0xE6, 0x9F, 0x00])).sum(axis=2) < 40).sum()
    assert orange > 500, f"only {orange} pixels of the figures' orange: images not drawn?"
