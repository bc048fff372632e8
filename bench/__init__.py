"""Benchmarks a user runs on their own machine (`python -m bench.<name> --help`): serving speed and
load on a CPU, training speed on a GPU (`bash bench/gpu_run.sh` runs every GPU one), each printing
ratios against the raw forward pass or the HW4 recipe measured in the same run."""
