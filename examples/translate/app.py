# SPDX-License-Identifier: GPL-2.0-or-later
"""sessfs example: the translation site of the migration plan, a Flask app
on Flask-Session's `filesystem` backend (cachelib's FileSystemCache),
unchanged.  The drill (examples/demo/demo.sh) serves it with gunicorn and
drives it with locust (examples/translate/locustfile.py) while sessfs
moves its sessions from files to Redis and back.

Run it (Debian's python3, which has flask and flask_session):

    SESS_DIR=/var/lib/sessions SECRET_KEY=change-me \\
        gunicorn -w 4 -k gthread --threads 4 -b 127.0.0.1:8082 \\
        --chdir examples/translate app:app

Environment:
  SESS_DIR    SESSION_FILE_DIR, the directory sessfs mounts over (required)
  SECRET_KEY  Flask's secret key (a fixed development key if unset)
The prune threshold is 0 (never prune, no count file), as the runbook asks
when several hosts share one Redis prefix.

Routes; parameters as a form or a JSON object; every answer is JSON:
  POST /login         user, language -> a new session: that user and
                      language, an empty history -> {user, language,
                      history}
  GET  /              {user, language, history}; user is null when the
                      session holds nobody
  POST /translate     input_text, source_lang, target_lang -> the words of
                      input_text looked up in the word
                      table of words.py (an unknown word stays
                      as it is); the entry {source_lang, target_lang,
                      input_text, translation} is appended to the session's
                      history (its last HISTORY_MAX entries are kept)
                      -> {user, language, translation, history}; 401 when
                      nobody is logged in
  POST /set_language  language -> {user, language}; 401 when nobody is
                      logged in
  GET  /health        "ok" (touches no session)
An unknown language or a missing parameter is a 400.
"""

import os

from flask import Flask, jsonify, request, session
from flask.sessions import SessionInterface
from flask_session import Session

from words import LANGUAGES, translate_text

HISTORY_MAX = 20

app = Flask(__name__)
app.config.update(
    SECRET_KEY=os.environ.get("SECRET_KEY", "sessfs-example-not-secret"),
    SESSION_TYPE="filesystem",
    SESSION_FILE_DIR=os.environ["SESS_DIR"],
    SESSION_FILE_THRESHOLD=0,
)
Session(app)


class HealthWithoutSession(SessionInterface):
    """/health gets Flask's null session, never saved (Flask-Session 0.3.2
    would store a new session for every probe without a cookie)."""

    def __init__(self, inner):
        self.inner = inner

    def open_session(self, app, request):
        if request.path == "/health":
            return self.make_null_session(app)
        return self.inner.open_session(app, request)

    def save_session(self, app, session, response):
        return self.inner.save_session(app, session, response)


app.session_interface = HealthWithoutSession(app.session_interface)


class BadRequest(Exception):
    pass


@app.errorhandler(BadRequest)
def bad_request(e):
    return jsonify(error=str(e)), 400


def param(name, languages=False):
    """A parameter from the form or the JSON body."""
    body = request.get_json(silent=True) or {}
    value = request.form.get(name, body.get(name))
    if not isinstance(value, str) or not value:
        raise BadRequest("missing %s" % name)
    if languages and value not in LANGUAGES:
        raise BadRequest("unknown language %r" % value)
    return value


def state():
    return {"user": session.get("user"),
            "language": session.get("language"),
            "history": session.get("history", [])}


def not_logged_in():
    return jsonify(error="not logged in", **state()), 401


@app.route("/health")
def health():
    return "ok", 200, {"Content-Type": "text/plain"}


@app.route("/login", methods=["POST"])
def login():
    user = param("user")
    language = param("language", languages=True)
    session.clear()
    session["user"] = user
    session["language"] = language
    session["history"] = []
    return jsonify(state())


@app.route("/")
def index():
    return jsonify(state())


@app.route("/translate", methods=["POST"])
def translate():
    text = param("input_text")
    src = param("source_lang", languages=True)
    dst = param("target_lang", languages=True)
    if "user" not in session:
        return not_logged_in()
    entry = {"source_lang": src, "target_lang": dst, "input_text": text,
             "translation": translate_text(text, src, dst)}
    # A new list: Flask-Session saves when the session is modified, and
    # appending in place does not mark it.
    session["history"] = (session.get("history", []) + [entry])[-HISTORY_MAX:]
    return jsonify(translation=entry["translation"], **state())


@app.route("/set_language", methods=["POST"])
def set_language():
    language = param("language", languages=True)
    if "user" not in session:
        return not_logged_in()
    session["language"] = language
    return jsonify(user=session["user"], language=language)


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8082")))
