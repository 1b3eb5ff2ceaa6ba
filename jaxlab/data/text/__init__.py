"""Real English text offline: the Shakespeare corpus, byte-level BPE, and LM training windows."""

from jaxlab.data.text.corpus import TokenizedCorpus
from jaxlab.data.text.corpus import prepare_shakespeare
from jaxlab.data.text.shakespeare import fetch_shakespeare
from jaxlab.data.text.shakespeare import load_plays
from jaxlab.data.text.shakespeare import split_plays
from jaxlab.data.text.shakespeare import strip_gutenberg_boilerplate
from jaxlab.data.text.tokenizer import END_OF_TEXT
from jaxlab.data.text.tokenizer import encode_corpus
from jaxlab.data.text.tokenizer import load_tokenizer
from jaxlab.data.text.tokenizer import save_tokenizer
from jaxlab.data.text.tokenizer import train_bpe
from jaxlab.data.text.windows import TokenWindows

__all__ = [
    "TokenizedCorpus",
    "prepare_shakespeare",
    "END_OF_TEXT",
    "TokenWindows",
    "encode_corpus",
    "fetch_shakespeare",
    "load_plays",
    "load_tokenizer",
    "save_tokenizer",
    "split_plays",
    "strip_gutenberg_boilerplate",
    "train_bpe",
]
