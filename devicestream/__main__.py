import sys

from devicestream.cli import main

sys.exit(main())
