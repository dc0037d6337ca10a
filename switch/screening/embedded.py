"""The embedded screener (issue 12): a FollowTheMoney list matched in process with `rigour`.

Every name is compared in its own script and in its Latin forms (ICU's ASCII transliteration
and anyascii's, the switch's own), on both sides: ICU and anyascii lose different things on
Khmer, Thai and Lao, and lists carry Latin aliases the payment may use instead of the script.

Two stages, so that a clear payment costs next to nothing:
1. blocking: an index from keys to entries. Keys are the normalised tokens of every name form,
   the tokens of a name joined ("WangXiaoMing" meets "wang xiao ming"), a metaphone key per
   Latin token, and the normalised identifiers. A payment whose names and ids share no key with
   any entry is clear without scoring; so is one that shares only a short phonetic key
   ("ST"), or whose joined name forms are far (edit distance) from all of the entry's.
2. scoring the few candidates that share keys (the rarest keys first): rigour's analysed names,
   symbol pairing (`pair_symbols`) then edit-distance alignment of the rest (`compare_parts`),
   best over the name-form pairs; then identifiers, birth dates and countries.

Logs carry entry ids and counts, never a payment party's name, birth date or national id.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Final

from anyascii import anyascii
from rigour.names import Name, NameTypeTag, align_person_name_order, analyze_names, compare_parts, pair_symbols
from rigour.names import SymbolCategory
from rigour.text.phonetics import metaphone
from rigour.text.distance import levenshtein_similarity
from rigour.text.translit import ascii_text

from switch.domain.screening import CLEAR, Hit, Outcome, Subject, SubjectKind, Verdict
from switch.screening.entities import Entry, LoadedList, load_list, normalise_id

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- weights [U]: tuned on the
# made-up list and the tests (tests/unit/test_screening_matching.py), not on a labelled corpus
# a part that only one side has weighs this much more than a matched one: a common given name
# alone ("Somchai") must not reach the threshold against "Somchai Jaidee"
UNMATCHED_PART_WEIGHT: Final = 2.0
# two parts aligned against each other that score below this disagree ("An" vs "Anh")...
PART_CONFLICT_BELOW: Final = 0.5
# ...and cap the name score here, under any sensible threshold: same family name, other given name
PART_CONFLICT_CAP: Final = 0.55
# a symbol pairing of initials ("D." vs "Dragomir") counts for less than a full name
INITIAL_SYMBOL_SCORE: Final = 0.6
# an identifier of the payment's party equal to one of the entry's: a strong hit on its own
ID_MATCH_SCORE: Final = 0.95
# birth dates on both sides: equal adds, a different year takes much away, a different day less
BIRTH_DATE_MATCH_BONUS: Final = 0.05
BIRTH_YEAR_MISMATCH_PENALTY: Final = 0.3
BIRTH_DAY_MISMATCH_PENALTY: Final = 0.15
# countries on both sides and none in common
COUNTRY_MISMATCH_PENALTY: Final = 0.1
# candidates scored per subject (the ones sharing the rarest keys); the rest are not scored
CANDIDATES_MAX: Final = 12
# a phonetic key this long or longer links a candidate on its own ("SFNR0"); shorter ones ("ST",
# "RTN") only when the entry shares PHONETIC_KEYS_MIN of them
PHONETIC_KEY_STRONG_CHARS_MIN: Final = 4
PHONETIC_KEYS_MIN: Final = 2
# a candidate whose joined name forms are all less alike than this (cheap edit distance) is not
# scored with rigour: a shared rare syllable or phonetic key alone does not make a candidate.
# rigour's similarity is 0 beyond a plausible edit distance, so a payment name missing much of
# a listed name (two of four parts) is not scored: a trade-off for the clear path's cost [U]
PREFILTER_SIMILARITY_MIN: Final = 0.5
# a name form longer than this is cut (a payment field is at most 140 characters)
NAME_CHARS_MAX: Final = 200

# a word: letters and digits with their combining marks (Python's \w leaves out the vowel signs
# and diacritics of Thai, Lao and Khmer, which would cut "สุดารัตน์" into pieces)
_TOKEN = re.compile(r"[\w\u0300-\u036f\u0e31\u0e34-\u0e3a\u0e47-\u0e4e\u0eb1\u0eb4-\u0ebc\u0ec8-\u0ecd"
                    r"\u17b4-\u17d3\u17dd\u1dc0-\u1dff\u20d0-\u20ff]+")
_LATIN_TOKEN = re.compile(r"[a-z]+")


def name_forms(name: str, latin: str | None = None) -> tuple[str, ...]:
    """The name in its script and its Latin forms (ICU, anyascii, the one given), distinct."""
    name = name[:NAME_CHARS_MAX]
    forms = [name, ascii_text(name), anyascii(name)]
    if latin:
        forms.append(latin[:NAME_CHARS_MAX])
    seen: dict[str, str] = {}
    for form in forms:
        key = " ".join(_TOKEN.findall(form.casefold()))
        if key and "?" not in form and key not in seen:
            seen[key] = form
    return tuple(seen.values())


def _joined(forms: Iterable[str]) -> tuple[str, ...]:
    """Each form's tokens joined without spaces, as written and sorted (so that "Quillfeather
    Dragomir" meets "Dragomir Quillfeather"), for the cheap pre-filter."""
    out: dict[str, None] = {}
    for form in forms:
        tokens = _TOKEN.findall(form.casefold())
        out["".join(tokens)] = None
        out["".join(sorted(tokens))] = None
    out.pop("", None)
    return tuple(out)


def blocking_keys(forms: Iterable[str]) -> set[str]:
    keys: set[str] = set()
    for form in forms:
        tokens = _TOKEN.findall(form.casefold())
        if not tokens:
            continue
        if len(tokens) > 1:
            keys.add("j:" + "".join(tokens))
        for token in tokens:
            if len(token) < 2:
                continue  # an initial, a lone letter: blocks nothing
            keys.add("t:" + token)
            if token.isascii() and _LATIN_TOKEN.fullmatch(token) and len(token) >= 3:
                key = metaphone(token)
                if key:  # a short key ("ST") is shared by many names: a weak link ("w:")
                    keys.add(("p:" if len(key) >= PHONETIC_KEY_STRONG_CHARS_MIN else "w:") + key)
    return keys


@dataclass(slots=True)
class _Indexed:
    entry: Entry
    forms: tuple[str, ...]
    joined: tuple[str, ...]  # each form's tokens, lower case, joined without spaces
    analysed: dict[NameTypeTag, list[Name]] = field(default_factory=dict)  # filled on first use

    def names(self, tag: NameTypeTag) -> list[Name]:
        names = self.analysed.get(tag)
        if names is None:  # a benign race: two threads may analyse once each
            names = self.analysed[tag] = list(analyze_names(tag, self.forms))
        return names


@dataclass(frozen=True, slots=True)
class _Index:
    loaded: LoadedList
    items: tuple[_Indexed, ...]
    postings: Mapping[str, tuple[int, ...]]
    weights: Mapping[str, float]  # key -> its rarity (idf)

    @classmethod
    def build(cls, loaded: LoadedList) -> _Index:
        items = []
        for e in loaded.entries:
            forms = tuple(f for n in e.names for f in name_forms(n))
            items.append(_Indexed(e, forms, _joined(forms)))
        postings: dict[str, list[int]] = defaultdict(list)
        for i, item in enumerate(items):
            keys = blocking_keys(item.forms) | {"i:" + v for v in item.entry.ids}
            for key in keys:
                postings[key].append(i)
        n = len(items)
        return cls(loaded, tuple(items), {k: tuple(v) for k, v in postings.items()},
                   {k: math.log(1 + n / len(v)) for k, v in postings.items()})


def _warm_up() -> None:
    """Load rigour's name data and ICU's transliterators now (seconds), not on the first payment
    that has a candidate."""
    for sample in ("Warm Up", "សុខ", "สม", "ສົມ", "王", "Nguyễn"):
        name_forms(sample)
    analyze_names(NameTypeTag.PER, ["Warm Up"])
    analyze_names(NameTypeTag.ORG, ["Warm Up Ltd"])


def _tag(kind: SubjectKind, entry: Entry) -> NameTypeTag:
    if entry.is_person:
        return NameTypeTag.PER
    if kind is SubjectKind.PERSON:
        return NameTypeTag.PER
    return NameTypeTag.ORG if entry.schema in ("Organization", "Company") else NameTypeTag.ENT


def _compatible(kind: SubjectKind, entry: Entry) -> bool:
    if kind is SubjectKind.PERSON:
        return entry.schema in ("Person", "LegalEntity")
    if kind is SubjectKind.ORGANIZATION:
        return entry.schema != "Person"
    return True


def _part_weight(parts: Sequence[Any]) -> float:
    return float(sum(len(p.comparable) for p in parts))


def name_score(query: Name, result: Name, tag: NameTypeTag) -> float:
    """How alike two analysed names are, 0..1: shared symbols (known names, organisation types)
    first, then an edit-distance alignment of the parts left, best over the symbol pairings."""
    best = 0.0
    for pairing in pair_symbols(query, result) or [()]:
        used_q = {id(p) for a in pairing for p in a.qps}
        used_r = {id(p) for a in pairing for p in a.rps}
        total = matched = 0.0
        conflict = False
        for a in pairing:
            weight = _part_weight(a.qps) + _part_weight(a.rps)
            score = INITIAL_SYMBOL_SCORE if a.symbol is not None and a.symbol.category == SymbolCategory.INITIAL else 1.0
            total += weight
            matched += weight * score
        rest_q = [p for p in query.parts if id(p) not in used_q]
        rest_r = [p for p in result.parts if id(p) not in used_r]
        if tag == NameTypeTag.PER and rest_q and rest_r:
            rest_q, rest_r = align_person_name_order(rest_q, rest_r)
        for a in compare_parts(rest_q, rest_r) if (rest_q or rest_r) else ():
            weight = _part_weight(a.qps) + _part_weight(a.rps)
            if not a.qps or not a.rps:
                total += weight * UNMATCHED_PART_WEIGHT
                continue
            if a.score < PART_CONFLICT_BELOW:
                conflict = True
            total += weight
            matched += weight * a.score
        score = matched / total if total else 0.0
        if conflict:
            score = min(score, PART_CONFLICT_CAP)
        best = max(best, score)
    return best


def _birth_date_adjustment(subject: date | None, entry: Entry) -> tuple[float, str]:
    if subject is None or not entry.birth_dates:
        return 0.0, ""
    given = subject.isoformat()
    if any(given.startswith(d) or d.startswith(given) for d in entry.birth_dates):
        return BIRTH_DATE_MATCH_BONUS, "birth date matches"
    if any(d[:4] == given[:4] for d in entry.birth_dates):
        return -BIRTH_DAY_MISMATCH_PENALTY, "birth date differs (same year)"
    return -BIRTH_YEAR_MISMATCH_PENALTY, "birth date differs"


class EmbeddedScreener:
    """The screening port on a local list. `screen` runs in the caller's thread (CPU only, no
    I/O); `reload` may run in another: it builds the new index fully, then swaps one reference."""

    provider: Final = "embedded"

    def __init__(self, path: Path, *, threshold: float, metrics: Any = None) -> None:
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold {threshold} not in (0, 1]")
        self.path = path
        self.threshold = threshold
        self._metrics = metrics
        self._reload_lock = threading.Lock()
        self._index = self._build()
        self.warm = threading.Event()  # set once rigour's name data is loaded (start_warm_up)
        if metrics is not None:
            metrics.screening_list_entries.set(len(self._index.items))

    def start_warm_up(self) -> None:
        """Load rigour's person-name data (about 6 s of one core, once per process) in a background
        thread: its native code releases the GIL, so nothing waits for it but a candidate scored
        before it is done. The composition root calls this once the switch is up: at start it
        would take the core the broker and the database answers need (a bounded start-up step
        missed its 2 s under a test's load). Not called: the first candidate loads it."""
        threading.Thread(target=self._warm_up, name="screening-warm-up", daemon=True).start()

    def _warm_up(self) -> None:
        started = time.thread_time()
        _warm_up()
        self.warm.set()
        if self._metrics is not None:
            self._metrics.screening_name_data_loaded.set(1)
        log.info("screening: name data loaded (%.1f s of CPU)", time.thread_time() - started)

    def _build(self) -> _Index:
        return _Index.build(load_list(self.path))

    def describe(self) -> str:
        """What is loaded, as reload() says it ("demo-list.ftm.json: 30 entities, sha256 ...")."""
        return self._index.loaded.describe()

    @property
    def list_version(self) -> str:
        return self._index.loaded.version

    def reload(self) -> str:
        """Load the list file again; ValueError (and the old list kept) when it does not load."""
        with self._reload_lock:
            index = self._build()
            self._index = index
        if self._metrics is not None:
            self._metrics.screening_list_entries.set(len(index.items))
        log.info("screening list loaded: %s", index.loaded.describe())
        return index.loaded.describe()

    async def screen(self, subjects: Sequence[Subject]) -> dict[tuple[str, str], Verdict]:
        started = time.perf_counter()
        verdicts = self.screen_now(subjects)
        if self._metrics is not None:
            elapsed = time.perf_counter() - started
            for verdict in verdicts.values():
                self._metrics.screening_seconds.labels(self.provider, verdict.outcome.value).observe(elapsed / len(verdicts))
        return verdicts

    def screen_now(self, subjects: Sequence[Subject]) -> dict[tuple[str, str], Verdict]:
        """`screen` without the event loop (tests, the benchmark, the simulator)."""
        index = self._index  # one list for the whole call, whatever a reload does meanwhile
        best: dict[tuple[str, str], Hit | None] = {}
        for subject in subjects:
            hit = self.best_hit(index, subject)
            current = best.get(subject.key)
            if hit is not None and hit.score >= self.threshold and (current is None or hit.score > current.score):
                best[subject.key] = hit
            else:
                best.setdefault(subject.key, None)
        version = index.loaded.version
        return {key: (Verdict(Outcome.HIT, hit, list_version=version) if hit is not None
                      else Verdict(Outcome.CLEAR, list_version=version) if version else CLEAR)
                for key, hit in best.items()}

    def best_hit(self, index: _Index, subject: Subject) -> Hit | None:
        """The best-scoring entry for one subject (any score), or None without candidates."""
        forms = name_forms(subject.name, subject.latin)
        ids = {normalise_id(v) for v in (subject.national_id, subject.lei) if v}
        ids.discard("")
        keys = blocking_keys(forms) | {"i:" + v for v in ids}
        postings = index.postings
        rank: dict[int, float] = {}
        phonetic_only: dict[int, int] = {}  # candidate -> weak keys shared, while no other key is
        for key in keys:
            entries = postings.get(key)
            if entries:
                weight = index.weights[key]
                weak = key.startswith("w:")
                for i in entries:
                    rank[i] = rank.get(i, 0.0) + weight
                    if weak:
                        phonetic_only[i] = phonetic_only.get(i, 0) + 1
                    else:
                        phonetic_only[i] = -(1 << 30)  # a token or an id in common: a candidate whatever
        # one short phonetic key alone ("ST") is too weak a link; spelling variants share more
        candidates = [i for i in rank if phonetic_only.get(i, 0) < 0 or phonetic_only[i] >= PHONETIC_KEYS_MIN]
        if not candidates:
            return None  # the clear path: nothing (enough) in common with any entry
        candidates = sorted(candidates, key=rank.__getitem__, reverse=True)[:CANDIDATES_MAX]
        joined = _joined(forms)
        analysed: dict[NameTypeTag, list[Name]] = {}
        best: Hit | None = None
        for i in candidates:
            item = index.items[i]
            entry = item.entry
            if not _compatible(subject.kind, entry):
                continue
            id_match = bool(ids & entry.ids)
            if not id_match and max(levenshtein_similarity(q, r) for q in joined for r in item.joined) < PREFILTER_SIMILARITY_MIN:
                continue
            tag = _tag(subject.kind, entry)
            if tag not in analysed:
                analysed[tag] = list(analyze_names(tag, forms))
            score, matched = 0.0, entry.caption
            for q in analysed[tag]:
                for r in item.names(tag):
                    s = name_score(q, r, tag)
                    if s > score:
                        score, matched = s, r.original
            why = [f"name {score:.2f} ({matched})"]
            if id_match:
                score = max(score, ID_MATCH_SCORE)
                why.append("identifier matches")
            adjust, said = _birth_date_adjustment(subject.birth_date, entry)
            if said:
                score += adjust
                why.append(said)
            if subject.country and entry.countries and subject.country.lower() not in entry.countries:
                score -= COUNTRY_MISMATCH_PENALTY
                why.append("country differs")
            score = min(1.0, max(0.0, score))
            if best is None or score > best.score:
                best = Hit(role=subject.role, score=round(score, 4), entry_id=entry.id, entry_name=entry.caption,
                           matched_name=subject.name, datasets=entry.datasets, explanation="; ".join(why))
        return best
