"""``git daemon`` serving bare repositories over git:// on 127.0.0.1, plus repository builders."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from examples.local_stack import free_port, port_open, wait_until

GIT_IDENTITY = ["-c", "user.name=Pipeline Tests", "-c", "user.email=tests@example.invalid", "-c", "commit.gpgsign=false"]


def git(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    return subprocess.run(["git", *GIT_IDENTITY, *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}).stdout.strip()


@dataclass
class GitDaemon:
    base_path: Path
    port: int
    process: subprocess.Popen[bytes]

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}.git"

    def publish(self, name: str, source: Path, *, branch: str = "main", commit_date: str | None = None) -> Repository:
        """Commit ``source`` as the first commit of a new repository served as ``name``. With
        ``commit_date`` (e.g. ``2026-01-01T00:00:00Z``) the commit is the same for the same files,
        run after run, as a real repository's unchanged commit would be."""
        work = self.base_path / "work" / name
        if work.exists():
            shutil.rmtree(work)
        shutil.copytree(source, work, ignore=shutil.ignore_patterns("node_modules", "dist", ".wrangler"))
        git("init", "--quiet", "--initial-branch", branch, cwd=work)
        git("add", "--all", cwd=work)
        dates = {"GIT_AUTHOR_DATE": commit_date, "GIT_COMMITTER_DATE": commit_date} if commit_date else {}
        git("commit", "--quiet", "--message", f"{name}: initial commit", cwd=work, env=dates)
        bare = self.base_path / f"{name}.git"
        if bare.exists():
            shutil.rmtree(bare)
        git("clone", "--quiet", "--bare", str(work), str(bare), cwd=self.base_path)
        git("remote", "add", "origin", str(bare), cwd=work)
        return Repository(name=name, url=self.url(name), work=work, branch=branch)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(10)


@dataclass
class Repository:
    """A repository served by the daemon, with a working copy to make more commits in."""

    name: str
    url: str
    work: Path
    branch: str

    def commit(self, files: dict[str, str], message: str, *, links: dict[str, str] | None = None) -> str:
        """Commit ``files`` (relative path -> content) and ``links`` (relative path -> symlink target)."""
        for relative, content in files.items():
            path = self.work / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        for relative, target in (links or {}).items():
            path = self.work / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.symlink_to(target)
        git("add", "--all", cwd=self.work)
        git("commit", "--quiet", "--message", message, cwd=self.work)
        git("push", "--quiet", "origin", "HEAD", cwd=self.work)
        return self.head()

    def tag(self, name: str) -> None:
        git("tag", name, cwd=self.work)
        git("push", "--quiet", "origin", name, cwd=self.work)

    def head(self) -> str:
        return git("rev-parse", "HEAD", cwd=self.work)


def start_git_daemon(base_path: Path, *, port_file: Path | None = None) -> GitDaemon:
    """A git daemon serving ``base_path``; with ``port_file``, on the port it names when that is
    free (and the file then names the port used), so its repositories keep their URLs run after
    run: a stored build is skipped to only from the same repository URL."""
    base_path.mkdir(parents=True, exist_ok=True)
    kept = port_file.read_text().strip() if port_file is not None and port_file.exists() else ""
    port = int(kept) if kept.isdigit() and not port_open(int(kept)) else free_port()
    if port_file is not None:
        port_file.write_text(str(port))
    process = subprocess.Popen(
        ["git", "daemon", "--reuseaddr", "--export-all", f"--base-path={base_path}",
         "--listen=127.0.0.1", f"--port={port}", "--enable=upload-pack", str(base_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    wait_until(lambda: port_open(port), "git daemon", timeout=15)
    return GitDaemon(base_path, port, process)
