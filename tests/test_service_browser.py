"""The search page and the static `--html` report in a real headless Chromium (selenium + chromium-driver).

The page is served by a real uvicorn server on 127.0.0.1 with API keys: the test types the key
the page asks for, a query, uploads a photo, drops one, moves a weight slider, and checks the
results grid, the breakdowns, the query photo and the layout at 1280 px and at a phone's width
(no table wider than its card, no card over its neighbour, nothing wider than the window).
Screenshots are saved under $MMSEARCH_SCREENSHOTS, or pytest's temporary folder; the path is printed.

Chromium runs offline: background networking, component updates, sync and QUIC are off, with a
fresh profile folder.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed: pip install selenium")
from selenium.webdriver.chrome.service import Service as ChromeService  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from mmsearch.query.report import write_report  # noqa: E402
from mmsearch.service import Service, ServiceSettings, create_app  # noqa: E402
from tests.service_support import READ_KEY, free_port, keyring, uvicorn_thread, workspace  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs Chromium and its driver: apt-get install -y chromium chromium-driver",
)
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
WIDE, PHONE = (1280, 900), (390, 844)

# Every element matching `inner` lies within its `outer` ancestor; cards of one row do not overlap;
# the page is no wider than the window. Returns the problems found, [] when there are none.
LAYOUT_JS = """
const [outerSel, innerSel] = arguments;
const problems = [];
const doc = document.documentElement;
const inside = (r, o) => r.left >= o.left - 1 && r.right <= o.right + 1;
const overlap = (a, b) =>
  Math.min(a.right, b.right) - Math.max(a.left, b.left) > 1 &&
  Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 1;
if (doc.scrollWidth > doc.clientWidth + 1) {
  problems.push(`page ${doc.scrollWidth}px wide in a ${doc.clientWidth}px window`);
}
const outers = [...document.querySelectorAll(outerSel)];
outers.forEach((outer, i) => {
  const o = outer.getBoundingClientRect();
  if (o.right > doc.clientWidth + 1) problems.push(`${outerSel} ${i} ends at ${o.right}px`);
  for (const inner of outer.querySelectorAll(innerSel)) {
    const r = inner.getBoundingClientRect();
    if (!inside(r, o)) problems.push(`${innerSel} in ${outerSel} ${i}: ${r.left}-${r.right} in ${o.left}-${o.right}`);
  }
  outers.slice(i + 1).forEach((other, j) => {
    if (overlap(o, other.getBoundingClientRect())) problems.push(`${outerSel} ${i} overlaps ${outerSel} ${i + j + 1}`);
  });
});
return problems;
"""


@pytest.fixture(scope="module")
def ws(tmp_path_factory, tiny_clip_dir, minilm_dir):
    return workspace(tmp_path_factory, tiny_clip_dir, minilm_dir, "service-browser")


@pytest.fixture(scope="module")
def service(ws):
    with Service.open(ServiceSettings(config=ws / "mmsearch.toml", image_root=ws)) as svc:
        yield svc


@pytest.fixture(scope="module")
def server(service):
    with uvicorn_thread(create_app(service, keys=keyring()), free_port()) as url:
        yield url


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = Path(os.environ.get("MMSEARCH_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=ChromeService(CHROMEDRIVER), options=options)
    driver.set_window_size(*WIDE)
    yield driver
    driver.quit()


def wait(driver, condition, timeout: float = 20):
    return WebDriverWait(driver, timeout).until(lambda d: condition(d))


def screenshot(driver, folder: Path, name: str, size: tuple[int, int]) -> Path:
    """The whole page at `size`'s width (the window grown to the page's height)."""
    driver.set_window_size(*size)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(size[0], min(max(height + 120, size[1]), 6000))
    path = folder / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(*size)
    return path


def layout_problems(driver, outer: str, inner: str) -> list[str]:
    return driver.execute_script(LAYOUT_JS, outer, inner)


def cards(driver) -> list:
    return driver.find_elements(By.CSS_SELECTOR, "#results .card")


def summary(driver) -> str:
    return driver.find_element(By.ID, "summary").text


def run_search(driver, before: str) -> None:
    driver.find_element(By.ID, "search").click()
    wait(driver, lambda d: (summary(d) != before and cards(d)) or d.find_element(By.ID, "error").is_displayed())


def test_the_page_searches_by_text_and_by_photo(browser, server, ws, shots):
    d = browser
    d.get(server + "/")
    key_box = wait(d, lambda d: d.find_element(By.ID, "key-box").is_displayed() and d.find_element(By.ID, "key"))
    key_box.send_keys(READ_KEY)
    d.execute_script("document.getElementById('key').dispatchEvent(new Event('change'))")
    wait(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#weights .weight")) >= 5)
    assert "40 items" in d.find_element(By.ID, "status").text

    d.find_element(By.ID, "text").send_keys("a red ball")
    run_search(d, "")
    assert not d.find_element(By.ID, "error").is_displayed()
    found = cards(d)
    assert len(found) == 10
    used = summary(d).split("signals: ")[1].split(", ")
    for card in found:
        rows = card.find_elements(By.CSS_SELECTOR, "table.breakdown tbody tr")
        assert len(rows) == len(used) and card.find_element(By.CSS_SELECTOR, ".title").text.startswith("#")
        assert float(card.find_element(By.CSS_SELECTOR, ".score").text) > 0
    loaded = "return [...document.querySelectorAll('.card img.photo')].filter(i => i.naturalWidth > 0).length"
    wait(d, lambda d: d.execute_script(loaded) >= 5)  # the photos came through /images with the key
    assert layout_problems(d, "#results .card", "table.breakdown") == []
    screenshot(d, shots, "page-text-1280", WIDE)

    before = summary(d)
    d.find_element(By.ID, "text").clear()
    d.find_element(By.ID, "photo").send_keys(str(ws / "photo.jpg"))
    wait(
        d,
        lambda d: d.execute_script(
            "const i = document.getElementById('query-photo'); return !i.hidden && i.naturalWidth > 0"
        ),
    )
    run_search(d, before)
    assert "clip-tiny.image" in summary(d) and "all-MiniLM" not in summary(d)  # an image query: CLIP only
    assert len(cards(d)) == 10 and cards(d)[0].find_elements(By.CSS_SELECTOR, "table.breakdown tbody tr")
    assert layout_problems(d, "#results .card", "table.breakdown") == []
    shot = screenshot(d, shots, "page-photo-1280", WIDE)
    d.set_window_size(*PHONE)
    assert layout_problems(d, "#results .card", "table.breakdown") == []
    assert d.find_element(By.ID, "query-photo").is_displayed()
    phone = screenshot(d, shots, "page-photo-phone", PHONE)
    assert shot.stat().st_size > 10_000 and phone.stat().st_size > 10_000
    d.set_window_size(*WIDE)


def test_the_page_takes_a_dropped_photo_weights_and_shows_errors(browser, server):
    d = browser
    d.get(server + "/")
    wait(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#weights .weight")) >= 5)  # the key is remembered
    dropped = d.execute_script("""
        const canvas = Object.assign(document.createElement('canvas'), {width: 40, height: 30});
        const ctx = canvas.getContext('2d'); ctx.fillStyle = '#c00'; ctx.fillRect(0, 0, 40, 30);
        const blob = await new Promise(r => canvas.toBlob(r, 'image/png'));
        const data = new DataTransfer();
        data.items.add(new File([blob], 'red.png', {type: 'image/png'}));
        const drop = new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true});
        document.getElementById('drop').dispatchEvent(drop);
        await new Promise(r => setTimeout(r, 300));
        return document.getElementById('query-photo').naturalWidth;
    """)
    assert dropped == 40
    d.find_element(By.ID, "weights-box").click()
    slider = d.find_element(By.CSS_SELECTOR, ".weight[data-signal='clip-tiny.image'] input")
    d.execute_script("arguments[0].value = 0.8; arguments[0].dispatchEvent(new Event('input'))", slider)
    run_search(d, summary(d))
    assert summary(d).endswith("signals: clip-tiny.image 1.00")  # only the moved slider takes part
    d.find_element(By.ID, "filters").send_keys("price<cheap")
    d.find_element(By.ID, "search").click()
    error = wait(d, lambda d: d.find_element(By.ID, "error").is_displayed() and d.find_element(By.ID, "error"))
    assert "422" in error.text and "not a number" in error.text and "field: filter" in error.text


def test_the_page_recommends_for_a_history_without_a_user(browser, server):
    d = browser
    d.get(server + "/")
    wait(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#weights .weight")) >= 5)
    before = summary(d)
    d.find_element(By.ID, "history").send_keys("sku-001, sku-005")
    d.find_element(By.ID, "recommend").click()
    wait(d, lambda d: (summary(d) != before and cards(d)) or d.find_element(By.ID, "error").is_displayed())
    assert not d.find_element(By.ID, "error").is_displayed(), d.find_element(By.ID, "error").text
    ids = [c.get_attribute("data-id") for c in cards(d)]
    assert ids and not {"sku-001", "sku-005"} & set(ids)  # the history's items are left out
    assert "profile:" in summary(d)  # the history feeds the content profile
    d.find_element(By.ID, "history").clear()


def test_the_api_docs_render_offline(browser, server, shots):
    pytest.importorskip("fastapi_offline", reason="the docs' own scripts need fastapi-offline: pip install it")
    browser.get(server + "/docs")  # Chromium is offline: a CDN script would never load
    operations = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path"))
    paths = {o.text.replace("\u200b", "") for o in operations}
    assert {"/search", "/recommend", "/items", "/metrics"} <= paths
    screenshot(browser, shots, "docs-1280", WIDE)


def test_the_static_report_keeps_each_breakdown_in_its_card(browser, service, ws, shots, tmp_path, monkeypatch):
    monkeypatch.chdir(ws)  # the query photo's path is relative to the working folder, as on the command line
    response = service.searcher.search(image="photo.jpg", user="u1", limit=9, explain=True)
    page = write_report(tmp_path / "hits.html", response, {"image": "photo.jpg", "user": "u1"}, image_root=ws)
    d = browser
    d.get(page.as_uri())
    assert len(d.find_elements(By.CSS_SELECTOR, ".hit")) == 9
    assert d.execute_script("const i = document.querySelector('figure.query img'); return i && i.naturalWidth") > 0
    for size, name in ((WIDE, "report-1280"), (PHONE, "report-phone")):
        d.set_window_size(*size)
        assert layout_problems(d, ".hit", "table.sig") == [], size
        screenshot(d, shots, name, size)
    d.set_window_size(*WIDE)
