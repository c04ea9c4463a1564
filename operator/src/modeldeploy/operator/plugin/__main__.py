"""``python -m modeldeploy.operator.plugin``: the same as the ``kubectl-modeldeploy`` script."""

import sys

from modeldeploy.operator.plugin.commands import main

if __name__ == "__main__":
    sys.exit(main())
