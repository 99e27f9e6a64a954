"""English-like memories and queries for the load benchmarks, seeded and reproducible.

Real memory texts are short sentences about people, things, places and times, and their
words follow a Zipfian law: a few words ("coffee", "meeting") are everywhere and most are
rare. A search index behaves very differently on such text than on random tokens (long
posting lists for the common words, short ones for the rest), so the generator draws every
content word from a Zipf distribution over a fixed vocabulary and puts it in one of a dozen
sentence shapes. Queries are written the way people ask ("what does Maya think about the
garden?"): most are about something that was said (built from a stored sentence's words),
some about something that never was.
"""

from __future__ import annotations

import itertools
import random
from typing import Optional

__all__ = ["TextGenerator"]

NAMES = (
    "Maya Liam Sofia Noah Emma Lucas Olivia Ethan Ava Mateo Chloe Arjun Hannah Kenji Zara Omar "
    "Ingrid Tomas Priya Felix Leila Diego Nora Samuel Aisha Viktor Elena Jonas Mei Rafael Greta "
    "Hugo Amara Ivan Clara Malik Yuki Oscar Lena Pablo"
).split()

NOUNS = (
    "coffee meeting garden project dog cat bike car book report budget trip flight hotel dinner "
    "lunch breakfast recipe pasta salad soup bread cake tea wine beer concert movie series game "
    "match team coach doctor dentist appointment birthday party wedding gift present phone laptop "
    "camera guitar piano violin painting photo album song playlist podcast newsletter article "
    "paper thesis exam course class lecture workshop conference deadline invoice contract lease "
    "apartment house kitchen bathroom balcony roof window door sofa desk chair lamp plant tree "
    "flower rose tomato pepper garlic onion lemon apple banana orange cheese chocolate cookie "
    "pizza burger sandwich sushi curry noodle rice bean lentil yogurt milk juice smoothie vitamin "
    "medicine allergy headache cold flu surgery therapy yoga run marathon swim hike climb tennis "
    "football basketball chess puzzle novel poem story diary journal notebook pen printer monitor "
    "keyboard mouse charger battery cable router server database migration release bug feature "
    "ticket sprint roadmap review interview offer salary promotion manager colleague client "
    "customer supplier vendor partner investor startup company office commute train bus ferry "
    "taxi bicycle scooter passport visa ticket luggage suitcase backpack jacket coat shoe boot "
    "sweater scarf hat glasses watch ring necklace bracelet perfume shampoo soap towel blanket "
    "pillow mattress bed closet garage basement attic fence lawn mower hose shovel ladder drill "
    "hammer paint brush canvas clay pottery sculpture museum gallery library theater stadium "
    "park beach lake river mountain forest island village city neighborhood street bridge "
    "harbor airport station market bakery cafe restaurant pharmacy clinic hospital school "
    "university bank insurance mortgage loan savings pension tax refund subscription membership "
    "gym pool sauna massage haircut manicure vacation holiday weekend evening morning night "
    "anniversary reunion graduation retirement baby niece nephew cousin aunt uncle grandmother "
    "grandfather sister brother mother father husband wife partner friend neighbor roommate "
    "landlord tenant plumber electrician mechanic tutor mentor student volunteer charity "
    "donation fundraiser election campaign debate protest petition festival parade fireworks"
).split()

ADJECTIVES = (
    "new old small big red blue green yellow black white quiet loud early late cheap expensive "
    "spicy sweet sour fresh frozen local organic vegan vintage modern classic favorite annual "
    "weekly monthly urgent important difficult easy long short warm cold sunny rainy busy calm "
    "broken shiny heavy light comfortable noisy crowded empty remote online private public "
    "strict friendly patient careful lucky happy tired nervous excited proud"
).split()

VERBS = (
    "bought sold visited booked cancelled moved painted fixed cooked baked ordered returned "
    "borrowed lent lost found started finished planned postponed recommended reviewed "
    "renewed signed sent received shared tried skipped joined left organized hosted"
).split()

PREFERENCES = "prefers likes loves hates avoids enjoys misses wants needs collects".split()

PLACES = (
    "Lisbon Berlin Oslo Kyoto Toronto Denver Austin Madrid Vienna Dublin Prague Seoul Lima "
    "Nairobi Cairo Sydney Porto Munich Zurich Boston Chicago Seattle Portland Geneva Bergen "
    "Krakow Tallinn Riga Milan Naples"
).split()

TIMES = (
    "on Monday|on Tuesday|on Wednesday|on Thursday|on Friday|on Saturday|on Sunday|last week|"
    "next week|last month|next month|this morning|yesterday|tomorrow|every morning|every evening|"
    "in January|in March|in May|in July|in September|in November|over the weekend|after work|"
    "before the holidays|twice a week|at the end of the month"
).split("|")

_MEMORY_SHAPES = (
    "{name} {verb} the {adj} {noun} {time}.",
    "{name} {pref} {adj} {noun} but not {noun2}.",
    "{name} said the {noun} in {place} was {adj}.",
    "{name}'s {noun} is scheduled {time} at the {noun2}.",
    "Remember that {name} is allergic to {noun} and {noun2}.",
    "{name} {verb} a {noun} for the {noun2} {time}.",
    "The {noun} that {name} mentioned is {adj} and comes from {place}.",
    "{name} moved the {noun} meeting {time} because of the {noun2}.",
    "{name} wants to visit {place} {time} with {name2}.",
    "{name} asked for a {adj} {noun} instead of the {noun2}.",
    "{name} and {name2} {verb} the {noun} together {time}.",
    "{name} usually drinks {noun} at the {noun2} {time}.",
)

_QUESTION_SHAPES = (
    "what does {name} think about the {noun}?",
    "when is {name}'s {noun}?",
    "did {name} ever mention a {noun}?",
    "what kind of {noun} does {name} prefer?",
    "where did {name} go for the {noun}?",
    "is {name} allergic to {noun}?",
    "{noun} {noun2}",
    "who {verb} the {noun}?",
    "anything about {noun} in {place}?",
    "what happened with the {adj} {noun}?",
)


def _zipf_cum_weights(n: int, s: float) -> list[float]:
    return list(itertools.accumulate(1.0 / (rank**s) for rank in range(1, n + 1)))


class TextGenerator:
    """Seeded generator of memory sentences and queries.

    Args:
        seed: the same seed gives the same texts, on every machine.
        zipf_s: the Zipf exponent of word frequencies (about 1 for natural language).

    Example:
        >>> gen = TextGenerator(seed=7)
        >>> texts = [gen.memory() for _ in range(3)]
        >>> query = gen.query(about=texts[0])
    """

    def __init__(self, seed: int = 0, zipf_s: float = 1.07) -> None:
        self._rng = random.Random(seed)
        # Which word is common is itself drawn from the seed, so no list order is privileged.
        self._pools: dict[str, tuple[list[str], list[float]]] = {}
        for kind, words in (
            ("name", NAMES),
            ("noun", NOUNS),
            ("adj", ADJECTIVES),
            ("verb", VERBS),
            ("pref", PREFERENCES),
            ("place", PLACES),
            ("time", TIMES),
        ):
            shuffled = list(dict.fromkeys(words))
            self._rng.shuffle(shuffled)
            self._pools[kind] = (shuffled, _zipf_cum_weights(len(shuffled), zipf_s))

    def _word(self, kind: str) -> str:
        words, cum = self._pools[kind]
        return self._rng.choices(words, cum_weights=cum)[0]

    def _fill(self, shape: str, given: Optional[dict[str, str]] = None) -> str:
        values = {
            "name": self._word("name"),
            "name2": self._word("name"),
            "noun": self._word("noun"),
            "noun2": self._word("noun"),
            "adj": self._word("adj"),
            "verb": self._word("verb"),
            "pref": self._word("pref"),
            "place": self._word("place"),
            "time": self._word("time"),
        }
        values.update(given or {})
        return shape.format(**values)

    def memory(self) -> str:
        """One memory sentence."""
        return self._fill(self._rng.choice(_MEMORY_SHAPES))

    def memories(self, n: int) -> list[str]:
        return [self.memory() for _ in range(n)]

    def query(self, about: Optional[str] = None) -> str:
        """A question; with ``about``, one that reuses that memory's name and a noun of it."""
        given: dict[str, str] = {}
        if about is not None:
            words = [w.strip(".,'s") for w in about.replace("'s", " ").split()]
            names = [w for w in words if w in _NAME_SET]
            nouns = [w for w in words if w in _NOUN_SET]
            if names:
                given["name"] = names[0]
            if nouns:
                given["noun"] = self._rng.choice(nouns)
        return self._fill(self._rng.choice(_QUESTION_SHAPES), given)

    def queries(self, n: int, corpus: Optional[list[str]] = None, grounded: float = 0.8) -> list[str]:
        """``n`` queries; a ``grounded`` share is about a random text of ``corpus``."""
        out = []
        for _ in range(n):
            if corpus and self._rng.random() < grounded:
                out.append(self.query(about=self._rng.choice(corpus)))
            else:
                out.append(self.query())
        return out

    def choice(self, seq: list) -> object:
        return self._rng.choice(seq)

    @property
    def rng(self) -> random.Random:
        return self._rng


_NAME_SET = frozenset(NAMES)
_NOUN_SET = frozenset(NOUNS)
