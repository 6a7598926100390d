"""The browser the container tests drive Flower's pages with."""

from __future__ import annotations

from pathlib import Path

#: Debian's chromium, driven by Playwright (which never downloads a browser of its own here).
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
