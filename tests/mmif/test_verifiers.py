"""Rule verifiers: each rule on edge cases, the name table, validation of verify_funcs, ANDing."""

from __future__ import annotations

import pytest

from jaxlab.mmif import verifiers as v
from jaxlab.mmif.records import Constraint, ConstraintError

PARAGRAPHS = "check_whether_response_paragraph_number_in_range"
SENTENCES = "check_whether_response_sentence_number_in_range"
WORDS = "check_whether_response_word_count_in_range"
EACH_KEYWORD = "check_whether_each_keyword_in_list_metioned_in_range"
TOTAL_KEYWORD = "check_whether_total_keyword_in_list_metioned_in_range"

# Valid params for every registered name (the blank-response test runs them all).
SAMPLE_PARAMS = {
    PARAGRAPHS: [0, 5],
    SENTENCES: [0, 5],
    "check_whether_each_paragraph_sentence_number_in_range": [0, 5],
    "check_whether_each_paragraph_sentence_number_in_range_list": [[[0, 5]]],  # one argument: the ranges
    WORDS: [0, 5],
    "check_whether_each_paragraph_word_count_in_range": [0, 5],
    "check_whether_whole_response_not_contain_certain_substrings": [["x"]],
    "check_whether_whole_response_not_contain_certain_substring": ["x"],
    "check_whether_whole_response_contain_certain_substrings": [[" "]],
    "check_whether_each_sentence_begin_with_certain_substring": [" "],
    "check_whether_each_paragraph_begin_with_certain_substring": [" "],
    "check_whether_each_paragraph_end_with_certain_substring": [" "],
    "check_whether_each_sentence_end_with_certain_substring": [" "],
    "check_whether_whole_response_begin_with_certain_substring": [" "],
    "check_whether_whole_response_end_with_certain_substring": [" "],
    EACH_KEYWORD: [["x"], 0, 5],
    TOTAL_KEYWORD: [["x"], 0, 5],
    "check_whether_each_keyword_in_list_mentioned_in_range": [["x"], 0, 5],
    "check_whether_total_keyword_in_list_mentioned_in_range": [["x"], 0, 5],
    "check_percentage_number_precision_in_response": [0],
    "check_number_precision_in_response": [0],
    "check_whether_has_no_arabic_number_in_response": [],
}


def test_registry_holds_the_released_names_and_aliases():
  assert set(v.VERIFIERS) == set(SAMPLE_PARAMS)
  for name, func in v.VERIFIERS.items():
    if "mentioned" not in name:
      assert getattr(v, name) is func
  assert v.VERIFIERS["check_whether_each_keyword_in_list_mentioned_in_range"] is v.VERIFIERS[EACH_KEYWORD]
  assert v.VERIFIERS["check_whether_total_keyword_in_list_mentioned_in_range"] is v.VERIFIERS[TOTAL_KEYWORD]


@pytest.mark.parametrize("response", ["", "   ", "\n \t\n "])
@pytest.mark.parametrize("name", sorted(SAMPLE_PARAMS))
def test_blank_response_fails_every_verifier(name, response):
  # With these params each check would hold vacuously on nothing; a blank answer still fails.
  assert v.VERIFIERS[name](response, *SAMPLE_PARAMS[name]) is False
  assert v.verify(response, [{"func": name, "params": SAMPLE_PARAMS[name]}]) is False


# ---------------------------------------------------------------- length

def test_paragraph_number():
  response = "First.\n \t \nSecond line\nstill second.\n\n\n\nThird 日本語."
  assert v.check_whether_response_paragraph_number_in_range(response, 3, 3)
  assert not v.check_whether_response_paragraph_number_in_range(response, 1, 2)
  assert not v.check_whether_response_paragraph_number_in_range(response, 4, 9)
  assert v.check_whether_response_paragraph_number_in_range("one block\nof two lines", 1, 1)


def test_sentence_number():
  response = "Dr. Smith paid 3.5 dollars, e.g. cash. He left at 5 p.m. on Monday."
  assert v.check_whether_response_sentence_number_in_range(response, 2, 2)
  assert not v.check_whether_response_sentence_number_in_range(response, 3, 5)
  assert not v.check_whether_response_sentence_number_in_range(response, 0, 1)
  assert v.check_whether_response_sentence_number_in_range("Wow!!! Great. 😀", 2, 2)


def test_each_paragraph_sentence_number():
  response = "One. Two.\n  \nThree."
  assert v.check_whether_each_paragraph_sentence_number_in_range(response, 1, 2)
  assert not v.check_whether_each_paragraph_sentence_number_in_range(response, 2, 2)
  assert not v.check_whether_each_paragraph_sentence_number_in_range(response, 0, 1)


def test_each_paragraph_sentence_number_list():
  response = "One. Two.\n\nThree."
  assert v.check_whether_each_paragraph_sentence_number_in_range_list(response, [[2, 2], [1, 1]])
  assert v.check_whether_each_paragraph_sentence_number_in_range_list(response, [[1, 3], [0, 1]])
  assert not v.check_whether_each_paragraph_sentence_number_in_range_list(response, [[1, 1], [1, 1]])
  assert not v.check_whether_each_paragraph_sentence_number_in_range_list(response, [[2, 2]])  # 2 paragraphs
  assert not v.check_whether_each_paragraph_sentence_number_in_range_list(response, [[2, 2], [1, 1], [0, 9]])


def test_word_count():
  response = "Café au lait, 日本語! 😀 — well-known 3.5%."
  # café, au, lait, 日本語, well-known, 3.5. (emoji and dash are not words)
  assert v.check_whether_response_word_count_in_range(response, 6, 6)
  assert not v.check_whether_response_word_count_in_range(response, 7, 10)
  assert not v.check_whether_response_word_count_in_range(response, 0, 5)


def test_each_paragraph_word_count():
  response = "one two\n \t\nthree four five"
  assert v.check_whether_each_paragraph_word_count_in_range(response, 2, 3)
  assert not v.check_whether_each_paragraph_word_count_in_range(response, 3, 3)
  assert not v.check_whether_each_paragraph_word_count_in_range(response, 2, 2)


# ---------------------------------------------------------------- substrings

def test_not_contain_substrings_is_case_sensitive():
  assert v.check_whether_whole_response_not_contain_certain_substrings("I like Apple pie.", ["apple", "banana"])
  assert not v.check_whether_whole_response_not_contain_certain_substrings("I like apple pie.", ["x", "apple"])
  assert not v.check_whether_whole_response_not_contain_certain_substrings("pineapple", ["apple"])  # substring
  assert v.check_whether_whole_response_not_contain_certain_substring("No commas here.", ",")
  assert not v.check_whether_whole_response_not_contain_certain_substring("Well, yes.", ",")
  assert not v.check_whether_whole_response_not_contain_certain_substring("日本語です", "日本")


def test_contain_substrings_needs_all():
  assert v.check_whether_whole_response_contain_certain_substrings("A café 😀 in Paris.", ["café", "😀"])
  assert not v.check_whether_whole_response_contain_certain_substrings("A café in Paris.", ["café", "😀"])
  assert not v.check_whether_whole_response_contain_certain_substrings("A Café.", ["café"])


def test_sentence_begin_and_end():
  assert v.check_whether_each_sentence_begin_with_certain_substring("- a.\n- b.", "- ")
  assert not v.check_whether_each_sentence_begin_with_certain_substring("- a. b.", "- ")
  assert v.check_whether_each_sentence_end_with_certain_substring("Wow! Great! 日本!", "!")
  assert not v.check_whether_each_sentence_end_with_certain_substring("Wow! Great.", "!")
  # No sentence at all (only a symbol line): "each sentence" cannot hold.
  assert not v.check_whether_each_sentence_end_with_certain_substring("---", "-")
  assert not v.check_whether_each_sentence_begin_with_certain_substring("---", "-")


def test_paragraph_begin_and_end():
  response = "Note: one.\n  \nNote: two 😀"
  assert v.check_whether_each_paragraph_begin_with_certain_substring(response, "Note:")
  assert not v.check_whether_each_paragraph_begin_with_certain_substring(response + "\n\nthree", "Note:")
  assert not v.check_whether_each_paragraph_begin_with_certain_substring(response, "note:")
  assert v.check_whether_each_paragraph_end_with_certain_substring("a 😀\n\nb 😀  ", "😀")
  assert not v.check_whether_each_paragraph_end_with_certain_substring("a 😀\n\nb", "😀")


def test_whole_response_begin_and_end_ignore_outer_whitespace():
  assert v.check_whether_whole_response_begin_with_certain_substring("  \n Dear café,\nbye.", "Dear café")
  assert not v.check_whether_whole_response_begin_with_certain_substring("Hi. Dear café", "Dear café")
  assert v.check_whether_whole_response_end_with_certain_substring("Done. 🎉 \n", "🎉")
  assert not v.check_whether_whole_response_end_with_certain_substring("🎉 Done.", "🎉")


# ---------------------------------------------------------------- keywords

def test_keyword_whole_words_case_insensitive():
  response = "Cat! The cat sat. Category and bobcat are not cats. cat's toy. CAT"
  assert v.keyword_count(response, "cat") == 4  # edges of the string, "cat's"; not category/bobcat/cats
  assert v.check_whether_each_keyword_in_list_metioned_in_range(response, ["cat"], 4, 4)
  assert not v.check_whether_each_keyword_in_list_metioned_in_range(response, ["cat"], 5, 9)
  assert not v.check_whether_each_keyword_in_list_metioned_in_range(response, ["cat"], 0, 3)


def test_keywords_with_symbols_and_spaces():
  assert v.keyword_count("C++ is fun; I like c++, not C++17.", "C++") == 2
  assert v.keyword_count("#tag #Tag #tags x#tag", "#tag") == 2
  assert v.keyword_count("New\nYork and new   york, not NewYork", "new york") == 2
  assert v.keyword_count("Straße and STRASSE", "strasse") == 2
  assert v.keyword_count("STRASSE and straße", "Straße") == 2
  assert v.keyword_count("café, CAFÉ, cafés", "Café") == 2


def test_each_and_total_keywords():
  response = "Red apples, red cherries and a green pear."
  assert v.check_whether_each_keyword_in_list_metioned_in_range(response, ["red", "green"], 1, 2)
  assert not v.check_whether_each_keyword_in_list_metioned_in_range(response, ["red", "green"], 2, 2)
  assert not v.check_whether_each_keyword_in_list_metioned_in_range(response, ["red", "blue"], 1, 2)
  assert v.check_whether_total_keyword_in_list_metioned_in_range(response, ["red", "green", "blue"], 3, 3)
  assert not v.check_whether_total_keyword_in_list_metioned_in_range(response, ["red", "green"], 4, 9)
  assert not v.check_whether_total_keyword_in_list_metioned_in_range(response, ["red", "green"], 0, 2)
  assert v.verify(response, [{"func": "check_whether_total_keyword_in_list_mentioned_in_range",
                              "params": [["red", "green"], 3, 3]}])


# ---------------------------------------------------------------- numbers

@pytest.mark.parametrize("response, expected", [
    ("It costs 3.", ["3"]),
    ("Rates 3.2e-4, 1.5E+10 and 1,234.56, or .5!", ["3.2e-4", "1.5E+10", "1,234.56", ".5"]),
    ("A4 H2O COVID-19 mp3 x86_64 3D 5km 1st 3.14abc 1,234km", []),
    ("价格是3.50元", ["3.50"]),
    ("Python 3.11.2 was out on 2024.10.07, at -2.5 degrees", ["2.5"]),
    ("1990-2000 and 1,2,3", ["1990", "2000", "1", "2", "3"]),
])
def test_number_grammar(response, expected):
  assert v.numbers(response) == expected


def test_percentage_precision():
  assert v.check_percentage_number_precision_in_response("Growth was 1.50% and then 2.25 %.", 2)
  assert v.check_percentage_number_precision_in_response("Only 3.14159 here, and 1,234.50%.", 2)
  assert not v.check_percentage_number_precision_in_response("Growth was 1.50% and 2.5%.", 2)
  assert not v.check_percentage_number_precision_in_response("Growth was 1.50%.", 1)
  assert not v.check_percentage_number_precision_in_response("Growth was 50%.", 2)
  assert v.check_percentage_number_precision_in_response("Growth was 50% or 7 ％.", 0)
  assert not v.check_percentage_number_precision_in_response("Growth was 50.0%.", 0)
  assert v.check_percentage_number_precision_in_response("No percentages in 3.14159.", 2)


def test_number_precision():
  assert v.check_number_precision_in_response("It costs 3.", 0)
  assert not v.check_number_precision_in_response("It costs 3.", 1)
  assert v.check_number_precision_in_response("A rate of 3.2e-4 and 1.5E+3.", 1)
  assert not v.check_number_precision_in_response("A rate of 3.2e-4.", 2)
  assert v.check_number_precision_in_response("He paid $1,234.56 for 2.50 kg.", 2)
  assert not v.check_number_precision_in_response("He paid $1,234.56 for 2.5 kg.", 2)
  assert v.check_number_precision_in_response("Growth was 1.50%.", 2)
  assert not v.check_number_precision_in_response("Growth was 1.50% in 2024.", 2)  # 2024 has 0


def test_number_precision_skips_numbers_inside_words():
  response = "H2O, COVID-19, an A4 sheet, mp3 and x86_64 cost 2.50 in Python 3.11.2."
  assert v.check_number_precision_in_response(response, 2)
  assert not v.check_number_precision_in_response(response, 0)
  assert v.check_number_precision_in_response("价格是3.50元。", 2)
  assert not v.check_number_precision_in_response("价格是3.50元。", 1)


def test_no_arabic_numbers():
  assert v.check_whether_has_no_arabic_number_in_response("No digits: café, 日本語, 😀, IV.")
  for response in ["It happened in 2024.", "Water is H2O.", "COVID-19 spread.", "Fullwidth ３ too.", "x86_64"]:
    assert not v.check_whether_has_no_arabic_number_in_response(response), response


# ---------------------------------------------------------------- verify and constraints

def test_verify_ands_functions_with_list_and_dict_params():
  response = "One two. Three four."
  sentences = {"func": SENTENCES, "params": [2, 2]}
  words = {"func": WORDS, "params": {"lower_bound": 4, "upper_bound": 4}}
  assert v.verify(response, [sentences, words])
  assert not v.verify(response, [sentences, {"func": WORDS, "params": {"lower_bound": 5, "upper_bound": 9}}])
  assert not v.verify(response, [{"func": SENTENCES, "params": [3, 3]}, words])
  assert v.verify("No digits.", [{"func": "check_whether_has_no_arabic_number_in_response", "params": None}])
  assert v.verify("No digits.", [{"func": "check_whether_has_no_arabic_number_in_response", "params": {}}])


def test_check_rule_constraint():
  constraint = Constraint.from_json({
      "key": "word_limit", "value": "Answer in 2 to 3 words.",
      "judge": {"method": "rule_based", "verify_funcs": [{"func": WORDS, "params": [2, 3]}]}})
  assert v.check_rule_constraint("Two words", constraint)
  assert not v.check_rule_constraint("Far too many words here", constraint)
  tone = Constraint.from_json({"key": "tone", "value": "Be formal.", "judge": {"method": "cmp_gpt"}})
  with pytest.raises(ConstraintError, match="'tone'.*cmp_gpt"):
    v.check_rule_constraint("Hello", tone)
  broken = Constraint("word_limit", "x", "rule_based", ({"func": WORDS, "params": [3, 2]},))
  with pytest.raises(ConstraintError, match="constraint 'word_limit'.*lower_bound"):
    v.check_rule_constraint("Hello", broken)


def test_verify_rejects_a_non_string_response():
  with pytest.raises(TypeError, match="string"):
    v.verify(None, [{"func": WORDS, "params": [1, 2]}])


@pytest.mark.parametrize("verify_funcs, needles", [
    ([{"func": "check_whether_response_word_count_in_rang", "params": [1, 2]}],
     ["unknown verify_func", "check_whether_response_word_count_in_rang", "did you mean", WORDS]),
    ([{"func": "frobnicate", "params": []}], ["unknown verify_func 'frobnicate'", "none of the"]),
    ([], ["'verify_funcs' must be a non-empty list"]),
    ({"func": WORDS, "params": [1, 2]}, ["'verify_funcs' must be a non-empty list"]),
    (["not an object"], ["string 'func'"]),
    ([{"params": [1, 2]}], ["string 'func'"]),
    ([{"func": WORDS, "params": [1]}], [WORDS, "upper_bound"]),
    ([{"func": WORDS, "params": [1, 2, 3]}], [WORDS, "too many"]),
    ([{"func": WORDS, "params": {"lower": 1, "upper_bound": 2}}], [WORDS, "lower"]),
    ([{"func": WORDS, "params": {"response": "x", "lower_bound": 1, "upper_bound": 2}}], [WORDS, "response"]),
    ([{"func": WORDS, "params": "1, 2"}], [WORDS, "'params' must be a list or an object"]),
    ([{"func": WORDS, "params": [True, 3]}], [WORDS, "'lower_bound'", "non-negative int"]),
    ([{"func": WORDS, "params": [1, 3.0]}], [WORDS, "'upper_bound'", "non-negative int"]),
    ([{"func": WORDS, "params": [-1, 3]}], [WORDS, "'lower_bound'", "non-negative int"]),
    ([{"func": WORDS, "params": [5, 3]}], [WORDS, "'lower_bound' (5) exceeds 'upper_bound' (3)"]),
    ([{"func": EACH_KEYWORD, "params": [["a"], 3, 1]}], [EACH_KEYWORD, "'lower_bound_times' (3) exceeds"]),
    ([{"func": TOTAL_KEYWORD, "params": [["a"], 0, "2"]}], [TOTAL_KEYWORD, "'upper_bound_times'"]),
    ([{"func": EACH_KEYWORD, "params": [[], 0, 2]}], [EACH_KEYWORD, "'keywords'", "non-empty list"]),
    ([{"func": EACH_KEYWORD, "params": [["a", "  "], 0, 2]}], [EACH_KEYWORD, "'keywords'", "item 1"]),
    ([{"func": EACH_KEYWORD, "params": ["cat", 0, 2]}], [EACH_KEYWORD, "'keywords'", "list"]),
    ([{"func": "check_whether_whole_response_not_contain_certain_substrings", "params": [["a", ""]]}],
     ["not_contain_certain_substrings", "'substrings'", "item 1"]),
    ([{"func": "check_whether_whole_response_contain_certain_substrings", "params": [[1]]}],
     ["contain_certain_substrings", "'substrings'", "item 0"]),
    ([{"func": "check_whether_whole_response_not_contain_certain_substring", "params": [""]}],
     ["not_contain_certain_substring", "'substring'", "non-empty string"]),
    ([{"func": "check_whether_each_sentence_begin_with_certain_substring", "params": [5]}],
     ["each_sentence_begin", "'substring'"]),
    ([{"func": "check_number_precision_in_response", "params": [-1]}],
     ["check_number_precision_in_response", "'precision'"]),
    ([{"func": "check_percentage_number_precision_in_response", "params": {"precision": True}}],
     ["check_percentage_number_precision_in_response", "'precision'"]),
    ([{"func": "check_number_precision_in_response", "params": [1.5]}], ["'precision'"]),
    ([{"func": "check_whether_each_paragraph_sentence_number_in_range_list", "params": [[]]}],
     ["range_list", "'ranges'", "non-empty list"]),
    ([{"func": "check_whether_each_paragraph_sentence_number_in_range_list", "params": [[[1]]]}],
     ["range_list", "'ranges'", "item 0"]),
    ([{"func": "check_whether_each_paragraph_sentence_number_in_range_list", "params": [[[1, 2], [1, "2"]]]}],
     ["range_list", "'ranges'", "item 1"]),
    ([{"func": "check_whether_each_paragraph_sentence_number_in_range_list", "params": [[[3, 1]]]}],
     ["range_list", "'ranges'", "lower 3 > upper 1"]),
    ([{"func": "check_whether_each_paragraph_sentence_number_in_range_list", "params": ["1-2"]}],
     ["range_list", "'ranges'"]),
    # A valid entry does not hide a broken one after it.
    ([{"func": WORDS, "params": [1, 2]}, {"func": SENTENCES, "params": [2, 1]}], [SENTENCES, "exceeds"]),
])
def test_validate_verify_funcs_errors(verify_funcs, needles):
  where = "item 7 constraint 'word_limit'"
  with pytest.raises(ConstraintError) as info:
    v.validate_verify_funcs(verify_funcs, where=where)
  message = str(info.value)
  assert message.startswith(where)
  for needle in needles:
    assert needle in message, (needle, message)
  # verify validates before it runs anything, even on a blank response.
  with pytest.raises(ConstraintError):
    v.verify("", verify_funcs)


def test_validate_accepts_released_layouts():
  v.validate_verify_funcs([
      {"func": WORDS, "params": [20, 40]},
      {"func": EACH_KEYWORD, "params": {"keywords": ["C++"], "lower_bound_times": 1, "upper_bound_times": 1}},
      {"func": "check_whether_each_paragraph_sentence_number_in_range_list", "params": [[[1, 2], [3, 3]]]},
      {"func": "check_whether_has_no_arabic_number_in_response", "params": []},
      {"func": "check_percentage_number_precision_in_response", "params": [0]},
  ])
