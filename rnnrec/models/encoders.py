"""Recurrent encoders: (B, T, E) embedded items -> (B, T, H) states, one per position."""

from __future__ import annotations

import logging
from typing import Literal

import torch
from torch import nn

log = logging.getLogger(__name__)

CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
# Weight blocks per layer: one per gate (GRU: reset, update, new; LSTM: input, forget, cell,
# output), each an input matrix, a recurrent matrix and two bias vectors as in torch.nn.
GATES = {"rnn": 1, "gru": 3, "lstm": 4}

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
        parameter_budget: when set, ``hidden_size`` is ignored and H becomes the largest size
            whose recurrent parameters fit this budget, so that cells compare at equal size
            (see :func:`hidden_size_for_budget`).
    """

    def __init__(
        self,
        cell: Literal["rnn", "gru", "lstm"],
        input_size: int,
        hidden_size: int = 64,
        num_layers: int = 1,
        dropout: float = 0.0,
        parameter_budget: int | None = None,
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"encoder.cell must be one of {sorted(CELLS)}, got {cell!r}")
        if parameter_budget is not None:
            hidden_size = hidden_size_for_budget(cell, input_size, num_layers, parameter_budget)
            log.info(
                "%s with %d layer(s): hidden size %d fits the budget of %d parameters (%d used)",
                cell,
                num_layers,
                hidden_size,
                parameter_budget,
                recurrent_parameters(cell, input_size, hidden_size, num_layers),
            )
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


def recurrent_parameters(cell: str, input_size: int, hidden_size: int, num_layers: int) -> int:
    """Trainable parameters of a ``torch.nn`` RNN, GRU or LSTM with these sizes."""
    gates = GATES[cell]
    first = gates * (input_size * hidden_size + hidden_size * hidden_size + 2 * hidden_size)
    later = gates * (2 * hidden_size * hidden_size + 2 * hidden_size)
    return first + (num_layers - 1) * later


def hidden_size_for_budget(cell: str, input_size: int, num_layers: int, budget: int) -> int:
    """The largest hidden size H whose recurrent parameters do not exceed ``budget``.

    Raises:
        ValueError: when even H = 1 needs more than the budget (``encoder.parameter_budget``).
    """
    if recurrent_parameters(cell, input_size, 1, num_layers) > budget:
        raise ValueError(
            f"encoder.parameter_budget={budget} is too small for a {num_layers}-layer {cell} "
            f"on inputs of size {input_size}"
        )
    low, high = 1, 2
    while recurrent_parameters(cell, input_size, high, num_layers) <= budget:
        low, high = high, 2 * high
    while high - low > 1:  # invariant: low fits, high does not
        middle = (low + high) // 2
        if recurrent_parameters(cell, input_size, middle, num_layers) <= budget:
            low = middle
        else:
            high = middle
    return low
