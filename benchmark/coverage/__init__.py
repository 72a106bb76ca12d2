"""`python -m benchmark.coverage`: do the report's intervals cover what they claim?

Draws datasets of the benchmark's size from the synthetic generator, runs the configured repeated k-fold
protocol on each (colour baselines and a CNN head with fixed learning rate and epochs), and measures how
often each interval method covers the *true* expected accuracy and ROC-AUC of the same procedure trained on
n_train outfits (computed on a pool of fresh generated outfits), and how wide it is.
`features.py` renders and caches, `procedures.py` holds the models on arrays, `simulate.py` the CV, nested
CV and the coverage table, `cli.py` the command.
"""
