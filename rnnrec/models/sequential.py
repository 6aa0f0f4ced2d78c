"""SequentialRecommender: item embedding -> encoder -> attention -> item scores."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from rnnrec.losses.candidates import BatchNegatives
from rnnrec.losses.sampled import CandidateLoss, SampledSoftmax
from rnnrec.losses.sampled_objective import Predictions, SampledObjective
from rnnrec.models.attention.last_state import LastState
from rnnrec.models.encoders import RecurrentEncoder, RecurrentState
from rnnrec.models.heads import HeadInput, as_heads, build_heads
from rnnrec.models.item_scores import ItemScores
from rnnrec.models.output import ItemScorer
from rnnrec.models.ranking_module import RankingModule
from rnnrec.models.user_fusion import UserFusion
from rnnrec.optim.clipping import clip_grad_norm
from rnnrec.optim.lazy_adam import LazyAdam

log = logging.getLogger(__name__)

EMBEDDING_NAMES = ("random", "pretrained")


class SequentialRecommender(RankingModule):
    """Next-item recommender assembled from parts chosen by config.

    Training runs one forward pass per window and puts a loss at every position (targets are
    the inputs shifted by one); evaluation scores the catalogue from the last real position.

    Session-parallel data (batches with ``resets``, see :mod:`rnnrec.data.session_parallel`)
    instead brings one event per slot and batch: the recurrent state of each slot is carried
    from batch to batch (without gradient, as GRU4Rec does) and zeroed where a new session
    starts, in training and in evaluation alike.

    Args:
        num_items: catalogue size N; item ids run 1..N and 0 is padding.
        encoder: builds the encoder, given ``input_size``; maps (B, T, E) to (B, T, H).
        attention: maps states and mask to summaries (``None``: last state).
        loss: full softmax (maps (P, N + 1) scores and (P,) targets to a scalar), or a loss of
            :mod:`rnnrec.losses.sampled`, which scores the target against the negatives that
            ``sampler`` draws for each batch.
        optimizer: builds the optimizer, given the parameters.
        scheduler: builds a learning-rate scheduler, given the optimizer, or ``None``.
        embedding_size: item embedding size E (independent of H).
        embedding_dropout: dropout on item embeddings.
        hidden_dropout: dropout on encoder states before scoring.
        tie_weights: score items with the input embedding table instead of a separate one.
        output_activation: activation on the summary before scoring: none, tanh, relu, gelu.
        cf: user fusion (:mod:`rnnrec.models.user_fusion`), built or as a factory taking
            ``num_users``, ``hidden_size``, ``known_users`` and ``state_shape``; ``None``: no
            user vectors at all.
        num_users: U, needed with ``cf``; user ids run 1..U.
        known_users: (U + 1,) users with training windows; the others get the default vector.
        embedding: the input table's settings (config group ``embedding``): ``name`` is
            ``random`` or ``pretrained``, ``freeze`` keeps the table fixed; the pretraining
            settings are read by ``build_model``, which computes ``pretrained_item_vectors``.
        pretrained_item_vectors: (N + 1, E) start of the input table, or ``None`` (random).
        task: extra heads (config group ``task``): ``heads`` maps ``rating`` and/or ``genre``
            to their settings (``weight``, ...); each adds ``weight * its loss`` to the
            next-item loss. ``None`` or no heads: next-item loss only.
        genre_matrix: (N + 1, G) multi-hot item genres, needed by the genre head.
        rating_mean: mean training rating, the rating head's starting bias.
        sampler: settings of :class:`rnnrec.losses.candidates.BatchNegatives` (config group
            ``sampler``); read only when ``loss`` is a sampled loss.
        item_counts: (N + 1,) training target counts, for popularity sampling and logQ.
        session_parallel: the data comes as session-parallel batches (see above).
        sparse_gradients: give the item tables sparse gradients, only the rows of the items a
            batch uses (inputs, targets, sampled negatives), so that an optimizer such as
            :class:`rnnrec.optim.lazy_adam.LazyAdam` updates those rows alone. Pays off for
            large catalogues with a sampled loss; full softmax scores every item, so its
            output table's gradient stays dense.
        item_block_size: see :class:`rnnrec.models.ranking_module.RankingModule`.
    """

    scores_by_block = True  # scores are (projected summary) @ (item table)^T + bias

    def __init__(
        self,
        num_items: int,
        encoder: Callable[..., nn.Module],
        loss: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        attention: nn.Module | None = None,
        scheduler: Callable[..., Any] | None = None,
        embedding_size: int = 64,
        embedding_dropout: float = 0.0,
        hidden_dropout: float = 0.0,
        tie_weights: bool = False,
        output_activation: str = "none",
        ks: Sequence[int] = (5, 10, 20),
        exclude_seen: bool = True,
        item_block_size: int | None = None,
        cf: UserFusion | Callable[..., UserFusion | None] | None = None,
        num_users: int | None = None,
        known_users: np.ndarray | torch.Tensor | None = None,
        embedding: Mapping[str, Any] | None = None,
        pretrained_item_vectors: np.ndarray | torch.Tensor | None = None,
        task: Mapping[str, Any] | None = None,
        genre_matrix: np.ndarray | torch.Tensor | None = None,
        rating_mean: float | None = None,
        sampler: Mapping[str, Any] | None = None,
        item_counts: np.ndarray | torch.Tensor | None = None,
        session_parallel: bool = False,
        sparse_gradients: bool = False,
    ) -> None:
        super().__init__(ks=ks, exclude_seen=exclude_seen, item_block_size=item_block_size)
        self.num_items = num_items
        self.sparse_gradients = sparse_gradients
        self.item_embedding = nn.Embedding(
            num_items + 1, embedding_size, padding_idx=0, sparse=sparse_gradients
        )
        nn.init.normal_(self.item_embedding.weight, std=embedding_size**-0.5)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()
        embedding = dict(embedding or {})
        name = embedding.get("name", "random")
        if name not in EMBEDDING_NAMES:
            raise ValueError(f"embedding.name must be one of {list(EMBEDDING_NAMES)}, got {name!r}")
        if pretrained_item_vectors is not None:
            self._load_item_vectors(pretrained_item_vectors)
        if embedding.get("freeze", False):
            # With tie_weights the output layer shares the table, so it stays fixed too.
            self.item_embedding.weight.requires_grad_(False)
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        self.encoder = encoder(input_size=embedding_size)
        hidden_size = int(self.encoder.hidden_size)  # type: ignore[arg-type]
        self.attention: nn.Module = attention if attention is not None else LastState()
        self.hidden_dropout = nn.Dropout(hidden_dropout)
        self.scorer = ItemScorer(
            hidden_size,
            num_items,
            self.item_embedding if tie_weights else None,
            activation=output_activation,
            sparse_gradients=sparse_gradients,
        )
        self.loss: nn.Module = loss
        self.sampled_objective = _sampled_objective(loss, sampler, item_counts, num_items)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.user_fusion = self._build_user_fusion(cf, num_users, hidden_size, known_users)
        self.heads = build_heads(
            (task or {}).get("heads"),
            hidden_size=hidden_size,
            embedding_size=embedding_size,
            genre_matrix=genre_matrix,
            rating_mean=rating_mean,
        )
        self.session_parallel = session_parallel
        if session_parallel:
            self._check_session_parallel()
        # State carried between session-parallel batches, per stage (train, val, test).
        self._carried: dict[str, RecurrentState] = {}

    def _check_session_parallel(self) -> None:
        """Fail before training when a part cannot work on one event per slot and batch."""
        if not isinstance(self.encoder, RecurrentEncoder):
            raise ValueError(
                "session-parallel data needs a recurrent encoder (encoder=gru, lstm or rnn) "
                "whose state can be carried between batches; model=sasrec reads whole sequences"
            )
        if not isinstance(self.attention, LastState):
            raise ValueError(
                "session-parallel batches hold one event per slot, so there are no earlier "
                "states to attend over: use attention=none with session data"
            )
        if self.user_fusion is not None:
            raise ValueError("session data has no users: use cf=none")
        objective = self.sampled_objective
        if objective is not None and objective.negatives.mask_input_items:
            raise ValueError(
                "sampler.mask_input_items needs whole input sequences, which session-parallel "
                "batches (one event per slot) do not carry: set it false for session data"
            )

    def _build_user_fusion(
        self,
        cf: UserFusion | Callable[..., UserFusion | None] | None,
        num_users: int | None,
        hidden_size: int,
        known_users: np.ndarray | torch.Tensor | None,
    ) -> UserFusion | None:
        if cf is None or isinstance(cf, UserFusion):
            return cf
        if num_users is None:
            raise ValueError("cf (user embeddings) needs num_users, the number of users")
        return cf(
            num_users=num_users,
            hidden_size=hidden_size,
            known_users=known_users,
            # Only recurrent encoders have an initial state to set (cf=init).
            state_shape=getattr(self.encoder, "state_shape", None),
        )

    def _load_item_vectors(self, vectors: np.ndarray | torch.Tensor) -> None:
        """Copy pretrained vectors into the input table, at the random start's scale.

        The random start has rows of norm about 1; pretrained rows may be far larger, which
        would saturate the encoder and, with tied weights, the output scores at the start.
        """
        weight = self.item_embedding.weight
        table = torch.as_tensor(np.asarray(vectors), dtype=weight.dtype)
        if table.shape != weight.shape:
            raise ValueError(
                f"pretrained item vectors have shape {tuple(table.shape)}, "
                f"the input table {tuple(weight.shape)} (num_items + 1, embedding_size)"
            )
        scale = table[1:].norm(dim=1).mean().clamp(min=1e-12)
        with torch.no_grad():
            weight.copy_(table / scale)
            weight[0].zero_()

    def _user_vectors(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """(B, D) user vectors with cf, else ``None``; a batch without users gets defaults."""
        if self.user_fusion is None:
            return None
        return self.user_fusion.user_vectors(batch.get("users"), batch["inputs"].size(0))

    def encode(
        self, inputs: torch.Tensor, initial_state: RecurrentState | None = None
    ) -> torch.Tensor:
        """(B, T) item ids -> (B, T, H) encoder states."""
        embedded = self.embedding_dropout(self.item_embedding(inputs))  # (B, T, E)
        # Non-recurrent encoders take no initial state; only cf=init ever passes one.
        states = (
            self.encoder(embedded)
            if initial_state is None
            else self.encoder(embedded, initial_state=initial_state)
        )
        return self.hidden_dropout(states)  # (B, T, H)

    def _states(
        self, batch: dict[str, torch.Tensor], users: torch.Tensor | None, stage: str
    ) -> torch.Tensor:
        """(B, T, H) encoder states of a batch, given its (B, D) user vectors or ``None``."""
        if "resets" in batch:
            return self._session_states(batch, stage)
        inputs = batch["inputs"]
        initial = None
        if self.user_fusion is not None and users is not None:
            initial = self.user_fusion.initial_state(users)
        return self.encode(inputs, initial)

    def _session_states(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        """(B, 1, H) states of one session-parallel step, carrying each slot's state."""
        encoder = self.encoder
        assert isinstance(encoder, RecurrentEncoder)
        embedded = self.embedding_dropout(self.item_embedding(batch["inputs"]))  # (B, 1, E)
        state = self._carried.get(stage)
        size = embedded.shape[0]
        if state is None or _state_batch_size(state) != size:
            state = encoder.zero_state(size, like=embedded)
        keep = (~batch["resets"]).to(embedded.dtype).view(1, -1, 1)  # (1, B, 1)
        states, final = encoder.step(embedded, _map_state(state, lambda s: s * keep))
        # Truncated backpropagation: the next batch starts from the state, not its history.
        self._carried[stage] = _map_state(final, torch.Tensor.detach)
        return self.hidden_dropout(states)  # (B, 1, H)

    def _fuse(self, summary: torch.Tensor, users: torch.Tensor | None) -> torch.Tensor:
        if self.user_fusion is None or users is None:
            return summary
        return self.user_fusion.fuse(summary, users)  # (..., H)

    def training_losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Loss of every task (``next_item`` and each head) and their weighted ``total``."""
        inputs, targets = batch["inputs"], batch["targets"]
        users = self._user_vectors(batch)  # (B, D) or None
        mask = inputs > 0  # (B, T)
        states = self._states(batch, users, "train")  # (B, T, H)
        summaries = self._fuse(self.attention(states, mask), users)[mask]  # (P, H)
        next_items = targets[mask]  # (P,)
        losses = {"next_item": self._next_item_loss(batch, summaries, next_items, mask)}
        total = losses["next_item"]
        if len(self.heads):
            ratings = batch.get("ratings")
            x = HeadInput(
                summaries,
                next_items,
                self.item_embedding(next_items),  # (P, E)
                None if ratings is None else ratings[mask],  # (P,)
            )
            for name, head in as_heads(self.heads).items():
                losses[name] = head.loss(x)
                total = total + head.weight * losses[name]
        losses["total"] = total
        return losses

    def _next_item_loss(
        self,
        batch: dict[str, torch.Tensor],
        summaries: torch.Tensor,
        next_items: torch.Tensor,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        """Loss of the (P,) real positions: full softmax, or against sampled negatives."""
        if self.sampled_objective is None:
            # Score only real positions: padding would waste a (T, N) block per example.
            return self.loss(self.scorer(summaries), next_items)  # from (P, N + 1) scores
        rows, positions = mask.nonzero(as_tuple=True)  # (P,), (P,): the order of [mask]
        history = None if "resets" in batch else batch["inputs"]
        loss, masked_share = self.sampled_objective(
            self.scorer, Predictions(summaries, next_items, history, rows, positions)
        )
        self.log("train/masked_negatives", masked_share, on_step=False, on_epoch=True)
        return loss

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        losses = self.training_losses(batch)
        for name, value in losses.items():
            key = "train/loss" if name == "total" else f"train/loss_{name}"
            self.log(key, value, on_step=False, on_epoch=True, prog_bar=name == "total")
        return losses["total"]

    def _evaluation_summary(
        self, batch: dict[str, torch.Tensor], stage: str = "predict"
    ) -> torch.Tensor:
        """(B, H) summary after the last input position of each example."""
        users = self._user_vectors(batch)  # (B, D) or None
        states = self._states(batch, users, stage)  # (B, T, H)
        summary = self.attention.last(states, batch["lengths"])  # type: ignore[operator]
        return self._fuse(summary, users)  # (B, H)

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.scorer(self._evaluation_summary(batch))  # (B, N + 1)

    def item_scores(self, batch: dict[str, torch.Tensor]) -> ItemScores:
        return self.scorer.item_scores(self._evaluation_summary(batch))

    def evaluation_scores(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        summary = self._evaluation_summary(batch, stage)  # (B, H)
        self._update_head_metrics(batch, summary, stage)
        return self.scorer(summary)  # (B, N + 1)

    def evaluation_item_scores(self, batch: dict[str, torch.Tensor], stage: str) -> ItemScores:
        summary = self._evaluation_summary(batch, stage)  # (B, H)
        self._update_head_metrics(batch, summary, stage)
        return self.scorer.item_scores(summary)

    def _update_head_metrics(
        self, batch: dict[str, torch.Tensor], summary: torch.Tensor, stage: str
    ) -> None:
        """Evaluation metrics of the task heads, from the (B, H) summaries of the batch."""
        if not len(self.heads):
            return
        targets = batch["targets"]  # (B,)
        x = HeadInput(summary, targets, self.item_embedding(targets), batch.get("target_ratings"))
        for head in as_heads(self.heads).values():
            head.update_metrics(x, stage)

    def on_train_epoch_start(self) -> None:
        self._carried.pop("train", None)

    def on_validation_epoch_start(self) -> None:
        self._carried.pop("val", None)

    def on_test_epoch_start(self) -> None:
        self._carried.pop("test", None)

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        self._log_fallback_users("val")
        self._log_head_metrics("val")

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        self._log_fallback_users("test")
        self._log_head_metrics("test")

    def _log_head_metrics(self, stage: str) -> None:
        for head in as_heads(self.heads).values():
            for key, value in head.compute_metrics(stage).items():
                self.log(f"{stage}/{key}", value.float())

    def _log_fallback_users(self, prefix: str) -> None:
        """How many evaluated users had no training window and used the default vector."""
        if self.user_fusion is None:
            return
        count = self.user_fusion.users.pop_fallback_count()
        log.info("%s: %d users without a training window used the default vector", prefix, count)
        self.log(f"{prefix}/cf_fallback_users", float(count))

    def configure_optimizers(self) -> Any:
        # A frozen input table (embedding.freeze) has no gradient: leave it out.
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = self.optimizer_factory(params=params)
        if self.sparse_gradients:
            _check_sparse_training(optimizer, self._trainer)
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.scheduler_factory(optimizer)}

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if not self.sparse_gradients:
            return
        # An embedding lookup leaves one gradient row per occurrence of an item. torch's SGD
        # adds them to its momentum buffer as they come, so without merging the buffer grows
        # by a batch's rows every step; merged, it holds at most one row per item.
        for param in self.parameters():
            if param.grad is not None and param.grad.is_sparse:
                param.grad = param.grad.coalesce()

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        if not self.sparse_gradients or gradient_clip_val is None:
            super().configure_gradient_clipping(
                optimizer, gradient_clip_val, gradient_clip_algorithm
            )
            return
        _check_sparse_clipping(gradient_clip_algorithm)
        # torch's clip_grad_norm_ cannot take the norm of a sparse gradient.
        clip_grad_norm(
            (p for group in optimizer.param_groups for p in group["params"]),
            float(gradient_clip_val),
        )


def _check_sparse_training(optimizer: torch.optim.Optimizer, trainer: Any) -> None:
    """Refuse, before the first step, settings that cannot train with sparse gradients."""
    name = type(optimizer).__name__
    if trainer is not None and trainer.world_size > 1:
        # Lightning's DDP averages dense gradients; sparse ones were never tried under it.
        raise ValueError(
            "model.sparse_gradients=true trains in one process only; "
            f"this trainer has {trainer.world_size} (trainer.devices / trainer.num_nodes)"
        )
    if trainer is not None and trainer.gradient_clip_val is not None:
        _check_sparse_clipping(trainer.gradient_clip_algorithm)
    if isinstance(optimizer, LazyAdam):
        return
    if isinstance(optimizer, torch.optim.SGD | torch.optim.Adagrad):
        if all(group["weight_decay"] == 0 for group in optimizer.param_groups):
            return
        raise ValueError(
            f"model.sparse_gradients=true: torch's {name} takes sparse gradients only without "
            "weight decay; set optimizer.weight_decay=0, or use optimizer=lazy_adam"
        )
    hint = ""
    if any("momentum" in group for group in optimizer.param_groups):
        # experiment=gru4rec sets optimizer.momentum, which lazy_adam does not take.
        hint = " (with lazy_adam or adagrad, also drop its momentum: ~optimizer.momentum)"
    raise ValueError(
        "model.sparse_gradients=true needs an optimizer that takes sparse gradients "
        f"(optimizer=lazy_adam, or sgd or adagrad without weight decay); {name} does not{hint}"
    )


def _check_sparse_clipping(algorithm: Any) -> None:
    """Only norm clipping is implemented for sparse gradients."""
    name = getattr(algorithm, "value", algorithm)  # Lightning passes an enum
    if name not in (None, "norm"):
        raise ValueError(
            f"trainer.gradient_clip_algorithm={name} cannot clip the sparse gradients of "
            "model.sparse_gradients=true; use norm"
        )


def _map_state(
    state: RecurrentState, function: Callable[[torch.Tensor], torch.Tensor]
) -> RecurrentState:
    """Apply ``function`` to the hidden state, or to both parts of an LSTM's (h, c)."""
    if isinstance(state, tuple):
        return function(state[0]), function(state[1])
    return function(state)


def _state_batch_size(state: RecurrentState) -> int:
    return int((state[0] if isinstance(state, tuple) else state).shape[1])


def _sampled_objective(
    loss: nn.Module,
    sampler: Mapping[str, Any] | None,
    item_counts: np.ndarray | torch.Tensor | None,
    num_items: int,
) -> SampledObjective | None:
    """The objective of a sampled loss; ``None`` for a loss over the whole catalogue."""
    if not isinstance(loss, CandidateLoss | SampledSoftmax):
        return None
    name = type(loss).__name__
    if sampler is None:
        raise ValueError(f"loss {name} scores sampled negatives and needs a sampler (sampler=...)")
    if item_counts is None:
        raise ValueError(f"loss {name} needs item_counts, the training frequency of every item")
    settings = {key: value for key, value in sampler.items() if not str(key).startswith("_")}
    return SampledObjective(loss, BatchNegatives(item_counts=item_counts, **settings), num_items)
