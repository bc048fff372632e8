"""Whether this repository is a Space that installs and starts as a ZeroGPU Space needs (README's
front matter against the slot table and requirements.txt), and, with `--resolve`, whether the
pinned requirements resolve for the card's Python (`pip install --dry-run`, from PyPI):

    python -m scripts.space_check [--resolve]

The facts checked against (docs/deployment.md cites them): ZeroGPU runs Python 3.10.13 or 3.12.12
and the Gradio SDK; `preload_from_hub` entries are "repo file1,file2 commit"; `spaces` provides the
decorator. Python 3.10 is not offered: transformers 5.21 and later require Python 3.11.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from slots.table import SLOTS

ROOT = Path(__file__).resolve().parents[1]
ZEROGPU_PYTHONS = ("3.12",)  # of ZeroGPU's 3.10.13 and 3.12.12, the one our pins install on
DATASETS = ("openslr/librispeech_asr", "google/speech_commands", "rajpurkar/squad_v2")


def card(readme: Path = ROOT / "README.md") -> Any:
    """The README's front matter, parsed as the hub parses a Space's card."""
    from huggingface_hub import SpaceCard

    return SpaceCard.load(readme).data


def pins(requirements: Path = ROOT / "requirements.txt") -> dict[str, str]:
    """name -> version of every `name==version` line."""
    found = {}
    for line in requirements.read_text().splitlines():
        if match := re.fullmatch(r"\s*([A-Za-z0-9_.-]+)==([^\s#]+).*", line):
            found[match.group(1).lower()] = match.group(2)
    return found


def problems(data: Any = None, pinned: dict[str, str] | None = None) -> list[str]:
    """What in the card (or requirements) keeps the Space from building or starting as planned."""
    data = card() if data is None else data
    pinned = pins() if pinned is None else pinned
    found = []
    if data.sdk != "gradio":
        found.append(f"sdk is {data.sdk!r}: ZeroGPU runs Gradio Spaces only")
    if str(data.python_version) not in ZEROGPU_PYTHONS:
        found.append(f"python_version {data.python_version!r}: a ZeroGPU Python our pins install on is 3.12")
    if str(data.sdk_version) != pinned.get("gradio"):
        found.append(f"sdk_version {data.sdk_version} is not requirements.txt's gradio {pinned.get('gradio')}")
    if "spaces" not in pinned:
        found.append("requirements.txt does not pin `spaces` (ZeroGPU's decorator)")
    if data.get("suggested_hardware") != "zero-a10g":
        found.append("suggested_hardware is not zero-a10g (ZeroGPU, as huggingface_hub's SpaceHardware names it)")
    expected = [spec.preload_entry for spec in SLOTS.values()]
    if list(data.get("preload_from_hub") or []) != expected:
        found.append("preload_from_hub is not the slot table's defaults; write:\n  - " + "\n  - ".join(expected))
    if list(data.models or []) != [spec.hub_id for spec in SLOTS.values()]:
        found.append("models does not list the four hub defaults of slots/table.py")
    if list(data.datasets or []) != list(DATASETS):
        found.append(f"datasets does not list the training scripts' datasets {DATASETS}")
    return found


def resolve(python_version: str) -> subprocess.CompletedProcess:
    """pip's resolution of requirements.txt for `python_version` (wheels only, nothing installed)."""
    with tempfile.TemporaryDirectory() as target:
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
                   "--only-binary=:all:", "--python-version", python_version, "--target", target,
                   "-r", str(ROOT / "requirements.txt")]  # fmt: skip
        return subprocess.run(command, capture_output=True, text=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resolve", action="store_true", help="also resolve requirements.txt for the card's Python")
    args = parser.parse_args()
    found = problems()
    for problem in found:
        print(f"README.md front matter: {problem}")
    if args.resolve:
        version = str(card().python_version)
        run = resolve(version)
        print(f"requirements.txt for Python {version}: " + ("resolves" if run.returncode == 0 else "does NOT resolve"))
        if run.returncode:
            print(run.stderr[-3000:])
            found.append("resolution")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
