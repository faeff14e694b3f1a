"""The code-shape measures issue 26 asks for, before and after: the longest functions, files
over 500 lines, late imports (an import inside a function), and ``dict[str, Any]`` spellings.

    python experiments/code_metrics.py [--top 5]
"""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _late_imports(node: ast.AST, inside: bool = False) -> int:
    """Imports inside a function body (each counted once, nested functions included)."""
    n = int(inside and isinstance(node, (ast.Import, ast.ImportFrom)))
    inside = inside or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    return n + sum(_late_imports(c, inside) for c in ast.iter_child_nodes(node))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--top", type=int, default=5)
    args = p.parse_args()
    files = sorted((ROOT / "awsaa").rglob("*.py"))
    funcs: list[tuple[int, str]] = []
    late = 0
    dict_any = 0
    big: list[tuple[int, str]] = []
    for f in files:
        text = f.read_text()
        rel = str(f.relative_to(ROOT))
        n = len(text.splitlines())
        if n > 500:
            big.append((n, rel))
        dict_any += len(re.findall(r"dict\[str, Any\]", text))
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                funcs.append((node.end_lineno - node.lineno + 1, f"{rel}:{node.lineno} {node.name}"))
        late += _late_imports(tree)
    funcs.sort(reverse=True)
    print(f"files: {len(files)}, lines: {sum(len(f.read_text().splitlines()) for f in files)}")
    print("longest functions:")
    for n, where in funcs[:args.top]:
        print(f"  {n:4d}  {where}")
    print(f"files over 500 lines: {len(big)}" + "".join(f"\n  {n:5d}  {rel}" for n, rel in sorted(big, reverse=True)))
    print(f"late imports (inside functions): {late}")
    print(f"dict[str, Any]: {dict_any}")


if __name__ == "__main__":
    main()
