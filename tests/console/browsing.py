"""Helpers for the console's browser tests: Debian's headless Chromium against a live Daphne.

The fixtures (`live_server_url`, `browser`, `browser_store`, `page`) are in conftest.py.
"""
from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from tests.console.conftest import CHROMIUM, PASSWORD

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
LIVE_WITHIN_MS = 2000

BROWSER_TESTS = [
    pytest.mark.browser,
    # The server's threads must see what the test writes: real commits, flushed after.
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Chromium is not installed "
                       "(`make test` installs Debian's chromium package)"),
]


def off_the_loop(function, *args, **kwargs):
    """Run `function` in a plain thread: ingestion's broadcast uses async_to_sync, which
    refuses the thread where Playwright's event loop runs."""
    from django.db import connection

    outcome = {}

    def work():
        try:
            outcome["value"] = function(*args, **kwargs)
        except BaseException as exc:  # re-raised in the test's thread
            outcome["error"] = exc
        finally:
            connection.close()

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def log_in(page, username: str = "finance") -> None:
    page.goto("/console/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/console/")
