"""Headless Chromium (Debian's package, installed by `make setup`) as the person looking at `agl view`, and a small
DOM reader for what it rendered (the standard library's html.parser; no extra test dependency)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from agentlightning.serving import find_free_port

__all__ = ["Element", "agl_server", "browse", "chromium_or_fail", "screenshot"]

# the flags the machine notes give for this closed network (no background connections, no sandbox as root)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars"]


def chromium_or_fail() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("Chromium is not installed, and the agl view tests drive it as a person's browser. Fix: `make "
                    "setup` (it runs `apt-get install -y chromium`), or install Debian's chromium package by hand")
    return path


def _run(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="agl-chromium-") as profile:
        return subprocess.run([chromium_or_fail(), *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout)


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element] = field(default_factory=list)
    parts: list[str | Element] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The text a person reads in this element (entities decoded, tags gone)."""
        return "".join(p if isinstance(p, str) else p.text for p in self.parts)

    def find_all(self, tag: str | None = None, cls: str | None = None, id: str | None = None) -> list[Element]:
        found = []
        for child in self.children:
            if ((tag is None or child.tag == tag) and (cls is None or cls in child.attrs.get("class", "").split())
                    and (id is None or child.attrs.get("id") == id)):
                found.append(child)
            found.extend(child.find_all(tag, cls, id))
        return found

    def one(self, tag: str | None = None, cls: str | None = None, id: str | None = None) -> Element:
        found = self.find_all(tag, cls, id)
        assert found, f"no <{tag or '*'} class={cls} id={id}> on the page"
        return found[0]


class _Builder(HTMLParser):
    _VOID = {"meta", "br", "input", "img", "link", "hr", "col", "source", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(element)
        self.stack[-1].parts.append(element)
        if tag not in self._VOID:
            self.stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].parts.append(data)


def browse(url: str) -> Element:
    """Load `url` in headless Chromium and return the DOM it rendered (after scripts, if the page had any)."""
    result = _run(["--virtual-time-budget=2000", "--dump-dom", url])
    assert result.returncode == 0 and "<html" in result.stdout, f"Chromium failed on {url}: {result.stderr[-2000:]}"
    builder = _Builder()
    builder.feed(result.stdout)
    return builder.root


def screenshot(url: str, path: Path, width: int = 1280, height: int = 1400) -> Path:
    result = _run([f"--window-size={width},{height}", f"--screenshot={path}", url])
    assert result.returncode == 0 and path.is_file(), f"no screenshot of {url}: {result.stderr[-2000:]}"
    return path


@contextlib.contextmanager
def agl_server(*args: str) -> Iterator[str]:
    """`agl <args> --port PORT` (e.g. `view OUTPUT_DIR`, `store --backend sqlite ...`) as a process; yields its base URL
    once `/health` answers (its output in the failure when it exits or stays silent for 60 s); stops it after."""
    port = find_free_port()
    proc = subprocess.Popen([sys.executable, "-m", "agentlightning.cli.main", *args, "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.stdout else ""
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)
