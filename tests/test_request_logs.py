"""Request logs keep the path and drop the query string (a search may hold a patient's name)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from app.logs import strip_query

pytestmark = pytest.mark.sqlite_subset
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_strip_query_keeps_method_path_and_protocol():
    assert strip_query("GET /patients/list/?_flt_0_name=Ann%20Lee HTTP/1.1") == (
        "GET /patients/list/ HTTP/1.1"
    )
    assert strip_query("\x1b[32mGET /x?q=1 HTTP/1.1\x1b[0m") == "\x1b[32mGET /x HTTP/1.1\x1b[0m"


def test_development_server_log_has_no_query_string(database_url):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "CLINICDESK_ENV": "test", "DATABASE_URL": database_url}
    server = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "run", "run", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        urllib.request.urlopen(f"http://127.0.0.1:{port}/login/?next=/staff/list/%3Fq%3DSecretname")
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=10)
    assert "GET /login/ HTTP/1.1" in output
    assert "Secretname" not in output
