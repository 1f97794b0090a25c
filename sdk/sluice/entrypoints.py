"""Entrypoints: `path/to/file.py:flow_name` or `package.module:flow_name`, loaded without
running anything but the module's own top level."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from .exceptions import ConfigurationError


def split_entrypoint(entrypoint: str) -> tuple[str, str]:
    path, sep, name = entrypoint.rpartition(":")
    if not sep or not path or not name.isidentifier():
        raise ConfigurationError(
            f"entrypoint {entrypoint!r} must look like path/to/file.py:my_flow or "
            "package.module:my_flow"
        )
    return path, name


def load_flow(entrypoint: str, base_dir: str | Path | None = None) -> Any:
    """The `Flow` object an entrypoint names (relative paths are under `base_dir`)."""
    from .flows import Flow

    location, name = split_entrypoint(entrypoint)
    if location.endswith(".py"):
        path = Path(base_dir or ".") / location
        if not path.is_file():
            raise ConfigurationError(f"entrypoint file {path} does not exist")
        module_name = f"sluice_entry_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        # The flow's own directory is importable, as it is for `python file.py`.
        sys.path.insert(0, str(path.parent.resolve()))
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    else:
        if base_dir is not None:
            sys.path.insert(0, str(Path(base_dir).resolve()))
        module = importlib.import_module(location)
    try:
        obj = getattr(module, name)
    except AttributeError:
        flows = sorted(attr for attr, value in vars(module).items() if isinstance(value, Flow))
        has = (f"its flows are {', '.join(flows)} (use {location}:{flows[0]})" if flows
               else "it defines no @flow")
        raise ConfigurationError(f"{location} has no flow {name!r}: {has}") from None
    if not isinstance(obj, Flow):
        raise ConfigurationError(
            f"{entrypoint} is a {type(obj).__name__}, not a flow; decorate it with @flow"
        )
    return obj
