"""Export (issue 4): an ensemble artifact → one ONNX graph or TensorRT engine.

formats (the table of formats and option validation), fold (BatchNorm folding), onnx_graph
(tracing, simplification, fp16, metadata), parity (check frames and comparison), tensorrt
(engine builder and runner; tensorrt imported inside functions), exporter (the command)."""
