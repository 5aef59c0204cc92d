"""The web page's security rules, over plain HTTP against a real `lofid run --web` on
an address other machines reach (so it needs the token file), and the page asking
for that token once in a real browser."""

from __future__ import annotations

import http.client
import json
import os
import socket

import pytest
from helpers import lofid, running, wait_for
from web_browser import free_port, launch, needs_chromium, web_ready

pytestmark = pytest.mark.slow

TOKEN = "s3cret-token-for-the-tests-0123456789"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("websec")
    token = tmp / "token"
    token.write_text(TOKEN + "\n")
    os.chmod(token, 0o600)
    config = tmp / "config.toml"
    port = free_port()
    config.write_text(f'control_token_file = "{token}"\n')
    with running(tmp, "--config", config, "--web", f"0.0.0.0:{port}", "--size", "320x180",
                 "--rotate", "600", ready=web_ready(port)) as d:
        d.port = port
        yield d


def request(daemon, method, path, body=None, headers=None, token=TOKEN):
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=15)
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    conn.request(method, path, body=body, headers=h)
    res = conn.getresponse()
    data = res.read()
    conn.close()
    return res, data


def raw(daemon, data: bytes) -> bytes:
    """Bytes sent as they are (no client tidies the path); the answer's bytes."""
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=15) as s:
        s.sendall(data)
        got = b""
        while chunk := s.recv(65536):
            got += chunk
    return got


def status_line(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_the_page_carries_no_token_and_every_request_needs_it(daemon):
    res, body = request(daemon, "GET", "/", token=None)
    assert res.status == 200
    assert TOKEN.encode() not in body and b'content=""' in body
    for path in ("/api/info", "/events", "/stream", "/thumb/" + "0" * 16 + ".jpg"):
        res, body = request(daemon, "GET", path, token=None)
        assert res.status == 401, path
        assert "traceback" not in body.decode().lower()
        res, _ = request(daemon, "GET", path, token="wrong-token-of-the-same-length-xx")
        assert res.status == 403, path
    res, _ = request(daemon, "POST", "/api/next", body=b"[]", token=None)
    assert res.status == 401
    # A cookie is not a token.
    res, _ = request(daemon, "POST", "/api/next", body=b"[]", token=None,
                     headers={"Cookie": f"token={TOKEN}"})
    assert res.status == 401
    res, body = request(daemon, "GET", "/api/info")
    assert res.status == 200 and "coffee_shop" in json.loads(body)["scenes"]


def test_strict_headers_and_no_cross_origin_access(daemon):
    res, _ = request(daemon, "GET", "/", token=None)
    csp = res.getheader("Content-Security-Policy")
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp and "*" not in csp
    assert res.getheader("X-Content-Type-Options") == "nosniff"
    # A preflight from another site gets no CORS grant, so its request is never sent.
    res, _ = request(daemon, "OPTIONS", "/api/scene.set", token=None,
                     headers={"Origin": "https://evil.example",
                              "Access-Control-Request-Method": "POST"})
    assert res.status == 405
    res, _ = request(daemon, "POST", "/api/status", body=b"[]",
                     headers={"Origin": "https://evil.example"})
    assert res.getheader("Access-Control-Allow-Origin") is None


def test_bad_requests_get_4xx_and_one_line(daemon):
    cases = [
        ("GET", "/nothing-here", None, 404),
        ("GET", "/api/status", None, 405),                    # a method is a POST
        ("PUT", "/", b"x", 405),
        ("DELETE", "/api/next", None, 405),
        ("POST", "/api/no.such.method", b"[]", 404),
        ("POST", "/api/shutdown", b"[]", 404),                 # not from a page
        ("POST", "/api/scene.set", b"{not json", 400),
        ("POST", "/api/scene.set", b'{"scene": "x"}', 400),    # params are an array
        ("POST", "/api/scene.set", b"[42]", 400),               # checked as on the socket
        ("POST", "/api/scene.set", b"[]", 400),
        ("POST", "/api/loop.play", b'["../../etc/passwd"]', 400),
        ("POST", "/api/output.add", b'["relative.mkv"]', 400),
        ("POST", "/api/scene.set", b"[" + b" " * (70 * 1024) + b"]", 413),
        ("GET", "/thumb/" + "a" * 16 + ".jpg", None, 404),     # no such loop
    ]
    for method, path, body, code in cases:
        res, data = request(daemon, method, path, body=body)
        assert res.status == code, (method, path, res.status, data)
        assert b"Traceback" not in data and data.count(b"\n") <= 1, data
    res, data = request(daemon, "POST", "/api/scene.set", body=b"[42]")
    assert "scene" in json.loads(data)["error"]


def test_traversal_and_oversized_requests_are_refused(daemon):
    for path in (b"/../../etc/passwd", b"/static/../app.js", b"/%2e%2e/%2e%2e/etc/passwd",
                 b"/thumb/..%2f..%2fetc.jpg", b"/style.css/..", b"//etc/passwd"):
        answer = raw(daemon, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert 400 <= status_line(answer) < 500, (path, answer[:80])
        assert b"root:" not in answer
    assert status_line(raw(daemon, b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n")) == 414
    many = b"".join(b"X-%d: y\r\n" % i for i in range(200))
    assert status_line(raw(daemon, b"GET / HTTP/1.1\r\n" + many + b"\r\n")) == 431
    assert 400 <= status_line(raw(daemon, b"\x16\x03\x01garbage\r\n\r\n")) < 500
    assert 400 <= status_line(raw(daemon, b"POST /api/next HTTP/1.1\r\nAuthorization: "
                                          b"Bearer " + TOKEN.encode() +
                                          b"\r\nContent-Length: -5\r\n\r\n")) < 500
    # After all that the daemon plays on and answers.
    assert daemon.proc.poll() is None
    res, data = request(daemon, "POST", "/api/status", body=b"[]")
    assert res.status == 200 and json.loads(data)["result"]["scene"]["scene"]


def test_another_address_without_a_token_file_is_refused(tmp_path):
    out = lofid("--library", tmp_path / "lib", "run", "--web", "0.0.0.0:8088", "-o", "null",
                "--duration", "1", timeout=60)
    assert out.returncode == 2
    assert "control_token_file" in out.stderr and "Traceback" not in out.stderr
    out = lofid("--library", tmp_path / "lib", "run", "--web", "99999", "-o", "null",
                "--duration", "1", timeout=60)
    assert out.returncode == 2 and "port" in out.stderr


@needs_chromium
def test_the_page_asks_for_the_token_once(daemon):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page()
            base = f"http://127.0.0.1:{daemon.port}"
            page.goto(base + "/")
            page.wait_for_selector("#login", state="visible", timeout=10000)
            page.fill("#token", "not-the-token-at-all-0000")
            page.click("#login button")
            wait_for(lambda: "not this lofid" in page.text_content("#login-error"), 10)
            page.fill("#token", TOKEN)
            page.click("#login button")
            page.wait_for_selector("button.scene", timeout=15000)
            assert page.is_hidden("#login")
            # Kept: a new visit does not ask again.
            page.goto(base + "/")
            page.wait_for_selector("button.scene", timeout=15000)
            assert page.is_hidden("#login")
        finally:
            browser.close()
