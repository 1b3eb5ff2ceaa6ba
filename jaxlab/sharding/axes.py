"""Logical axis names used to annotate parameters and activations, and the mesh axis names.

Models name each array dimension with one of these logical names; a rule table
(`jaxlab.sharding.rules`) maps them to mesh axes. Keeping the names as constants lets a
typo fail at import instead of silently replicating a tensor.
"""

# Logical names: what a dimension *means*.
BATCH = "batch"
SEQ = "seq"
EMBED = "embed"
HEADS = "heads"
KV_HEADS = "kv_heads"
HEAD_DIM = "head_dim"
MLP = "mlp"
VOCAB = "vocab"
EXPERT = "expert"
LAYERS = "layers"
GAUSSIANS = "gaussians"

# Mesh axis names, in device order (outermost first). Every jaxlab mesh has all five (size 1
# where unused). Inner axes get the fastest links, so the order follows how much and how often
# each axis communicates: data (one gradient all-reduce per step) and fsdp (weight gathers per
# layer) are outermost; "context" (sequence parallelism: key/value chunks passed around a ring
# or all-gathered, once per attention layer, overlappable with compute) moves more than fsdp
# but less often than "tensor" (an all-reduce after every sharded matmul) and "expert"
# (all-to-alls around every MoE layer), which stay innermost.
MESH_AXES = ("data", "fsdp", "context", "tensor", "expert")
