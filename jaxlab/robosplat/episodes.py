"""Robot episodes as a LeRobot v2.1 dataset: writer, validating reader, grain frame source.

The on-disk layout (meta/info.json, meta/episodes.jsonl, meta/tasks.jsonl,
meta/episodes_stats.jsonl, data/chunk-XXX/episode_XXXXXX.parquet with PNG image structs)
is the one LeRobot reads, so datasets written here load there too. See episodes_layout for
the files, episodes_write for the crash-safe writer, episodes_read for the reader and
episodes_source for the grain source.
Needs pyarrow (the `robot` extra), imported when a dataset is first written or read.
"""

from jaxlab.robosplat.episodes_layout import CODEBASE_VERSION
from jaxlab.robosplat.episodes_layout import EpisodeFormatError
from jaxlab.robosplat.episodes_read import EpisodeDataset
from jaxlab.robosplat.episodes_source import ChunkedFrameSource, ConcatSource
from jaxlab.robosplat.episodes_write import EpisodeWriter

__all__ = ["CODEBASE_VERSION", "ChunkedFrameSource", "ConcatSource", "EpisodeDataset", "EpisodeFormatError", "EpisodeWriter"]
