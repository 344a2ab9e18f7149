"""RemoteEngine: the ChatEngine contract over an OpenAI-compatible server.

Same shape as the local EngineThread: every call returns a Future at once, work runs on one
daemon thread, chunks are handed to ``on_chunk`` from that thread, ``request.cancel`` stops a
reply (the HTTP stream is closed) and the partial text is kept. One reply's streaming loop and
its live levers over HTTP are in reply.py.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future

from leverchat.engine.aside import run_aside
from leverchat.engine.remote.client import RemoteClient
from leverchat.engine.remote.detect import check_server_name, choose_model, detect_server
from leverchat.engine.remote.dialects import DIALECTS
from leverchat.engine.remote.endpoint import Endpoint, parse_endpoint
from leverchat.engine.remote.keys import api_key
from leverchat.engine.remote.logit_bias import LocalTokenizer, tokenizer_for, with_logit_bias
from leverchat.engine.remote.reply import Session, failed_result, generate_reply
from leverchat.engine.remote.template import load_renderer
from leverchat.engine.samplers.boost import boosted_phrases
from leverchat.engine.serial import SerialExecutor
from leverchat.engine.types import (
    ChatMessage,
    ChunkCallback,
    EngineError,
    FormatChoice,
    GenerationRequest,
    GenerationResult,
    LeverTokens,
    LoadProgress,
    ModelInfo,
    ModelSpec,
    ProgressCallback,
)
from leverchat.levers import Levers

ClientFactory = Callable[[Endpoint, str | None], RemoteClient]


class RemoteEngine:
    """A ChatEngine whose replies come from a server (see the module docstring)."""

    def __init__(self, client_factory: ClientFactory | None = None) -> None:
        self._client_factory: ClientFactory = client_factory or (
            lambda endpoint, key: RemoteClient(endpoint, key)
        )
        # One reply's stream at a time; a daemon thread, so a server that never answers
        # cannot keep the process alive.
        self._executor = SerialExecutor("leverchat-remote")
        self._session: Session | None = None
        self._load_error: str | None = None
        self._tokenizer: LocalTokenizer | None = None
        self.info: ModelInfo | None = None

    # -- ChatEngine ---------------------------------------------------------------------

    def load(self, spec: ModelSpec, progress: ProgressCallback | None = None) -> Future[ModelInfo]:
        return self._executor.submit(lambda: self._load(spec, progress))

    def generate(
        self, request: GenerationRequest, on_chunk: ChunkCallback | None = None
    ) -> Future[GenerationResult]:
        def run() -> GenerationResult:
            session = self._session
            if session is None:
                reason = self._load_error or "no server is connected"
                _, levers = request.levers.snapshot()
                return failed_result(levers, f"no model is loaded: {reason}", None)
            return generate_reply(session, request, on_chunk)

        return self._executor.submit(run, cancel=request.cancel)

    def count_tokens(
        self, messages: tuple[ChatMessage, ...], prompt_format: FormatChoice = "auto"
    ) -> Future[int]:
        def run() -> int:
            raise EngineError("a remote model's tokens are counted by its server, not here")

        return self._executor.submit(run)

    def lever_tokens(self, levers: Levers) -> Future[tuple[LeverTokens, ...]]:
        """The boost's phrases as the model's tokenizer writes them, when it is read here
        (then they are sent as logit_bias); nothing otherwise: a server does not tell."""

        tokenizer = self._tokenizer

        def run() -> tuple[LeverTokens, ...]:
            if tokenizer is None:
                return ()
            return tuple(
                LeverTokens(
                    "boost",
                    phrase.text,
                    phrase.sequences,
                    phrase.weight,
                    tuple(tuple(map(tokenizer.decode, seq)) for seq in phrase.sequences),
                )
                for phrase in boosted_phrases(levers.boost, tokenizer.encode)
            )

        return run_aside(run)  # not behind a streaming reply

    def close(self, timeout: float = 5.0) -> None:
        """Cancel the streaming reply, fail what is queued, stop the thread, then close
        the HTTP connection."""
        if not self._executor.shutdown(timeout):
            return
        session = self._session
        if session is not None:
            session.client.close()

    # -- internals ----------------------------------------------------------------------

    def _load(self, spec: ModelSpec, progress: ProgressCallback | None) -> ModelInfo:
        report = progress or (lambda step: None)
        old = self._session
        self._session, self.info = None, None
        if old is not None:
            old.client.close()
        try:
            endpoint = parse_endpoint(spec.source or "")
            report(LoadProgress("connecting", f"Connecting to {endpoint.display}", None))
            client = self._client_factory(endpoint, api_key())
            try:
                entries, _ = client.list_models()
                model_id = choose_model(entries, spec.model_name, endpoint.display)
                server = (
                    check_server_name(spec.server)
                    if spec.server
                    else detect_server(client, entries)
                )
            except BaseException:
                client.close()
                raise
        except EngineError as error:
            self._load_error = str(error)
            raise
        # The boost lever as logit_bias, when the model's tokenizer is readable here.
        self._tokenizer = tokenizer_for(DIALECTS[server], model_id)
        dialect = with_logit_bias(DIALECTS[server], self._tokenizer)
        renderer = load_renderer(model_id) if dialect.continuation == "completions" else None
        self._session = Session(client, dialect, model_id, renderer)
        self._load_error = None
        self.info = ModelInfo(
            name=model_id,
            source=endpoint.display,
            device=f"{dialect.label} at {endpoint.display}",
            dtype="",
            context_window=0,
            has_chat_template=True,
            unavailable_levers=dialect.unavailable_levers(),
        )
        report(LoadProgress("ready", f"{model_id} on {dialect.label} is ready", 1.0))
        return self.info
