"""The examples users copy from, and `make demo`, keep working."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_and_exits_zero():
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "demo.py")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "orders-etl" in out.stdout and "Completed" in out.stdout
    assert "negative amount" in out.stdout


def test_readme_example_runs(tmp_path):
    readme = (ROOT / "README.md").read_text()
    start = readme.index("```python\n", readme.index("## Ten lines")) + len("```python\n")
    code = readme[start: readme.index("```", start)]
    script = tmp_path / "example.py"
    script.write_text(code)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert "[0, 2, 4, 6, 8]" in out.stdout
