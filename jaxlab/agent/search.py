"""The search tool of Visual-ARFT: a local BM25 engine, an HTTP backend, the `<information>` reply.

A backend is anything with `search(query, k) -> list[str]` (result texts, best first).

- `BM25Index`: Okapi BM25 (k1 = 1.5, b = 0.75, idf = ln(1 + (N - n + 0.5) / (n + 0.5))) over
  a corpus held in memory, built offline from any list of passages; no service needed.
- `HttpSearchBackend`: POSTs `{"q": query, "num": k}` as JSON to a URL and reads either
  `{"results": [{"content": ...}, ...]}` or a Serper-style `{"organic": [{"snippet": ...}]}`;
  timeouts and retries, and a clear `SearchError` for anything else.

`search_step(backend, query)` runs one search for the rollout loop and never raises: a failing
backend becomes an error line inside `<information>` (the paper's environment returns the top 4).
"""

from __future__ import annotations

import json
import math
import re
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from jaxlab.agent.tags import format_information

TOP_K = 4
_WORD = re.compile(r"\w+", re.UNICODE)


class SearchError(RuntimeError):
  """A search that could not be answered (bad backend reply, unreachable server, empty corpus)."""


class SearchBackend(Protocol):
  def search(self, query: str, k: int = TOP_K) -> list[str]: ...


def tokenize(text: str) -> list[str]:
  return _WORD.findall(str(text).lower())


class BM25Index:
  """Okapi BM25 over `documents` (see the module doc); `search` returns the top-k texts."""

  def __init__(self, documents: Sequence[str], *, k1: float = 1.5, b: float = 0.75):
    self.documents = [str(d) for d in documents]
    if not self.documents:
      raise SearchError("the search corpus is empty")
    self.k1, self.b = float(k1), float(b)
    tokens = [tokenize(d) for d in self.documents]
    self._lengths = np.array([len(t) for t in tokens], np.float64)
    self._average = max(float(self._lengths.mean()), 1e-9)
    self._counts = [Counter(t) for t in tokens]
    frequency = Counter(term for t in tokens for term in set(t))
    n = len(self.documents)
    self._idf = {term: math.log(1.0 + (n - f + 0.5) / (f + 0.5)) for term, f in frequency.items()}

  def scores(self, query: str) -> np.ndarray:
    """[N] BM25 score of every document for `query`."""
    out = np.zeros(len(self.documents))
    norm = self.k1 * (1.0 - self.b + self.b * self._lengths / self._average)
    for term in set(tokenize(query)):
      idf = self._idf.get(term)
      if idf is None:
        continue
      tf = np.array([c.get(term, 0) for c in self._counts], np.float64)
      out += idf * tf * (self.k1 + 1.0) / (tf + norm)
    return out

  def search(self, query: str, k: int = TOP_K) -> list[str]:
    scores = self.scores(query)
    order = np.argsort(-scores, kind="stable")[:k]
    return [self.documents[i] for i in order if scores[i] > 0]


class HttpSearchBackend:
  """A JSON search API over HTTP (see the module doc)."""

  def __init__(self, url: str, *, timeout: float = 10.0, retries: int = 2, headers: dict[str, str] | None = None):
    self.url, self.timeout, self.retries = url, float(timeout), int(retries)
    self.headers = {"Content-Type": "application/json", **(headers or {})}

  def search(self, query: str, k: int = TOP_K) -> list[str]:
    body = json.dumps({"q": query, "num": k}).encode()
    last = None
    for attempt in range(self.retries + 1):
      try:
        request = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
          reply = json.loads(response.read().decode("utf-8"))
        return _results(reply)[:k]
      except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
        last = e
        if attempt < self.retries:
          time.sleep(0.1 * 2 ** attempt)
      except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SearchError(f"{self.url} replied with something that is not JSON: {e}") from None
    raise SearchError(f"{self.url} did not answer after {self.retries + 1} tries: {last}")


def _results(reply) -> list[str]:
  if isinstance(reply, dict) and isinstance(reply.get("results"), list):
    return [str(r.get("content", "")) if isinstance(r, dict) else str(r) for r in reply["results"]]
  if isinstance(reply, dict) and isinstance(reply.get("organic"), list):
    return [str(r.get("snippet", "")) for r in reply["organic"] if isinstance(r, dict)]
  raise SearchError(f"a search reply needs a 'results' or 'organic' list; got {str(reply)[:200]!r}")


def search_step(backend: SearchBackend, query: str, k: int = TOP_K) -> tuple[str, str]:
  """(`<information>` text, error or "") for one search; failures become an error line, not an exception."""
  if not query.strip():
    return "<information> error: empty search query </information>", "empty search query"
  try:
    results = backend.search(query, k)
  except SearchError as e:
    return f"<information> error: {e} </information>", str(e)
  if not results:
    return "<information> no results </information>", ""
  return format_information(results), ""
