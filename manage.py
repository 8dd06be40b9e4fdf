#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "drportal.settings")
    from django.core.management import execute_from_command_line

    from drportal.env import refuse_empty_home

    refuse_empty_home(sys.argv[1] if len(sys.argv) > 1 else "help")

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
