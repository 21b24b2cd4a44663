"""The study web server (FastAPI): serves the form and the audio, stores every answer the moment it is given.

Routes (all JSON unless noted)::

    GET  /                                 the form (index.html); /static/{index.html,style.css,app.js}
    GET|HEAD /audio/{name}                 a stimulus, by its opaque name (only names the study lists)
    GET  /api/study                        question, scale, instructions, check sounds (no systems, no answers)
    POST /api/sessions                     {external_id?} -> {rater_id, token, items, answers, ...}; an external id
                                           that already has a session gets that session back
    GET  /api/sessions/{rater}             resume (Authorization: Bearer <token>)
    POST /api/sessions/{rater}/headphone   {answers: [1-3, ...]} -> {correct, total} (the first result counts)
    POST /api/sessions/{rater}/ratings     {item_id, score 1-5, plays >= 1, comment?, listen_seconds?}
    POST /api/sessions/{rater}/complete    -> {completion_code} once the headphone check and every item are done
    GET  /api/export.csv|json?key=KEY      every rating (KEY is printed by ``listen serve``)

Every refused request (4xx) is answered with ``{"error": reason}`` and counted by (status, reason) in memory; the
counts reach the database in batches from a background thread (never one write per refusal). When the database
file is deleted or replaced under the running server, every API call answers 503 and nothing is acknowledged.
Audio is served without validators that could reveal build order (a constant Last-Modified, the opaque name as
ETag).
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route signatures' annotations at runtime,
# including dependencies defined inside create_app.
import base64
import hashlib
import hmac
import logging
import re
import resource
import threading
import time
from collections import Counter, deque
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, AsyncIterator

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sag_bench.listening_test.db import ConflictError, NotAssignedError, Rater, RatingStore, StoreError
from sag_bench.listening_test.export import rating_rows, rows_to_csv
from sag_bench.listening_test.guard import guarded_protocol
from sag_bench.listening_test.study import Study, read_secret

LOG = logging.getLogger("sag_bench.listen")
STATIC_FILES = {"index.html": "text/html", "style.css": "text/css", "app.js": "text/javascript"}
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
EXTERNAL_ID_PATTERN = r"^[A-Za-z0-9_.:@-]{1,128}$"
AUDIO_NAME = re.compile(r"^[0-9a-f]{16}\.(mp3|ogg|wav)$")
COMPLETION_CODE_CHARS = 10
TOKEN_CHARS = 32
MAX_LISTEN_SECONDS = 3600.0
# Audio validators carry nothing about the files: a fixed date, and the (already opaque) name as entity tag.
AUDIO_LAST_MODIFIED = "Thu, 01 Jan 1970 00:00:00 GMT"
AUDIO_CACHE_CONTROL = "private, max-age=86400"
# Server limits; a study's ``server`` section overrides any of them.
DEFAULT_LIMITS = {
    "max_body_bytes": 8192,
    "max_comment_chars": 2000,
    "max_raters": 5000,                    # sessions the study hands out in all
    "max_new_sessions_per_client": 200,    # new sessions per client address per window (a lab shares one address)
    "registration_window_seconds": 3600,
    "max_connections": 256,                # beyond this, a new connection evicts the longest-idle one
    "header_seconds": 10,                  # a connection must complete a request this soon after opening
    # Longer than a rater's pause between answers, so a browser rarely reuses a connection the server just closed.
    "keep_alive_seconds": 75,
}
REJECTION_FLUSH_SECONDS = 2.0
REJECTION_MAX_KEYS = 256
# Ids and paths inside a refusal reason are folded, so the counted reasons stay a small set.
_VARIABLE_PART = re.compile(r"[A-Za-z0-9_.:@/%-]{9,}")
# Characters refused in comments: lone surrogates (not encodable) and control characters other than tab/newline.
_BAD_TEXT = re.compile(r"[\ud800-\udfff\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _clean_text(value: str) -> str:
    found = _BAD_TEXT.search(value)
    if found:
        raise ValueError(f"contains a forbidden character (U+{ord(found.group()):04X})")
    return value


class SessionRequest(BaseModel):
    """Body of POST /api/sessions: an optional crowd-platform participant id."""

    model_config = ConfigDict(extra="forbid")
    external_id: Annotated[str, Field(pattern=EXTERNAL_ID_PATTERN)] | None = None


class RatingRequest(BaseModel):
    """Body of POST .../ratings: one answer (integer score 1-5, after at least one full play)."""

    model_config = ConfigDict(extra="forbid")
    item_id: Annotated[str, Field(pattern=ID_PATTERN)]
    score: Annotated[StrictInt, Field(ge=1, le=5)]
    plays: Annotated[StrictInt, Field(ge=1, le=1000)]
    comment: Annotated[str, AfterValidator(_clean_text)] = ""
    listen_seconds: Annotated[float, Field(ge=0, le=MAX_LISTEN_SECONDS)] | None = None


class HeadphoneRequest(BaseModel):
    """Body of POST .../headphone: the chosen softest tone (1-3) per trial."""

    model_config = ConfigDict(extra="forbid")
    answers: list[Annotated[StrictInt, Field(ge=1, le=3)]]


class RejectionLog:
    """Refused requests counted in memory by (status, reason); :meth:`flush` adds the counts to the database.

    A log line is written for the 1st, 2nd, 4th, 8th, ... refusal of each kind, with the path escaped, so a flood
    neither grows the log without bound nor forges log lines.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[tuple[int, str], tuple[int, float, float]] = {}
        self.totals: Counter[tuple[int, str]] = Counter()

    def record(self, status: int, reason: str, method: str, path: str) -> None:
        """Count one refusal (cheap: no I/O besides a sampled log line)."""
        key = (status, _VARIABLE_PART.sub("<id>", reason)[:160])
        now = time.time()
        with self._lock:
            if key not in self.totals and len(self.totals) >= REJECTION_MAX_KEYS:
                key = (status, "(other reasons)")
            count, first, _ = self._pending.get(key, (0, now, now))
            self._pending[key] = (count + 1, first, now)
            self.totals[key] += 1
            seen = self.totals[key]
        if seen & (seen - 1) == 0:
            LOG.warning("%d %s %s: %s (refusal no. %d of this kind)", status, ascii(method)[1:-1][:10],
                        ascii(path)[1:-1][:200], ascii(reason)[1:-1][:300], seen)

    def by_status(self) -> Counter[int]:
        """Refusals so far per status code."""
        counts: Counter[int] = Counter()
        with self._lock:
            for (status, _), n in self.totals.items():
                counts[status] += n
        return counts

    def flush(self, store: RatingStore) -> None:
        """Add the counts gathered since the last flush to the database (one transaction)."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if pending:
            try:
                store.add_rejection_counts(pending)
            except StoreError as error:
                LOG.error("%s", error)


class ClientLimiter:
    """At most ``limit`` events per client in any ``window`` seconds (sliding window, memory bounded)."""

    MAX_CLIENTS = 100_000

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self._lock = threading.Lock()
        self._events: dict[str, deque[float]] = {}

    def allow(self, client: str) -> bool:
        """Count an event for ``client`` and say whether it is within the limit."""
        now = time.monotonic()
        with self._lock:
            if len(self._events) >= self.MAX_CLIENTS:
                self._events = {c: q for c, q in self._events.items() if q and now - q[-1] < self.window}
            events = self._events.setdefault(client, deque())
            while events and now - events[0] >= self.window:
                events.popleft()
            if len(events) >= self.limit:
                return False
            events.append(now)
            return True


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``limit`` bytes (declared or streamed) with 413."""

    def __init__(self, app: ASGIApp, limit: int, rejections: RejectionLog) -> None:
        self.app, self.limit, self.rejections = app, limit, rejections

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, reason: str) -> None:
        self.rejections.record(413, reason, scope.get("method", ""), scope.get("path", ""))
        await JSONResponse({"error": reason}, status_code=413)(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(scope, receive, send, f"request body over {self.limit} bytes")
            return
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.limit:
                await self._refuse(scope, receive, send, f"request body over {self.limit} bytes")
                return
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def completion_code(secret: bytes, rater_id: str) -> str:
    """The code a rater gets for finishing (checkable later from the secret; unguessable without it)."""
    digest = hmac.new(secret, f"complete/{rater_id}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode()[:COMPLETION_CODE_CHARS]


def export_key(secret: bytes) -> str:
    """The key that opens the export endpoints."""
    return hmac.new(secret, b"export", hashlib.sha256).hexdigest()[:24]


def session_token(secret: bytes, rater_id: str) -> str:
    """The rater's bearer token (derived from the secret, so a returning crowd worker can be given it again)."""
    digest = hmac.new(secret, f"token/{rater_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()[:TOKEN_CHARS]


def study_limits(study: Study) -> dict[str, Any]:
    """The server limits of ``study``: :data:`DEFAULT_LIMITS` updated with the study's ``server`` section."""
    return {**DEFAULT_LIMITS, **study.spec.get("server", {})}


def create_app(study_dir: str | Path, allow_empty_database: bool = False) -> FastAPI:
    """The web app for the study at ``study_dir`` (opens or creates its ``ratings.sqlite``).

    Raises :class:`~sag_bench.listening_test.db.StoreError` when the database cannot be opened, or is missing or
    empty although the study has issued sessions before (unless ``allow_empty_database``).
    """
    study = Study.open(study_dir)
    secret = read_secret(study.root)
    store = RatingStore(study.database, allow_empty=allow_empty_database)
    limits = study_limits(study)
    rejections = RejectionLog()
    registrations = ClientLimiter(int(limits["max_new_sessions_per_client"]),
                                  float(limits["registration_window_seconds"]))
    static = resources.files("sag_bench.listening_test").joinpath("static")
    audio_names = {Path(p).name for p in [i.audio for i in study.items.values()] + [study.spec["calibration_audio"]]
                   + [t["audio"] for t in study.spec["headphone_check"]["trials"]]}
    headphone_answers = [t["answer"] for t in study.spec["headphone_check"]["trials"]]

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()

        def flush_periodically() -> None:
            while not stop.wait(REJECTION_FLUSH_SECONDS):
                rejections.flush(store)

        flusher = threading.Thread(target=flush_periodically, name="rejection-counts", daemon=True)
        flusher.start()
        yield
        stop.set()
        flusher.join()
        rejections.flush(store)
        store.close()

    app = FastAPI(title="sag-bench listening test", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.state.store = store
    app.state.study = study
    app.state.rejections = rejections
    app.add_middleware(BodyLimit, limit=int(limits["max_body_bytes"]), rejections=rejections)

    def refuse(request: Request, status: int, reason: str) -> JSONResponse:
        rejections.record(status, reason, request.method, request.url.path)
        return JSONResponse({"error": reason}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return refuse(request, error.status_code, str(error.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}"
                             for e in error.errors())
        return refuse(request, 422, f"invalid request ({problems})")

    @app.exception_handler(StoreError)
    async def database_gone(request: Request, error: StoreError) -> JSONResponse:
        LOG.error("503 %s %s: %s", request.method, ascii(request.url.path)[1:-1][:200], error)
        return JSONResponse({"error": "the study's database is unavailable; your answer was NOT saved"},
                            status_code=503)

    def authorised(rater_id: str, authorization: Annotated[str | None, Header()] = None) -> Rater:
        if not authorization or not authorization.startswith("Bearer "):
            raise HTTPException(401, "missing rater token (Authorization: Bearer ...)")
        rater = store.rater(rater_id) if re.match(ID_PATTERN, rater_id) else None
        # One answer for an unknown id and a wrong token: the response does not reveal which ids exist.
        if rater is None or not rater.owns(authorization.removeprefix("Bearer ")):
            raise HTTPException(403, "no session with this id and token")
        return rater

    def session(rater: Rater) -> dict[str, Any]:
        answers = store.answers(rater.id)
        done = rater.completed is not None
        return {"rater_id": rater.id, "token": session_token(secret, rater.id),
                "items": [study.items[i].public() for i in rater.items], "answers": answers,
                "headphone_done": rater.headphone is not None,
                "completion_code": completion_code(secret, rater.id) if done else None}

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(str(static.joinpath("index.html")), media_type="text/html",
                            headers={"Cache-Control": "no-cache"})

    @app.get("/static/{name}", include_in_schema=False)
    def static_file(name: str) -> FileResponse:
        if name not in STATIC_FILES:
            raise HTTPException(404, f"no static file {name[:64]}")
        return FileResponse(str(static.joinpath(name)), media_type=STATIC_FILES[name],
                            headers={"Cache-Control": "no-cache"})

    @app.api_route("/audio/{name}", methods=["GET", "HEAD"], include_in_schema=False)
    def audio(name: str) -> FileResponse:
        if not AUDIO_NAME.match(name) or name not in audio_names:
            raise HTTPException(404, f"no audio {name[:64]}")
        return FileResponse(study.root / "audio" / name, headers={
            "Cache-Control": AUDIO_CACHE_CONTROL, "Last-Modified": AUDIO_LAST_MODIFIED,
            "ETag": f'"{name.split(".")[0]}"'})

    @app.get("/api/study")
    def study_info() -> dict[str, Any]:
        store.check()
        return study.public()

    @app.post("/api/sessions")
    def new_session(body: SessionRequest, request: Request) -> dict[str, Any]:
        known = store.rater_by_external_id(body.external_id) if body.external_id else None
        if known is not None:
            return session(known)
        if store.rater_count() >= int(limits["max_raters"]):
            raise HTTPException(429, "this study has all the raters it needs; thank you")
        if not registrations.allow(request.client.host if request.client else ""):
            raise HTTPException(429, "too many new sessions from this address; try again later")
        rater, created = store.create_rater(study.assignment, lambda rater_id: session_token(secret, rater_id),
                                            body.external_id, request.headers.get("user-agent", "")[:300])
        if created:
            LOG.info("new rater %s (index %d, external id %s)", rater.id, rater.index, rater.external_id)
        return session(rater)

    @app.get("/api/sessions/{rater_id}")
    def resume(rater: Annotated[Rater, Depends(authorised)]) -> dict[str, Any]:
        return session(rater)

    @app.post("/api/sessions/{rater_id}/headphone")
    def headphone(body: HeadphoneRequest, rater: Annotated[Rater, Depends(authorised)]) -> dict[str, int]:
        if len(body.answers) != len(headphone_answers):
            raise HTTPException(422, f"expected {len(headphone_answers)} headphone answers, got {len(body.answers)}")
        correct = sum(a == b for a, b in zip(body.answers, headphone_answers))
        correct, total = store.set_headphone(rater.id, correct, len(headphone_answers))
        return {"correct": correct, "total": total}

    @app.post("/api/sessions/{rater_id}/ratings")
    def rate(body: RatingRequest, rater: Annotated[Rater, Depends(authorised)]) -> dict[str, Any]:
        if body.item_id not in study.items:
            raise HTTPException(404, f"unknown item {body.item_id}")
        if len(body.comment) > int(limits["max_comment_chars"]):
            raise HTTPException(422, f"comment longer than {limits['max_comment_chars']} characters")
        try:
            new, answered = store.add_rating(rater, body.item_id, body.score, body.comment.strip(),
                                             body.listen_seconds, body.plays)
        except NotAssignedError as error:
            raise HTTPException(403, str(error)) from None
        except ConflictError as error:
            raise HTTPException(409, str(error)) from None
        return {"stored": new, "answered": answered, "total": len(rater.items)}

    @app.post("/api/sessions/{rater_id}/complete")
    def complete(rater: Annotated[Rater, Depends(authorised)]) -> dict[str, Any]:
        if rater.headphone is None:
            raise HTTPException(409, "the headphone check is not done")
        missing = len(rater.items) - len(store.answers(rater.id))
        if missing:
            raise HTTPException(409, f"{missing} items still unanswered")
        unheard = store.unheard(rater.id)
        if unheard:
            raise HTTPException(409, f"{unheard} answers were given without playing the clip")
        store.mark_complete(rater.id)
        return {"completion_code": completion_code(secret, rater.id)}

    def check_key(key: str) -> None:
        if not hmac.compare_digest(key.encode(), export_key(secret).encode()):
            raise HTTPException(403, "wrong export key")

    @app.get("/api/export.json")
    def export_json(key: str = "") -> JSONResponse:
        check_key(key)
        return JSONResponse({"ratings": rating_rows(study, store), "raters": store.raters()})

    @app.get("/api/export.csv")
    def export_csv(key: str = "") -> PlainTextResponse:
        check_key(key)
        return PlainTextResponse(rows_to_csv(rating_rows(study, store)), media_type="text/csv")

    return app


def _raise_open_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def serve(study_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, allow_empty_database: bool = False) -> None:
    """Run the study server until interrupted; prints the address and the export key.

    Connections are guarded (:mod:`sag_bench.listening_test.guard`): at most ``max_connections`` open, the
    longest-idle evicted first, and a socket that does not complete a request in ``header_seconds`` is closed.
    """
    import uvicorn

    app = create_app(study_dir, allow_empty_database)
    limits = study_limits(app.state.study)
    key = export_key(read_secret(study_dir))
    print(f"study {Path(study_dir).resolve()} on http://{host}:{port}/")
    print(f"export: http://{host}:{port}/api/export.csv?key={key} (and export.json)", flush=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _raise_open_file_limit()
    protocol = guarded_protocol(int(limits["max_connections"]), float(limits["header_seconds"]),
                                float(limits["keep_alive_seconds"]))
    # uvicorn's own per-connection messages (invalid requests, closed sockets) stay out of the log: a flood of bad
    # connections must not flood the disk. Refusals of the app are counted and sampled by RejectionLog.
    uvicorn.run(app, host=host, port=port, http=protocol, log_level="error", access_log=False,
                timeout_keep_alive=int(limits["keep_alive_seconds"]),
                limit_concurrency=int(limits["max_connections"]) * 2, backlog=4096)
