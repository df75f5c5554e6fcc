"""The dashboard's web app: one HTML shell per page (drawn by `static/app.js` from the JSON
routes under `/api/`) and the static assets, all served locally.

Pages: `/` (runs), `/run/{run}` (fronts, hypervolume, objective statistics, failures),
`/run/{run}/individual/{ind}` (genome, metrics, tasks, lineage, replay). An unknown run or
individual is a 404 page of one line; a store its driver holds is a 503 the page retries.
"""
from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from evolve.errors import EvolveError
from evolve.ui import views
from evolve.ui.views import Busy, NotFound, RunDirs

STATIC = Path(__file__).parent / "static"
POLL_SECONDS = 2.0  # how often a page asks whether its run changed


def _shell(view: str, title: str, data: dict[str, str]) -> str:
    attrs = " ".join(f'data-{k}="{html.escape(v, quote=True)}"' for k, v in data.items())
    replay = view == "individual"  # only an individual's page plays a trajectory: the others skip the player
    player_css = '<link rel="stylesheet" href="/static/vendor/asciinema-player.css">' if replay else ""
    player_js = '<script src="/static/vendor/asciinema-player.min.js"></script>' if replay else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/app.css">
{player_css}
</head><body data-view="{view}" data-poll="{POLL_SECONDS * 1000:.0f}" {attrs}>
<header><a href="/">runs</a><span id="crumbs"></span><span id="live"></span></header>
<main id="main"><p class="muted">loading…</p></main>
{player_js}
<script src="/static/app.js"></script>
</body></html>
"""


def _not_found(message: str) -> HTMLResponse:
    return HTMLResponse(f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>not found</title><link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/app.css"></head>
<body><header><a href="/">runs</a></header><main><p class="error" id="not-found">{html.escape(message)}</p></main>
</body></html>
""", status_code=404)


def _json(compute: Callable[[], Any]) -> Response:
    """A JSON answer; a user-facing problem as {"error": one line} with its status."""
    try:
        return JSONResponse(compute())
    except NotFound as exc:
        return JSONResponse({"error": str(exc)}, status_code=404)
    except Busy as exc:
        return JSONResponse({"error": str(exc), "busy": True}, status_code=503)
    except EvolveError as exc:
        return JSONResponse({"error": str(exc)}, status_code=500)


def make_app(dirs: RunDirs) -> Starlette:
    def page_runs(request: Request) -> Response:
        return HTMLResponse(_shell("runs", "runs", {}))

    def page_run(request: Request) -> Response:
        name = request.path_params["run"]
        try:
            dirs.get(name)
        except NotFound as exc:
            return _not_found(str(exc))
        return HTMLResponse(_shell("run", f"run {name}", {"run": name}))

    def page_individual(request: Request) -> Response:
        name, ind = request.path_params["run"], request.path_params["ind"]
        try:
            views.lineage(dirs.get(name), ind, depth=0)  # one indexed lookup: does it exist?
        except NotFound as exc:
            return _not_found(str(exc))
        except Busy:
            pass  # the page itself retries until the store can be read
        return HTMLResponse(_shell("individual", f"{name} {ind}", {"run": name, "ind": ind}))

    def api_runs(request: Request) -> Response:
        return _json(lambda: {"runs": views.runs(dirs)})

    def api_version(request: Request) -> Response:
        return _json(lambda: views.version(dirs.get(request.path_params["run"])))

    def api_run(request: Request) -> Response:
        return _json(lambda: views.run_view(dirs.get(request.path_params["run"]),
                                            request.query_params.get("species")))

    def api_generation(request: Request) -> Response:
        q = request.query_params
        which = request.path_params["generation"]
        if which != "latest" and not which.isdigit():
            return JSONResponse({"error": f"no generation {which!r} (a number, or latest)"}, status_code=404)
        return _json(lambda: views.generation_points(dirs.get(request.path_params["run"]),
                                                     None if which == "latest" else int(which), q.get("species"),
                                                     earlier=q.get("earlier") == "1"))

    def api_individual(request: Request) -> Response:
        p = request.path_params
        return _json(lambda: views.individual(dirs.get(p["run"]), p["ind"]))

    def api_lineage(request: Request) -> Response:
        p = request.path_params
        try:
            depth = max(0, min(int(request.query_params.get("depth", views.LINEAGE_DEPTH)), 50))
        except ValueError:
            return JSONResponse({"error": "depth must be a whole number"}, status_code=400)
        return _json(lambda: views.lineage(dirs.get(p["run"]), p["ind"], depth))

    def api_cast(request: Request) -> Response:
        p = request.path_params
        return _json(lambda: views.cast(dirs.get(p["run"]), p["ind"]))

    async def missing(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": f"no such address: {request.url.path}"}, status_code=404)
        return _not_found(f"no page at {request.url.path}")

    routes = [
        Route("/", page_runs),
        Route("/run/{run}", page_run),
        Route("/run/{run}/individual/{ind}", page_individual),
        Route("/api/runs", api_runs),
        Route("/api/run/{run}", api_run),
        Route("/api/run/{run}/version", api_version),
        Route("/api/run/{run}/generation/{generation}", api_generation),  # a number, or latest
        Route("/api/run/{run}/individual/{ind}", api_individual),
        Route("/api/run/{run}/individual/{ind}/lineage", api_lineage),
        Route("/api/run/{run}/individual/{ind}/cast", api_cast),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes, exception_handlers={404: missing})
