"""`socket-edge distill`: one small student trained to match an adapted ensemble on unlabeled target images."""
