"""deploy/local/cluster.py as a module: deploy/ holds what operators run, it is not a package."""
from __future__ import annotations

import importlib.util
import sys

from tests.support import REPO


def _load(name: str = "brainwave_local_cluster"):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "deploy" / "local" / "cluster.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the class is made
        spec.loader.exec_module(module)
    return sys.modules[name]


cluster = _load()
