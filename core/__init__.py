"""The ground floor under everything else (training scripts, slots, serving, the tabs).

The checkpoint contract between `train/` (writer) and the app (reader): `checkpoint` (the folder
and its `metrics.json`), `model_card`, `examples` (per-example results); the report's structure
table (`structure`); metrics computed offline (`metrics`); the errors both sides raise (`errors`);
a process's memory (`memory`) and model-work priority (`inference`); and every operator setting
read from the environment (`settings`).
"""
