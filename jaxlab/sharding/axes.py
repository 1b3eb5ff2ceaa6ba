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

# Mesh axis names, in device order (outermost first). Every jaxlab mesh has all four.
MESH_AXES = ("data", "fsdp", "tensor", "expert")
