"""Names every lesson helper shares: the repository's folders, the walkthrough's stages, the error type."""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
WALKTHROUGH = MANIFESTS / "walkthrough"
EXAMPLES = MANIFESTS / "examples"
MESH = "my-app-mesh"
GATEWAY = "appmesh-gateway"
APPMESH_KINDS = ("Mesh", "VirtualNode", "VirtualService", "VirtualRouter", "VirtualGateway", "GatewayRoute")

# stage -> the walkthrough files that stage adds
STAGE_FILES = {
    "03": ["00-namespace.yaml", "01-mesh.yaml", "02-product-service-vn.yaml", "03-review-service-vn.yaml",
           "04-product-service-vs.yaml", "05-review-service-vs.yaml"],
    "04": ["06-product-service-app.yaml", "07-review-service-app.yaml"],
    "05": ["08-virtual-gateway.yaml", "09-gateway-deployment.yaml"],
    "06": ["10-product-gateway-route.yaml", "11-review-gateway-route.yaml"],
}
CONTROLLER_HELM = ("helm upgrade -i appmesh-lab-controller manifests/charts/appmesh-lab-controller "
                   "-n appmesh-system --create-namespace")


class NotebookError(Exception):
    """A notebook helper could not do its job; the message says what to do."""


def lab_home() -> Path:
    """The local lab's state folder this kernel uses ($APPMESH_LAB_HOME, else .lab/ in the checkout)."""
    home = os.environ.get("APPMESH_LAB_HOME")
    return Path(home).expanduser().resolve() if home else ROOT / ".lab"


def tidy(text) -> str:
    """`text` with this machine's folders named, not spelled out: the lab home as $LAB_HOME, the
    virtual environment as $VIRTUAL_ENV, the checkout as `.`, the temporary folder as $TMPDIR
    and the user's home as `~`. What a lesson prints reads the same on every machine (and a
    committed output names no folder of the machine that ran it)."""
    import tempfile
    text = str(text)
    places = [(str(lab_home()), "$LAB_HOME"), (sys.prefix, "$VIRTUAL_ENV"), (str(ROOT), "."),
              (os.path.realpath(tempfile.gettempdir()), "$TMPDIR"), (tempfile.gettempdir(), "$TMPDIR"),
              (os.path.expanduser("~"), "~")]
    for folder, name in places:
        if folder and folder not in ("/", "~"):
            text = re.sub(re.escape(folder.rstrip("/")) + r"(?![\w.-])", lambda _m, n=name: n, text)
    return text
