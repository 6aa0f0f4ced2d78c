"""One-epoch end-to-end runs of the user-embedding (cf) and pretrained-embedding variants."""

from __future__ import annotations

import math

import pytest

from rnnrec.train import train
from tests.e2e import config

# One epoch of three batches: enough to show a variant trains, evaluates and logs.
SHORT = ("+trainer.limit_train_batches=3",)


@pytest.mark.parametrize(
    "overrides",
    [
        ("cf=init", "encoder=lstm", "encoder.num_layers=2"),
        ("cf=gate",),
        ("embedding=pretrained", "embedding.item2vec.epochs=1"),
    ],
    ids=["cf-init-lstm", "cf-gate", "embedding-pretrained"],
)
def test_variant_runs_to_a_finite_test_metric(workdir, overrides):
    results, _ = train(config(workdir, *SHORT, *overrides))
    assert math.isfinite(results["test/ndcg_10"])
    if any(o.startswith("cf=") for o in overrides):
        # Every ML-100K user has training windows: nobody needs the default vector.
        assert results["test/cf_fallback_users"] == 0.0
