"""fpc benchmark suite: offline, live and memory measurements against tcpdump and argus.

Run with `python3 -m bench` (or `bench/run`); see `bench/README.md`. Nothing
here is collected by pytest: the files are named `bench_*.py`.
"""
