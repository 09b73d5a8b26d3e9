"""The README's topic reference is generated from the catalogue and the schemas."""

from pathlib import Path

from events.topic_reference import START, topic_reference

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_topic_reference_matches_the_catalogue():
    text = README.read_text()
    assert START in text
    assert topic_reference() in text, "the README's topic reference is stale: run `make docs`"


def test_readme_shows_the_two_commands():
    text = README.read_text()
    assert "make demo" in text and "make test" in text
