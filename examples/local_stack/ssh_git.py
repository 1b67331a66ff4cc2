"""An OpenSSH server on 127.0.0.1 serving the git daemon's bare repositories over SSH, with a
throw-away host key and one authorized deploy key: the tests' stand-in for a private SSH remote."""

from __future__ import annotations

import getpass
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from examples.local_stack import free_port, port_open, wait_until

SSHD = Path("/usr/sbin/sshd")


@dataclass
class SSHGitServer:
    root: Path  # the bare repositories, <name>.git
    port: int
    user: str
    deploy_key: str  # the client's private key (OpenSSH format)
    known_hosts: str  # the line naming this server's host key
    process: subprocess.Popen[bytes]

    def url(self, name: str) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{self.root}/{name}.git"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def keypair(path: Path) -> tuple[str, str]:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)], check=True)
    return path.read_text(), path.with_suffix(".pub").read_text().strip()


def start_ssh_git(root: Path, home: Path) -> SSHGitServer:
    """sshd on a free loopback port, accepting only the generated deploy key, for the current user."""
    home.mkdir(parents=True, exist_ok=True)
    _, host_public = keypair(home / "host_ed25519")
    client_private, client_public = keypair(home / "deploy_ed25519")
    (home / "authorized_keys").write_text(client_public + "\n")
    port = free_port()
    config = home / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {home / 'host_ed25519'}",
        f"AuthorizedKeysFile {home / 'authorized_keys'}", "PubkeyAuthentication yes", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password", "StrictModes no", "UsePAM no",
        f"PidFile {home / 'sshd.pid'}", "AllowTcpForwarding no", "X11Forwarding no", "PermitTTY no",
    ]) + "\n")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    log = open(home / "sshd.log", "ab")  # noqa: SIM115 - lives as long as the server
    process = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
    wait_until(lambda: port_open(port), "sshd listening", timeout=20)
    return SSHGitServer(root=root, port=port, user=getpass.getuser(), deploy_key=client_private,
                        known_hosts=f"[127.0.0.1]:{port} {host_public}", process=process)
