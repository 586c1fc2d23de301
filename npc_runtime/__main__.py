import sys

from npc_runtime.cli import main

sys.exit(main())
