"""Run a study server as a separate process and put it under load from many simulated raters at once.

Used by the tests (crash safety, concurrency) and by ``bench/listen_load.py``. Loopback only by design.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
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


def start_server(study_dir: str | Path, port: int, log_path: str | Path) -> subprocess.Popen:
    """Start ``sag-bench listen serve`` on the loopback interface and wait until it answers."""
    log = open(log_path, "ab")
    process = subprocess.Popen([sys.executable, "-m", "sag_bench.cli", "listen", "serve", str(study_dir),
                                "--host", LOOPBACK, "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    log.close()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}; see {log_path}")
        try:
            if httpx.get(f"http://{LOOPBACK}:{port}/api/study", timeout=1.0).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
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


async def _rater(client: httpx.AsyncClient, number: int, answers: int, resubmit: bool, seed: int,
                 report: LoadReport) -> None:
    rng = np.random.default_rng([seed, number])

    async def call(method: str, url: str, **kwargs) -> httpx.Response | None:
        start = time.perf_counter()
        for attempt in range(TRANSPORT_RETRIES + 1):
            try:
                response = await client.request(method, url, **kwargs)
                break
            except httpx.TransportError:
                report.transport_retries += attempt < TRANSPORT_RETRIES
        else:
            report.transport_errors += 1
            return None
        report.latencies_ms.append((time.perf_counter() - start) * 1000)
        if response.status_code >= 500:
            report.server_errors += 1
        elif response.status_code >= 400:
            report.client_errors += 1
        return response

    created = await call("POST", "/api/sessions", json={"external_id": f"load-{number}"})
    if created is None or created.status_code != 200:
        return
    session = created.json()
    headers = {"Authorization": f"Bearer {session['token']}"}
    url = f"/api/sessions/{session['rater_id']}/ratings"
    for item in session["items"][:answers]:
        body = {"item_id": item["id"], "score": int(rng.integers(1, 6)), "comment": f"rater {number}"}
        response = await call("POST", url, json=body, headers=headers)
        if response is not None and response.status_code == 200:  # stored now, or by a retried first attempt
            report.acknowledged[(session["rater_id"], item["id"])] = body["score"]
        if resubmit:
            again = await call("POST", url, json=body, headers=headers)
            if again is not None and again.status_code == 200:
                report.resubmits_ok += 1
                report.resubmits_stored_again += int(again.json()["stored"])


async def _run(base_url: str, raters: int, answers: int, resubmit: bool, seed: int) -> LoadReport:
    report = LoadReport(raters=raters, answers_per_rater=answers)
    limits = httpx.Limits(max_connections=raters, max_keepalive_connections=raters)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60.0) as client:
        start = time.perf_counter()
        await asyncio.gather(*(_rater(client, k, answers, resubmit, seed, report) for k in range(raters)))
        report.seconds = time.perf_counter() - start
    return report


def run_load(base_url: str, raters: int = 50, answers: int = 20, resubmit: bool = True, seed: int = 0) -> LoadReport:
    """``raters`` simulated raters at once, each answering ``answers`` items (and re-sending each once)."""
    if not base_url.startswith(f"http://{LOOPBACK}:"):
        raise ValueError(f"load tests run against {LOOPBACK} only (got {base_url})")
    return asyncio.run(_run(base_url, raters, answers, resubmit, seed))
