"""Descriptions shown in the Dagster UI render as written.

The UI renders descriptions as Markdown and drops anything that looks like an HTML
tag, so a placeholder such as ``models/<model>/current.json`` shows up as
``models//current.json``. Placeholders are written as ``{model}`` instead.
"""

from __future__ import annotations

import re

import pytest

from batch_assets.definitions import defs

TAG = re.compile(r"<[^<>\s][^<>]*>")


def _descriptions() -> dict[str, str]:
    graph = defs().resolve_asset_graph()
    found = {key.to_user_string(): graph.get(key).description or ""
             for key in graph.get_all_asset_keys()}
    for check in graph.asset_check_keys:
        found[f"check {check.name}"] = graph.get_check_spec(check).description or ""
    return found


def test_every_asset_and_check_has_a_description_checked():
    assert {"trained_model", "predictions", "check trained_model_quality"} <= set(
        _descriptions())


@pytest.mark.parametrize("name", ["trained_model", "predictions"])
def test_asset_description_has_no_html_like_tags(name):
    description = _descriptions()[name]
    assert description
    assert TAG.findall(description) == [], f"{name}: {description}"


def test_check_descriptions_have_no_html_like_tags():
    tagged = {name: TAG.findall(text) for name, text in _descriptions().items()
              if TAG.findall(text)}
    assert tagged == {}


def test_trained_model_description_names_the_paths():
    description = _descriptions()["trained_model"]
    assert "`models/{model}/{version}/`" in description
    assert "`models/{model}/current.json`" in description
