"""Recurrent encoders: (B, T, E) embedded items -> (B, T, H) states, one per position."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}

# (L, B, H) hidden state, or (h, c) for an LSTM.
RecurrentState = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


class RecurrentEncoder(nn.Module):
    """A vanilla RNN (tanh), GRU or LSTM from ``torch.nn`` over right-padded sequences.

    The recurrence is causal, so padding after a sequence's end cannot change the states of
    its real positions; padded positions are simply ignored downstream. That is why no
    packing is needed.

    Args:
        cell: ``rnn``, ``gru`` or ``lstm``.
        input_size: embedding size fed in at each position.
        hidden_size: state size H.
        num_layers: stacked layers.
        dropout: dropout between stacked layers (``torch.nn`` applies none after the last).
    """

    def __init__(
        self,
        cell: Literal["rnn", "gru", "lstm"],
        input_size: int,
        hidden_size: int = 64,
        num_layers: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"encoder.cell must be one of {sorted(CELLS)}, got {cell!r}")
        self.hidden_size = hidden_size
        # (states per layer, layers) of ``initial_state``: an LSTM carries (h, c).
        self.state_shape = (2 if cell == "lstm" else 1, num_layers)
        self.rnn = CELLS[cell](
            input_size,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )

    def forward(
        self,
        embedded: torch.Tensor,
        initial_state: RecurrentState | None = None,
    ) -> torch.Tensor:
        """(B, T, E) -> (B, T, H); ``initial_state`` is (L, B, H), or (h0, c0) for an LSTM.

        Without ``initial_state`` every layer starts from zeros, as in ``torch.nn``.
        """
        states, _ = self.rnn(embedded, initial_state)  # (B, T, H)
        return states

    def step(
        self, embedded: torch.Tensor, state: RecurrentState
    ) -> tuple[torch.Tensor, RecurrentState]:
        """Like :meth:`forward`, and also return the state after the last position, so that
        session-parallel training can carry it into the next batch."""
        states, final = self.rnn(embedded, state)  # (B, T, H), (L, B, H) or (h, c)
        return states, final

    def zero_state(self, batch_size: int, like: torch.Tensor) -> RecurrentState:
        """All-zero state for ``batch_size`` sequences, on ``like``'s device and dtype."""
        count, layers = self.state_shape
        zeros = [like.new_zeros(layers, batch_size, self.hidden_size) for _ in range(count)]
        return (zeros[0], zeros[1]) if count == 2 else zeros[0]
