"""The run folder's store: atomic writes, checksummed JSON and checkpoints tied to their keys,
per-item locks, the folder's ownership by one profile, and sweeping what killed runs left.

Layout of a run folder::

    profile.json          the profile that owns the folder (claimed atomically, once)
    models/<key>.pt       an original model's weights; <key>.pt.sha256 ties them to the key
    models/<key>.json     its training time and device
    jobs/<key>.json       one unlearning job's metrics
    locks/<key>           per-item locks (fcntl.flock)
    results.csv, manifest.json, figures/
"""
from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import socket
import tempfile
import time
import warnings

import torch

from .errors import ConfigError

_UMASK = os.umask(0)
os.umask(_UMASK)  # read once: files are created with the permissions the user's umask allows
_HOST = socket.gethostname().replace("-", "_") or "host"
TMP = ".tmp-"
SUBFOLDERS = ("models", "jobs", "locks", "figures")
FILES = ("profile.json", "results.csv", "manifest.json", "ulira.csv", "ulira_targets.csv")


def digest(obj) -> str:
    """The key of a spec: a short hash of its JSON with sorted fields."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def atomic_write(path: str, body: bytes) -> None:
    """Write through a temporary file in the same folder, then rename over ``path``.

    The temporary name records host and pid (``.tmp-HOST-PID-…``) so that ``sweep`` can tell a
    killed run's leftovers from a live run's work in progress.
    """
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f"{TMP}{_HOST}-{os.getpid()}-")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; a shared run folder needs the umask's
        with os.fdopen(fd, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep(run_dir: str, max_age_s: float = 86400) -> int:
    """Remove temporary files that no live process will finish: those of this host whose process
    is gone, and those of other hosts (or of unknown origin) older than ``max_age_s``."""
    removed = 0
    for sub in ("", "models", "jobs"):
        folder = os.path.join(run_dir, sub)
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            if not name.startswith(TMP):
                continue
            path = os.path.join(folder, name)
            parts = name[len(TMP):].split("-")
            try:
                mine = parts[0] == _HOST and not _alive(int(parts[1]))
                old = time.time() - os.path.getmtime(path) > max_age_s
            except (IndexError, ValueError, OSError):
                mine, old = False, True
            if mine or (parts[0] != _HOST and old):
                try:
                    os.unlink(path)
                    removed += 1
                except FileNotFoundError:
                    pass
    return removed


# --- checksummed JSON and checkpoints ------------------------------------------------------

def save_json(path: str, payload: dict, key: str | None = None) -> None:
    """``payload`` with its checksum (and the key it belongs to, when given)."""
    body = json.dumps(payload, sort_keys=True)
    blob = {"sha256": _sha(((key or "") + body).encode()), "key": key, "payload": payload}
    atomic_write(path, json.dumps(blob, sort_keys=True).encode())


def load_json(path: str, key: str | None = None, quiet: bool = False):
    """The payload, or None when missing; a damaged file, or one stored under another key, is
    reported and treated as missing."""
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            blob = json.load(f)
        body = json.dumps(blob["payload"], sort_keys=True)
        if _sha(((blob.get("key") or "") + body).encode()) != blob["sha256"]:
            raise ValueError("checksum mismatch")
        if key is not None and blob.get("key") != key:
            raise ValueError(f"it belongs to key {blob.get('key')!r}")
        return blob["payload"]
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        if not quiet:
            warnings.warn(f"damaged cache file {path} ({err}): recomputing it")
        return None


def save_model(path: str, model, key: str) -> None:
    save_state(path, model.state_dict(), key)


def save_state(path: str, state: dict, key: str) -> None:
    """A dict of tensors (a model's state dict, a ranker's history), tied to ``key``."""
    buf = io.BytesIO()
    torch.save({k: v.cpu() for k, v in state.items()}, buf)
    body = buf.getvalue()
    atomic_write(path, body)
    atomic_write(path + ".sha256", _sha(key.encode() + body).encode())


def load_model_state(path: str, key: str):
    """The state dict (loaded with weights_only=True), or None when missing, damaged, stored under
    another key, or not plain weights."""
    if not (os.path.exists(path) and os.path.exists(path + ".sha256")):
        return None
    with open(path, "rb") as f:
        body = f.read()
    with open(path + ".sha256") as f:
        if f.read().strip() != _sha(key.encode() + body):
            warnings.warn(f"damaged checkpoint {path} (checksum mismatch, or not the weights of {key}): retraining it")
            return None
    try:  # weights only: nothing in a run folder is ever unpickled as code
        return torch.load(io.BytesIO(body), weights_only=True)
    except Exception as err:  # noqa: BLE001 - any refusal means: do not use this file
        warnings.warn(f"checkpoint {path} cannot be loaded as plain weights ({type(err).__name__}): retraining it")
        return None


class Lock:
    """An exclusive lock on ``path`` (fcntl.flock): held while one process computes one item.

    The kernel releases it when the holder dies, even by kill -9, so a crashed run never
    leaves a stale lock; a second run that wants the same item waits, then finds it done.
    """
    def __init__(self, path):
        self.path = path

    def __enter__(self):
        import fcntl
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        import fcntl
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


# --- the run folder ------------------------------------------------------------------------

def claim(run_dir: str, profile: str) -> None:
    """Make ``run_dir`` (if needed) and claim it for ``profile``, atomically; refuse a folder
    that another profile owns, a path that is not a writable folder, or a damaged claim.

    Called only after the profile and its data were validated, so a refused run claims nothing.
    """
    if not isinstance(run_dir, str) or not run_dir.strip():
        raise ConfigError(f"run_dir must name a folder, got {run_dir!r}")
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise ConfigError(f"run_dir {run_dir!r} exists and is not a folder; choose another run_dir")
    for sub in SUBFOLDERS:
        where = os.path.join(run_dir, sub)
        if os.path.lexists(where) and not os.path.isdir(where):
            raise ConfigError(f"run_dir {run_dir!r}: {sub} exists and is not a folder (the store keeps "
                              f"its {sub} there); move it away or choose another run_dir")
    for name in FILES:
        where = os.path.join(run_dir, name)
        if os.path.lexists(where) and not os.path.isfile(where):
            raise ConfigError(f"run_dir {run_dir!r}: {name} exists and is not a file (the run writes its "
                              f"{name} there); move it away or choose another run_dir")
    try:
        os.makedirs(run_dir, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=run_dir, prefix=f"{TMP}{_HOST}-{os.getpid()}-")
        probe.close()
    except OSError as err:
        raise ConfigError(f"run_dir {run_dir!r} is not a writable folder ({err.strerror or err})") from None
    path = os.path.join(run_dir, "profile.json")
    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=f"{TMP}{_HOST}-{os.getpid()}-")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "w") as f:
            json.dump({"profile": profile}, f)
        os.link(tmp, path)  # atomic: exactly one of two racing runs creates the claim
    except FileExistsError:
        pass
    except OSError as err:
        if err.errno != errno.EEXIST:
            raise ConfigError(f"run_dir {run_dir!r}: cannot write profile.json ({err.strerror or err})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    owner = owner_of(run_dir)
    if owner != profile:
        raise ConfigError(f"run_dir {run_dir!r} was made by profile {owner!r}, not {profile!r}; "
                          f"choose another run_dir")


def owner_of(run_dir: str) -> str | None:
    """The profile that owns ``run_dir``, or None when it has no claim."""
    path = os.path.join(run_dir, "profile.json")
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            owner = json.load(f)["profile"]
        if not isinstance(owner, str):
            raise TypeError
        return owner
    except (ValueError, KeyError, TypeError, OSError):
        raise ConfigError(f"run_dir {run_dir!r}: profile.json is damaged; remove it if the folder "
                          f"is yours, or choose another run_dir") from None


# --- where a run keeps its models and jobs, whatever the domain ----------------------------

def model_path(run_dir: str, key: str) -> str:
    """Where the checkpoint of trained model ``key`` lives (its ``.json`` sidecar beside it)."""
    return os.path.join(run_dir, "models", key + ".pt")


def job_path(run_dir: str, key: str) -> str:
    """Where the result of unlearning job ``key`` lives."""
    return os.path.join(run_dir, "jobs", key + ".json")


def model_info(run_dir: str, key: str, quiet: bool = False):
    """The sidecar of trained model ``key`` (training seconds, provenance), or None."""
    return load_json(model_path(run_dir, key)[:-3] + ".json", key, quiet=quiet)


def stored_result(run_dir: str, key: str, quiet: bool = False):
    """The stored result of job ``key``, or None when missing or damaged."""
    return load_json(job_path(run_dir, key), key, quiet=quiet)


def stored_or_made(path: str, stored, make):
    """(thing, made now?): ``stored()`` when the store has it (not None), else ``make()`` (which
    stores it) run under ``path``'s lock, after looking again under the lock: another process
    may have made it meanwhile. Every domain's trained models come through here."""
    got = stored()
    if got is not None:
        return got, False
    with Lock(path + ".lock"):
        got = stored()
        if got is not None:
            return got, False
        return make(), True
