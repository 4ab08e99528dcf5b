import sys

from faktory.cli import main

sys.exit(main())
