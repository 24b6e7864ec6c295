"""Export (issue 4): ensemble folding, ONNX, TensorRT."""
