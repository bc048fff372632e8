#!/usr/bin/env bash
# The wheels a GPU machine's image lacks (or has at other versions than requirements.txt) for
# dev/device_run.sh, downloaded here into .whl/ (ignored by git; pass it to the device as a
# carried path). The image's own torch, numpy, pandas, pyarrow, scikit-learn and onnxruntime
# are used: pyarrow's wheel alone (55 MB) would not fit the 64 MiB a call may carry.
#   bash dev/device_wheels.sh && echo /.whl/ >> .git/info/exclude
set -euo pipefail
PY=${PYTHON:-.venv/bin/python}
pin() { grep -i -E "^$1==" requirements.txt | head -1; }
platforms=""
for p in manylinux_2_34_x86_64 manylinux_2_31_x86_64 manylinux_2_28_x86_64 manylinux_2_27_x86_64 \
  manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms="$platforms --platform $p"
done
# Pinned in requirements.txt, then what they need beyond the image (versions as the venv has them).
pinned="$(pin transformers) $(pin tokenizers) $(pin huggingface-hub) $(pin datasets) $(pin jiwer) $(pin soundfile)"
extra=""
for name in httpx2 httpcore2 truststore dill multiprocess rapidfuzz cffi pycparser fsspec click; do
  extra="$extra $name==$($PY -c "import importlib.metadata as m; print(m.version('$name'))")"
done
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  $platforms -d .whl $pinned $extra
du -sh .whl
