"""Extractive question answering, shared by `train/` and the app: windowed features and answer
post-processing (`extractive`), SQuAD v2 data (`squad_data`), its metric (`squad_metric`), and
where two QA checkpoints' per-example results differ (`error_analysis`)."""
