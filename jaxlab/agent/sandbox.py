"""The code tool of Visual-ARFT: model-written Python run on one image in a separate process.

The model's `<code>` reads `path_to_input_image.jpg` and writes `path_to_output_image.jpg` (the
spec's names). `run_image_code` gives it a fresh temporary directory holding only the input
image, runs it in a new Python process and returns the output image or an error. Never raises
on what the code does; every way out becomes `CodeResult.error`:

- wall time: the process is killed after `wall_seconds` (infinite loops);
- memory: `RLIMIT_AS` (huge allocations end in MemoryError); file size: `RLIMIT_FSIZE`;
- files: an audit hook refuses opening any path outside the directory except reading the
  Python installation (module files); writing is allowed inside the directory only;
- network and processes: the audit hook refuses sockets, subprocesses, `os.system`, exec,
  fork and spawn;
- imports: the code's own `import` statements may name only `allowed_imports` (numpy, PIL,
  cv2 when installed, math, random by default); the libraries import what they need;
- output: stdout and stderr are cut to `output_bytes`.

The audit hook and rlimits are a fence for model mistakes and casual escapes on one machine,
not an OS sandbox: run untrusted code at scale in a container without network as well.
"""

from __future__ import annotations

import dataclasses
import io
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

INPUT_NAME = "path_to_input_image.jpg"
OUTPUT_NAME = "path_to_output_image.jpg"


@dataclasses.dataclass(frozen=True)
class SandboxLimits:
  wall_seconds: float = 10.0
  memory_bytes: int = 2 << 30
  file_bytes: int = 64 << 20
  output_bytes: int = 16 << 10
  allowed_imports: tuple[str, ...] = ("numpy", "PIL", "cv2", "math", "random")


@dataclasses.dataclass(frozen=True)
class CodeResult:
  """`image`: uint8 [H, W, 3] written by the code (None on error); `output`: its stdout and stderr
  (cut); `error`: "" on success, else why it failed."""

  image: np.ndarray | None
  output: str
  error: str

  @property
  def ok(self) -> bool:
    return not self.error


_BOOTSTRAP = r'''
import builtins, os, resource, sys
root = os.path.realpath(sys.argv[1]); allowed = set(sys.argv[2].split(","))
memory, file_size = int(sys.argv[3]), int(sys.argv[4])
resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
for name in allowed:  # the libraries load before the fence goes up
    try:
        __import__(name)
    except ImportError:
        pass
readable = tuple(os.path.realpath(p) for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, *sys.path} if p)
def inside(path, roots):
    return any(path == r or path.startswith(r + os.sep) for r in roots)
def hook(event, args):
    if event == "open":
        path, mode = args[0], args[1]
        if not isinstance(path, (str, bytes)):
            return
        real = os.path.realpath(os.fsdecode(path))
        writing = isinstance(mode, str) and any(c in mode for c in "wax+")
        if inside(real, (root,)) or (not writing and inside(real, readable)):
            return
        raise PermissionError(f"sandbox: opening {os.fsdecode(path)!r} is not allowed")
    if event.startswith("socket.") or event in ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn",
                                                 "os.fork", "os.forkpty", "os.spawn", "pty.spawn", "ctypes.dlopen"):
        raise PermissionError(f"sandbox: {event} is not allowed")
sys.addaudithook(hook)
real_import = builtins.__import__
def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
    if level == 0 and name.split(".")[0] not in allowed:
        raise ImportError(f"sandbox: import of {name!r} is not allowed (allowed: {sorted(allowed)})")
    return real_import(name, globals, locals, fromlist, level)
user_builtins = dict(vars(builtins)); user_builtins["__import__"] = guarded_import
source = open(os.path.join(root, "user_code.py"), encoding="utf-8").read()
exec(compile(source, "<code>", "exec"), {"__builtins__": user_builtins, "__name__": "__main__"})
'''


def _cut(data: bytes, limit: int) -> str:
  text = data[:limit].decode("utf-8", errors="replace")
  return text + (f"\n... [{len(data) - limit} more bytes cut]" if len(data) > limit else "")


def run_image_code(code: str, image_hw3: np.ndarray, limits: SandboxLimits = SandboxLimits()) -> CodeResult:
  """Runs `code` on `image_hw3` (uint8 RGB) in a fresh directory and process (module doc)."""
  from PIL import Image  # noqa: PLC0415

  image = np.asarray(image_hw3)
  if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
    return CodeResult(None, "", f"the input image must be uint8 [H, W, 3]; got {image.dtype} {image.shape}")
  with tempfile.TemporaryDirectory(prefix="jaxlab_code_") as directory:
    root = pathlib.Path(directory)
    Image.fromarray(image).save(root / INPUT_NAME, format="JPEG", quality=95)
    (root / "user_code.py").write_text(code, encoding="utf-8")
    env = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "HOME": directory,
           "TMPDIR": directory, "PYTHONIOENCODING": "utf-8"}
    # The child sets its own rlimits first thing (no preexec_fn: unsafe in a threaded trainer)
    # and runs in its own session.
    command = [sys.executable, "-I", "-c", _BOOTSTRAP, directory, ",".join(limits.allowed_imports),
               str(int(limits.memory_bytes)), str(int(limits.file_bytes))]
    try:
      done = subprocess.run(command, cwd=directory, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                            timeout=limits.wall_seconds, start_new_session=True, check=False)
    except subprocess.TimeoutExpired as e:
      output = _cut((e.stdout or b"") + (e.stderr or b""), limits.output_bytes)
      return CodeResult(None, output, f"timed out after {limits.wall_seconds:g} s")
    output = _cut(done.stdout + done.stderr, limits.output_bytes)
    if done.returncode != 0:
      last = done.stderr.decode("utf-8", errors="replace").strip().splitlines()
      reason = last[-1] if last else f"exit status {done.returncode}"
      return CodeResult(None, output, f"the code failed: {reason[:500]}")
    path = root / OUTPUT_NAME
    if not path.is_file():
      return CodeResult(None, output, f"the code wrote no {OUTPUT_NAME}")
    try:
      with Image.open(io.BytesIO(path.read_bytes())) as written:
        result = np.asarray(written.convert("RGB"))
    except Exception as e:  # any decoder failure is the code's error, reported
      return CodeResult(None, output, f"{OUTPUT_NAME} is not an image: {e}")
    return CodeResult(result, output, "")
