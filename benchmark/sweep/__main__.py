from benchmark.sweep.cli import main

main()
