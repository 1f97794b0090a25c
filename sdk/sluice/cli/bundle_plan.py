"""`deploy --source bundle --dry-run`: what a bundle would hold, and what was left out."""

from __future__ import annotations

from .output import console, print_json, table


def shown(path: str) -> str:
    """A file name safe to print: control and bidi characters written as escapes."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode()
                   for ch in path)


def _size(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    return f"{n / 1000:.1f} KB" if n < 1_000_000 else f"{n / 1_000_000:.1f} MB"


def show_bundle_plan(plan, *, zip_bytes: int, sha256: str, as_json: bool) -> None:  # noqa: ANN001
    """`deploy --source bundle --dry-run`: what would be packed, and what was left out."""
    from rich.text import Text

    if as_json:
        print_json({"root": str(plan.root), "sha256": sha256, "zip_bytes": zip_bytes,
                    "files": [{"name": f.name, "size": f.size, "link_target": f.link_target}
                              for f in plan.files],
                    "excluded": [{"path": e.path, "reason": e.reason, "default": e.by_default,
                                  "secret": e.secret} for e in plan.excluded]})
        return
    packed = table(f"bundle of {plan.root}", "file", "size")
    for f in plan.files:
        name = shown(f.name) + (f" -> {shown(f.link_target)}" if f.link_target else "")
        packed.add_row(Text(name), _size(f.size))
    console.print(packed)
    defaults = plan.default_exclusions
    if defaults:
        left_out = table("left out by the default exclusions ('!pattern' in .sluiceignore "
                         "ships one)", "path", "why")
        for e in defaults:
            left_out.add_row(Text(shown(e.path), style="yellow" if e.secret else ""),
                             Text(e.reason))
        console.print(left_out)
    own = len(plan.excluded) - len(defaults)
    console.print(f"{len(plan.files)} files, {_size(plan.total_size)} ({_size(zip_bytes)} "
                  f"zipped), sha256 {sha256[:12]}; {own} path(s) left out by .gitignore/"
                  ".sluiceignore. Dry run: nothing uploaded, nothing registered.",
                  highlight=False, markup=False)
