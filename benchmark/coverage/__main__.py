from benchmark.coverage.cli import main

main()
