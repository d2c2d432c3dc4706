"""Unit tests of label and field selector parsing and matching."""

from __future__ import annotations

import pytest

from kubelite.errors import InvalidError
from kubelite.selectors import (
    LabelSelector,
    field_values,
    parse_field_selector,
    parse_label_selector,
    selector_from_label_selector_spec,
)

# ---------------------------------------------------------------- labels


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("", {"a": "b"}, True),
        ("", None, True),
        ("a=b", {"a": "b"}, True),
        ("a=b", {"a": "c"}, False),
        ("a=b", {}, False),
        ("a==b", {"a": "b"}, True),
        ("a!=b", {"a": "c"}, True),
        ("a!=b", {"a": "b"}, False),
        ("a!=b", {}, True),
        ("a!=b", None, True),
        ("a in (x,y)", {"a": "y"}, True),
        ("a in (x,y)", {"a": "z"}, False),
        ("a in (x,y)", {}, False),
        ("a in (x)", {"a": "x"}, True),
        ("a notin (x,y)", {"a": "z"}, True),
        ("a notin (x,y)", {"a": "x"}, False),
        ("a notin (x,y)", {}, True),
        ("a notin (x)", {"a": "x"}, False),
        ("a", {"a": ""}, True),
        ("a", {"b": "c"}, False),
        ("!a", {"b": "c"}, True),
        ("!a", {"a": "c"}, False),
        ("a=", {"a": ""}, True),
        ("a=", {"a": "x"}, False),
        ("a>3", {"a": "4"}, True),
        ("a>3", {"a": "3"}, False),
        ("a>3", {"a": "x"}, False),
        ("a<3", {"a": "-1"}, True),
        ("a<3", {}, False),
        ("app=web,tier in (fe,be),!canary", {"app": "web", "tier": "be"}, True),
        ("app=web,tier in (fe,be),!canary", {"app": "web", "tier": "be", "canary": "1"}, False),
        ("app=web,tier in (fe,be),!canary", {"app": "db", "tier": "be"}, False),
        ("example.com/app=web", {"example.com/app": "web"}, True),
    ],
)
def test_label_selector_matches_like_kubernetes(selector, labels, expected):
    """Each operator matches (or not) exactly as Kubernetes' labels package does."""
    assert parse_label_selector(selector).matches(labels) is expected


def test_commas_inside_parentheses_belong_to_the_set():
    """`a in (x,y),b` is two requirements, not three."""
    sel = parse_label_selector("a in (x,y),b")
    assert len(sel.requirements) == 2
    assert sel.requirements[0].values == ("x", "y")
    assert sel.requirements[1].key == "b"


def test_whitespace_is_insignificant():
    """Spaces around operators and commas do not change the selector."""
    assert parse_label_selector(" a = b , c  in ( x , y ) ,  ! d ") == parse_label_selector(
        "a=b,c in (x,y),!d"
    )


@pytest.mark.parametrize(
    "text",
    [
        "a=b",
        "a!=b",
        "a in (x,y)",
        "a notin (x,y)",
        "a",
        "!a",
        "a=",
        "a>1",
        "a<-2",
        "a in (,x)",
        "example.com/app=web,tier notin (a,b),!canary,x",
    ],
)
def test_str_round_trips(text):
    """Parsing str() of a parsed selector gives the same selector."""
    sel = parse_label_selector(text)
    assert parse_label_selector(str(sel)) == sel
    assert str(parse_label_selector(str(sel))) == str(sel)


def test_str_is_canonical():
    """str() sorts requirements by key and set values, and writes `==` as `=`."""
    assert str(parse_label_selector("z==1,a in (y,x,y)")) == "a in (x,y),z=1"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a in x", "unable to parse requirement"),
        ("a in (x", "unable to parse requirement"),
        ("a in (x y)", "unable to parse requirement"),
        ("a b", "unable to parse requirement"),
        ("a=b,", "unable to parse requirement"),
        (",a=b", "unable to parse requirement"),
        ("a=b c", "unable to parse requirement"),
        ("!a=b", "unable to parse requirement"),
        ("=b", "unable to parse requirement"),
        ("a>x", "integer"),
        ("a=(b)", "unable to parse requirement"),
        ("-a=b", "invalid label key"),
        ("a/=b", "invalid label key"),
        ("Bad_Prefix/a=b", "invalid label key"),
        ("a=" + "x" * 64, "invalid label value"),
        ("a=b-", "invalid label value"),
        ("a in (ok,-bad)", "invalid label value"),
        ("k" * 64 + "=v", "invalid label key"),
    ],
)
def test_bad_label_selectors_raise_invalid_error(text, fragment):
    """Malformed syntax and invalid keys or values raise InvalidError saying why."""
    with pytest.raises(InvalidError) as info:
        parse_label_selector(text)
    assert fragment in str(info.value)


def test_selector_spec_empty_selects_everything_and_none_selects_nothing():
    """`{}` matches every object; `None` matches none (metav1.LabelSelectorAsSelector)."""
    assert selector_from_label_selector_spec({}).matches({"a": "b"})
    assert selector_from_label_selector_spec({}).matches(None)
    nothing = selector_from_label_selector_spec(None)
    assert not nothing.matches({})
    assert not nothing.matches({"a": "b"})
    with pytest.raises(InvalidError):
        parse_label_selector(str(nothing))  # can never be sent as "select all"


def test_selector_spec_combines_match_labels_and_expressions():
    """matchLabels and every matchExpressions operator are ANDed together."""
    sel = selector_from_label_selector_spec(
        {
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["fe", "be"]},
                {"key": "env", "operator": "NotIn", "values": ["dev"]},
                {"key": "team", "operator": "Exists"},
                {"key": "canary", "operator": "DoesNotExist"},
            ],
        }
    )
    good = {"app": "web", "tier": "fe", "env": "prod", "team": "x"}
    assert sel.matches(good)
    assert not sel.matches({**good, "app": "db"})
    assert not sel.matches({**good, "tier": "db"})
    assert not sel.matches({**good, "env": "dev"})
    assert not sel.matches({k: v for k, v in good.items() if k != "team"})
    assert not sel.matches({**good, "canary": "true"})
    assert sel == parse_label_selector(str(sel))


@pytest.mark.parametrize(
    "spec",
    [
        {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
        {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
        {"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]},
        {"matchLabels": {"-bad": "x"}},
        {"matchLabels": {"a": 1}},
    ],
)
def test_invalid_selector_spec_raises_invalid_error(spec):
    """Empty In sets, values for Exists, unknown operators and bad keys are rejected."""
    with pytest.raises(InvalidError):
        selector_from_label_selector_spec(spec)


def test_matches_object_reads_metadata_labels():
    """matches_object looks at metadata.labels and treats missing labels as empty."""
    sel = parse_label_selector("app=web")
    assert sel.matches_object({"metadata": {"labels": {"app": "web"}}})
    assert not sel.matches_object({"metadata": {}})
    assert LabelSelector().matches_object({})


# ---------------------------------------------------------------- fields

POD = {
    "metadata": {"name": "p1", "namespace": "default"},
    "spec": {"nodeName": "n1"},
    "status": {"phase": "Running"},
}


@pytest.mark.parametrize(
    ("selector", "obj", "expected"),
    [
        ("", POD, True),
        ("metadata.name=p1", POD, True),
        ("metadata.name==p1", POD, True),
        ("metadata.name=p2", POD, False),
        ("metadata.name!=p2", POD, True),
        ("metadata.namespace=default,status.phase=Running", POD, True),
        ("metadata.namespace=default,status.phase!=Running", POD, False),
        ("spec.nodeName=n1", POD, True),
        ("spec.nodeName=", {"metadata": {"name": "x"}, "spec": {}}, True),
        ("spec.nodeName!=", {"metadata": {"name": "x"}}, False),
        ("spec.nodeName!=", POD, True),
        ("status.phase=Pending", {"metadata": {"name": "x"}}, False),
    ],
)
def test_field_selector_matches(selector, obj, expected):
    """Field terms compare the object's field, a missing one as ""."""
    assert parse_field_selector(selector).matches(obj) is expected


def test_field_selector_rejects_unsupported_fields_by_name():
    """An unknown field raises InvalidError 'field label not supported: X'."""
    with pytest.raises(InvalidError, match="field label not supported: spec.replicas"):
        parse_field_selector("metadata.name=a,spec.replicas=3")


def test_field_selector_allowed_narrows_fields():
    """A caller (one resource) can allow only some fields."""
    parse_field_selector("metadata.name=a", allowed=["metadata.name"])
    with pytest.raises(InvalidError, match="field label not supported: spec.nodeName"):
        parse_field_selector("spec.nodeName=a", allowed=["metadata.name"])


@pytest.mark.parametrize("text", ["metadata.name", "metadata.name=a=b", "x\\"])
def test_malformed_field_selector_raises_invalid_error(text):
    """A term without an operator, or an unescaped '=', is rejected."""
    with pytest.raises(InvalidError):
        parse_field_selector(text)


def test_field_selector_escapes_round_trip():
    """Escaped commas and equals signs in values survive parsing and str()."""
    sel = parse_field_selector(r"metadata.name=a\,b\=c,status.phase!=x")
    assert sel.matches({"metadata": {"name": "a,b=c"}, "status": {"phase": "y"}})
    assert parse_field_selector(str(sel)) == sel


def test_field_selector_skips_empty_terms():
    """Empty terms between commas are ignored, as Kubernetes ignores them."""
    assert parse_field_selector("metadata.name=a,,") == parse_field_selector("metadata.name=a")


def test_field_values_lists_every_selectable_field():
    """field_values gives every supported field, "" when missing."""
    assert field_values({"metadata": {"name": "a"}}) == {
        "metadata.name": "a",
        "metadata.namespace": "",
        "spec.nodeName": "",
        "status.phase": "",
    }
    assert parse_field_selector("metadata.name=a").field_values(POD)["spec.nodeName"] == "n1"
