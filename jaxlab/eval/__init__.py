"""Evaluation of language models: sliding-window perplexity and greedy-generation checks."""

from jaxlab.eval.generation import PrefixAgreement
from jaxlab.eval.generation import distinct_n
from jaxlab.eval.generation import greedy_generate
from jaxlab.eval.generation import prefix_agreement
from jaxlab.eval.perplexity import PerplexityResult
from jaxlab.eval.perplexity import sliding_window_perplexity

__all__ = [
    "PerplexityResult",
    "PrefixAgreement",
    "distinct_n",
    "greedy_generate",
    "prefix_agreement",
    "sliding_window_perplexity",
]
