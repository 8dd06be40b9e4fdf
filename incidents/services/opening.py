"""Opening an incident on the worst day: a title and a severity are enough, and the scenario is suggested.

The suggestion is a plain keyword match of the title against each scenario's title and key, weighted so
that a word only one scenario has ("redis") counts for more than one many share ("failure"). It only
suggests: the commander picks (or ignores) it in one click, nothing is chosen behind their back.
"""

from __future__ import annotations

import re
from collections import Counter

from ..models import Scenario

# Words that say nothing about which runbook applies.
STOP_WORDS = frozenset("a an and are at down for from in is it of on or our the to was we with".split())
PREFIX = 5  # "corrupted" matches "corruption", "databases" matches "database"


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 1 and w not in STOP_WORDS}


def _match(a: str, b: str) -> bool:
    return a == b or (len(a) >= PREFIX and len(b) >= PREFIX and a[:PREFIX] == b[:PREFIX])


def suggest_scenarios(title: str, scenarios: list[Scenario] | None = None, limit: int = 3) -> list[Scenario]:
    """The scenarios whose title or key share words with ``title``, best match first (at most ``limit``)."""
    wanted = _words(title)
    if not wanted:
        return []
    scenarios = list(Scenario.objects.all()) if scenarios is None else scenarios
    vocab = {s.pk: _words(f"{s.title} {s.key.replace('-', ' ')}") for s in scenarios}
    # How many scenarios each word appears in: rarer words decide more.
    spread = Counter(w for words in vocab.values() for w in words)
    scored = []
    for scenario in scenarios:
        score = sum(
            1 / spread[word] for word in vocab[scenario.pk] if any(_match(word, wanted_word) for wanted_word in wanted)
        )
        if score:
            scored.append((-score, scenario.number, scenario.key, scenario))
    return [s for *_, s in sorted(scored, key=lambda t: t[:3])][:limit]
