"""Descriptions shown in the Dagster UI render as written.

The UI renders descriptions as Markdown and drops anything that looks like an HTML
tag, so a placeholder such as ``models/<model>/current.json`` shows up as
``models//current.json``. Placeholders are written as ``{model}`` instead.
"""

from __future__ import annotations

import re

from batch_assets.definitions import defs

TAG = re.compile(r"<[^<>\s][^<>]*>")


def _descriptions() -> dict[str, str]:
    graph = defs().resolve_asset_graph()
    found = {key.to_user_string(): graph.get(key).description or ""
             for key in graph.get_all_asset_keys()}
    for check in graph.asset_check_keys:
        found[f"check {check.name}"] = graph.get_check_spec(check).description or ""
    return found


def test_trained_model_description_has_no_html_like_tags():
    description = _descriptions()["trained_model"]
    assert "`models/{model}/{version}/`" in description
    assert "`models/{model}/current.json`" in description
    assert TAG.findall(description) == []


def test_no_asset_or_check_description_has_html_like_tags():
    descriptions = _descriptions()
    assert len(descriptions) > 2  # the predictions and their checks are among them
    assert {name: TAG.findall(text) for name, text in descriptions.items()
            if TAG.findall(text)} == {}
