"""The App Mesh API of the lab, signed with SigV4 (lesson 07)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .common import NotebookError


# ---- App Mesh API (notebook 07) -----------------------------------------------------------

@dataclass
class AppMeshAPI:
    endpoint: str | None
    available: bool
    reason: str
    region: str = "us-west-2"
    profile: object = None  # lab.api.credentials.Profile: the lab's credentials and config files

    @property
    def env(self) -> dict:
        """AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE and AWS_PROFILE for the lab's profile."""
        return self.profile.env() if self.profile is not None else {}

    def client(self):
        """A boto3 App Mesh client on the lab's profile (its endpoint and credentials), in `region`."""
        if not self.available:
            raise NotebookError(f"the App Mesh API is not available: {self.reason}")
        return self.profile.session().client("appmesh", region_name=self.region)


def appmesh_api(t, region: str = "us-west-2") -> AppMeshAPI:
    """Is the lab's App Mesh REST API (2019-01-25 shape) answering requests signed with the
    profile the lab wrote at `up` (<lab home>/aws/config and credentials)? It is when ListMeshes
    answers; anything else means "not in this build" or "not on this target", with the reason."""
    if t.name != "local" or not hasattr(t, "status"):
        return AppMeshAPI(None, False, f"the {t.name} target has no lab App Mesh API endpoint", region)
    st = t.status()
    endpoint = (st.get("endpoints") or {}).get("appmesh_api")
    if not endpoint:
        return AppMeshAPI(None, False, "the lab reports no appmesh_api endpoint", region)
    try:
        from ..api.credentials import load_profile
    except ImportError as exc:
        return AppMeshAPI(endpoint, False, f"this build has no App Mesh API ({exc})", region)
    home = (st.get("daemon") or {}).get("home")
    if not home:
        return AppMeshAPI(endpoint, False, "the lab reports no home, where its credentials are", region)
    profile = load_profile(Path(home))
    if not profile.access_key_id:
        return AppMeshAPI(endpoint, False, f"the lab wrote no credentials under {profile.folder}", region, profile)
    from botocore.exceptions import BotoCoreError, ClientError
    api = AppMeshAPI(profile.endpoint or endpoint, True, "ListMeshes answers", region, profile)
    try:
        from botocore.config import Config
        profile.session().client("appmesh", region_name=region, config=Config(
            retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30)).list_meshes(limit=1)
    except ClientError as exc:
        return AppMeshAPI(endpoint, False, f"ListMeshes answered {exc.response['Error'].get('Code')}", region, profile)
    except BotoCoreError as exc:
        return AppMeshAPI(endpoint, False, f"ListMeshes got no answer ({type(exc).__name__})", region, profile)
    return api


