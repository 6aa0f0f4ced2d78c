"""The ``none`` attention: summarise a sequence by its last real state."""

from __future__ import annotations

import torch
from torch import nn


class LastState(nn.Module):
    """No attention: the summary at a position is the encoder state at that position."""

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Summaries at every position: (B, T, H) states and (B, T) mask -> (B, T, H)."""
        return states

    def last(self, states: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Summary at each sequence's last real position: (B, T, H) -> (B, H)."""
        index = (lengths - 1).view(-1, 1, 1).expand(-1, 1, states.size(-1))  # (B, 1, H)
        return states.gather(1, index).squeeze(1)

    def weights(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Weights for inspection: each real position puts 1 on itself, (B, T, T)."""
        eye = torch.eye(states.size(1), dtype=states.dtype, device=states.device)  # (T, T)
        return eye * mask.unsqueeze(-1).to(states.dtype)  # (B, T, T); padding rows all 0
