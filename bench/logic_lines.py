"""Python logic lines of the ingest path (issue 15: <= 1,500 in loader/formats, loader/ingest
and loader/stream): lines that are not blank, comments or docstrings.

    python -m bench.logic_lines
"""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

PACKAGES = ("loader/formats", "loader/ingest", "loader/stream")
LIMIT = 1_500
REPO = Path(__file__).resolve().parent.parent


def logic_lines(path: Path) -> int:
    source = path.read_text(encoding="utf-8")
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str)):
                docstrings.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    code: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                          tokenize.DEDENT, tokenize.ENDMARKER):
            continue
        code.update(range(token.start[0], token.end[0] + 1))
    return len(code - docstrings)


def count(repo: Path = REPO) -> dict[str, int]:
    return {package: sum(logic_lines(p) for p in sorted((repo / package).rglob("*.py")))
            for package in PACKAGES}


def main() -> None:
    counts = count()
    for package, lines in counts.items():
        print(f"{package:16} {lines:5}")
    total = sum(counts.values())
    print(f"{'total':16} {total:5}  (limit {LIMIT}: {'ok' if total <= LIMIT else 'over'})")


if __name__ == "__main__":
    main()
