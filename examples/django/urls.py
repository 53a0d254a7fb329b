# SPDX-License-Identifier: GPL-2.0-or-later
"""The views of the sessfs Django example (routes: settings.py)."""

import hashlib

from django.http import HttpResponse
from django.urls import path


def big_blob(kb):
    return "".join(hashlib.sha256(b"sessfs-big-%d" % i).hexdigest()
                   for i in range(kb * 16))


def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


def text(body):
    return HttpResponse(body, content_type="text/plain")


def health(request):
    return text("ok")


def login(request):
    user = request.GET.get("user", "")
    # What django.contrib.auth.login() does: a new key (no session
    # fixation), the old file deleted.
    request.session.cycle_key()
    request.session["user"] = user
    request.session["count"] = 0
    return text("ok user=%s" % user)


def incr(request):
    request.session["count"] = request.session.get("count", 0) + 1
    return text("count=%d" % request.session["count"])


def whoami(request):
    s = request.session
    if "user" in s:
        return text("user=%s count=%d" % (s["user"], s["count"]))
    return text("anonymous")


def logout(request):
    request.session.flush()
    return text("bye")


def big(request):
    blob = big_blob(max(0, int(request.GET.get("kb", "0"))))
    request.session["big"] = blob
    return text(sha256(blob))


def bigcheck(request):
    s = request.session
    return text(sha256(s["big"]) if "big" in s else "none")


urlpatterns = [
    path("health", health),
    path("login", login),
    path("incr", incr),
    path("whoami", whoami),
    path("logout", logout),
    path("big", big),
    path("bigcheck", bigcheck),
]
