"""`sluice server start`: run the embedded control plane in the foreground, authenticated, with
its data private, and write the `local` profile for the CLI and workers."""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import IO

from sluice.exceptions import Conflict

from sluice.console_files import console_built

from .console_routes import console_url
from .local_auth import PRIVATE_UMASK, secure_data_dir, server_token
from .network import cleartext_warning
from .server import DEFAULT_PORT, EmbeddedServer


def run_server(*, host: str = "127.0.0.1", port: int = DEFAULT_PORT, data_dir: Path | None = None,
               token_file: Path | None = None, tick_seconds: float = 5.0,
               retention_days: int = 30, tls_cert: Path | None = None,
               tls_key: Path | None = None) -> None:
    """`sluice server start`: serve until Ctrl-C or SIGTERM; write the `local` profile (0600,
    with the operator token). Always authenticated: the token comes from `token_file`, else
    SLUICE_API_TOKEN, else the data directory (made on first start); see `local_auth`."""
    from sluice.profiles import LOCAL_PROFILE, Profile, load_profiles, upsert_profile
    from sluice.settings import get_settings

    os.umask(PRIVATE_UMASK)  # databases, WAL files and bundles: this user's only
    settings = get_settings()
    data_dir = secure_data_dir(data_dir or settings.home / "server")
    lock = lock_data_dir(data_dir)  # held (open) for the server's life; the OS frees it on exit
    token = server_token(data_dir, token_file=token_file or settings.api_token_file,
                         environment_token=settings.api_token)
    try:
        server = EmbeddedServer(data_dir=data_dir, host=host, port=port,
                                token=token, tick_seconds=tick_seconds,
                                retention_days=retention_days, tls_cert=tls_cert,
                                tls_key=tls_key).start()
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise Conflict(f"port {port} on {host} is already in use (another sluice server?): "
                       "stop that process, or start on another port with --port") from exc
    activate = load_profiles().active in (None, LOCAL_PROFILE)
    path = upsert_profile(LOCAL_PROFILE, Profile(kind="local", api_url=server.url,
                                                 api_token=token,
                                                 sqs_endpoint=server.sqs_endpoint,
                                                 # trust the certificate served (self-signed)
                                                 ca_bundle=str(server.tls_cert)
                                                 if server.tls_cert else None),
                          activate=activate)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    warning = cleartext_warning(host, tls=server.tls_cert is not None)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    print(f"Sluice server listening on {server.url}", flush=True)
    print(f"  API           {server.url}  (OpenAPI: {server.url}/openapi.json)", flush=True)
    print(f"  SQS endpoint  {server.sqs_endpoint}", flush=True)
    print(f"  console       {console_url(server.url)}"
          + ("" if console_built() else "  (not built: run `make console`)"), flush=True)
    print("                sign in: run `sluice ui` (signed in for you), or paste the operator "
          f"token (api_token of profile '{LOCAL_PROFILE}' in {path})", flush=True)
    print(f"  data          {server.data_dir}", flush=True)
    print(f"  profile       '{LOCAL_PROFILE}' in {path}"
          + ("" if activate else " (not made active: another profile is)"), flush=True)
    print("Press Ctrl-C to stop.", flush=True)
    _freeze_startup_objects()
    while not stop.wait(0.5):
        pass
    print("Stopping…", flush=True)
    started = time.monotonic()
    server.stop()
    print(f"Stopped in {time.monotonic() - started:.2f} s.", flush=True)
    lock.close()


def _freeze_startup_objects() -> None:
    """Leave what startup made (modules, the API's routes and pydantic schemas: most of the
    process's objects, and all of them live until it exits) out of the garbage collector's
    passes. An events batch allocates thousands of objects, which triggers collections, and
    each full one walked all of startup's objects again: ~4 us per record stored (issue 20)."""
    import gc

    gc.collect()  # garbage from startup is freed, not frozen
    gc.freeze()


#: The file whose exclusive lock says a server uses the data directory.
LOCK_FILE = "server.lock"


def lock_data_dir(data_dir: Path) -> IO[str]:
    """Take an exclusive, non-blocking `flock` on the data directory's lock file and return the
    open file (the lock lasts while it stays open, and ends with the process). A second server
    on the same data directory is refused before it touches the data or the `local` profile."""
    import fcntl

    handle = open(data_dir / LOCK_FILE, "a+")  # noqa: SIM115 - held for the server's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip()
        handle.close()
        raise Conflict(
            f"another sluice server{f' ({holder})' if holder else ''} is using the data "
            f"directory {data_dir}: stop it first, or give this one its own --data-dir"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    return handle
