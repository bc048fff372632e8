"""Training scripts (`python -m train.asr`, `train.kws`, `train.qa`), their JSON configs, and what
they share: dataset readers, the frozen-encoder feature store and the heads trained on it."""

import gc
import sys

# A run starts here: `python -m train.<script>` imports this package first, while sys.argv[0] is
# still "-m" (nothing else imports it that way). Importing torch and transformers creates millions
# of long-lived objects, and each full collection they trigger walks all of them: 6 of 0.04-0.37 s
# while `train.kws` imported, 2.1 s of collections in a whole tiny run on the CPU box. Collection
# is off until the run has its arguments (`begin` then calls `core.memory.resume_collection`).
if sys.argv[:1] == ["-m"]:
    gc.disable()
