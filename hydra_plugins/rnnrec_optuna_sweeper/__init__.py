"""rnnrec's Hydra sweeper on Optuna's ask-and-tell API (``hydra/sweeper=rnnrec_optuna``).

Hydra imports every module of the ``hydra_plugins`` namespace package at start-up, so this
package stays light: Optuna is imported only when a sweep runs. See ``optuna_sweeper``.
"""
