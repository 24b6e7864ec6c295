"""The Python examples of docs/ that say they are tested run here as written: each block marked
`# tested: tests/test_docs_examples.py` runs in a fresh process where torch cannot be imported, on a
small exported depth network, and its answer is the .pt model's answer."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from test_import_rules import run_without_torch
from socket_edge.contract import InputContract
from socket_edge.data.preprocess import prepare
from socket_edge.export import exporter
from socket_edge.models import artifact
from socket_edge.models.ensemble import Ensemble
from socket_edge.models.zoo import ModelConfig, build

DOCS = Path(__file__).resolve().parent.parent / "docs"
MARK = "# tested: tests/test_docs_examples.py"
CLASSES = ["bedroom", "kitchen", "office"]


def marked_blocks(doc: Path) -> list[str]:
    return [block for block in re.findall(r"```python\n(.*?)```", doc.read_text(), re.S) if MARK in block]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """adapted.onnx (and its .pt): a MobileNetV2 depth network at 32 px, exported as `export` does."""
    root = tmp_path_factory.mktemp("docs-model")
    torch.manual_seed(3)
    net = Ensemble(InputContract.for_modality("depth", CLASSES, 32), [build(ModelConfig("mobilenet_v2", 3))], [1.0])
    pt = artifact.save(net.eval(), root / "adapted.pt", "source", {})
    exporter.export(pt)
    return root


def test_the_python_api_example_gives_the_pt_models_label_without_torch(exported):
    blocks = marked_blocks(DOCS / "python-api.md")
    assert len(blocks) == 1 and "np.uint16" in blocks[0] and "import torch" not in blocks[0]
    result = run_without_torch(f"import os\nos.chdir({str(exported)!r})\n{blocks[0]}\n"
                               "assert 'torch' not in sys.modules\n")
    assert result.returncode == 0, result.stderr
    label, score = result.stdout.split()
    # the same frame through the .pt with torch: the label and its probability
    frame = np.tile(np.linspace(400, 4000, 640).astype(np.uint16), (480, 1))
    frame[:40] = 0
    model, _ = artifact.load(exported / "adapted.pt")
    with torch.no_grad():
        probs = model(torch.from_numpy(prepare(frame, model.contract, source_unit=0.001))[None])[0]
    assert label == CLASSES[int(probs.argmax())]
    assert float(score) == pytest.approx(float(probs.max()), abs=2e-3)
