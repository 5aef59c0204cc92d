"""The web page in a real browser (Debian's chromium, headless, through Playwright)
against a real `lofid run --web`: it plays the live picture, its controls move the
daemon, its library shows stills, and the OBS overlay follows the scene."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import running, wait_for
from web_browser import (api, frame, free_port, launch, needs_chromium, page_token,
                         web_ready)

pytestmark = [pytest.mark.slow, needs_chromium]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("web")
    port = free_port()
    with running(tmp, "--web", port, "--size", "320x180", "--scene", "rainy window",
                 "--rotate", "600", ready=web_ready(port)) as d:
        d.base = f"http://127.0.0.1:{port}"
        yield d


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


@pytest.fixture(scope="module")
def page(daemon, browser):
    """The page, open while the module's tests run; its console errors collected."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.errors = []
    page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(daemon.base + "/")
    yield page
    page.close()


def playing_time(page) -> float:
    return page.evaluate("document.getElementById('video').currentTime")


def test_the_page_plays_the_live_picture_with_sound(page):
    video = "document.getElementById('video')"
    wait_for(lambda: page.evaluate(f"{video}.readyState") >= 3, timeout=30)
    t0 = playing_time(page)
    wait_for(lambda: playing_time(page) > t0 + 1.0, timeout=15)
    first = frame(page)
    # A picture, not a flat colour (black, grey, a frozen decoder's green).
    assert first.std() > 10, first.std()
    # It moves: rain, steam, flickering lights (at 96x54 the rain still shows).
    wait_for(lambda: np.abs(frame(page) - first).max() > 24, timeout=10)
    # The audio track is decoded along (Chromium counts its bytes).
    wait_for(lambda: page.evaluate(f"{video}.webkitAudioDecodedByteCount") > 0, timeout=10)
    # Live: the page plays within a few seconds of the newest picture it has.
    behind = page.evaluate(f"{video}.buffered.end({video}.buffered.length - 1)"
                           f" - {video}.currentTime")
    assert behind < 4.0, behind
    assert page.errors == []


def test_a_scene_button_moves_the_daemon_and_the_picture(page, daemon):
    wait_for(lambda: page.evaluate("document.getElementById('video').readyState") >= 3, 30)
    before = frame(page, 32, 18)
    page.click("button.scene[data-scene='coffee_shop']")
    def scene():
        out = daemon.ctl("status", "--json")
        return json.loads(out.stdout)["scene"]["scene"] == "coffee_shop"
    wait_for(scene, timeout=60, every=0.5)
    # The warm coffee shop replaces the grey-blue rainy window on the page's video:
    # far more than the rain moves it.
    wait_for(lambda: np.abs(frame(page, 32, 18) - before).mean() > 20, timeout=20)
    wait_for(lambda: "coffee shop" in page.text_content("#scene"), timeout=10)
    assert page.errors == []


def test_the_library_grid_shows_a_still_of_every_loop(page, daemon):
    loops = daemon.call("library.list")
    assert loops
    wait_for(lambda: page.eval_on_selector_all(".tile", "t => t.length") >= len(loops), 20)
    wait_for(lambda: page.eval_on_selector_all(
        ".tile img", "imgs => imgs.every(i => i.complete && i.naturalWidth >= 200)"), 20)
    # Clicking a still plays that loop.
    key = loops[-1]["key"]
    page.click(f".tile[data-key='{key}']")
    wait_for(lambda: daemon.status()["loop"] == key, timeout=30, every=0.2)
    wait_for(lambda: page.eval_on_selector(f".tile[data-key='{key}']",
                                           "t => t.classList.contains('on')"), 10)
    assert page.errors == []


def test_pause_and_outputs_from_the_page(page, daemon, tmp_path):
    page.click("#pause")
    wait_for(lambda: daemon.status()["paused"] is True, timeout=10, every=0.1)
    wait_for(lambda: page.text_content("#pause") == "Resume rotation", timeout=10)
    page.click("#pause")
    wait_for(lambda: daemon.status()["paused"] is False, timeout=10, every=0.1)
    target = str(tmp_path / "from-the-page.mkv")
    page.fill("#output-target", target)
    page.click("#output-form button")
    wait_for(lambda: any(o["target"] == target and o["state"] == "running"
                         for o in daemon.status()["outputs"]), timeout=20, every=0.2)
    wait_for(lambda: target in page.text_content("#outputs"), timeout=10)
    recording = tmp_path / "from-the-page.mkv"
    wait_for(lambda: recording.exists() and recording.stat().st_size > 10_000, timeout=20)
    page.click(f"#outputs li:has-text('{target}') button")
    wait_for(lambda: all(o["target"] != target for o in daemon.status()["outputs"]), 20)
    wait_for(lambda: target not in page.text_content("#outputs"), timeout=10)


def test_the_overlay_follows_the_scene(browser, daemon):
    overlay = browser.new_page(viewport={"width": 1920, "height": 1080})
    errors = []
    overlay.on("console", lambda m: m.type == "error" and errors.append(m.text))
    try:
        overlay.goto(daemon.base + "/overlay")
        wait_for(lambda: overlay.text_content("#scene"), timeout=15)
        # Transparent, for OBS to lay over the picture.
        assert overlay.evaluate("getComputedStyle(document.body).backgroundColor") \
            == "rgba(0, 0, 0, 0)"
        out = daemon.ctl("scene", "rooftop", "at", "night")
        assert out.returncode == 0, out.stderr
        wait_for(lambda: "rooftop" in overlay.text_content("#scene"), timeout=60, every=0.2)
        assert errors == []
    finally:
        overlay.close()


def test_the_page_is_only_served_to_this_machine_s_names(daemon):
    import http.client
    port = int(daemon.base.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    # A DNS-rebinding page reaches 127.0.0.1 under its own name.
    conn.request("GET", "/", headers={"Host": f"evil.example:{port}"})
    res = conn.getresponse()
    assert res.status == 403 and b"lofid-token" not in res.read()
    # The token the page carries works; it is made for this run, and a wrong one does not.
    token = page_token(daemon.base)
    assert len(token) >= 16
    assert api(daemon.base, token, "status")["scene"]
