"""The console's built files (the web UI), shipped as package data of `sluice` and served under
`/ui/` by the embedded server and by `sluice ui`.

`make console` builds them from `console/` into `sluice/console_assets/`. Tests (and a developer
running `vite build --watch`) point `SLUICE_CONSOLE_ASSETS` at another directory.
"""

from __future__ import annotations

import json
import mimetypes
import os
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from urllib.parse import unquote

#: A directory of built console files to serve instead of the packaged ones.
ASSETS_ENV = "SLUICE_CONSOLE_ASSETS"
INDEX = "index.html"
#: Where Vite puts the files whose names carry their content hash (cacheable forever).
HASHED_DIR = "assets/"

#: Content types of what Vite emits, set here rather than guessed from the host's mime tables
#: (some systems map .js to text/plain, which browsers refuse to run under `nosniff`).
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".txt": "text/plain; charset=utf-8",
    ".webmanifest": "application/manifest+json",
}


def assets_root() -> Traversable:
    """The directory the console is served from: `SLUICE_CONSOLE_ASSETS`, else the package's."""
    override = os.environ.get(ASSETS_ENV)
    if override:
        return Path(override).expanduser()
    return resources.files("sluice") / "console_assets"


def console_built() -> bool:
    """Whether the console's files are there (`make console` was run)."""
    return (assets_root() / INDEX).is_file()


def content_type(name: str) -> str:
    """The content type of a console file, by its extension."""
    suffix = Path(name).suffix.lower()
    return (_CONTENT_TYPES.get(suffix) or mimetypes.guess_type(name)[0]
            or "application/octet-stream")


def safe_parts(path: str) -> list[str] | None:
    """The path's segments below `/ui/` (percent-decoded), or None when it could leave the
    assets directory: `..`, `.`, backslashes or NUL."""
    decoded = unquote(path)
    if "\\" in decoded or "\x00" in decoded:
        return None
    parts = [part for part in decoded.split("/") if part != ""]
    if any(part in (".", "..") for part in parts):
        return None
    return parts


def console_asset(path: str) -> tuple[bytes, str] | None:
    """(bytes, content type) of the console file at `path` (the URL path after `/ui/`, without
    its query string). A path that names no file is a page of the single-page app (a deep link
    like `runs/<id>`) and gets `index.html`, except under `assets/`, where a missing file is
    missing (None, a 404: the browser must not run HTML as a script). None too for a path that
    tries to leave the directory, and when the console was not built."""
    parts = safe_parts(path)
    if parts is None:
        return None
    root = assets_root()
    target = root.joinpath(*parts) if parts else root / INDEX
    if not _inside(root, target):
        return None
    if target.is_file():
        return target.read_bytes(), content_type(target.name)
    if parts and parts[0] == HASHED_DIR.rstrip("/"):
        return None
    index = root / INDEX
    if not index.is_file():
        return None
    return index.read_bytes(), content_type(INDEX)


def is_hashed(path: str) -> bool:
    """Whether `path` (after `/ui/`) is a content-hashed build file (safe to cache forever)."""
    return unquote(path).lstrip("/").startswith(HASHED_DIR)


def _inside(root: Traversable, target: Traversable) -> bool:
    # A symlink inside the assets directory must not lead out of it.
    if isinstance(root, Path) and isinstance(target, Path):
        try:
            target.resolve().relative_to(root.resolve())
        except (ValueError, OSError):
            return False
    return True


# ---- HTTP answers (the embedded server's and `sluice ui`'s) -------------------------------------

#: Where the console lives on a server, and the prefix of its pages.
UI_PREFIX = "/ui/"
#: What the console may load and call: its own files and its own origin's API, nothing
#: inline (styles excepted: the chart library sets them), no frames, no plugins.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    # The address may hold a sign-in link (`?session=`): never sent on to another site.
    "referrer-policy": "no-referrer",
}
#: Hashed build files change name when they change; everything else is checked every load.
CACHE_FOREVER = "public, max-age=31536000, immutable"
CACHE_REVALIDATE = "no-cache"

_NOT_BUILT_PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sluice console not built</title></head>
<body><h1>The Sluice console was not built</h1>
<p>The console was not built: run <code>make console</code> in the Sluice repository (it needs
Node.js and npm), then reload this page. The API works without it.</p></body></html>
"""


def is_console_path(url_path: str) -> bool:
    """Whether a request path (query string removed) is the console's: `/ui`, `/ui/...`."""
    return url_path == UI_PREFIX.rstrip("/") or url_path.startswith(UI_PREFIX)


def console_response(method: str, url_path: str) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) for a GET or HEAD of a console path (`/ui/...`, query string
    removed): the file, the app's `index.html` for its pages, 404 for a missing build file or
    a path leaving the directory, 503 with a page saying to run `make console` when the
    console was not built, 405 for other methods. The files hold no data: no auth needed."""
    if method not in ("GET", "HEAD"):
        return _json(405, "method_not_allowed",
                     f"{method} is not allowed on the console's files: use GET")
    if url_path == UI_PREFIX.rstrip("/"):
        return 308, {"location": UI_PREFIX, **SECURITY_HEADERS}, b""
    if not console_built():
        return 503, {"content-type": content_type(INDEX), "cache-control": CACHE_REVALIDATE,
                     **SECURITY_HEADERS}, _NOT_BUILT_PAGE
    relative = url_path[len(UI_PREFIX):]
    found = console_asset(relative)
    if found is None:
        return _json(404, "not_found", f"no console file {url_path!r}: open {UI_PREFIX} and "
                                       "follow its links")
    body, kind = found
    cache = CACHE_FOREVER if is_hashed(relative) and kind != content_type(INDEX) else (
        CACHE_REVALIDATE)
    return 200, {"content-type": kind, "cache-control": cache, **SECURITY_HEADERS}, body


def _json(status: int, error: str, message: str) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"error": error, "message": message, "details": None}).encode()
    return status, {"content-type": "application/json", **SECURITY_HEADERS}, body
