import sys

from islesbench.cli import main

sys.exit(main())
