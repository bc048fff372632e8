"""What every training run pays before and after its work: the imports' garbage collection."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


@pytest.mark.slow
@pytest.mark.beside
def test_a_run_imports_without_collections_then_freezes_what_the_imports_made(tmp_path):
    # `python -m train.x` imports the package while sys.argv[0] is "-m"; this does the same.
    started = time.perf_counter()
    out = _run(
        f"""
        import gc, sys
        sys.argv[:] = ["-m"]
        import train
        imports_collected = gc.isenabled()
        from dataclasses import dataclass
        from train.common import RunArguments, begin

        @dataclass
        class Arguments:
            run: RunArguments

        run = begin(Arguments,
                    ["--output_dir", r"{tmp_path / "out"}", "--run_dir", r"{tmp_path / "run"}", "--report_to", "none"])
        print(imports_collected, gc.isenabled(), gc.get_freeze_count(), run.phases["start-up"])
        """
    )
    wall = time.perf_counter() - started
    imports_collected, enabled, frozen, startup = out.split()
    assert (imports_collected, enabled) == ("False", "True")
    assert 0.5 < float(startup) < wall  # the interpreter and the imports, inside the process's life
    assert int(frozen) > 100_000  # torch's and transformers' objects, out of every later collection


@pytest.mark.slow
@pytest.mark.beside
def test_importing_the_package_anywhere_else_leaves_collection_alone():
    assert _run("import gc, train, train.common; print(gc.isenabled(), gc.get_freeze_count())") == "True 0"
