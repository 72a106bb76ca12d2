"""`python -m benchmark.report`: write the report of a benchmark run."""

from benchmark.report.cli import main

main()
