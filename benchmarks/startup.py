"""Start-up times, each in a fresh process: the TUI's first frame, its model ready (warm and
cold), and ``leverchat ask --max-tokens 1`` to its first token (cold and warm).

- ``first_frame_s``: process start until the app has drawn its first frame, with an engine
  whose model never loads (the UI's own cost), and with the real EngineThread (the model
  starts loading at mount, as in ``leverchat``). ``torch_imported`` says whether torch was in
  ``sys.modules`` at that frame (target: never, on the stub path; the real engine thread
  imports torch in the background right after mount, so it may race there).
- ``model_ready_s``: process start until the chat screen knows the model is loaded; warm uses
  the benchmark's cache, cold a fresh cache folder (the GGUF is converted again).
- ``ask``: process start until the first byte of the reply on stdout, and until exit.

- ``imports``: a fresh ``python -c "import torch, transformers"`` process, start to exit,
  alternating with the warm asks in the same run; ``ask_warm_over_imports`` is the warm ask's
  first byte over it: what start-up costs beyond importing the libraries (issue #12).

Targets: first frame under 1 s with torch not imported; the warm ask at least 5x sooner to its
first token than the cold one; the warm ask to first byte at most 1.3x the imports alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common

FIRST_FRAME_TARGET_S = 1.0
ASK_SPEEDUP_TARGET = 5.0
ASK_OVER_IMPORTS_TARGET = 1.3
IMPORTS_ONLY = "import torch, transformers"
# `import transformers` is a lazy shell: a program that loads a Llama model also imports its
# configuration, modeling and tokenizer code (and with them torch._dynamo and
# torch.distributed.tensor: ~1 s more here). The second baseline imports those, nothing else.
IMPORTS_MODEL_CODE = (
    "import torch, transformers\n"
    "from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig\n"
    "from transformers import LlamaForCausalLM, PreTrainedTokenizerFast"
)

# Runs in the child process. Writes JSON lines straight to fd 1: Textual captures print().
CHILD = r"""
import json, os, sys
from concurrent.futures import Future

def say(event, **extra):
    extra.update(event=event, torch_imported="torch" in sys.modules)
    os.write(1, (json.dumps(extra) + "\n").encode())

from leverchat.engine.types import ModelSpec
from leverchat.ui.app import LeverChatApp
say("imported")

class NeverLoads:
    def load(self, spec, progress=None):
        return Future()
    def generate(self, request, on_chunk=None):
        return Future()
    def count_tokens(self, messages, prompt_format="auto"):
        return Future()
    def close(self, timeout=5.0):
        pass

mode, source = sys.argv[1], (sys.argv[2] or None)
if mode == "real":
    from leverchat.engine.worker import EngineThread
    engine = EngineThread()
else:
    engine = NeverLoads()

import inspect, pathlib

class Probe(LeverChatApp):
    # Textual resolves a relative CSS_PATH against the subclass's file, which -c has not.
    CSS_PATH = str(pathlib.Path(inspect.getfile(LeverChatApp)).parent / LeverChatApp.CSS_PATH)

    def on_mount(self):
        self.call_after_refresh(self._first_frame)

    def _first_frame(self):
        say("first_frame")
        if mode == "stub":
            self.exit()
        else:
            self.set_interval(0.01, self._check_ready)

    def _check_ready(self):
        screen = self.screen
        if getattr(screen, "model_info", None) is not None:
            say("model_ready")
            self.exit()
        elif getattr(screen, "load_error", None):
            say("load_failed", error=str(screen.load_error))
            self.exit()

Probe(engine, model_spec=ModelSpec(source=source)).run(headless=True, size=(120, 40))
engine.close()
"""


def child_env(cache_dir: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if cache_dir is not None:
        env["LEVERCHAT_CACHE_DIR"] = cache_dir
    return env


def run_tui(mode: str, source: str | None, cache_dir: str | None = None) -> dict[str, Any]:
    """Times (from process start) of each event the child reports."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD, mode, source or ""],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=child_env(cache_dir),
        text=True,
    )
    assert process.stdout is not None
    events: dict[str, Any] = {}
    for line in process.stdout:
        at = time.perf_counter() - started
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        events[event["event"] + "_s"] = round(at, 3)
        events[event["event"] + "_torch_imported"] = event["torch_imported"]
        if "error" in event:
            events["error"] = event["error"]
    code = process.wait(timeout=300)
    if code != 0 or "first_frame_s" not in events:
        raise SystemExit(f"the TUI child ({mode}) failed with exit code {code}: {events}")
    return events


def run_ask(source: str | None, cache_dir: str | None = None) -> dict[str, float]:
    command = [sys.executable, "-m", "leverchat", "ask", "--max-tokens", "1", "--seed", "1"]
    if source:
        command += ["--model", source]
    command.append("Say hello.")
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env(cache_dir)
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.read(1)  # the first byte of the reply (or end of output)
    first_at = time.perf_counter() - started
    process.stdout.read()
    errors = process.stderr.read().decode(errors="replace")
    code = process.wait(timeout=300)
    exited_at = time.perf_counter() - started
    # An empty reply is possible (a tiny model's one token may be special): first = exit.
    if code != 0:
        raise SystemExit(f"leverchat ask failed (exit {code}): {errors[-500:]}")
    return {"first_token_s": round(first_at, 3), "exit_s": round(exited_at, 3)}


def run_imports(code: str = IMPORTS_ONLY) -> float:
    """Seconds for a fresh process that only runs ``code`` (imports), start to exit."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", code], check=True, env=child_env(None), capture_output=True
    )
    return round(time.perf_counter() - started, 3)


def medians(samples: list[dict[str, Any]], key: str) -> float:
    return round(_common.median([s[key] for s in samples if key in s]), 3)


def main() -> None:
    arguments = _common.parser(__doc__ or "", tokens=2, runs=3)
    arguments.add_argument(
        "--skip-cold", action="store_true", help="skip the cold runs (two GGUF conversions)"
    )
    args = _common.start(arguments)
    if args.smoke:
        args.runs, args.skip_cold = 1, True
    source = args.model

    stub = [run_tui("stub", source) for _ in range(args.runs)]
    if not args.smoke:
        run_ask(source)  # warm-up: fills the benchmark's cache if it is empty
    warm_tui = [run_tui("real", source) for _ in range(args.runs)]
    warm_ask: list[dict[str, float]] = []
    imports: list[float] = []
    model_imports: list[float] = []
    for round_index in range(args.runs):
        # Alternating, so a drift of the machine's load touches every side alike.
        steps = [
            lambda: warm_ask.append(run_ask(source)),
            lambda: imports.append(run_imports()),
            lambda: model_imports.append(run_imports(IMPORTS_MODEL_CODE)),
        ]
        for step in steps if round_index % 2 == 0 else reversed(steps):
            step()
    cold: dict[str, Any] = {"skipped": "--skip-cold" if args.skip_cold else None}
    if not args.skip_cold:
        with tempfile.TemporaryDirectory(prefix="leverchat-cold-") as fresh:
            cold_tui = run_tui("real", source, str(Path(fresh) / "tui"))
            cold_ask = run_ask(source, str(Path(fresh) / "ask"))
        cold = {"tui_model_ready_s": cold_tui.get("model_ready_s"), "ask": cold_ask}

    first_frame = medians(stub, "first_frame_s")
    torch_on_ui_path = any(s["first_frame_torch_imported"] for s in stub) or any(
        s["imported_torch_imported"] for s in stub + warm_tui
    )
    warm_first_token = medians(warm_ask, "first_token_s")
    imports_s = round(_common.median(imports), 3)
    ask_over_imports = _common.ratio(warm_first_token, imports_s)
    model_imports_s = round(_common.median(model_imports), 3)
    ask_speedup = (
        _common.ratio(cold["ask"]["first_token_s"], warm_first_token) if "ask" in cold else None
    )
    _common.emit(
        {
            "benchmark": "startup",
            "model": _common.model_name(args),
            "machine": _common.machine(args.device),
            "runs": args.runs,
            "first_frame_s_stub_engine": first_frame,
            "first_frame_s_real_engine": medians(warm_tui, "first_frame_s"),
            "import_app_s": medians(stub, "imported_s"),
            "torch_imported_on_ui_path": torch_on_ui_path,
            "torch_imported_at_first_frame_real_engine": [
                s["first_frame_torch_imported"] for s in warm_tui
            ],
            "model_ready_s_warm": medians(warm_tui, "model_ready_s"),
            "ask_warm": {
                "first_token_s": warm_first_token,
                "exit_s": medians(warm_ask, "exit_s"),
            },
            "imports_only_s": imports_s,
            "imports_only_samples_s": imports,
            "ask_warm_first_token_samples_s": [s["first_token_s"] for s in warm_ask],
            "ask_warm_over_imports": ask_over_imports,
            "model_code_imports_s": model_imports_s,
            "model_code_imports_samples_s": model_imports,
            "ask_warm_over_model_code_imports": _common.ratio(warm_first_token, model_imports_s),
            "cold": cold,
            "ask_cold_over_warm_first_token": ask_speedup,
            "targets": {
                "first_frame_under_s": FIRST_FRAME_TARGET_S,
                "first_frame_met": first_frame < FIRST_FRAME_TARGET_S and not torch_on_ui_path,
                "ask_speedup_at_least": ASK_SPEEDUP_TARGET,
                "ask_over_imports_at_most": ASK_OVER_IMPORTS_TARGET,
                "ask_over_imports_met": ask_over_imports <= ASK_OVER_IMPORTS_TARGET,
                "ask_speedup_met": (
                    ask_speedup >= ASK_SPEEDUP_TARGET if ask_speedup is not None else None
                ),
            },
        }
    )


if __name__ == "__main__":
    main()
