"""Automation and on-event templates: one expression keeps its type, anything else is text,
and the sandbox still refuses internals."""

from __future__ import annotations

import pytest

from sluice_functions.automations.templates import TemplateFailed, render_value

EVENT = {"event": {"detail": {"size": 12, "ok": True, "object": {"key": "in/a.csv"}},
                   "resource": {"id": "r1"}}}


@pytest.mark.parametrize("template, expected", [
    ("{{ event.detail.size }}", 12),
    (" {{ event.detail.size * 2 }} ", 24),
    ("{{ event.detail.ok }}", True),
    ("{{ event.detail.object }}", {"key": "in/a.csv"}),
    ("{{ event.detail.object.key }}", "in/a.csv"),
    ("s3://bucket/{{ event.detail.object.key }}", "s3://bucket/in/a.csv"),
    ("{{ event.detail.size }}-{{ event.resource.id }}", "12-r1"),
    ("no template", "no template"),
])
def test_a_single_expression_keeps_its_type_and_other_templates_are_text(template, expected):
    assert render_value({"p": template}, EVENT, field="parameters") == {"p": expected}


@pytest.mark.parametrize("template, why", [
    ("{{ event.nosuch }}", "has no attribute 'nosuch'"),
    ("{{ event.__class__ }}", "unsafe"),
    ("{{ event.detail.size.__class__.__mro__ }}", "unsafe"),
])
def test_unknown_names_and_internals_are_refused_naming_the_field(template, why):
    with pytest.raises(TemplateFailed, match=why) as refused:
        render_value({"p": template}, EVENT, field="parameters")
    assert "parameters.p" in str(refused.value)
