"""``--compile``: a static KV cache sized once for the session and a compiled one-token step.

Decoding one token at a time is dominated by per-step overhead on a GPU (kernel launches, the
Python of ~30 layers), which ``torch.compile`` removes: with CUDA graphs
(``mode="reduce-overhead"``) a whole step is one graph replay. Compiled code is specialised to
its input shapes, so the one-token step must always see the same shapes: the KV cache is a
``StaticCache`` of ``max_cache_len`` tokens allocated once, and every step feeds one token.
Nothing then changes between turns and the step never recompiles:

- the write position is a tensor inside the cache (``cumulative_length``), so it is data, not
  a shape; positions past it hold stale keys and values that the causal mask hides;
- prefix reuse (Generator._prefill) crops the cache by moving that position back, exactly as
  with the dynamic cache;
- the prompt (any length) is prefilled eagerly into the same cache: compiling it would compile
  once per prompt length.

The step's attention spans the whole static cache every token, so its size is a trade-off
(:data:`DEFAULT_COMPILED_CONTEXT`); ``--context`` sets it.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from leverchat.engine.types import EngineError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

# The static cache's size when --context is not given: long chats fit, and each step's
# attention over the cache stays cheap next to the weights it reads.
DEFAULT_COMPILED_CONTEXT = 4096
# Calls that compile and, with CUDA graphs, warm up and record the graph before it replays.
_WARM_UP_STEPS = 3


def compiled_graph_count() -> int:
    """How many graphs torch.compile has built in this process (a recompile adds one)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


class CompiledStep:
    """A session-long static KV cache and the compiled forward pass for one new token.

    Use from the engine thread only. ``backend`` is torch.compile's (tests use ``"eager"``,
    which traces and guards like the real one without generating code).
    """

    def __init__(
        self,
        model: Any,
        device: torch.device,
        max_cache_len: int,
        *,
        backend: str = "inductor",
    ) -> None:
        import torch
        from transformers import StaticCache

        if getattr(model.config, "is_encoder_decoder", False):
            raise EngineError("--compile supports decoder-only models; drop --compile")
        self.device = device
        self.max_cache_len = max_cache_len
        self.cache: Any = StaticCache(config=model.config, max_cache_len=max_cache_len)
        # CUDA graphs replay a whole step as one launch; elsewhere the default mode (fused
        # kernels, no Python per layer) is what compile offers.
        self.mode = "reduce-overhead" if device.type == "cuda" and backend == "inductor" else None
        self.backend = backend
        self._step: Any = torch.compile(
            model.forward, backend=backend, mode=self.mode, fullgraph=True, dynamic=False
        )
        self.warm_up_s: float | None = None
        self.graphs_after_warm_up: int | None = None

    def step(self, cache_argument: str, token: int) -> Any:
        """The logits after ``token`` (written at the cache's current position)."""
        import torch

        input_ids = torch.tensor([[token]], dtype=torch.long, device=self.device)
        output = self._step(
            input_ids=input_ids, use_cache=True, logits_to_keep=1, **{cache_argument: self.cache}
        )
        # With CUDA graphs the output lives in the graph's memory, which the next replay
        # overwrites: keep a copy (one small vector) so nothing reads a stale step.
        return output.logits[0, -1].clone()

    def warm_up(self, prefill: Any, cache_argument: str, token: int) -> float:
        """Compile (and record) the step now, not in the user's first reply; leaves the cache
        empty. ``prefill(ids)`` runs the eager forward into this cache. Returns seconds."""
        started = time.perf_counter()
        try:
            prefill([token])
            for _ in range(_WARM_UP_STEPS):
                self.step(cache_argument, token)
        except EngineError:
            raise
        except Exception as error:
            log.exception("torch.compile failed")
            raise EngineError(
                f"--compile failed on {self.device} ({type(error).__name__}: "
                f"{str(error).strip().splitlines()[0] if str(error).strip() else 'no message'}). "
                "torch.compile needs a working C++ compiler on the CPU, or a supported GPU; "
                "run without --compile (the log file has the details)."
            ) from None
        finally:
            self.empty()
        self.warm_up_s = time.perf_counter() - started
        self.graphs_after_warm_up = compiled_graph_count()
        log.info("compiled the decode step in %.1f s (mode %s)", self.warm_up_s, self.mode)
        return self.warm_up_s

    def empty(self) -> None:
        """Forget every cached token (the allocation stays: its address is compiled in).

        Each layer's write position is moved to 0 in place; after a failed step the layers
        may disagree on it, so a crop (which moves them all by the same amount) would not do.
        """
        lengths: list[Any] = [
            getattr(layer, "cumulative_length", None) for layer in self.cache.layers
        ]
        if all(hasattr(length, "zero_") for length in lengths):
            for length in lengths:
                length.zero_()
        else:  # another cache layout: zero everything (slower, same effect)
            self.cache.reset()
