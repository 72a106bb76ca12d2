"""The rater-based ceiling's stated bias is measured: it matches a simulation on the generator."""

from dataclasses import replace

import numpy as np

from neipalette.data import synth
from neipalette.data.aggregate import BIAS_NOTE, CEILING_BIAS
from neipalette.data.agreement import plug_in_ceiling, rater_ceiling
from neipalette.evaluation.metrics import bayes_accuracy


def test_stated_bias_of_the_rater_ceiling_is_what_a_simulation_measures():
    est, plug = [], []
    for seed in range(1000, 1100):  # the first 100 of the 300 datasets behind CEILING_BIAS
        cfg = replace(synth.SynthConfig(), seed=seed)
        lab = synth.label_outfits(synth.draw_outfits(cfg), cfg)
        k = lab.votes.sum(axis=1)
        counts = np.stack([lab.votes.shape[1] - k, k], axis=1)
        truth = bayes_accuracy(lab.p_positive)
        est.append(rater_ceiling(counts) - truth)
        plug.append(plug_in_ceiling(counts) - truth)
    assert abs(np.mean(est) - CEILING_BIAS["empirical_bayes"]) < 0.006  # ~2 SE of 100 datasets
    assert abs(np.mean(plug) - CEILING_BIAS["plug_in"]) < 0.006
    assert np.mean(est) < 0 < np.mean(plug)  # biased down, the plug-in up: neither is unbiased
    assert "was -0.017" in BIAS_NOTE
