#!/usr/bin/env bash
# Every GPU figure in docs/benchmarks.md, in one run (about 8 minutes on one H100/H200), on any
# machine with a CUDA GPU and this project's venv (requirements.txt):
#   bash bench/gpu_run.sh                       # writes outputs/gpu/ (or $OUT), scratch in /tmp/bench-*
#   TINY=1 bash bench/gpu_run.sh                # the same steps with tiny sizes, to try it on a CPU
#   SECTIONS="check speed kws" bash bench/gpu_run.sh   # some of them (serve: the app on CUDA)
#   PYTHON=/path/to/python bash bench/gpu_run.sh       # another interpreter than .venv/bin/python
# The open GPU questions (training at real sizes with the A/B, serving on CUDA, int8 on this CPU) in
# one table with targets and checks: python -m bench.gpu_report (docs/benchmarks.md).
set -uo pipefail
OUT=${OUT:-outputs/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
if [ -x .venv/bin/python ]; then PY=${PYTHON:-.venv/bin/python}; else PY=${PYTHON:-python3}; fi
# Loader workers: the machine's cores, at most 8 (what the recorded figures used).
WORKERS=$(( $(nproc) < 8 ? $(nproc) : 8 ))
$PY -m compileall -q -j 0 train core speech qa slots serving bench > /dev/null  # before the first timed start
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null; nproc;
 $PY -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)") \
  | tee "$OUT/machine.txt"

SECTIONS=${SECTIONS:-check speed build asr kws streams e2e profile loading compile}
on() { [[ " $SECTIONS " == *" $1 "* ]]; }

# 0. The KWS head's CUDA-graph step against the eager one, step for step; the optimizer update from
#    a CUDA graph (--graphed_update) against the eager update, and each one's time.
on check && timeout 120 $PY -m bench.graph_check 2>&1 | grep -v Warning | tee "$OUT/graph_check.log"

# 1. The report's recipes against the defaults (and the SUPERB heads), real sizes on a GPU.
on speed && timeout 300 $PY -m bench.train_speed --superb --repeat 5 ${TINY:+--tiny} --json "$OUT/train_speed.json" 2>&1 \
  | grep -v Warning | tee "$OUT/train_speed.log"

# 1b. Where a store build's time goes: the encoder on build-shaped batches per precision, with and
#     without the padding-proof front end, and the copy to the host (bench/store_build.py).
on build && timeout 150 $PY -m bench.store_build ${TINY:+--tiny} --json "$OUT/store_build.json" 2>&1 \
  | grep -v -i warn | tee "$OUT/store_build.log"

# 2. train.asr with the report's config on a random-init DistilHuBERT-size encoder, precision
#    auto (bf16 on a GPU that has it): stored features, live encoder, SUPERB head; 300 steps each.
DATA=/tmp/bench-ls; ENC=/tmp/bench-encoder
$PY - "$ENC" "${TINY:-}" <<'PY'
import sys
import torch
from transformers import HubertModel, Wav2Vec2FeatureExtractor
from bench.train_speed import hubert_config
torch.manual_seed(0)
HubertModel(hubert_config(tiny=bool(sys.argv[2]))).save_pretrained(sys.argv[1])
Wav2Vec2FeatureExtractor(do_normalize=False, return_attention_mask=False).save_pretrained(sys.argv[1])
PY
on asr && $PY -m bench.synthetic $DATA --train ${TRAIN:-400} --validation 40 --test 40
on asr && for mode in ${ASR_MODES:-cached live superb}; do
  extra=""
  [ $mode = live ] && extra="--no_feature_cache"
  [ $mode = stored_w8 ] && extra="--store_workers 8"  # the store read by 8 loader workers
  [ $mode = superb ] && extra="--head superb ${TINY:+--superb_lstm_size 32}"
  start=$SECONDS
  timeout 200 $PY -m train.asr train/configs/asr_hw4.json \
    --model_name_or_path $ENC --data_dir $DATA --max_steps ${STEPS:-300} --eval_steps 150 --logging_steps 50 \
    --save_strategy no --dataloader_num_workers $WORKERS --output_dir /tmp/bench-ck-$mode --run_dir /tmp/bench-run-$mode \
    --feature_cache_dir /tmp/bench-cache $extra 2>&1 | grep -E "feature cache|precision|final|wall|Error|error" \
    | tee -a "$OUT/asr_runs.log"
  echo "$mode: wall $((SECONDS - start)) s" | tee -a "$OUT/asr_runs.log"
  cp /tmp/bench-ck-$mode/metrics.json "$OUT/asr_$mode.json"
done

# 3. train.kws with the report's config on the same encoder, synthetic Speech Commands layout,
#    300 steps: the head's step from CUDA graphs (default) and eager; the second run reuses the store.
SC=/tmp/bench-sc
on kws && $PY -m bench.synthetic $SC --speech_commands --train ${KWS_TRAIN:-3000} --validation 300 --test 300
on kws && for mode in graphs eager; do
  extra=""
  [ $mode = eager ] && extra="--no_cuda_graphs"
  start=$SECONDS
  timeout 200 $PY -m train.kws train/configs/kws_hw4.json \
    --model_name_or_path $ENC --data_dir $SC --max_steps ${STEPS:-300} --eval_steps 150 --logging_steps 50 \
    --save_strategy no --dataloader_num_workers $WORKERS --output_dir /tmp/bench-kws-$mode --run_dir /tmp/bench-kws-run-$mode \
    --feature_cache_dir /tmp/bench-kws-cache $extra 2>&1 | grep -E "feature cache|precision|final|wall|'loss'|streaming|Error|error" \
    | tee -a "$OUT/kws_runs.log"
  echo "$mode: wall $((SECONDS - start)) s" | tee -a "$OUT/kws_runs.log"
  cp /tmp/bench-kws-$mode/metrics.json "$OUT/kws_$mode.json"
done

# 3a. The keyword training's streaming evaluation (step 7) on the GPU: an hour of audio scanned
#     in bfloat16, against the raw forward pass (bench/kws_streaming_cost.py).
on streams && timeout 240 $PY -m bench.kws_streaming_cost --device "$([ -n "${TINY:-}" ] && echo cpu || echo cuda)" \
  --seconds "${STREAM_S:-$([ -n "${TINY:-}" ] && echo 20 || echo 3600)}" --batch 256 2>&1 \
  | grep -v -i warn | tee "$OUT/kws_streaming_cost.log"

# 3b. The scripts end to end, as a user runs them (issue #17): train.kws and train.asr with the
#     report's configs, the report's way (fp32, encoder on every batch) against the default (store
#     built, then reused; reused once more in the Trainer's own epoch against the lean one, and with
#     the lean epoch's optimizer update from a CUDA graph, --graphed_update), each
#     phase's time and the end-to-end ratios (bench/train_e2e.py).
#     E2E_TASKS="kws" E2E_TRAIN="kws=51094": the real Speech Commands training split's size (KWS alone
#     fits one call: the report's way ~3 min of it on an H100, estimated from the 20,000-clip run).
on e2e && timeout ${E2E_TIMEOUT:-540} $PY -m bench.train_e2e ${TINY:+--tiny} ${E2E_EPOCHS:+--epochs $E2E_EPOCHS} \
  ${E2E_TASKS:+--tasks $E2E_TASKS} ${E2E_TRAIN:+--train $E2E_TRAIN} \
  --work /tmp/bench-e2e --json "$OUT/train_e2e.json" 2>&1 | grep --line-buffered -v -i -E "warn|shards" | tee "$OUT/train_e2e.log"

# 3c. Where a run's host time goes on this machine (issue #17): the imports of `python -m train.kws`
#     by package, and cProfile over the epoch of a KWS run on a reused store, lean and Trainer's
#     loop, per optimizer step (bench/step_profile.py; ~1 minute a task). PROFILE_TASKS="kws asr" adds
#     train.asr's CTC head.
for task in ${PROFILE_TASKS:-kws}; do
  on profile && timeout 240 $PY -m bench.step_profile --task $task ${TINY:+--tiny} --work /tmp/bench-profile \
    --json "$OUT/step_profile_$task.json" 2>&1 | grep --line-buffered -E "^#|^ +[0-9]" | tee "$OUT/step_profile_$task.log"
done

# 4. The loading path with more workers than this project's 2-core CI box has.
on loading && timeout 120 $PY -m bench.data_loading --workers 0 4 8 --build_utterances 0 --json "$OUT/data_loading.json" \
  2>&1 | grep -v INFO | tee "$OUT/data_loading.log"

# 5. QA's bf16 step under torch.compile (compile time included): what --torch_compile True gives.
on compile && timeout 300 $PY -m bench.train_speed --tasks qa-distilbert qa-xlmr --repeat 5 --qa_compile ${TINY:+--tiny} \
  --json "$OUT/qa_compile.json" 2>&1 | grep -v Warning | tee "$OUT/qa_compile.log"

# 6. Serving on CUDA (not in the default SECTIONS: ~4 minutes; SECTIONS=serve): every endpoint of
#    the app in fp16 over HTTP beside the raw fp16 and fp32 forwards on the same GPU and the raw
#    int8 forward on this machine's CPU, and how far fp16 is from fp32 (bench/serve_speed.py).
on serve && timeout 420 $PY -m bench.serve_speed --repeat 7 --json "$OUT/serve_speed.json" 2>&1 \
  | grep -v -i warn | tee "$OUT/serve_speed.log"

# 7. ZeroGPU end to end (not in the default SECTIONS: SECTIONS=zerogpu): the real `spaces` package
#    in its ZeroGPU mode against a stand-in device API, the app's visits and Live, what each GPU
#    call asked for and used (bench/zerogpu_e2e.py). Never run yet: no GPU since it was written.
on zerogpu && timeout 600 $PY -m bench.zerogpu_e2e 2>&1 | grep -v -i warn | tee "$OUT/zerogpu_e2e.log"
