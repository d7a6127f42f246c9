"""``python -m raftka.client.cli``: the same as the ``raftka`` command."""

import sys

from raftka.client.cli.app import main

sys.exit(main())
