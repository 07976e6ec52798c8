#!/usr/bin/python3
"""A FUSE file system whose reads hang, like a hung NFS or FUSE mount.

    hangfs.py BACKING FLAG MOUNTPOINT

Serves the files of BACKING (read-only) at MOUNTPOINT. While the file FLAG exists, every read
waits (open and stat still answer, as on a hung NFS server whose attributes are cached).
A read the kernel interrupts (its thread got a signal; a process exiting kills its threads)
fails with EINTR, as on NFS, whose waits are killable. Without that, Linux keeps a process
whose thread waits on a FUSE read from ever exiting, whatever the process does.
Used by tests/it/mounts.rs; needs Debian's python3-fusepy and /dev/fuse.
"""
import errno
import os
import stat
import sys
import time

import fusepy
from fusepy import FUSE, FuseOSError, Operations


class Hanging(Operations):
    def __init__(self, backing, flag):
        self.backing, self.flag = backing, flag

    def _path(self, path):
        return os.path.join(self.backing, path.lstrip("/"))

    def getattr(self, path, fh=None):
        if path == "/":
            return dict(st_mode=stat.S_IFDIR | 0o755, st_nlink=2)
        p = self._path(path)
        if not os.path.isfile(p):
            raise FuseOSError(errno.ENOENT)
        st = os.stat(p)
        return dict(st_mode=stat.S_IFREG | 0o644, st_nlink=1, st_size=st.st_size,
                    st_mtime=st.st_mtime)

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self.backing)

    def open(self, path, flags):
        return 0

    def read(self, path, size, offset, fh):
        while os.path.exists(self.flag):
            if fusepy._libfuse.fuse_interrupted():
                raise FuseOSError(errno.EINTR)
            time.sleep(0.02)
        with open(self._path(path), "rb") as f:
            f.seek(offset)
            return f.read(size)


if __name__ == "__main__":
    backing, flag, mountpoint = sys.argv[1:4]
    # direct_io: no page cache, so every read reaches read() above.
    FUSE(Hanging(backing, flag), mountpoint, foreground=True, direct_io=True)
