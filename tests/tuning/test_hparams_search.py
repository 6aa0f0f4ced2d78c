"""The ``conf/hparams_search`` configs compose with rnnrec's root config and build the sweeper.

``conf/train.yaml`` does not list the group yet: the test adds the recommended defaults line
to a copy of ``conf`` and composes as ``rnnrec-train -m hparams_search=NAME`` would.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from hydra_plugins.rnnrec_optuna_sweeper.optuna_sweeper import (
    RnnrecOptunaSweeper,
    params_as_overrides,
    parse_search_space,
)

CONF = Path(__file__).resolve().parents[2] / "conf"
DEFAULTS_LINE = "  - hparams_search: null"


@pytest.fixture(scope="module")
def conf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("conf") / "conf"
    shutil.copytree(CONF, folder)
    root = folder / "train.yaml"
    lines = root.read_text().splitlines()
    if not any(line.strip().startswith("- hparams_search") for line in lines):
        at = next(i for i, line in enumerate(lines) if line.strip().startswith("- _self_"))
        lines.insert(at, DEFAULTS_LINE)
        root.write_text("\n".join(lines) + "\n")
    return folder


@pytest.mark.parametrize(
    ("name", "objectives", "pruner"),
    [
        ("ml100k_optuna", ["val/ndcg_10"], "median"),
        ("accuracy_vs_time", ["val/ndcg_10", "time/fit_s"], "none"),
    ],
)
def test_search_config_composes_and_builds_the_sweeper(
    conf_dir: Path, name: str, objectives: list[str], pruner: str
) -> None:
    with initialize_config_dir(version_base="1.3", config_dir=str(conf_dir)):
        cfg = compose("train", overrides=[f"hparams_search={name}"], return_hydra_config=True)
    sweeper_cfg = cfg.hydra.sweeper
    assert sweeper_cfg._target_.endswith("RnnrecOptunaSweeper")
    # What Hydra fills in at run time: the folder the command starts in.
    cfg.hydra.runtime.cwd = "/launch/dir"
    sweeper = instantiate(sweeper_cfg)
    # Hydra's plugin scan executes the module again: compare names, not class objects.
    assert type(sweeper).__name__ == RnnrecOptunaSweeper.__name__
    assert sweeper.objectives == objectives
    assert sweeper.pruner_spec["name"] == pruner
    assert sweeper.storage == "sqlite:////launch/dir/optuna.db"
    space = parse_search_space(params_as_overrides(sweeper.params))
    assert len(space.distributions) >= 6
    for key in space.distributions:
        # Every searched key exists in the composed config (a group, or a value).
        assert key in cfg or OmegaConf.select(cfg, key) is not None, key
