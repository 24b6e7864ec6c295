"""Export (issue 4): an ensemble artifact → one ONNX graph or TensorRT engine.

formats (the table of formats and option validation), fold (BatchNorm folding), onnx_graph
(tracing, simplification, fp16, metadata), parity (check frames and comparison), quantize (int8),
tensorrt (the engine builder; tensorrt imported inside functions), exporter (the command, from a
.pt), engine_from_onnx (an engine from an exported .onnx, without torch), summary (the printed
lines). The exported files are run by socket_edge.backends, as eval, run and bench run them."""
