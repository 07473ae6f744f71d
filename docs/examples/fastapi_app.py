"""A FastAPI service over fine_tune_ckpt: one shared client, pages, NDJSON streams, errors.

Copy what you need. The client is created once in the app's lifespan (one connection
pool for every request) and handed to handlers by a dependency. Upstream errors become
sensible HTTP answers, never a 500 with a traceback:

- 404 stays 404, a rejected cursor stays 400;
- an upstream 429 becomes 503 with ``Retry-After``;
- any other upstream failure becomes 502 carrying the upstream request id.

Two endpoints stream NDJSON: every checkpoint of a job, and a running job's checkpoints as
they appear until it ends (a watch). A caller that hangs up stops either at once.

Run ``python docs/examples/fastapi_app.py`` for a self-contained demo: it starts the
built-in fake API, serves this app with uvicorn on 127.0.0.1, calls each endpoint, and
stops. In production: ``uvicorn fastapi_app:app`` with OPENAI_API_KEY set.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Annotated, Any

import aiohttp
import orjson
import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from fine_tune_ckpt import (
    AsyncClient,
    BadRequestError,
    CheckpointPage,
    FineTuneCkptError,
    Metric,
    NotFoundError,
    RateLimitError,
    best_checkpoint,
    to_wire,
)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Create the one client every request shares; close it at shutdown."""
    async with AsyncClient() as client:  # OPENAI_API_KEY, OPENAI_BASE_URL, ...
        app.state.checkpoints_client = client
        yield


app = FastAPI(title="Checkpoints service", lifespan=lifespan)


def get_client(request: Request) -> AsyncClient:
    """Dependency: the shared client."""
    client: AsyncClient = request.app.state.checkpoints_client
    return client


Client = Annotated[AsyncClient, Depends(get_client)]


def upstream_error_response(error: FineTuneCkptError) -> JSONResponse:
    """Map a library error to the answer this service gives its own callers."""
    request_id = getattr(error, "request_id", None)
    if isinstance(error, NotFoundError):
        return JSONResponse({"detail": "No such fine-tuning job"}, status_code=404)
    if isinstance(error, BadRequestError):
        return JSONResponse({"detail": error.message, "param": error.param}, status_code=400)
    if isinstance(error, RateLimitError):
        retry_after = error.headers.get("retry-after", "1")
        return JSONResponse(
            {"detail": "Upstream rate limit; try again later", "request_id": request_id},
            status_code=503,
            headers={"Retry-After": retry_after},
        )
    return JSONResponse(
        {"detail": "Upstream API failed", "error": type(error).__name__, "request_id": request_id},
        status_code=502,
    )


@app.exception_handler(FineTuneCkptError)
async def on_upstream_error(request: Request, error: FineTuneCkptError) -> JSONResponse:
    """Every library error raised by a handler is answered by upstream_error_response."""
    return upstream_error_response(error)


def _page_json(page: CheckpointPage) -> Response:
    body = {
        "data": [to_wire(checkpoint) for checkpoint in page.data],
        "has_more": page.has_more,
        "next_after": page.next_after,
    }
    return Response(orjson.dumps(body), media_type="application/json")


@app.get("/jobs/{job_id}/checkpoints")
async def list_page(
    job_id: str,
    client: Client,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Response:
    """One page, with the cursor of the next one, for a front end that pages."""
    try:
        pager = client.checkpoints.list(job_id, after=after, limit=limit)
    except ValueError as error:
        raise HTTPException(status_code=422, detail=str(error)) from None
    return _page_json(await pager)


def _ndjson(page: CheckpointPage) -> bytes:
    """A page's checkpoints as NDJSON: one wire JSON object per line."""
    return b"".join(orjson.dumps(to_wire(checkpoint)) + b"\n" for checkpoint in page.data)


@app.get("/jobs/{job_id}/checkpoints/stream")
async def stream_all(job_id: str, client: Client, request: Request) -> StreamingResponse:
    """Every checkpoint as NDJSON, streamed straight from ``async for``, a page per send.

    The first page is fetched before the answer starts, so an unknown job is still a
    404. A failure later ends the stream with an error line saying where to resume. A
    caller that disconnects stops the stream and the upstream walk at the next page: at
    most the one request the pager had already started ahead is sent (and cancelled).
    """
    try:
        pages = client.checkpoints.list(job_id, limit=100).pages()
    except ValueError as error:
        raise HTTPException(status_code=422, detail=str(error)) from None
    first = await anext(pages)

    async def chunks() -> AsyncIterator[bytes]:
        # One chunk per page, not per line: once the caller has hung up, each send fails
        # and asyncio logs a warning for it, and a send does not wait for the loop, so a
        # page of lines would be a hundred failed sends before anyone noticed.
        async with aclosing(pages):
            page: CheckpointPage | None = first
            try:
                while page is not None:
                    if page.data:
                        yield _ndjson(page)
                    # A loop turn lets the server see a failed send (the transport reports
                    # the lost connection on the next turn); then stop before asking
                    # upstream for another page nobody will read.
                    await asyncio.sleep(0)
                    if await request.is_disconnected():
                        return
                    page = await anext(pages, None)
            except FineTuneCkptError as error:
                failure = {"error": type(error).__name__, "resume_after": error.resume_after}
                yield orjson.dumps(failure) + b"\n"

    return StreamingResponse(chunks(), media_type="application/x-ndjson")


@app.get("/jobs/{job_id}/checkpoints/watch")
async def watch(
    job_id: str,
    client: Client,
    request: Request,
    since: str | None = None,
    interval: Annotated[float, Query(ge=1, le=3600)] = 30.0,
) -> StreamingResponse:
    """A running job's checkpoints as NDJSON, each as it appears, then the job once it ends.

    Every line is an API object, told apart by ``object``: the checkpoints
    (``fine_tuning.job.checkpoint``) oldest first, as polls ``interval`` seconds apart
    find them (only those newer than ``since``, if given); then one last line, the job
    itself (``fine_tuning.job``) with its final ``status`` and its ``fine_tuned_model``
    or ``error``. The job is read before the answer starts, so an unknown job is still a
    404. A failure later ends the stream with an error line whose ``resume_after`` is the
    ``since`` that goes on with no gap and no duplicate.

    A caller that hangs up stops the watch at once, even while it waits between polls:
    Starlette cancels the stream when the server reports the disconnect, which cancels
    the wait or the request in progress.
    """
    try:
        watcher = client.checkpoints.watch(job_id, poll_interval=interval, since=since)
    except ValueError as error:
        raise HTTPException(status_code=422, detail=str(error)) from None
    await client.jobs.retrieve(job_id)  # an unknown job: 404 before the stream starts

    async def lines() -> AsyncIterator[bytes]:
        try:
            async with aclosing(aiter(watcher)) as checkpoints:
                async for checkpoint in checkpoints:
                    yield orjson.dumps(to_wire(checkpoint)) + b"\n"
                    # As in stream_all: let a failed send be seen, then stop if nobody reads.
                    await asyncio.sleep(0)
                    if await request.is_disconnected():
                        return
        except FineTuneCkptError as error:
            failure = {"error": type(error).__name__, "resume_after": error.resume_after}
            yield orjson.dumps(failure) + b"\n"
            return
        if watcher.job is not None:  # the job as the poll that saw it end read it
            yield orjson.dumps(to_wire(watcher.job)) + b"\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@app.get("/jobs/{job_id}/best")
async def best(job_id: str, client: Client, metric: Metric = "full_valid_loss") -> Response:
    """The checkpoint to deploy by one metric (losses: lowest wins; accuracies: highest)."""
    try:
        pager = client.checkpoints.list(job_id, limit=100)
    except ValueError as error:
        raise HTTPException(status_code=422, detail=str(error)) from None
    winner = await best_checkpoint(pager, metric)
    if winner is None:
        raise HTTPException(status_code=404, detail=f"No checkpoint reports {metric}")
    return Response(orjson.dumps(to_wire(winner)), media_type="application/json")


@contextlib.asynccontextmanager
async def serve(application: FastAPI) -> AsyncIterator[str]:
    """Serve ``application`` with uvicorn on a free loopback port; yield its base URL."""
    config = uvicorn.Config(application, host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # startup failed: raise its error
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def demo() -> None:
    """Start the fake API and this app, call each endpoint, print what came back."""
    from fine_tune_ckpt.testing import FakeAPIServer, Fault, JobTimeline

    async with FakeAPIServer() as fake:
        fake.add_job("ftjob-abc123", count=150)
        # A job that runs in real time: three checkpoints within the first second.
        quick = JobTimeline(validating_files=0, queued=0, checkpoint_every=0.25)
        fake.add_running_job("ftjob-live", count=3, timeline=quick)
        os.environ["OPENAI_API_KEY"] = fake.api_key
        os.environ["OPENAI_BASE_URL"] = fake.base_url
        async with serve(app) as base_url, aiohttp.ClientSession() as http:
            async with http.get(f"{base_url}/jobs/ftjob-abc123/checkpoints?limit=3") as answer:
                page: dict[str, Any] = await answer.json()
            print(
                f"GET one page: {answer.status}, {len(page['data'])} items, next_after "
                f"{page['next_after']}"
            )
            async with http.get(f"{base_url}/jobs/ftjob-abc123/checkpoints/stream") as answer:
                lines = (await answer.text()).splitlines()
            print(f"GET stream: {answer.status}, {len(lines)} NDJSON lines")
            async with http.get(
                f"{base_url}/jobs/ftjob-live/checkpoints/watch?interval=1"
            ) as answer:
                watched = [orjson.loads(line) async for line in answer.content]
            print(
                f"GET watch: {answer.status}, {len(watched) - 1} checkpoints as they appeared, "
                f"then the job: {watched[-1]['status']}"
            )
            async with http.get(f"{base_url}/jobs/ftjob-abc123/best") as answer:
                winner = await answer.json()
            print(
                f"GET best: step {winner['step_number']}, loss "
                f"{winner['metrics']['full_valid_loss']}"
            )
            async with http.get(f"{base_url}/jobs/ftjob-nope/checkpoints") as answer:
                print(f"GET unknown job: {answer.status}")
            # x-should-retry: false makes the client give up at once instead of waiting.
            fake.inject(Fault(status=429, retry_after=7, should_retry=False))
            async with http.get(f"{base_url}/jobs/ftjob-abc123/checkpoints") as answer:
                print(
                    f"GET upstream 429: {answer.status}, Retry-After "
                    f"{answer.headers.get('Retry-After')}"
                )


if __name__ == "__main__":
    asyncio.run(demo())
