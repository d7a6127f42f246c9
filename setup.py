"""Maps the top-level source folders into the ``raftka`` import namespace, and builds the
record codec's C accelerator.

The design card keeps common/, controller/, broker/, client/, ops/ and proto/ at the top of
the tree; users import them as raftka.common, raftka.controller, ... . Subpackages are found
automatically, so adding a folder with an ``__init__.py`` needs no edit here.

``raftka.common.records._accel`` (common/records/_accel.c) is optional: where it cannot be
compiled, the install goes on and the pure-Python twin (common/records/pycodec.py) is used.
"""

from setuptools import Extension, find_packages, setup

ROOTS = {
    "raftka.v1": "proto/raftka/v1",
    "raftka.common": "common",
    "raftka.controller": "controller",
    "raftka.broker": "broker",
    "raftka.client": "client",
    "raftka.ops": "ops",
}

packages: list[str] = []
for name, folder in ROOTS.items():
    packages.append(name)
    packages.extend(f"{name}.{sub}" for sub in find_packages(folder))

ACCEL = Extension(
    "raftka.common.records._accel",
    sources=["common/records/_accel.c"],
    extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
    optional=True,
)

setup(packages=packages, package_dir=ROOTS, ext_modules=[ACCEL])
