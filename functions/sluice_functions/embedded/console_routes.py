"""The console on the embedded server: its files under `/ui/` and the redirect of `/` to it.

Decided before the API's auth check (`server._Handler._serve`): the files hold no data, and the
page itself sends the operator token with every API call it makes (see `sluice.console_files`).
"""

from __future__ import annotations

from sluice.console_files import UI_PREFIX, console_response, is_console_path


def console_answer(method: str, target: str) -> tuple[int, dict[str, str], bytes] | None:
    """(status, headers, body) when the request target is the console's (`/`, `/ui`,
    `/ui/...`); None for every other path (the API's, with its auth)."""
    path = target.split("?", 1)[0].split("#", 1)[0]
    if path == "/" and method in ("GET", "HEAD"):
        return 302, {"location": UI_PREFIX, "content-type": "text/plain; charset=utf-8"}, (
            f"the console is at {UI_PREFIX}\n".encode())
    if is_console_path(path):
        return console_response(method, path)
    return None


def console_url(server_url: str) -> str:
    """Where the console of a server at `server_url` is."""
    return server_url.rstrip("/") + UI_PREFIX
