"""The `hpl` console command of the pip package: runs the bundled hpl executable."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional


def binary_path() -> Optional[str]:
    """The hpl executable installed inside this package, or None in a source checkout."""
    p = Path(__file__).resolve().parent / "_bin" / "hpl"
    return str(p) if p.is_file() and os.access(p, os.X_OK) else None


def main() -> None:
    exe = binary_path()
    if exe is None:
        sys.exit("hpl: the hpl executable is not in this package (install with pip install .)")
    os.execv(exe, ["hpl", *sys.argv[1:]])
