"""Search tool: BM25 ranking, the HTTP backend against a loopback server, errors in the transcript."""

import http.server
import json
import threading

import pytest

from jaxlab.agent.search import BM25Index, HttpSearchBackend, SearchError, search_step

CORPUS = [
    "The Eiffel Tower in Paris opened in 1889 for the World's Fair.",
    "Mercury boils at 356.7 degrees Celsius.",
    "Gustave Eiffel's company designed and built the tower.",
    "Paris is the capital of France.",
]


def test_bm25_ranks_the_matching_passages_first():
  index = BM25Index(CORPUS)
  assert index.search("the year the Eiffel Tower opened", k=2) == [CORPUS[0], CORPUS[2]]
  assert index.search("at what temperature mercury boils", k=1) == [CORPUS[1]]
  assert index.search("zzz unknown words") == []
  scores = index.scores("eiffel")
  assert scores[0] > 0 and scores[2] > 0 and scores[1] == 0
  # A rarer term weighs more: "mercury" (1 doc) outscores "paris" (2 docs) at equal counts.
  assert index._idf["mercury"] > index._idf["paris"]
  with pytest.raises(SearchError, match="empty"):
    BM25Index([])


class _Handler(http.server.BaseHTTPRequestHandler):
  mode = "results"

  def do_POST(self):  # noqa: N802 (http.server's name)
    request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
    if self.mode == "error":
      self.send_response(500)
      self.end_headers()
      return
    if self.mode == "garbage":
      body = b"not json"
    elif self.mode == "serper":
      body = json.dumps({"organic": [{"snippet": f"{request['q']} #{i}"} for i in range(request["num"] + 2)]}).encode()
    else:
      body = json.dumps({"results": [{"content": f"{request['q']} #{i}"} for i in range(request["num"])]}).encode()
    self.send_response(200)
    self.send_header("Content-Type", "application/json")
    self.end_headers()
    self.wfile.write(body)

  def log_message(self, *args):
    pass


@pytest.fixture
def server():
  httpd = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
  thread = threading.Thread(target=httpd.serve_forever, daemon=True)
  thread.start()
  yield httpd
  httpd.shutdown()
  httpd.server_close()


def test_http_backend_reads_both_reply_layouts(server):
  url = f"http://127.0.0.1:{server.server_port}/search"
  _Handler.mode = "results"
  assert HttpSearchBackend(url).search("eiffel", 3) == ["eiffel #0", "eiffel #1", "eiffel #2"]
  _Handler.mode = "serper"
  assert HttpSearchBackend(url).search("paris", 4) == [f"paris #{i}" for i in range(4)]
  text, error = search_step(HttpSearchBackend(url), "paris")
  assert error == "" and text.startswith("<information> 1. Content: paris #0 2. Content:")


def test_backend_failures_become_tool_errors(server):
  url = f"http://127.0.0.1:{server.server_port}/search"
  for mode, message in (("error", "did not answer"), ("garbage", "not JSON")):
    _Handler.mode = mode
    text, error = search_step(HttpSearchBackend(url, timeout=2, retries=1), "q")
    assert message in error and text.startswith("<information> error:")
  closed = HttpSearchBackend("http://127.0.0.1:9/none", timeout=1, retries=0)
  assert "did not answer" in search_step(closed, "q")[1]
  assert search_step(BM25Index(CORPUS), "  ")[1] == "empty search query"
  assert search_step(BM25Index(CORPUS), "zzz")[0] == "<information> no results </information>"
