#!/usr/bin/env python
"""Django's command-line entry point for Aforo."""
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aforo.settings")
    from django.core.management import execute_from_command_line

    from aforo.eventstore.errors import EmbeddedStoreLocked

    try:
        execute_from_command_line(sys.argv)
    except EmbeddedStoreLocked as exc:
        # One clear line instead of a stack trace: another process owns var/chdb.
        print(f"aforo: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
