"""What an error message repeats of a user-given value."""

from plugin.errors import ECHO_LIMIT, cut, shown


def test_short_values_are_echoed_whole_and_quoted():
    assert shown("my vol") == "'my vol'"
    assert cut("my vol") == "my vol"


def test_control_characters_are_escaped():
    assert shown("abc\n") == "'abc\\n'"


def test_long_values_are_cut_with_their_length():
    value = "x" * 10_000_000
    for text in (shown(value), cut(value)):
        assert len(text) < ECHO_LIMIT + 40
        assert "…" in text and "(10000000 characters)" in text
