"""``manage.py`` with a pipeline variant applied (see variants.py), to measure a proposed change.

    BENCH_VARIANT="level=1,job=2m,putfile=link" python bench/manage_variant.py backup TARGET --json

Identical to ``manage.py`` apart from the monkeypatching; used by
``backup_bench.py --variant``.
"""

import os
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(1, str(BENCH))


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "drportal.settings")
    import django

    django.setup()
    import variants

    variants.apply(os.environ.get("BENCH_VARIANT", ""))
    from django.core.management import execute_from_command_line

    execute_from_command_line(["manage.py", *sys.argv[1:]])


if __name__ == "__main__":
    main()
