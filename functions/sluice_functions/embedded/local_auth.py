"""The embedded server's own secrets on disk: its data directory is the server user's alone, and
its operator token is made on first start and kept there.

Other local users must not read run logs and parameters (the SQLite files) nor learn the token
(it lets its holder register code that workers run). So: the data directory is 0700, every file
in it 0600 (the server process runs with umask 077), the token file and the profile are written
0600 from their first byte, and a token is never taken from the command line (`ps` shows argv to
every user): only from the environment, a file, or the data directory.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sluice.exceptions import ConfigurationError
from sluice.private_files import PRIVATE_FILE_MODE, write_private
from sluice.tokens import check_operator_token, new_operator_token

TOKEN_FILE = "operator-token"
PRIVATE_DIR_MODE = 0o700
#: Makes every file the server creates (databases, WAL files, bundles) 0600 and directories 0700.
PRIVATE_UMASK = 0o077


def secure_data_dir(data_dir: Path) -> Path:
    """Create `data_dir` (0700) or make an existing one private: the directory 0700, the files in
    it 0600 (data directories of earlier versions were 0755 with 0644 files). Refuses a data
    directory that is a file, a symlink, or another user's."""
    data_dir = data_dir.expanduser()
    if data_dir.is_symlink():
        raise ConfigurationError(f"the data directory {data_dir} is a symlink; point "
                                 "--data-dir at the real directory")
    if data_dir.exists() and not data_dir.is_dir():
        raise ConfigurationError(f"the data directory {data_dir} is a file; pass --data-dir "
                                 "with a directory (it is created if missing)")
    try:
        data_dir.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    except OSError as exc:  # a parent is a file, or not writable by this user
        raise ConfigurationError(
            f"cannot create the data directory {data_dir}: {exc.strerror} "
            f"({exc.filename or data_dir}); pass --data-dir with a directory this user can "
            "write (it is created if missing)") from None
    if not os.access(data_dir, os.W_OK | os.X_OK):
        raise ConfigurationError(f"the data directory {data_dir} is not writable by this user; "
                                 "fix its permissions or pass --data-dir with another one")
    info = data_dir.stat()
    if info.st_uid != os.getuid():
        raise ConfigurationError(
            f"the data directory {data_dir} belongs to another user (uid {info.st_uid}); run "
            "the server as that user, or use a directory of your own (--data-dir)")
    if stat.S_IMODE(info.st_mode) != PRIVATE_DIR_MODE:
        data_dir.chmod(PRIVATE_DIR_MODE)
    for path in data_dir.rglob("*"):
        if path.is_symlink():
            continue
        mode = PRIVATE_DIR_MODE if path.is_dir() else PRIVATE_FILE_MODE
        if stat.S_IMODE(path.stat().st_mode) != mode:
            path.chmod(mode)
    return data_dir


def server_token(data_dir: Path, *, token_file: Path | None = None,
                 environment_token: str | None = None) -> str:
    """The operator token the server checks: from `token_file`, else `environment_token`
    (SLUICE_API_TOKEN), else the data directory's, made on first start. Short tokens are
    refused (`sluice.tokens.MIN_TOKEN_CHARS`)."""
    if token_file is not None:
        try:
            text = token_file.expanduser().read_text()
        except OSError as exc:
            raise ConfigurationError(f"cannot read the token file {token_file}: "
                                     f"{exc.strerror}") from None
        return check_operator_token(text, source=str(token_file))
    if environment_token:
        return check_operator_token(environment_token, source="SLUICE_API_TOKEN")
    stored = data_dir / TOKEN_FILE
    if stored.exists():
        return check_operator_token(stored.read_text(), source=str(stored))
    token = new_operator_token()
    write_private(stored, token + "\n")
    return token
