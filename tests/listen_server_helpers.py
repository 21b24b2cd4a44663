"""Run a study server as a separate process, put it under load from many simulated raters at once, or hold many
stalled connections open against it.

Used by the listening-test tests (crash safety, concurrency, abuse) and by ``bench/listen_load.py``. Loopback only.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

LOOPBACK = "127.0.0.1"
READY_TIMEOUT_S = 30.0
# A request that fails in transport is sent again, as the web form does (answers are idempotent).
TRANSPORT_RETRIES = 3


def free_port() -> int:
    """A TCP port on the loopback interface that is free right now."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def serve_command(study_dir: str | Path, port: int, *extra: str) -> list[str]:
    """The command line of ``sag-bench listen serve`` on the loopback interface (the console script's entry point;
    ``python -m sag_bench.cli`` would define a second ``UserError`` class under ``__main__``)."""
    return [sys.executable, "-c", "from sag_bench.cli import main; raise SystemExit(main())", "listen", "serve",
            str(study_dir), "--host", LOOPBACK, "--port", str(port), *extra]


def start_server(study_dir: str | Path, port: int, log_path: str | Path) -> subprocess.Popen:
    """Start ``sag-bench listen serve`` on the loopback interface and wait until it answers."""
    log = open(log_path, "ab")
    process = subprocess.Popen(serve_command(study_dir, port), stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    log.close()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}; see {log_path}")
        probe = http.client.HTTPConnection(LOOPBACK, port, timeout=1.0)
        try:
            probe.request("GET", "/api/study")
            if probe.getresponse().status == 200:
                return process
        except (OSError, http.client.HTTPException):
            time.sleep(0.1)
        finally:
            probe.close()
    process.kill()
    raise RuntimeError(f"server did not answer within {READY_TIMEOUT_S} s; see {log_path}")


def stop_server(process: subprocess.Popen) -> None:
    """Terminate a server started by :func:`start_server` and reap it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class LoadReport:
    """What the simulated raters saw: acknowledged answers, refusals, errors and latencies."""

    raters: int
    answers_per_rater: int
    acknowledged: dict[tuple[str, str], int] = field(default_factory=dict)
    resubmits_ok: int = 0
    resubmits_stored_again: int = 0
    server_errors: int = 0
    client_errors: int = 0
    transport_retries: int = 0
    transport_errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        """One paragraph with the figures."""
        lat = np.array(self.latencies_ms) if self.latencies_ms else np.zeros(1)
        return (f"{self.raters} raters x {self.answers_per_rater} answers: {len(self.acknowledged)} acknowledged, "
                f"{self.resubmits_ok} idempotent re-submits accepted ({self.resubmits_stored_again} stored twice), "
                f"{self.server_errors} server errors, {self.client_errors} refusals, "
                f"{self.transport_retries} transport retries, {self.transport_errors} transport failures, in {self.seconds:.2f} s "
                f"({len(self.latencies_ms) / max(self.seconds, 1e-9):.0f} requests/s); latency ms "
                f"p50 {np.percentile(lat, 50):.1f}, p95 {np.percentile(lat, 95):.1f}, max {lat.max():.1f}")


class _Connection:
    """One rater's persistent HTTP/1.1 connection (stdlib ``http.client``: little client CPU per request)."""

    def __init__(self, port: int, report: LoadReport, lock: threading.Lock) -> None:
        self.port, self.report, self.lock = port, report, lock
        self.http = http.client.HTTPConnection(LOOPBACK, port, timeout=60)

    def call(self, method: str, path: str, body: dict, headers: dict[str, str] | None = None) -> tuple[int, dict] | None:
        """Send a JSON request (resent after a transport failure); (status, JSON body) or None if it never got through."""
        payload = json.dumps(body).encode()
        start = time.perf_counter()
        for attempt in range(TRANSPORT_RETRIES + 1):
            try:
                self.http.request(method, path, payload, {"Content-Type": "application/json", **(headers or {})})
                response = self.http.getresponse()
                status, data = response.status, json.loads(response.read() or b"{}")
                break
            except (OSError, http.client.HTTPException):
                self.http.close()
                self.http = http.client.HTTPConnection(LOOPBACK, self.port, timeout=60)
                with self.lock:
                    self.report.transport_retries += attempt < TRANSPORT_RETRIES
        else:
            with self.lock:
                self.report.transport_errors += 1
            return None
        with self.lock:
            self.report.latencies_ms.append((time.perf_counter() - start) * 1000)
            self.report.server_errors += status >= 500
            self.report.client_errors += 400 <= status < 500
        return status, data


def _rater(port: int, number: int, answers: int, resubmit: bool, seed: int, report: LoadReport,
           lock: threading.Lock, start: threading.Barrier) -> None:
    rng = np.random.default_rng([seed, number])
    connection = _Connection(port, report, lock)
    start.wait()
    created = connection.call("POST", "/api/sessions", {"external_id": f"load-{number}"})
    if created is None or created[0] != 200:
        return
    session = created[1]
    headers = {"Authorization": f"Bearer {session['token']}"}
    path = f"/api/sessions/{session['rater_id']}/ratings"
    for item in session["items"][:answers]:
        body = {"item_id": item["id"], "score": int(rng.integers(1, 6)), "comment": f"rater {number}", "plays": 1}
        response = connection.call("POST", path, body, headers)
        if response is not None and response[0] == 200:  # stored now, or by a resent first attempt
            with lock:
                report.acknowledged[(session["rater_id"], item["id"])] = body["score"]
        if resubmit:
            again = connection.call("POST", path, body, headers)
            if again is not None and again[0] == 200:
                with lock:
                    report.resubmits_ok += 1
                    report.resubmits_stored_again += int(again[1]["stored"])
    connection.http.close()


def run_load(port: int, raters: int = 50, answers: int = 20, resubmit: bool = True, seed: int = 0) -> LoadReport:
    """``raters`` simulated raters at once against 127.0.0.1:``port``, each answering ``answers`` items (and
    re-sending each answer once), one thread and one keep-alive connection per rater."""
    report = LoadReport(raters=raters, answers_per_rater=answers)
    lock, barrier = threading.Lock(), threading.Barrier(raters)
    threads = [threading.Thread(target=_rater, args=(port, k, answers, resubmit, seed, report, lock, barrier))
               for k in range(raters)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report.seconds = time.perf_counter() - start
    return report


def stall_connections(port: int, count: int, partial_every: int = 2) -> list[socket.socket]:
    """Open ``count`` connections that never complete a request: every ``partial_every``-th sends half a request
    (request line and one header), the others send nothing. Returns the open sockets (close them when done)."""
    sockets = []
    for number in range(count):
        stalled = socket.create_connection((LOOPBACK, port), timeout=5.0)
        if number % partial_every == 0:
            stalled.sendall(b"POST /api/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        sockets.append(stalled)
    return sockets


def closed_by_server(sockets: list[socket.socket]) -> int:
    """How many of ``sockets`` the server has closed (a read returns end-of-file or a reset at once)."""
    closed = 0
    for stalled in sockets:
        stalled.setblocking(False)
        try:
            closed += stalled.recv(1) == b""
        except BlockingIOError:
            pass
        except ConnectionResetError:
            closed += 1
    return closed
