"""Scoring a test set: classification metrics, rank AUC and the Bayes (noise) ceiling."""
