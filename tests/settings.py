"""Test settings: the service's own, with DATA_DIR in a fresh temporary folder."""

import os
import tempfile

os.environ["DATA_DIR"] = tempfile.mkdtemp(prefix="bulk-import-tests-")

from imports.settings import *  # noqa: E402, F403
