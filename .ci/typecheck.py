"""Type checks beyond the package's own ``mypy`` run (which is strict, see pyproject.toml):

1. the README's Python examples, each written to the file its first-line comment names
   (``# myapp/tasks.py``...), and ``tests/typecheck/`` (typed user code with the mistakes mypy
   must catch), all under ``mypy --strict``;
2. ``stubtest``: the compiled codec ``faktory._resp`` against ``faktory/_resp.pyi``.

Run from the repository root: ``python .ci/typecheck.py``; exits non-zero on any error.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_examples(target: Path) -> list[Path]:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    written = []
    for index, block in enumerate(blocks):
        first = block.splitlines()[0] if block.strip() else ""
        match = re.match(r"#\s*([\w/]+\.py)\b", first)
        path = target / (match.group(1) if match else f"readme_example_{index}.py")
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(target).parents:
            if str(parent) != ".":
                (target / parent / "__init__.py").touch()
        path.write_text(block)
        written.append(path)
    return written


def main() -> int:
    failed = False
    with tempfile.TemporaryDirectory(prefix="faktory-typecheck-") as tmp:
        target = Path(tmp)
        files = readme_examples(target)
        for source in sorted((ROOT / "tests" / "typecheck").glob("*.py")):
            shutil.copy(source, target / source.name)
            files.append(target / source.name)
        print(f"mypy --strict on {len(files)} files: {', '.join(str(f.relative_to(target)) for f in files)}",
              flush=True)
        # MYPYPATH: an editable install is an import hook mypy cannot follow
        env = dict(os.environ, MYPYPATH=str(ROOT))
        proc = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                               "--python-version", "3.10", *map(str, files)], cwd=target, env=env)
        failed |= proc.returncode != 0
    proc = subprocess.run([sys.executable, "-m", "mypy.stubtest", "faktory._resp"], cwd=ROOT)
    failed |= proc.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
