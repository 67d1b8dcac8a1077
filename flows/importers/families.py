"""SKU family rules: prefix, regex, lookup table or keywords of the description."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from flows.importers.columns import SkuFamilyRule
from flows.importers.limits import WORD_RE

# --------------------------------------------------------------------------- sku families


def _words(text: str) -> list[str]:
    """Split ``text`` into upper-case words, dropping hyphens first (``T-LIGHT`` -> ``TLIGHT``)."""
    return WORD_RE.findall(text.upper().replace("-", ""))


def _keyword_classifier(rule: SkuFamilyRule) -> Callable[[str], str]:
    """Return a function giving the highest-priority family whose keyword occurs in a text."""
    rank: dict[str, int] = {}
    families: list[str] = []
    for position, (family, words) in enumerate(rule.keywords):
        families.append(family)
        for word in words:
            for token in _words(word):
                rank.setdefault(token, position)

    def classify(text: str) -> str:
        best = min((rank[w] for w in _words(text) if w in rank), default=None)
        return rule.default if best is None else families[best]

    return classify


def _regex_classifier(rule: SkuFamilyRule) -> Callable[[str], str]:
    """Return a function giving the ``family`` group, group 1 or the whole regex match."""
    compiled = re.compile(rule.pattern or "")

    def classify(text: str) -> str:
        match = compiled.search(text)
        if match is None:
            return rule.default
        if "family" in compiled.groupindex:
            found = match.group("family")
        else:
            found = match.group(1) if compiled.groups else match.group(0)
        return found or rule.default

    return classify


def _prefix_classifier(rule: SkuFamilyRule) -> Callable[[str], str]:
    """Return a function giving the first ``rule.length`` characters of a text."""
    length = rule.length or 1

    def classify(text: str) -> str:
        return text[:length] or rule.default

    return classify


def _lookup_classifier(rule: SkuFamilyRule) -> Callable[[str], str]:
    """Return a function looking a text up in the rule's table."""
    table = dict(rule.table)

    def classify(text: str) -> str:
        return table.get(text, rule.default)

    return classify


_CLASSIFIERS: Final[dict[str, Callable[[SkuFamilyRule], Callable[[str], str]]]] = {
    "prefix": _prefix_classifier,
    "regex": _regex_classifier,
    "lookup": _lookup_classifier,
    "keywords": _keyword_classifier,
}


def _classifier(rule: SkuFamilyRule) -> Callable[[str], str]:
    """Return the text -> family function for the rule's kind."""
    return _CLASSIFIERS[rule.kind](rule)


def sku_family_function(rule: SkuFamilyRule) -> Callable[[str, str], str]:
    """Return ``family(sku, description)`` for ``rule``; results are cached per input."""
    classify = _classifier(rule)
    use_description = rule.source == "description"
    cache: dict[str, str] = {}

    def family(sku: str, description: str) -> str:
        text = description if use_description else sku
        found = cache.get(text)
        if found is None:
            found = cache[text] = classify(text.strip())
        return found

    return family
