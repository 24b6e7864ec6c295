"""The named choices of `adapt` (standard library only, so the CLI can list them without torch)."""

METHODS = ("none", "shot", "decision", "socket", "socket-plus")
SOCKET_METHODS = ("socket", "socket-plus")
DISTANCES = ("mean_sq", "sum_sq", "norm")  # L_TI distance
REDUCTIONS = ("sum", "mean")  # L_d over BatchNorm layers
BN_DISTANCES = ("sq", "kl")  # L_d per layer: squared differences (paper) or Gaussian KL
TI_BN_MODES = ("batch", "running")
ZETA_PARAMS = ("sigmoid", "softmax")
KEEP_RULES = ("last", "min-im")
VALIDATORS = ("ti_agree", "ti_kl", "snd", "im", "agree")  # label-free scores (validators.py)
