"""Run by tests/spark_job/test_local_fs.py with spark-submit (its own JVM, as the job runs): builds the
job's session and checks its file system against RawLocalFileSystem; prints one JSON line."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script by spark-submit: import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from spark_job.session import build_session
from spark_job.settings import SparkJobSettings


def main(folder: Path) -> dict[str, object]:
    spark = build_session(SparkJobSettings(), app_name="devicestream-local-fs-probe")
    try:
        sc = spark.sparkContext
        jvm, conf = sc._jvm, sc._jsc.hadoopConfiguration()
        path = jvm.org.apache.hadoop.fs.Path
        fs = jvm.org.apache.hadoop.fs.FileSystem.get(jvm.java.net.URI("file:///"), conf)
        out: dict[str, object] = {"fs": fs.getClass().getName()}
        fs.mkdirs(path(f"file://{folder}/a/b"))
        out["dir_mode"] = oct(stat.S_IMODE(os.stat(folder / "a" / "b").st_mode))
        (folder / "f").write_text("x")
        fs.setPermission(path(f"file://{folder}/f"), jvm.org.apache.hadoop.fs.permission.FsPermission(0o640))
        out["file_mode"] = oct(stat.S_IMODE(os.stat(folder / "f").st_mode))
        (folder / "link").symlink_to(folder / "f")
        raw = jvm.org.apache.hadoop.fs.RawLocalFileSystem()
        raw.initialize(jvm.java.net.URI("file:///"), conf)
        same = {}
        for name in ("f", "link", "a"):  # the link status RawLocalFileSystem gives (after its `readlink`)
            ours, theirs = (x.getFileLinkStatus(path(f"file://{folder}/{name}")) for x in (fs, raw))
            same[name] = [[s.isSymlink(), s.isDirectory(), s.getLen(), s.getPath().toString()] for s in (ours, theirs)]
        out["link_status"] = same
        fc = jvm.org.apache.hadoop.fs.FileContext.getFileContext(conf)
        out["fc"] = fc.getDefaultFileSystem().getClass().getName()
        no_options = sc._gateway.new_array(jvm.org.apache.hadoop.fs.Options.Rename, 0)
        fc.rename(path(f"file://{folder}/f"), path(f"file://{folder}/g"), no_options)  # a checkpoint log's commit
        out["renamed"] = (folder / "g").read_text() == "x" and not (folder / "f").exists()
        return out
    finally:
        spark.stop()


if __name__ == "__main__":
    print("LOCAL_FS_PROBE " + json.dumps(main(Path(sys.argv[1]))), flush=True)
