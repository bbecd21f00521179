import sys

from oauthd.cli import main

sys.exit(main())
