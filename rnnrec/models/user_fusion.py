"""Collaborative filtering inside the sequence model: a user vector fused with the sequence.

Three places for the user vector (config group ``cf``): the RNN's initial state (``init``),
concatenated to every summary and projected back to H (``concat``), or mixed into every
summary through a learned gate (``gate``). ``none`` builds nothing at all.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

from rnnrec.models.encoders import RecurrentState

log = logging.getLogger(__name__)


def no_user_fusion() -> None:
    """``cf=none``: Hydra instantiates this to ``None``, so the model has no user table."""
    return None


def users_with_training_windows(window_users: np.ndarray, num_users: int) -> np.ndarray:
    """(U + 1,) True for users that own at least one training window; row 0 is never known.

    A user with fewer than two training interactions has no window, so a vector of theirs
    would never be trained: such users must use the default vector instead.
    """
    known = np.zeros(num_users + 1, dtype=bool)
    known[window_users] = True
    known[0] = False
    return known


class UserTable(nn.Module):
    """(U + 1, D) user vectors; row 0 is a learned default for users unseen in training.

    Args:
        num_users: U; user ids run 1..U.
        size: user vector size D.
        known_users: (U + 1,) True for users with training data; ``None``: all of 1..U.
        dropout: share of training examples that use the default vector instead of their own.
            Without it no training example reaches row 0, which would stay at its random start.
    """

    known: torch.Tensor  # (U + 1,) bool buffer
    fell_back: torch.Tensor  # (U + 1,) bool buffer

    def __init__(
        self,
        num_users: int,
        size: int,
        known_users: np.ndarray | torch.Tensor | None = None,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"cf.user_dropout must be in [0, 1), got {dropout}")
        self.dropout = dropout
        self.embedding = nn.Embedding(num_users + 1, size)
        nn.init.normal_(self.embedding.weight, std=size**-0.5)
        if known_users is None:
            known = torch.ones(num_users + 1, dtype=torch.bool)
        else:
            known = torch.as_tensor(np.asarray(known_users), dtype=torch.bool).clone()
            if known.shape != (num_users + 1,):
                raise ValueError(
                    f"known_users must have shape ({num_users + 1},), got {tuple(known.shape)}"
                )
        known[0] = False
        # Persistent: a checkpoint remembers who had training data, without the data.
        self.register_buffer("known", known)
        # Users that fell back during the current evaluation epoch; not part of checkpoints.
        self.register_buffer("fell_back", torch.zeros_like(known), persistent=False)

    def forward(self, users: torch.Tensor | None, batch_size: int) -> torch.Tensor:
        """(B,) user ids 1..U (or ``None``: no user known) -> (B, D) vectors."""
        if users is None:
            index = torch.zeros(batch_size, dtype=torch.long, device=self.known.device)
            return self.embedding(index)  # (B, D)
        known = self.known[users]  # (B,)
        if self.training and self.dropout > 0:
            known = known & (torch.rand(known.shape, device=known.device) >= self.dropout)
        elif not self.training:
            self.fell_back[users[~known]] = True
        return self.embedding(torch.where(known, users, 0))  # (B, D)

    def pop_fallback_count(self) -> int:
        """Distinct users that used the default vector since the last call; resets the count."""
        count = int(self.fell_back.sum())
        self.fell_back.zero_()
        return count


class UserFusion(nn.Module):
    """Base of the ``cf`` modes: a user table; subclasses decide where its vectors enter.

    Args:
        num_users: U; user ids run 1..U.
        hidden_size: the model's state size H.
        user_size: user vector size D.
        user_dropout: see :class:`UserTable`.
        known_users: (U + 1,) users with training windows; others use the default vector.
        state_shape: (states per layer, layers) of a recurrent encoder's initial state, or
            ``None`` for encoders without one. Only ``init`` uses it.
    """

    def __init__(
        self,
        num_users: int,
        hidden_size: int,
        user_size: int = 32,
        user_dropout: float = 0.1,
        known_users: np.ndarray | torch.Tensor | None = None,
        state_shape: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.user_size = user_size
        self.users = UserTable(num_users, user_size, known_users, user_dropout)

    def user_vectors(self, users: torch.Tensor | None, batch_size: int) -> torch.Tensor:
        """(B,) user ids -> (B, D) vectors, the default one for unknown users."""
        return self.users(users, batch_size)

    def initial_state(self, user_vectors: torch.Tensor) -> RecurrentState | None:
        """The encoder's initial state for these users; ``None``: zeros, as without cf."""
        return None

    def fuse(self, summary: torch.Tensor, user_vectors: torch.Tensor) -> torch.Tensor:
        """(..., H) summaries and (B, D) user vectors -> (..., H) fused summaries."""
        return summary

    def _broadcast(self, user_vectors: torch.Tensor, summary: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B, ..., D) matching ``summary``'s leading dimensions."""
        while user_vectors.dim() < summary.dim():
            user_vectors = user_vectors.unsqueeze(-2)
        return user_vectors.expand(*summary.shape[:-1], self.user_size)


class InitialStateFusion(UserFusion):
    """``init``: every layer's initial state (h and c for an LSTM) is projected from the user.

    The projection goes through tanh because the cells' hidden states live in (-1, 1); a
    start far outside that range would saturate the first steps.
    """

    def __init__(
        self,
        num_users: int,
        hidden_size: int,
        user_size: int = 32,
        user_dropout: float = 0.1,
        known_users: np.ndarray | torch.Tensor | None = None,
        state_shape: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(num_users, hidden_size, user_size, user_dropout, known_users)
        if state_shape is None:
            raise ValueError("cf=init needs a recurrent encoder (one with an initial state)")
        self.state_shape = (int(state_shape[0]), int(state_shape[1]))
        count, layers = self.state_shape
        self.projection = nn.Linear(user_size, count * layers * hidden_size)

    def initial_state(self, user_vectors: torch.Tensor) -> RecurrentState:
        count, layers = self.state_shape
        batch = user_vectors.size(0)
        states = torch.tanh(self.projection(user_vectors))  # (B, S * L * H)
        # torch.nn wants (L, B, H) per state, contiguous.
        states = states.view(batch, count, layers, self.hidden_size)  # (B, S, L, H)
        states = states.permute(1, 2, 0, 3).contiguous()  # (S, L, B, H)
        return (states[0], states[1]) if count == 2 else states[0]


class ConcatFusion(UserFusion):
    """``concat``: summary := Linear([summary; user]) back to H, at every position."""

    def __init__(
        self,
        num_users: int,
        hidden_size: int,
        user_size: int = 32,
        user_dropout: float = 0.1,
        known_users: np.ndarray | torch.Tensor | None = None,
        state_shape: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(num_users, hidden_size, user_size, user_dropout, known_users)
        self.mix = nn.Linear(hidden_size + user_size, hidden_size)

    def fuse(self, summary: torch.Tensor, user_vectors: torch.Tensor) -> torch.Tensor:
        users = self._broadcast(user_vectors, summary)  # (..., D)
        return self.mix(torch.cat([summary, users], dim=-1))  # (..., H)


class GateFusion(UserFusion):
    """``gate``: summary := g * summary + (1 - g) * Linear(user), g = sigmoid(Linear([s; u])).

    The gate lets each position decide, per unit, how much the sequence or the user's
    long-term taste should speak.
    """

    def __init__(
        self,
        num_users: int,
        hidden_size: int,
        user_size: int = 32,
        user_dropout: float = 0.1,
        known_users: np.ndarray | torch.Tensor | None = None,
        state_shape: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(num_users, hidden_size, user_size, user_dropout, known_users)
        self.gate = nn.Linear(hidden_size + user_size, hidden_size)
        self.user_to_hidden = nn.Linear(user_size, hidden_size)

    def fuse(self, summary: torch.Tensor, user_vectors: torch.Tensor) -> torch.Tensor:
        users = self._broadcast(user_vectors, summary)  # (..., D)
        gate = torch.sigmoid(self.gate(torch.cat([summary, users], dim=-1)))  # (..., H)
        return gate * summary + (1 - gate) * self.user_to_hidden(users)  # (..., H)
