"""Building what the bench runs: hammer as of a git ref, bench/floor.c, wrk2 from source;
byte-compiling a hammer build."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import BENCH
from .procs import log

FLOOR_SOURCE = BENCH / "floor.c"
WRK2_BUILD_TIMEOUT_S = 900


@dataclass
class HammerBuild:
    """Which hammer a hammer tool runs: the one `import hammer` finds (pythonpath None:
    the installed one, as the driver itself imports), or the one in a directory put first
    on PYTHONPATH (--hammer-pythonpath, or the --baseline build)."""

    tool: str                   # "hammer" or "hammer-base"
    pythonpath: str | None = None
    ref: str | None = None      # --baseline: the git ref given, and the commit it named
    commit: str | None = None
    package: str = ""           # hammer's package directory, as this build imports it

    def env(self) -> dict[str, str] | None:
        """The client's environment (None: the driver's own)."""
        if self.pythonpath is None:
            return None
        return {**os.environ, "PYTHONPATH": self.pythonpath}

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "hammer", *args]

    def describe(self) -> str:
        what = f"{self.ref} = {self.commit[:12]}, " if self.ref and self.commit else ""
        return f"{self.tool}: {what}{self.package}"


def compile_hammer(build: HammerBuild) -> str:
    """Find the build's package and byte-compile its modules, as pip does when it installs
    a wheel, so that no run pays for compiling them: an editable install with
    PYTHONDONTWRITEBYTECODE set would otherwise recompile every module at every start
    (about 70 ms of CPU here)."""
    import compileall

    found = subprocess.run([sys.executable, "-c", "import hammer; print(hammer.__file__)"],
                           env=build.env(), capture_output=True, text=True, check=False)
    if found.returncode != 0:
        raise RuntimeError(f"{build.tool}: cannot import hammer "
                           f"(PYTHONPATH={build.pythonpath}): {found.stderr.strip()[-300:]}")
    pkg = Path(found.stdout.strip()).resolve().parent
    build.package = str(pkg)
    ok = compileall.compile_dir(str(pkg), quiet=1)
    return (f"{build.describe()}: bytecode "
            + ("compiled" if ok else "NOT compiled (read-only?)"))


def build_hammer(ref: str, dest: Path, tool: str = "hammer-base") -> HammerBuild:
    """Build hammer as of git ref (C extension included) into dest/site, a `pip install
    --target` from `git archive REF`: neither the working tree nor the installed hammer is
    touched. Run it with PYTHONPATH=dest/site."""
    repo = BENCH.parent
    rev = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "--quiet",
                          f"{ref}^{{commit}}"], capture_output=True, text=True, check=False)
    if rev.returncode != 0:
        raise RuntimeError(f"--baseline {ref}: not a commit of the repository at {repo}")
    commit = rev.stdout.strip()
    src, site = dest / "src", dest / "site"
    src.mkdir(parents=True)
    archive = subprocess.Popen(["git", "-C", str(repo), "archive", commit],
                               stdout=subprocess.PIPE)
    assert archive.stdout is not None
    untar = subprocess.run(["tar", "-x", "-C", str(src)], stdin=archive.stdout,
                           capture_output=True, text=True, check=False)
    archive.stdout.close()
    if archive.wait() != 0 or untar.returncode != 0:
        raise RuntimeError(f"git archive {commit} | tar -x failed: {untar.stderr.strip()}")
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-input",
           "--disable-pip-version-check", "--quiet", "--target", str(site), str(src)]
    # with setuptools and Cython here, build with them (quicker, no index needed); else
    # pip's isolated build environment fetches what pyproject.toml requires
    if all(importlib.util.find_spec(m) for m in ("setuptools", "Cython")):
        pip.insert(4, "--no-build-isolation")
    t0 = time.monotonic()
    done = subprocess.run(pip, capture_output=True, text=True, check=False, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"building {ref} ({commit[:12]}) failed: "
                           + " | ".join((done.stderr or done.stdout).strip().splitlines()[-5:]))
    log(f"{tool}: built {ref} ({commit[:12]}) into {site} in {time.monotonic() - t0:.0f}s")
    return HammerBuild(tool, str(site), ref, commit)


def build_wrk2(src: Path, scratch: Path) -> str:
    """Build wrk2 from a source tree (giltene/wrk2: a Makefile that builds its bundled
    LuaJIT, then links against the system's OpenSSL) and return the binary's path. `make`
    runs in src itself when it is writable (incremental: the next run of the bench finds it
    built), else in a copy under scratch. Raises RuntimeError with the end of make's output
    when it does not build."""
    if not (src / "Makefile").is_file():
        raise RuntimeError(f"--wrk2-src {src}: no Makefile there (a wrk2 source tree?)")
    make = shutil.which("make")
    if make is None or (shutil.which("cc") or shutil.which("gcc")) is None:
        raise RuntimeError("--wrk2-src: building wrk2 needs make and a C compiler "
                           "(apt-get install make gcc libssl-dev zlib1g-dev)")
    where = src
    if not os.access(src, os.W_OK):
        where = scratch / "wrk2-src"
        shutil.copytree(src, where, symlinks=True)
    t0 = time.monotonic()
    try:
        done = subprocess.run([make, f"-j{os.cpu_count() or 1}"], cwd=where,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              check=False, timeout=WRK2_BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"--wrk2-src: make in {where} did not finish in "
                           f"{WRK2_BUILD_TIMEOUT_S} s") from exc
    exe = where / "wrk"
    if done.returncode != 0 or not os.access(exe, os.X_OK):
        tail = done.stdout.strip().splitlines()[-15:]
        raise RuntimeError(f"--wrk2-src: make in {where} failed (exit {done.returncode}); "
                           "wrk2 needs libssl-dev and zlib1g-dev. The end of its output:\n  "
                           + "\n  ".join(tail))
    log(f"wrk2: built {exe} from {src} in {time.monotonic() - t0:.0f}s"
        + ("" if where == src else " (a copy: the source tree is not writable)"))
    return str(exe)


def compile_floor(workdir: Path) -> str | None:
    """Build bench/floor.c (the bare C client that marks the kernel's floor); None if
    there is no C compiler or it fails."""
    return compile_c(FLOOR_SOURCE, workdir)


def compile_c(source: Path, workdir: Path) -> str | None:
    """Build one of bench/'s C programs into workdir; None if there is no C compiler or
    it fails (said in the log)."""
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        return None
    exe = workdir / source.stem
    done = subprocess.run([cc, "-O2", "-o", str(exe), str(source)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        log(f"{source.name} did not compile: {done.stderr.strip()[:500]}")
        return None
    return str(exe)
