"""Publishing whole: a reader sees the old file or folder, or the new one, never half of one.

The decode cache, the exported model and the HTML report are all written aside first and then
put in place by a rename, which is atomic within one file system.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path


def replace_folder(staging: Path, target: Path) -> None:
    """Put the finished ``staging`` folder at ``target`` (same parent), retiring what was there.

    The old folder is renamed aside, the new one renamed in, and only then is the old one
    deleted: a process that dies between the steps leaves a hidden ``.retired-`` folder, never
    a half-built ``target``.
    """
    retired = None
    if target.exists():
        retired = target.parent / f".{target.name}.retired-{uuid.uuid4().hex[:8]}"
        target.rename(retired)
    staging.rename(target)
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` to a hidden sibling of ``path``, then rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temporary, "x", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path
