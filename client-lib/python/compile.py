#!/usr/bin/env python3
"""Byte-compiles the installed hconn package (meson install script): a
process that may not write next to the package (any non-root user) would
otherwise compile client.py again at every start.

usage: compile.py SITE_DIR   (the install dir, without DESTDIR)
"""

import compileall
import os
import sys

site = sys.argv[1]
root = os.environ.get("DESTDIR", "") + site if os.environ.get("DESTDIR") \
    else site
target = os.path.join(root, "hconn")
ok = compileall.compile_dir(target, ddir=os.path.join(site, "hconn"),
                            quiet=1, force=True)
sys.exit(0 if ok else 1)
