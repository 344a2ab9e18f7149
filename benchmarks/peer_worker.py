"""One engine, one process, one sample: the child that peer_llamacpp and scale_cpu start.

    python benchmarks/peer_worker.py '{"engine": "leverchat", "model": ..., "threads": 1, ...}'

It loads the model, runs one short untimed warm-up reply, then (each with an empty KV cache)
a greedy reply of exactly ``tokens`` tokens (end-of-turn ignored) for its decode rate and
time to first token, and, when ``long_prompt`` is given, a 2-token reply to that longer
prompt for its time to first token. It prints one JSON line on stdout and exits; the parent
reads this process's peak memory from ``wait4``.

- ``leverchat``: leverchat's own engine, as ``leverchat ask`` drives it: the model options are
  parsed by the CLI's own parser (``--model --device cpu --threads N [--quantize Q]``), so the
  CLI's defaults apply, and the EngineThread loads and generates.
- ``llama_cpp``: llama-cpp-python with ``n_threads = n_threads_batch = N``; the prompt is the
  GGUF's own chat template rendered with the same messages.

Both time the same things: from the request (before the prompt is tokenised) to the first
sampled token, and the decode rate as tokens after the first over the time from the first to
the last.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

SEED = 5
WARM_UP_TOKENS = 4


def main() -> None:
    config = json.loads(sys.argv[1])
    real_stdout = os.dup(1)
    os.dup2(2, 1)  # library chatter goes to stderr: stdout carries the one JSON line
    runner = run_leverchat if config["engine"] == "leverchat" else run_llama_cpp
    result = runner(config)
    os.write(real_stdout, (json.dumps(result) + "\n").encode())


def rss_now() -> int:
    """This process's resident bytes now (the peak is ``ru_maxrss``, which the parent reads)."""
    try:
        with Path("/proc/self/status").open() as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _messages(config: dict[str, Any], text: str) -> list[tuple[str, str]]:
    system = config.get("system")
    return ([("system", system)] if system else []) + [("user", text)]


def run_leverchat(config: dict[str, Any]) -> dict[str, Any]:
    import argparse
    from dataclasses import asdict

    from leverchat.commands.options import add_model_options, model_spec_from_args
    from leverchat.engine.loading import STAGE_CONVERTING
    from leverchat.engine.types import ChatMessage, FixedLevers, GenerationRequest
    from leverchat.engine.worker import EngineThread
    from leverchat.levers import Levers

    argv = ["--model", config["model"], "--device", "cpu", "--threads", str(config["threads"])]
    if config.get("quantize"):
        argv += ["--quantize", config["quantize"]]
    parser = argparse.ArgumentParser()
    add_model_options(parser)
    spec = model_spec_from_args(parser.parse_args(argv), interactive=False)
    engine = EngineThread()
    stages: set[str] = set()
    try:
        started = time.perf_counter()
        info = engine.load(spec, lambda step: stages.add(step.stage)).result()
        load_s = time.perf_counter() - started
        result: dict[str, Any] = {
            "load_s": load_s,
            "converted": STAGE_CONVERTING in stages,  # this load built leverchat's cache
            "rss_after_load_bytes": rss_now(),
            "model_info": asdict(info),
            "spec": argv,
        }
        if config.get("load_only"):
            return result

        def without_end_of_turn() -> None:
            # Every reply runs to exactly max_new_tokens, as llama.cpp's generate does.
            assert engine.generator is not None
            engine.generator.eos_ids = frozenset()

        engine.call(without_end_of_turn).result()

        def reply(text: str, tokens: int) -> Any:
            engine.call(lambda: engine.generator.reset_cache()).result()  # type: ignore[union-attr]
            levers = Levers(temperature=0.0, top_p=1.0, min_p=0.0, top_k=0, seed=SEED)
            levers = levers.with_value("max_new_tokens", tokens)
            chat = tuple(ChatMessage(role, body) for role, body in _messages(config, text))  # type: ignore[arg-type]
            outcome = engine.generate(GenerationRequest(chat, FixedLevers(levers))).result()
            if outcome.error is not None:
                raise SystemExit(f"leverchat generation failed: {outcome.error}")
            return outcome

        reply(config["prompt"], WARM_UP_TOKENS)
        decode = reply(config["prompt"], config["tokens"])
        result.update(
            prompt_tokens=decode.stats.prompt_tokens,
            new_tokens=decode.stats.new_tokens,
            tokens_per_s=decode.stats.tokens_per_s,
            ttft_s=decode.stats.time_to_first_token_s,
            token_ids=list(decode.token_ids[:16]),
        )
        if config.get("long_prompt"):
            long = reply(config["long_prompt"], 2)
            result.update(
                long_prompt_tokens=long.stats.prompt_tokens,
                long_ttft_s=long.stats.time_to_first_token_s,
            )
        result["rss_end_bytes"] = rss_now()  # the model still loaded, after the replies
        return result
    finally:
        engine.close()


def run_llama_cpp(config: dict[str, Any]) -> dict[str, Any]:
    from llama_cpp import Llama  # type: ignore[import-not-found,unused-ignore]
    from llama_cpp.llama_chat_format import (  # type: ignore[import-not-found,unused-ignore]
        Jinja2ChatFormatter,
    )

    threads = int(config["threads"])
    started = time.perf_counter()
    llm = Llama(
        model_path=config["model"],
        n_ctx=int(config.get("context", 2048)),
        n_batch=512,
        n_threads=threads,
        n_threads_batch=threads,
        seed=SEED,
        verbose=False,
    )
    load_s = time.perf_counter() - started
    rss_after_load = rss_now()
    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        raise SystemExit(f"{config['model']} has no chat template in its metadata")
    eos_id = llm.token_eos()
    formatter = Jinja2ChatFormatter(
        template=template,
        eos_token=llm.detokenize([eos_id]).decode(errors="replace") if eos_id >= 0 else "",
        bos_token="",
    )

    def reply(text: str, tokens: int) -> dict[str, Any]:
        llm.reset()
        began = time.perf_counter()
        messages = [{"role": role, "content": body} for role, body in _messages(config, text)]
        prompt = formatter(messages=messages).prompt
        ids = llm.tokenize(prompt.encode(), add_bos=False, special=True)
        stamps: list[float] = []
        produced: list[int] = []
        # generate() never stops by itself: end-of-turn is one more token, as for leverchat.
        for token in llm.generate(ids, temp=0.0, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0):
            stamps.append(time.perf_counter())
            produced.append(int(token))
            if len(stamps) >= tokens:
                break
        rate = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0
        return {
            "prompt_tokens": len(ids),
            "new_tokens": len(stamps),
            "tokens_per_s": rate,
            "ttft_s": stamps[0] - began,
            "token_ids": produced[:16],
        }

    result: dict[str, Any] = {"load_s": load_s, "rss_after_load_bytes": rss_after_load}
    reply(config["prompt"], WARM_UP_TOKENS)
    result.update(reply(config["prompt"], config["tokens"]))
    if config.get("long_prompt"):
        long = reply(config["long_prompt"], 2)
        result.update(long_prompt_tokens=long["prompt_tokens"], long_ttft_s=long["ttft_s"])
    result["rss_end_bytes"] = rss_now()  # the model still loaded, after the replies
    return result


if __name__ == "__main__":
    main()
