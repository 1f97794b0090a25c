"""`sluice ui`: the console on localhost, signed in with this profile's credentials."""

from __future__ import annotations

from typing import Annotated

import typer

from .common import ApiUrlOption, ProfileOption


def ui(
    profile: ProfileOption = None,
    api_url: ApiUrlOption = None,
    port: Annotated[int, typer.Option(min=0, max=65535, help="Local port (0 = any free "
                                      "port).")] = 4310,
    no_open: Annotated[bool, typer.Option("--no-open", help="Print the link; do not open a "
                                          "browser.")] = False,
) -> None:
    """Open the web console for the profile's control plane (AWS or local): a proxy on
    127.0.0.1 serves it and signs its API calls with your credentials (SigV4 or the token)."""
    import errno
    import threading
    import webbrowser

    from ..console_files import console_built
    from ..console_proxy import ConsoleProxy
    from ..exceptions import ConfigurationError, Conflict
    from ..profiles import resolve_connection

    connection = resolve_connection(api_url=api_url, profile=profile)
    if connection is None:
        raise ConfigurationError(
            "no control plane configured: run `sluice server start` (creates the `local` "
            "profile), pass --api-url, or `sluice profile use NAME`")
    try:
        proxy = ConsoleProxy(connection, port=port).start()
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise Conflict(f"port {port} on 127.0.0.1 is already in use (another `sluice ui`?): "
                       "stop it, or pass --port") from exc
    print(f"Sluice console for {connection.api_url} ({connection.kind})", flush=True)
    if not console_built():
        print("  the console was not built: run `make console`, then reload", flush=True)
    print(f"  open {proxy.sign_in_url}", flush=True)
    print("  (the link signs in this browser; keep it private)  Press Ctrl-C to stop.",
          flush=True)
    if not no_open:
        webbrowser.open(proxy.sign_in_url)
    stop = threading.Event()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        proxy.stop()
