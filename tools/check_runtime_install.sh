#!/usr/bin/env bash
# The edge install carries no training stack: a second venv with only the runtime extras
# (pip install '.[cpu,realsense]': no torch, onnx or matplotlib) runs inspect, eval, bench and run
# on an .onnx that the main venv (the workstation, `make install`) trained and exported, on a real
# RealSense recording and on labelled PNG class folders, and gives the workstation's numbers; a
# command that needs the training stack says so in one line. Called by .ci/run after `make test`.
#
#     tools/check_runtime_install.sh          # VENV=.venv (the main venv), PYTHON=python3
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"
MAIN="$(cd "${VENV:-.venv}/bin" && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"  # every file below is relative to it; the edge venv runs the installed package, not the checkout
EDGE="$WORK/edge/bin"
DATA="data/rs/depth"

step() { printf 'check_runtime_install [%3d s] %s\n' "$SECONDS" "$*"; }
fail() { printf 'check_runtime_install: FAILED: %s\n' "$*" >&2; exit 1; }

step "workstation ($MAIN): synthetic rs depth class folders, a 5-epoch source model exported to ONNX"
"$MAIN/socket-edge" synth data --per-class 4 --size 32 --domains rs -q >/dev/null
"$MAIN/socket-edge" train-source --data "$DATA" --modality depth --arch mobilenet_v2 --weights imagenet \
    --img-size 32 --epochs 5 --batch-size 8 --out m.pt -q >/dev/null
"$MAIN/socket-edge" export m.pt -q >/dev/null

step "workstation: a RealSense recording of the depth PNGs (socket_edge.runtime.recording)"
RECORDING="$("$MAIN/python" - "$DATA" rec <<'EOF'
import sys
from pathlib import Path

import cv2

from socket_edge.runtime.recording import recording_suffix, write_recording

files = sorted(Path(sys.argv[1]).glob("*/*.png"))
frames = [cv2.imread(str(f), cv2.IMREAD_UNCHANGED) for f in files]
print(write_recording(sys.argv[2] + recording_suffix(), frames, depth_scale=0.001))
EOF
)"
FRAMES="$(find "$DATA" -name '*.png' | wc -l)"

step "workstation: the reference answers of inspect, eval and run"
"$MAIN/socket-edge" inspect m.onnx >inspect.main
"$MAIN/socket-edge" eval m.onnx --data "$DATA" --json -q >eval.main
"$MAIN/socket-edge" run m.onnx --source "$RECORDING" --json 2>/dev/null | cut -d, -f1-4 >run.main  # frame … score

step "edge venv: pip install '.[cpu,realsense]' (pip's cache reused)"
"${PYTHON:-python3}" -m venv edge
"$EDGE/pip" install --quiet "$REPO[cpu,realsense]" >pip.log 2>&1 || { cat pip.log; fail "pip install"; }
"$EDGE/python" - <<'EOF' || fail "the runtime-only venv holds part of the training stack"
import importlib.util
import sys

present = [m for m in ("torch", "torchvision", "onnx", "matplotlib") if importlib.util.find_spec(m)]
sys.exit(f"found {', '.join(present)}" if present else 0)
EOF
! "$EDGE/python" -c "import torch" 2>/dev/null || fail "import torch works in the runtime-only venv"

step "edge: socket-edge inspect m.onnx"
"$EDGE/socket-edge" inspect m.onnx >inspect.edge
grep -q "classes       6: bathroom, bedroom, classroom, kitchen, living_room, office" inspect.edge \
    || fail "inspect does not list the six classes: $(cat inspect.edge)"
diff inspect.main inspect.edge >/dev/null || fail "inspect differs from the workstation's: $(diff inspect.main inspect.edge)"
grep "classes  " inspect.edge

step "edge: socket-edge eval m.onnx on $FRAMES labelled PNGs"
"$EDGE/socket-edge" eval m.onnx --data "$DATA" -q >eval.edge
head -1 eval.edge
grep -q "accuracy .*% (n=$FRAMES)" eval.edge || fail "eval printed no accuracy line for $FRAMES images"
"$EDGE/socket-edge" eval m.onnx --data "$DATA" --json -q >eval.edge.json
"$EDGE/python" -c "import json, sys; a, b = (json.load(open(p)) for p in sys.argv[1:]); sys.exit(a != b)" \
    eval.main eval.edge.json || fail "eval's numbers differ from the workstation's: $(cat eval.main eval.edge.json)"

step "edge: socket-edge run m.onnx --source $(basename "$RECORDING")"
"$EDGE/socket-edge" run m.onnx --source "$RECORDING" --json 2>run.err | cut -d, -f1-4 >run.edge
grep -q "^$FRAMES frames in .*dropped 0" run.err || fail "run did not give $FRAMES frames: $(cat run.err)"
diff run.main run.edge >/dev/null || fail "run's labels differ from the workstation's"
head -1 run.err

step "edge: socket-edge bench m.onnx --source $(basename "$RECORDING")"
"$EDGE/socket-edge" bench m.onnx --source "$RECORDING" --frames "$FRAMES" --threads 1 >bench.edge
grep -q "onnxruntime (CPU) .* FPS (pure inference" bench.edge || fail "bench timed no inference: $(cat bench.edge)"
grep -q "pipeline on .*: $FRAMES frames" bench.edge || fail "bench's pipeline did not run $FRAMES frames"
sed -n 2,3p bench.edge

step "edge: a .pt, a training command and a plot name their extra in one line"
for case in "train:eval m.pt --data $DATA" "train:export m.pt" "plot:eval m.onnx --data $DATA --plot cm.png"; do
    extra="${case%%:*}" command="${case#*:}"
    # shellcheck disable=SC2086  # the command's words
    if "$EDGE/socket-edge" $command 2>err.txt; then fail "socket-edge $command succeeded without the $extra extra"; fi
    [ "$(wc -l <err.txt)" -eq 1 ] && grep -q "pip install 'socket-edge\[$extra\]'" err.txt \
        || fail "socket-edge $command: $(cat err.txt)"
    cat err.txt
done
step "ok: the runtime-only install ran inspect, eval, bench and run with the workstation's results"
