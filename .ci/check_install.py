"""After an install: one OpenCV distribution, and `vexpress --version` from the installed metadata.

(`pip check`, run beside this in .ci/run, covers the declared requirements.) Several OpenCV
distributions (opencv-python, opencv-python-headless, the contrib builds) all write the same cv2/
folder, so with two of them installed, uninstalling either one breaks the other.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib import metadata


def main() -> int:
    opencv = sorted({dist.metadata["Name"].lower() for dist in metadata.distributions()
                     if dist.metadata["Name"] and dist.metadata["Name"].lower().startswith("opencv")})
    if len(opencv) != 1:
        print(f"expected one OpenCV distribution, found {len(opencv)}: {', '.join(opencv) or 'none'}", file=sys.stderr)
        return 1
    shown = subprocess.run([shutil.which("vexpress") or "vexpress", "--version"], capture_output=True, text=True,
                           check=True).stdout.strip()
    expected = f"vexpress {metadata.version('vexpress-cli')}"
    if shown != expected:
        print(f"`vexpress --version` says {shown!r}, the installed metadata {expected!r}", file=sys.stderr)
        return 1
    print(f"install: {opencv[0]} is the only OpenCV; {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
