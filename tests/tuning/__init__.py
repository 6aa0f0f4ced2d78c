"""Tests of the Optuna sweeper plugin and the pruning helpers (rnnrec.tuning)."""
