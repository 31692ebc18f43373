import hashlib
import json
import os
import subprocess
import sys

import pytest

from keras_transformer.data import generator
from keras_transformer.data.generator import PAPER_EXAMPLE, default_splits, generate_pairs

PRONOUN = {(subject.french[0], subject.gender): subject for subject in generator.PRONOUNS}
NOUN = {noun.french: noun for noun in generator.NOUNS}
ADJECTIVE = {(adjective.masculine, adjective.english): adjective
             for adjective in generator.ADJECTIVES}


@pytest.fixture(scope="module")
def corpus():
    return set(generate_pairs())


def _digest(pairs):
    return hashlib.sha256(json.dumps(pairs, ensure_ascii=False).encode()).hexdigest()


def test_generate_pairs_is_deterministic_within_a_process():
    assert generate_pairs() == generate_pairs()
    assert generate_pairs(num_pairs=500, seed=3) == generate_pairs(seed=3)[:500]
    assert generate_pairs(seed=1) != generate_pairs(seed=2)
    assert sorted(generate_pairs(seed=1)) == sorted(generate_pairs(seed=2))


def test_generate_pairs_is_deterministic_across_processes():
    # Loads the module file on its own: it must need nothing but the standard library.
    script = (
        "import hashlib, importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('generator', {generator.__file__!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "assert not {'tensorflow', 'keras'} & set(sys.modules), 'imports the model side'\n"
        "pairs = module.generate_pairs(seed=7)\n"
        "print(hashlib.sha256(json.dumps(pairs, ensure_ascii=False).encode()).hexdigest())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONHASHSEED": "4242"},  # This process has another.
    )
    assert result.stdout.strip() == _digest(generate_pairs(seed=7))


def test_pairs_are_many_distinct_and_french_determines_english():
    pairs = generate_pairs()
    french = [source for source, _ in pairs]
    assert len(pairs) >= 30_000
    assert len(set(pairs)) == len(pairs)
    assert len(set(french)) == len(french)  # So French -> English is a function.
    assert len({target for _, target in pairs}) < len(pairs)  # "tu"/"vous" -> "you".
    assert PAPER_EXAMPLE in pairs


def test_sentences_are_short_capitalized_and_punctuated():
    for french, english in generate_pairs():
        assert french[0].isupper() and english[0].isupper(), (french, english)
        assert french.endswith((".", " ?")) and english.endswith((".", "?")), (french, english)
        assert french.endswith("?") == english.endswith("?"), (french, english)
        assert not english.endswith(" ?") and "  " not in french + english, (french, english)
        assert len(french.split()) <= 12 and len(english.split()) <= 12, (french, english)


def test_default_splits_are_disjoint_fixed_and_cover_the_corpus():
    splits = default_splits()
    assert list(splits) == ["train", "validation", "test"]
    assert len(splits["validation"]) == 1000 and len(splits["test"]) == 1000
    french = {name: {source for source, _ in pairs} for name, pairs in splits.items()}
    assert not french["train"] & french["validation"]
    assert not french["train"] & french["test"]
    assert not french["validation"] & french["test"]
    assert sum(len(pairs) for pairs in splits.values()) == len(generate_pairs())
    assert splits == default_splits()
    assert splits["test"] != default_splits(seed=99)["test"]


@pytest.mark.parametrize("seed", [0, 1, 1234])
def test_paper_example_is_always_in_train(seed):
    splits = default_splits(seed=seed, validation_size=20_000, test_size=20_000)
    assert PAPER_EXAMPLE in splits["train"]
    assert PAPER_EXAMPLE not in splits["validation"] + splits["test"]


def test_default_splits_can_leave_only_the_paper_example_in_train():
    splits = default_splits(validation_size=len(generate_pairs()) - 1, test_size=0)
    assert splits["train"] == [PAPER_EXAMPLE]


# Sentences from templates that enumerate every combination, so each must be present.
@pytest.mark.parametrize("pair", [
    PAPER_EXAMPLE,
    ("Elle est étudiante.", "She is a student."),  # Gendered profession, no French article.
    ("Il est acteur.", "He is an actor."),  # "an" before a vowel.
    ("Elle est actrice.", "She is an actress."),
    ("Nous sommes étudiants.", "We are students."),
    ("Elles sont médecins.", "They are doctors."),
    ("Il n'est pas médecin.", "He is not a doctor."),  # "ne" -> "n'" before a vowel.
    ("Est-ce que tu es serveuse ?", "Are you a waitress?"),
    ("Elle est grande.", "She is tall."),
    ("Je ne suis pas vieille.", "I am not old."),  # Irregular feminine.
    ("Elles ne sont pas heureuses.", "They are not happy."),
    ("Est-ce qu'il est fatigué ?", "Is he tired?"),  # "que" -> "qu'".
    ("Est-ce que vous êtes riches ?", "Are you rich?"),
    ("Les chats sont noirs.", "The cats are black."),
    ("La souris est blanche.", "The mouse is white."),
    ("Les souris sont blanches.", "The mice are white."),
    ("Est-ce que la voiture est belle ?", "Is the car beautiful?"),
    ("L'homme est grand.", "The man is tall."),  # "le" -> "l'" before a mute h.
    ("Je vais au parc.", "I go to the park."),  # "à le" -> "au".
    ("Il va à l'hôpital.", "He goes to the hospital."),  # No contraction after elision.
    ("Elle vient de la plage.", "She comes from the beach."),
    ("Vous venez du marché.", "You come from the market."),  # "de le" -> "du".
    ("Nous ne venons pas d'Amsterdam.", "We do not come from Amsterdam."),
    ("Je bois du lait.", "I drink milk."),
    ("Je ne bois pas d'eau.", "I do not drink water."),  # "de" -> "d'" after a negation.
    ("Est-ce que tu bois de l'eau ?", "Do you drink water?"),
    ("J'aime le café.", "I like coffee."),  # "je" -> "j'".
    ("Je n'aime pas le thé.", "I do not like tea."),
    ("Il fait ses devoirs.", "He does his homework."),
    ("Elle ne fait pas ses devoirs.", "She does not do her homework."),
    ("Est-ce qu'ils font la vaisselle ?", "Do they do the dishes?"),
    ("Il pleure.", "He cries."),
    ("J'étudie beaucoup.", "I study a lot."),
    ("Elle étudie.", "She studies."),
    ("Je ne chante pas bien.", "I do not sing well."),
    ("Nous nageons le matin.", "We swim in the morning."),  # "-ger" keeps its "e".
    ("Le chat dort.", "The cat sleeps."),
    ("Les chevaux ne courent pas.", "The horses do not run."),
    ("Est-ce que l'enfant dort ?", "Does the child sleep?"),
])
def test_corpus_contains(corpus, pair):
    assert pair in corpus


def _sentence(pronoun, gender, verb, english_verb, noun, adjective, plural, determiner,
              polarity):
    subject = PRONOUN[(pronoun, gender)]
    adjective = ADJECTIVE[adjective] if adjective else None
    french, english = generator._noun_phrase(NOUN[noun], adjective, plural, determiner)
    return generator._clause(subject, verb, english_verb, french, english, polarity)


# Noun phrases with objects draw their adjective at random, so these call the grammar.
@pytest.mark.parametrize("arguments, expected", [
    (("il", "m", "manger", "eat", "pomme", ("rouge", "red"), False, "definite", "negative"),
     ("Il ne mange pas la pomme rouge.", "He does not eat the red apple.")),
    (("nous", "m", "avoir", "have", "chat", ("noir", "black"), False, "indefinite",
      "affirmative"), ("Nous avons un chat noir.", "We have a black cat.")),
    (("tu", "m", "aimer", "like", "chien", None, True, "generic", "question"),
     ("Est-ce que tu aimes les chiens ?", "Do you like dogs?")),
    (("je", "m", "aimer", "like", "homme", None, False, "definite", "affirmative"),
     ("J'aime l'homme.", "I like the man.")),
    (("nous", "m", "avoir", "have", "chien", None, True, "negated", "negative"),
     ("Nous n'avons pas de chiens.", "We do not have dogs.")),
    (("elle", "f", "avoir", "have", "oiseau", None, False, "negated", "negative"),
     ("Elle n'a pas d'oiseau.", "She does not have a bird.")),
    (("elle", "f", "avoir", "have", "voiture", ("cher", "expensive"), False, "indefinite",
      "question"), ("Est-ce qu'elle a une voiture chère ?", "Does she have an expensive car?")),
    (("ils", "m", "voir", "see", "ordinateur", ("nouveau", "new"), False, "definite",
      "affirmative"), ("Ils voient le nouvel ordinateur.", "They see the new computer.")),
    (("je", "m", "avoir", "have", "éléphant", ("vieux", "old"), False, "indefinite",
      "affirmative"), ("J'ai un vieil éléphant.", "I have an old elephant.")),
    (("vous", "m", "avoir", "have", "oiseau", ("beau", "beautiful"), True, "indefinite",
      "affirmative"), ("Vous avez de beaux oiseaux.", "You have beautiful birds.")),
    (("je", "m", "acheter", "buy", "robe", ("blanc", "white"), True, "definite",
      "affirmative"), ("J'achète les robes blanches.", "I buy the white dresses.")),
    (("elle", "f", "manger", "eat", "pomme", ("frais", "fresh"), False, "indefinite",
      "affirmative"), ("Elle mange une pomme fraîche.", "She eats a fresh apple.")),
    (("il", "m", "regarder", "watch", "souris", None, True, "definite", "affirmative"),
     ("Il regarde les souris.", "He watches the mice.")),
    (("il", "m", "chercher", "look for", "clé", None, False, "definite", "question"),
     ("Est-ce qu'il cherche la clé ?", "Does he look for the key?")),
    (("nous", "m", "manger", "eat", "œuf", None, False, "indefinite", "affirmative"),
     ("Nous mangeons un œuf.", "We eat an egg.")),
    (("elles", "f", "appeler", "call", "enfant", None, False, "definite", "negative"),
     ("Elles n'appellent pas l'enfant.", "They do not call the child.")),
])
def test_grammar_builds(arguments, expected):
    assert _sentence(*arguments) == expected


@pytest.mark.parametrize("infinitive, forms", [
    ("être", "suis es est sommes êtes sont"),
    ("avoir", "ai as a avons avez ont"),
    ("aller", "vais vas va allons allez vont"),
    ("parler", "parle parles parle parlons parlez parlent"),
    ("manger", "mange manges mange mangeons mangez mangent"),
    ("choisir", "choisis choisis choisit choisissons choisissez choisissent"),
    ("vendre", "vends vends vend vendons vendez vendent"),
    ("acheter", "achète achètes achète achetons achetez achètent"),
])
def test_french_conjugation(infinitive, forms):
    assert [generator._conjugate(infinitive, person) for person in range(6)] == forms.split()


@pytest.mark.parametrize("verb, forms", [
    ("be", "am are is are are are"),
    ("have", "have have has have have have"),
    ("eat", "eat eat eats eat eat eat"),
])
def test_english_conjugation(verb, forms):
    assert [generator._english_present(verb, person) for person in range(6)] == forms.split()


@pytest.mark.parametrize("verb, third_person", [
    ("do", "does"), ("go", "goes"), ("watch", "watches"), ("wash", "washes"),
    ("cry", "cries"), ("play", "plays"), ("look for", "looks for"),
])
def test_english_third_person_singular(verb, third_person):
    assert generator._english_present(verb, 2) == third_person


@pytest.mark.parametrize("word, plural", [
    ("chat", "chats"), ("cheval", "chevaux"), ("gâteau", "gâteaux"), ("souris", "souris"),
    ("heureux", "heureux"), ("bleu", "bleus"), ("belle", "belles"),
])
def test_french_plural(word, plural):
    assert generator._french_plural(word) == plural


@pytest.mark.parametrize("word, plural", [
    ("cat", "cats"), ("box", "boxes"), ("strawberry", "strawberries"), ("key", "keys"),
    ("mouse", "mice"), ("sheep", "sheep"), ("child", "children"),
])
def test_english_plural(word, plural):
    assert generator._english_plural(word) == plural


def test_sampled_templates_agree_with_their_subject():
    pairs = dict(generate_pairs())
    negated = {french: english for french, english in pairs.items()
               if french.startswith("Il ne mange pas ")}
    assert len(negated) > 10
    assert all(english.startswith("He does not eat ") for english in negated.values())
    questions = [english for french, english in pairs.items()
                 if french.startswith("Est-ce que vous aimez les ")]
    assert questions and all(english.startswith("Do you like ") for english in questions)


@pytest.mark.parametrize("num_pairs", [0, -5, 10**9])
def test_generate_pairs_rejects_bad_sizes(num_pairs):
    with pytest.raises(ValueError, match=rf"Received: num_pairs={num_pairs}"):
        generate_pairs(num_pairs)


@pytest.mark.parametrize("validation_size, test_size", [(-1, 10), (10, -1), (40_000, 40_000)])
def test_default_splits_rejects_bad_sizes(validation_size, test_size):
    with pytest.raises(ValueError, match="train is not empty"):
        default_splits(validation_size=validation_size, test_size=test_size)
