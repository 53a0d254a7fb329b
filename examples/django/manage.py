#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Django's command line for the sessfs example: `manage.py clearsessions`
removes the expired sessions (through the mount)."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
    from django.core.management import execute_from_command_line
    execute_from_command_line(sys.argv)
