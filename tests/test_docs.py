"""The documentation's generated pages are current: each is what its renderer makes of today's code and data."""

from __future__ import annotations

from facedyn.docs import config_reference


def test_every_setting_has_a_one_line_meaning() -> None:
    assert config_reference.missing_meanings() == []


def test_the_configuration_reference_is_current() -> None:
    page = config_reference.PAGE
    assert page.read_text() == config_reference.render(), (
        f"{page.name} is out of date: run `python -m facedyn.docs.config_reference`")
