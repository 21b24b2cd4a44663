"""Study server: validation and rejection logging, resume, completion codes, export, kill -9 safety, load."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading

import httpx
import pytest
from fastapi.testclient import TestClient

from sag_bench.listening_test.build import build_study
from sag_bench.listening_test.loadtest import LOOPBACK, free_port, run_load, start_server, stop_server
from sag_bench.listening_test.server import completion_code, create_app, export_key
from sag_bench.listening_test.study import Study, read_secret
from tests.listen_synthetic import make_synthetic_run

SYSTEMS = ["groundtruth", "fastsag", "singsong-sc", "randsong"]


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    """4 systems x 6 clips of 1 s; each rater gets 4 clips x 4 systems + 4 gold items = 20 items."""
    root = tmp_path_factory.mktemp("listen")
    make_synthetic_run(root / "run", SYSTEMS, clips=6, seconds=1.0)
    build_study(root / "run", root / "study", per_rater=4, seed=7, audio_format="wav")
    return root / "study"


@pytest.fixture
def fresh_study(study_dir, tmp_path):
    """A copy of the built study with an empty database (each test starts from no ratings)."""
    import shutil

    target = tmp_path / "study"
    shutil.copytree(study_dir, target, ignore=shutil.ignore_patterns("ratings.sqlite*"))
    return target


@pytest.fixture
def client(fresh_study):
    with TestClient(create_app(fresh_study)) as test_client:
        yield test_client


def _session(client, external_id=None):
    response = client.post("/api/sessions", json={"external_id": external_id} if external_id else {})
    assert response.status_code == 200
    data = response.json()
    return data, {"Authorization": f"Bearer {data['token']}"}


def _rows(study_dir, table):
    with sqlite3.connect(study_dir / "ratings.sqlite") as db:
        return db.execute(f"SELECT * FROM {table}").fetchall()


def test_a_session_gets_twenty_items_with_no_system_names(client):
    session, _ = _session(client, "PROLIFIC123")
    assert len(session["items"]) == 20 and len({i["id"] for i in session["items"]}) == 20
    assert all(set(item) == {"id", "audio", "prompt"} for item in session["items"])
    assert not any(name in client.get("/api/study").text for name in SYSTEMS)
    assert sum(1 for item in session["items"] if item["prompt"]) == 1  # the trap


def test_valid_rating_is_stored_once_and_resubmission_is_idempotent(client, fresh_study):
    session, headers = _session(client)
    url = f"/api/sessions/{session['rater_id']}/ratings"
    item = session["items"][0]["id"]
    first = client.post(url, json={"item_id": item, "score": 4, "comment": "nice"}, headers=headers)
    again = client.post(url, json={"item_id": item, "score": 4, "comment": "nice"}, headers=headers)
    assert first.json() == {"stored": True, "answered": 1, "total": 20}
    assert again.status_code == 200 and again.json()["stored"] is False
    assert [(r[1], r[2], r[3]) for r in _rows(fresh_study, "ratings")] == [(item, 4, "nice")]
    assert client.get(f"/api/sessions/{session['rater_id']}", headers=headers).json()["answers"] == {item: 4}


MALFORMED = [
    ("score 6", lambda s, i: {"item_id": i, "score": 6}, 422),
    ("score 0", lambda s, i: {"item_id": i, "score": 0}, 422),
    ("score 3.5", lambda s, i: {"item_id": i, "score": 3.5}, 422),
    ("score as text", lambda s, i: {"item_id": i, "score": "4"}, 422),
    ("score true", lambda s, i: {"item_id": i, "score": True}, 422),
    ("no score", lambda s, i: {"item_id": i}, 422),
    ("extra field", lambda s, i: {"item_id": i, "score": 3, "system": "fastsag"}, 422),
    ("unknown item", lambda s, i: {"item_id": "i0000000000", "score": 3}, 404),
    ("item id traversal", lambda s, i: {"item_id": "../study.json", "score": 3}, 422),
    ("oversized comment", lambda s, i: {"item_id": i, "score": 3, "comment": "x" * 2001}, 422),
]


@pytest.mark.parametrize("name,body,status", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_rating_is_refused_logged_and_changes_nothing(client, fresh_study, name, body, status):
    session, headers = _session(client)
    item = session["items"][0]["id"]
    response = client.post(f"/api/sessions/{session['rater_id']}/ratings", json=body(session, item), headers=headers)
    assert response.status_code == status and "error" in response.json()
    assert _rows(fresh_study, "ratings") == []
    assert [r[5] for r in _rows(fresh_study, "rejections")] == [status]


def test_other_raters_id_token_and_items_are_refused(client, fresh_study):
    alice, alice_headers = _session(client)
    bob, bob_headers = _session(client)
    only_alice = next(i["id"] for i in alice["items"] if i["id"] not in {b["id"] for b in bob["items"]})
    url = f"/api/sessions/{bob['rater_id']}/ratings"
    shared = bob["items"][0]["id"]
    assert client.post(url, json={"item_id": shared, "score": 3}, headers=alice_headers).status_code == 403
    assert client.post(url, json={"item_id": shared, "score": 3}).status_code == 401
    assert client.post(url, json={"item_id": only_alice, "score": 3}, headers=bob_headers).status_code == 403
    assert client.get(f"/api/sessions/{bob['rater_id']}", headers=alice_headers).status_code == 403
    assert client.post("/api/sessions/not-a-rater/ratings", json={"item_id": shared, "score": 3},
                       headers=bob_headers).status_code == 404
    assert _rows(fresh_study, "ratings") == []
    assert [r[5] for r in _rows(fresh_study, "rejections")] == [403, 401, 403, 403, 404]


def test_oversized_body_is_refused_with_413(client, fresh_study):
    session, headers = _session(client)
    response = client.post(f"/api/sessions/{session['rater_id']}/ratings", content=b"{" + b" " * 20_000 + b"}",
                           headers={**headers, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert _rows(fresh_study, "ratings") == [] and _rows(fresh_study, "rejections")[0][5] == 413


@pytest.mark.parametrize("path", ["/audio/..%2Fstudy.json", "/audio/%2e%2e%2fsecret.key", "/static/..%2Fserver.py",
                                  "/static/..%2F..%2Fstudy.py", "/audio/ratings.sqlite", "/study.json",
                                  "/secret.key", "/audio/0123456789abcdef.wav"])
def test_paths_outside_the_served_files_are_404_and_logged(client, fresh_study, path):
    response = client.get(path)
    assert response.status_code == 404
    assert read_secret(fresh_study).hex() not in response.text and "sag-bench-study" not in response.text
    assert _rows(fresh_study, "rejections")[-1][5] == 404


def test_real_audio_and_form_are_served_with_range_support(client):
    session, _ = _session(client)
    audio = client.get("/" + session["items"][0]["audio"], headers={"Range": "bytes=0-3"})
    assert audio.status_code == 206 and audio.content == b"RIFF"
    assert "app.js" in client.get("/").text and client.get("/static/app.js").status_code == 200


def test_completion_code_only_after_every_item_and_verifiable(client, fresh_study):
    session, headers = _session(client)
    base = f"/api/sessions/{session['rater_id']}"
    assert client.post(f"{base}/complete", headers=headers).status_code == 409
    for item in session["items"]:
        assert client.post(f"{base}/ratings", json={"item_id": item["id"], "score": 3}, headers=headers).status_code == 200
    code = client.post(f"{base}/complete", headers=headers).json()["completion_code"]
    assert code == completion_code(read_secret(fresh_study), session["rater_id"]) and len(code) == 10
    assert client.get(base, headers=headers).json()["completion_code"] == code


def test_headphone_check_is_scored_on_the_server(client, fresh_study):
    session, headers = _session(client)
    answers = [t["answer"] for t in Study.open(fresh_study).spec["headphone_check"]["trials"]]
    wrong_first = [answers[0] % 3 + 1] + answers[1:]
    result = client.post(f"/api/sessions/{session['rater_id']}/headphone", json={"answers": wrong_first},
                         headers=headers)
    assert result.json() == {"correct": 2, "total": 3}
    assert client.get(f"/api/sessions/{session['rater_id']}", headers=headers).json()["headphone_done"] is True


def test_export_needs_the_key_and_lists_every_rating_with_its_system(client, fresh_study):
    session, headers = _session(client, "worker-1")
    for item in session["items"][:3]:
        client.post(f"/api/sessions/{session['rater_id']}/ratings", json={"item_id": item["id"], "score": 5,
                    "comment": "=cmd()"}, headers=headers)
    assert client.get("/api/export.csv?key=wrong").status_code == 403
    key = export_key(read_secret(fresh_study))
    lines = client.get(f"/api/export.csv?key={key}").text.strip().splitlines()
    assert len(lines) == 4 and lines[0].startswith("rater_id,rater_index,external_id,item_id,kind,system,clip")
    assert all(",'=cmd()," in line for line in lines[1:])  # spreadsheet formulas neutralised
    exported = client.get(f"/api/export.json?key={key}").json()
    assert len(exported["ratings"]) == 3 and exported["raters"][0]["external_id"] == "worker-1"
    assert {r["system"] for r in exported["ratings"]} <= set(SYSTEMS) | {None}


def test_kill_9_mid_study_loses_no_acknowledged_rating(fresh_study, tmp_path):
    port = free_port()
    base = f"http://{LOOPBACK}:{port}"
    server = start_server(fresh_study, port, tmp_path / "server.log")
    acknowledged: dict[tuple[str, str], int] = {}
    enough = threading.Event()

    def rate_until_killed():
        with httpx.Client(base_url=base, timeout=5.0) as http:
            for rater in range(10):
                session = http.post("/api/sessions", json={}).json()
                headers = {"Authorization": f"Bearer {session['token']}"}
                for k, item in enumerate(session["items"]):
                    try:
                        response = http.post(f"/api/sessions/{session['rater_id']}/ratings",
                                             json={"item_id": item["id"], "score": 1 + (k + rater) % 5},
                                             headers=headers)
                    except httpx.TransportError:
                        return
                    if response.status_code == 200:
                        acknowledged[(session["rater_id"], item["id"])] = 1 + (k + rater) % 5
                    if len(acknowledged) >= 30:
                        enough.set()

    writer = threading.Thread(target=rate_until_killed)
    try:
        writer.start()
        assert enough.wait(60)
        os.kill(server.pid, signal.SIGKILL)  # while the writer is still sending
        server.wait()
        writer.join(30)
        assert server.returncode == -signal.SIGKILL
        server = start_server(fresh_study, port, tmp_path / "server.log")
        stored = {(r[0], r[1]): r[2] for r in _rows(fresh_study, "ratings")}
        lost = {key for key in acknowledged if stored.get(key) != acknowledged[key]}
        print(f"\nkill -9 after {len(acknowledged)} acknowledged ratings: {len(stored)} stored after restart, "
              f"{len(lost)} lost")
        assert len(acknowledged) >= 30 and not lost
        assert len(stored) - len(acknowledged) <= 1  # at most the one in flight (committed, not yet acknowledged)
    finally:
        writer.join(5)
        stop_server(server)


def test_fifty_raters_at_once_lose_and_duplicate_nothing(fresh_study, tmp_path):
    port = free_port()
    server = start_server(fresh_study, port, tmp_path / "server.log")
    try:
        report = run_load(port, raters=50, answers=20, resubmit=True, seed=1)
    finally:
        stop_server(server)
    print("\n" + report.summary())
    rows = _rows(fresh_study, "ratings")
    stored = {(r[0], r[1]): r[2] for r in rows}
    assert len(report.acknowledged) == 50 * 20
    assert report.server_errors == 0 and report.transport_errors == 0 and report.client_errors == 0
    assert report.transport_retries <= 5  # a retried request is sent again by the form too; should be ~never
    assert report.resubmits_ok == 1000 and report.resubmits_stored_again == 0
    assert len(rows) == len(stored) == 1000  # no duplicates
    assert all(stored.get(key) == score for key, score in report.acknowledged.items())  # none lost or altered
    assert len(_rows(fresh_study, "raters")) == 50
