"""Negative candidates for a training batch, chosen by the ``sampler`` config group.

One set of candidate items is drawn per batch and shared by every prediction in it, so their
scores cost one (P, E) x (E, C) product. Per-prediction samples would need a (P, C, E) gather
of item vectors, which for a batch of windows (P in the tens of thousands) and C = 2048 does
not fit in memory. Sharing is also what GRU4Rec's extra samples and in-batch negatives do.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from rnnrec.losses.samplers import NegativeSampler, PopularitySampler, UniformSampler

log = logging.getLogger(__name__)

SAMPLER_NAMES = ("uniform", "popularity", "in_batch", "mixed")


class BatchNegatives:
    """Draws the candidate items of a batch and knows their sampling log-probabilities.

    - ``uniform``: ``num_negatives`` items, each item 1..N equally likely.
    - ``popularity``: ``num_negatives`` items with probability proportional to count^alpha.
    - ``in_batch``: the distinct targets of the batch. An item's chance to be among them grows
      with its training frequency, so its log q is taken as log(count / total).
    - ``mixed``: the distinct targets plus ``num_negatives`` extra items drawn as
      ``popularity`` draws them (GRU4Rec's mix of in-batch and shared samples).

    Args:
        name: one of :data:`SAMPLER_NAMES`.
        item_counts: (N + 1,) training target counts; index 0 (padding) is ignored.
        num_negatives: samples drawn per batch (``uniform``, ``popularity``), or the extra
            samples of ``mixed``; unused by ``in_batch``.
        alpha: popularity exponent of ``popularity`` and ``mixed`` (0 uniform, 1 proportional).
        mask_input_items: also mask, for each prediction, candidates among the items already
            in its input (the evaluation excludes seen items the same way).
        buffer_size: draws made per refill of the sample buffer.
        seed: seeds the sampler's own generator, so runs repeat exactly.
    """

    def __init__(
        self,
        name: str,
        item_counts: np.ndarray | torch.Tensor,
        num_negatives: int = 256,
        alpha: float = 1.0,
        mask_input_items: bool = False,
        buffer_size: int = 1_000_000,
        seed: int = 0,
    ) -> None:
        if name not in SAMPLER_NAMES:
            raise ValueError(f"sampler.name must be one of {list(SAMPLER_NAMES)}, got {name!r}")
        if name != "in_batch" and num_negatives < 1:
            raise ValueError(f"sampler.num_negatives must be positive, got {num_negatives}")
        counts = torch.as_tensor(np.asarray(item_counts), dtype=torch.float64)  # (N + 1,)
        if name != "in_batch" and num_negatives >= counts.numel() - 1:
            log.warning(
                "sampler.num_negatives=%d is not below the %d items of the catalogue: "
                "loss=ce (full softmax) would be cheaper and exact",
                num_negatives,
                counts.numel() - 1,
            )
        self.name = name
        self.num_negatives = num_negatives
        self.mask_input_items = mask_input_items
        self.num_items = counts.numel() - 1
        frequency = counts.clone()
        frequency[0] = 0.0
        # Items never seen as targets would get log 0; give them half a count instead.
        frequency = frequency.clamp(min=0.5) / frequency.clamp(min=0.5)[1:].sum()
        self._frequency_log_q = frequency.log().float()  # (N + 1,)
        generator = torch.Generator().manual_seed(seed)
        self.sampler: NegativeSampler | None = None
        if name == "uniform":
            self.sampler = UniformSampler(self.num_items, buffer_size, generator)
        elif name in ("popularity", "mixed"):
            self.sampler = PopularitySampler(counts, alpha, buffer_size, generator)

    def draw(self, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(C,) candidate items for a batch with (P,) ``targets``, and their (C,) log q."""
        parts, log_q = [], []
        if self.name in ("in_batch", "mixed"):
            distinct = targets.unique()  # (U,)
            parts.append(distinct)
            log_q.append(self._frequency_log_q_on(targets.device)[distinct])
        if self.sampler is not None:
            drawn = self.sampler.sample(self.num_negatives).to(targets.device)  # (num_negatives,)
            parts.append(drawn)
            log_q.append(self.sampler.log_probability(drawn))
        return torch.cat(parts), torch.cat(log_q)

    def random_state(self) -> dict[str, Any]:
        """The sampler's random state (see :class:`rnnrec.checkpoints.RandomStateful`)."""
        return {} if self.sampler is None else {"sampler": self.sampler.random_state()}

    def load_random_state(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`random_state`."""
        if self.sampler is not None and "sampler" in state:
            self.sampler.load_random_state(state["sampler"])

    def target_log_q(self, targets: torch.Tensor) -> torch.Tensor:
        """(P,) log q of each target under this sampler (in-batch: its frequency)."""
        if self.name in ("uniform", "popularity"):
            assert self.sampler is not None
            return self.sampler.log_probability(targets)
        return self._frequency_log_q_on(targets.device)[targets]

    def _frequency_log_q_on(self, device: torch.device) -> torch.Tensor:
        """The (N + 1,) frequency log q on ``device``, moved there once, not per batch."""
        if self._frequency_log_q.device != device:
            self._frequency_log_q = self._frequency_log_q.to(device)
        return self._frequency_log_q
