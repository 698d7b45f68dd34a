"""`python -m bench`: the benchmarks' command line (bench.cli)."""

from bench.cli import main

main()
