"""socket-edge: RGB-trained classifiers to depth and infrared cameras at the edge (SOCKET)."""

__version__ = "0.1.0"
