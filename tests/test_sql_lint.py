"""SQL is code: sqlfluff (postgres dialect, repo config) lints sql/ clean."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_sqlfluff_lints_every_sql_file_clean() -> None:
    sqlfluff = Path(sys.executable).parent / "sqlfluff"
    result = subprocess.run(
        [str(sqlfluff), "lint", "sql", "--format", "json", "--processes", "2"],
        cwd=REPO, capture_output=True, text=True,
    )
    files = json.loads(result.stdout)
    assert files, "sqlfluff found no SQL files"
    problems = [
        f"{f['filepath']}:{v['start_line_no']}:{v['start_line_pos']} {v['code']} {v['description']}"
        for f in files for v in f["violations"]
    ]
    assert problems == [], "\n".join(problems)
    assert len(files) == len(list((REPO / "sql").rglob("*.sql")))
