"""An embedded French -> English parallel corpus generated from a small grammar.

The default translation task trains on these pairs, so it needs no download.
Each pair is a short present-tense sentence built from the data tables below
by small pure functions for conjugation, agreement, elision and word order;
both sides are grammatical and each French sentence has one translation.

Conventions: French questions use "Est-ce que ... ?" with a space before "?"
(French typography); English uses do-support ("Do you like dogs?", "He does
not eat ...") or inverts "be" ("Is she tall?") and has no contractions.
"vous" is the plural "you"; "on" is not used. The vocabulary has no aspirated
h (so "l'homme") and no English word whose a/an depends on sound ("an hour").

The grammar yields a fixed set of distinct pairs; `generate_pairs` shuffles
it with `seed` and `default_splits` cuts it into train, validation and test.
Nothing depends on hash randomization or set order.
"""

import functools
import itertools
import random
from collections.abc import Iterator
from typing import NamedTuple

PAPER_EXAMPLE = ("Je suis étudiant.", "I am a student.")

Pair = tuple[str, str]

__all__ = ["PAPER_EXAMPLE", "default_splits", "generate_pairs"]


class Subject(NamedTuple):
    french: tuple[str, ...]
    english: str
    person: int  # 0-5: je, tu, il/elle, nous, vous, ils/elles.
    gender: str  # "m" or "f".


class Noun(NamedTuple):
    french: str
    gender: str
    english: str
    kind: str  # person, animal, food, clothing, thing or drink.


class Adjective(NamedTuple):
    masculine: str
    feminine: str
    english: str
    kinds: tuple[str, ...]  # The noun kinds it may describe.
    before_noun: bool = False  # The "BAGS" adjectives: beauty, age, goodness, size.
    masculine_before_vowel: str = ""  # "bel", "vieil", "nouvel".


# je, tu, nous and vous can be either gender, which matters for agreement.
PRONOUNS = tuple(
    Subject((french,), english, person, gender)
    for french, english, person, genders in (
        ("je", "I", 0, "mf"), ("tu", "you", 1, "mf"), ("il", "he", 2, "m"),
        ("elle", "she", 2, "f"), ("nous", "we", 3, "mf"), ("vous", "you", 4, "mf"),
        ("ils", "they", 5, "m"), ("elles", "they", 5, "f"),
    )
    for gender in genders
)
# One subject per pronoun, for sentences where nothing agrees with the subject.
SUBJECT_PRONOUNS = tuple({subject.french: subject for subject in PRONOUNS}.values())

POSSESSIVES = {  # Plural possessive determiners, keyed by subject pronoun.
    "je": ("mes", "my"), "tu": ("tes", "your"), "il": ("ses", "his"),
    "elle": ("ses", "her"), "nous": ("nos", "our"), "vous": ("vos", "your"),
    "ils": ("leurs", "their"), "elles": ("leurs", "their"),
}

# (masculine, feminine, English for a man, English for a woman)
PROFESSIONS = (
    ("étudiant", "étudiante", "student", "student"), ("acteur", "actrice", "actor", "actress"),
    ("chanteur", "chanteuse", "singer", "singer"), ("danseur", "danseuse", "dancer", "dancer"),
    ("serveur", "serveuse", "waiter", "waitress"), ("avocat", "avocate", "lawyer", "lawyer"),
    ("boulanger", "boulangère", "baker", "baker"), ("infirmier", "infirmière", "nurse", "nurse"),
    ("musicien", "musicienne", "musician", "musician"),
    ("cuisinier", "cuisinière", "cook", "cook"),
    ("enseignant", "enseignante", "teacher", "teacher"),
    ("fermier", "fermière", "farmer", "farmer"), ("artiste", "artiste", "artist", "artist"),
    ("architecte", "architecte", "architect", "architect"),
    ("médecin", "médecin", "doctor", "doctor"), ("pilote", "pilote", "pilot", "pilot"),
    ("journaliste", "journaliste", "journalist", "journalist"),
    ("secrétaire", "secrétaire", "secretary", "secretary"),
)

_NOUN_TABLE = {  # kind: (French singular, gender, English singular)
    "person": (("homme", "m", "man"), ("femme", "f", "woman"), ("enfant", "m", "child"),
               ("garçon", "m", "boy"), ("fille", "f", "girl"), ("bébé", "m", "baby")),
    "animal": (("chien", "m", "dog"), ("chat", "m", "cat"), ("cheval", "m", "horse"),
               ("oiseau", "m", "bird"), ("souris", "f", "mouse"), ("vache", "f", "cow"),
               ("lapin", "m", "rabbit"), ("éléphant", "m", "elephant"),
               ("canard", "m", "duck"), ("mouton", "m", "sheep")),
    "food": (("pomme", "f", "apple"), ("orange", "f", "orange"), ("banane", "f", "banana"),
             ("gâteau", "m", "cake"), ("œuf", "m", "egg"), ("tomate", "f", "tomato"),
             ("fraise", "f", "strawberry"), ("poire", "f", "pear"),
             ("biscuit", "m", "cookie"), ("pizza", "f", "pizza"), ("tarte", "f", "pie")),
    "clothing": (("chapeau", "m", "hat"), ("robe", "f", "dress"), ("chemise", "f", "shirt"),
                 ("manteau", "m", "coat"), ("jupe", "f", "skirt"), ("écharpe", "f", "scarf")),
    "thing": (("livre", "m", "book"), ("voiture", "f", "car"), ("maison", "f", "house"),
              ("table", "f", "table"), ("chaise", "f", "chair"), ("lettre", "f", "letter"),
              ("stylo", "m", "pen"), ("lampe", "f", "lamp"), ("clé", "f", "key"),
              ("sac", "m", "bag"), ("vélo", "m", "bike"), ("ordinateur", "m", "computer"),
              ("porte", "f", "door"), ("fenêtre", "f", "window"),
              ("journal", "m", "newspaper"), ("horloge", "f", "clock"),
              ("armoire", "f", "wardrobe"), ("boîte", "f", "box"),
              ("parapluie", "m", "umbrella")),
    "drink": (("café", "m", "coffee"), ("thé", "m", "tea"), ("lait", "m", "milk"),
              ("eau", "f", "water"), ("jus d'orange", "m", "orange juice"),
              ("limonade", "f", "lemonade")),
}
NOUNS = tuple(
    Noun(french, gender, english, kind)
    for kind, entries in _NOUN_TABLE.items()
    for french, gender, english in entries
)

_COLOURED = ("clothing", "thing")
ADJECTIVES = (
    Adjective("grand", "grande", "tall", ("person",), before_noun=True),
    Adjective("petit", "petite", "short", ("person",), before_noun=True),
    Adjective("jeune", "jeune", "young", ("person", "animal"), before_noun=True),
    Adjective("vieux", "vieille", "old", ("person", "animal", *_COLOURED), True, "vieil"),
    Adjective("heureux", "heureuse", "happy", ("person",)),
    Adjective("triste", "triste", "sad", ("person",)),
    Adjective("fatigué", "fatiguée", "tired", ("person",)),
    Adjective("malade", "malade", "sick", ("person",)),
    Adjective("riche", "riche", "rich", ("person",)),
    Adjective("intelligent", "intelligente", "intelligent", ("person",)),
    Adjective("sérieux", "sérieuse", "serious", ("person",)),
    Adjective("gentil", "gentille", "kind", ("person",), before_noun=True),
    Adjective("grand", "grande", "big", ("animal", "food", "thing"), before_noun=True),
    Adjective("petit", "petite", "small", ("animal", "food", "thing"), before_noun=True),
    Adjective("beau", "belle", "beautiful", ("animal", *_COLOURED), True, "bel"),
    Adjective("nouveau", "nouvelle", "new", _COLOURED, True, "nouvel"),
    Adjective("bon", "bonne", "good", ("food",), before_noun=True),
    Adjective("noir", "noire", "black", ("animal", *_COLOURED)),
    Adjective("blanc", "blanche", "white", ("animal", *_COLOURED)),
    Adjective("gris", "grise", "grey", ("animal", *_COLOURED)),
    Adjective("rouge", "rouge", "red", ("food", *_COLOURED)),
    Adjective("vert", "verte", "green", ("food", *_COLOURED)),
    Adjective("jaune", "jaune", "yellow", ("food", *_COLOURED)),
    Adjective("bleu", "bleue", "blue", _COLOURED),
    Adjective("délicieux", "délicieuse", "delicious", ("food",)),
    Adjective("frais", "fraîche", "fresh", ("food",)),
    Adjective("cher", "chère", "expensive", _COLOURED),
    Adjective("mignon", "mignonne", "cute", ("animal",)),
)

# Irregular and stem-changing verbs: present tense of je, tu, il, nous, vous, ils.
IRREGULAR_VERBS = {
    infinitive: tuple(forms.split())
    for infinitive, forms in (
        ("être", "suis es est sommes êtes sont"), ("avoir", "ai as a avons avez ont"),
        ("aller", "vais vas va allons allez vont"), ("lire", "lis lis lit lisons lisez lisent"),
        ("voir", "vois vois voit voyons voyez voient"), ("rire", "ris ris rit rions riez rient"),
        ("faire", "fais fais fait faisons faites font"),
        ("venir", "viens viens vient venons venez viennent"),
        ("prendre", "prends prends prend prenons prenez prennent"),
        ("vouloir", "veux veux veut voulons voulez veulent"),
        ("boire", "bois bois boit buvons buvez boivent"),
        ("écrire", "écris écris écrit écrivons écrivez écrivent"),
        ("ouvrir", "ouvre ouvres ouvre ouvrons ouvrez ouvrent"),
        ("dormir", "dors dors dort dormons dormez dorment"),
        ("courir", "cours cours court courons courez courent"),
        ("peindre", "peins peins peint peignons peignez peignent"),
        ("acheter", "achète achètes achète achetons achetez achètent"),
        ("appeler", "appelle appelles appelle appelons appelez appellent"),
    )
}
# Regular verbs by the last two letters of the infinitive; "re" has no il ending.
_REGULAR_ENDINGS = {
    "er": ("e", "es", "e", "ons", "ez", "ent"),
    "ir": ("is", "is", "it", "issons", "issez", "issent"),
    "re": ("s", "s", "", "ons", "ez", "ent"),
}


def _nouns(*kinds: str) -> tuple[str, ...]:
    return tuple(noun.french for noun in NOUNS if noun.kind in kinds)


_OPENABLE = ("porte", "fenêtre", "livre", "sac", "lettre", "armoire", "boîte")
_PORTABLE = ("livre", "lettre", "stylo", "clé", "sac", "journal", "boîte", "parapluie")
_REPAIRABLE = ("voiture", "vélo", "ordinateur", "lampe", "horloge", "chaise", "porte")
_FURNITURE = ("maison", "table", "chaise", "armoire", "boîte")

# (French infinitive, English base form, French singular of the possible objects)
TRANSITIVE_VERBS = (
    ("avoir", "have", _nouns("animal", "food", "clothing", "thing")),
    ("manger", "eat", _nouns("food")), ("préparer", "prepare", _nouns("food")),
    ("couper", "cut", _nouns("food")), ("faire", "make", ("gâteau", "pizza", "tarte")),
    ("acheter", "buy", _nouns("food", "clothing", "thing")),
    ("vendre", "sell", _nouns("animal", "food", "thing")),
    ("prendre", "take", _nouns("food", "clothing") + _PORTABLE),
    ("voir", "see", _nouns("person", "animal", "thing")),
    ("chercher", "look for", _nouns("person", "animal", "clothing") + _PORTABLE),
    ("trouver", "find", _nouns("animal", "clothing") + _PORTABLE),
    ("perdre", "lose", _nouns("clothing") + _PORTABLE),
    ("vouloir", "want", _nouns("animal", "food", "clothing", "thing")),
    ("nourrir", "feed", _nouns("animal") + ("bébé", "enfant")),
    ("dessiner", "draw", _nouns("person", "animal", "food", "thing")),
    ("laver", "wash", _nouns("animal", "clothing") + ("voiture", "vélo", "table")),
    ("ouvrir", "open", _OPENABLE), ("fermer", "close", _OPENABLE),
    ("lire", "read", ("livre", "lettre", "journal")), ("écrire", "write", ("livre", "lettre")),
    ("porter", "wear", _nouns("clothing")), ("choisir", "choose", _nouns("food", "clothing")),
    ("réparer", "repair", _REPAIRABLE), ("peindre", "paint", _FURNITURE + ("porte", "fenêtre")),
    ("regarder", "watch", _nouns("person", "animal")),
    ("entendre", "hear", _nouns("person", "animal")),
    ("appeler", "call", _nouns("person", "animal")),
    ("écouter", "listen to", _nouns("person", "animal")),
    ("attendre", "wait for", _nouns("person")), ("aider", "help", _nouns("person")),
)
PREFERENCE_VERBS = (("aimer", "like"), ("adorer", "love"), ("détester", "hate"))
# (French infinitive, English base form, takes "bien"/"well", animals do it too)
INTRANSITIVE_VERBS = (
    ("dormir", "sleep", True, True), ("courir", "run", True, True),
    ("nager", "swim", True, True), ("jouer", "play", True, True),
    ("chanter", "sing", True, False), ("danser", "dance", True, False),
    ("cuisiner", "cook", True, False), ("travailler", "work", True, False),
    ("marcher", "walk", False, False), ("rire", "laugh", False, False),
    ("pleurer", "cry", False, False), ("étudier", "study", False, False),
)
ADVERBS = (("beaucoup", "a lot"), ("ici", "here"), ("aujourd'hui", "today"),
           ("le matin", "in the morning"), ("le soir", "in the evening"))
# (French name, gender or "" for a city, English with its article)
PLACES = (
    ("parc", "m", "the park"), ("plage", "f", "the beach"), ("marché", "m", "the market"),
    ("gare", "f", "the station"), ("musée", "m", "the museum"),
    ("bibliothèque", "f", "the library"), ("cinéma", "m", "the cinema"),
    ("banque", "f", "the bank"), ("restaurant", "m", "the restaurant"),
    ("hôpital", "m", "the hospital"), ("hôtel", "m", "the hotel"),
    ("aéroport", "m", "the airport"), ("église", "f", "the church"),
    ("école", "f", "school"), ("Paris", "", "Paris"), ("Londres", "", "London"),
    ("Rome", "", "Rome"), ("Amsterdam", "", "Amsterdam"), ("Athènes", "", "Athens"),
)
CHORES = ((("la", "vaisselle"), "the dishes"), (("le", "ménage"), "the housework"),
          (("les", "courses"), "the shopping"))
POLARITIES = ("affirmative", "negative", "question")
# Noun phrases draw their adjective (or none) from this fixed generator: crossing
# every adjective would give millions of pairs. It does not depend on `seed`.
_GRAMMAR_SEED = 0

_VOWELS = "aàâeéèêiîoôœuh"  # The vocabulary has no aspirated h.
_ELISIONS = {"je": "j'", "ne": "n'", "le": "l'", "la": "l'", "de": "d'", "que": "qu'"}
_ENGLISH_PLURALS = {"man": "men", "woman": "women", "child": "children",
                    "mouse": "mice", "sheep": "sheep", "scarf": "scarves"}


def _starts_with_vowel(word: str) -> bool:
    return bool(word) and word[0].lower() in _VOWELS


def _conjugate(infinitive: str, person: int) -> str:
    """The French present tense of `infinitive` for person 0-5 ("mange", "mangeons")."""
    if infinitive in IRREGULAR_VERBS:
        return IRREGULAR_VERBS[infinitive][person]
    stem, ending = infinitive[:-2], _REGULAR_ENDINGS[infinitive[-2:]][person]
    if ending == "ons" and stem.endswith("g"):
        stem += "e"  # nous mangeons, nous nageons.
    return stem + ending


def _add_s(word: str) -> str:
    """English plural or third person singular: "box" -> "boxes", "cry" -> "cries"."""
    if word.endswith(("s", "sh", "ch", "x", "z", "o")):
        return word + "es"
    if word.endswith("y") and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def _english_present(verb: str, person: int) -> str:
    """English present tense: "eat" -> "eats" and "have" -> "has" in the third person singular."""
    if verb == "be":
        return ("am", "are", "is", "are", "are", "are")[person]
    if person != 2:
        return verb
    head, space, tail = verb.partition(" ")  # "look for" -> "looks for".
    return ("has" if head == "have" else _add_s(head)) + space + tail


def _french_plural(word: str) -> str:
    """Plural of a French noun or adjective: "chat" -> "chats", "cheval" -> "chevaux"."""
    if word.endswith(("s", "x", "z")):
        return word
    if word.endswith("eau"):
        return word + "x"
    if word.endswith("al"):
        return word[:-2] + "aux"
    return word + "s"


def _english_plural(noun: str) -> str:
    return _ENGLISH_PLURALS.get(noun) or _add_s(noun)


def _indefinite_article(next_word: str) -> str:
    return "an" if next_word[0] in "aeiou" else "a"


def _agree(adjective: Adjective, gender: str, plural: bool) -> str:
    """The French adjective form for a noun of `gender` ("belle", "blancs")."""
    word = adjective.feminine if gender == "f" else adjective.masculine
    return _french_plural(word) if plural else word


def _noun_phrase(
    noun: Noun, adjective: Adjective | None, plural: bool, determiner: str
) -> tuple[list[str], list[str]]:
    """French and English words of a noun phrase.

    `determiner` is "definite" (le chat / the cat), "indefinite" (un chat /
    a cat, des chats / cats), "negated" (pas de chat / a cat), "generic"
    (j'aime les chats / I like cats) or "partitive" (du lait / milk).
    """
    french_noun = _french_plural(noun.french) if plural else noun.french
    english_noun = _english_plural(noun.english) if plural else noun.english
    french, english = [french_noun], [english_noun]
    if adjective is not None:
        french_adjective = _agree(adjective, noun.gender, plural)
        english = [adjective.english, english_noun]
        if not adjective.before_noun:
            french = [french_noun, french_adjective]
        elif noun.gender == "m" and not plural and _starts_with_vowel(french_noun):
            french = [adjective.masculine_before_vowel or french_adjective, french_noun]
        else:
            french = [french_adjective, french_noun]
    definite = "les" if plural else ("la" if noun.gender == "f" else "le")
    if determiner in ("definite", "generic"):
        french = [definite, *french]
    elif determiner == "partitive":
        french = ["de", definite, *french]
    elif determiner == "negated":
        french = ["de", *french]
    elif plural:  # Indefinite plural: "des", or "de" before a preceding adjective.
        french = ["de" if adjective and adjective.before_noun else "des", *french]
    else:
        french = ["une" if noun.gender == "f" else "un", *french]
    if determiner == "definite":
        english = ["the", *english]
    elif determiner in ("indefinite", "negated") and not plural and noun.kind != "drink":
        english = [_indefinite_article(english[0]), *english]
    return french, english


def _french_sentence(words: list[str], question: bool) -> str:
    """Elides ("je aime" -> "j'aime"), contracts ("à le" -> "au"), capitalizes, punctuates."""
    text = ""
    for word, following in zip(words, [*words[1:], ""]):
        elided = word in _ELISIONS and _starts_with_vowel(following)
        text += _ELISIONS[word] if elided else word + " "
    # Only a "le" that was not elided contracts: "au parc" but "à l'hôpital".
    text = text.replace(" à le ", " au ").replace(" de le ", " du ").rstrip()
    return text[0].upper() + text[1:] + (" ?" if question else ".")


def _english_sentence(words: list[str], question: bool) -> str:
    text = " ".join(words)
    return text[0].upper() + text[1:] + ("?" if question else ".")


def _clause(
    subject: Subject, verb: str, english_verb: str,
    french_rest: list[str], english_rest: list[str], polarity: str,
) -> Pair:
    """One (French, English) sentence: affirmative, negated or a yes/no question."""
    french_verb = _conjugate(verb, subject.person)
    english_form = _english_present(english_verb, subject.person)
    if english_verb == "be":  # "be" is its own auxiliary: "is not", "Is he ...?".
        auxiliary, main_verb = [english_form], []
    else:
        auxiliary, main_verb = [_english_present("do", subject.person)], [english_verb]
    if polarity == "affirmative":
        french = [*subject.french, french_verb]
        english = [subject.english, english_form]
    elif polarity == "negative":
        french = [*subject.french, "ne", french_verb, "pas"]
        english = [subject.english, *auxiliary, "not", *main_verb]
    else:
        french = ["est-ce", "que", *subject.french, french_verb]
        english = [*auxiliary, subject.english, *main_verb]
    question = polarity == "question"
    return (_french_sentence([*french, *french_rest], question),
            _english_sentence([*english, *english_rest], question))


def _noun_subject(noun: Noun, plural: bool) -> Subject:
    french, english = _noun_phrase(noun, None, plural, "definite")
    return Subject(tuple(french), " ".join(english), 5 if plural else 2, noun.gender)


def _adjectives_for(noun: Noun) -> list[Adjective | None]:
    """No adjective, or one that fits the noun (placed after a person noun)."""
    return [None] + [
        adjective for adjective in ADJECTIVES
        if noun.kind in adjective.kinds
        # "un grand homme" is "a great man": person nouns take adjectives after.
        and not (noun.kind == "person" and adjective.before_noun)
    ]


def _professions() -> Iterator[Pair]:
    """Être + profession: "Je suis étudiant." -> "I am a student." (article in English only)."""
    for subject in PRONOUNS:
        plural = subject.person >= 3
        for masculine, feminine, english_man, english_woman in PROFESSIONS:
            french = feminine if subject.gender == "f" else masculine
            english = english_woman if subject.gender == "f" else english_man
            if plural:
                french_rest, english_rest = [_french_plural(french)], [_english_plural(english)]
            else:
                french_rest, english_rest = [french], [_indefinite_article(english), english]
            for polarity in POLARITIES:
                yield _clause(subject, "être", "be", french_rest, english_rest, polarity)


def _descriptions() -> Iterator[Pair]:
    """Être + adjective: "Elle est grande." -> "She is tall.", "Les chats sont noirs." too."""
    subjects = [(subject, "person") for subject in PRONOUNS] + [
        (_noun_subject(noun, plural), noun.kind)
        for noun in NOUNS if noun.kind != "drink" for plural in (False, True)
    ]
    for subject, kind in subjects:
        for adjective in ADJECTIVES:
            if kind in adjective.kinds:
                french = _agree(adjective, subject.gender, subject.person >= 3)
                for polarity in POLARITIES:
                    yield _clause(subject, "être", "be", [french], [adjective.english], polarity)


def _actions(rng: random.Random) -> Iterator[Pair]:
    """Verb + object: "Il ne mange pas la pomme rouge." -> "He does not eat the red apple"."""
    for (verb, english_verb, names), noun in itertools.product(TRANSITIVE_VERBS, NOUNS):
        if noun.french not in names:
            continue
        adjectives = _adjectives_for(noun)
        for plural, determiner, polarity, subject in itertools.product(
            (False, True), ("definite", "indefinite"), POLARITIES, SUBJECT_PRONOUNS
        ):
            if polarity == "negative" and determiner == "indefinite":
                if plural:  # "pas de souris" has no number: keep the singular only.
                    continue
                determiner = "negated"  # "un chat" -> "pas de chat".
            french, english = _noun_phrase(noun, rng.choice(adjectives), plural, determiner)
            yield _clause(subject, verb, english_verb, french, english, polarity)


def _preferences(rng: random.Random) -> Iterator[Pair]:
    """Generic objects: "Est-ce que tu aimes les chiens ?" -> "Do you like dogs?" and so on."""
    for (verb, english_verb), noun, polarity, subject in itertools.product(
        PREFERENCE_VERBS, NOUNS, POLARITIES, SUBJECT_PRONOUNS
    ):
        if noun.kind == "person":  # "Je déteste les enfants" is not a sentence to teach.
            continue
        if noun.kind == "drink":
            french, english = _noun_phrase(noun, None, False, "generic")
        else:
            french, english = _noun_phrase(noun, rng.choice(_adjectives_for(noun)), True, "generic")
        yield _clause(subject, verb, english_verb, french, english, polarity)


def _drinks() -> Iterator[Pair]:
    """Partitives: "Je bois du lait." -> "I drink milk.", "Je ne bois pas d'eau." too."""
    for noun, polarity, subject in itertools.product(NOUNS, POLARITIES, SUBJECT_PRONOUNS):
        if noun.kind == "drink":
            determiner = "negated" if polarity == "negative" else "partitive"
            french, english = _noun_phrase(noun, None, False, determiner)
            yield _clause(subject, "boire", "drink", french, english, polarity)


def _trips() -> Iterator[Pair]:
    """Aller à / venir de: "Je vais au parc." -> "I go to the park.", "Il vient d'Amsterdam."."""
    for verb, english_verb, preposition, english_preposition in (
        ("aller", "go", "à", "to"), ("venir", "come", "de", "from")
    ):
        for (place, gender, english_place), subject, polarity in itertools.product(
            PLACES, SUBJECT_PRONOUNS, POLARITIES
        ):
            french = [preposition, *{"m": ["le"], "f": ["la"], "": []}[gender], place]
            yield _clause(subject, verb, english_verb, french,
                          [english_preposition, english_place], polarity)


def _activities() -> Iterator[Pair]:
    """Intransitive verbs: "Je ne chante pas bien." -> "I do not sing well.", "Le chat dort."."""
    for verb, english_verb, skill, animals_too in INTRANSITIVE_VERBS:
        adverbs = [("", ""), *ADVERBS, *([("bien", "well")] if skill else [])]
        kinds = ("person", "animal") if animals_too else ("person",)
        noun_subjects = [_noun_subject(noun, plural)
                         for noun in NOUNS if noun.kind in kinds for plural in (False, True)]
        for polarity in POLARITIES:
            for subject in SUBJECT_PRONOUNS:
                for french, english in adverbs:
                    yield _clause(subject, verb, english_verb, [french] if french else [],
                                  [english] if english else [], polarity)
            for subject in noun_subjects:
                yield _clause(subject, verb, english_verb, [], [], polarity)


def _chores() -> Iterator[Pair]:
    """Faire + chore: "Il fait ses devoirs." -> "He does his homework." (possessives agree)."""
    for subject in SUBJECT_PRONOUNS:
        french_possessive, english_possessive = POSSESSIVES[subject.french[0]]
        chores = [*CHORES, ((french_possessive, "devoirs"), f"{english_possessive} homework")]
        for french, english in chores:
            for polarity in POLARITIES:
                yield _clause(subject, "faire", "do", list(french), [english], polarity)


@functools.lru_cache(maxsize=1)
def _grammar_pairs() -> tuple[Pair, ...]:
    """Every distinct pair of the grammar, in a fixed order."""
    rng = random.Random(_GRAMMAR_SEED)
    templates = (_professions(), _descriptions(), _actions(rng), _preferences(rng),
                 _drinks(), _trips(), _activities(), _chores())
    english_of: dict[str, str] = {}
    for template in templates:
        for french, english in template:
            previous = english_of.setdefault(french, english)
            if previous != english:
                raise RuntimeError(f"{french!r} translates to {previous!r} and {english!r}.")
    return tuple(english_of.items())


def generate_pairs(num_pairs: int | None = None, seed: int = 1234) -> list[Pair]:
    """Returns distinct (French, English) pairs of the grammar in a shuffled order.

    The grammar yields a fixed set of pairs; `seed` only chooses their order,
    so the first `num_pairs` of a seed are the same in every run and process,
    and a smaller `num_pairs` gives a prefix of a larger one.

    Args:
        num_pairs: how many pairs to return, at most the size of the grammar;
            None returns them all.
        seed: seed of the shuffle.

    Returns:
        A list of (french, english) sentence pairs with distinct French sides.

    Example:
    >>> pairs = generate_pairs(num_pairs=100, seed=7)
    >>> len(pairs), pairs[:10] == generate_pairs(num_pairs=10, seed=7)
    (100, True)
    """
    pairs = list(_grammar_pairs())
    if num_pairs is not None and not 0 < num_pairs <= len(pairs):
        raise ValueError(
            f"`num_pairs` must be None or an integer from 1 to {len(pairs)} (the number "
            f"of distinct pairs the grammar produces). Received: num_pairs={num_pairs!r}"
        )
    random.Random(seed).shuffle(pairs)
    return pairs[:num_pairs]


def default_splits(
    seed: int = 1234, validation_size: int = 1000, test_size: int = 1000
) -> dict[str, list[Pair]]:
    """Cuts all pairs of the grammar into disjoint train, validation and test splits.

    Validation and test are the first pairs of `generate_pairs(seed=seed)`
    other than `PAPER_EXAMPLE`; everything else is train. `PAPER_EXAMPLE` is
    always in train so that a trained model can be shown translating it. The
    splits are disjoint on the French side.

    Args:
        seed: seed of the shuffle that assigns pairs to splits.
        validation_size: number of validation pairs.
        test_size: number of test pairs.

    Returns:
        A dict with keys "train", "validation" and "test", each a list of
        (french, english) pairs.

    Example:
    >>> splits = default_splits(validation_size=10, test_size=10)
    >>> len(splits["test"]), PAPER_EXAMPLE in splits["train"]
    (10, True)
    """
    pairs = generate_pairs(seed=seed)
    if validation_size < 0 or test_size < 0 or validation_size + test_size >= len(pairs):
        raise ValueError(
            "`validation_size` and `test_size` must be non-negative and sum to less than "
            f"{len(pairs)} (the number of pairs) so that train is not empty. Received: "
            f"validation_size={validation_size!r}, test_size={test_size!r}"
        )
    held_out = [pair for pair in pairs if pair != PAPER_EXAMPLE]
    validation = held_out[:validation_size]
    test = held_out[validation_size:validation_size + test_size]
    excluded = set(validation + test)
    train = [pair for pair in pairs if pair not in excluded]
    return {"train": train, "validation": validation, "test": test}
