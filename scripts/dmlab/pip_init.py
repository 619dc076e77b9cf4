"""The DeepMind Lab native module and dm_env bindings.

impala-mu's copy of lab's python/pip_package/__init__.py: the same module, loaded with
importlib instead of `imp` and `pkg_resources` (gone from Python 3.12 and setuptools >= 80).
As upstream, `deepmind_lab` is then the native module itself (it looks itself up in
sys.modules when a Lab is created), with `dmenv_module` attached.

    import deepmind_lab
    lab = deepmind_lab.Lab(level='lt_chasm', observations=['RGB'])
"""

import importlib.machinery
import importlib.util
import os
import sys

from deepmind_lab import dmenv_module  # noqa: F401 (upstream exposes it; needs dm-env)

_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'deepmind_lab.so')
_loader = importlib.machinery.ExtensionFileLoader(__name__, _path)
_spec = importlib.util.spec_from_file_location(__name__, _path, loader=_loader)
_deepmind_lab = importlib.util.module_from_spec(_spec)
_loader.exec_module(_deepmind_lab)

_deepmind_lab.dmenv_module = dmenv_module
sys.modules[__name__] = _deepmind_lab  # what `import deepmind_lab` returns, as with imp.load_dynamic
