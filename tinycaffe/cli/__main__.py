"""``python -m tinycaffe.cli``: the same as the ``tinycaffe`` command."""
import sys

from .main import main

sys.exit(main())
