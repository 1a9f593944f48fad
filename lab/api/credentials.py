"""The lab's AWS credentials: generated once per lab home, written where boto3 and the aws CLI read them.

    <home>/aws/credentials   [appmesh-lab] aws_access_key_id = AKIA…, aws_secret_access_key = …
    <home>/aws/config        [profile appmesh-lab] region, and the App Mesh endpoint of this lab:
                                 services = appmesh-lab
                             [services appmesh-lab]
                                 app_mesh =          (the key for App Mesh: its serviceId, "App Mesh")
                                     endpoint_url = http://127.0.0.1:<port>

Both files are the owner's only (folder 0700, files 0600, written without following symlinks).
The daemon calls `ensure_profile` at start: the key pair is made the first time and kept after
(so scripts keep working across `down`/`up`); the config is rewritten, because the endpoint's
port can change. Point a client at them with

    export AWS_CONFIG_FILE=<home>/aws/config AWS_SHARED_CREDENTIALS_FILE=<home>/aws/credentials
    export AWS_PROFILE=appmesh-lab        # or --profile appmesh-lab / boto3.Session(profile_name=…)

`endpoint_url` in a profile (and its `services` sub-section) is read by botocore 1.31.0 and later
(boto3 1.28.0, aws CLI v1 1.29.0, aws CLI v2 2.13.0); the kit requires boto3 >= 1.34. Older
clients ignore it and need `--endpoint-url` / `endpoint_url=` as well.
"""
from __future__ import annotations

import configparser
import os
import re
import secrets
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from ..runtime.home import Paths

PROFILE = "appmesh-lab"
KEY_ID = re.compile(r"AKIA[A-Z2-7]{16}")  # the shape of an IAM user's access key id
SECRET = re.compile(r"[A-Za-z0-9+/]{40}")
_KEY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_SECRET_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


class CredentialsError(Exception):
    """The lab's credentials folder or files cannot be made safely (one sentence, with the fix)."""


@dataclass(frozen=True)
class Profile:
    """Where the lab's profile lives, and what is in it."""

    home: Path
    access_key_id: str = ""
    secret_access_key: str = ""
    region: str = ""
    endpoint: str = ""
    name: str = PROFILE

    @property
    def folder(self) -> Path:
        return Paths(self.home).aws  # an entry of the lab home: `down --purge` removes it

    @property
    def config_file(self) -> Path:
        return self.folder / "config"

    @property
    def credentials_file(self) -> Path:
        return self.folder / "credentials"

    def env(self) -> dict:
        """The environment variables that point boto3 and the aws CLI at this profile."""
        return {"AWS_CONFIG_FILE": str(self.config_file), "AWS_SHARED_CREDENTIALS_FILE": str(self.credentials_file),
                "AWS_PROFILE": self.name}

    def session(self):
        """A boto3 Session on this profile, whatever the process environment says."""
        import boto3
        import botocore.session
        core = botocore.session.Session()
        core.set_config_variable("config_file", str(self.config_file))
        core.set_config_variable("credentials_file", str(self.credentials_file))
        core.set_config_variable("profile", self.name)
        return boto3.Session(botocore_session=core)


def _private_folder(folder: Path) -> None:
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass
    st = os.lstat(folder)
    if not stat.S_ISDIR(st.st_mode):
        raise CredentialsError(f"{folder} is not a folder (a symlink or a file); remove it and run `appmesh-lab up` "
                               "again, so the lab can keep its credentials there")
    if st.st_uid != os.geteuid():
        raise CredentialsError(f"{folder} belongs to uid {st.st_uid}, not to you (uid {os.geteuid()}); remove it and "
                               "run `appmesh-lab up` again")
    os.chmod(folder, 0o700)


def _write_private(path: Path, text: str) -> None:
    """Write a 0600 file by a fresh name and rename it into place (a planted symlink is replaced,
    never followed)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _read_private(path: Path) -> configparser.ConfigParser | None:
    """The file parsed, if it is a regular file of ours; None if it is absent or unusable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd) as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_size > 64 * 1024:
            return None
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read_string(f.read())
        except (configparser.Error, UnicodeDecodeError):
            return None
    return parser


def read_keys(home: Path) -> tuple[str, str] | None:
    """(access key id, secret) from the lab's credentials file, or None."""
    parser = _read_private(Profile(Path(home)).credentials_file)
    if parser is None or not parser.has_section(PROFILE):
        return None
    key, secret = parser[PROFILE].get("aws_access_key_id", ""), parser[PROFILE].get("aws_secret_access_key", "")
    return (key, secret) if KEY_ID.fullmatch(key) and SECRET.fullmatch(secret) else None


def new_keys() -> tuple[str, str]:
    """A fresh access key id (AKIA + 16 base32 letters) and secret (40 characters), from `secrets`."""
    return ("AKIA" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16)),
            "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40)))


def ensure_profile(home: Path, endpoint: str, region: str) -> Profile:
    """Make sure <home>/aws holds the lab's credentials (made once) and a config whose profile
    names `region` and the App Mesh `endpoint`; return the profile."""
    home = Path(home)
    folder = Profile(home).folder
    _private_folder(folder)
    keys = read_keys(home)
    if keys is None:
        keys = new_keys()
        _write_private(Profile(home).credentials_file,
                       "# The lab's own credentials for its App Mesh API (made by `appmesh-lab up`; keep them private).\n"
                       f"[{PROFILE}]\naws_access_key_id = {keys[0]}\naws_secret_access_key = {keys[1]}\n")
    profile = Profile(home, keys[0], keys[1], region, endpoint)
    _write_private(profile.config_file,
                   "# The lab's App Mesh API profile (rewritten by each `appmesh-lab up`: the port can change).\n"
                   f"[profile {PROFILE}]\nregion = {region}\noutput = json\nservices = {PROFILE}\n\n"
                   f"[services {PROFILE}]\napp_mesh =\n    endpoint_url = {endpoint}\n")
    with _CACHE_LOCK:
        _CACHE.clear()
    return profile


def load_profile(home: Path) -> Profile:
    """The profile as the files have it now (keys empty when there are none)."""
    home = Path(home)
    keys = read_keys(home) or ("", "")
    region = endpoint = ""
    parser = _read_private(Profile(home).config_file)
    if parser is not None and parser.has_section(f"profile {PROFILE}"):
        region = parser[f"profile {PROFILE}"].get("region", "")
    if parser is not None and parser.has_section(f"services {PROFILE}"):
        m = re.search(r"endpoint_url\s*=\s*(\S+)", parser[f"services {PROFILE}"].get("app_mesh", ""))
        endpoint = m[1] if m else ""
    return Profile(home, keys[0], keys[1], region, endpoint)


_CACHE: dict = {}
_CACHE_LOCK = threading.Lock()


def known_keys(home: Path) -> dict:
    """{access key id: secret} the API accepts: the lab's credentials file, re-read when it changes."""
    path = Profile(Path(home)).credentials_file
    try:
        st = os.stat(path)
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
    except OSError:
        return {}
    with _CACHE_LOCK:
        hit = _CACHE.get(path)
        if hit and hit[0] == stamp:
            return hit[1]
        keys = read_keys(path.parent.parent)
        value = {keys[0]: keys[1]} if keys else {}
        _CACHE[path] = (stamp, value)
        return value
