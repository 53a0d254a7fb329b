# SPDX-License-Identifier: GPL-2.0-or-later
"""The translate app's word table, shared by the app (app.py) and the
drill's locust users (locustfile.py), which check every translation."""

LANGUAGES = ("en", "de", "fr", "es")

# A small word table: each row is one word in every language of LANGUAGES.
_ROWS = (
    ("hello", "hallo", "bonjour", "hola"),
    ("world", "welt", "monde", "mundo"),
    ("good", "gut", "bon", "bueno"),
    ("morning", "morgen", "matin", "mañana"),
    ("cat", "katze", "chat", "gato"),
    ("dog", "hund", "chien", "perro"),
    ("house", "haus", "maison", "casa"),
    ("water", "wasser", "eau", "agua"),
    ("bread", "brot", "pain", "pan"),
    ("thank", "danke", "merci", "gracias"),
    ("yes", "ja", "oui", "sí"),
    ("no", "nein", "non", "no"),
    ("red", "rot", "rouge", "rojo"),
    ("book", "buch", "livre", "libro"),
    ("friend", "freund", "ami", "amigo"),
    ("session", "sitzung", "session", "sesión"),
)
WORDS = {(src, dst): {row[i]: row[j] for row in _ROWS}
         for i, src in enumerate(LANGUAGES)
         for j, dst in enumerate(LANGUAGES)}


def translate_text(text, source_lang, target_lang):
    """Word by word through WORDS, lower-cased; an unknown word stays."""
    table = WORDS[(source_lang, target_lang)]
    return " ".join(table.get(w, w) for w in text.lower().split())
