"""Does weight-only quantisation keep the model's answers, and how much faster does it decode?

Agreement (default mode): the model is loaded once per variant (float32, bfloat16, int8 and
int4 weight-only) and answers a fixed set of 52 prompts greedily; each quantised variant is
compared with float32: the share of replies whose first N tokens agree, the share that agree
exactly (every token, up to --tokens), and the mean number of leading tokens in common.

Speed (``--speed``): each variant decodes in its own process (1 thread unless --threads),
the variants alternating run by run, every sample reported with the load average.

    python benchmarks/quant_agreement.py [--tokens 48] [--first 16]
    python benchmarks/quant_agreement.py --speed [--runs 3] [--tokens 128]
    python benchmarks/quant_agreement.py --memory [--model PATH]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

HERE = str(Path(__file__).resolve().parent)

_TOPICS = [
    "the water cycle",
    "photosynthesis",
    "the French Revolution",
    "how a bicycle works",
    "black holes",
    "the Python programming language",
    "volcanoes",
    "the human heart",
    "the Roman Empire",
    "electric cars",
    "honey bees",
    "the moon landing",
    "climate change",
]
_FORMS = [
    "Explain {} in two sentences.",
    "What is the most important fact about {}?",
    "Write a short poem about {}.",
    "Give three questions a student might ask about {}.",
]
PROMPTS = [form.format(topic) for topic in _TOPICS for form in _FORMS]  # 52 prompts
# (label, dtype, quantize) in the order they are loaded; the first is the reference.
VARIANTS = [
    ("float32", "float32", "none"),
    ("bfloat16", "bfloat16", "none"),
    ("int8", "auto", "int8"),
    ("int4", "auto", "int4"),
]


def greedy_replies(args: Any, dtype: str, quantize: str) -> tuple[list[list[int]], str, Any]:
    """Each prompt's greedy reply under one variant; its quantisation label; the tokenizer."""
    from leverchat.engine.generate import Generator
    from leverchat.engine.types import ChatMessage, FixedLevers, GenerationRequest
    from leverchat.levers import Levers

    loaded = _common.load(args, dtype=dtype, quantize=quantize)
    generator = Generator(loaded.model, loaded.tokenizer, loaded.device, 2048)
    levers = Levers(temperature=0.0, top_p=1.0, min_p=0.0, max_new_tokens=args.tokens)
    replies = []
    for prompt in PROMPTS:
        request = GenerationRequest(
            messages=(ChatMessage("user", prompt),), levers=FixedLevers(levers)
        )
        replies.append(list(generator.run(request, None).token_ids))
    return replies, loaded.info.quantization, loaded.tokenizer


def llama_cpp_replies(args: Any, tokenizer: Any) -> list[list[int]] | None:
    """The same greedy replies from llama.cpp reading the same GGUF: the file's reference
    runtime (it multiplies with 8-bit activations). The prompts are leverchat's own token
    ids, so both start from the same tokens; a reply ends at the same end-of-turn tokens.
    None where llama-cpp-python is not installed or the model is not a GGUF."""
    import importlib.util

    from leverchat.engine.bundled import bundled_gguf_path
    from leverchat.engine.prompt import encode_messages
    from leverchat.engine.types import ChatMessage

    model = str(args.model) if args.model else str(bundled_gguf_path())
    if importlib.util.find_spec("llama_cpp") is None or not model.endswith(".gguf"):
        return None
    from llama_cpp import Llama  # type: ignore[import-not-found,unused-ignore]

    llm = Llama(model_path=model, n_ctx=2048, n_threads=1, verbose=False)
    ends = {int(tokenizer.eos_token_id)} if tokenizer.eos_token_id is not None else set()
    ends.add(int(llm.token_eos()))
    replies = []
    for prompt in PROMPTS:
        ids = encode_messages(tokenizer, (ChatMessage("user", prompt),), "auto")
        llm.reset()
        reply: list[int] = []
        for token in llm.generate(ids, temp=0.0, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0):
            if int(token) in ends or len(reply) >= args.tokens:
                break
            reply.append(int(token))
        replies.append(reply)
    return replies


def common_prefix(a: list[int], b: list[int]) -> int:
    count = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        count += 1
    return count


def compare(reference: list[list[int]], replies: list[list[int]], first: int) -> dict[str, Any]:
    """How far ``replies`` follow ``reference``, prompt by prompt."""
    pairs = list(zip(reference, replies, strict=True))
    prefixes = [common_prefix(ref, got) for ref, got in pairs]
    first_agree = sum(1 for ref, got in pairs if ref[:first] == got[:first])
    exact = sum(1 for ref, got in pairs if ref == got)
    return {
        f"first_{first}_tokens_agree": f"{first_agree}/{len(pairs)}",
        "exact_replies_agree": f"{exact}/{len(pairs)}",
        "mean_common_prefix_tokens": round(sum(prefixes) / len(prefixes), 1),
    }


def agreement(args: Any) -> dict[str, Any]:
    """Each variant against float32 (the de-quantised weights) and, where it can run, against
    llama.cpp on the same file."""
    by_label: dict[str, list[list[int]]] = {}
    with_float: dict[str, Any] = {}
    tokenizer: Any = None
    for label, dtype, quantize in VARIANTS:
        started = time.perf_counter()
        replies, quantization, tokenizer = greedy_replies(args, dtype, quantize)
        by_label[label] = replies
        with_float[label] = {"quantization": quantization}
        if label != "float32":
            with_float[label].update(compare(by_label["float32"], replies, args.first))
        with_float[label]["seconds"] = round(time.perf_counter() - started, 1)
    results: dict[str, Any] = {"agreement_with_float32": with_float}
    reference = llama_cpp_replies(args, tokenizer)
    if reference is None:
        results["agreement_with_llama_cpp"] = "skipped: llama_cpp or a GGUF model missing"
    else:
        results["agreement_with_llama_cpp"] = {
            label: compare(reference, replies, args.first) for label, replies in by_label.items()
        }
    return results


_SPEED_CHILD = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
import _common
from leverchat.engine.types import ChatMessage, FixedLevers, GenerationRequest
from leverchat.engine.generate import Generator
from leverchat.levers import Levers
args = _common.parser("child", tokens=128, runs=1).parse_args(sys.argv[4:])
dynamic = sys.argv[3] == "dynamic"
loaded = _common.load(args, dtype=sys.argv[2], quantize="none" if dynamic else sys.argv[3])
if dynamic:  # the torch.ao path leverchat used before weight-only int8, for comparison
    import warnings, torch
    warnings.simplefilter("ignore")
    loaded.model = torch.ao.quantization.quantize_dynamic(
        loaded.model, {torch.nn.Linear}, dtype=torch.qint8)
generator = Generator(loaded.model, loaded.tokenizer, loaded.device, 2048)
levers = Levers(temperature=0.0, top_p=1.0, min_p=0.0, max_new_tokens=args.tokens)
def ask():
    request = GenerationRequest(messages=(ChatMessage("user", _common.LONG_ANSWER_PROMPT),),
                                levers=FixedLevers(levers))
    return generator.run(request, None)
ask()  # warm-up
result = ask()
stats = result.stats
decode = (stats.new_tokens - 1) / max(1e-9, stats.total_s - stats.time_to_first_token_s)
print(json.dumps({"tok_s": round(decode, 1), "tokens": stats.new_tokens}))
"""


# Measured for speed only: torch.ao dynamic int8 (activations quantised too), retired here.
SPEED_ONLY = [("int8_dynamic_old", "float32", "dynamic")]


def speed(args: Any) -> dict[str, Any]:
    variants = VARIANTS + [v for v in SPEED_ONLY if v[0] in args.variants.split(",")]
    samples: dict[str, list[float]] = {label: [] for label, _d, _q in variants}
    loads: list[float] = []
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(args.threads or 1)
    extra = ["--tokens", str(args.tokens), "--device", args.device]
    if args.model:
        extra += ["--model", args.model]
    for _run in range(args.runs):
        for label, dtype, quantize in variants:
            loads.append(round(os.getloadavg()[0], 2))
            completed = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    _SPEED_CHILD,
                    str(Path(__file__).parent),
                    dtype,
                    quantize,
                    *extra,
                ],
                capture_output=True,
                text=True,
                env=env,
                check=True,
                timeout=900,
            )
            samples[label].append(json.loads(completed.stdout.strip().splitlines()[-1])["tok_s"])
    best_float = max(samples["float32"])
    return {
        "threads": args.threads or 1,
        "samples_tok_s": samples,
        "best_tok_s": {label: max(values) for label, values in samples.items()},
        "best_vs_float32": {
            label: round(max(values) / best_float, 2) for label, values in samples.items()
        },
        "load_average_1min_at_each_run": loads,
    }


_MEMORY_CHILD = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import _common
import torch, transformers  # noqa: F401
def kib(key):
    lines = Path("/proc/self/status").read_text().splitlines()
    return int(next(line for line in lines if line.startswith(key)).split()[1])
args = _common.parser("child", tokens=2, runs=1).parse_args(sys.argv[4:])
before = kib("VmRSS:")
Path("/proc/self/clear_refs").write_text("5")
loaded = _common.load(args, dtype=sys.argv[2], quantize=sys.argv[3])
print(json.dumps({"rss_before_load_mib": before // 1024,
                  "peak_rss_mib": kib("VmHWM:") // 1024,
                  "rss_after_load_mib": kib("VmRSS:") // 1024,
                  "quantization": loaded.info.quantization, "dtype": loaded.info.dtype}))
"""


def memory(args: Any) -> dict[str, Any]:
    """Resident memory of loading each variant, each in a fresh process (Linux)."""
    results: dict[str, Any] = {}
    extra = ["--device", args.device] + (["--model", args.model] if args.model else [])
    for label, dtype, quantize in VARIANTS:
        completed = subprocess.run(
            [sys.executable, "-c", _MEMORY_CHILD, HERE, dtype, quantize, *extra],
            capture_output=True,
            text=True,
            check=True,
            timeout=900,
        )
        results[label] = json.loads(completed.stdout.strip().splitlines()[-1])
    return results


def main() -> None:
    arguments = _common.parser(__doc__ or "", tokens=48, runs=3)
    arguments.add_argument("--first", type=int, default=16, help="first-N-tokens agreement")
    arguments.add_argument("--speed", action="store_true", help="decode tok/s, not agreement")
    arguments.add_argument("--memory", action="store_true", help="resident memory of loading")
    arguments.add_argument(
        "--variants",
        default=",".join(label for label, _d, _q in VARIANTS),
        help="comma-separated subset of the variants (float32 always runs first)",
    )
    args = _common.start(arguments)
    wanted = {"float32", *args.variants.split(",")}
    VARIANTS[:] = [variant for variant in VARIANTS if variant[0] in wanted]
    result: dict[str, Any] = {
        "benchmark": "quant_agreement",
        "model": _common.model_name(args),
        "prompts": len(PROMPTS),
        "tokens": args.tokens,
    }
    if args.speed:
        result["speed"] = speed(args)
    elif args.memory:
        result["memory"] = memory(args)
    else:
        import torch

        torch.set_num_threads(args.threads or 1)
        result.update(agreement(args))
    result["machine"] = _common.machine(args.device)
    _common.emit(result)


if __name__ == "__main__":
    main()
