"""The leaderboard page (`compare --format html`) in a real headless browser (Debian's chromium and
chromium-driver, through selenium): it loads without console errors and fetches nothing, a click on a column
sorts the rows, the filter hides rows, a click on a row shows where its numbers come from."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from prunebench.testing import make_protocol, standard_records, write_run

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None or DRIVER is None, reason="needs Debian's chromium and chromium-driver (.ci/run installs them)"
    ),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM  # type: ignore[assignment]
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)  # a given driver: Selenium Manager stays off
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("page")
    proto = make_protocol()
    write_run(root / "r", proto, standard_records(proto))
    return root


def top1_column(driver) -> list[float]:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    table = driver.find_elements(By.CSS_SELECTOR, "table.leaderboard")[0]
    headers = [th.text.strip() for th in table.find_elements(By.CSS_SELECTOR, "th")]
    i = headers.index("top-1 %")
    rows = table.find_elements(By.CSS_SELECTOR, "tbody tr.row")
    return [float(r.find_elements(By.TAG_NAME, "td")[i].text.split(" ")[0]) for r in rows if r.is_displayed()]


def test_the_page_sorts_filters_and_shows_provenance(cli, page: Path, browser) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    board = page / "board.html"
    done = cli("compare", page / "r", "--format", "html", "-o", board)
    assert done.code == 0, done.err
    text = board.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)  # self-contained: nothing to fetch
    assert "data:image/png;base64," in text  # the figure is embedded

    browser.get(board.as_uri())
    assert browser.title == "prunebench leaderboard"
    assert [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")] == []
    requests = [e for e in browser.get_log("performance") if '"Network.requestWillBeSent"' in e["message"]]
    assert requests and all(board.as_uri() in e["message"] or "data:" in e["message"] for e in requests)

    before = top1_column(browser)
    header = next(th for th in browser.find_elements(By.CSS_SELECTOR, "table.leaderboard th") if th.text == "top-1 %")
    header.click()
    ascending = top1_column(browser)
    assert ascending == sorted(before) and ascending != before
    header.click()
    assert top1_column(browser) == sorted(before, reverse=True)

    shown = browser.find_element(By.ID, "shown")
    total = int(shown.text.split(" of ")[1].split()[0])
    browser.find_element(By.ID, "filter").send_keys("DENSE base")  # every word, any case
    rows = [r for r in browser.find_elements(By.CSS_SELECTOR, "tr.row") if r.is_displayed()]
    assert len(rows) == 1 and "dense base model" in rows[0].text and shown.text == f"1 of {total} rows shown"
    browser.find_element(By.ID, "filter").clear()
    browser.find_element(By.ID, "filter").send_keys(" ")  # an input event with nothing to match: all rows again
    assert len([r for r in browser.find_elements(By.CSS_SELECTOR, "tr.row") if r.is_displayed()]) == total

    rows = browser.find_elements(By.CSS_SELECTOR, "tr.row")
    row = next(r for r in rows if r.find_elements(By.TAG_NAME, "td")[1].text == "b")
    details = browser.find_element(By.ID, row.get_attribute("data-prov"))
    assert not details.is_displayed()
    assert "seeds: 0, 1, 2" in (row.get_attribute("title") or "")  # on hover
    row.click()
    assert details.is_displayed() and "result files" in details.text and ".json" in details.text
    assert "seeds" in details.text and "dense checkpoints" in details.text
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    browser.save_screenshot(str(page / "board.png"))
    assert (page / "board.png").stat().st_size > 10_000
