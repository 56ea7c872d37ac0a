"""Public optimal-transport API: batched IPOT and Sinkhorn solvers."""

from fairseq_ot.modules.optimal_transport import (  # noqa: F401
    GRADIENT_MODES,
    SOLVERS,
    OTResult,
    ipot,
    sinkhorn,
    solve_ot,
    uniform_marginals,
)
from fairseq_ot.modules.soft_embedding import (  # noqa: F401
    cosine_cost,
    sequence_ot_distance,
    soft_embed,
)
