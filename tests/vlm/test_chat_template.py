"""ChatML prompt rendering: string and multimodal content, system turns, generation prompt, errors."""

import pytest

from jaxlab.vlm import INTERNVL_SYSTEM_MESSAGE, expand_image_tokens, render_chat


def test_single_user_turn_with_generation_prompt():
  out = render_chat([{"role": "user", "content": "Hello"}])
  assert out == "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"
  out = render_chat([{"role": "user", "content": "Hello"}], add_generation_prompt=False)
  assert out == "<|im_start|>user\nHello<|im_end|>\n"


def test_multimodal_parts_render_in_order():
  messages = [
      {
          "role": "user",
          "content": [
              {"type": "image", "url": "ignored.png"},
              {"type": "image"},
              {"type": "text", "text": "What differs?"},
          ],
      }
  ]
  out = render_chat(messages)
  assert out == (
      "<|im_start|>user\n<IMG_CONTEXT>\n<IMG_CONTEXT>\nWhat differs?<|im_end|>\n<|im_start|>assistant\n"
  )
  video = [{"role": "user", "content": [{"type": "text", "text": "Watch: "}, {"type": "video"}]}]
  assert render_chat(video, add_generation_prompt=False) == "<|im_start|>user\nWatch: <video>\n<|im_end|>\n"


def test_system_turns_and_multi_turn_history():
  history = [
      {"role": "user", "content": "2+2?"},
      {"role": "assistant", "content": [{"type": "text", "text": "4"}]},
      {"role": "user", "content": "3+3?"},
  ]
  body = "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n<|im_start|>user\n3+3?<|im_end|>\n"
  assert render_chat(history) == body + "<|im_start|>assistant\n"  # no system turn unless asked
  system = "<|im_start|>system\nBe brief.<|im_end|>\n"
  assert render_chat(history, system="Be brief.") == system + body + "<|im_start|>assistant\n"
  in_messages = [{"role": "system", "content": "Be brief."}] + history
  assert render_chat(in_messages, add_generation_prompt=False) == system + body
  default = render_chat(history, system=INTERNVL_SYSTEM_MESSAGE)
  assert default.startswith(f"<|im_start|>system\n{INTERNVL_SYSTEM_MESSAGE}<|im_end|>\n<|im_start|>user\n")


def test_rendered_prompt_feeds_token_expansion():
  messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe."}]}]
  out = expand_image_tokens(render_chat(messages), [3], tokens_per_tile=2)
  assert out == "<|im_start|>user\n<img>" + "<IMG_CONTEXT>" * 6 + "</img>\nDescribe.<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize(
    "messages, kwargs, match",
    [
        ([{"role": "robot", "content": "hi"}], {}, "role 'robot'"),
        ([{"role": "user"}], {}, "'role' and 'content'"),
        ([{"role": "user", "content": [{"type": "audio"}]}], {}, "unknown type 'audio'"),
        ([{"role": "user", "content": [{"type": "text"}]}], {}, "without a str 'text'"),
        ([{"role": "user", "content": ["plain string part"]}], {}, "'type' key"),
        ([{"role": "system", "content": "a"}], {"system": "b"}, "already a system turn"),
        ([], {}, "empty"),
    ],
)
def test_bad_messages_raise_value_error(messages, kwargs, match):
  with pytest.raises(ValueError, match=match):
    render_chat(messages, **kwargs)


def test_bad_types_raise_type_error():
  with pytest.raises(TypeError, match="list of message dicts"):
    render_chat({"role": "user", "content": "hi"})
  with pytest.raises(TypeError, match="str or a list of parts"):
    render_chat([{"role": "user", "content": 3}])
  with pytest.raises(TypeError, match="system"):
    render_chat([{"role": "user", "content": "hi"}], system=1)
