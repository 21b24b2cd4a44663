"""The study web server (FastAPI): serves the form and the audio, stores every answer the moment it is given.

Routes (all JSON unless noted)::

    GET  /                                 the form (index.html); /static/{index.html,style.css,app.js}
    GET  /audio/{name}                     a stimulus, by its opaque name (only names the study lists)
    GET  /api/study                        question, scale, instructions, check sounds (no systems, no answers)
    POST /api/sessions                     new rater: {external_id?} -> {rater_id, token, items, answers, ...}
    GET  /api/sessions/{rater}             resume (Authorization: Bearer <token>)
    POST /api/sessions/{rater}/headphone   {answers: [1-3, ...]} -> {correct, total}
    POST /api/sessions/{rater}/ratings     {item_id, score 1-5, comment?, listen_seconds?, plays?}
    POST /api/sessions/{rater}/complete    -> {completion_code} once every item is answered
    GET  /api/export.csv|json?key=KEY      every rating (KEY is printed by ``listen serve``)

Every refused request (4xx) is answered with ``{"error": reason}``, logged, and kept in the ``rejections`` table.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route signatures' annotations at runtime,
# including dependencies defined inside create_app.
import base64
import hashlib
import hmac
import logging
import re
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, AsyncIterator

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sag_bench.listening_test.db import ConflictError, NotAssignedError, Rater, RatingStore
from sag_bench.listening_test.export import rating_rows, rows_to_csv
from sag_bench.listening_test.study import Study, read_secret

LOG = logging.getLogger("sag_bench.listen")
STATIC_FILES = {"index.html": "text/html", "style.css": "text/css", "app.js": "text/javascript"}
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
EXTERNAL_ID_PATTERN = r"^[A-Za-z0-9_.:@-]{1,128}$"
AUDIO_NAME = re.compile(r"^[0-9a-f]{16}\.(mp3|ogg|wav)$")
COMPLETION_CODE_CHARS = 10
MAX_LISTEN_SECONDS = 3600.0
# Longer than a rater's pause between answers, so a browser rarely reuses a connection the server just closed.
KEEP_ALIVE_SECONDS = 75


class SessionRequest(BaseModel):
    """Body of POST /api/sessions: an optional crowd-platform participant id."""

    model_config = ConfigDict(extra="forbid")
    external_id: Annotated[str, Field(pattern=EXTERNAL_ID_PATTERN)] | None = None


class RatingRequest(BaseModel):
    """Body of POST .../ratings: one answer (integer score 1-5; nothing else accepted)."""

    model_config = ConfigDict(extra="forbid")
    item_id: Annotated[str, Field(pattern=ID_PATTERN)]
    score: Annotated[StrictInt, Field(ge=1, le=5)]
    comment: str = ""
    listen_seconds: Annotated[float, Field(ge=0, le=MAX_LISTEN_SECONDS)] | None = None
    plays: Annotated[StrictInt, Field(ge=0, le=1000)] | None = None


class HeadphoneRequest(BaseModel):
    """Body of POST .../headphone: the chosen softest tone (1-3) per trial."""

    model_config = ConfigDict(extra="forbid")
    answers: list[Annotated[StrictInt, Field(ge=1, le=3)]]


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``limit`` bytes (declared or streamed) with 413."""

    def __init__(self, app: ASGIApp, limit: int, store: RatingStore) -> None:
        self.app, self.limit, self.store = app, limit, store

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, reason: str) -> None:
        client = scope.get("client") or ("", 0)
        self.store.log_rejection(413, reason, client[0], scope.get("method", ""), scope.get("path", ""))
        LOG.warning("413 %s %s: %s", scope.get("method"), scope.get("path"), reason)
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


def create_app(study_dir: str | Path) -> FastAPI:
    """The web app for the study at ``study_dir`` (opens or creates its ``ratings.sqlite``)."""
    study = Study.open(study_dir)
    secret = read_secret(study.root)
    store = RatingStore(study.database)
    limits = study.spec["server"]
    static = resources.files("sag_bench.listening_test").joinpath("static")
    audio_names = {Path(p).name for p in [i.audio for i in study.items.values()] + [study.spec["calibration_audio"]]
                   + [t["audio"] for t in study.spec["headphone_check"]["trials"]]}
    headphone_answers = [t["answer"] for t in study.spec["headphone_check"]["trials"]]

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        store.close()

    app = FastAPI(title="sag-bench listening test", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.state.store = store
    app.state.study = study
    app.add_middleware(BodyLimit, limit=int(limits["max_body_bytes"]), store=store)

    def refuse(request: Request, status: int, reason: str) -> JSONResponse:
        client = request.client.host if request.client else ""
        store.log_rejection(status, reason, client, request.method, request.url.path)
        LOG.warning("%d %s %s: %s", status, request.method, request.url.path, reason)
        return JSONResponse({"error": reason}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return refuse(request, error.status_code, str(error.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}"
                             for e in error.errors())
        return refuse(request, 422, f"invalid request ({problems})")

    def authorised(rater_id: str, authorization: Annotated[str | None, Header()] = None) -> Rater:
        rater = store.rater(rater_id) if re.match(ID_PATTERN, rater_id) else None
        if rater is None:
            raise HTTPException(404, f"unknown rater {rater_id[:64]}")
        if not authorization or not authorization.startswith("Bearer "):
            raise HTTPException(401, "missing rater token (Authorization: Bearer ...)")
        if not rater.owns(authorization.removeprefix("Bearer ")):
            raise HTTPException(403, f"token does not belong to rater {rater_id}")
        return rater

    def session(rater: Rater, token: str | None = None) -> dict[str, Any]:
        answers = store.answers(rater.id)
        done = rater.completed is not None
        return {"rater_id": rater.id, **({"token": token} if token else {}),
                "items": [study.items[i].public() for i in rater.items], "answers": answers,
                "headphone_done": rater.headphone is not None,
                "completion_code": completion_code(secret, rater.id) if done else None}

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(str(static.joinpath("index.html")), media_type="text/html")

    @app.get("/static/{name}", include_in_schema=False)
    def static_file(name: str) -> FileResponse:
        if name not in STATIC_FILES:
            raise HTTPException(404, f"no static file {name[:64]}")
        return FileResponse(str(static.joinpath(name)), media_type=STATIC_FILES[name],
                            headers={"Cache-Control": "no-cache"})

    @app.get("/audio/{name}", include_in_schema=False)
    def audio(name: str) -> FileResponse:
        if not AUDIO_NAME.match(name) or name not in audio_names:
            raise HTTPException(404, f"no audio {name[:64]}")
        return FileResponse(study.root / "audio" / name, headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/api/study")
    def study_info() -> dict[str, Any]:
        return study.public()

    @app.post("/api/sessions")
    def new_session(body: SessionRequest, request: Request) -> dict[str, Any]:
        rater, token = store.create_rater(study.assignment, body.external_id,
                                          request.headers.get("user-agent", "")[:300])
        LOG.info("new rater %s (index %d, external id %s)", rater.id, rater.index, rater.external_id)
        return session(rater, token)

    @app.get("/api/sessions/{rater_id}")
    def resume(rater: Annotated[Rater, Depends(authorised)]) -> dict[str, Any]:
        return session(rater)

    @app.post("/api/sessions/{rater_id}/headphone")
    def headphone(body: HeadphoneRequest, rater: Annotated[Rater, Depends(authorised)]) -> dict[str, int]:
        if len(body.answers) != len(headphone_answers):
            raise HTTPException(422, f"expected {len(headphone_answers)} headphone answers, got {len(body.answers)}")
        correct = sum(a == b for a, b in zip(body.answers, headphone_answers))
        store.set_headphone(rater.id, correct, len(headphone_answers))
        return {"correct": correct, "total": len(headphone_answers)}

    @app.post("/api/sessions/{rater_id}/ratings")
    def rate(body: RatingRequest, rater: Annotated[Rater, Depends(authorised)]) -> dict[str, Any]:
        if body.item_id not in study.items:
            raise HTTPException(404, f"unknown item {body.item_id}")
        if len(body.comment) > int(limits["max_comment_chars"]):
            raise HTTPException(422, f"comment longer than {limits['max_comment_chars']} characters")
        try:
            new, answered = store.add_rating(rater, body.item_id, body.score, body.comment.strip(), body.listen_seconds,
                                   body.plays)
        except NotAssignedError as error:
            raise HTTPException(403, str(error)) from None
        except ConflictError as error:
            raise HTTPException(409, str(error)) from None
        return {"stored": new, "answered": answered, "total": len(rater.items)}

    @app.post("/api/sessions/{rater_id}/complete")
    def complete(rater: Annotated[Rater, Depends(authorised)]) -> dict[str, Any]:
        missing = len(rater.items) - len(store.answers(rater.id))
        if missing:
            raise HTTPException(409, f"{missing} items still unanswered")
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


def serve(study_dir: str | Path, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the study server until interrupted; prints the address and the export key."""
    import uvicorn

    app = create_app(study_dir)
    key = export_key(read_secret(study_dir))
    print(f"study {Path(study_dir).resolve()} on http://{host}:{port}/")
    print(f"export: http://{host}:{port}/api/export.csv?key={key} (and export.json)", flush=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False,
                timeout_keep_alive=KEEP_ALIVE_SECONDS)

