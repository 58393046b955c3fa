import sys

from babeltune.cli import main

sys.exit(main())
