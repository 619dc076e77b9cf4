"""Content hash of an unpacked source tree, independent of how it was archived.

    python tree_hash.py DIR [--exclude LIST]

Prints sha256 over the sorted lines ``path NUL kind NUL sha256(content or link target)`` of
every regular file and symlink under DIR (paths relative to DIR; directories themselves do not
count). ``--exclude LIST`` leaves out the paths listed in the file LIST (one per line) and
fails if one of them is absent from DIR. The offline archives (``.tar.zst`` repacks) and the
upstream GitHub archives of the same commits give the same hash, so both build modes check
their sources against one pin.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys


def _file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tree_hash(root: str, exclude: frozenset[str] = frozenset()) -> str:
    lines = []
    seen_excluded = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if rel in exclude:
                seen_excluded.add(rel)
                continue
            if os.path.islink(path):
                kind, digest = "link", hashlib.sha256(os.readlink(path).encode()).hexdigest()
            else:
                kind, digest = "file", _file_sha256(path)
            lines.append(f"{rel}\0{kind}\0{digest}\n")
    missing = sorted(exclude - seen_excluded)
    if missing:
        raise SystemExit(f"tree_hash: {len(missing)} listed paths are absent from {root}, e.g. {missing[0]}")
    return hashlib.sha256("".join(sorted(lines)).encode()).hexdigest()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root")
    parser.add_argument("--exclude", help="file listing paths (relative to ROOT) to leave out")
    args = parser.parse_args(argv)
    exclude: frozenset[str] = frozenset()
    if args.exclude:
        with open(args.exclude) as f:
            exclude = frozenset(line.strip() for line in f if line.strip())
    print(tree_hash(args.root, exclude))


if __name__ == "__main__":
    main(sys.argv[1:])
