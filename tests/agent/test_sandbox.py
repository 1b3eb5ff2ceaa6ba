"""The code tool: a working edit, and every escape contained and reported as a tool error."""

import numpy as np
import pytest

from jaxlab.agent.sandbox import SandboxLimits, run_image_code

IMAGE = (np.arange(32 * 48 * 3) % 251).astype(np.uint8).reshape(32, 48, 3)
LIMITS = SandboxLimits(wall_seconds=20.0)


def test_code_rotates_the_image_with_pil_and_numpy():
  code = ("from PIL import Image\nimport numpy as np\n"
          "a = np.asarray(Image.open('path_to_input_image.jpg'))\n"
          "Image.fromarray(np.rot90(a).copy()).save('path_to_output_image.jpg')\nprint('done', a.shape)\n")
  result = run_image_code(code, IMAGE, LIMITS)
  assert result.ok, result.error
  assert result.image.shape == (48, 32, 3) and "done (32, 48, 3)" in result.output


@pytest.mark.parametrize("code, message", [
    ("open('/etc/passwd').read()", "opening '/etc/passwd' is not allowed"),
    ("import socket", "import of 'socket' is not allowed"),
    ("pass", "wrote no path_to_output_image.jpg"),
    ("import os", "import of 'os' is not allowed"),
    ("__import__('subprocess').run(['ls'])", "import of 'subprocess' is not allowed"),
    ("import random\nrandom._os.system('ls')", "os.system is not allowed"),
    ("import random\nrandom._os.fork()", "os.fork is not allowed"),
    ("import random\nrandom._os.execv('/bin/ls', ['ls'])", "os.exec is not allowed"),
    ("import random\nrandom._os.open('/etc/hostname', 0)", "not allowed"),
    ("import numpy as np\nx = np.ones(1 << 31)", "MemoryError"),
    ("while True:\n  pass", "timed out"),
    ("raise ValueError('bad step')", "ValueError: bad step"),
    ("open('path_to_output_image.jpg', 'w').write('not an image')", "is not an image"),
])
def test_escapes_and_failures_are_tool_errors(code, message):
  limits = SandboxLimits(wall_seconds=3.0) if "while" in code else LIMITS
  result = run_image_code(code, IMAGE, limits)
  assert not result.ok and result.image is None
  assert message in result.error, (result.error, result.output[-500:])


def test_huge_output_is_cut_and_a_bad_input_is_named():
  result = run_image_code("print('x' * 5_000_000)", IMAGE, SandboxLimits(wall_seconds=20.0, output_bytes=1000))
  assert len(result.output) < 1200 and "more bytes cut" in result.output
  assert "uint8 [H, W, 3]" in run_image_code("pass", np.zeros((4, 4)), LIMITS).error
