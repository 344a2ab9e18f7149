"""The remote engine's overhead, against the same local `transformers serve`, in one run:

- ``bare``: the ``openai`` SDK streaming the same request (same body: messages, seed, the
  same generation_config) with nothing done per chunk;
- ``engine``: leverchat's RemoteEngine, chunks into a no-op callback;
- ``app``: the Textual app headless (``App.run_test``) on the remote engine: the message
  is sent as a user would, the reply streams into the chat view, the run ends when the app
  shows it finished.

Every request asks for exactly ``--tokens`` tokens (``min_new_tokens`` in the
generation_config, so an early end-of-turn cannot make one variant look faster). Rate =
tokens / wall time from request to the last token; TTFT = request to first token.

Also: ``leverchat ask`` as a fresh process, start to first stdout byte, and whether torch or
transformers were imported (they must not be).

Targets: app / bare and engine / bare at least 0.97 (tokens/s); ask first byte under 1 s.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import _common
import _runs

TARGET_RATIO = 0.97
TARGET_ASK_FIRST_BYTE_S = 1.0
SEED = 1234
START_TIMEOUT_S = 300.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def served_folder(args: Any) -> Path:
    if args.model:
        return Path(args.model)
    from leverchat.engine import bundled, gguf_cache

    return gguf_cache.ensure_converted(bundled.bundled_gguf_path()).folder


def start_server(
    folder: Path, threads: int | None, cpus: set[int] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = _free_port()
    script = Path(sys.executable).with_name("transformers")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    command = [str(script), "serve", str(folder), "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--device", "cpu"],
        stdout=subprocess.DEVNULL,
        stderr=sys.stderr,
        env=env,
        # --pin: the server gets its own core, as a remote box would have its own machine.
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("transformers serve exited before it was ready")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process, f"http://127.0.0.1:{port}/v1"
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("transformers serve was not ready in time")


def exact_length_dialect(tokens: int) -> None:
    """Make leverchat's transformers dialect ask for exactly ``tokens`` tokens (as bare does)."""
    from leverchat.engine.remote import dialects

    base = dialects.DIALECTS["transformers"]

    def sampling(levers: Any, seed: int) -> dict[str, Any]:
        fields = base.sampling(levers, seed)
        config = json.loads(fields["generation_config"])
        config["min_new_tokens"] = tokens
        fields["generation_config"] = json.dumps(config)
        return fields

    dialects.DIALECTS["transformers"] = dataclasses.replace(base, sampling=sampling)


def ask_first_byte(base: str, runs: int) -> dict[str, Any]:
    """Fresh `leverchat ask` processes: start to first stdout byte; torch/transformers loaded?"""
    code = (
        "import sys\n"
        "from leverchat.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers'})\n"
        "sys.stderr.write('HEAVY=' + ','.join(heavy) + '\\n')\n"
        "raise SystemExit(rc)\n"
    )
    argv = ["ask", "--model", "openai+" + base, "--max-tokens", "4", "--seed", "1", "Hi"]
    times: list[float] = []
    heavy: set[str] = set()
    for _ in range(runs):
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-c", code, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert process.stdout is not None
        first = process.stdout.read(1)
        elapsed = time.perf_counter() - started
        _, err = process.communicate(timeout=120)
        if process.returncode != 0 or not first:
            raise SystemExit(f"ask failed: {err.decode()[-500:]}")
        times.append(elapsed)
        for line in err.decode().splitlines():
            if line.startswith("HEAVY=") and line[6:]:
                heavy.update(line[6:].split(","))
    return {"first_byte_s": _common.rounded(times, 3), "heavy_imported": sorted(heavy)}


async def main_async(args: Any, base: str, model_id: str) -> dict[str, Any]:
    import openai

    from leverchat.engine.remote.engine import RemoteEngine
    from leverchat.engine.types import ChatMessage, FixedLevers, GenerationRequest, ModelSpec
    from leverchat.levers import Levers

    exact_length_dialect(args.tokens)
    levers = Levers(
        temperature=0.7, top_p=0.95, min_p=0.05, top_k=0, seed=SEED, max_new_tokens=args.tokens
    )
    messages = (
        ChatMessage("system", _common.SYSTEM_PROMPT),
        ChatMessage("user", _common.LONG_ANSWER_PROMPT),
    )
    engine = RemoteEngine()
    spec = ModelSpec(source="openai+" + base, server="transformers")
    info = engine.load(spec).result()
    from leverchat.engine.remote.dialects import DIALECTS

    body = DIALECTS["transformers"].chat_request(model_id, messages, levers, SEED).body
    extra = {key: body[key] for key in ("seed", "generation_config")}
    client = openai.OpenAI(base_url=base, api_key="unused", max_retries=0)
    ttft: dict[str, list[float]] = {"bare": [], "engine": [], "app": []}

    def bare_job() -> float:
        started = time.perf_counter()
        first = None
        count = 0
        stream = client.chat.completions.create(
            model=model_id, messages=body["messages"], stream=True, extra_body=extra
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                count += 1
                first = first or time.perf_counter()
        elapsed = time.perf_counter() - started
        ttft["bare"].append((first or started) - started)
        # Text chunks (one token each on this server; a random --smoke model's odd tokens
        # may decode to nothing, so the count is what was seen, for every variant alike).
        return float(count / elapsed)

    async def bare() -> float:
        return float(await asyncio.to_thread(bare_job))

    async def engine_only() -> float:
        started = time.perf_counter()
        future = engine.generate(GenerationRequest(messages, FixedLevers(levers)), lambda p: None)
        result = _common.check_result(await asyncio.wrap_future(future))
        elapsed = time.perf_counter() - started
        ttft["engine"].append(result.stats.time_to_first_token_s)
        return float(result.stats.new_tokens / elapsed)

    variants: dict[str, Any] = {"bare": bare, "engine": engine_only}
    try:
        async with _runs.headless_app(engine, info, spec, levers) as app:

            async def in_app() -> float:
                elapsed, result = await app.reply()
                if result is None or result.failed:
                    raise SystemExit(f"the app's reply failed: {result}")
                ttft["app"].append(result.stats.time_to_first_token_s)
                return float(result.stats.new_tokens / elapsed)

            variants["app"] = in_app
            samples = await _runs.alternate_async(variants, args.runs)
    finally:
        engine.close()
        client.close()

    rates, summary = _runs.rate_summary(samples)
    return {
        **summary,
        "ttft_s": {name: round(_common.median(v), 3) for name, v in ttft.items() if v},
        "ratio_engine_over_bare": _common.ratio(rates["engine"], rates["bare"]),
        "ratio_app_over_bare": _common.ratio(rates["app"], rates["bare"]),
    }


def main() -> None:
    arguments = _common.parser(__doc__ or "", tokens=64, runs=3)
    arguments.add_argument("--ask-runs", type=int, default=3, help="`ask` processes to time")
    arguments.add_argument(
        "--pin",
        action="store_true",
        help="server on the first core with 1 thread, this process (client, app) on the others:"
        " a remote server's own machine, so the app's drawing does not slow the server down",
    )
    args = _common.start(arguments)
    if args.smoke:
        args.tokens, args.runs, args.ask_runs = min(args.tokens, 6), 1, 1
    folder = served_folder(args)
    server_cpus: set[int] | None = None
    if args.pin and len(os.sched_getaffinity(0)) > 1:
        first, *others = sorted(os.sched_getaffinity(0))
        server_cpus = {first}
        os.sched_setaffinity(0, set(others))
    process, base = start_server(folder, 1 if server_cpus else args.threads, server_cpus)
    try:
        measured = asyncio.run(main_async(args, base, str(folder)))
        ask = ask_first_byte(base, args.ask_runs)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
    first_byte = _common.median(ask["first_byte_s"])
    ratios_met = min(measured["ratio_engine_over_bare"], measured["ratio_app_over_bare"])
    _common.emit(
        {
            "benchmark": "remote_overhead",
            "model": _common.model_name(args),
            "server": "transformers serve (same process for every variant)",
            "pinned": server_cpus is not None,
            "machine": _common.machine(args.device),
            "tokens": args.tokens,
            "runs": args.runs,
            **measured,
            "ask": {**ask, "median_first_byte_s": round(first_byte, 3)},
            "target": f"engine and app / bare >= {TARGET_RATIO}; ask first byte < "
            f"{TARGET_ASK_FIRST_BYTE_S} s without torch",
            "target_met": ratios_met >= TARGET_RATIO
            and first_byte < TARGET_ASK_FIRST_BYTE_S
            and not ask["heavy_imported"],
        }
    )


if __name__ == "__main__":
    main()
