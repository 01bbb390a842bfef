"""Bundle signatures: OpenSSH's `ssh-keygen -Y sign/verify` (the SSHSIG format, PROTOCOL.sshsig).

What is signed is the bundle's SHA256SUMS, which names the hash of every other file, so one signature
covers the whole bundle; a tampered copy whose checksums were recomputed no longer matches it. The
format verifies offline with nothing but OpenSSH, and the keys are the ones people already have
(`ssh-keygen -t ed25519`): KEY is the private key file, PUBKEY its `.pub`.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from .errors import BundleError, PackError

NAMESPACE = "pack-bundle"  # a signature made for another purpose (git commits, files) is not accepted
SIGNER = "bundle-signer"


def _ssh_keygen() -> str:
    exe = shutil.which("ssh-keygen")
    if not exe:
        raise PackError(
            "ssh-keygen is not installed; bundle signatures need OpenSSH 8.2 or newer "
            "(apt-get install openssh-client)"
        )
    return exe


def sign(sums: Path, key: Path) -> Path:
    """Sign `sums` with the private key file `key`; return the signature file (`sums`.sig)."""
    if not key.is_file():
        raise PackError(f"{key}: no such key file; give a private key made by 'ssh-keygen -t ed25519'")
    res = subprocess.run(
        [_ssh_keygen(), "-Y", "sign", "-f", str(key), "-n", NAMESPACE, str(sums)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    sig = sums.with_name(sums.name + ".sig")
    if res.returncode != 0 or not sig.is_file():
        why = res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"exit {res.returncode}"
        raise PackError(
            f"{key}: ssh-keygen could not sign with this key ({why}); give an unencrypted "
            "private key file such as ~/.ssh/id_ed25519"
        )
    return sig


def _public_key(pubkey: Path) -> str:
    try:
        text = pubkey.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise PackError(f"{pubkey}: cannot read the trusted public key ({e}); give a .pub file") from None
    parts = text.split()
    if len(parts) < 2 or not parts[0].startswith(("ssh-", "ecdsa-", "sk-")) or "\n" in text:
        raise PackError(
            f"{pubkey}: not an OpenSSH public key (one line '<type> <base64> [comment]'); "
            "give the .pub file of the signer's key"
        )
    return " ".join(parts[:2])


def verify(sums: bytes, signature: bytes | None, pubkey: Path, bundle: Path) -> str:
    """Check the signature over `sums` against the trusted `pubkey`; return the key's fingerprint line."""
    key = _public_key(pubkey)
    if signature is None:
        raise BundleError(
            f"{bundle}: not signed, and --trust {pubkey} requires a signature; "
            "ask for a bundle made with 'pack bundle --sign KEY'"
        )
    with tempfile.TemporaryDirectory(prefix="pack-sig-") as tmp:
        t = Path(tmp)
        (t / "allowed_signers").write_text(f'{SIGNER} namespaces="{NAMESPACE}" {key}\n')
        (t / "sig").write_bytes(signature)
        res = subprocess.run(
            [
                _ssh_keygen(),
                "-Y",
                "verify",
                "-f",
                str(t / "allowed_signers"),
                "-I",
                SIGNER,
                "-n",
                NAMESPACE,
                "-s",
                str(t / "sig"),
            ],
            input=sums,
            capture_output=True,
            timeout=60,
        )
    if res.returncode != 0:
        raise BundleError(
            f"{bundle}: its signature does not verify against {pubkey} (wrong key, or the "
            "bundle's checksums were changed after signing); do not trust this copy"
        )
    return res.stdout.decode("utf-8", "replace").strip() or f"signed by {key}"
