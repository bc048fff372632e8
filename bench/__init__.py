"""Benchmarks a user runs on their own machine (`python -m bench.<name> --help`): serving speed and
load on a CPU, training speed on a GPU (`bash bench/gpu_run.sh` runs every GPU one; `python -m bench.gpu_report`
the open GPU questions, with one table of targets and checks), each printing ratios against the
raw forward pass or the HW4 recipe measured in the same run."""
