#!/usr/bin/env bash
# This repository's own borrowed-GPU sessions (a bare image, nothing reachable from it; see
# dev/README.md): install the wheels dev/device_wheels.sh fetched into .whl/, then run
# bench/gpu_run.sh with them. Anyone else with a GPU runs bench/gpu_run.sh in their venv.
#   OUT=$OUT bash dev/device_run.sh
set -uo pipefail
PY=${PYTHON:-python3}
if [ -d .whl ]; then
  hf=".whl/transformers-* .whl/huggingface_hub-* .whl/tokenizers-* .whl/httpx2-* .whl/httpcore2-* .whl/truststore-*"
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site-hf $hf
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site-io \
    $(ls .whl/*.whl | grep -v -E "transformers|huggingface_hub|tokenizers|httpx2|httpcore2|truststore")
  export PYTHONPATH=/tmp/site-hf:/tmp/site-io
  $PY -c "import transformers" || { echo "pinned transformers did not import: using the image's"; export PYTHONPATH=/tmp/site-io; }
  if [ -d .whl/sk ] && ! $PY -c "import sklearn" 2>/dev/null; then  # train.kws's metrics
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site-sk .whl/sk/*.whl
    export PYTHONPATH=$PYTHONPATH:/tmp/site-sk
  fi
  # Installed with --no-compile: without this, the first process to import transformers compiles
  # it (~2 s on the H100 machine: the first timed run's start-up, 15.6 s against 13-14 s after).
  $PY -m compileall -q -j 0 ${PYTHONPATH//:/ } > /dev/null
fi
PYTHON=$PY exec bash bench/gpu_run.sh
