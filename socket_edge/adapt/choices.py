"""The named choices of `adapt` (standard library only, so the CLI can list them without torch)."""

METHODS = ("none", "shot", "decision", "socket", "socket-plus")
SOCKET_METHODS = ("socket", "socket-plus")
# L_TI (ti_alignment.py): "frobenius" is the default (the unsquared norm of the ζ-mixed residual of the TI
# batch); the others are earlier per-member forms, kept under the names of what they compute
DISTANCES = ("frobenius", "mean_sq", "sum_sq", "norm")
REDUCTIONS = ("sum", "mean")  # L_d over BatchNorm layers
# L_d per layer (bn_alignment.py): "norm" is Eq. 3's unsquared L2 norms; "sq" squares them (the earlier
# default, not the paper's); "kl" the Gaussian KL divergence per channel (socket-plus's earlier preset)
BN_DISTANCES = ("norm", "sq", "kl")
# which BatchNorm layers L_d matches: "conv" (those after convolutions, Eq. 3's) or "all" (also the
# bottleneck's BatchNorm1d, whose batch mean moves with each batch's class mix: the earlier form)
BN_SCOPES = ("conv", "all")
TI_BN_MODES = ("batch", "running")
# λ_TI or λ_d over training (term_balance.scheduled_weight): "constant" (the paper's) or "cosine", from λ to 0
SCHEDULES = ("constant", "cosine")
ZETA_PARAMS = ("sigmoid", "softmax")
KEEP_RULES = ("last", "min-im")
VALIDATORS = ("ti_agree", "ti_kl", "snd", "im", "agree")  # label-free scores (validators.py)
