"""Export (issue 4): an ensemble artifact → one ONNX graph or TensorRT engine.

formats (the table of formats and option validation), fold (BatchNorm folding), onnx_graph
(tracing, simplification, fp16, metadata), parity (check frames and comparison), tensorrt
(the engine builder; tensorrt imported inside functions), exporter (the command). The exported
files are run by socket_edge.backends, as eval, run and bench run them."""
