# SPDX-License-Identifier: GPL-2.0-or-later
"""WSGI entry point of the sessfs Django example (wsgi:application)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
application = get_wsgi_application()
